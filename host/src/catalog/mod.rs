//! The daemon's catalog: one embedded SQLite file holding a cache of backup
//! manifests (`backups`) and the daemon's own records: the task center's
//! tasks, the scheduler's window log and the policies set through the API.
//!
//! Owns: the schema and its migrations (`schema`), how each record is stored
//! and read back, and the rebuild of the backups table from manifests.
//! Must not: talk to storage or Redis (the caller lists storage and hands
//! manifests in), decide anything (which task runs, what expires: it answers
//! queries), or block an async runtime for long (the API is synchronous; call
//! it from `spawn_blocking` or hold it briefly).
//!
//! Invariants:
//! - the backups table can be thrown away and rebuilt from storage with
//!   [`Catalog::rebuild`]; tasks, the window log and policies are kept only
//!   here and a rebuild leaves them alone;
//! - times are stored as integer unix milliseconds (UTC), so that range
//!   queries compare numbers and use the indexes; a manifest's RFC 3339 text
//!   (jiff writes a variable number of fractional digits, which does not sort
//!   as text) is parsed on the way in, and kept verbatim in the stored
//!   manifest JSON;
//! - a value read back that this code does not know (a status string, a
//!   negative size) is an error naming the row, never a panic.

/// An enum stored as one lowercase word per variant: `as_str`, `parse`,
/// `ALL` and `Display`.
macro_rules! stored_words {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// The stored words, for error messages.
            #[allow(dead_code)]
            fn expected() -> String {
                $name::ALL
                    .iter()
                    .map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(" | ")
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

mod backups;
mod error;
mod policies;
mod row;
mod schema;
mod tasks;
#[cfg(test)]
mod testing;
mod windows;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::Connection;

pub use backups::{BackupQuery, BackupRecord, BackupStatus, RebuildReport, SkippedManifest};
pub use error::CatalogError;
pub use schema::SCHEMA_VERSION;
pub use tasks::{INTERRUPTED_MESSAGE, TaskKind, TaskQuery, TaskRecord, TaskState};
pub use windows::{WindowOutcome, WindowRecord};

/// How long a statement waits for another process's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The catalog; cheap to share (`Arc<Catalog>`): one connection behind a
/// mutex, which is enough for the daemon's few writes per backup and task.
pub struct Catalog {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Catalog {
    /// Opens the catalog file, creating it and its folder if missing, and
    /// brings its schema up to [`SCHEMA_VERSION`]. A file written by a newer
    /// redback is refused ([`CatalogError::TooNew`]).
    pub fn open(path: &Path) -> Result<Catalog, CatalogError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| CatalogError::CreateDir {
                path: path.to_path_buf(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(|source| CatalogError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Catalog::setup(path.to_path_buf(), conn, schema::SCHEMA_VERSION)
    }

    /// A catalog that lives and dies with this value (tests, one-shot CLI).
    pub fn open_in_memory() -> Result<Catalog, CatalogError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| CatalogError::Open {
            path: path.clone(),
            source,
        })?;
        Catalog::setup(path, conn, schema::SCHEMA_VERSION)
    }

    /// The file this catalog lives in (`:memory:` for an in-memory one).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sets the connection up and migrates up to `target` (below
    /// [`SCHEMA_VERSION`] only in the migration tests).
    fn setup(path: PathBuf, mut conn: Connection, target: i64) -> Result<Catalog, CatalogError> {
        let open_err = |source| CatalogError::Open {
            path: path.clone(),
            source,
        };
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        // WAL: readers (the API) do not wait for the writer (a task's
        // progress). An in-memory database answers `memory` and stays so.
        let _mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(open_err)?;
        schema::migrate(&mut conn, &path, target)?;
        Ok(Catalog {
            path,
            conn: Mutex::new(conn),
        })
    }

    /// The connection. A panic while it was held cannot leave a half-done
    /// write (an open transaction rolls back when dropped), so a poisoned
    /// lock is taken over rather than passed on.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs the query `sql` and reads every row with `read`.
    fn select_rows<T>(
        &self,
        sql: &str,
        args: impl rusqlite::Params,
        mut read: impl FnMut(&rusqlite::Row<'_>) -> Result<T, CatalogError>,
    ) -> Result<Vec<T>, CatalogError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(sql).map_err(|e| self.sql(e))?;
        let mut rows = stmt.query(args).map_err(|e| self.sql(e))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.sql(e))? {
            out.push(read(row)?);
        }
        Ok(out)
    }

    /// Maps an SQLite error to one naming this catalog's file.
    fn sql(&self, source: rusqlite::Error) -> CatalogError {
        CatalogError::Sql {
            path: self.path.clone(),
            source,
        }
    }

    fn not_found(&self, what: &'static str, id: &str) -> CatalogError {
        CatalogError::NotFound {
            path: self.path.clone(),
            what,
            id: id.to_string(),
        }
    }

    fn bad_input(&self, what: &'static str, id: &str, problem: impl Into<String>) -> CatalogError {
        CatalogError::BadInput {
            path: self.path.clone(),
            what,
            id: id.to_string(),
            problem: problem.into(),
        }
    }

    /// A size handed in, as SQLite's signed integer.
    fn size_in(&self, what: &'static str, id: &str, bytes: u64) -> Result<i64, CatalogError> {
        i64::try_from(bytes)
            .map_err(|_| self.bad_input(what, id, format!("size {bytes} is too large to store")))
    }
}

/// A time as stored: unix milliseconds (sub-millisecond digits are dropped).
fn millis(t: jiff::Timestamp) -> i64 {
    t.as_millisecond()
}

/// A query bound against stored (truncated) times: the next whole
/// millisecond at or after `t`, so that `stored < bound` and
/// `stored >= bound` mean the same as comparing the untruncated times.
fn millis_bound(t: jiff::Timestamp) -> i64 {
    let ms = t.as_millisecond();
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(truncated) if truncated < t => ms + 1,
        _ => ms,
    }
}

/// `t` as the catalog gives it back: to the millisecond.
pub fn to_stored_precision(t: jiff::Timestamp) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(t.as_millisecond()).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Catalog>();
    }

    #[test]
    fn open_creates_the_folder_and_the_file_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("deeper").join("catalog.db");
        let cat = Catalog::open(&path).unwrap();
        assert!(path.exists());
        assert_eq!(cat.path(), path);
        let conn = cat.conn();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1);
        let busy: i64 = conn
            .query_row("PRAGMA busy_timeout", [], |r| r.get(0))
            .unwrap();
        assert_eq!(busy, 5000);
    }

    #[test]
    fn open_names_the_file_when_it_cannot_create_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("a-file");
        std::fs::write(&blocker, b"x").unwrap();
        let path = blocker.join("catalog.db");
        let err = Catalog::open(&path).unwrap_err();
        assert!(matches!(err, CatalogError::CreateDir { .. }), "{err}");
        assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    }
}
