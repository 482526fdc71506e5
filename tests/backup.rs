//! Backups end to end: a real redis-server, the storage-local plugin, the
//! manifest written last, and nothing kept when the RDB is bad.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::redis::RedisServer;
use common::*;
use redback::backup::{self, Kind, Manifest, Request};
use redback::config::Config;
use redback::plugin::PluginHost;
use redback::storage::Storage;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

struct Setup {
    _tmp: tempfile::TempDir,
    config: Config,
    config_path: std::path::PathBuf,
    _host: PluginHost,
    storage: Arc<dyn Storage>,
}

async fn setup(instance_lines: &str) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let config_path = app_config(tmp.path(), instance_lines);
    let config = Config::load(&config_path).unwrap();
    let (host, storage) = redback::daemon::Daemon::open_storage(&config, "local")
        .await
        .unwrap();
    Setup {
        _tmp: tmp,
        config,
        config_path,
        _host: host,
        storage,
    }
}

/// `backup::run` of a nameless manual backup into the setup's storage.
async fn manual_backup(
    s: &Setup,
    inst: &redback::config::InstanceConfig,
) -> Result<Manifest, backup::BackupError> {
    let request = Request {
        kind: Kind::Manual,
        name: None,
    };
    backup::run(inst, s.storage.clone(), &request, Default::default()).await
}

async fn download(storage: &dyn Storage, key: &str) -> Vec<u8> {
    get(storage, key).await.unwrap()
}

