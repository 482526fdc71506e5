//! Soak: 1,000 back-to-back manual backups, then 100 restores (in place and
//! clones into a second server, alternately), of a small dataset through
//! `redback serve` (release) and its REST API, with the daemon's resident
//! memory, open file descriptors and threads read from `/proc` along the
//! way. A daemon that leaks a descriptor, a thread or a buffer per backup
//! shows it here as a column that grows with the count.
//!
//! The reference is the same daemon's own figures after the first backup
//! (everything warmed up: plugins instantiated, catalog open, pools
//! filled): the table prints each later reading beside it. The run fails
//! if a backup or restore fails, if the restored data differs from the
//! source, or if descriptors or threads at the end exceed the reference by
//! more than a small slack (pools and the allocator may settle a little
//! higher, a leak grows by hundreds); memory is printed, not asserted.
//!
//! Run with `make soak` (builds the plugins and the release binary), or
//! `cargo bench -p redback --bench soak` on a built tree.
//! `REDBACK_SOAK_BACKUPS` and `REDBACK_SOAK_RESTORES` change the counts
//! (default 1,000 and 100), `REDBACK_SOAK_KEYS` the dataset (default 2,000
//! keys of five types).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use support::{Daemon, cpu_time, env_or, free_port, mib, open_fds, request, rss, threads};

const TOKEN: &str = "soak-bench-token-0123456789abcdef";
/// Descriptors or threads the end may hold beyond the reference.
const SLACK: u64 = 16;

