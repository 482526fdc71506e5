//! The key rules of the storage contract (`wit/storage/storage.wit`), checked
//! before any key or list prefix reaches the filesystem, and how keys are
//! quoted in error sentences. Owns the name of the reserved partial-upload
//! directory. Touches no file.

use crate::redback::storage::types::Error;

/// Hidden directory under the root where uploads are written before `finish`
/// renames them into place. A key may not start with it, so no object can
/// collide with an upload in progress and `list` never shows one.
pub(crate) const PARTIAL_DIR: &str = ".redback-partial";

pub(crate) use objstore::keys::{MAX_KEY_BYTES, quoted};

/// The start of the name of every partial file of `key`: a 64-bit FNV-1a
/// of the key, so `delete(key)` can find and remove the uploads of that key
/// a dead process left behind without reading them.
pub(crate) fn partial_tag(key: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}-")
}

/// Refuses, with `invalid-key`, exactly what the WIT lists plus the reserved
/// partial-upload directory.
pub(crate) fn check_key(key: &str) -> Result<(), Error> {
    if let Some(problem) = objstore::keys::key_problem(key) {
        return Err(Error::InvalidKey(problem));
    }
    if key.split('/').next() == Some(PARTIAL_DIR) {
        return Err(Error::InvalidKey(format!(
            "key {} starts with `{PARTIAL_DIR}`, which storage-local reserves for uploads in progress",
            quoted(key)
        )));
    }
    Ok(())
}

/// A list prefix is a plain string prefix that may end mid-segment, so only
/// what could never lead to a valid key, or could climb out of the root, is
/// refused.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), Error> {
    match objstore::keys::prefix_problem(prefix) {
        None => Ok(()),
        Some(problem) => Err(Error::InvalidKey(problem)),
    }
}

/// Whether a directory part of a list prefix (`a/b/`, without the last
/// partial segment) could start a valid key at all. Empty, `.` or reserved
/// segments cannot, and opening them would name the wrong directory.
pub(crate) fn prefix_dir_can_match(dir_key: &str) -> bool {
    let Some(dir) = dir_key.strip_suffix('/') else {
        return dir_key.is_empty();
    };
    !dir.contains('\\')
        && dir.split('/').next() != Some(PARTIAL_DIR)
        && dir
            .split('/')
            .all(|segment| !segment.is_empty() && segment != ".")
}
