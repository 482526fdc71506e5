//! A real S3 server for a test: s3s-fs (crates.io), which keeps objects in
//! a directory and checks every SigV4 signature, presigned URL and payload
//! hash. A free port on loopback, its own temp dir, killed on drop.
//! `make test` builds it with scripts/test-servers.sh and passes its path
//! in `REDBACK_S3S_FS`.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "redback-test";
pub const SECRET_KEY: &str = "redback-test-secret-0123456789abcdef";
pub const BUCKET: &str = "backups";

pub struct S3Server {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("REDBACK_S3S_FS").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let p = super::repo_root().join("target/test-servers/bin/s3s-fs");
    assert!(
        p.exists(),
        "no S3 test server: run scripts/test-servers.sh s3 (make test does it)"
    );
    p
}

impl S3Server {
    /// Starts s3s-fs with the test credentials and an empty bucket.
    pub fn start() -> S3Server {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data").join(BUCKET)).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.path().join("s3s-fs.log")).unwrap();
        let child = Command::new(binary())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(dir.path().join("data"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start s3s-fs");
        let server = S3Server { child, port, dir };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "s3s-fs did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        server
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Where an object of the bucket lies on disk.
    pub fn object_path(&self, key: &str) -> PathBuf {
        self.dir.path().join("data").join(BUCKET).join(key)
    }

    /// A raw ListMultipartUploads of the bucket (`GET /bucket/?uploads`)
    /// under `prefix`, as a SigV4-presigned URL signed with `secret`:
    /// the status and body s3s-fs answers.
    pub fn list_multipart_uploads(&self, prefix: &str, secret: &str) -> (u16, String) {
        use objstore::sigv4::{Credentials, Signer, amz_date};
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let credentials = Credentials {
            access_key: ACCESS_KEY.into(),
            secret_key: secret.into(),
        };
        let amz_date = amz_date(now);
        let signer = Signer {
            credentials: &credentials,
            region: "us-east-1",
            service: "s3",
            amz_date: &amz_date,
        };
        let path = format!("/{BUCKET}/");
        let authority = format!("127.0.0.1:{}", self.port);
        let query = signer.presign(
            "GET",
            &path,
            &authority,
            60,
            &[
                ("uploads".into(), String::new()),
                ("prefix".into(), prefix.into()),
            ],
        );
        let (status, body) = super::http_get(&format!("http://{authority}{path}?{query}"));
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// The `[storage.NAME]` settings for storage-s3 against this server.
    pub fn settings(&self, secret_file: &Path) -> Vec<(String, String)> {
        vec![
            ("endpoint".into(), self.endpoint()),
            ("bucket".into(), BUCKET.into()),
            ("region".into(), "us-east-1".into()),
            ("access_key_id".into(), ACCESS_KEY.into()),
            (
                "secret_access_key_file".into(),
                secret_file.display().to_string(),
            ),
            ("part_size_mib".into(), "5".into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
