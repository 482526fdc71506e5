//! Restores: put a backup back into Redis, whole or only chosen keys, into
//! the instance it came from or a new one.
//!
//! Owns: the restore data path (storage download -> sha256 -> zstd decode ->
//! RDB parser -> pipelined `RESTORE key ttl payload [REPLACE] ABSTTL`), the
//! key filter, the target checks (empty for a clone, engine version), and
//! the report of what was restored. Must not: speak the replication
//! protocol itself (`replication/`), or touch a target before the backup
//! proved intact when a failure would leave it half-restored.

pub mod handoff;
pub mod keys;
pub mod replay;
pub mod spawn;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

pub use keys::{KeyFilter, glob_match};

use crate::backup::{self, Manifest, VerifyError};
use crate::replication::{Connection, Endpoint, ReplError};
use crate::storage::{Storage, StorageError};

/// How the whole job is scoped.
#[derive(Debug, Clone)]
pub enum Scope {
    /// The whole dataset replaces the target's (FLUSHALL first).
    WholeInPlace,
    /// Only keys matching the filter (optionally of one db); other keys of
    /// the target are left alone.
    Keys { filter: KeyFilter, db: Option<u64> },
    /// The whole dataset into a target that must be empty unless `force`.
    CloneInto { force: bool },
}

/// Options of a restore.
#[derive(Debug, Clone)]
pub struct Options {
    pub scope: Scope,
    /// Overwrite keys that exist (`REPLACE`); when false they are kept and
    /// counted as existing.
    pub replace: bool,
    /// Keep going past keys the target refuses, reporting them, instead of
    /// stopping at the first.
    pub best_effort: bool,
}

/// What a restore did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    pub backup: String,
    pub target: String,
    /// `restore-pipeline` (and later `handoff`, `replay`).
    pub mode: String,
    pub keys_in_backup: u64,
    /// Keys that matched the filter (all keys for a whole restore).
    pub keys_found: u64,
    pub keys_restored: u64,
    /// Keys whose TTL had already passed: not restored.
    pub keys_expired: u64,
    /// Keys that existed and were kept (`replace = false`).
    pub keys_existing: u64,
    /// Patterns of a key restore that matched no key.
    pub missing_patterns: Vec<String>,
    /// Keys the target refused (best effort), with its reason.
    pub refused: Vec<(String, String)>,
    pub raw_bytes: u64,
    /// Why the mode differs from the one asked for (a handoff that fell
    /// back to the RESTORE pipeline).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Live counters for progress bars and the task center.
#[derive(Debug, Default)]
pub struct Progress {
    pub raw_bytes: AtomicU64,
    pub keys: AtomicU64,
}

/// Why a restore failed, with what was already restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Target(#[from] ReplError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the backup did not verify, so the target was not touched: {0}")]
    NotVerified(#[from] VerifyError),
    #[error(
        "{target} holds {keys} keys; a clone goes into an empty instance (use --force to restore into it anyway)"
    )]
    TargetNotEmpty { target: String, keys: u64 },
    #[error("restore into {target} stopped after {restored} keys were restored: {message}")]
    Failed {
        target: String,
        restored: u64,
        message: String,
    },
}

/// Longest command batch sent before reading replies.
const PIPELINE_BYTES: usize = 4 << 20;
/// Most replies outstanding.
const PIPELINE_DEPTH: usize = 1024;

/// Sum of `INFO keyspace` key counts.
async fn total_keys(conn: &mut Connection) -> Result<u64, ReplError> {
    let info = conn.info("keyspace").await?;
    Ok(info
        .iter()
        .filter(|(k, _)| k.starts_with("db"))
        .filter_map(|(_, v)| {
            v.split(',')
                .find_map(|p| p.strip_prefix("keys="))
                .and_then(|n| n.parse::<u64>().ok())
        })
        .sum())
}

/// `proto-max-bulk-len` of the target (512 MiB when it will not say).
async fn max_bulk(conn: &mut Connection) -> u64 {
    match conn.raw(&[b"CONFIG", b"GET", b"proto-max-bulk-len"]).await {
        Ok(crate::replication::Reply::Array(Some(items))) => items
            .get(1)
            .and_then(|r| r.text())
            .and_then(|t| t.parse().ok())
            .unwrap_or(512 << 20),
        _ => 512 << 20,
    }
}

