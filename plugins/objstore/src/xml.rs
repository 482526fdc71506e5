//! Reading the small, flat XML documents object stores answer with
//! (`ListBucketResult`, `InitiateMultipartUploadResult`, `Error`), and
//! escaping text for the few documents we send. Not a general XML parser:
//! no CDATA, comments or DTDs, which these services do not send.

/// Each `<tag>…</tag>` element's inner XML, in document order. Elements
/// with attributes (`<tag xmlns="…">`) count; self-closing `<tag/>` gives
/// an empty string.
pub fn elements<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag}");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(p) = xml[at..].find(&open) {
        let start = at + p + open.len();
        let rest = &xml[start..];
        // `<tagX` is another element.
        match rest.chars().next() {
            Some('>') | Some(' ') | Some('\t') | Some('\n') | Some('\r') | Some('/') => {}
            _ => {
                at = start;
                continue;
            }
        }
        let Some(gt) = rest.find('>') else { break };
        if rest[..gt].ends_with('/') {
            out.push("");
            at = start + gt + 1;
            continue;
        }
        let inner_start = start + gt + 1;
        let Some(end) = xml[inner_start..].find(&close) else {
            break;
        };
        out.push(&xml[inner_start..inner_start + end]);
        at = inner_start + end + close.len();
    }
    out
}

/// The unescaped text of the first `<tag>` element, if any.
pub fn text(xml: &str, tag: &str) -> Option<String> {
    elements(xml, tag).first().map(|s| unescape(s))
}

/// Replaces the five predefined entities and numeric character references.
pub fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';') else { break };
        let entity = &rest[1..semi];
        let ch = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Escapes text for an element's content.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bucket</Name><Prefix/><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <Contents><Key>a&amp;b.txt</Key><LastModified>2026-11-21T02:00:00.000Z</LastModified>
    <ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;</ETag><Size>0</Size></Contents>
  <Contents><Key>k&#x2F;2</Key><Size>42</Size></Contents>
  <NextContinuationToken>tok</NextContinuationToken>
</ListBucketResult>"#;

    #[test]
    fn reads_a_listing() {
        let contents = elements(LIST, "Contents");
        assert_eq!(contents.len(), 2);
        assert_eq!(text(contents[0], "Key").as_deref(), Some("a&b.txt"));
        assert_eq!(
            text(contents[0], "ETag").as_deref(),
            Some("\"d41d8cd98f00b204e9800998ecf8427e\"")
        );
        assert_eq!(text(contents[1], "Key").as_deref(), Some("k/2"));
        assert_eq!(text(contents[1], "Size").as_deref(), Some("42"));
        assert_eq!(text(LIST, "Prefix").as_deref(), Some(""));
        assert_eq!(text(LIST, "IsTruncated").as_deref(), Some("true"));
        // `<Key>` does not match `<KeyCount>`.
        assert_eq!(elements(LIST, "Key").len(), 2);
        assert_eq!(text(LIST, "Missing"), None);
    }

    #[test]
    fn escape_round_trips() {
        let s = "a<b>&\"c'";
        assert_eq!(unescape(&escape(s)), s);
        assert_eq!(unescape("x &bogus; y &#65;"), "x &bogus; y A");
    }
}
