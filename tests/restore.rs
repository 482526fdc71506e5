//! Restores end to end against real redis-servers: the whole instance in
//! place, chosen keys, clone into an empty address or a new server; equality
//! is `DEBUG DIGEST` (keys, values and expiry times).

mod common;

use std::path::Path;

use common::redis::RedisServer;
use common::*;

fn config(dir: &Path, addr: &str) -> String {
    let path = app_config(dir, &format!("address = \"{addr}\""));
    path.to_str().unwrap().to_string()
}

#[test]
fn the_whole_instance_comes_back_in_place() {
    let source = RedisServer::start(&[]);
    source.fill_mixed();
    let before = source.digest();
    let tmp = tempfile::tempdir().unwrap();
    let c = config(tmp.path(), &source.addr());
    let id = take_backup(&c);

    source.cli(&["FLUSHALL"]);
    source.cli(&["SET", "written-after-the-backup", "x"]);
    let (code, _, err) = redback(&["restore", "--config", &c, "--backup", &id]);
    assert_eq!(code, 1);
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(source.dbsize(0), 1, "nothing may change without --yes");

    for mode in ["handoff", "restore"] {
        let args = [
            "restore", "--config", &c, "--backup", &id, "--mode", mode, "--yes", "--json",
        ];
        let (code, out, err) = redback(&args);
        assert_eq!(code, 0, "{mode}: {out}\n{err}");
        let report: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(report["keys_restored"], 2314, "{mode}");
        let expected_mode = if mode == "handoff" {
            "handoff"
        } else {
            "restore-pipeline"
        };
        assert_eq!(report["mode"], expected_mode);
        assert_eq!(
            source.digest(),
            before,
            "{mode}: the instance equals the backup, key by key"
        );
        let role = source.cli(&["INFO", "replication"]);
        assert!(
            role.contains("role:master"),
            "{mode}: left a replica of redback"
        );
        source.cli(&["FLUSHALL"]);
        source.cli(&["SET", "written-after-the-backup", "x"]);
    }
}

