//! The key rules of the storage contract (`wit/storage/storage.wit`), for
//! every bundled storage plugin: which keys and list prefixes to refuse, and
//! how to quote keys in error sentences.

/// The contract's limit on a key's length.
pub const MAX_KEY_BYTES: usize = 1024;

/// Why `key` breaks the contract's rules, or `None` when it is fine. The
/// caller wraps the sentence in its `invalid-key` error.
pub fn key_problem(key: &str) -> Option<String> {
    if key.is_empty() {
        return Some(format!("key {} is empty", quoted(key)));
    }
    let problem = if key.len() > MAX_KEY_BYTES {
        format!(
            "is {} bytes long; keys are at most {MAX_KEY_BYTES} bytes",
            key.len()
        )
    } else if key.starts_with('/') {
        "starts with `/`; keys are relative paths".into()
    } else if key.contains('\0') {
        "contains a NUL byte".into()
    } else if key.contains('\\') {
        "contains a `\\`; separate segments with `/`".into()
    } else if let Some(bad) = key
        .split('/')
        .find(|s| s.is_empty() || *s == "." || *s == "..")
    {
        if bad.is_empty() {
            "has an empty segment (`//` or a trailing `/`)".into()
        } else {
            format!("has a `{bad}` segment")
        }
    } else {
        return None;
    };
    Some(format!("key {} {problem}", quoted(key)))
}

/// Why a list prefix can never lead to a valid key, or `None`.
pub fn prefix_problem(prefix: &str) -> Option<String> {
    let problem = if prefix.contains('\0') {
        "contains a NUL byte"
    } else if prefix.starts_with('/') {
        "starts with `/`; keys are relative paths"
    } else if prefix.split('/').any(|segment| segment == "..") {
        "has a `..` segment"
    } else {
        return None;
    };
    Some(format!("list prefix {} {problem}", quoted(prefix)))
}

/// A key as shown in an error sentence: escaped, and cut short so a hostile
/// 4 MiB key does not make a 4 MiB log line.
pub fn quoted(key: &str) -> String {
    const SHOWN_CHARS: usize = 120;
    match key.char_indices().nth(SHOWN_CHARS) {
        None => format!("{key:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &key[..cut], key.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_the_contract_lists() {
        for bad in ["", "/a", "a//b", "a/", "a/./b", "../a", "a\\b", "a\0b"] {
            assert!(key_problem(bad).is_some(), "{bad:?}");
        }
        assert!(key_problem(&"k".repeat(1025)).is_some());
        for good in [
            "a",
            "redback/i/20261121T020000Z-ab12/dump.rdb.zst",
            ".hidden/x",
        ] {
            assert_eq!(key_problem(good), None, "{good:?}");
        }
        assert!(prefix_problem("a/../b").is_some());
        assert_eq!(prefix_problem("redback/i/2026"), None);
    }
}