/// One key ready to send: a DUMP payload for `RESTORE`, or the plain
/// commands that rebuild it on an older engine.
struct Ready {
    db: u64,
    key: Vec<u8>,
    expire_at_ms: Option<i64>,
    how: Send,
}

enum Send {
    Payload(Vec<u8>),
    Commands(Vec<replay::Command>),
}

impl Ready {
    fn bytes(&self) -> usize {
        self.key.len()
            + match &self.how {
                Send::Payload(p) => p.len(),
                Send::Commands(c) => c.iter().flatten().map(Vec::len).sum(),
            }
    }
}

/// The newest RDB version a server of this `INFO server` can read.
pub fn max_rdb_version(info: &[(String, String)]) -> u32 {
    let get = |k: &str| crate::replication::info_field(info, k);
    let version = |v: &str| -> (u32, u32) {
        let mut p = v.split('.').map(|x| x.parse::<u32>().unwrap_or(0));
        (p.next().unwrap_or(0), p.next().unwrap_or(0))
    };
    if let Some(v) = get("valkey_version") {
        return if version(v).0 >= 9 { 80 } else { 11 };
    }
    match version(get("redis_version").unwrap_or("0")) {
        (8.., _) | (7, 4..) => 12,
        (7, 2..) => 11,
        (7, _) => 10,
        (5 | 6, _) => 9,
        (4, _) => 8,
        (3, _) => 7,
        _ => 6,
    }
}

/// Whether `target` can load backup `m` natively (RESTORE payloads, or an
/// RDB through the handoff); otherwise the restore replays commands.
pub async fn target_reads(m: &Manifest, target: &Endpoint) -> Result<(bool, u32), ReplError> {
    let mut conn = Connection::open(target).await?;
    let info = conn.info("server").await?;
    let max = max_rdb_version(&info);
    Ok((m.source.rdb_version <= max, max))
}

/// Restores backup `manifest` into `target` with the RESTORE pipeline, on
/// the data runtime (`data_runtime`).
pub async fn run(
    storage: Arc<dyn Storage>,
    manifest: &Manifest,
    target: &Endpoint,
    opts: Options,
    progress: Arc<Progress>,
) -> Result<Report, RestoreError> {
    let (manifest, target) = (manifest.clone(), target.clone());
    crate::data_runtime::run(
        async move { pipeline(storage, &manifest, &target, opts, progress).await },
    )
    .await
}

async fn pipeline(
    storage: Arc<dyn Storage>,
    manifest: &Manifest,
    target: &Endpoint,
    opts: Options,
    progress: Arc<Progress>,
) -> Result<Report, RestoreError> {
    // A key the ring does not have stops the restore before the target
    // is touched.
    backup::stream::readable(storage.as_ref(), manifest).map_err(VerifyError::from)?;
    // A key restore holds the chosen keys until the whole backup proved
    // intact, so a damaged backup changes nothing; past HOLD_BYTES it
    // verifies the backup in a first pass instead. Best effort streams.
    let hold = matches!(opts.scope, Scope::Keys { .. }) && !opts.best_effort;
    if let Some(report) = run_pass(
        storage.clone(),
        manifest,
        target,
        opts.clone(),
        progress.clone(),
        hold,
    )
    .await?
    {
        return Ok(report);
    }
    tracing::info!(
        "the chosen keys pass {} MiB: verifying backup {} before restoring them",
        HOLD_BYTES >> 20,
        manifest.id
    );
    backup::verify(storage.clone(), manifest).await?;
    let report = run_pass(storage, manifest, target, opts, progress, false).await?;
    Ok(report.expect("a pass that does not hold always finishes"))
}

/// Most bytes of chosen keys held back before the backup proved intact.
const HOLD_BYTES: usize = 64 << 20;

