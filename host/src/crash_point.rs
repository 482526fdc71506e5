//! Crash points for the crash-consistency tests: named places in a backup,
//! a sweep and an archive copy where the process kills itself with SIGKILL
//! (no destructor, no flush, no clean-up runs), as a power cut or
//! `kill -9` would stop it there.
//!
//! Inert unless `REDBACK_TEST_CRASH_AT=<point>` is set; `redback serve`
//! refuses an unknown point and logs a warning when one is armed. Never set
//! it in production. Owns only the list of points and the kill; must not
//! change what the code around a point does.

use std::sync::OnceLock;

/// The environment variable that arms one point.
pub const ENV: &str = "REDBACK_TEST_CRASH_AT";

macro_rules! points {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// A place where a crash must leave catalog and storage repairable.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum CrashPoint {
            $($(#[$doc])* $variant,)*
        }

        impl CrashPoint {
            pub const ALL: &[CrashPoint] = &[$(CrashPoint::$variant,)*];

            pub fn name(self) -> &'static str {
                match self {
                    $(CrashPoint::$variant => $name,)*
                }
            }
        }
    };
}

points! {
    /// A backup's data upload is under way: a piece was written.
    BackupUploading => "backup-uploading",
    /// A backup's data object is finished, its manifest not yet written.
    BackupDataStored => "backup-data-stored",
    /// A backup's manifest is written, the catalog not yet updated.
    BackupManifestStored => "backup-manifest-stored",
    /// A sweep deleted a backup's manifest, not yet its data.
    SweepManifestDeleted => "sweep-manifest-deleted",
    /// A sweep deleted a backup's data, the catalog not yet updated.
    SweepDataDeleted => "sweep-data-deleted",
    /// An archive copy of the data is under way: a piece was written.
    ArchiveCopying => "archive-copying",
    /// The archive copy of the data is finished, its manifest not yet.
    ArchiveDataCopied => "archive-data-copied",
    /// The archive copy's manifest is written, the catalog not yet updated.
    ArchiveManifestCopied => "archive-manifest-copied",
}

impl std::fmt::Display for CrashPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The point `REDBACK_TEST_CRASH_AT` arms, if any; an unknown name is an
/// error naming the known ones.
pub fn armed() -> Result<Option<CrashPoint>, String> {
    let Some(value) = std::env::var_os(ENV) else {
        return Ok(None);
    };
    let value = value.to_string_lossy();
    CrashPoint::ALL
        .iter()
        .copied()
        .find(|p| p.name() == value)
        .map(Some)
        .ok_or_else(|| {
            format!(
                "{ENV}=`{value}` names no crash point; known: {}",
                CrashPoint::ALL
                    .iter()
                    .map(|p| p.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// Kills the process at once if `point` is the armed one.
pub fn reached(point: CrashPoint) {
    static ARMED: OnceLock<Option<CrashPoint>> = OnceLock::new();
    if *ARMED.get_or_init(|| armed().ok().flatten()) == Some(point) {
        eprintln!("{ENV}: crashing at {point}");
        // SAFETY: getpid and kill have no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
