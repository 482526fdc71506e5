//! The settings of one instance: which preopened directory is the root and
//! whether to fsync, checked once in `configure`. Also sweeps partial uploads
//! left behind by instances that crashed or were killed mid-upload.

use wasip2::filesystem::preopens::get_directories;
use wasip2::filesystem::types::{
    Descriptor, DescriptorFlags, DescriptorType, OpenFlags, PathFlags,
};

use crate::keys::PARTIAL_DIR;
use crate::redback::storage::types::Error;

/// A partial upload untouched for this long belongs to a dead instance: a
/// live one writes at least every few seconds (the host's per-call timeout).
const STALE_PARTIAL_SECS: u64 = 24 * 60 * 60;

pub(crate) struct Config {
    /// The preopened directory every key is resolved against. WASI confines
    /// every `*_at` call to it, so `..` tricks cannot leave it.
    pub(crate) root: Descriptor,
    /// Whether `finish` syncs data and the parent directory before it
    /// reports the object durable. Off only for throwaway test setups.
    pub(crate) fsync: bool,
}

pub(crate) fn parse(settings: Vec<(String, String)>) -> Result<Config, Error> {
    let mut root_path = None;
    let mut fsync = true;
    for (key, value) in settings {
        match key.as_str() {
            "root" => root_path = Some(value),
            "fsync" => {
                fsync = match value.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(Error::InvalidConfig(format!(
                            "setting `fsync` is {value:?}; use \"true\" or \"false\""
                        )));
                    }
                }
            }
            // The value is not echoed: it may be a resolved secret.
            _ => {
                return Err(Error::InvalidConfig(format!(
                    "unknown setting `{key}`; storage-local accepts `root` and `fsync`"
                )));
            }
        }
    }
    let root_path = root_path.ok_or_else(|| {
        Error::InvalidConfig(
            "setting `root` is missing; the host sets it to the granted directory \
             when plugin.toml asks for `filesystem = true`"
                .into(),
        )
    })?;
    let root = find_preopen(&root_path)?;
    remove_stale_partials(&root);
    Ok(Config { root, fsync })
}

fn find_preopen(root_path: &str) -> Result<Descriptor, Error> {
    let wanted = without_trailing_slash(root_path);
    let mut granted = Vec::new();
    for (descriptor, path) in get_directories() {
        if without_trailing_slash(&path) == wanted {
            return Ok(descriptor);
        }
        granted.push(format!("{path:?}"));
    }
    let granted = if granted.is_empty() {
        "none (does plugin.toml ask for `filesystem = true`?)".to_string()
    } else {
        granted.join(", ")
    };
    Err(Error::InvalidConfig(format!(
        "setting `root` is {root_path:?}, which is not a directory the host granted; granted: {granted}"
    )))
}

fn without_trailing_slash(path: &str) -> &str {
    match path.trim_end_matches('/') {
        "" => "/",
        trimmed => trimmed,
    }
}

/// Best effort: a read-only root or a vanished file must not stop
/// `configure`, and anything left is retried by the next instance.
fn remove_stale_partials(root: &Descriptor) {
    let Ok(partials) = root.open_at(
        PathFlags::empty(),
        PARTIAL_DIR,
        OpenFlags::DIRECTORY,
        DescriptorFlags::READ,
    ) else {
        return;
    };
    let Ok(entries) = partials.read_directory() else {
        return;
    };
    let now_secs = wasip2::clocks::wall_clock::now().seconds;
    while let Ok(Some(entry)) = entries.read_directory_entry() {
        let Ok(stat) = partials.stat_at(PathFlags::empty(), &entry.name) else {
            continue;
        };
        let stale = stat.type_ == DescriptorType::RegularFile
            && stat
                .data_modification_timestamp
                .is_some_and(|t| t.seconds.saturating_add(STALE_PARTIAL_SECS) < now_secs);
        if stale && let Err(code) = partials.unlink_file_at(&entry.name) {
            eprintln!(
                "storage-local: cannot remove stale partial upload {PARTIAL_DIR}/{}: {}",
                entry.name,
                code.name()
            );
        }
    }
}
