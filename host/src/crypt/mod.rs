//! Encryption at rest: a storage's key ring and the framed, authenticated
//! format of an encrypted data object.
//!
//! Owns: key rings (the current key encrypts, any listed key decrypts, so
//! keys can be rotated), reading key material (hex, base64 or a raw 32-byte
//! file), the object format (`frames.rs`: a versioned header, then
//! XChaCha20-Poly1305 frames in the STREAM construction of RustCrypto's
//! `aead-stream`, the last one flagged so a cut is detected), and the
//! errors that tell a missing or wrong key from an altered object (a
//! configured storage answers its ring itself: `Storage::key_ring`). Must not: read the
//! config file or the environment (`config/` hands it key bytes), hand-roll
//! any cryptography, or know the backup data path (`backup/` calls
//! `Sealer` and `Opener`).

mod frames;

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use serde::{Deserialize, Serialize};

pub use frames::{Opener, Sealer, plain_len};

/// The cipher and construction, as the manifest names it.
pub const CIPHER: &str = "xchacha20poly1305-stream-be32";
/// Plaintext bytes per frame; each stored frame adds a 16-byte tag.
pub const FRAME_BYTES: u32 = 1 << 20;
/// Bytes of a key.
pub const KEY_BYTES: usize = 32;

/// What the manifest records of an encrypted data object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    /// `xchacha20poly1305-stream-be32`.
    pub cipher: String,
    /// The id of the key in the storage's key ring.
    pub key_id: String,
    /// Plaintext bytes per frame (the last frame is shorter).
    pub frame_bytes: u32,
}

/// One key of a ring: its bytes and where they came from.
struct Key {
    bytes: [u8; KEY_BYTES],
    /// `env VAR` or `file PATH`, for the config view; never the key.
    source: String,
}

impl Drop for Key {
    fn drop(&mut self) {
        self.bytes = [0; KEY_BYTES];
    }
}

/// The keys of one storage. `Debug` shows the ids and sources, never a key.
pub struct KeyRing {
    storage: String,
    current: String,
    keys: BTreeMap<String, Key>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("storage", &self.storage)
            .field("current", &self.current)
            .field("ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KeyRing {
    /// A ring for storage `storage` whose key `current` encrypts; `current`
    /// must be one of `keys` (id, key bytes, source).
    pub fn new(
        storage: &str,
        current: &str,
        keys: Vec<(String, [u8; KEY_BYTES], String)>,
    ) -> Result<KeyRing, String> {
        let mut map = BTreeMap::new();
        for (id, bytes, source) in keys {
            if !is_key_id(&id) {
                return Err(format!(
                    "key id `{id}` is not valid; use A-Z, a-z, 0-9, `.`, `_` and `-` (1 to 64 characters)"
                ));
            }
            map.insert(id, Key { bytes, source });
        }
        if !map.contains_key(current) {
            return Err(format!(
                "the current key `{current}` is not in `encryption.keys` (which has: {}); add it there",
                if map.is_empty() {
                    "none".to_string()
                } else {
                    map.keys().cloned().collect::<Vec<_>>().join(", ")
                }
            ));
        }
        Ok(KeyRing {
            storage: storage.to_string(),
            current: current.to_string(),
            keys: map,
        })
    }

    /// The storage this ring belongs to.
    pub fn storage(&self) -> &str {
        &self.storage
    }

    /// The id of the key that encrypts new objects.
    pub fn current_id(&self) -> &str {
        &self.current
    }

    /// Every key id with where its key comes from.
    pub fn sources(&self) -> impl Iterator<Item = (&str, &str)> {
        self.keys
            .iter()
            .map(|(id, k)| (id.as_str(), k.source.as_str()))
    }

    pub fn has(&self, id: &str) -> bool {
        self.keys.contains_key(id)
    }

    fn key(&self, id: &str) -> Option<&[u8; KEY_BYTES]> {
        self.keys.get(id).map(|k| &k.bytes)
    }
}

/// Why an encrypted object cannot be read (or written).
#[derive(Debug, Clone, thiserror::Error)]
pub enum CryptError {
    #[error(
        "backup {backup} was encrypted with key id `{key_id}`, which storage '{storage}''s key ring does not have; add it to `encryption.keys` of [storage.{storage}]"
    )]
    MissingKey {
        backup: String,
        key_id: String,
        storage: String,
    },
    #[error(
        "backup {backup} is encrypted (key id `{key_id}`), but storage '{storage}' has no key ring; add an `encryption` table with that key to [storage.{storage}]"
    )]
    NoKeyRing {
        backup: String,
        key_id: String,
        storage: String,
    },
    #[error(
        "backup {backup}: key `{key_id}` of storage '{storage}' is not the key the backup was encrypted with (the key check differs); put the original key under that id in `encryption.keys`"
    )]
    WrongKey {
        backup: String,
        key_id: String,
        storage: String,
    },
    #[error(
        "backup {backup}: authentication failed at frame {frame}: the object was altered or cut"
    )]
    Authentication { backup: String, frame: u64 },
    #[error("backup {backup}: {message}")]
    Format { backup: String, message: String },
}

