//! Backups: read an RDB from the chosen node as a replica does, and stream
//! it, validated, compressed and checksummed, into a storage; write the
//! manifest last.
//!
//! Owns: the data path (replication reader -> tee -> RDB parser and
//! zstd -> sha256 -> upload), its bounded buffers, and what a failure at any
//! point does (the upload is aborted, no manifest is written). Must not:
//! speak the replication protocol itself (`replication/`) or know how a
//! storage keeps bytes (`storage::Storage`).
//!
//! Invariant: a backup is good if and only if its manifest exists in
//! storage, and the manifest is written only after the data object is
//! complete and the parser accepted the whole RDB and its CRC-64.

mod inspect;
pub mod manifest;
mod source;
pub mod stream;
mod verify;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

pub use inspect::{Inspection, MatchedKey, inspect};
pub use manifest::{Kind, Manifest};
pub use source::{Chosen, choose, endpoint_for};
pub use verify::{Verified, VerifyError, find, verify};

use crate::config::{Compression, InstanceConfig};
use crate::crash_point::{self, CrashPoint};
use crate::pipe::ChannelReader;
use crate::replication::{ReplError, start_sync};
use crate::storage::{MAX_LIST_KEYS, Storage, StorageError};

/// Bytes of the replication stream handed to the parser and the
/// compressor at a time.
const READ_CHUNK: usize = 1 << 20;
/// Chunks in flight to each consumer: with `READ_CHUNK`, a few MiB at most,
/// whatever the size of the RDB.
const CHANNEL_DEPTH: usize = 4;
/// Raw bytes per zstd frame, and per upload piece without compression.
///
/// The compressed object is a sequence of independent zstd frames (any zstd
/// decoder reads it as one stream). Level 1 looks back at most 512 KiB, so
/// 4 MiB frames compress as well as one long stream, and compressing a
/// whole contiguous frame at once is ~30% cheaper in CPU than feeding a
/// streaming encoder: no internal copy, no wrapped-window matching. On a
/// 2-core machine that CPU is taken from the Redis fork writing the RDB.
const FRAME: usize = 4 << 20;

/// What to back up and how to label it.
#[derive(Debug, Clone)]
pub struct Request {
    pub kind: Kind,
    pub name: Option<String>,
}

/// Live counters of a running backup, for progress bars and the task center.
#[derive(Debug, Default)]
pub struct Progress {
    pub raw_bytes: AtomicU64,
    pub stored_bytes: AtomicU64,
}

/// Why a backup failed. Nothing of it counts as a backup: the data upload
/// was aborted and no manifest exists.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}; no backup was kept")]
    Source(#[from] ReplError),
    #[error("{0}; no backup was kept")]
    Storage(#[from] StorageError),
    #[error(
        "instance '{instance}': the RDB from {address} is not valid, so no backup was kept: {message}"
    )]
    InvalidRdb {
        instance: String,
        address: String,
        message: String,
    },
    #[error("instance '{instance}': {message}")]
    Internal { instance: String, message: String },
}

/// A fresh backup id: UTC time plus a random suffix, sortable by time.
pub fn new_backup_id(now: jiff::Timestamp) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(now.as_nanosecond() as u128);
    h.write_u32(std::process::id());
    let t = now.strftime("%Y%m%dT%H%M%SZ");
    format!("{t}-{:04x}", h.finish() & 0xffff)
}

/// The storage prefix of an instance's backups.
pub fn instance_prefix(instance: &InstanceConfig) -> String {
    format!("{}/{}/", instance.prefix, instance.name)
}

fn data_file(c: Compression) -> &'static str {
    match c {
        Compression::Zstd { .. } => "dump.rdb.zst",
        Compression::None => "dump.rdb",
    }
}

