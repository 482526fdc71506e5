//! `[daemon] data_priority`: the threads that move a backup's data run at
//! the configured CPU priority, and the rest of the process does not.
//!
//! A source with `repl-diskless-sync-delay 2` keeps the backup waiting for
//! its payload long enough to look at the running `redback backup` in
//! /proc: its data threads (named `redback-data`) and the others.

mod common;

use std::time::{Duration, Instant};

use common::redis::RedisServer;

/// `SCHED_IDLE` and `SCHED_OTHER` as /proc reports a thread's policy.
const SCHED_OTHER: i64 = 0;
const SCHED_IDLE: i64 = 5;

/// One thread of a process: its name, nice value and policy.
#[derive(Debug)]
struct ThreadPriority {
    name: String,
    nice: i64,
    policy: i64,
}

fn threads(pid: u32) -> Vec<ThreadPriority> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        let dir = task.path();
        let (Ok(name), Ok(stat)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("stat")),
        ) else {
            continue;
        };
        // Fields after the command's closing parenthesis start at field 3
        // (state); nice is field 19, policy field 41 (proc(5)).
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse().ok());
        if let (Some(nice), Some(policy)) = (field(19), field(41)) {
            out.push(ThreadPriority {
                name: name.trim().to_string(),
                nice,
                policy,
            });
        }
    }
    out
}

/// Runs a backup with `priority_line` in `[daemon]` and returns the
/// threads of the process seen while its data threads were running.
fn threads_during_backup(source: &RedisServer, priority_line: &str) -> Vec<ThreadPriority> {
    let dir = tempfile::tempdir().unwrap();
    let config = common::app_config(dir.path(), &format!("address = \"{}\"", source.addr()));
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replacen("[daemon]\n", &format!("[daemon]\n{priority_line}\n"), 1),
    )
    .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_redback"))
        .args(["backup", "--config", config.to_str().unwrap()])
        .args(["--instance", "app"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut seen = Vec::new();
    while started.elapsed() < Duration::from_secs(10) {
        let now = threads(child.id());
        if now.iter().any(|t| t.name == "redback-data") {
            seen = now;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!seen.is_empty(), "no redback-data thread was seen");
    seen
}

#[test]
fn data_threads_run_at_the_configured_priority_and_the_others_do_not() {
    let source = RedisServer::start(&[
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "2",
    ]);
    source.fill_noise("k", 1000, 100);
    for (line, policy, nice) in [
        ("", SCHED_IDLE, 0),
        ("data_priority = \"low\"", SCHED_OTHER, 19),
        ("data_priority = \"normal\"", SCHED_OTHER, 0),
    ] {
        let seen = threads_during_backup(&source, line);
        // Threads inherit the nice value this test runs with.
        let inherited = threads(std::process::id()).first().map_or(0, |t| t.nice);
        let nice = if nice == 0 { inherited } else { nice };
        let (data, other): (Vec<_>, Vec<_>) = seen.iter().partition(|t| t.name == "redback-data");
        for t in &data {
            assert_eq!((t.policy, t.nice), (policy, nice), "`{line}`: {t:?}");
        }
        assert!(!other.is_empty());
        for t in &other {
            assert_eq!(
                (t.policy, t.nice),
                (SCHED_OTHER, inherited),
                "`{line}`: {t:?}"
            );
        }
    }
}