/// Loads an RDB into a fresh server; returns DBSIZE of db 0 and db 5.
fn load_rdb(rdb: &[u8]) -> (u64, u64, RedisServer) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("seed.rdb"), rdb).unwrap();
    let s = RedisServer::start(&[
        "--dbfilename",
        "seed.rdb",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    std::mem::forget(dir);
    (s.dbsize(0), s.dbsize(5), s)
}

async fn check_backup(s: &Setup, m: &Manifest, source: &RedisServer) {
    let stored = download(s.storage.as_ref(), &m.data.key).await;
    assert_eq!(stored.len() as u64, m.data.stored_bytes);
    assert_eq!(hex::encode(Sha256::digest(&stored)), m.data.sha256);
    let rdb = match m.data.compression {
        redback::config::Compression::Zstd { .. } => zstd::decode_all(&stored[..]).unwrap(),
        redback::config::Compression::None => stored,
    };
    assert_eq!(rdb.len() as u64, m.data.raw_bytes);
    let (db0, db5, _copy) = load_rdb(&rdb);
    assert_eq!((db0, db5), (source.dbsize(0), source.dbsize(5)));
    assert_eq!(m.source.rdb_version, 10, "Debian's redis 7.0 writes RDB 10");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_is_a_complete_rdb_with_a_manifest_written_last() {
    let server = RedisServer::start(&[]);
    server.fill_mixed();
    for compression in ["compression = \"zstd\"", "compression = \"none\""] {
        let s = setup(&format!("address = \"{}\"\n{compression}", server.addr())).await;
        let inst = s.config.instance("app").unwrap();
        let request = Request {
            kind: Kind::Manual,
            name: Some("before the migration".into()),
        };
        let m = backup::run(inst, s.storage.clone(), &request, Default::default())
            .await
            .unwrap();
        assert_eq!(m.instance, "app");
        assert_eq!(m.name.as_deref(), Some("before the migration"));
        assert_eq!(m.source.role, "master");
        assert!(
            m.data
                .key
                .starts_with(&format!("redback/app/{}/dump.rdb", m.id)),
            "{}",
            m.data.key
        );
        check_backup(&s, &m, &server).await;
        let listed = backup::list(inst, s.storage.as_ref()).await.unwrap();
        assert_eq!(listed, vec![m]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_come_from_an_online_replica_and_fall_back_with_a_reason() {
    let master = RedisServer::start(&[]);
    master.fill_mixed();
    let replica = RedisServer::start(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
    for _ in 0..500 {
        if replica
            .cli(&["INFO", "replication"])
            .contains("master_link_status:up")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = setup(&format!(
        "address = \"{}\"\nprefer_replica = true",
        master.addr()
    ))
    .await;
    let inst = s.config.instance("app").unwrap();
    let request = Request {
        kind: Kind::Automatic,
        name: None,
    };
    let m = backup::run(inst, s.storage.clone(), &request, Default::default())
        .await
        .unwrap();
    assert_eq!(m.source.role, "replica");
    assert_eq!(m.source.address, replica.addr());
    assert_eq!(m.source.fallback_reason, None);
    check_backup(&s, &m, &master).await;

    drop(replica);
    // The master notices the lost replica at its next ping; name it instead.
    let s2 = setup(&format!(
        "address = \"{}\"\nprefer_replica = true\nreplica = \"127.0.0.1:{}\"",
        master.addr(),
        common::free_port()
    ))
    .await;
    let inst = s2.config.instance("app").unwrap();
    let m = backup::run(inst, s2.storage.clone(), &request, Default::default())
        .await
        .unwrap();
    assert_eq!(m.source.role, "master");
    let reason = m.source.fallback_reason.clone().unwrap();
    assert!(reason.contains("cannot connect"), "{reason}");
}

#[test]
fn the_cli_takes_and_lists_backups() {
    let server = RedisServer::start(&[]);
    server.fill_mixed();
    let tmp = tempfile::tempdir().unwrap();
    let config = app_config(tmp.path(), &format!("address = \"{}\"", server.addr()));
    let c = config.to_str().unwrap();
    let (code, out, err) = redback(&[
        "backup",
        "--config",
        c,
        "--instance",
        "app",
        "--name",
        "nightly",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let id = out.trim().to_string();
    let (code, out, err) = redback(&["backups", "--config", c, "--instance", "app"]);
    assert_eq!(code, 0, "{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        row.contains("manual") && row.contains("nightly") && row.contains("master"),
        "{row}"
    );
    let (code, out, _) = redback(&["backups", "--config", c, "--instance", "app", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["id"], id.as_str());

    let (code, _, err) = redback(&["backup", "--config", c, "--instance", "nope"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("instance.nope") && err.contains("app"),
        "{err}"
    );
}

/// A fake master that answers the handshake and sends `payload` as the RDB.
async fn fake_master(payload: Vec<u8>) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let payload = payload.clone();
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut r = BufReader::new(r);
                loop {
                    // Read one RESP array command.
                    let mut line = String::new();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let n: usize = line.trim()[1..].parse().unwrap();
                    let mut args = Vec::new();
                    for _ in 0..n {
                        let mut len = String::new();
                        r.read_line(&mut len).await.unwrap();
                        let len: usize = len.trim()[1..].parse().unwrap();
                        let mut a = vec![0; len + 2];
                        r.read_exact(&mut a).await.unwrap();
                        a.truncate(len);
                        args.push(String::from_utf8_lossy(&a).to_uppercase());
                    }
                    let reply: Vec<u8> = match args[0].as_str() {
                        "INFO" => {
                            let body = "# x\r\nrole:master\r\nredis_version:7.0.15\r\n";
                            format!("${}\r\n{body}\r\n", body.len()).into_bytes()
                        }
                        "REPLCONF" => b"+OK\r\n".to_vec(),
                        "PSYNC" => {
                            let mut v =
                                b"+FULLRESYNC 0123456789012345678901234567890123456789 0\r\n"
                                    .to_vec();
                            v.extend_from_slice(format!("${}\r\n", payload.len()).as_bytes());
                            v.extend_from_slice(&payload);
                            v
                        }
                        _ => b"-ERR unknown\r\n".to_vec(),
                    };
                    if w.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_rdb_leaves_no_backup_behind() {
    // A real RDB with one byte flipped in the middle.
    let server = RedisServer::start(&[]);
    server.fill_mixed();
    server.cli(&["SAVE"]);
    let mut rdb = std::fs::read(server.rdb_path()).unwrap();
    let mid = rdb.len() / 2;
    rdb[mid] ^= 0x5a;
    let addr = fake_master(rdb).await;
    let s = setup(&format!("address = \"{addr}\"")).await;
    let inst = s.config.instance("app").unwrap();
    let e = manual_backup(&s, inst).await.unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("not valid") && text.contains("no backup was kept"),
        "{text}"
    );
    assert!(
        backup::list(inst, s.storage.as_ref())
            .await
            .unwrap()
            .is_empty()
    );
    let page = s.storage.list("", None, 1000).await.unwrap();
    assert!(
        page.objects.is_empty(),
        "objects left behind: {:?}",
        page.objects
    );
    let _ = s.config_path;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_proves_a_backup_and_catches_an_altered_one() {
    let server = RedisServer::start(&[]);
    server.fill_mixed();
    let s = setup(&format!("address = \"{}\"", server.addr())).await;
    let inst = s.config.instance("app").unwrap();
    let m = manual_backup(&s, inst).await.unwrap();
    let found = backup::find(inst, s.storage.as_ref(), &m.id).await.unwrap();
    assert_eq!(found, m);
    let v = backup::verify(s.storage.clone(), &m).await.unwrap();
    assert_eq!(
        (v.keys, v.raw_bytes, v.sha256.as_str()),
        (2000 + 14 + 300, m.data.raw_bytes, m.data.sha256.as_str())
    );

    let c = s.config_path.to_str().unwrap();
    let (code, out, err) = redback(&["verify", "--config", c, "--backup", &m.id]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("is good"), "{out}");

    // Alter one byte of the stored object behind redback's back.
    let file = s._tmp.path().join("backups").join(&m.data.key);
    let mut bytes = std::fs::read(&file).unwrap();
    let i = bytes.len() / 3;
    bytes[i] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    let e = backup::verify(s.storage.clone(), &m).await.unwrap_err();
    assert!(
        e.to_string().contains("sha256") && e.to_string().contains("altered"),
        "{e}"
    );
    let (code, _, err) = redback(&["verify", "--config", c, "--backup", &m.id]);
    assert_eq!(code, 1);
    assert!(err.contains("sha256"), "{err}");

    let (code, _, err) = redback(&["verify", "--config", c, "--backup", "20990101T000000Z-0000"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no backup 20990101T000000Z-0000") && err.contains("app"),
        "{err}"
    );
}

#[test]
fn inspect_shows_counts_biggest_keys_and_matches_without_restoring() {
    let server = RedisServer::start(&[]);
    server.fill_mixed();
    let tmp = tempfile::tempdir().unwrap();
    let config = app_config(tmp.path(), &format!("address = \"{}\"", server.addr()));
    let c = config.to_str().unwrap();
    let id = take_backup(c);
    let (code, out, err) = redback(&[
        "inspect",
        "--config",
        c,
        "--backup",
        &id,
        "--keys",
        "hash:*;db5:7",
        "--top",
        "3",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["stats"]["keys"], 2314);
    assert_eq!(v["stats"]["dbs"]["5"]["keys"], 300);
    assert_eq!(v["matched"], 3, "hash:small, hash:big, db5:7");
    let biggest = v["stats"]["largest_keys"].as_array().unwrap();
    assert_eq!(biggest.len(), 3);
    assert!(
        biggest[0]["key"].as_str().unwrap().ends_with(":big"),
        "{biggest:?}"
    );
    let (code, out, _) = redback(&["inspect", "--config", c, "--backup", &id]);
    assert_eq!(code, 0);
    assert!(
        out.contains("2314 keys") && out.contains("biggest keys:"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_diskless_or_not_with_a_password_or_an_acl_user_back_up() {
    for diskless in ["yes", "no"] {
        let server =
            RedisServer::start(&["--repl-diskless-sync", diskless, "--requirepass", "pw-1"]);
        server.fill_mixed();
        server.cli(&["ACL", "SETUSER", "bk", "on", ">pw-2", "+@all", "~*"]);
        // Secrets from files: setting env vars in a multi-threaded test is unsound.
        let (pw1, pw2) = (
            tempfile::NamedTempFile::new().unwrap(),
            tempfile::NamedTempFile::new().unwrap(),
        );
        std::fs::write(pw1.path(), "pw-1\n").unwrap();
        std::fs::write(pw2.path(), "pw-2\n").unwrap();
        for login in [
            format!("password_file = \"{}\"", pw1.path().display()),
            format!(
                "username = \"bk\"\npassword_file = \"{}\"",
                pw2.path().display()
            ),
        ] {
            let s = setup(&format!("address = \"{}\"\n{login}", server.addr())).await;
            let inst = s.config.instance("app").unwrap();
            let request = Request {
                kind: Kind::Manual,
                name: None,
            };
            let m = backup::run(inst, s.storage.clone(), &request, Default::default())
                .await
                .unwrap_or_else(|e| panic!("diskless={diskless} {login}: {e}"));
            let v = backup::verify(s.storage.clone(), &m).await.unwrap();
            assert_eq!(v.keys, 2314, "diskless={diskless} {login}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_1_mb_and_a_value_over_64_mb_round_trip_in_every_mode() {
    let source = RedisServer::start(&[]);
    source.fill_mixed();
    let long_key = noise(1, 1 << 20 | 17);
    let big_value = noise(2, 65 << 20);
    source.pipe(&[
        vec![b"SET".to_vec(), long_key.clone(), b"v".to_vec()],
        vec![b"SET".to_vec(), b"big".to_vec(), big_value],
    ]);
    let digest = source.digest();
    let s = setup(&format!("address = \"{}\"", source.addr())).await;
    let c = s.config_path.to_str().unwrap().to_string();
    let inst = s.config.instance("app").unwrap();
    let m = manual_backup(&s, inst).await.unwrap();
    assert!(m.data.raw_bytes > 65 << 20);
    for mode in ["handoff", "restore"] {
        let target = RedisServer::start(&[]);
        let t = target.addr();
        let (code, out, err) = tokio::task::spawn_blocking({
            let (c, id) = (c.clone(), m.id.clone());
            move || {
                redback(&[
                    "restore", "--config", &c, "--backup", &id, "--target", &t, "--mode", mode,
                    "--yes",
                ])
            }
        })
        .await
        .unwrap();
        assert_eq!(code, 0, "{mode}: {out}\n{err}");
        assert_eq!(target.digest(), digest, "{mode}");
    }
    // A key restore of more than redback holds back (64 MiB) verifies first.
    let target = RedisServer::start(&[]);
    let t = target.addr();
    let (code, out, err) = tokio::task::spawn_blocking({
        let (c, id) = (c.clone(), m.id.clone());
        move || {
            redback(&[
                "restore", "--config", &c, "--backup", &id, "--target", &t, "--keys", "big",
                "--yes", "--json",
            ])
        }
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(err.contains("verifying backup"), "{err}");
    assert_eq!(
        target.cli(&["STRLEN", "big"]).trim(),
        (65u64 << 20).to_string()
    );
}
