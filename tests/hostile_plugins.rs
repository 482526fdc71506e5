//! Hostile plugins are stopped with an error naming the plugin and the limit,
//! and the host keeps serving the other plugins (and replaces the stopped
//! instance with a fresh one).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use redback::plugin::PluginHost;
use redback::storage::{ErrorKind, Storage, StorageError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct World {
    host: PluginHost,
    good: Arc<dyn Storage>,
    tmp: tempfile::TempDir,
}

async fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let host = PluginHost::new(None).unwrap();
    let plugin = load(&host, "storage-local");
    let cfg = storage_config("good", "storage-local", &[("root", "good")], tmp.path());
    let good = open(&host, &plugin, &cfg, None).await.unwrap();
    World { host, good, tmp }
}

impl World {
    async fn hostile(&self, behavior: &str, extra: &[(&str, &str)]) -> Arc<dyn Storage> {
        let plugin = load(&self.host, "misbehaving");
        let root = self.tmp.path().join("hostile/root");
        std::fs::create_dir_all(&root).unwrap();
        let mut settings = vec![("root", root.to_str().unwrap()), ("behavior", behavior)];
        settings.extend_from_slice(extra);
        let cfg = storage_config(behavior, "misbehaving", &settings, self.tmp.path());
        open(&self.host, &plugin, &cfg, Some(&tight_limits()))
            .await
            .unwrap()
    }

    /// The `net` behavior: its `stat` fetches `url`, and its storage grants
    /// `allow_hosts` (comma-separated).
    async fn net(&self, url: &str, allow_hosts: &str) -> Arc<dyn Storage> {
        self.hostile("net", &[("url", url), ("allow_hosts", allow_hosts)])
            .await
    }

    /// A `net` plugin granted `allow_hosts` reaches `url` (the fixture
    /// answers `REACHED:<status>`).
    async fn net_reaches(&self, url: &str, allow_hosts: &str) {
        let meta = self.net(url, allow_hosts).await.stat("any").await.unwrap();
        assert_eq!(meta.key, "REACHED:200", "{url} granted {allow_hosts}");
    }

    /// A `net` plugin granted `allow_hosts` is refused `url`: AccessDenied,
    /// with each of `words` in the error.
    async fn net_denied(&self, url: &str, allow_hosts: &str, words: &[&str]) {
        let e = self
            .net(url, allow_hosts)
            .await
            .stat("any")
            .await
            .unwrap_err();
        let text = e.to_string();
        assert_eq!(e.kind, ErrorKind::AccessDenied, "{url}: {text}");
        for w in words {
            assert!(text.contains(w), "{url}: missing `{w}` in: {text}");
        }
    }

    /// The well-behaved plugin still works.
    async fn good_still_works(&self) {
        let key = format!("still/{}", self.good.name());
        put(self.good.as_ref(), &key, b"alive").await.unwrap();
        assert_eq!(get(self.good.as_ref(), &key).await.unwrap(), b"alive");
    }
}

