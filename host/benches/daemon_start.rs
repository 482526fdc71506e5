//! Daemon start benchmark: the release binary (`redback serve`) on a config
//! of 10,000 instances, against the same daemon with 1 instance (the
//! reference) and 1,000, measured in the same run:
//!
//! - wall time from spawn until `GET /health` answers 200, and until
//!   `GET /instances` has listed every instance;
//! - after 10 s idle: resident memory (VmRSS) and its peak (VmHWM), and the
//!   CPU time (user + system) the idle 10 s cost;
//! - the time one `GET /instances` takes once the daemon runs.
//!
//! The instances are spread over the three provider styles (provider-jd,
//! provider-alibaba, provider-tencent), each with a policy its provider
//! accepts, and all back up to one storage-local storage. Their addresses
//! are loopback addresses nothing listens on, and every backup window is
//! put at least an hour after the run, so the daemon neither needs the
//! Redis servers nor starts a backup while it is measured.
//!
//! A first start (not counted) fills the compiled-plugin cache that every
//! later start reads; then each of 3 rounds starts the daemon once per size
//! (sizes interleaved), each start on a fresh catalog. The table shows
//! medians. Run with `make bench-daemon` (builds the plugins and the release
//! binary), or `cargo bench -p redback --bench daemon_start` on a built
//! tree; `REDBACK_BENCH_INSTANCES` sets the largest size (default 10,000)
//! and `REDBACK_BENCH_IDLE_SECS` the idle period (default 10).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use support::{Daemon, cpu_time, env_or, free_port, get, mib, ms, rss};

const TOKEN: &str = "daemon-start-bench-token-0123456789";
const ROUNDS: usize = 3;
/// One start may take this long before the bench gives up.
const START_LIMIT: Duration = Duration::from_secs(600);
const PROVIDERS: [&str; 3] = ["provider-jd", "provider-alibaba", "provider-tencent"];

/// The config of `n` instances. Windows are one hour long and start 2 to
/// 21 hours after the current UTC hour, so none is open during the run.
fn config(n: usize, plugin_dir: &Path, redis_port: u16) -> String {
    let now_hour = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 3600
        % 24;
    let plugin_dir = toml::Value::String(plugin_dir.display().to_string());
    let mut c = format!(
        "[daemon]\nplugin_dir = {plugin_dir}\nstate_dir = \"state\"\ncatalog = \"catalog.sqlite\"\n\n\
         [storage.local]\nplugin = \"storage-local\"\nroot = \"backups\"\n"
    );
    for i in 0..n {
        let provider = PROVIDERS[i % 3];
        // 127.1.0.1 … 127.1.39.250 for 10,000: loopback, one host each.
        let address = format!("127.1.{}.{}:{redis_port}", i / 250, i % 250 + 1);
        let hour = (now_hour as usize + 2 + i % 20) % 24;
        let minute = (i * 7) % 60;
        let window = format!("{hour:02}:{minute:02}-{:02}:{minute:02}", (hour + 1) % 24);
        c.push_str(&format!(
            "\n[instance.i{i:05}]\naddress = \"{address}\"\nstorage = \"local\"\nprovider = \"{provider}\"\n\
             [instance.i{i:05}.policy]\nwindow = \"{window}\"\n"
        ));
        // What each style lets the operator change besides the window:
        // JD and Alibaba the days (retention fixed at 7), Tencent the
        // retention (every day, fixed).
        match provider {
            "provider-tencent" => c.push_str(&format!("retention_days = {}\n", 3 + i % 28)),
            _ if i % 2 == 0 => c.push_str("weekdays = [\"mon\", \"wed\", \"fri\", \"sun\"]\n"),
            _ => {}
        }
    }
    c
}

