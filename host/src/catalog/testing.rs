//! The one helper the catalog's tests build their data with.

use jiff::Timestamp;

use crate::backup::manifest::{DataObject, MANIFEST_VERSION, Source};
use crate::backup::{Kind, Manifest};
use crate::config::Compression;

/// A time `secs` seconds after the epoch.
pub fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap()
}

/// A manual backup of `instance` started at `started_secs`, nine seconds
/// long, kept for a day. jiff's `to_string` gives the manifest's RFC 3339.
pub fn manifest(instance: &str, id: &str, started_secs: i64) -> Manifest {
    Manifest {
        format: "redback-manifest".into(),
        version: MANIFEST_VERSION,
        id: id.into(),
        instance: instance.into(),
        kind: Kind::Manual,
        name: Some(format!("backup {id}")),
        started_at: at(started_secs).to_string(),
        finished_at: at(started_secs + 9).to_string(),
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
            key: format!("redback/{instance}/{id}/dump.rdb.zst"),
            stored_bytes: 1000 + started_secs as u64,
            raw_bytes: 3000,
            compression: Compression::Zstd { level: 3 },
            sha256: "ab".repeat(32),
            rdb_crc64: "0123456789abcdef".into(),
            encryption: None,
        },
        stats: serde_json::json!({"keys": 1}),
        provider: None,
        retention_until: Some(at(started_secs + 86_400).to_string()),
    }
}

/// The manifest key the storage layout gives `m`.
pub fn manifest_key(m: &Manifest) -> String {
    format!("redback/{}/{}/manifest.json", m.instance, m.id)
}
