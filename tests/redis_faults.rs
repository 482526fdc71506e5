//! Redis faults end to end: the source killed mid-sync, the connection
//! reset (a loopback proxy that aborts with RST), a throttled source, a
//! source that stops sending, and the target killed mid-restore. Each ends
//! with an error that says what happened (and, for a restore, what was
//! already restored); no partial backup counts as good. Kills and resets
//! wait on observed progress, never on sleeps alone.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::redis::RedisServer;
use common::*;
use redback::backup::{self, Kind, Manifest, Progress, Request};
use redback::config::Config;
use redback::plugin::PluginHost;
use redback::replication::Endpoint;
use redback::restore::{self, Options, Scope};
use redback::storage::Storage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to the bytes of one direction.
#[derive(Debug, Clone, Copy)]
enum Pace {
    Free,
    /// Forwards at most this many bytes a second.
    Throttle(u64),
    /// Forwards this many bytes, then aborts the client's connection with
    /// RST (SO_LINGER 0).
    ResetAfter(u64),
    /// Forwards this many bytes, then nothing more, keeping the connection.
    StallAfter(u64),
}

/// A loopback TCP proxy to `upstream`; `down` paces what the server sends,
/// `up` what the client sends. Returns its address.
async fn proxy(upstream: String, down: Pace, up: Pace) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(&upstream).await else {
                continue;
            };
            if matches!(down, Pace::ResetAfter(_)) {
                // Closing then sends RST instead of FIN. Deprecated because
                // a lingering close blocks; a zero linger never does.
                #[allow(deprecated)]
                client.set_linger(Some(Duration::ZERO)).unwrap();
            }
            tokio::spawn(async move {
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                // When either direction ends, both sockets close.
                tokio::select! {
                    _ = pump(sr, cw, down) => {}
                    _ = pump(cr, sw, up) => {}
                }
            });
        }
    });
    addr
}

async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, pace: Pace) {
    let mut buf = vec![0u8; 16 << 10];
    let mut sent = 0u64;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        match pace {
            Pace::ResetAfter(limit) | Pace::StallAfter(limit) if sent + n as u64 >= limit => {
                let k = (limit - sent) as usize;
                let _ = to.write_all(&buf[..k]).await;
                if matches!(pace, Pace::StallAfter(_)) {
                    std::future::pending::<()>().await;
                }
                // Dropping the write half would send FIN first; forgotten,
                // the socket closes with the read half, with RST.
                to.forget();
                return;
            }
            Pace::Throttle(per_sec) => {
                tokio::time::sleep(Duration::from_micros(n as u64 * 1_000_000 / per_sec)).await;
            }
            _ => {}
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        sent += n as u64;
    }
}

/// The storage-local plugin under `dir/backups` and a config whose
/// instance `app` is at `addr`.
struct Rig {
    tmp: tempfile::TempDir,
    config: Config,
    _host: PluginHost,
    storage: Arc<dyn Storage>,
}

impl Rig {
    async fn new(addr: &str, extra: &str) -> Rig {
        let tmp = tempfile::tempdir().unwrap();
        let path = app_config(tmp.path(), &format!("address = \"{addr}\"\n{extra}"));
        let config = Config::load(&path).unwrap();
        let (host, storage) = redback::daemon::Daemon::open_storage(&config, "local")
            .await
            .unwrap();
        Rig {
            tmp,
            config,
            _host: host,
            storage,
        }
    }

    /// Starts a backup of `app` as a task; its progress is shared.
    fn start_backup(
        &self,
    ) -> (
        Arc<Progress>,
        tokio::task::JoinHandle<Result<Manifest, backup::BackupError>>,
    ) {
        let progress = Arc::new(Progress::default());
        let inst = self.config.instance("app").unwrap().clone();
        let storage = self.storage.clone();
        let p = progress.clone();
        let task = tokio::spawn(async move {
            let request = Request {
                kind: Kind::Manual,
                name: None,
            };
            backup::run(&inst, storage, &request, p).await
        });
        (progress, task)
    }

    /// No manifest and no file at all (partial uploads included).
    async fn assert_nothing_kept(&self, what: &str) {
        let inst = self.config.instance("app").unwrap();
        assert!(
            backup::list(inst, self.storage.as_ref())
                .await
                .unwrap()
                .is_empty(),
            "{what}: a manifest was left"
        );
        let files = files_under(&self.tmp.path().join("backups"));
        assert!(files.is_empty(), "{what}: files left behind: {files:?}");
    }
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().is_dir() {
                out.extend(files_under(&e.path()));
            } else {
                out.push(e.path().display().to_string());
            }
        }
    }
    out
}

