//! Download links the daemon serves itself, for storages that cannot
//! presign: an expiring token bound to one backup, signed with HMAC-SHA256
//! under a key only the daemon holds.
//!
//! Owns: the token format, minting and checking it, and the signing key's
//! file. Must not: read storage or decide who may ask for a link (the API
//! does both).
//!
//! Token: `<backup id>.<expiry unix secs>.<hex HMAC-SHA256(key, "redback-download\n" + id + "\n" + expiry)>`.
//! Backup ids use `[0-9A-Za-z-]`, so the dots are unambiguous.

use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a token is refused. The API answers each with 403.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the link is malformed; ask for a new download link")]
    Malformed,
    #[error("the link's signature does not match; it was altered or made by another daemon")]
    BadSignature,
    #[error("the link expired; ask for a new download link")]
    Expired,
}

/// The key tokens are signed with.
#[derive(Clone)]
pub struct LinkKey([u8; 32]);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(****)")
    }
}

impl LinkKey {
    /// Reads the key at `path`, creating it (32 random bytes, mode 0600)
    /// the first time, so links survive a restart of the daemon.
    pub fn load_or_create(path: &Path) -> std::io::Result<LinkKey> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    std::io::Error::other(format!(
                        "{} is not a 32-byte key; delete it and the daemon makes a new one (links already handed out stop working)",
                        path.display()
                    ))
                })?;
                Ok(LinkKey(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = random_bytes()?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                write_private(path, &key)?;
                Ok(LinkKey(key))
            }
            Err(e) => Err(e),
        }
    }

    pub fn from_bytes(key: [u8; 32]) -> LinkKey {
        LinkKey(key)
    }

    fn mac(&self, backup_id: &str, expires_unix: i64) -> Hmac<Sha256> {
        let mut m = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        m.update(b"redback-download\n");
        m.update(backup_id.as_bytes());
        m.update(b"\n");
        m.update(expires_unix.to_string().as_bytes());
        m
    }

    /// A token for `backup_id` valid until `expires_unix`.
    pub fn mint(&self, backup_id: &str, expires_unix: i64) -> String {
        let tag = self.mac(backup_id, expires_unix).finalize().into_bytes();
        format!("{backup_id}.{expires_unix}.{}", hex::encode(tag))
    }

    /// The backup id a token grants, if it is genuine and not expired at
    /// `now_unix`. The signature is compared in constant time.
    pub fn check(&self, token: &str, now_unix: i64) -> Result<String, TokenError> {
        let mut parts = token.rsplitn(3, '.');
        let (tag, expires, id) = match (parts.next(), parts.next(), parts.next()) {
            (Some(t), Some(e), Some(i)) if !i.is_empty() => (t, e, i),
            _ => return Err(TokenError::Malformed),
        };
        let expires: i64 = expires.parse().map_err(|_| TokenError::Malformed)?;
        let tag = hex::decode(tag).map_err(|_| TokenError::Malformed)?;
        self.mac(id, expires)
            .verify_slice(&tag)
            .map_err(|_| TokenError::BadSignature)?;
        if now_unix >= expires {
            return Err(TokenError::Expired);
        }
        Ok(id.to_string())
    }
}

/// `n` bytes from the operating system's random source.
pub fn random_bytes<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(b)
}

