//! The default `object-prefix`: `<instance>/<backup-id>`, the layout of
//! ARCHITECTURE.md ("Storage layout and manifest").
//!
//! The host accepts a prefix of at most 512 bytes of `[A-Za-z0-9._-/]`,
//! without a leading or trailing `/`, empty segments or `.`/`..` segments
//! (`host/src/plugin/provider_guest.rs`). Each part is made one such
//! segment, so whatever the host passes, the answer is accepted and has
//! exactly two segments.

/// Longest segment kept: two of them and the `/` stay within 512 bytes.
const MAX_SEGMENT_BYTES: usize = 255;

/// `<instance>/<backup-id>`, each part one storage-safe segment.
///
/// Instance names (`A-Z a-z 0-9 - _`) and backup ids (`20240102T030405Z-1a2b`)
/// pass unchanged; any other character becomes `_`, a part made only of
/// dots or empty becomes underscores, and a part is cut at 255 bytes.
pub fn default_object_prefix(instance: &str, backup_id: &str) -> String {
    format!("{}/{}", segment(instance), segment(backup_id))
}

fn segment(part: &str) -> String {
    let mut s: String = part
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_SEGMENT_BYTES)
        .collect();
    if s.bytes().all(|b| b == b'.') {
        // "", "." and ".." are not segments a storage key may hold.
        s = "_".repeat(s.len().max(1));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::default_object_prefix;

    #[test]
    fn prefixes_are_two_safe_segments() {
        let cases = [
            (
                "cache-1",
                "20240102T030405Z-1a2b",
                "cache-1/20240102T030405Z-1a2b",
            ),
            ("a/b", "x y", "a_b/x_y"),
            ("", "..", "_/__"),
            (".", "id", "_/id"),
            ("café", "v1.2", "caf_/v1.2"),
        ];
        for (instance, id, want) in cases {
            assert_eq!(
                default_object_prefix(instance, id),
                want,
                "{instance:?} {id:?}"
            );
        }
        let long = default_object_prefix(&"i".repeat(600), &"b".repeat(600));
        assert_eq!(long.len(), 511);
        assert_eq!(long.split('/').count(), 2);
    }
}