/// Waits until `f` holds, checking every few milliseconds (for at most a
/// minute, so a broken test fails instead of hanging).
async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..30_000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("never happened: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_killed_in_the_middle_of_the_sync_leaves_no_backup() {
    // 1 ms per key written: the ~2,300 keys take seconds to stream.
    let source = RedisServer::start(&["--rdb-key-save-delay", "1000"]);
    source.fill_mixed();
    let rig = Rig::new(&source.addr(), "").await;
    let (progress, task) = rig.start_backup();
    until("RDB bytes arrive", || {
        progress.raw_bytes.load(Ordering::Relaxed) > 0
    })
    .await;
    drop(source); // SIGKILL
    let e = task.await.unwrap().unwrap_err().to_string();
    assert!(
        e.contains("closed the connection") && e.contains("no backup was kept"),
        "{e}"
    );
    rig.assert_nothing_kept("source killed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_reset_in_the_middle_of_the_sync_leaves_no_backup() {
    let source = RedisServer::start(&[]);
    source.fill_mixed();
    source.fill_noise("noise", 4, 1 << 20);
    let addr = proxy(source.addr(), Pace::ResetAfter(1 << 20), Pace::Free).await;
    let rig = Rig::new(&addr, "").await;
    let (_, task) = rig.start_backup();
    let e = task.await.unwrap().unwrap_err().to_string();
    assert!(
        e.contains("reset") && e.contains("RDB transfer") && e.contains("no backup was kept"),
        "{e}"
    );
    rig.assert_nothing_kept("connection reset").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_stops_sending_times_out_naming_the_setting() {
    let source = RedisServer::start(&[]);
    source.fill_mixed();
    source.fill_noise("noise", 4, 1 << 20);
    let addr = proxy(source.addr(), Pace::StallAfter(1 << 20), Pace::Free).await;
    let rig = Rig::new(&addr, "read_timeout_secs = 1").await;
    let (progress, task) = rig.start_backup();
    let e = task.await.unwrap().unwrap_err().to_string();
    assert!(progress.raw_bytes.load(Ordering::Relaxed) > 0);
    assert!(
        e.contains("no answer within 1 s during the RDB transfer")
            && e.contains("`read_timeout_secs` under [instance.app]")
            && e.contains("no backup was kept"),
        "{e}"
    );
    rig.assert_nothing_kept("source stalled").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_source_still_gives_a_complete_backup() {
    let source = RedisServer::start(&[]);
    source.fill_mixed();
    // A few hundred KB/s: the RDB of ~130 KB takes most of a second.
    let addr = proxy(source.addr(), Pace::Throttle(200_000), Pace::Free).await;
    let rig = Rig::new(&addr, "").await;
    let (_, task) = rig.start_backup();
    let m = task.await.unwrap().unwrap();
    assert!(m.data.raw_bytes > 100_000, "{}", m.data.raw_bytes);
    backup::verify(rig.storage.clone(), &m).await.unwrap();
    let target = RedisServer::start(&[]);
    restore::run(
        rig.storage.clone(),
        &m,
        &Endpoint::new("target", &target.addr()),
        Options {
            scope: Scope::WholeInPlace,
            replace: true,
            best_effort: false,
        },
        Arc::new(restore::Progress::default()),
    )
    .await
    .unwrap();
    assert_eq!(target.digest(), source.digest());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_target_killed_in_the_middle_of_a_restore_says_what_was_restored() {
    let source = RedisServer::start(&[]);
    source.fill_mixed();
    source.fill_noise("noise", 8, 1 << 20);
    let rig = Rig::new(&source.addr(), "").await;
    let (_, task) = rig.start_backup();
    let m = task.await.unwrap().unwrap();
    let in_backup = 2000 + 14 + 300 + 8;

    // The restore reaches the target through a proxy that takes 2 MB/s,
    // so the ~8 MB of values are still on their way when it dies.
    let target = RedisServer::start(&[]);
    let addr = proxy(target.addr(), Pace::Free, Pace::Throttle(2_000_000)).await;
    let progress = Arc::new(restore::Progress::default());
    let p = progress.clone();
    let storage = rig.storage.clone();
    let restoring = tokio::spawn(async move {
        restore::run(
            storage,
            &m,
            &Endpoint::new("target", &addr),
            Options {
                scope: Scope::WholeInPlace,
                replace: true,
                best_effort: false,
            },
            p,
        )
        .await
    });
    until("keys are restored", || {
        progress.keys.load(Ordering::Relaxed) > 0
    })
    .await;
    drop(target); // SIGKILL
    let e = restoring.await.unwrap().unwrap_err();
    let restored = match &e {
        restore::RestoreError::Failed { restored, .. } => *restored,
        other => panic!("not a failed restore: {other}"),
    };
    let text = e.to_string();
    assert!(restored > 0 && restored < in_backup, "{text}");
    assert!(
        text.contains(&format!(
            "{restored} keys of the backup's {in_backup} were restored before that, so the target is partly restored"
        )) && (text.contains("closed the connection") || text.contains("connection failed")),
        "{text}"
    );
}