/// Turns raw chunks into upload pieces: one zstd frame per `FRAME` raw
/// bytes, or the raw bytes themselves in `FRAME`-sized pieces; with a
/// `sealer`, each piece is then encrypted (in the same thread, so an
/// encrypted backup adds no thread and no queue) and the last frame is
/// sealed at the end.
fn compress(
    mut rx: mpsc::Receiver<Bytes>,
    tx: mpsc::Sender<Vec<u8>>,
    c: Compression,
    mut sealer: Option<crate::crypt::Sealer>,
) -> std::io::Result<()> {
    let mut zstd = match c {
        Compression::Zstd { level } => Some(zstd::bulk::Compressor::new(level)?),
        Compression::None => None,
    };
    let mut frame = Vec::with_capacity(FRAME);
    let mut ship = |frame: &mut Vec<u8>| -> std::io::Result<()> {
        let piece = match zstd.as_mut() {
            Some(z) => {
                let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(frame.len()));
                z.compress_to_buffer(frame.as_slice(), &mut out)?;
                frame.clear();
                out
            }
            None => std::mem::replace(frame, Vec::with_capacity(FRAME)),
        };
        let piece = match sealer.as_mut() {
            Some(s) => {
                let mut sealed = Vec::with_capacity(piece.len() + 256);
                s.seal(&piece, &mut sealed)?;
                sealed
            }
            None => piece,
        };
        send(&tx, piece)
    };
    while let Some(mut chunk) = rx.blocking_recv() {
        while !chunk.is_empty() {
            let n = chunk.len().min(FRAME - frame.len());
            frame.extend_from_slice(&chunk.split_to(n));
            if frame.len() == FRAME {
                ship(&mut frame)?;
            }
        }
    }
    if !frame.is_empty() {
        ship(&mut frame)?;
    }
    if let Some(s) = sealer {
        let mut last = Vec::new();
        s.finish(&mut last)?;
        send(&tx, last)?;
    }
    Ok(())
}

fn send(tx: &mpsc::Sender<Vec<u8>>, piece: Vec<u8>) -> std::io::Result<()> {
    if piece.is_empty() {
        return Ok(());
    }
    tx.blocking_send(piece)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the upload stopped"))
}

/// What the daemon fixes about a backup before it starts: its id (so a
/// crash can be cleaned up after), the provider and the end of retention
/// written into the manifest.
#[derive(Debug, Clone)]
pub struct Stamp {
    pub id: String,
    pub started: jiff::Timestamp,
    pub provider: Option<String>,
    pub retention_until: Option<jiff::Timestamp>,
}

impl Stamp {
    /// A fresh id started now, no provider, no retention.
    pub fn now() -> Stamp {
        let started = jiff::Timestamp::now();
        Stamp {
            id: new_backup_id(started),
            started,
            provider: None,
            retention_until: None,
        }
    }
}

/// The storage keys of backup `id` of `instance`: (data, manifest).
pub fn object_keys(instance: &InstanceConfig, id: &str) -> (String, String) {
    let dir = format!("{}{id}", instance_prefix(instance));
    (
        format!("{dir}/{}", data_file(instance.compression)),
        format!("{dir}/{}", manifest::MANIFEST_FILE),
    )
}

/// Takes one backup of `instance` into `storage`.
pub async fn run(
    instance: &InstanceConfig,
    storage: Arc<dyn Storage>,
    request: &Request,
    progress: Arc<Progress>,
) -> Result<Manifest, BackupError> {
    run_stamped(instance, storage, request, Stamp::now(), progress).await
}

/// Takes one backup of `instance` into `storage`, with the id and labels
/// of `stamp`, on the data runtime (`data_runtime`).
pub async fn run_stamped(
    instance: &InstanceConfig,
    storage: Arc<dyn Storage>,
    request: &Request,
    stamp: Stamp,
    progress: Arc<Progress>,
) -> Result<Manifest, BackupError> {
    let (instance, request) = (instance.clone(), request.clone());
    crate::data_runtime::run(
        async move { take(&instance, storage, &request, stamp, &progress).await },
    )
    .await
}

