//! The key rules of the storage contract (`wit/storage/storage.wit`), checked
//! before any key or list prefix reaches the filesystem, and how keys are
//! quoted in error sentences. Owns the name of the reserved partial-upload
//! directory. Touches no file.

use crate::redback::storage::types::Error;

/// Hidden directory under the root where uploads are written before `finish`
/// renames them into place. A key may not start with it, so no object can
/// collide with an upload in progress and `list` never shows one.
pub(crate) const PARTIAL_DIR: &str = ".redback-partial";

/// The contract's limit on a key's length.
pub(crate) const MAX_KEY_BYTES: usize = 1024;

/// Refuses, with `invalid-key`, exactly what the WIT lists plus the reserved
/// partial-upload directory.
pub(crate) fn check_key(key: &str) -> Result<(), Error> {
    match key_problem(key) {
        None => Ok(()),
        Some(problem) => Err(Error::InvalidKey(format!("key {} {problem}", quoted(key)))),
    }
}

fn key_problem(key: &str) -> Option<String> {
    if key.is_empty() {
        return Some("is empty".into());
    }
    if key.len() > MAX_KEY_BYTES {
        return Some(format!(
            "is {} bytes long; keys are at most {MAX_KEY_BYTES} bytes",
            key.len()
        ));
    }
    if key.starts_with('/') {
        return Some("starts with `/`; keys are relative paths".into());
    }
    if key.contains('\0') {
        return Some("contains a NUL byte".into());
    }
    if key.contains('\\') {
        return Some("contains a `\\`; separate segments with `/`".into());
    }
    for segment in key.split('/') {
        if segment.is_empty() {
            return Some("has an empty segment (`//` or a trailing `/`)".into());
        }
        if segment == "." || segment == ".." {
            return Some(format!("has a `{segment}` segment"));
        }
    }
    if key.split('/').next() == Some(PARTIAL_DIR) {
        return Some(format!(
            "starts with `{PARTIAL_DIR}`, which storage-local reserves for uploads in progress"
        ));
    }
    None
}

/// A list prefix is a plain string prefix that may end mid-segment, so only
/// what could never lead to a valid key, or could climb out of the root, is
/// refused.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), Error> {
    let problem = if prefix.contains('\0') {
        "contains a NUL byte"
    } else if prefix.starts_with('/') {
        "starts with `/`; keys are relative paths"
    } else if prefix.split('/').any(|segment| segment == "..") {
        "has a `..` segment"
    } else {
        return Ok(());
    };
    Err(Error::InvalidKey(format!(
        "list prefix {} {problem}",
        quoted(prefix)
    )))
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

/// A key as shown in an error sentence: escaped, and cut short so a hostile
/// 4 MiB key does not make a 4 MiB log line.
pub(crate) fn quoted(key: &str) -> String {
    const SHOWN_CHARS: usize = 120;
    match key.char_indices().nth(SHOWN_CHARS) {
        None => format!("{key:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &key[..cut], key.len()),
    }
}