/// Writes `bytes` to `path` readable by the owner only, atomically.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Compares two secrets in constant time, length included: both are hashed
/// to 32 bytes first, and the digests are compared with `subtle`, whose
/// comparison the optimiser cannot turn into an early exit.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    use sha2::Digest;
    use subtle::ConstantTimeEq;
    Sha256::digest(a).ct_eq(&Sha256::digest(b)).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    #[test]
    fn a_token_opens_its_backup_until_it_expires() {
        let k = LinkKey::from_bytes([7; 32]);
        let t = k.mint("20261121T020000Z-ab12", 1_000);
        assert_eq!(k.check(&t, 999).as_deref(), Ok("20261121T020000Z-ab12"));
        assert_eq!(k.check(&t, 1_000), Err(TokenError::Expired));
    }

    #[test]
    fn altered_or_foreign_tokens_are_refused() {
        let k = LinkKey::from_bytes([7; 32]);
        let t = k.mint("b1", 1_000);
        let other_id = t.replacen("b1", "b2", 1);
        assert_eq!(k.check(&other_id, 0), Err(TokenError::BadSignature));
        let later = t.replacen(".1000.", ".9000.", 1);
        assert_eq!(k.check(&later, 0), Err(TokenError::BadSignature));
        let foreign = LinkKey::from_bytes([8; 32]).mint("b1", 1_000);
        assert_eq!(k.check(&foreign, 0), Err(TokenError::BadSignature));
        for bad in ["", "b1", "b1.1000", "b1.x.00", "b1.1000.zz", ".1000.00"] {
            assert_eq!(k.check(bad, 0), Err(TokenError::Malformed), "{bad}");
        }
    }

    #[test]
    fn the_key_file_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/download.key");
        let a = LinkKey::load_or_create(&path).unwrap();
        let b = LinkKey::load_or_create(&path).unwrap();
        assert_eq!(a.0, b.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, b"short").unwrap();
        assert!(LinkKey::load_or_create(&path).is_err());
    }

    #[test]
    fn secrets_compare_by_content() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"ab"));
        assert!(!same_secret(b"", b"abc"));
        assert!(same_secret(b"", b""));
    }

    const A: &str = "20261121T020000Z-aaaa";
    const B: &str = "20261121T020000Z-bbbb";

    #[test]
    fn a_token_for_backup_a_cannot_fetch_backup_b() {
        let k = LinkKey::from_bytes([7; 32]);
        let t = k.mint(A, 1_000);
        assert_eq!(k.check(&t, 0).as_deref(), Ok(A));
        // The id swapped in the token, or A's signature under B's id.
        let swapped = t.replacen(A, B, 1);
        assert_eq!(k.check(&swapped, 0), Err(TokenError::BadSignature));
        let tag = t.rsplit('.').next().unwrap();
        assert_eq!(
            k.check(&format!("{B}.1000.{tag}"), 0),
            Err(TokenError::BadSignature)
        );
        // Ids with dots cannot shift the fields: `A.1000` as an id is not A.
        let tricky = k.mint(&format!("{A}.1000"), 2_000);
        assert_eq!(k.check(&tricky, 0).as_deref(), Ok(&*format!("{A}.1000")));
    }

    #[test]
    fn an_expired_token_is_refused_even_with_a_valid_signature() {
        let k = LinkKey::from_bytes([7; 32]);
        let t = k.mint(A, 1_000);
        assert_eq!(k.check(&t, 999).as_deref(), Ok(A));
        for now in [1_000, 1_001, i64::MAX] {
            assert_eq!(k.check(&t, now), Err(TokenError::Expired), "{now}");
        }
        // Pushing the expiry without the key breaks the signature.
        let later = t.replacen(".1000.", &format!(".{}.", i64::MAX), 1);
        assert_eq!(k.check(&later, 2_000), Err(TokenError::BadSignature));
    }

    #[test]
    fn a_truncated_or_re_signed_token_is_refused() {
        let k = LinkKey::from_bytes([7; 32]);
        let t = k.mint(A, 1_000);
        // Cut anywhere in the signature: a prefix of the tag never passes.
        for cut in [1, 2, 32, 63] {
            let short = &t[..t.len() - cut];
            assert!(k.check(short, 0).is_err(), "{short}");
        }
        // A one-nibble change, or the tag in upper case hex of another key.
        let mut flipped = t.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(k.check(&flipped, 0), Err(TokenError::BadSignature));
        // Re-signed: the right layout with a MAC under another key, or a
        // bare SHA-256 of the signed text instead of an HMAC.
        let other = LinkKey::from_bytes([8; 32]).mint(A, 1_000);
        assert_eq!(k.check(&other, 0), Err(TokenError::BadSignature));
        let bare = hex::encode(Sha256::digest(format!("redback-download\n{A}\n1000")));
        assert_eq!(
            k.check(&format!("{A}.1000.{bare}"), 0),
            Err(TokenError::BadSignature)
        );
    }
}