/// A redis-server on loopback in its own folder, killed on drop.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start(dir: &Path) -> Redis {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            // Redis waits 5 s by default before a diskless sync, for more
            // replicas to join; a soak of back-to-back backups would
            // measure that wait.
            .args(["--repl-diskless-sync-delay", "0"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/setup.sh installs it)");
        let r = Redis { child, port };
        let started = Instant::now();
        while r.command(&["PING"]).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        r
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Sends `commands` pipelined; returns the raw replies (one per
    /// command, each read whole).
    fn pipeline(&self, commands: &[Vec<String>]) -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut out = Vec::new();
        for c in commands {
            out.extend_from_slice(format!("*{}\r\n", c.len()).as_bytes());
            for a in c {
                out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
            }
        }
        s.write_all(&out)?;
        s.write_all(b"*1\r\n$4\r\nQUIT\r\n")?;
        let mut replies = Vec::new();
        s.read_to_end(&mut replies)?;
        Ok(replies)
    }

    /// One command; its reply as text, without the RESP type mark.
    fn command(&self, args: &[&str]) -> std::io::Result<String> {
        let c: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let raw = self.pipeline(&[c])?;
        let text = String::from_utf8_lossy(&raw);
        Ok(text
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches([':', '+'])
            .to_string())
    }

    fn dbsize(&self) -> u64 {
        self.command(&["DBSIZE"]).unwrap().parse().unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `keys` keys of five types, a tenth of them with a TTL of a day.
fn fill(redis: &Redis, keys: usize) {
    let mut commands = Vec::new();
    for i in 0..keys {
        let v = format!("value-{i}-{}", "x".repeat(i % 64));
        let c: Vec<String> = match i % 5 {
            0 => vec!["SET".into(), format!("str:{i}"), v],
            1 => vec![
                "HSET".into(),
                format!("hash:{i}"),
                "f1".into(),
                v,
                "f2".into(),
                i.to_string(),
            ],
            2 => vec![
                "RPUSH".into(),
                format!("list:{i}"),
                v,
                "b".into(),
                "c".into(),
            ],
            3 => vec!["SADD".into(), format!("set:{i}"), v, "m2".into()],
            _ => vec!["ZADD".into(), format!("zset:{i}"), i.to_string(), v],
        };
        let key = c[1].clone();
        commands.push(c);
        if i % 10 == 0 {
            commands.push(vec!["EXPIRE".into(), key, "86400".into()]);
        }
    }
    redis.pipeline(&commands).unwrap();
    assert_eq!(redis.dbsize(), keys as u64);
}

/// One reading of the daemon.
struct Reading {
    label: String,
    rss: u64,
    peak: u64,
    fds: u64,
    threads: u64,
    cpu: Duration,
    wall: Duration,
}

fn read(label: String, pid: i32, since: Instant) -> Reading {
    let (rss, peak) = rss(pid);
    Reading {
        label,
        rss,
        peak,
        fds: open_fds(pid) as u64,
        threads: threads(pid),
        cpu: cpu_time(pid),
        wall: since.elapsed(),
    }
}

/// Posts `body` to `path`, then polls the task it started until it ends;
/// returns the ended task, which must have succeeded.
fn run_task(d: &mut Daemon, path: &str, body: &Value) -> Value {
    let r = request(d.addr, "POST", path, Some(TOKEN), Some(body)).unwrap();
    assert!(
        r.status == 200 || r.status == 202,
        "POST {path}: {} {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    let task = r.json()["task"].as_str().unwrap().to_string();
    let started = Instant::now();
    loop {
        let t = request(d.addr, "GET", &format!("/tasks/{task}"), Some(TOKEN), None)
            .unwrap()
            .json();
        if t["state"] != "running" && t["state"] != "pending" {
            assert_eq!(t["state"], "succeeded", "{t:#}\n{}", d.log_tail(20));
            return t;
        }
        d.check_alive();
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "task {task} never ended: {t:#}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn main() {
    let backups: usize = env_or("REDBACK_SOAK_BACKUPS", 1_000);
    let restores: usize = env_or("REDBACK_SOAK_RESTORES", 100);
    let keys: usize = env_or("REDBACK_SOAK_KEYS", 2_000);
    let (built, plugin_dir) = support::built_daemon("soak");
    let root = tempfile::tempdir().unwrap();
    let bin = root.path().join("redback");
    std::fs::copy(&built, &bin).unwrap();

    let source = Redis::start(&root.path().join("source"));
    let clone_target = Redis::start(&root.path().join("clone"));
    fill(&source, keys);

    // A window twelve hours away: no automatic backup runs during the soak.
    let hour = (SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 3600
        + 12)
        % 24;
    let config = format!(
        "[daemon]\nplugin_dir = {}\nstate_dir = \"state\"\ncatalog = \"catalog.sqlite\"\n\n\
         [storage.local]\nplugin = \"storage-local\"\nroot = \"backups\"\n\n\
         [instance.soak]\naddress = \"{}\"\nstorage = \"local\"\nprovider = \"provider-alibaba\"\n\
         [instance.soak.policy]\nwindow = \"{hour:02}:00-{:02}:00\"\n",
        toml::Value::String(plugin_dir.display().to_string()),
        source.address(),
        (hour + 1) % 24
    );
    let config_path = root.path().join("redback.toml");
    std::fs::write(&config_path, config).unwrap();
    let mut d = Daemon::spawn(&bin, &config_path, TOKEN, root.path().join("daemon.log"));
    d.wait_healthy(Duration::from_secs(120));
    let pid = d.pid();
    let started = Instant::now();

    let mut readings = Vec::new();
    let mut ids = Vec::with_capacity(backups);
    for i in 1..=backups {
        let t = run_task(&mut d, "/instances/soak/backups", &json!({}));
        ids.push(t["backup_id"].as_str().unwrap().to_string());
        if i == 1 || i % (backups / 4).max(1) == 0 {
            readings.push(read(format!("backup {i}"), pid, started));
            eprintln!("{} backups", i);
        }
    }
    let backups_wall = started.elapsed();
    for i in 1..=restores {
        // Spread over the backups made, oldest to newest.
        let id = &ids[(i - 1) * ids.len() / restores.max(1)];
        if i % 2 == 1 {
            run_task(
                &mut d,
                &format!("/backups/{id}/restore"),
                &json!({"mode": "in-place"}),
            );
            assert_eq!(source.dbsize(), keys as u64, "after in-place restore {i}");
        } else {
            clone_target.command(&["FLUSHALL"]).unwrap();
            run_task(
                &mut d,
                &format!("/backups/{id}/restore"),
                &json!({"mode": "clone", "target": clone_target.address()}),
            );
            assert_eq!(clone_target.dbsize(), keys as u64, "after clone {i}");
        }
        if i == 1 || i % (restores / 2).max(1) == 0 {
            readings.push(read(format!("restore {i}"), pid, started));
            eprintln!("{} restores", i);
        }
    }
    let restores_wall = started.elapsed();
    let listed = request(d.addr, "GET", "/instances/soak/backups", Some(TOKEN), None)
        .unwrap()
        .json();
    assert_eq!(
        listed.as_array().map(Vec::len),
        Some(backups),
        "every backup is listed"
    );

    println!();
    println!(
        "soak: {backups} manual backups then {restores} restores (in place and clones into a second \
         server, alternately) of {keys} keys ({} B of RDB) through `redback serve` (release), one \
         storage-local; the reference is the daemon after its first backup",
        stored_rdb_bytes(&mut d, &ids[0])
    );
    println!(
        "{:<12} {:>9} {:>9} {:>9} {:>8} {:>8} {:>9} {:>9}",
        "after", "RSS", "vs ref", "peak RSS", "open fds", "threads", "CPU", "wall"
    );
    let reference = &readings[0];
    for r in &readings {
        println!(
            "{:<12} {:>6.1}MiB {:>+6.1}MiB {:>6.1}MiB {:>8} {:>8} {:>8.1}s {:>8.1}s",
            r.label,
            mib(r.rss),
            mib(r.rss) - mib(reference.rss),
            mib(r.peak),
            r.fds,
            r.threads,
            r.cpu.as_secs_f64(),
            r.wall.as_secs_f64()
        );
    }
    let end = readings.last().unwrap();
    println!(
        "mean wall time per backup {:.1} ms, per restore {:.1} ms; RSS at the end minus the reference \
         {:+.1} MiB over {} tasks",
        backups_wall.as_secs_f64() * 1e3 / backups as f64,
        (restores_wall - backups_wall).as_secs_f64() * 1e3 / restores.max(1) as f64,
        mib(end.rss) - mib(reference.rss),
        backups + restores
    );
    assert!(
        end.fds <= reference.fds + SLACK,
        "open descriptors grew from {} to {}: a leak",
        reference.fds,
        end.fds
    );
    assert!(
        end.threads <= reference.threads + SLACK,
        "threads grew from {} to {}: a leak",
        reference.threads,
        end.threads
    );
}

/// The raw RDB size the backup's manifest records.
fn stored_rdb_bytes(d: &mut Daemon, id: &str) -> u64 {
    let b = request(d.addr, "GET", &format!("/backups/{id}"), Some(TOKEN), None)
        .unwrap()
        .json();
    b["raw_bytes"].as_u64().unwrap_or(0)
}
