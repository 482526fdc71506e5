//! What the daemon benchmarks share: the repository's paths, free ports, a
//! tiny blocking HTTP/1.1 client (one request per connection), the daemon
//! process killed on drop, and readings of a process from `/proc` (resident
//! memory, CPU time, open file descriptors, threads).
//!
//! Must not hold any benchmark's own logic: each bench keeps what it
//! measures and how it prints it.

#![allow(dead_code)] // Each bench uses its own subset.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The release binary and the plugin directory, checked to exist; `make`
/// names the target that builds them.
pub fn built_daemon(make_target: &str) -> (PathBuf, PathBuf) {
    let repo = repo();
    let plugin_dir = repo.join("target/plugins");
    let built = repo.join("target/release/redback");
    assert!(
        built.exists() && plugin_dir.join("storage-local").exists(),
        "run `make {make_target}`: it builds the plugins ({}) and the release binary ({})",
        plugin_dir.display(),
        built.display()
    );
    (built, plugin_dir)
}

/// A response: status and body.
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}, body not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`); a JSON
/// body if `body` is given.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let content = if body.is_empty() {
        String::new()
    } else {
        format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        )
    };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}{content}Connection: close\r\n\r\n{body}"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let bad = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    if head.contains("transfer-encoding: chunked") {
        return Err(bad("chunked body; this client reads only a sized body"));
    }
    Ok(Response {
        status,
        body: raw[end + 4..].to_vec(),
    })
}

pub fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> std::io::Result<Response> {
    request(addr, "GET", path, token, None)
}

/// The running daemon; dropping it stops it (SIGTERM, then SIGKILL after
/// 30 s), so a panicking bench leaves no process behind.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
    pub addr: SocketAddr,
}

impl Daemon {
    /// Spawns `bin serve --config <config>` on a free loopback port with
    /// the API token `token`, its log in `log`.
    pub fn spawn(bin: &Path, config: &Path, token: &str, log: PathBuf) -> Daemon {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(bin)
            .args(["serve", "--config"])
            .arg(config)
            .args(["--listen", &addr.to_string()])
            .env("REDBACK_API_TOKEN", token)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Daemon { child, log, addr }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits until `GET /health` answers 200, for at most `limit`.
    pub fn wait_healthy(&mut self, limit: Duration) {
        let started = Instant::now();
        loop {
            if let Ok(r) = get(self.addr, "/health", None)
                && r.status == 200
            {
                return;
            }
            self.check_alive();
            assert!(started.elapsed() < limit, "no /health within {limit:?}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Panics with the end of the daemon's log if it has exited.
    pub fn check_alive(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("the daemon exited ({status}):\n{}", self.log_tail(20));
        }
    }

    /// The last `lines` lines of the daemon's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(lines).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // SAFETY: kill(2) on our own child's pid, which we have not reaped.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        eprintln!("the daemon did not stop within 30 s of SIGTERM; killing it");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A numeric field of `/proc/<pid>/status` (the kB ones in bytes).
fn status_field(pid: i32, name: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(name)).unwrap();
    let mut parts = line.split_whitespace().skip(1);
    let value: u64 = parts.next().unwrap().parse().unwrap();
    match parts.next() {
        Some("kB") => value * 1024,
        _ => value,
    }
}

/// VmRSS and VmHWM of `pid`, in bytes.
pub fn rss(pid: i32) -> (u64, u64) {
    (status_field(pid, "VmRSS:"), status_field(pid, "VmHWM:"))
}

/// How many threads `pid` runs.
pub fn threads(pid: i32) -> u64 {
    status_field(pid, "Threads:")
}

/// How many file descriptors `pid` has open.
pub fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// CPU time `pid` has used, user plus system.
pub fn cpu_time(pid: i32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which may hold spaces; utime and
    // stime are fields 14 and 15, so 12 and 13 after it.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|v| v.parse().unwrap())
        .collect();
    Duration::from_secs_f64((f[0] + f[1]) as f64 / clock_ticks() as f64)
}

/// Clock ticks per second of the CPU times in `/proc`.
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as u64 }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}
