//! Snapshot-engine benchmark: backup and restores of a large dataset on a
//! real redis-server, each against a reference measured in the same run.
//!
//! - backup wall time vs `redis-cli --rdb` with the same server settings
//!   (target at most 1.05x), and redback's peak RSS (target at most 64 MiB);
//!   beside it, how long the Redis fork writing the RDB was kept waiting
//!   (for a CPU, or on its pipe) under each reader, from its schedstat;
//! - whole restore vs a fresh redis-server loading the same RDB at start-up
//!   (targets: handoff at most 1.5x, RESTORE pipeline at most 3x);
//! - restore of 100 keys vs streaming and parsing the whole backup (target at
//!   most 1.2x), and the parse rate;
//! - peak RSS of each restore mode (target: 64 MiB plus the largest value).
//!
//! Every redback step runs the release binary as a child process, so the
//! peak RSS is the whole process's (`wait4`). Run with `make bench-snapshot`
//! (or `cargo bench -p redback --bench snapshot`); `REDBACK_BENCH_KEYS` sets
//! the number of string keys (default 3,000,000 of 200 bytes, plus
//! collections: about 1 GB in Redis).

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{env_or, free_port, repo};

struct Server {
    child: std::process::Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Starts redis-server; returns once it has loaded its data.
fn start(dir: &Path, extra: &[&str]) -> (Server, Duration) {
    std::fs::create_dir_all(dir).unwrap();
    let port = free_port();
    let started = Instant::now();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args([
            "--repl-diskless-sync-delay",
            "0",
            "--enable-debug-command",
            "local",
        ])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server { child, port };
    loop {
        // DBSIZE answers only once the data is loaded (LOADING before);
        // `INFO persistence` can say loading:0 before loading has begun.
        if cli(port, &["DBSIZE"]).parse::<u64>().is_ok() {
            return (server, started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs a command to its end; returns wall time and peak RSS in KiB.
fn measure(cmd: &mut Command) -> (Duration, u64, String) {
    let started = Instant::now();
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let out = child.wait_with_output_rusage(pid);
    (started.elapsed(), out.1, out.0)
}

trait WaitRusage {
    fn wait_with_output_rusage(self, pid: i32) -> (String, u64);
}

impl WaitRusage for std::process::Child {
    fn wait_with_output_rusage(mut self, pid: i32) -> (String, u64) {
        use std::io::Read;
        let mut stdout = self.stdout.take().unwrap();
        let mut stderr = self.stderr.take().unwrap();
        let err_thread = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        let err = err_thread.join().unwrap();
        let mut status = 0;
        // SAFETY: wait4 on our own child, with valid out-pointers.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        assert_eq!(r, pid, "wait4");
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "command failed:\n{out}\n{err}"
        );
        drop(self);
        (out, usage.ru_maxrss as u64)
    }
}

fn populate(port: u16, keys: u64) {
    let mut child = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "--pipe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut w = std::io::BufWriter::new(child.stdin.take().unwrap());
    let resp = |w: &mut std::io::BufWriter<_>, args: &[String]| {
        write!(w, "*{}\r\n", args.len()).unwrap();
        for a in args {
            write!(w, "${}\r\n{a}\r\n", a.len()).unwrap();
        }
    };
    // Strings of 200 pseudo-random hex digits: about as compressible as
    // real data, unlike DEBUG POPULATE's padding.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut value = String::with_capacity(200);
    for i in 0..keys {
        value.clear();
        for _ in 0..(200 / 16) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            value.push_str(&format!("{x:016x}"));
        }
        resp(&mut w, &["SET".into(), format!("key:{i}"), value.clone()]);
    }
    // Collections of every type, small and large encodings.
    let n = (keys / 30).max(100);
    for i in 0..n {
        let m = if i % 100 == 0 { 300 } else { 8 };
        let mut h = vec!["HSET".to_string(), format!("hash:{i}")];
        let mut l = vec!["RPUSH".to_string(), format!("list:{i}")];
        let mut s = vec!["SADD".to_string(), format!("set:{i}")];
        let mut z = vec!["ZADD".to_string(), format!("zset:{i}")];
        for j in 0..m {
            h.extend([format!("field{j}"), format!("value-{i}-{j}")]);
            l.push(format!("item-{i}-{j}"));
            s.push(format!("member-{j}"));
            z.extend([format!("{j}.5"), format!("m{j}")]);
        }
        for c in [&h, &l, &s, &z] {
            resp(&mut w, c);
        }
        if i % 10 == 0 {
            resp(
                &mut w,
                &["PEXPIRE".into(), format!("hash:{i}"), "86400000".into()],
            );
        }
    }
    drop(w);
    child.wait().unwrap();
}

/// What the fork a redis-server starts for a transfer did in its life:
/// `waited` is the time it was neither on a CPU nor done, that is waiting
/// for a CPU or blocked on its full pipe to the server (whose relay waits
/// on the reader). It is the delay the reader's side caused, measured
/// directly, so it is not hidden by the machine's drift between runs.
#[derive(Clone, Copy, Default)]
struct ForkTimes {
    life: Duration,
    waited: Duration,
}

/// Polls the fork of server `pid` every 2 ms until stopped.
struct ForkWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<ForkTimes>,
}

impl ForkWatch {
    fn start(pid: u32) -> ForkWatch {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let children = format!("/proc/{pid}/task/{pid}/children");
            // The server may fork more than once (a short-lived child is
            // not the transfer): the longest-lived fork is the one kept.
            let mut fork: Option<(u32, Instant)> = None;
            let mut longest = ForkTimes::default();
            while !stopping.load(Ordering::Relaxed) {
                if fork.is_none() {
                    let list = std::fs::read_to_string(&children).unwrap_or_default();
                    fork = list
                        .split_whitespace()
                        .next()
                        .and_then(|c| c.parse().ok())
                        .map(|c| (c, Instant::now()));
                }
                if let Some((child, seen)) = fork {
                    // schedstat: ns on a CPU, ns runnable but waiting, slices.
                    match std::fs::read_to_string(format!("/proc/{child}/schedstat")) {
                        Ok(stat) => {
                            let on_cpu: u64 = stat
                                .split_whitespace()
                                .next()
                                .and_then(|v| v.parse().ok())
                                .unwrap_or(0);
                            let life = seen.elapsed();
                            if life > longest.life {
                                longest = ForkTimes {
                                    life,
                                    waited: life.saturating_sub(Duration::from_nanos(on_cpu)),
                                };
                            }
                        }
                        Err(_) => fork = None,
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            longest
        });
        ForkWatch { stop, thread }
    }

    fn stop(self) -> ForkTimes {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// Backup rounds, each timing redis-cli and redback, for the medians: on
/// a shared 2-core VM single rounds range over ±5%, so the median needs
/// more than a handful.
const ROUNDS: usize = 11;

/// Peak RSS as `wait4` reports it (KiB), in MiB.
fn kib_to_mib(kib: u64) -> f64 {
    support::mib(kib * 1024)
}

fn main() {
    // `REDBACK_BENCH_ZSTD_LEVEL` (default 1, the instance default).
    let level: i32 = env_or("REDBACK_BENCH_ZSTD_LEVEL", 1);
    let keys: u64 = env_or("REDBACK_BENCH_KEYS", 3_000_000);
    let bin = repo().join("target/release/redback");
    assert!(
        bin.exists(),
        "build first: cargo build --release -p redback"
    );
    let base = repo().join("target/bench-tmp/snapshot");
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();

    let (source, _) = start(&base.join("source"), &[]);
    let t = Instant::now();
    populate(source.port, keys);
    let used = cli(source.port, &["INFO", "memory"]);
    let used = used
        .lines()
        .find_map(|l| l.strip_prefix("used_memory_human:"))
        .unwrap_or("?")
        .to_string();
    let dbsize: u64 = cli(source.port, &["DBSIZE"]).parse().unwrap();
    eprintln!(
        "dataset: {dbsize} keys, {used} in Redis, filled in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let config = base.join("redback.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nplugin_dir = \"{}\"\nstate_dir = \"state\"\n[storage.local]\nplugin = \"storage-local\"\nroot = \"backups\"\n[instance.big]\naddress = \"127.0.0.1:{}\"\nstorage = \"local\"\nzstd_level = {level}\n",
            repo().join("target/plugins").display(),
            source.port
        ),
    )
    .unwrap();
    let c = config.to_str().unwrap();

    // Backup vs redis-cli --rdb (same server, same settings). Each round
    // runs both, taking turns at going first, so neither always inherits
    // the other's disk writeback; the figure is the median of the rounds'
    // ratios, which cancels the machine's drift between rounds.
    let rdb_file = base.join("reference.rdb");
    let mut reference = Vec::new();
    let mut ours = Vec::new();
    let mut ratios = Vec::new();
    let mut fork_waits = Vec::new();
    let mut rss_backup = 0;
    let mut id = String::new();
    for round in 0..ROUNDS {
        let run_reference = || {
            let watch = ForkWatch::start(source.child.id());
            let (d, _, _) = measure(
                Command::new("redis-cli")
                    .args(["-p", &source.port.to_string(), "--rdb"])
                    .arg(&rdb_file),
            );
            (d, watch.stop())
        };
        let mut run_ours = || {
            let watch = ForkWatch::start(source.child.id());
            let (d, rss, out) =
                measure(Command::new(&bin).args(["backup", "--config", c, "--instance", "big"]));
            rss_backup = rss_backup.max(rss);
            id = out.trim().to_string();
            (d, watch.stop())
        };
        let (r, o) = if round % 2 == 0 {
            let r = run_reference();
            (r, run_ours())
        } else {
            let o = run_ours();
            (run_reference(), o)
        };
        let ((r, r_fork), (o, o_fork)) = (r, o);
        reference.push(r);
        ours.push(o);
        ratios.push(o.as_secs_f64() / r.as_secs_f64());
        fork_waits.push((r_fork.waited, o_fork.waited));
        eprintln!(
            "backup round {} ({} first): redis-cli --rdb {:.2} s (fork lived {:.2} s, waited {:.2} s), \
             redback {:.2} s (fork lived {:.2} s, waited {:.2} s), ratio {:.3}",
            round + 1,
            if round % 2 == 0 {
                "redis-cli"
            } else {
                "redback"
            },
            r.as_secs_f64(),
            r_fork.life.as_secs_f64(),
            r_fork.waited.as_secs_f64(),
            o.as_secs_f64(),
            o_fork.life.as_secs_f64(),
            o_fork.waited.as_secs_f64(),
            ratios[round]
        );
    }
    let mut waits_ref: Vec<Duration> = fork_waits.iter().map(|w| w.0).collect();
    let mut waits_ours: Vec<Duration> = fork_waits.iter().map(|w| w.1).collect();
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (backup_ref, backup_ours) = (median(&mut reference), median(&mut ours));
    let (wait_ref, wait_ours) = (median(&mut waits_ref), median(&mut waits_ours));
    ratios.sort_by(f64::total_cmp);
    let backup_ratio = ratios[ratios.len() / 2];
    let rdb_bytes = std::fs::metadata(&rdb_file).unwrap().len();

    // Reference restore: a fresh server loading the RDB at start-up.
    let load_dir = base.join("load");
    std::fs::create_dir_all(&load_dir).unwrap();
    std::fs::copy(&rdb_file, load_dir.join("dump.rdb")).unwrap();
    let (loaded, load_time) = start(&load_dir, &["--dbfilename", "dump.rdb"]);
    let n = cli(loaded.port, &["DBSIZE"]);
    assert_eq!(
        n.parse::<u64>().ok(),
        Some(dbsize),
        "DBSIZE after load: {n}"
    );
    drop(loaded);

    // A restore into a fresh server, given what to restore (`--mode …` or
    // `--keys …`) and the key count the target must then hold.
    let restore_into = |name: &str, what: &[&str], expected: u64| {
        let (target, _) = start(&base.join(name), &[]);
        let address = format!("127.0.0.1:{}", target.port);
        let (d, rss, out) = measure(
            Command::new(&bin)
                .args(["restore", "--config", c, "--backup", &id])
                .args(["--target", &address, "--yes"])
                .args(what),
        );
        let n: u64 = cli(target.port, &["DBSIZE"]).parse().unwrap();
        assert_eq!(n, expected, "{name}: {out}");
        (d, rss)
    };
    let (handoff, rss_handoff) = restore_into("t-handoff", &["--mode", "handoff"], dbsize);
    let (pipeline, rss_pipeline) = restore_into("t-pipeline", &["--mode", "restore"], dbsize);

    // 100 keys vs streaming and parsing the whole backup.
    let (verify, rss_verify, _) =
        measure(Command::new(&bin).args(["verify", "--config", c, "--backup", &id]));
    let list: Vec<String> = (0..100)
        .map(|i| format!("key:{}", i * (keys / 100).max(1)))
        .collect();
    let (keys_time, rss_keys) = restore_into("t-keys", &["--keys", &list.join(";")], 100);

    let s = |d: Duration| d.as_secs_f64();
    println!();
    println!(
        "snapshot benchmark: {dbsize} keys, {used} in Redis, RDB {:.0} MB (v10, Redis 7.0), zstd level {level}",
        rdb_bytes as f64 / 1e6
    );
    println!(
        "{:<44} {:>10} {:>10} {:>7} {:>9}",
        "measure", "redback", "reference", "ratio", "target"
    );
    let row = |name: &str, ours: Duration, reference: Duration, target: &str| {
        println!(
            "{name:<44} {:>9.2}s {:>9.2}s {:>6.2}x {target:>9}",
            s(ours),
            s(reference),
            s(ours) / s(reference)
        );
    };
    println!(
        "{:<44} {:>9.2}s {:>9.2}s {:>6.2}x {:>9}",
        "backup vs redis-cli --rdb (median of rounds)",
        s(backup_ours),
        s(backup_ref),
        backup_ratio,
        "<=1.05x"
    );
    println!(
        "{:<44} {:.3} .. {:.3} over {ROUNDS} rounds",
        "  backup ratio, lowest .. highest round",
        ratios[0],
        ratios[ratios.len() - 1]
    );
    println!(
        "{:<44} {:>9.2}s {:>9.2}s {:>7} {:>9}",
        "  Redis fork kept waiting (median of rounds)",
        s(wait_ours),
        s(wait_ref),
        "",
        ""
    );
    row(
        "whole restore, handoff vs server load",
        handoff,
        load_time,
        "<=1.5x",
    );
    row(
        "whole restore, RESTORE pipeline vs load",
        pipeline,
        load_time,
        "<=3x",
    );
    row(
        "restore 100 keys vs stream+parse all",
        keys_time,
        verify,
        "<=1.2x",
    );
    println!(
        "{:<44} {:>9.0} MB/s (verify: download, sha256, zstd, parse)",
        "parse rate",
        rdb_bytes as f64 / 1e6 / s(verify)
    );
    println!(
        "peak RSS (MiB): backup {:.1} (target 64); handoff {:.1}; RESTORE pipeline {:.1}; keys {:.1}; verify {:.1}",
        kib_to_mib(rss_backup),
        kib_to_mib(rss_handoff),
        kib_to_mib(rss_pipeline),
        kib_to_mib(rss_keys),
        kib_to_mib(rss_verify)
    );
    let _ = std::fs::remove_dir_all(&base);
}