/// One pass over the backup. With `hold`, nothing is written until the
/// stream ended with a valid RDB and the manifest's sha256; `Ok(None)` when
/// the chosen keys were too big to hold.
async fn run_pass(
    storage: Arc<dyn Storage>,
    manifest: &Manifest,
    target: &Endpoint,
    opts: Options,
    progress: Arc<Progress>,
    hold: bool,
) -> Result<Option<Report>, RestoreError> {
    let mut conn = Connection::open(target).await?;
    let server = conn.info("server").await?;
    let replay = manifest.source.rdb_version > max_rdb_version(&server);
    if replay && !opts.replace {
        return Err(RestoreError::Failed {
            target: target.addr.clone(),
            restored: 0,
            message: "the target runs an older Redis than the backup, so keys are rebuilt with plain commands, \
                      which always replace; drop --no-replace"
                .into(),
        });
    }
    let mut report = Report {
        backup: manifest.id.clone(),
        target: target.addr.clone(),
        mode: if replay { "replay" } else { "restore-pipeline" }.into(),
        ..Report::default()
    };
    if let Scope::CloneInto { force: false } = &opts.scope {
        let keys = total_keys(&mut conn).await?;
        if keys > 0 {
            return Err(RestoreError::TargetNotEmpty {
                target: target.addr.clone(),
                keys,
            });
        }
    }
    match &opts.scope {
        Scope::WholeInPlace => {
            // A whole restore must not leave the target half-written: prove
            // the stored object first, then empty the target.
            backup::verify(storage.clone(), manifest).await?;
            conn.command(&[b"FLUSHALL"]).await?;
        }
        // A clone is a whole restore too: a damaged backup must not leave
        // the new instance (or, forced, the old one) half-filled.
        Scope::CloneInto { .. } => {
            backup::verify(storage.clone(), manifest).await?;
        }
        Scope::Keys { .. } => {}
    }
    let max_bulk = max_bulk(&mut conn).await;
    let now_ms = jiff::Timestamp::now().as_millisecond();

    let (tx, mut rx) = mpsc::channel::<Vec<Ready>>(2);
    let (download, reader) = backup::stream::open(storage.clone(), manifest);
    let rdb_version = manifest.source.rdb_version;
    let scope = opts.scope.clone();
    let parse_progress = progress.clone();
    // The parser thread: selects keys, drops expired ones, builds payloads.
    let parser = tokio::task::spawn_blocking(move || {
        let mut filter = match &scope {
            Scope::Keys { filter, db } => Some((filter.clone(), *db)),
            _ => None,
        };
        let mut counts = (0u64, 0u64, 0u64, 0u64); // in backup, found, expired, raw bytes
        let mut p = crate::rdb::Parser::new(reader).map_err(|e| e.to_string())?;
        let mut batch: Vec<Ready> = Vec::new();
        let mut batch_bytes = 0usize;
        // Only the chosen keys' values are copied out of the stream.
        let mut select = |key_db: u64, key: &[u8]| match filter.as_mut() {
            Some((f, db)) => db.is_none_or(|d| d == key_db) && f.matches(key),
            None => true,
        };
        while let Some(item) = p.next_selecting(&mut select).map_err(|e| e.to_string())? {
            parse_progress
                .raw_bytes
                .store(p.offset(), Ordering::Relaxed);
            let crate::rdb::Item::Key(e) = item else {
                continue;
            };
            counts.0 += 1;
            if !e.selected {
                continue;
            }
            counts.1 += 1;
            if e.expire_at_ms.is_some_and(|t| t <= now_ms) {
                counts.2 += 1;
                continue;
            }
            let how = if replay {
                let value = crate::rdb::decode(&e, rdb_version).map_err(|e| e.to_string())?;
                let r = replay::replay_commands(&e.key, &value, e.expire_at_ms, true, 1000)
                    .map_err(|e| e.to_string())?;
                for n in r.notes {
                    tracing::warn!("replay: {n}");
                }
                Send::Commands(r.commands)
            } else {
                Send::Payload(e.dump_payload(rdb_version))
            };
            let ready = Ready {
                db: e.db,
                key: e.key,
                expire_at_ms: e.expire_at_ms,
                how,
            };
            batch_bytes += ready.bytes();
            batch.push(ready);
            if batch_bytes >= PIPELINE_BYTES || batch.len() >= 256 {
                if tx.blocking_send(std::mem::take(&mut batch)).is_err() {
                    return Err("the writer stopped".into());
                }
                batch_bytes = 0;
            }
        }
        counts.3 = p.offset();
        if !batch.is_empty() && tx.blocking_send(batch).is_err() {
            return Err("the writer stopped".into());
        }
        let missing = filter.map(|(f, _)| f.missing()).unwrap_or_default();
        Ok::<_, String>((counts, missing))
    });

    let failed = |restored: u64, message: String| RestoreError::Failed {
        target: target.addr.clone(),
        restored,
        message,
    };
    // The target went away mid-restore (killed, connection reset): say
    // what was already restored and what that leaves.
    let in_backup = manifest.stats.get("keys").and_then(|k| k.as_u64());
    let lost = |restored: u64, e: ReplError| {
        let of = in_backup
            .map(|m| format!(" of the backup's {m}"))
            .unwrap_or_default();
        failed(
            restored,
            format!(
                "{e}; {restored} keys{of} were restored before that, so the target is partly \
                 restored: restore again once it is back"
            ),
        )
    };
    // Holding: take every batch first, then check the parser and the
    // download before anything reaches the target.
    let mut held: Vec<Vec<Ready>> = Vec::new();
    let mut finished = None;
    let mut tasks = Some((parser, download));
    if hold {
        let (parser, download) = tasks.take().expect("the tasks are taken once");
        let mut held_bytes = 0usize;
        while let Some(batch) = rx.recv().await {
            held_bytes += batch.iter().map(Ready::bytes).sum::<usize>();
            held.push(batch);
            if held_bytes > HOLD_BYTES {
                return Ok(None);
            }
        }
        let parsed = parser
            .await
            .map_err(|e| failed(0, format!("the parser stopped: {e}")))?;
        let downloaded = download
            .await
            .map_err(|e| failed(0, format!("the download stopped: {e}")))?;
        let checked = check_stream(manifest, parsed, downloaded)
            .map_err(|m| failed(0, format!("{m}; the target was not touched")))?;
        finished = Some(checked);
    }
    let mut held = held.into_iter();

    // The writer: pipelined RESTOREs, at most PIPELINE_DEPTH unanswered.
    let mut current_db: Option<u64> = None;
    let mut outstanding: std::collections::VecDeque<Pending> = Default::default();
    let mut write_error: Option<String> = None;
    'batches: while let Some(batch) = if hold { held.next() } else { rx.recv().await } {
        for r in batch {
            if let Send::Payload(p) = &r.how
                && p.len() as u64 > max_bulk
            {
                let key = String::from_utf8_lossy(&r.key).into_owned();
                let why = format!(
                    "its payload of {} bytes is over the target's proto-max-bulk-len of {max_bulk}",
                    p.len()
                );
                if !opts.best_effort {
                    write_error = Some(format!(
                        "key `{key}`: {why}; raise proto-max-bulk-len on the target"
                    ));
                    break 'batches;
                }
                report.refused.push((key, why));
                continue;
            }
            if current_db != Some(r.db) {
                conn.queue(&[b"SELECT", r.db.to_string().as_bytes()]);
                outstanding.push_back(Pending::Select);
                current_db = Some(r.db);
            }
            match &r.how {
                Send::Payload(payload) => {
                    let ttl = r.expire_at_ms.unwrap_or(0).to_string();
                    if opts.replace {
                        conn.queue(&[
                            b"RESTORE",
                            &r.key,
                            ttl.as_bytes(),
                            payload,
                            b"REPLACE",
                            b"ABSTTL",
                        ]);
                    } else {
                        conn.queue(&[b"RESTORE", &r.key, ttl.as_bytes(), payload, b"ABSTTL"]);
                    }
                    outstanding.push_back(Pending::Key(r.key));
                }
                Send::Commands(cmds) => {
                    // Every command but the last only has to succeed; the
                    // last one's reply books the key.
                    for (i, c) in cmds.iter().enumerate() {
                        let args: Vec<&[u8]> = c.iter().map(Vec::as_slice).collect();
                        conn.queue(&args);
                        outstanding.push_back(if i + 1 == cmds.len() {
                            Pending::Key(r.key.clone())
                        } else {
                            Pending::Part(r.key.clone())
                        });
                    }
                }
            }
            if conn.queued_bytes() >= PIPELINE_BYTES || outstanding.len() >= PIPELINE_DEPTH {
                let restored = report.keys_restored;
                conn.flush().await.map_err(|e| lost(restored, e))?;
                while outstanding.len() > PIPELINE_DEPTH / 2 {
                    if let Err(m) =
                        settle(&mut conn, &mut outstanding, &mut report, &opts, &progress)
                            .await
                            .map_err(|e| lost(report.keys_restored, e))?
                    {
                        write_error = Some(m);
                        break 'batches;
                    }
                }
            }
        }
    }
    drop(rx);
    if write_error.is_none() {
        let restored = report.keys_restored;
        conn.flush().await.map_err(|e| lost(restored, e))?;
        while !outstanding.is_empty() {
            if let Err(m) = settle(&mut conn, &mut outstanding, &mut report, &opts, &progress)
                .await
                .map_err(|e| lost(report.keys_restored, e))?
            {
                write_error = Some(m);
                break;
            }
        }
    }
    if let Some(m) = write_error {
        return Err(failed(report.keys_restored, m));
    }
    let checked = match finished {
        Some(c) => c,
        None => {
            let (parser, download) = tasks.take().expect("the tasks are taken once");
            let parsed = parser
                .await
                .map_err(|e| failed(report.keys_restored, format!("the parser stopped: {e}")))?;
            let downloaded = download
                .await
                .map_err(|e| failed(report.keys_restored, format!("the download stopped: {e}")))?;
            check_stream(manifest, parsed, downloaded)
                .map_err(|m| failed(report.keys_restored, m))?
        }
    };
    let ((in_backup, found, expired, raw), missing) = checked;
    report.keys_in_backup = in_backup;
    report.keys_found = found;
    report.keys_expired = expired;
    report.raw_bytes = raw;
    report.missing_patterns = missing;
    progress.raw_bytes.store(raw, Ordering::Relaxed);
    Ok(Some(report))
}

