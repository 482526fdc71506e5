//! Encryption at rest end to end: a storage with an `encryption` table,
//! real redis-servers, the bundled storage-local plugin, the `redback`
//! binary and `redback serve`. Every restore path gives back the source;
//! the stored object is not the RDB; a missing or wrong key and an altered
//! or cut object are refused with their own messages, and nothing is
//! restored from them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::daemon::{Daemon, free_port, set_clock};
use common::redis::RedisServer;
use common::*;
use serde_json::Value;

const K1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const K2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

/// The mixed dataset plus ~3 MiB of values zstd cannot shrink, so the
/// stored object spans several 1 MiB frames.
fn source() -> RedisServer {
    let s = RedisServer::start(&[]);
    s.fill_mixed();
    s.fill_noise("blob", 6, 512 << 10);
    s
}

/// A config in `dir` for instance `app` at `addr` on storage `local`
/// (storage-local under `dir/backups`) with `encryption` lines (none: no
/// table); key files are written into `dir`. Returns its path.
fn config(dir: &Path, addr: &str, encryption: &str) -> String {
    let path = dir.join("redback.toml");
    std::fs::write(
        &path,
        format!(
            "[daemon]\nplugin_dir = \"{}\"\nstate_dir = \"state\"\n\n[storage.local]\nplugin = \"storage-local\"\nroot = \"backups\"\n{encryption}\n\n[instance.app]\naddress = \"{addr}\"\nstorage = \"local\"\n",
            repo_root().join("target/plugins").display()
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

/// An `encryption` table whose current key is `current`, with key files
/// (hex text) written into `dir`.
fn ring(dir: &Path, current: &str, keys: &[(&str, &str)]) -> String {
    let mut t = format!("[storage.local.encryption]\nkey = \"{current}\"\n");
    for (id, hex) in keys {
        let f = dir.join(format!("{id}.key"));
        std::fs::write(&f, format!("{hex}\n")).unwrap();
        t.push_str(&format!("keys.{id} = {{ file = \"{}\" }}\n", f.display()));
    }
    t
}

fn manifest(dir: &Path, id: &str) -> Value {
    let f = dir.join(format!("backups/redback/app/{id}/manifest.json"));
    serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap()
}

fn data_file(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("backups/redback/app/{id}/dump.rdb.zst"))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn every_restore_path_gives_back_the_source_and_the_stored_bytes_are_not_the_rdb() {
    let source = source();
    let digest = source.digest();
    let tmp = tempfile::tempdir().unwrap();
    let c = config(
        tmp.path(),
        &source.addr(),
        &ring(tmp.path(), "k1", &[("k1", K1)]),
    );
    let id = take_backup(&c);

    // What is stored: not an RDB, not zstd, no key or value of the dataset.
    let stored = std::fs::read(data_file(tmp.path(), &id)).unwrap();
    assert!(stored.len() > 3 << 20, "several frames: {}", stored.len());
    assert!(stored.starts_with(b"RBKENC"));
    for needle in [
        &b"REDIS00"[..],
        b"str:1999",
        b"value-1999",
        b"hash:big",
        b"member-17-xxxx",
        b"db5:299",
        b"blob:3",
        &noise(4, 4096),
    ] {
        assert!(
            !contains(&stored, needle),
            "{:?} is in the stored object",
            String::from_utf8_lossy(&needle[..needle.len().min(16)])
        );
    }
    assert!(zstd::decode_all(&stored[..]).is_err(), "it decompresses");
    let m = manifest(tmp.path(), &id);
    assert_eq!(m["version"], 2);
    assert_eq!(
        m["data"]["encryption"],
        serde_json::json!({"cipher": "xchacha20poly1305-stream-be32", "key_id": "k1", "frame_bytes": 1048576})
    );
    let text = std::fs::read(
        tmp.path()
            .join(format!("backups/redback/app/{id}/manifest.json")),
    );
    assert!(
        !contains(&text.unwrap(), b"blob:"),
        "the manifest names no key"
    );

    let (code, out, err) = redback(&["verify", "--config", &c, "--backup", &id]);
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, out, err) = redback(&["inspect", "--config", &c, "--backup", &id, "--json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("blob:"), "inspect decrypts: {out}");

    // In place by handoff and by RESTORE pipeline, then chosen keys.
    for mode in ["handoff", "restore"] {
        source.cli(&["FLUSHALL"]);
        let args = [
            "restore", "--config", &c, "--backup", &id, "--mode", mode, "--yes",
        ];
        let (code, out, err) = redback(&args);
        assert_eq!(code, 0, "{mode}: {out}\n{err}");
        assert_eq!(source.digest(), digest, "{mode}");
    }
    source.cli(&["DEL", "blob:2", "str:5"]);
    let args = [
        "restore",
        "--config",
        &c,
        "--backup",
        &id,
        "--keys",
        "blob:*;str:5",
        "--yes",
    ];
    let (code, out, err) = redback(&args);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(source.digest(), digest, "keys");

    // Clone into a new redis-server.
    let port = free_port();
    let dir = tmp.path().join("clone");
    let (code, out, err) = redback(&[
        "clone",
        "--config",
        &c,
        "--backup",
        &id,
        "--spawn",
        "--port",
        &port.to_string(),
        "--dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let _kill = KillPidFile(dir.join("redis.pid"));
    let rdb = std::fs::read(dir.join("dump.rdb")).unwrap();
    let stats = redback::rdb::validate(&rdb[..]).unwrap();
    assert_eq!(Some(stats.keys), m["stats"]["keys"].as_u64());
    let o = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "DBSIZE"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        source.dbsize(0).to_string()
    );

    // The daemon's download link: served by the daemon, decrypted.
    let (code, out, err) = redback(&["catalog", "rebuild", "--config", &c]);
    assert_eq!(code, 0, "{out}\n{err}");
    let port = free_port();
    let text = std::fs::read_to_string(&c).unwrap().replacen(
        "[daemon]\n",
        &format!("[daemon]\nlisten = \"127.0.0.1:{port}\"\n"),
        1,
    );
    std::fs::write(&c, text).unwrap();
    let clock = tmp.path().join("clock");
    set_clock(&clock, &jiff::Timestamp::now().to_string());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let d = Daemon::start(Path::new(&c), &clock, port, &[]).await;
        let link = d
            .client
            .post(
                &format!("/backups/{id}/download-link"),
                &serde_json::json!({}),
            )
            .await
            .unwrap();
        assert_eq!(link["served_by"], "daemon", "{link}");
        let url = link["url"].as_str().unwrap().to_string();
        let (status, plain) = tokio::task::spawn_blocking({
            let url = url.clone();
            move || http_get(&format!("{url}?format=rdb"))
        })
        .await
        .unwrap();
        assert_eq!(status, 200);
        assert_eq!(plain, rdb, "?format=rdb is the RDB the clone loaded");
        let (status, compressed) = tokio::task::spawn_blocking(move || http_get(&url))
            .await
            .unwrap();
        assert_eq!(status, 200);
        assert_eq!(zstd::decode_all(&compressed[..]).unwrap(), rdb);
        d.kill9();
    });
}

#[test]
fn a_missing_or_wrong_key_is_named_and_a_rotated_ring_reads_old_backups() {
    let source = RedisServer::start(&[]);
    source.fill_mixed();
    let tmp = tempfile::tempdir().unwrap();
    let addr = source.addr();
    let c = config(tmp.path(), &addr, &ring(tmp.path(), "k1", &[("k1", K1)]));
    let old = take_backup(&c);
    let digest = source.digest();

    let refused = |encryption: &str, expected: &[&str]| {
        let c = config(tmp.path(), &addr, encryption);
        let (code, _, err) = redback(&["verify", "--config", &c, "--backup", &old]);
        assert_eq!(code, 1);
        for e in expected {
            assert!(err.contains(e), "{e}: {err}");
        }
        source.cli(&["SET", "str:1", "changed"]);
        let before = source.digest();
        let (code, _, err) = redback(&["restore", "--config", &c, "--backup", &old, "--yes"]);
        assert_eq!(code, 1);
        assert!(err.contains(expected[0]), "{err}");
        assert_eq!(source.digest(), before, "the target was touched");
    };
    refused(
        &ring(tmp.path(), "k2", &[("k2", K2)]),
        &[&format!(
            "backup {old} was encrypted with key id `k1`, which storage 'local''s key ring does not have; add it to `encryption.keys`"
        )],
    );
    refused(
        &ring(tmp.path(), "k1", &[("k1", K2)]),
        &["key `k1` of storage 'local' is not the key the backup was encrypted with"],
    );
    refused("", &["has no key ring", "add an `encryption` table"]);

    // Rotation: k2 encrypts, k1 still reads.
    let c = config(
        tmp.path(),
        &addr,
        &ring(tmp.path(), "k2", &[("k1", K1), ("k2", K2)]),
    );
    let (code, out, err) = redback(&["verify", "--config", &c, "--backup", &old]);
    assert_eq!(code, 0, "{out}\n{err}");
    let new = take_backup(&c);
    assert_eq!(
        manifest(tmp.path(), &new)["data"]["encryption"]["key_id"],
        "k2"
    );
    source.cli(&["FLUSHALL"]);
    let (code, out, err) = redback(&["restore", "--config", &c, "--backup", &old, "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(source.digest(), digest);
    let (code, out, err) = redback(&["verify", "--config", &c, "--backup", &new]);
    assert_eq!(code, 0, "{out}\n{err}");
}

#[test]
fn a_flipped_byte_or_a_cut_object_is_refused_and_nothing_is_restored() {
    let source = source();
    let tmp = tempfile::tempdir().unwrap();
    let c = config(
        tmp.path(),
        &source.addr(),
        &ring(tmp.path(), "k1", &[("k1", K1)]),
    );
    let id = take_backup(&c);
    let file = data_file(tmp.path(), &id);
    let good = std::fs::read(&file).unwrap();
    source.cli(&["SET", "survivor", "1"]);
    source.cli(&["DEL", "blob:1"]);
    let digest = source.digest();

    let mut flipped = good.clone();
    let at = (2 << 20) + 12345; // inside frame 2
    flipped[at] ^= 0x01;
    let cut = good[..good.len() - 1000].to_vec();
    for (what, bytes, frame) in [("flipped", flipped, 2), ("cut", cut, 3)] {
        std::fs::write(&file, &bytes).unwrap();
        let (code, _, err) = redback(&["verify", "--config", &c, "--backup", &id]);
        assert_eq!(code, 1, "{what}");
        assert!(
            err.contains(&format!(
                "authentication failed at frame {frame}: the object was altered or cut"
            )),
            "{what}: {err}"
        );
        for scope in [
            &["--mode", "restore"][..],
            &["--mode", "handoff"],
            &["--keys", "blob:*"],
        ] {
            let mut args = vec!["restore", "--config", &c, "--backup", &id, "--yes"];
            args.extend_from_slice(scope);
            let (code, _, err) = redback(&args);
            assert_eq!(code, 1, "{what} {scope:?}");
            // The handoff serves until its last bytes, which it holds back
            // until the sha256 matched: it names that check instead.
            let named = if scope[1] == "handoff" {
                err.contains("did not verify") && err.contains("the target kept its data")
            } else {
                err.contains("authentication failed")
            };
            assert!(named, "{what} {scope:?}: {err}");
            assert_eq!(
                source.digest(),
                digest,
                "{what} {scope:?}: the target was touched"
            );
        }
    }
}

#[test]
fn key_config_errors_name_the_key_and_the_fix_and_keys_never_show() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("redback.toml");
    let env = |name: &str| match name {
        "GOOD" => Some(K1.to_string()),
        "SHORT" => Some("abcd".to_string()),
        _ => None,
    };
    let check = |table: &str, expected: &[&str]| {
        let text = format!(
            "[storage.s]\nplugin = \"storage-local\"\nroot = \"b\"\n[storage.s.encryption]\n{table}"
        );
        let e = redback::config::Config::parse(&text, &path, &env)
            .unwrap_err()
            .to_string();
        for x in expected {
            assert!(e.contains(x), "{x}: {e}");
        }
    };
    check(
        "key = \"k1\"\nkeys.k1 = { env = \"SHORT\" }\n",
        &[
            "storage.s.encryption.keys.k1.env",
            "32 bytes",
            "openssl rand -hex 32",
        ],
    );
    check(
        "key = \"k1\"\nkeys.k1 = { env = \"NOT_SET\" }\n",
        &[
            "storage.s.encryption.keys.k1.env",
            "`NOT_SET`, which is not set",
        ],
    );
    check(
        "key = \"k9\"\nkeys.k1 = { env = \"GOOD\" }\n",
        &[
            "storage.s.encryption.key",
            "`k9` is not in `encryption.keys`",
        ],
    );
    check(
        &format!("key = \"k1\"\nkeys.k1 = \"{K1}\"\n"),
        &["keys.k1", "never written in the config"],
    );
    std::fs::write(tmp.path().join("short.key"), [7u8; 31]).unwrap();
    check(
        "key = \"k1\"\nkeys.k1 = { file = \"short.key\" }\n",
        &["keys.k1.file", "32 bytes"],
    );
    check(
        "keys.k1 = { env = \"GOOD\" }\n",
        &["encryption.key", "missing"],
    );

    // A good ring: the config view names ids and sources, never a key.
    let c = config(
        tmp.path(),
        "127.0.0.1:1",
        "[storage.local.encryption]\nkey = \"k1\"\nkeys.k1 = { env = \"REDBACK_TEST_KEY\" }\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_redback"))
        .args(["config", "check", "--config", &c, "--json"])
        .env("REDBACK_TEST_KEY", K1)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("env REDBACK_TEST_KEY"), "{text}");
    assert!(!text.contains("1111111111"), "the key shows: {text}");
}

/// Kills the redis-server a clone started (its pid file) on drop.
struct KillPidFile(PathBuf);

impl Drop for KillPidFile {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.0) {
            let _ = Command::new("kill").args(["-9", pid.trim()]).status();
        }
    }
}
