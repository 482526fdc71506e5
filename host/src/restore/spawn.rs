//! Clone into a new local redis-server: the verified backup becomes the new
//! server's `dump.rdb`, and the server loads it at start-up (the fastest
//! restore there is) and is left running.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backup::{self, Manifest};
use crate::replication::{Connection, Endpoint};
use crate::storage::Storage;

use super::RestoreError;

/// What to start.
#[derive(Debug, Clone)]
pub struct SpawnOptions {
    /// `redis-server` binary (from PATH when just the name).
    pub redis_server: PathBuf,
    pub port: u16,
    /// The new server's data directory; must not hold a dump.rdb yet.
    pub dir: PathBuf,
    pub bind: String,
}

/// The running clone.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Spawned {
    pub address: String,
    pub dir: PathBuf,
    pub pid_file: PathBuf,
    pub log_file: PathBuf,
    pub keys: u64,
}

fn failed(message: String) -> RestoreError {
    RestoreError::Failed {
        target: "a new redis-server".into(),
        restored: 0,
        message,
    }
}

/// Writes the backup's RDB into `dir/dump.rdb` (checked against the
/// manifest's sha256 before it takes that name) and starts redis-server on it.
pub async fn clone_to_new_server(
    storage: Arc<dyn Storage>,
    m: &Manifest,
    o: &SpawnOptions,
) -> Result<Spawned, RestoreError> {
    std::fs::create_dir_all(&o.dir)
        .map_err(|e| failed(format!("cannot create {}: {e}", o.dir.display())))?;
    let rdb = o.dir.join("dump.rdb");
    if rdb.exists() {
        return Err(failed(format!(
            "{} already exists; clone into an empty directory",
            rdb.display()
        )));
    }
    backup::stream::readable(storage.as_ref(), m)
        .map_err(|e| RestoreError::NotVerified(e.into()))?;
    let partial = o.dir.join("dump.rdb.redback-partial");
    let (download, mut reader) = backup::stream::open(storage, m);
    let path = partial.clone();
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
        let mut f = std::fs::File::create(&path)?;
        let n = std::io::copy(&mut reader, &mut f)?;
        f.sync_all()?;
        Ok(n)
    });
    let (stored, sha) = download
        .await
        .map_err(|e| failed(format!("the download stopped: {e}")))??;
    let written = writer
        .await
        .map_err(|e| failed(format!("the writer stopped: {e}")))?;
    let ok = matches!(written, Ok(n) if n == m.data.raw_bytes)
        && sha == m.data.sha256
        && stored == m.data.stored_bytes;
    if !ok {
        let _ = std::fs::remove_file(&partial);
        if let Err(e) = &written
            && let Some(c) = crate::crypt::CryptError::find(e)
        {
            return Err(failed(format!("{c}; nothing was started")));
        }
        return Err(failed(format!(
            "the backup did not come back intact (sha256 {sha}, manifest {}; {written:?} RDB bytes of {}); nothing was started",
            m.data.sha256, m.data.raw_bytes
        )));
    }
    // The RDB's own CRC is checked by redis-server when it loads.
    std::fs::rename(&partial, &rdb)
        .map_err(|e| failed(format!("cannot name {}: {e}", rdb.display())))?;
    start(o, m).await
}

async fn start(o: &SpawnOptions, m: &Manifest) -> Result<Spawned, RestoreError> {
    let dir = std::path::absolute(&o.dir).unwrap_or_else(|_| o.dir.clone());
    let pid_file = dir.join("redis.pid");
    let log_file = dir.join("redis.log");
    let status = Command::new(&o.redis_server)
        .args(["--port", &o.port.to_string(), "--bind", &o.bind])
        .arg("--dir")
        .arg(&dir)
        .args(["--dbfilename", "dump.rdb", "--daemonize", "yes"])
        .arg("--pidfile")
        .arg(&pid_file)
        .arg("--logfile")
        .arg(&log_file)
        .status()
        .map_err(|e| {
            failed(format!(
                "cannot run {}: {e}; install redis-server or pass --redis-server PATH",
                o.redis_server.display()
            ))
        })?;
    if !status.success() {
        return Err(failed(format!(
            "{} exited with {status}; see {}",
            o.redis_server.display(),
            log_file.display()
        )));
    }
    let address = format!("{}:{}", o.bind, o.port);
    let mut ep = Endpoint::new("clone", &address);
    ep.connect_timeout = Duration::from_secs(2);
    let started = Instant::now();
    loop {
        if started.elapsed() > Duration::from_secs(600) {
            return Err(failed(format!(
                "the new server at {address} did not finish loading in 10 minutes; see {}",
                log_file.display()
            )));
        }
        if let Ok(mut c) = Connection::open(&ep).await {
            // DBSIZE answers only once the data is loaded (LOADING before);
            // `INFO persistence` can say loading:0 before loading has begun.
            if c.command(&[b"DBSIZE"]).await.is_ok() {
                let keys = super::total_keys(&mut c).await?;
                return Ok(Spawned {
                    address,
                    dir,
                    pid_file,
                    log_file,
                    keys,
                });
            }
        } else if !pid_file.exists() && started.elapsed() > Duration::from_secs(5) {
            return Err(failed(format!(
                "the new server did not start (port {} taken, or it refused backup {}'s RDB); see {}",
                o.port,
                m.id,
                log_file.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether `path` names a binary we can run: a path, or a name on PATH.
pub fn find_binary(path: &Path) -> bool {
    if path.components().count() > 1 {
        return path.exists();
    }
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(path).exists()))
}
