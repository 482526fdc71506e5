//! Percent-encoding as the signature schemes define it (RFC 3986
//! unreserved characters kept, everything else `%XX` in upper case).

/// Encodes every byte except `A-Z a-z 0-9 - . _ ~`; with `keep_slash`, `/`
/// is kept too (object keys in a path).
pub fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 2);
    for &b in s.as_bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/');
        if keep {
            out.push(b as char);
        } else {
            out.push('%');
            out.push_str(&format!("{b:02X}"));
        }
    }
    out
}

/// `a=1&b=2` from pairs, each name and value encoded, sorted by encoded
/// name then value: the canonical query string of SigV4 and OSS V4.
pub fn canonical_query(params: &[(String, String)]) -> String {
    let mut enc: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (encode(k, false), encode(v, false)))
        .collect();
    enc.sort();
    enc.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_unreserved_and_encodes_the_rest() {
        assert_eq!(encode("a-b_c.d~e", false), "a-b_c.d~e");
        assert_eq!(encode("a b/c+d=é", false), "a%20b%2Fc%2Bd%3D%C3%A9");
        assert_eq!(encode("dir/file name", true), "dir/file%20name");
    }

    #[test]
    fn canonical_query_sorts_encoded_pairs() {
        let q = canonical_query(&[
            ("prefix".into(), "a b".into()),
            ("list-type".into(), "2".into()),
            ("max-keys".into(), "10".into()),
        ]);
        assert_eq!(q, "list-type=2&max-keys=10&prefix=a%20b");
    }
}
