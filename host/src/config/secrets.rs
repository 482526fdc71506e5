//! Secret values: read from the environment or a file, never printed.

use std::fmt;

/// A secret string. `Debug` and `Display` print a mask, so a secret that
/// ends up in a log line or an error shows as `***`; only `expose` gives the
/// value, and only the plugin host calls it, to hand it to `configure`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Setting names that hold secrets: given in plain text they are refused, so
/// a secret never sits in a config file that gets copied around. A name
/// ending in `_id` is the public half of a key pair (`access_key_id`,
/// Tencent's `secret_id`), not a secret.
pub(crate) fn looks_secret(key: &str) -> bool {
    const WORDS: [&str; 6] = [
        "secret",
        "password",
        "token",
        "credential",
        "private_key",
        "passphrase",
    ];
    let k = key.to_ascii_lowercase();
    !k.ends_with("_id") && WORDS.iter().any(|w| k.contains(w))
}
