//! Choosing keys: the `;`-separated list of the Tencent console
//! (`k1;k2;user:*`), each entry a Redis glob pattern.

/// Redis's glob matching (`KEYS`, `SCAN MATCH`): `*`, `?`, `[abc]`, `[^a]`,
/// `[a-z]`, and `\` escaping the next character.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    // Where to resume after the last `*`: (pattern index after it, text index).
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    while p < pattern.len() && pattern[p] == b'*' {
                        p += 1;
                    }
                    if p == pattern.len() {
                        return true;
                    }
                    star = Some((p, t));
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class(pattern, p, text[t]) {
                        if matched {
                            p = next;
                            t += 1;
                            continue;
                        }
                    } else if text[t] == b'[' {
                        // An unclosed `[` matches itself.
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if pattern[p + 1] == text[t] {
                        p += 2;
                        t += 1;
                        continue;
                    }
                }
                c => {
                    if c == text[t] {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
            }
        }
        // Mismatch: let the last `*` swallow one more character.
        match star {
            Some((sp, st)) => {
                p = sp;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class starting at `pattern[open]` (`[`);
/// returns whether it matched and the index after `]`, or `None` when the
/// class is not closed.
fn class(pattern: &[u8], open: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = open + 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < pattern.len() {
        let b = pattern[i];
        if b == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if b == b'\\' && i + 1 < pattern.len() {
            matched |= pattern[i + 1] == c;
            i += 2;
        } else if i + 2 < pattern.len() && pattern[i + 1] == b'-' && pattern[i + 2] != b']' {
            let (lo, hi) = if b <= pattern[i + 2] {
                (b, pattern[i + 2])
            } else {
                (pattern[i + 2], b)
            };
            matched |= (lo..=hi).contains(&c);
            i += 3;
        } else {
            matched |= b == c;
            i += 1;
        }
    }
    None
}

/// The keys a user asked for.
#[derive(Debug, Clone)]
pub struct KeyFilter {
    patterns: Vec<Vec<u8>>,
    /// How many keys each pattern matched, for the "missing" report.
    hits: Vec<u64>,
    /// Entries without glob characters, by key: index into `patterns`. A
    /// list of thousands of plain keys is then one hash lookup per key.
    exact: std::collections::HashMap<Vec<u8>, usize>,
    /// Indexes of the real patterns.
    globs: Vec<usize>,
}

fn is_glob(p: &[u8]) -> bool {
    p.iter().any(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'))
}

impl KeyFilter {
    /// Parses `k1;k2;user:*`; empty entries are ignored. `None` when the
    /// list holds no key at all.
    pub fn parse(list: &str) -> Option<KeyFilter> {
        let patterns: Vec<Vec<u8>> = list
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.as_bytes().to_vec())
            .collect();
        if patterns.is_empty() {
            return None;
        }
        let hits = vec![0; patterns.len()];
        let mut exact = std::collections::HashMap::new();
        let mut globs = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            if is_glob(p) {
                globs.push(i);
            } else {
                exact.entry(p.clone()).or_insert(i);
            }
        }
        Some(KeyFilter {
            patterns,
            hits,
            exact,
            globs,
        })
    }

    /// Whether `key` is wanted; counts the hit.
    pub fn matches(&mut self, key: &[u8]) -> bool {
        let mut any = false;
        if let Some(&i) = self.exact.get(key) {
            self.hits[i] += 1;
            any = true;
        }
        for &i in &self.globs {
            if glob_match(&self.patterns[i], key) {
                self.hits[i] += 1;
                any = true;
            }
        }
        any
    }

    /// Patterns that matched no key in the backup.
    pub fn missing(&self) -> Vec<String> {
        self.patterns
            .iter()
            .zip(&self.hits)
            .filter(|(_, h)| **h == 0)
            .map(|(p, _)| String::from_utf8_lossy(p).into_owned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_glob_semantics() {
        let yes = [
            ("user:*", "user:1"),
            ("user:*", "user:"),
            ("*", ""),
            ("h?llo", "hello"),
            ("h[ae]llo", "hallo"),
            ("h[^e]llo", "hallo"),
            ("h[a-b]llo", "hbllo"),
            ("h\\*llo", "h*llo"),
            ("*:*:x", "a:b:c:x"),
            ("a*b*c", "aXXbYYc"),
            ("[", "["),
        ];
        for (p, t) in yes {
            assert!(
                glob_match(p.as_bytes(), t.as_bytes()),
                "{p} should match {t}"
            );
        }
        let no = [
            ("user:*", "users:1"),
            ("h?llo", "hllo"),
            ("h[^e]llo", "hello"),
            ("h[a-b]llo", "hcllo"),
            ("h\\*llo", "hello"),
            ("a*b*c", "aXXbYY"),
            ("exact", "exact2"),
        ];
        for (p, t) in no {
            assert!(
                !glob_match(p.as_bytes(), t.as_bytes()),
                "{p} should not match {t}"
            );
        }
    }

    #[test]
    fn lists_count_hits_and_report_missing() {
        let mut f = KeyFilter::parse(" k1 ;user:*;; gone").unwrap();
        assert!(f.matches(b"k1"));
        assert!(f.matches(b"user:7"));
        assert!(!f.matches(b"other"));
        assert_eq!(f.missing(), ["gone"]);
        assert!(KeyFilter::parse(" ; ").is_none());
    }
}