async fn take(
    instance: &InstanceConfig,
    storage: Arc<dyn Storage>,
    request: &Request,
    stamp: Stamp,
    progress: &Progress,
) -> Result<Manifest, BackupError> {
    let started = stamp.started;
    let id = stamp.id.clone();
    let chosen = choose(instance).await?;
    let (info, mut stream) = start_sync(&chosen.endpoint).await?;
    let (data_key, manifest_key) = object_keys(instance, &id);
    tracing::info!(instance = %instance.name, source = %chosen.endpoint.addr, role = %chosen.role, key = %data_key, "backup started");

    let (parse_tx, parse_rx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let (raw_tx, raw_rx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let (piece_tx, piece_rx) = mpsc::channel::<Vec<u8>>(2);
    let parser =
        tokio::task::spawn_blocking(move || crate::rdb::validate(ChannelReader::new(parse_rx)));
    let compression = instance.compression;
    // The storage's key ring, if it has one, encrypts what is stored.
    let (sealer, encryption) = match storage.key_ring() {
        Some(ring) => {
            let (s, e) = crate::crypt::Sealer::new(&ring).map_err(|e| BackupError::Internal {
                instance: instance.name.clone(),
                message: e.to_string(),
            })?;
            (Some(s), Some(e))
        }
        None => (None, None),
    };
    let compressor =
        tokio::task::spawn_blocking(move || compress(raw_rx, piece_tx, compression, sealer));

    let mut upload = storage.start_upload(&data_key).await?;
    let internal = |message: String| BackupError::Internal {
        instance: instance.name.clone(),
        message,
    };

    // Read and fan out; upload pieces as they come. Both loops run in this
    // task; the bounded channels give backpressure end to end.
    // Each loop owns its channel ends, so a loop that stops early closes
    // them and the threads on the other side finish instead of waiting.
    let reading = async {
        let (parse_tx, raw_tx) = (parse_tx, raw_tx);
        // Fill a whole chunk before handing it on: fewer, larger messages
        // mean fewer thread wake-ups; both consumers share it uncopied.
        let mut chunk = BytesMut::zeroed(READ_CHUNK);
        let mut filled = 0;
        loop {
            let n = stream.read(&mut chunk[filled..]).await?;
            filled += n;
            progress.raw_bytes.fetch_add(n as u64, Ordering::Relaxed);
            // Send a chunk once it is nearly full: asking for the last few
            // bytes would only add reads.
            if READ_CHUNK - filled >= READ_CHUNK / 16 && n > 0 {
                continue;
            }
            if filled > 0 {
                chunk.truncate(filled);
                let full = std::mem::replace(&mut chunk, BytesMut::zeroed(READ_CHUNK)).freeze();
                filled = 0;
                // A consumer that stopped has failed; its own result says why.
                if parse_tx.send(full.clone()).await.is_err() || raw_tx.send(full).await.is_err() {
                    break;
                }
            }
            if n == 0 {
                break;
            }
        }
        drop(parse_tx);
        drop(raw_tx);
        Ok::<u64, BackupError>(stream.delivered())
    };
    let uploading = async {
        let mut piece_rx = piece_rx;
        let mut sha = Sha256::new();
        let mut stored = 0u64;
        while let Some(piece) = piece_rx.recv().await {
            sha.update(&piece);
            upload.write(&piece).await?;
            crash_point::reached(CrashPoint::BackupUploading);
            stored += piece.len() as u64;
            progress
                .stored_bytes
                .fetch_add(piece.len() as u64, Ordering::Relaxed);
        }
        Ok::<(u64, String), BackupError>((stored, hex::encode(sha.finalize())))
    };
    let (read_result, upload_result) = tokio::join!(reading, uploading);
    let compressed = compressor
        .await
        .map_err(|e| internal(format!("the compressor stopped: {e}")));
    let parsed = parser
        .await
        .map_err(|e| internal(format!("the RDB parser stopped: {e}")));

    // Any failure: abort the data upload; no manifest is written.
    let outcome = (|| {
        let raw_bytes = read_result?;
        let (stored_bytes, sha256) = upload_result?;
        compressed?.map_err(|e| internal(format!("compression failed: {e}")))?;
        let stats = parsed?.map_err(|e| BackupError::InvalidRdb {
            instance: instance.name.clone(),
            address: chosen.endpoint.addr.clone(),
            message: e.to_string(),
        })?;
        Ok::<_, BackupError>((raw_bytes, stored_bytes, sha256, stats))
    })();
    let (raw_bytes, stored_bytes, sha256, stats) = match outcome {
        Ok(v) => v,
        Err(e) => {
            if let Err(abort) = upload.abort().await {
                tracing::warn!("aborting the upload of {data_key}: {abort}");
                // `delete` also removes a key's unfinished uploads.
                forget(storage.as_ref(), &[data_key.as_str()]).await;
            }
            return Err(e);
        }
    };
    let resent = upload.resent_chunks();
    let finished = upload.finish().await;
    let checked = match finished {
        Err(e) => Err(BackupError::from(e)),
        Ok(meta) if meta.size_bytes != stored_bytes => Err(internal(format!(
            "storage '{}' says {} bytes were stored, {stored_bytes} were sent, so the backup was not kept",
            storage.name(),
            meta.size_bytes
        ))),
        // Chunks were sent again after transient failures: read the object
        // back rather than trust that the storage took none of a failed one.
        Ok(_) if resent > 0 => read_back(storage.as_ref(), &data_key, stored_bytes, &sha256)
            .await
            .map_err(|m| internal(format!("{m}; the backup was not kept"))),
        Ok(_) => Ok(()),
    };
    if let Err(e) = checked {
        // A finish that failed or timed out may still have made the object
        // visible.
        forget(storage.as_ref(), &[data_key.as_str()]).await;
        return Err(e);
    }
    crash_point::reached(CrashPoint::BackupDataStored);

    let (stats_version, stats_checksum) = (stats.version, stats.checksum);
    let mut stats = serde_json::to_value(&stats).map_err(|e| internal(format!("stats: {e}")))?;
    if encryption.is_some() {
        // Key names would sit in plaintext beside the ciphertext; `inspect`
        // shows the largest keys by decrypting.
        stats["largest_keys"] = serde_json::json!([]);
    }
    let data = manifest::DataObject {
        key: data_key.clone(),
        stored_bytes,
        raw_bytes,
        compression: instance.compression,
        sha256,
        rdb_crc64: format!("{:016x}", stats_checksum),
        encryption,
    };
    let manifest = Manifest {
        format: "redback-manifest".into(),
        version: data.manifest_version(),
        id: id.clone(),
        instance: instance.name.clone(),
        kind: request.kind,
        name: request.name.clone(),
        started_at: started.to_string(),
        finished_at: jiff::Timestamp::now().to_string(),
        source: manifest::Source {
            address: chosen.endpoint.addr.clone(),
            role: chosen.role.clone(),
            redis_version: chosen.redis_version.clone(),
            rdb_version: stats_version,
            replication_id: info.replid.clone(),
            replication_offset: info.offset,
            fallback_reason: chosen.fallback_reason.clone(),
        },
        data,
        stats,
        provider: stamp.provider.clone(),
        retention_until: stamp.retention_until.map(|t| t.to_string()),
    };
    if let Err(e) = put_manifest(storage.as_ref(), &manifest_key, &manifest.to_json()).await {
        forget(
            storage.as_ref(),
            &[manifest_key.as_str(), data_key.as_str()],
        )
        .await;
        return Err(e.into());
    }
    tracing::info!(
        instance = %instance.name,
        id = %id,
        raw_bytes,
        stored_bytes,
        "backup complete"
    );
    Ok(manifest)
}

/// Times the manifest upload is tried in all when it fails transiently:
/// it is small and written whole, so writing it again is safe, and the
/// retry layer under `storage` already retried each of its calls but
/// `finish`.
const MANIFEST_ATTEMPTS: u32 = 3;

/// Uploads the manifest whole, again after a transient failure.
async fn put_manifest(storage: &dyn Storage, key: &str, json: &[u8]) -> Result<(), StorageError> {
    let mut attempt = 1;
    loop {
        let written = async {
            let mut up = storage.start_upload(key).await?;
            up.write(json).await?;
            up.finish().await
        }
        .await;
        match written {
            Ok(_) => return Ok(()),
            Err(e) if e.is_transient() && attempt < MANIFEST_ATTEMPTS => {
                tracing::warn!(key, attempt, "writing the manifest again: {e}");
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Deletes what a failed backup may have left; a failure is logged (crash
/// recovery and the sweeps delete such keys again later).
async fn forget(storage: &dyn Storage, keys: &[&str]) {
    for key in keys {
        if let Err(e) = storage.delete(key).await {
            tracing::warn!(key, "cannot delete what a failed backup left: {e}");
        }
    }
}

/// Reads `key` back whole and compares its size and sha256 with what was
/// sent.
async fn read_back(
    storage: &dyn Storage,
    key: &str,
    sent_bytes: u64,
    sent_sha256: &str,
) -> Result<(), String> {
    let (n, stored) = stream::read_hashed(storage, key, None)
        .await
        .map_err(|e| format!("cannot read the stored object back: {e}"))?;
    if n != sent_bytes || stored != sent_sha256 {
        return Err(format!(
            "storage '{}' (plugin '{}') holds {n} bytes with sha256 {stored} after writes were \
             retried, but {sent_bytes} bytes with sha256 {sent_sha256} were sent: the plugin \
             does not honour the contract that a failed `write` takes none of its chunk",
            storage.name(),
            storage.plugin()
        ));
    }
    Ok(())
}

/// Every complete backup of `instance` in `storage`, oldest first. Objects
/// without a manifest (an interrupted backup) are not backups and are not
/// listed.
pub async fn list(
    instance: &InstanceConfig,
    storage: &dyn Storage,
) -> Result<Vec<Manifest>, StorageError> {
    let prefix = instance_prefix(instance);
    let mut cursor: Option<String> = None;
    let mut out = Vec::new();
    loop {
        let page = storage
            .list(&prefix, cursor.as_deref(), MAX_LIST_KEYS)
            .await?;
        for o in &page.objects {
            if !o.key.ends_with(&format!("/{}", manifest::MANIFEST_FILE)) {
                continue;
            }
            let bytes = read_all(storage, &o.key, 1 << 20).await?;
            match Manifest::from_json(&bytes) {
                Ok(m) => out.push(m),
                Err(e) => tracing::warn!(key = %o.key, "skipping an unreadable manifest: {e}"),
            }
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    out.sort_by(|a, b| a.started_at.cmp(&b.started_at).then(a.id.cmp(&b.id)));
    Ok(out)
}

/// Reads a small object whole, refusing one larger than `limit` bytes.
pub async fn read_all(
    storage: &dyn Storage,
    key: &str,
    limit: usize,
) -> Result<Vec<u8>, StorageError> {
    let mut d = storage.open_download(key, 0, None).await?;
    let mut out = Vec::new();
    loop {
        let b = d.read(1 << 20).await?;
        if b.is_empty() {
            return Ok(out);
        }
        out.extend_from_slice(&b);
        if out.len() > limit {
            return Err(StorageError {
                storage: storage.name().into(),
                plugin: storage.plugin().into(),
                kind: crate::storage::ErrorKind::Other,
                message: format!("{key} is larger than {limit} bytes"),
            });
        }
    }
}