/// `GET /instances`; returns how many instances it listed.
fn list_instances(addr: SocketAddr) -> usize {
    let r = get(addr, "/instances", Some(TOKEN)).unwrap();
    assert_eq!(
        r.status,
        200,
        "GET /instances: {}",
        String::from_utf8_lossy(&r.body)
    );
    let list: Vec<serde_json::Value> = serde_json::from_slice(&r.body).unwrap();
    list.len()
}

/// One start of the daemon on the config in `dir`.
struct Sample {
    to_health: Duration,
    to_instances: Duration,
    /// VmRSS when /health first answers, before any /instances.
    health_rss: u64,
    idle_rss: u64,
    peak_rss: u64,
    idle_cpu: Duration,
    list: Duration,
    /// VmRSS after the first and `LISTS` more `GET /instances`.
    lists_rss: u64,
}

/// `GET /instances` timed after the idle period.
const LISTS: usize = 5;

fn start(bin: &Path, dir: &Path, n: usize, idle: Duration) -> Sample {
    for f in ["catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let started = Instant::now();
    let mut daemon = Daemon::spawn(
        bin,
        &dir.join("redback.toml"),
        TOKEN,
        dir.join("daemon.log"),
    );
    daemon.wait_healthy(START_LIMIT);
    let addr = daemon.addr;
    let to_health = started.elapsed();
    let (health_rss, _) = rss(daemon.pid());
    assert_eq!(list_instances(addr), n);
    let to_instances = started.elapsed();

    let cpu_before = cpu_time(daemon.pid());
    std::thread::sleep(idle);
    daemon.check_alive();
    let idle_cpu = cpu_time(daemon.pid()) - cpu_before;
    let (idle_rss, peak_rss) = rss(daemon.pid());

    let mut lists: Vec<Duration> = (0..LISTS)
        .map(|_| {
            let t = Instant::now();
            assert_eq!(list_instances(addr), n);
            t.elapsed()
        })
        .collect();
    lists.sort();
    let (lists_rss, _) = rss(daemon.pid());
    drop(daemon);
    Sample {
        to_health,
        to_instances,
        health_rss,
        idle_rss,
        peak_rss,
        idle_cpu,
        list: lists[lists.len() / 2],
        lists_rss,
    }
}

fn median<T: Ord + Copy>(mut v: Vec<T>) -> T {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let largest: usize = env_or("REDBACK_BENCH_INSTANCES", 10_000);
    let idle = Duration::from_secs(env_or("REDBACK_BENCH_IDLE_SECS", 10));
    let (built, plugin_dir) = support::built_daemon("bench-daemon");
    let root = tempfile::tempdir().unwrap();
    // target/ is shared: a copy keeps every start of this run on the same
    // binary even if someone rebuilds it meanwhile.
    let bin = root.path().join("redback");
    std::fs::copy(&built, &bin).unwrap();
    let sizes: Vec<usize> = [1, 1_000, largest]
        .into_iter()
        .filter(|&n| n <= largest)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    // Free on 127.0.0.1, so no wildcard listener holds it either: nothing
    // answers on it at the instances' 127.1.x.y.
    let redis_port = free_port();
    let dirs: Vec<PathBuf> = sizes
        .iter()
        .map(|&n| {
            let dir = root.path().join(format!("n{n}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("redback.toml"), config(n, &plugin_dir, redis_port)).unwrap();
            // One compiled-plugin cache for all sizes: the state_dirs are
            // links to one folder.
            std::os::unix::fs::symlink(root.path().join("state"), dir.join("state")).unwrap();
            dir
        })
        .collect();
    std::fs::create_dir_all(root.path().join("state")).unwrap();

    // The first start compiles the plugins into the cache; not counted.
    start(&bin, &dirs[0], sizes[0], Duration::ZERO);
    let mut samples: Vec<Vec<Sample>> = sizes.iter().map(|_| Vec::new()).collect();
    for round in 0..ROUNDS {
        for (i, &n) in sizes.iter().enumerate() {
            let s = start(&bin, &dirs[i], n, idle);
            eprintln!(
                "round {}/{ROUNDS}, {n} instances: /health {:.0} ms, /instances {:.0} ms, RSS {:.1} MiB",
                round + 1,
                ms(s.to_health),
                ms(s.to_instances),
                mib(s.idle_rss)
            );
            samples[i].push(s);
        }
    }

    println!();
    println!(
        "daemon start benchmark: `redback serve` (release), N instances over provider-jd/-alibaba/-tencent, \
         one storage-local; median of {ROUNDS} starts each, warm plugin cache"
    );
    println!(
        "{:>6} {:>9} {:>12} {:>9} {:>9} {:>9} {:>9} {:>10} {:>11}",
        "N",
        "/health",
        "/instances",
        "RSS at",
        "idle RSS",
        "peak RSS",
        "idle CPU",
        "GET",
        "RSS after"
    );
    println!(
        "{:>6} {:>9} {:>12} {:>9} {:>9} {:>9} {:>9} {:>10} {:>11}",
        "",
        "answers",
        "lists all N",
        "/health",
        "",
        "",
        format!("over {} s", idle.as_secs()),
        "/instances",
        format!("{} GETs", LISTS + 1)
    );
    let medians: Vec<Sample> = samples
        .iter()
        .map(|s| Sample {
            to_health: median(s.iter().map(|s| s.to_health).collect()),
            to_instances: median(s.iter().map(|s| s.to_instances).collect()),
            health_rss: median(s.iter().map(|s| s.health_rss).collect()),
            idle_rss: median(s.iter().map(|s| s.idle_rss).collect()),
            peak_rss: median(s.iter().map(|s| s.peak_rss).collect()),
            idle_cpu: median(s.iter().map(|s| s.idle_cpu).collect()),
            list: median(s.iter().map(|s| s.list).collect()),
            lists_rss: median(s.iter().map(|s| s.lists_rss).collect()),
        })
        .collect();
    for (n, m) in sizes.iter().zip(&medians) {
        println!(
            "{:>6} {:>7.0}ms {:>10.0}ms {:>6.1}MiB {:>6.1}MiB {:>6.1}MiB {:>7.0}ms {:>8.1}ms {:>8.1}MiB",
            n,
            ms(m.to_health),
            ms(m.to_instances),
            mib(m.health_rss),
            mib(m.idle_rss),
            mib(m.peak_rss),
            ms(m.idle_cpu),
            ms(m.list),
            mib(m.lists_rss)
        );
    }
    let (one, big) = (&medians[0], &medians[medians.len() - 1]);
    let extra = (sizes[sizes.len() - 1] - sizes[0]).max(1) as f64;
    let per = |a: f64, b: f64| (b - a) / extra;
    println!(
        "each instance past the first (N={} against N=1): start to /health {:.1} µs, to /instances {:.1} µs; \
         RSS at /health {:.1} KiB, idle {:.1} KiB; GET /instances {:.1} µs",
        sizes[sizes.len() - 1],
        per(ms(one.to_health), ms(big.to_health)) * 1e3,
        per(ms(one.to_instances), ms(big.to_instances)) * 1e3,
        per(one.health_rss as f64, big.health_rss as f64) / 1024.0,
        per(one.idle_rss as f64, big.idle_rss as f64) / 1024.0,
        per(ms(one.list), ms(big.list)) * 1e3,
    );
    println!(
        "How to read it: N=1 is the reference, the daemon's fixed cost (plugin host, 7 plugins from the \
         cache, catalog, API). Times run from spawn; \"/instances lists all N\" adds the first GET to \
         \"/health answers\". Idle RSS and CPU are taken over the {} s after that first GET, so idle RSS \
         keeps what building its answer left with the allocator; peak RSS is VmHWM at the end of the \
         idle period; \"RSS after\" is VmRSS once {} more GETs have run. CPU time \
         comes in {} ms clock ticks.",
        idle.as_secs(),
        LISTS,
        1000 / support::clock_ticks()
    );
}