type Counts = ((u64, u64, u64, u64), Vec<String>);

/// The parser's and the download's results, checked against the manifest.
fn check_stream(
    manifest: &Manifest,
    parsed: Result<Counts, String>,
    downloaded: backup::stream::Downloaded,
) -> Result<Counts, String> {
    // An encrypted object's frames authenticate as they are read: its
    // parser's error (authentication failed at frame N) comes first.
    if manifest.data.encryption.is_some()
        && let Err(m) = &parsed
    {
        return Err(format!("the backup's RDB is not valid: {m}"));
    }
    let (bytes, sha) = downloaded.map_err(|e| e.to_string())?;
    if sha != manifest.data.sha256 || bytes != manifest.data.stored_bytes {
        return Err(format!(
            "the stored object does not match the manifest's sha256 ({sha} vs {}): it was altered or damaged",
            manifest.data.sha256
        ));
    }
    parsed.map_err(|m| format!("the backup's RDB is not valid: {m}"))
}

/// What an outstanding reply answers.
enum Pending {
    Select,
    /// A command that builds part of a replayed key.
    Part(Vec<u8>),
    /// The command whose reply books the key.
    Key(Vec<u8>),
}

/// Reads one reply and books it. `Ok(Err(_))` is a key the target refused
/// when the restore is not best effort.
async fn settle(
    conn: &mut Connection,
    outstanding: &mut std::collections::VecDeque<Pending>,
    report: &mut Report,
    opts: &Options,
    progress: &Progress,
) -> Result<Result<(), String>, ReplError> {
    let reply = conn.read_reply().await?;
    let (key, last) = match outstanding.pop_front() {
        None | Some(Pending::Select) => {
            return Ok(match reply {
                crate::replication::Reply::Error(e) => Err(format!("SELECT failed: {e}")),
                _ => Ok(()),
            });
        }
        Some(Pending::Part(k)) => (k, false),
        Some(Pending::Key(k)) => (k, true),
    };
    match reply {
        crate::replication::Reply::Error(e) if e.starts_with("BUSYKEY") && !opts.replace => {
            report.keys_existing += 1;
        }
        crate::replication::Reply::Error(e) => {
            let key = String::from_utf8_lossy(&key).into_owned();
            if !opts.best_effort {
                let hint = if e.contains("payload version") {
                    "; the target runs an older Redis than the backup: use the replay mode"
                } else {
                    ""
                };
                return Ok(Err(format!("the target refused key `{key}`: {e}{hint}")));
            }
            report.refused.push((key, e));
        }
        _ if last => {
            report.keys_restored += 1;
            progress.keys.fetch_add(1, Ordering::Relaxed);
        }
        _ => {}
    }
    Ok(Ok(()))
}
