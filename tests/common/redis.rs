//! A real redis-server for a test: a free port on loopback, its own temp
//! dir, killed on drop. Driven through `redis-cli`, which is independent of
//! the code under test. With `start_tls` the server listens only on a TLS
//! port, with certificates from `super::tls::Pki`, and `redis-cli` speaks
//! TLS to it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

pub struct RedisServer {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// Password for `redis-cli`, if the server has one.
    pub password: Option<String>,
    /// `redis-cli`'s TLS arguments, for a TLS server.
    cli_tls: Vec<String>,
}

/// How a test server speaks TLS.
pub struct ServerTls<'a> {
    pub pki: &'a super::tls::Pki,
    /// `--tls-auth-clients yes`: clients must show a certificate of the CA.
    pub auth_clients: bool,
    /// `--tls-replication yes`: as a replica, it speaks TLS to its master.
    pub replication: bool,
}

/// The binary of another server version for a compatibility test: the
/// path in the environment variable `var` (`make test` sets it from
/// `scripts/compat-servers.sh <name>`), if that file exists. Otherwise
/// prints that the test skipped, and gives `None`.
pub fn compat_server(var: &str, name: &str) -> Option<String> {
    let path = std::env::var(var)
        .ok()
        .filter(|p| !p.is_empty() && Path::new(p).exists());
    if path.is_none() {
        eprintln!("skipped: set {var} (scripts/compat-servers.sh {name} prints it)");
    }
    path
}

impl RedisServer {
    /// Starts redis-server with the test defaults plus `extra` arguments
    /// (`["--requirepass", "pw"]`, …).
    pub fn start(extra: &[&str]) -> RedisServer {
        // 7.0+ only: older servers refuse the option.
        let mut args = vec!["--enable-debug-command", "local"];
        args.extend_from_slice(extra);
        Self::start_with("redis-server", &args)
    }

    /// Starts the given server binary (another version, for compatibility
    /// tests).
    pub fn start_with(binary: &str, extra: &[&str]) -> RedisServer {
        Self::start_inner(binary, extra, None)
    }

    /// Starts redis-server listening only on a TLS port (`--port 0`).
    pub fn start_tls(tls: &ServerTls, extra: &[&str]) -> RedisServer {
        let mut args = vec!["--enable-debug-command", "local"];
        args.extend_from_slice(extra);
        Self::start_inner("redis-server", &args, Some(tls))
    }

    fn start_inner(binary: &str, extra: &[&str], tls: Option<&ServerTls>) -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
        let path = |p: &Path| p.to_str().unwrap().to_string();
        let cli_tls = match tls {
            None => Vec::new(),
            Some(t) => vec![
                "--tls".into(),
                "--cacert".into(),
                path(&t.pki.ca),
                "--cert".into(),
                path(&t.pki.client_cert),
                "--key".into(),
                path(&t.pki.client_key),
            ],
        };
        let password = extra
            .iter()
            .position(|a| *a == "--requirepass")
            .map(|i| extra[i + 1].to_string());
        for _attempt in 0..5 {
            let port = free_port();
            let port_args = match tls {
                None => vec!["--port".to_string(), port.to_string()],
                Some(t) => vec![
                    "--port".into(),
                    "0".into(),
                    "--tls-port".into(),
                    port.to_string(),
                    "--tls-cert-file".into(),
                    path(&t.pki.server_cert),
                    "--tls-key-file".into(),
                    path(&t.pki.server_key),
                    "--tls-ca-cert-file".into(),
                    path(&t.pki.ca),
                    "--tls-auth-clients".into(),
                    yes_no(t.auth_clients),
                    "--tls-replication".into(),
                    yes_no(t.replication),
                ],
            };
            let mut child = Command::new(binary)
                .args(&port_args)
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args([
                    "--dir",
                    dir.path().to_str().unwrap(),
                    "--repl-diskless-sync-delay",
                    "0",
                ])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {binary}: {e}; run scripts/setup.sh"));
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // port taken between our probe and its bind: try another
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    let server = RedisServer {
                        child,
                        port,
                        dir,
                        password,
                        cli_tls,
                    };
                    server.wait_ready();
                    return server;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("redis-server did not start");
    }

