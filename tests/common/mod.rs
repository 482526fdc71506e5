//! Shared helpers of the end-to-end tests: where the built plugins are,
//! plugin directories assembled in temp dirs, a host and storages opened
//! with chosen limits; a real redis-server per test (`redis`), an S3 server
//! (`s3`), a COS / OSS emulator (`emulator`) and certificates for TLS
//! (`tls`).
#![allow(dead_code)]

pub mod daemon;
pub mod emulator;
pub mod redis;
pub mod s3;
pub mod tls;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use redback::config::{PluginOverrides, StorageConfig};
use redback::plugin::{LoadedPlugin, PluginHost};
use redback::storage::{Storage, StorageError};

/// A loopback port free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The folder of a built plugin: bundled ones under target/plugins, test
/// fixtures and the template under target/test-plugins.
pub fn built_plugin(name: &str) -> PathBuf {
    let root = repo_root().join("target");
    for dir in ["plugins", "test-plugins"] {
        let p = root.join(dir).join(name);
        if p.join("plugin.toml").exists() {
            return p;
        }
    }
    panic!("plugin {name} is not built: run scripts/build-plugins.sh (make test does it first)");
}

/// Copies a plugin folder into `dir/<as_name>`; returns the new folder.
pub fn copy_plugin(name: &str, dir: &Path, as_name: &str) -> PathBuf {
    let src = built_plugin(name);
    let dst = dir.join(as_name);
    std::fs::create_dir_all(&dst).unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dst.join(entry.file_name())).unwrap();
    }
    dst
}

/// Rewrites `plugin.toml` of a copied plugin folder.
pub fn edit_manifest(folder: &Path, edit: impl FnOnce(String) -> String) {
    let f = folder.join("plugin.toml");
    let text = std::fs::read_to_string(&f).unwrap();
    std::fs::write(&f, edit(text)).unwrap();
}

/// A storage table: `plugin` plus string settings.
pub fn storage_config(
    name: &str,
    plugin: &str,
    settings: &[(&str, &str)],
    base: &Path,
) -> StorageConfig {
    let mut table = toml::Table::new();
    table.insert("plugin".into(), plugin.into());
    for (k, v) in settings {
        let value: toml::Value = if *k == "allow_hosts" {
            toml::Value::Array(
                v.split(',')
                    .map(|h| toml::Value::String(h.into()))
                    .collect(),
            )
        } else {
            (*v).into()
        };
        table.insert(k.to_string(), value);
    }
    StorageConfig::from_table(name, table, base).unwrap()
}

pub fn load(host: &PluginHost, name: &str) -> Arc<LoadedPlugin> {
    Arc::new(
        host.load_plugin(&built_plugin(name), None)
            .unwrap_or_else(|e| panic!("{e}")),
    )
}

/// Tight limits for hostile plugins, so the tests stop them quickly.
pub fn tight_limits() -> PluginOverrides {
    PluginOverrides {
        sha256: None,
        memory_mib: Some(32),
        cpu_ms_per_call: Some(300),
        call_timeout: Some(Duration::from_secs(3)),
    }
}

pub async fn open(
    host: &PluginHost,
    plugin: &Arc<LoadedPlugin>,
    cfg: &StorageConfig,
    limits: Option<&PluginOverrides>,
) -> Result<Arc<dyn Storage>, StorageError> {
    host.open_storage(plugin, cfg, limits).await
}

/// Uploads `bytes` in 1 MiB chunks.
pub async fn put(s: &dyn Storage, key: &str, bytes: &[u8]) -> Result<(), StorageError> {
    let mut up = s.start_upload(key).await?;
    for c in bytes.chunks(1 << 20) {
        up.write(c).await?;
    }
    up.finish().await.map(|_| ())
}

/// Downloads a whole object.
pub async fn get(s: &dyn Storage, key: &str) -> Result<Vec<u8>, StorageError> {
    let mut d = s.open_download(key, 0, None).await?;
    let mut out = Vec::new();
    loop {
        let b = d.read(1 << 20).await?;
        if b.is_empty() {
            return Ok(out);
        }
        out.extend_from_slice(&b);
    }
}

/// Runs the `redback` binary; returns (exit code, stdout, stderr).
pub fn redback(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_redback"))
        .args(args)
        .env("REDBACK_LOG", "info")
        .output()
        .expect("run redback");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A config in `dir` with the bundled plugins, storage `local`
/// (storage-local under `dir/backups`) and instance `app` described by
/// `instance_lines` (at least `address = "…"`); returns its path.
pub fn app_config(dir: &Path, instance_lines: &str) -> PathBuf {
    let path = dir.join("redback.toml");
    std::fs::write(
        &path,
        format!(
            "[daemon]\nplugin_dir = \"{}\"\nstate_dir = \"state\"\n\n[storage.local]\nplugin = \"storage-local\"\nroot = \"backups\"\n\n[instance.app]\n{instance_lines}\nstorage = \"local\"\n",
            repo_root().join("target/plugins").display()
        ),
    )
    .unwrap();
    path
}

/// Takes a backup of instance `app` through the CLI; returns its id.
pub fn take_backup(config: &str) -> String {
    let (code, out, err) = redback(&["backup", "--config", config, "--instance", "app"]);
    assert_eq!(code, 0, "{out}\n{err}");
    out.trim().to_string()
}

/// Backs up instance `app` of `config`, verifies the backup, restores it
/// into a new redis-server with the RESTORE pipeline and checks that the
/// target's `DEBUG DIGEST` is `digest`.
pub fn backup_verify_restore(config: &str, digest: &str) {
    let id = take_backup(config);
    let (code, out, err) = redback(&["verify", "--config", config, "--backup", &id]);
    assert_eq!(code, 0, "{out}\n{err}");
    let target = redis::RedisServer::start(&[]);
    let addr = target.addr();
    let (code, out, err) = redback(&[
        "restore", "--config", config, "--backup", &id, "--target", &addr, "--mode", "restore",
        "--yes",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(target.digest(), digest);
}

/// `n` pseudo-random bytes (xorshift from `seed`): data LZF and zstd
/// cannot shrink, for values whose stored size must stay large.
pub fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn no_overrides() -> BTreeMap<String, PluginOverrides> {
    BTreeMap::new()
}

/// A plain HTTP/1.1 GET of `url` (no client library, so nothing of the
/// code under test); returns the status and body.
pub fn http_get(url: &str) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    let mut s = std::net::TcpStream::connect(authority).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = raw[head_end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
}

/// A file in `dir` holding `secret`, for a `*_file` secret setting.
pub fn secret_file(dir: &Path, secret: &str) -> PathBuf {
    let p = dir.join(format!("secret-{}", secret.len()));
    std::fs::write(&p, secret).unwrap();
    p
}
