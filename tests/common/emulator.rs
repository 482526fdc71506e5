//! A Tencent COS or Alibaba OSS emulator for a test:
//! tests/emulators/objstore.py, which serves one bucket at the root of a
//! loopback port and checks every request's signature (header or presigned
//! URL) with the vendor's official SDK signing code. Its own temp dir, a
//! free port, killed on drop. The SDKs live in a venv that
//! `scripts/test-servers.sh emulators` makes; `REDBACK_EMULATOR_PYTHON`
//! names another python that has them.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const ACCESS_KEY: &str = "redback-test";
pub const SECRET_KEY: &str = "redback-test-secret-0123456789abcdef";
/// One name for both vendors (COS bucket names end in the account's APPID).
pub const BUCKET: &str = "backups-1250000000";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendor {
    Cos,
    Oss,
}

impl Vendor {
    /// The emulator's `--vendor`.
    pub fn name(self) -> &'static str {
        match self {
            Vendor::Cos => "cos",
            Vendor::Oss => "oss",
        }
    }

    /// The region the emulator serves: OSS checks it against the signing
    /// scope; COS signatures carry none.
    pub fn region(self) -> &'static str {
        match self {
            Vendor::Cos => "ap-guangzhou",
            Vendor::Oss => "cn-hangzhou",
        }
    }
}

pub struct Emulator {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub vendor: Vendor,
}

/// The python with the vendor SDKs.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("REDBACK_EMULATOR_PYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let p = super::repo_root().join("target/test-servers/venv/bin/python");
    assert!(
        p.exists(),
        "no python with the COS/OSS SDKs: run scripts/test-servers.sh emulators"
    );
    p
}

/// A file of tests/emulators.
pub fn script(name: &str) -> PathBuf {
    super::repo_root().join("tests/emulators").join(name)
}

impl Emulator {
    /// Starts the emulator with the test credentials and an empty bucket;
    /// waits until it listens.
    pub fn start(vendor: Vendor) -> Emulator {
        Emulator::start_with(vendor, &[])
    }

    /// [`Emulator::start`] with more options of objstore.py, such as
    /// `--max-uploads 2`.
    pub fn start_with(vendor: Vendor, options: &[&str]) -> Emulator {
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("emulator.log")).unwrap();
        let mut child = Command::new(python())
            .arg(script("objstore.py"))
            // Port 0: the emulator binds a free port and says which.
            .args(["--vendor", vendor.name(), "--port", "0", "--root"])
            .arg(dir.path().join("data"))
            .args(["--bucket", BUCKET, "--region", vendor.region()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .args(options)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start tests/emulators/objstore.py");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
            let _ = tx.send(lines.next());
            lines.for_each(drop);
        });
        let mut emulator = Emulator {
            child,
            port: 0,
            dir,
            vendor,
        };
        let line = rx.recv_timeout(Duration::from_secs(20)).ok().flatten();
        match line.as_deref().and_then(|l| l.strip_prefix("listening ")) {
            Some(port) => emulator.port = port.trim().parse().expect("a port number"),
            None => panic!(
                "the {} emulator did not say `listening <port>` within 20 s (it said {line:?}); its log:\n{}",
                vendor.name(),
                emulator.log()
            ),
        }
        emulator
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The storage plugin that speaks this vendor's API.
    pub fn plugin(&self) -> &'static str {
        match self.vendor {
            Vendor::Cos => "storage-cos",
            Vendor::Oss => "storage-oss",
        }
    }

    /// The `[storage.NAME]` settings of the vendor's plugin against this
    /// emulator, the secret read from `secret_file`, parts of 1 MiB.
    pub fn settings(&self, secret_file: &std::path::Path) -> Vec<(String, String)> {
        let secret_file = secret_file.display().to_string();
        let mut s = vec![
            ("endpoint".to_string(), self.endpoint()),
            ("bucket".to_string(), BUCKET.to_string()),
            ("part_size_mib".to_string(), "1".to_string()),
        ];
        match self.vendor {
            Vendor::Cos => s.extend([
                ("secret_id".to_string(), ACCESS_KEY.to_string()),
                ("secret_key_file".to_string(), secret_file),
            ]),
            Vendor::Oss => s.extend([
                ("region".to_string(), self.region().to_string()),
                ("access_key_id".to_string(), ACCESS_KEY.to_string()),
                ("access_key_secret_file".to_string(), secret_file),
            ]),
        }
        s
    }

    pub fn region(&self) -> &'static str {
        self.vendor.region()
    }

    /// Every unfinished multipart upload, `(key, upload id)` in order: the
    /// emulator's own index, read without asking the emulator.
    pub fn unfinished_uploads(&self) -> Vec<(String, String)> {
        let db = rusqlite::Connection::open_with_flags(
            self.dir.path().join("data/index.sqlite3"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let mut query = db
            .prepare("SELECT key, id FROM uploads ORDER BY key, id")
            .unwrap();
        query
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// What it logged so far: a line per request, with the reason of each
    /// refusal.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("emulator.log")).unwrap_or_default()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
