//! Reading a stored backup back: the stored bytes checked against the
//! manifest's sha256, decompressed and parsed in one streaming pass.
//! `verify` uses it to prove a backup restorable without touching Redis.

use std::io::Read;
use std::sync::Arc;

use super::{Manifest, read_all};
use crate::config::InstanceConfig;
use crate::storage::{Storage, StorageError};

/// What `verify` found.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Verified {
    pub id: String,
    pub stored_bytes: u64,
    pub raw_bytes: u64,
    pub sha256: String,
    pub rdb_version: u32,
    pub rdb_crc64: String,
    pub keys: u64,
}

/// Why a stored backup is not what its manifest says.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("backup {id}: {message}")]
    Mismatch { id: String, message: String },
    /// Encrypted, and the key is missing or wrong, or the object failed
    /// authentication (altered or cut).
    #[error(transparent)]
    Encryption(#[from] crate::crypt::CryptError),
    #[error("backup {id} not found: no {key} in storage '{storage}'")]
    NotFound {
        id: String,
        key: String,
        storage: String,
    },
}

/// The manifest of backup `id` of `instance`.
pub async fn find(
    instance: &InstanceConfig,
    storage: &dyn Storage,
    id: &str,
) -> Result<Manifest, VerifyError> {
    let key = format!(
        "{}{id}/{}",
        super::instance_prefix(instance),
        super::manifest::MANIFEST_FILE
    );
    if crate::storage::key_problem(&key).is_some() || id.contains('/') {
        return Err(VerifyError::Mismatch {
            id: id.into(),
            message: "is not a backup id".into(),
        });
    }
    let bytes = match read_all(storage, &key, 1 << 20).await {
        Ok(b) => b,
        Err(e) if e.kind == crate::storage::ErrorKind::NotFound => {
            return Err(VerifyError::NotFound {
                id: id.into(),
                key,
                storage: storage.name().into(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    Manifest::from_json(&bytes).map_err(|e| VerifyError::Mismatch {
        id: id.into(),
        message: format!("{key}: {e}"),
    })
}

/// Streams the data object of `m` through sha256, decompression and the
/// RDB parser, and compares everything with the manifest.
pub async fn verify(storage: Arc<dyn Storage>, m: &Manifest) -> Result<Verified, VerifyError> {
    let m = m.clone();
    crate::data_runtime::run(async move { check(storage, &m).await }).await
}

async fn check(storage: Arc<dyn Storage>, m: &Manifest) -> Result<Verified, VerifyError> {
    let mismatch = |message: String| VerifyError::Mismatch {
        id: m.id.clone(),
        message,
    };
    super::stream::readable(storage.as_ref(), m)?;
    let (download, reader) = super::stream::open(storage, m);
    let parser = tokio::task::spawn_blocking(move || {
        let mut counted = Counted {
            inner: reader,
            n: 0,
        };
        let stats = crate::rdb::validate(&mut counted);
        // Drain what the parser left, so the download reads (and hashes) the
        // whole object even when the RDB ended early.
        let _ = std::io::copy(&mut counted, &mut std::io::sink());
        Ok::<_, std::io::Error>((stats, counted.n))
    });
    let downloaded = download.await;
    let parsed = parser
        .await
        .map_err(|e| mismatch(format!("the parser stopped: {e}")))?;
    // An object that failed authentication says so before its sha256 does.
    if let Ok((Err(e), _)) = &parsed
        && let Some(c) = crate::crypt::CryptError::cause_in(e)
    {
        return Err(c.clone().into());
    }
    let (stored, sha256) =
        downloaded.map_err(|e| mismatch(format!("the download stopped: {e}")))??;
    if stored != m.data.stored_bytes {
        return Err(mismatch(format!(
            "the stored object has {stored} bytes, the manifest says {}",
            m.data.stored_bytes
        )));
    }
    if sha256 != m.data.sha256 {
        return Err(mismatch(format!(
            "the stored object's sha256 is {sha256}, the manifest says {}: the object was altered or damaged",
            m.data.sha256
        )));
    }
    let (stats, raw) = parsed.map_err(|e| mismatch(format!("cannot decompress: {e}")))?;
    let stats = stats.map_err(|e| mismatch(e.to_string()))?;
    if raw != m.data.raw_bytes {
        return Err(mismatch(format!(
            "the RDB has {raw} bytes, the manifest says {}",
            m.data.raw_bytes
        )));
    }
    let crc = format!("{:016x}", stats.checksum);
    if crc != m.data.rdb_crc64 {
        return Err(mismatch(format!(
            "the RDB's CRC-64 is {crc}, the manifest says {}",
            m.data.rdb_crc64
        )));
    }
    let recorded_keys = m.stats.get("keys").and_then(|k| k.as_u64());
    if recorded_keys != Some(stats.keys) {
        return Err(mismatch(format!(
            "the RDB holds {} keys, the manifest says {recorded_keys:?}",
            stats.keys
        )));
    }
    let recorded_dbs = m.stats.get("dbs").cloned().unwrap_or_default();
    if serde_json::to_value(&stats.dbs).unwrap_or_default() != recorded_dbs {
        return Err(mismatch("the keys per db differ from the manifest".into()));
    }
    Ok(Verified {
        id: m.id.clone(),
        stored_bytes: stored,
        raw_bytes: raw,
        sha256,
        rdb_version: stats.version,
        rdb_crc64: crc,
        keys: stats.keys,
    })
}

/// Counts the bytes read through it (the decompressed RDB size).
struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}
