//! Loading plugins: manifests, hashes, WIT versions, the compiled cache, and
//! the daemon starting with the good plugins while reporting the refused.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use redback::plugin::{PluginHost, Source};

/// A plugin directory with storage-local and three broken copies of it.
fn mixed_plugin_dir(dir: &std::path::Path) {
    copy_plugin("storage-local", dir, "storage-local");
    let bad_hash = copy_plugin("storage-local", dir, "bad-hash");
    edit_manifest(&bad_hash, |t| {
        let t = t.replace("name = \"storage-local\"", "name = \"bad-hash\"");
        let i = t.find("sha256 = \"").unwrap() + 10;
        format!("{}{}{}", &t[..i], "0".repeat(64), &t[i + 64..])
    });
    let bad_wit = copy_plugin("storage-local", dir, "bad-wit");
    edit_manifest(&bad_wit, |t| {
        t.replace("name = \"storage-local\"", "name = \"bad-wit\"")
            .replace("redback:storage@0.1.0", "redback:storage@0.2.0")
    });
    let malformed = copy_plugin("storage-local", dir, "malformed");
    edit_manifest(&malformed, |t| {
        t.replace("kind = \"storage\"", "kind = storage")
    });
}

#[test]
fn refused_plugins_name_the_file_and_the_fix_and_the_rest_load() {
    let tmp = tempfile::tempdir().unwrap();
    mixed_plugin_dir(tmp.path());
    let host = PluginHost::new(None).unwrap();
    let set = host.load_dir(tmp.path(), &no_overrides()).unwrap();

    assert_eq!(set.loaded.keys().collect::<Vec<_>>(), ["storage-local"]);
    assert_eq!(set.refused.len(), 3, "{:#?}", set.refused);
    let why = |folder: &str| {
        set.refused
            .iter()
            .find(|r| r.folder.ends_with(folder))
            .unwrap_or_else(|| panic!("{folder} not refused"))
            .error
            .clone()
    };
    let e = why("bad-hash");
    assert!(
        e.contains("bad-hash/plugin.toml")
            && e.contains("has sha256")
            && e.contains("update `sha256`"),
        "{e}"
    );
    let e = why("bad-wit");
    assert!(
        e.contains("bad-wit/plugin.toml")
            && e.contains("redback:storage@0.2.0")
            && e.contains("supports redback:storage@0.1.0")
            && e.contains("rebuild"),
        "{e}"
    );
    let e = why("malformed");
    assert!(
        e.contains("malformed/plugin.toml") && e.contains("malformed") && e.contains("kind"),
        "{e}"
    );
}

#[test]
fn a_config_pin_that_differs_refuses_the_plugin() {
    let host = PluginHost::new(None).unwrap();
    let e = host
        .load_plugin(&built_plugin("storage-local"), Some(&"a".repeat(64)))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("pins [plugins.storage-local] sha256") && e.contains("update the pin"),
        "{e}"
    );
    let good = std::fs::read_to_string(built_plugin("storage-local").join("plugin.toml")).unwrap();
    let sha = good.split("sha256 = \"").nth(1).unwrap()[..64].to_string();
    host.load_plugin(&built_plugin("storage-local"), Some(&sha))
        .unwrap();
}

#[test]
fn a_provider_manifest_on_a_storage_component_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let f = copy_plugin("storage-local", tmp.path(), "liar");
    edit_manifest(&f, |t| {
        t.replace("kind = \"storage\"", "kind = \"provider\"")
            .replace("redback:storage@0.1.0", "redback:provider@0.1.0")
            .replace("filesystem = true", "filesystem = false")
    });
    let host = PluginHost::new(None).unwrap();
    let e = host.load_plugin(&f, None).unwrap_err().to_string();
    assert!(
        e.contains("does not export that interface") && e.contains("wit/provider"),
        "{e}"
    );
}

#[test]
fn the_compiled_cache_is_used_after_a_restart() {
    let cache = tempfile::tempdir().unwrap();
    let first = PluginHost::new(Some(cache.path().to_path_buf())).unwrap();
    let p = first
        .load_plugin(&built_plugin("storage-local"), None)
        .unwrap();
    assert_eq!(p.source, Source::Compiled);
    drop(first);
    let second = PluginHost::new(Some(cache.path().to_path_buf())).unwrap();
    let p = second
        .load_plugin(&built_plugin("storage-local"), None)
        .unwrap();
    assert_eq!(p.source, Source::Cache);
}

fn write_config(dir: &std::path::Path, plugin_dir: &std::path::Path) -> std::path::PathBuf {
    let config = dir.join("redback.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nplugin_dir = \"{}\"\nstate_dir = \"state\"\n\n[storage.local]\nplugin = \"storage-local\"\nroot = \"backups\"\n",
            plugin_dir.display()
        ),
    )
    .unwrap();
    config
}

#[test]
fn plugin_list_shows_kind_wit_version_sha256_and_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    mixed_plugin_dir(&plugins);
    let config = write_config(tmp.path(), &plugins);
    let (code, out, err) = redback(&["plugin", "list", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}\n{err}");
    let sha = std::fs::read_to_string(plugins.join("storage-local/plugin.toml")).unwrap();
    let sha = &sha.split("sha256 = \"").nth(1).unwrap()[..64];
    let row = out
        .lines()
        .find(|l| l.starts_with("storage-local "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        row.contains("storage") && row.contains("redback:storage@0.1.0") && row.contains(sha),
        "{row}"
    );
    assert_eq!(
        out.lines().filter(|l| l.starts_with("REFUSED")).count(),
        3,
        "{out}"
    );

    let (code, out, _) = redback(&[
        "plugin",
        "list",
        "--config",
        config.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["plugins"][0]["name"], "storage-local");
    assert_eq!(v["plugins"][0]["implements"], "redback:storage@0.1.0");
    assert_eq!(v["plugins"][0]["sha256"], sha);
    assert_eq!(v["refused"].as_array().unwrap().len(), 3);
}

/// Kills the daemon when the test ends, however it ends.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn the_daemon_starts_with_the_good_plugins_and_reports_the_refused_on_health() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    mixed_plugin_dir(&plugins);
    let config = write_config(tmp.path(), &plugins);
    let child = Command::new(env!("CARGO_BIN_EXE_redback"))
        .args([
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut daemon = Daemon(child);
    let stderr = daemon.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no API address in {log:#?}"));
        if let Some(rest) = line.split("REST API on http://").nth(1) {
            break rest.trim().to_string();
        }
        log.push(line);
    };
    assert!(
        log.iter()
            .any(|l| l.contains("plugin refused") && l.contains("bad-hash")),
        "{log:#?}"
    );
    let (status, body) = http_get(&addr, "/health");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "degraded");
    assert_eq!(v["plugins"][0]["name"], "storage-local");
    assert_eq!(v["refused_plugins"].as_array().unwrap().len(), 3);
    assert_eq!(v["storages"][0]["name"], "local");
    assert_eq!(v["storages"][0]["ready"], true);
}
