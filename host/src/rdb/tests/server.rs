//! A real redis-server for tests: started on a Unix socket in a temp dir
//! (port 0, so tests never race for ports), killed on drop; and a minimal
//! RESP client, because test data has binary keys and `DUMP` replies that a
//! command line cannot carry.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Child,
    dir: tempfile::TempDir,
    sock: PathBuf,
}

impl RedisServer {
    /// Starts `binary` (a redis-server) with `extra` arguments.
    pub fn start_with(binary: &Path, extra: &[&str]) -> RedisServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let sock = dir.path().join("s.sock");
        let mut args: Vec<String> = [
            "--port",
            "0",
            "--unixsocket",
            sock.to_str().unwrap(),
            "--dir",
            dir.path().to_str().unwrap(),
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new(binary)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e} (scripts/setup.sh installs redis-server)",
                    binary.display()
                )
            });
        let server = RedisServer { child, dir, sock };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = server.try_client()
                && c.cmd(&[b"PING"]) == Resp::Simple(b"PONG".to_vec())
            {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not come up within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Debian's redis-server 7.0, with DEBUG allowed (for quicklist plain
    /// nodes).
    pub fn start() -> RedisServer {
        RedisServer::start_with(
            Path::new("redis-server"),
            &["--enable-debug-command", "local"],
        )
    }

    fn try_client(&self) -> std::io::Result<Client> {
        let s = UnixStream::connect(&self.sock)?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        Ok(Client {
            r: BufReader::new(s.try_clone()?),
            w: s,
        })
    }

    pub fn client(&self) -> Client {
        self.try_client().expect("connect to redis-server")
    }

    /// `SAVE`s and returns the bytes of dump.rdb.
    pub fn save(&self) -> Vec<u8> {
        let mut c = self.client();
        assert_eq!(c.cmd(&[b"SAVE"]), Resp::Simple(b"OK".to_vec()));
        std::fs::read(self.dir.path().join("dump.rdb")).expect("read dump.rdb")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Resp {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Resp>>),
}

pub struct Client {
    r: BufReader<UnixStream>,
    w: UnixStream,
}

impl Client {
    pub fn cmd(&mut self, args: &[&[u8]]) -> Resp {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.w.write_all(&out).expect("write to redis");
        self.read()
    }

    /// Runs a command that must not fail.
    pub fn ok(&mut self, args: &[&[u8]]) -> Resp {
        let r = self.cmd(args);
        if let Resp::Error(e) = &r {
            let shown: Vec<String> = args
                .iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            panic!("{shown:?} failed: {}", String::from_utf8_lossy(e));
        }
        r
    }

    /// Like `ok`, with text arguments.
    pub fn run(&mut self, args: &[&str]) -> Resp {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.ok(&args)
    }

    fn line(&mut self) -> Vec<u8> {
        let mut l = Vec::new();
        self.r.read_until(b'\n', &mut l).expect("read from redis");
        assert!(l.ends_with(b"\r\n"), "bad RESP line {l:?}");
        l.truncate(l.len() - 2);
        l
    }

    fn read(&mut self) -> Resp {
        let l = self.line();
        let rest = &l[1..];
        let num = || std::str::from_utf8(rest).unwrap().parse::<i64>().unwrap();
        match l[0] {
            b'+' => Resp::Simple(rest.to_vec()),
            b'-' => Resp::Error(rest.to_vec()),
            b':' => Resp::Int(num()),
            b'$' => {
                let n = num();
                if n < 0 {
                    return Resp::Bulk(None);
                }
                let mut b = vec![0u8; n as usize + 2];
                self.r.read_exact(&mut b).expect("read bulk");
                b.truncate(n as usize);
                Resp::Bulk(Some(b))
            }
            b'*' => {
                let n = num();
                if n < 0 {
                    return Resp::Array(None);
                }
                Resp::Array(Some((0..n).map(|_| self.read()).collect()))
            }
            other => panic!("unexpected RESP type byte {other}"),
        }
    }
}