    fn wait_ready(&self) {
        for _ in 0..500 {
            if self.cli(&["PING"]).trim() == "PONG" {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on {} never answered PING", self.port);
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn cli_command(&self) -> Command {
        let mut c = Command::new("redis-cli");
        c.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        c.args(&self.cli_tls);
        if let Some(pw) = &self.password {
            c.args(["--no-auth-warning", "-a", pw]);
        }
        c
    }

    /// Runs one command through redis-cli; returns its raw output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.cli_command().arg("--raw").args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Sends many commands at once (`redis-cli --pipe`), each a list of
    /// binary-safe arguments.
    pub fn pipe(&self, commands: &[Vec<Vec<u8>>]) {
        let mut child = self
            .cli_command()
            .arg("--pipe")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        {
            let stdin = child.stdin.as_mut().unwrap();
            let mut buf = Vec::new();
            for cmd in commands {
                buf.extend_from_slice(format!("*{}\r\n", cmd.len()).as_bytes());
                for a in cmd {
                    buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                    buf.extend_from_slice(a);
                    buf.extend_from_slice(b"\r\n");
                }
            }
            stdin.write_all(&buf).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("errors: 0"), "redis-cli --pipe: {text}");
    }

    pub fn dbsize(&self, db: u32) -> u64 {
        let out = self
            .cli_command()
            .args(["-n", &db.to_string(), "DBSIZE"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("DBSIZE: {:?}", out))
    }

    /// `n` string values of `bytes` bytes each that no compressor shrinks,
    /// as keys `<prefix>:0` … (seeds 1 … n of `noise`).
    pub fn fill_noise(&self, prefix: &str, n: u64, bytes: usize) {
        let commands: Vec<Vec<Vec<u8>>> = (0..n)
            .map(|i| {
                vec![
                    b"SET".to_vec(),
                    format!("{prefix}:{i}").into_bytes(),
                    super::noise(i + 1, bytes),
                ]
            })
            .collect();
        self.pipe(&commands);
    }

    /// The mixed dataset: every type, in small and large encodings, binary keys, TTLs, two dbs.
    pub fn fill_mixed(&self) {
        let mut c: Vec<Vec<Vec<u8>>> = Vec::new();
        let cmd = |parts: &[&[u8]]| parts.iter().map(|p| p.to_vec()).collect::<Vec<_>>();
        for i in 0..2000 {
            c.push(cmd(&[
                b"SET",
                format!("str:{i}").as_bytes(),
                format!("value-{i}").as_bytes(),
            ]));
        }
        c.push(cmd(&[b"SET", b"bin\x00\xff key", b"\x00\x01\xfe\xff"]));
        c.push(cmd(&[b"SET", b"int", b"12345"]));
        c.push(cmd(&[b"SET", b"empty", b""]));
        c.push(cmd(&[b"SET", b"ttl", b"x", b"EX", b"3600"]));
        c.push(cmd(&[b"RPUSH", b"list:small", b"a", b"b", b"c"]));
        c.push(cmd(&[b"SADD", b"set:ints", b"1", b"2", b"3"]));
        c.push(cmd(&[b"SADD", b"set:small", b"x", b"y"]));
        c.push(cmd(&[b"ZADD", b"zset:small", b"1.5", b"a", b"2", b"b"]));
        c.push(cmd(&[b"HSET", b"hash:small", b"f", b"v", b"g", b"w"]));
        let big: Vec<Vec<u8>> = (0..1000)
            .map(|i| format!("member-{i}-{}", "x".repeat(80)).into_bytes())
            .collect();
        let mut list = vec![b"RPUSH".to_vec(), b"list:big".to_vec()];
        list.extend(big.iter().cloned());
        c.push(list);
        let mut set = vec![b"SADD".to_vec(), b"set:big".to_vec()];
        set.extend(big.iter().cloned());
        c.push(set);
        let mut zset = vec![b"ZADD".to_vec(), b"zset:big".to_vec()];
        let mut hash = vec![b"HSET".to_vec(), b"hash:big".to_vec()];
        for (i, m) in big.iter().enumerate() {
            zset.push(format!("{i}.25").into_bytes());
            zset.push(m.clone());
            hash.push(m.clone());
            hash.push(format!("{i}").into_bytes());
        }
        c.push(zset);
        c.push(hash);
        c.push(cmd(&[b"XADD", b"stream", b"1-1", b"f", b"v"]));
        c.push(cmd(&[b"XADD", b"stream", b"2-1", b"f", b"w"]));
        c.push(cmd(&[b"XGROUP", b"CREATE", b"stream", b"g1", b"0"]));
        c.push(cmd(&[
            b"XREADGROUP",
            b"GROUP",
            b"g1",
            b"alice",
            b"COUNT",
            b"1",
            b"STREAMS",
            b"stream",
            b">",
        ]));
        c.push(cmd(&[b"SELECT", b"5"]));
        for i in 0..300 {
            c.push(cmd(&[b"SET", format!("db5:{i}").as_bytes(), b"v"]));
        }
        self.pipe(&c);
    }

    /// `DEBUG DIGEST`: one hash of the whole dataset, keys, values and
    /// expiry times included; equal digests mean equal instances.
    pub fn digest(&self) -> String {
        self.cli(&["DEBUG", "DIGEST"]).trim().to_string()
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn rdb_path(&self) -> PathBuf {
        self.dir.path().join("dump.rdb")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
