//! The backup manifest: versioned JSON written last, so that a backup is
//! good if and only if its manifest exists in storage.

use serde::{Deserialize, Serialize};

use crate::config::Compression;

/// The newest manifest format this redback reads and writes. Version 2
/// adds `data.encryption`; a backup that is not encrypted is still written
/// as version 1, which redback before encryption at rest reads, while an
/// encrypted one is version 2, which such a redback refuses ("upgrade")
/// instead of taking ciphertext for an RDB.
pub const MANIFEST_VERSION: u32 = 2;
pub const MANIFEST_FILE: &str = "manifest.json";

/// Whether a person or the schedule started the backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Automatic,
    Manual,
}

/// Where the RDB came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// `host:port` the RDB was read from.
    pub address: String,
    /// `master` or `replica`.
    pub role: String,
    pub redis_version: String,
    pub rdb_version: u32,
    pub replication_id: Option<String>,
    pub replication_offset: Option<i64>,
    /// Why a replica was wanted but the master was used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
}

/// The stored RDB object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataObject {
    pub key: String,
    /// Bytes in storage (compressed).
    pub stored_bytes: u64,
    /// Bytes of the RDB itself.
    pub raw_bytes: u64,
    pub compression: Compression,
    /// sha256 of the stored bytes, lowercase hex.
    pub sha256: String,
    /// The RDB's own trailing CRC-64 (0 when the server wrote none).
    pub rdb_crc64: String,
    /// How the stored bytes are encrypted (after compression); absent for
    /// a plaintext object. `sha256` and `stored_bytes` are of the
    /// ciphertext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<crate::crypt::Encryption>,
}

impl DataObject {
    /// The manifest version a backup with this data object is written as.
    pub fn manifest_version(&self) -> u32 {
        if self.encryption.is_some() { 2 } else { 1 }
    }
}

/// A complete backup's description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always `redback-manifest`.
    pub format: String,
    pub version: u32,
    pub id: String,
    pub instance: String,
    pub kind: Kind,
    /// The name (JD style) or remark (Tencent style) of a manual backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub finished_at: String,
    pub source: Source,
    pub data: DataObject,
    /// What the RDB holds (keys per db, per type, biggest keys, aux fields).
    pub stats: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_until: Option<String>,
}

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("not a redback manifest: {0}")]
    Malformed(String),
    #[error(
        "manifest version {found} is newer than this redback reads ({MANIFEST_VERSION}); upgrade redback"
    )]
    TooNew { found: u32 },
}

impl Manifest {
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("a manifest always serializes");
        v.push(b'\n');
        v
    }

    /// Parses a manifest of this or an older version.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        #[derive(Deserialize)]
        struct Head {
            format: String,
            version: u32,
        }
        let head: Head =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Malformed(e.to_string()))?;
        if head.format != "redback-manifest" {
            return Err(ManifestError::Malformed(format!(
                "format is `{}`",
                head.format
            )));
        }
        if head.version > MANIFEST_VERSION {
            return Err(ManifestError::TooNew {
                found: head.version,
            });
        }
        serde_json::from_slice(bytes).map_err(|e| ManifestError::Malformed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `manifest` fuzz target in CI: a number in the free-form
    /// stats (1.99999999999e+51) read back as 1.9999999999900002e+51 once
    /// written again, so a manifest rewritten by `catalog cleanup` would
    /// not have said what the original said. serde_json's
    /// `float_roundtrip` parses numbers exactly.
    #[test]
    fn a_float_in_the_stats_reads_back_the_same_once_written() {
        let input = include_bytes!(
            "../../../fuzz/regressions/manifest/a-float-in-the-stats-changed-when-written-back"
        );
        let m = Manifest::from_json(input).unwrap();
        let again = Manifest::from_json(&m.to_json()).unwrap();
        assert_eq!(again, m);
    }

    #[test]
    fn round_trip_and_version_checks() {
        let m = Manifest {
            format: "redback-manifest".into(),
            version: MANIFEST_VERSION,
            id: "20261121T100000Z-ab12".into(),
            instance: "orders".into(),
            kind: Kind::Manual,
            name: Some("before migration".into()),
            started_at: "2026-11-21T10:00:00Z".into(),
            finished_at: "2026-11-21T10:00:09Z".into(),
            source: Source {
                address: "127.0.0.1:6380".into(),
                role: "replica".into(),
                redis_version: "7.0.15".into(),
                rdb_version: 10,
                replication_id: Some("abc".into()),
                replication_offset: Some(42),
                fallback_reason: None,
            },
            data: DataObject {
                key: "redback/orders/20261121T100000Z-ab12/dump.rdb.zst".into(),
                stored_bytes: 10,
                raw_bytes: 20,
                compression: Compression::Zstd { level: 3 },
                sha256: "00".repeat(32),
                rdb_crc64: "0123456789abcdef".into(),
                encryption: None,
            },
            stats: serde_json::json!({"keys": 1}),
            provider: None,
            retention_until: None,
        };
        assert_eq!(Manifest::from_json(&m.to_json()).unwrap(), m);
        let newer = String::from_utf8(m.to_json()).unwrap().replace(
            &format!("\"version\": {MANIFEST_VERSION}"),
            "\"version\": 99",
        );
        assert!(matches!(
            Manifest::from_json(newer.as_bytes()),
            Err(ManifestError::TooNew { found: 99 })
        ));
        assert!(Manifest::from_json(b"{\"format\":\"x\",\"version\":1}").is_err());
    }

    /// A version 1 manifest, as redback wrote before encryption at rest,
    /// loads as a plaintext backup; an encrypted one is version 2 and
    /// round-trips its encryption record.
    #[test]
    fn version_1_manifests_still_load_and_encrypted_ones_are_version_2() {
        let v1 = r#"{"format":"redback-manifest","version":1,"id":"20261121T100000Z-ab12",
            "instance":"orders","kind":"automatic","started_at":"2026-11-21T10:00:00Z",
            "finished_at":"2026-11-21T10:00:09Z","source":{"address":"127.0.0.1:6380",
            "role":"master","redis_version":"7.0.15","rdb_version":10,"replication_id":null,
            "replication_offset":null},"data":{"key":"redback/orders/x/dump.rdb.zst",
            "stored_bytes":10,"raw_bytes":20,"compression":{"codec":"zstd","level":1},
            "sha256":"00","rdb_crc64":"0000000000000000"},"stats":{"keys":0}}"#;
        let m = Manifest::from_json(v1.as_bytes()).unwrap();
        assert_eq!(m.data.encryption, None);
        assert_eq!(m.data.manifest_version(), 1);
        let mut e = m.clone();
        e.data.encryption = Some(crate::crypt::Encryption {
            cipher: crate::crypt::CIPHER.into(),
            key_id: "k1".into(),
            frame_bytes: crate::crypt::FRAME_BYTES,
        });
        e.version = e.data.manifest_version();
        assert_eq!(e.version, 2);
        assert_eq!(Manifest::from_json(&e.to_json()).unwrap(), e);
    }
}