#[test]
fn only_the_chosen_keys_are_restored_and_missing_ones_reported() {
    let source = RedisServer::start(&[]);
    source.fill_mixed();
    let tmp = tempfile::tempdir().unwrap();
    let c = config(tmp.path(), &source.addr());
    let id = take_backup(&c);
    let expected_hash = source.cli(&["DEBUG", "DIGEST-VALUE", "hash:big"]);
    let expected_str = source.cli(&["GET", "str:7"]);

    source.cli(&["SET", "str:7", "changed"]);
    source.cli(&["DEL", "hash:big"]);
    source.cli(&["SET", "str:8", "changed too"]);
    let (code, out, err) = redback(&[
        "restore",
        "--config",
        &c,
        "--backup",
        &id,
        "--keys",
        "str:7;hash:*;no-such-key",
        "--yes",
        "--json",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["keys_found"], 3, "str:7, hash:small, hash:big: {r}");
    assert_eq!(r["keys_restored"], 3);
    assert_eq!(r["missing_patterns"][0], "no-such-key");
    assert_eq!(source.cli(&["GET", "str:7"]), expected_str);
    assert_eq!(
        source.cli(&["DEBUG", "DIGEST-VALUE", "hash:big"]),
        expected_hash
    );
    assert_eq!(
        source.cli(&["GET", "str:8"]).trim(),
        "changed too",
        "unchosen keys are left alone"
    );

    // --no-replace keeps what the target has.
    source.cli(&["SET", "str:7", "mine"]);
    let (code, out, _) = redback(&[
        "restore",
        "--config",
        &c,
        "--backup",
        &id,
        "--keys",
        "str:7",
        "--no-replace",
        "--yes",
        "--json",
    ]);
    assert_eq!(code, 0);
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (r["keys_restored"].as_u64(), r["keys_existing"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(source.cli(&["GET", "str:7"]).trim(), "mine");

    // --db narrows to one db.
    let (code, out, _) = redback(&[
        "restore", "--config", &c, "--backup", &id, "--keys", "db5:1*", "--db", "0", "--yes",
        "--json",
    ]);
    assert_eq!(code, 0);
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["keys_found"], 0);
}

#[test]
fn a_clone_goes_into_an_empty_instance_or_a_new_server() {
    let source = RedisServer::start(&[]);
    source.fill_mixed();
    let digest = source.digest();
    let tmp = tempfile::tempdir().unwrap();
    let c = config(tmp.path(), &source.addr());
    let id = take_backup(&c);

    let target = RedisServer::start(&[]);
    target.cli(&["SET", "occupied", "1"]);
    let (code, _, err) = redback(&[
        "clone",
        "--config",
        &c,
        "--backup",
        &id,
        "--target",
        &target.addr(),
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("holds 1 keys") && err.contains("--force"),
        "{err}"
    );
    target.cli(&["FLUSHALL"]);
    let (code, out, err) = redback(&[
        "clone",
        "--config",
        &c,
        "--backup",
        &id,
        "--target",
        &target.addr(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(target.digest(), digest);

    let port = common::free_port();
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
    assert_eq!(out.trim(), format!("127.0.0.1:{port}"));
    let pid: i32 = std::fs::read_to_string(dir.join("redis.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    struct Kill(i32);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = std::process::Command::new("kill")
                .arg("-9")
                .arg(self.0.to_string())
                .status();
        }
    }
    let _kill = Kill(pid);
    // DEBUG is off on the spawned server (its defaults): compare key counts.
    let dbsize = |db: &str| {
        let o = std::process::Command::new("redis-cli")
            .args(["-p", &port.to_string(), "-n", db, "DBSIZE"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    assert_eq!(
        (dbsize("0"), dbsize("5")),
        (source.dbsize(0), source.dbsize(5))
    );
}

#[test]
fn an_altered_backup_never_touches_the_target() {
    let source = RedisServer::start(&[]);
    source.fill_mixed();
    let tmp = tempfile::tempdir().unwrap();
    let c = config(tmp.path(), &source.addr());
    let id = take_backup(&c);
    let (_, out, _) = redback(&["backups", "--config", &c, "--instance", "app", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let file = tmp
        .path()
        .join("backups")
        .join(v[0]["data"]["key"].as_str().unwrap());
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last / 2] ^= 0x10;
    std::fs::write(&file, &bytes).unwrap();

    source.cli(&["SET", "survivor", "1"]);
    let digest = source.digest();
    let (code, _, err) = redback(&["restore", "--config", &c, "--backup", &id, "--yes"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("did not verify") && err.contains("sha256"),
        "{err}"
    );
    assert_eq!(source.digest(), digest, "the target was touched");

    // A key restore holds the chosen keys until the whole object checked out.
    source.cli(&["SET", "str:1", "changed"]);
    let digest = source.digest();
    let args = [
        "restore",
        "--config",
        &c,
        "--backup",
        &id,
        "--keys",
        "str:*;hash:*",
        "--yes",
    ];
    let (code, _, err) = redback(&args);
    assert_eq!(code, 1);
    assert!(
        err.contains("sha256") && err.contains("not touched"),
        "{err}"
    );
    assert_eq!(
        source.digest(),
        digest,
        "a key restore of a damaged backup touched the target"
    );
}

#[test]
fn keys_over_the_targets_bulk_limit_are_named_and_best_effort_goes_on() {
    let source = RedisServer::start(&[]);
    source.fill_mixed();
    // A 2 MiB value that LZF cannot shrink: its RESTORE payload is over a
    // target whose proto-max-bulk-len is 1 MiB.
    let noise = noise(3, 2 << 20);
    let big = vec![vec![b"SET".to_vec(), b"huge".to_vec(), noise]];
    source.pipe(&big);
    let tmp = tempfile::tempdir().unwrap();
    let c = config(tmp.path(), &source.addr());
    let id = take_backup(&c);

    let target = RedisServer::start(&["--proto-max-bulk-len", "1mb"]);
    let t = target.addr();
    let base = [
        "restore",
        "--config",
        &c,
        "--backup",
        &id,
        "--target",
        &t,
        "--keys",
        "huge;str:1",
        "--yes",
    ];
    let (code, _, err) = redback(&base);
    assert_eq!(code, 1);
    assert!(
        err.contains("key `huge`") && err.contains("proto-max-bulk-len"),
        "{err}"
    );

    let mut args = base.to_vec();
    args.extend(["--best-effort", "--json"]);
    let (code, out, err) = redback(&args);
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["keys_restored"], 1);
    assert_eq!(r["refused"][0][0], "huge");
    assert_eq!(target.cli(&["EXISTS", "huge"]).trim(), "0");
}