impl CryptError {
    /// The `CryptError` inside an I/O error from an `Opener`, if it is one.
    pub fn find(e: &std::io::Error) -> Option<&CryptError> {
        e.get_ref().and_then(|i| i.downcast_ref::<CryptError>())
    }

    /// The `CryptError` behind `e` (an `RdbError`, a decoder's
    /// `io::Error`), if a decryption failure is what stopped it.
    pub fn cause_in<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a CryptError> {
        let mut cur = Some(e);
        while let Some(err) = cur {
            if let Some(c) = err.downcast_ref::<CryptError>() {
                return Some(c);
            }
            if let Some(c) = err
                .downcast_ref::<std::io::Error>()
                .and_then(CryptError::find)
            {
                return Some(c);
            }
            cur = err.source();
        }
        None
    }
}

/// A key id: `[A-Za-z0-9._-]`, 1 to 64 characters (it is written into every
/// object header with a one-byte length).
pub fn is_key_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

const KEY_FORMS: &str = "a key is 32 bytes, written as 64 hex digits or as base64 (44 characters), or (in a file only) as exactly 32 raw bytes; make one with `openssl rand -hex 32`";

/// A key given as text (an environment variable): 64 hex digits or base64
/// of 32 bytes; surrounding whitespace is ignored.
pub fn parse_key_text(text: &str) -> Result<[u8; KEY_BYTES], String> {
    let t = text.trim();
    if t.len() == 2 * KEY_BYTES && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut out = [0u8; KEY_BYTES];
        hex::decode_to_slice(t, &mut out).map_err(|e| e.to_string())?;
        return Ok(out);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(t)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(t));
    match decoded {
        Ok(b) if b.len() == KEY_BYTES => {
            let mut out = [0u8; KEY_BYTES];
            out.copy_from_slice(&b);
            Ok(out)
        }
        Ok(b) => Err(format!(
            "the key decodes (as base64) to {} bytes; {KEY_FORMS}",
            b.len()
        )),
        Err(_) => Err(format!(
            "the key is {} characters of neither hex nor base64; {KEY_FORMS}",
            t.len()
        )),
    }
}

/// A key file: exactly 32 raw bytes, else text as `parse_key_text` reads.
pub fn parse_key_file(bytes: &[u8]) -> Result<[u8; KEY_BYTES], String> {
    if bytes.len() == KEY_BYTES {
        let mut out = [0u8; KEY_BYTES];
        out.copy_from_slice(bytes);
        return Ok(out);
    }
    match std::str::from_utf8(bytes) {
        Ok(t) => parse_key_text(t),
        Err(_) => Err(format!(
            "the file holds {} bytes of binary; {KEY_FORMS}",
            bytes.len()
        )),
    }
}

#[cfg(test)]
mod tests;