fn assert_stopped(e: &StorageError, behavior: &str, limit_words: &[&str]) {
    let text = e.to_string();
    assert_eq!(e.kind, ErrorKind::LimitExceeded, "{text}");
    assert!(
        text.contains("plugin 'misbehaving'") && text.contains(&format!("storage '{behavior}'")),
        "{text}"
    );
    for w in limit_words {
        assert!(text.contains(w), "missing `{w}` in: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_plugin_is_stopped_by_its_cpu_budget() {
    let w = world().await;
    let spin = w.hostile("spin", &[]).await;
    let started = Instant::now();
    let e = spin.stat("any").await.unwrap_err();
    assert_stopped(
        &e,
        "spin",
        &["`stat`", "CPU budget of 300 ms", "cpu_ms_per_call"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    // A fresh instance replaces the stopped one, and is stopped again.
    let e = spin.stat("again").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::LimitExceeded);
    w.good_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_hog_is_stopped_by_its_memory_limit() {
    let w = world().await;
    let hog = w.hostile("hog", &[]).await;
    let e = hog.stat("any").await.unwrap_err();
    assert_stopped(&e, "hog", &["memory limit of 32 MiB", "memory_mib"]);
    w.good_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_replies_are_refused() {
    let w = world().await;
    let huge = w.hostile("huge", &[]).await;
    let e = huge.list("", None, 100).await.unwrap_err();
    assert_stopped(&e, "huge", &["returned 200000 objects", "at most 100"]);
    let e = huge.stat("any").await.unwrap_err();
    assert_stopped(&e, "huge", &["key of 4194304 bytes", "limit of 1024"]);
    w.good_still_works().await;
}

/// A loopback HTTP server answering 200 to every request; counts connections.
async fn http_server() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (addr, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_http_reaches_only_granted_hosts() {
    let w = world().await;
    let (granted, granted_hits) = http_server().await;
    let (other, other_hits) = http_server().await;

    // A granted host is reachable.
    w.net_reaches(&format!("http://{granted}/"), &granted).await;
    assert_eq!(hits(&granted_hits), 1);

    w.net_denied(
        &format!("http://{other}/"),
        &granted,
        &[
            "plugin 'misbehaving'",
            &format!("{other} is not in the plugin's allow-list"),
        ],
    )
    .await;
    assert_eq!(hits(&other_hits), 0, "the ungranted server was contacted");

    // Same host, another port: not granted either.
    let port = granted.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    let url = format!("http://127.0.0.1:{}/", port.checked_add(1).unwrap_or(1));
    w.net_denied(&url, &granted, &[]).await;
    w.good_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_name_must_not_resolve_to_an_ungranted_loopback_address() {
    let w = world().await;
    let (addr, server_hits) = http_server().await;
    let port = addr.rsplit(':').next().unwrap();
    let url = format!("http://localhost:{port}/");
    w.net_denied(
        &url,
        &format!("localhost:{port}"),
        &["localhost resolves to", "a loopback address"],
    )
    .await;
    assert_eq!(hits(&server_hits), 0);

    w.net_reaches(&url, &format!("localhost:{port},127.0.0.0/8,::1"))
        .await;
}

/// A loopback server answering every request with `302 Location: <to>`;
/// counts connections.
async fn redirect_server(to: String) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let reply = format!(
                "HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    (addr, hits)
}

fn hits(h: &std::sync::atomic::AtomicUsize) -> usize {
    h.load(std::sync::atomic::Ordering::SeqCst)
}

/// A plugin granted a name cannot reach the address behind it by writing
/// the address instead, in any of the spellings resolvers accept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ip_literal_for_a_granted_name_is_refused_in_every_spelling() {
    let w = world().await;
    let (addr, server_hits) = http_server().await;
    let port = addr.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    let grant = format!("localhost:{port}");
    for host in [
        "127.0.0.1".to_string(),
        "2130706433".to_string(),
        "127.1".to_string(),
        "0x7f.0.0.1".to_string(),
        "017700000001".to_string(),
        "[::ffff:127.0.0.1]".to_string(),
        "[::1]".to_string(),
    ] {
        w.net_denied(
            &format!("http://{host}:{port}/"),
            &grant,
            &["is not in the plugin's allow-list"],
        )
        .await;
    }
    // The granted name on another port is refused too.
    let url = format!("http://localhost:{}/", port.wrapping_add(1).max(1));
    w.net_denied(&url, &format!("{grant},127.0.0.0/8"), &[])
        .await;
    assert_eq!(
        hits(&server_hits),
        0,
        "the server behind the name was reached"
    );
    w.good_still_works().await;
}

/// A granted server that redirects to an unlisted host: the follow-up
/// request goes through the allow-list like any other and is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_an_unlisted_host_is_refused() {
    let w = world().await;
    let (unlisted, unlisted_hits) = http_server().await;
    let (granted, granted_hits) = redirect_server(format!("http://{unlisted}/loot")).await;
    let url = format!("http://{granted}/");
    w.net_denied(
        &url,
        &granted,
        &[&format!("{unlisted} is not in the plugin's allow-list")],
    )
    .await;
    assert_eq!(hits(&granted_hits), 1);
    assert_eq!(
        hits(&unlisted_hits),
        0,
        "the redirect reached an unlisted host"
    );

    // The fixture does follow redirects: granted both, it gets the 200.
    w.net_reaches(&url, &format!("{granted},{unlisted}")).await;
    assert_eq!(hits(&unlisted_hits), 1);
    w.good_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_waiting_on_a_silent_server_hits_the_wall_clock_timeout() {
    let w = world().await;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s); // accept and never answer
        }
    });
    let slow = w.net(&format!("http://{addr}/"), &addr).await;
    let started = Instant::now();
    let e = slow.stat("any").await.unwrap_err();
    assert_stopped(
        &e,
        "net",
        &["wall-clock timeout of 3 s", "call_timeout_secs"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "took {:?}",
        started.elapsed()
    );
    w.good_still_works().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_cannot_leave_its_directory() {
    let w = world().await;
    let outside = w.tmp.path().join("hostile");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("escape-target.txt"), "secret outside the root").unwrap();
    let escape = w.hostile("escape", &[]).await;
    let e = escape.stat("any").await.unwrap_err();
    let text = e.to_string();
    assert_eq!(e.kind, ErrorKind::AccessDenied, "{text}");
    assert!(text.contains("plugin 'misbehaving'"), "{text}");
    assert!(
        !Path::new(&outside.join("escaped.txt")).exists(),
        "the plugin created a file outside its root"
    );
    w.good_still_works().await;
}

/// Collects formatted log lines for one test.
#[derive(Clone, Default)]
struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn guest_stdout_and_stderr_reach_the_log_under_the_plugin_name() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let w = world().await;
    let chatty = w.hostile("chatty", &[]).await;
    let e = chatty.stat("k1").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    // The guest's pipes are flushed by a background task: give it a moment.
    for _ in 0..100 {
        let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
        if text.contains("chatty stderr line for k1") && text.contains("chatty stdout line for k1")
        {
            for line in text.lines().filter(|l| l.contains("chatty ")) {
                assert!(line.contains("plugin=misbehaving"), "{line}");
            }
            assert!(
                text.contains("stream=\"stdout\"") || text.contains("stream=stdout"),
                "{text}"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "guest output not in the log: {}",
        String::from_utf8_lossy(&logs.0.lock().unwrap())
    );
}
