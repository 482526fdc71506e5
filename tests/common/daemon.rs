//! The daemon as a process for the end-to-end tests: `redback serve` on a
//! temp config with the bundled plugins (`Setup`), driven over its REST
//! API (`Daemon`, killed on drop), its time in a file the test rewrites
//! (`REDBACK_TEST_CLOCK_FILE`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use redback::api::client::Client;
use serde_json::Value;

pub const TOKEN: &str = "test-token-0123456789abcdef";

pub use super::free_port;

/// One `redback serve` process; killed on drop.
pub struct Daemon {
    pub child: Child,
    pub client: Client,
    pub log: PathBuf,
}

impl Daemon {
    pub async fn start(config: &Path, clock: &Path, port: u16, env: &[(&str, &str)]) -> Daemon {
        let mut d = Daemon::spawn(config, clock, port, env);
        let started = Instant::now();
        loop {
            if let Ok(h) = d.client.get("/health").await {
                assert_eq!(h["status"], "ok", "{h:#}\n{}", d.log_text());
                return d;
            }
            if let Ok(Some(status)) = d.child.try_wait() {
                panic!("the daemon exited with {status}:\n{}", d.log_text());
            }
            assert!(
                started.elapsed() < Duration::from_secs(180),
                "the daemon did not answer /health:\n{}",
                d.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process, started; not yet answering.
    pub fn spawn(config: &Path, clock: &Path, port: u16, env: &[(&str, &str)]) -> Daemon {
        let log = config.with_file_name(format!(
            "daemon-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::File::create(&log).unwrap();
        // Both streams append to one file, so neither overwrites the other.
        let append = |p: &Path| std::fs::OpenOptions::new().append(true).open(p).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_redback"))
            .args(["serve", "--config", config.to_str().unwrap()])
            .env("REDBACK_API_TOKEN", TOKEN)
            .env("REDBACK_TEST_CLOCK_FILE", clock)
            .env("REDBACK_LOG", "info,redback=debug")
            .envs(env.iter().copied())
            .stdout(append(&log))
            .stderr(append(&log))
            .spawn()
            .unwrap();
        let client = Client::new(&format!("http://127.0.0.1:{port}"), Some(TOKEN.into())).unwrap();
        Daemon { child, client, log }
    }

    /// Waits for the process to die by SIGKILL (a crash point it reached);
    /// returns its log.
    pub async fn killed(mut self) -> String {
        use std::os::unix::process::ExitStatusExt;
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert_eq!(
                    status.signal(),
                    Some(libc::SIGKILL),
                    "{status}:\n{}",
                    self.log_text()
                );
                return self.log_text();
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the daemon never reached its crash point:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }

    /// SIGTERM, and the exit it leads to.
    pub fn stop(mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let started = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls `/tasks/{id}` until the task has ended; returns it.
    pub async fn task_end(&self, id: &str) -> Value {
        let started = Instant::now();
        loop {
            let t = self.client.get(&format!("/tasks/{id}")).await.unwrap();
            if t["state"] != "running" && t["state"] != "pending" {
                return t;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "task {id} never ended: {t:#}\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the first automatic backup of `instance` in the list.
    pub async fn automatic_backup(&self, instance: &str) -> Value {
        let path = format!("/instances/{instance}/backups?kind=automatic");
        self.until(
            &format!("an automatic backup of {instance}"),
            async |c: &Client| {
                let l = c.get(&path).await.unwrap();
                l.as_array().unwrap().first().cloned()
            },
        )
        .await
    }

    /// Polls until `f` gives `Some`.
    pub async fn until<T>(&self, what: &str, mut f: impl AsyncFnMut(&Client) -> Option<T>) -> T {
        let started = Instant::now();
        loop {
            if let Some(v) = f(&self.client).await {
                return v;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "{what} never happened:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sets the daemon's time.
pub fn set_clock(file: &Path, t: &str) {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, t).unwrap();
    std::fs::rename(&tmp, file).unwrap();
}

pub struct Setup {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub clock: PathBuf,
    pub port: u16,
}

impl Setup {
    pub fn new(instances: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let plugins = super::repo_root().join("target/plugins");
        let config = dir.path().join("redback.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[daemon]
listen = "127.0.0.1:{port}"
plugin_dir = "{plugins}"
state_dir = "state"
catalog = "state/catalog.sqlite"
timezone = "UTC"

[storage.local]
plugin = "storage-local"
root = "backups"
{instances}
"#,
                plugins = plugins.display()
            ),
        )
        .unwrap();
        // The compiled plugins are shared between the tests' daemons, so
        // each does not compile them again.
        let cache = super::repo_root().join("target/test-plugin-cache");
        std::fs::create_dir_all(&cache).unwrap();
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        std::os::unix::fs::symlink(&cache, dir.path().join("state/plugin-cache")).unwrap();
        let clock = dir.path().join("clock");
        Setup {
            dir,
            config,
            clock,
            port,
        }
    }

    pub async fn daemon(&self, env: &[(&str, &str)]) -> Daemon {
        Daemon::start(&self.config, &self.clock, self.port, env).await
    }

    pub fn backups_dir(&self) -> PathBuf {
        self.dir.path().join("backups")
    }

    /// Every file under the backup root, relative to it, sorted.
    pub fn stored_files(&self) -> Vec<String> {
        let root = self.backups_dir();
        let mut out: Vec<String> = walk_files(&root)
            .iter()
            .map(|f| {
                Path::new(f)
                    .strip_prefix(&root)
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect();
        out.sort();
        out
    }
}

pub fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect()
}

pub async fn backup_now(d: &Daemon, instance: &str, body: Value) -> Value {
    let r = d
        .client
        .post(&format!("/instances/{instance}/backups"), &body)
        .await
        .unwrap();
    let task = d.task_end(r["task"].as_str().unwrap()).await;
    assert_eq!(task["state"], "succeeded", "{task:#}\n{}", d.log_text());
    let id = task["backup_id"].as_str().unwrap();
    d.client.get(&format!("/backups/{id}")).await.unwrap()
}

pub async fn download(c: &Client, url: &str) -> (http::StatusCode, Vec<u8>) {
    use http_body_util::BodyExt;
    let r = c.send(http::Method::GET, url, None).await.unwrap();
    let body = r.body.collect().await.unwrap().to_bytes().to_vec();
    (r.status, body)
}

pub fn walk_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}
