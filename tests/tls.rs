//! TLS to Redis end to end: redis-servers listening only on a TLS port
//! (`tests/common/redis.rs`, `start_tls`) with certificates generated in
//! the test (`tests/common/tls.rs`). A backup and every restore mode over
//! TLS, compared key by key (`DEBUG DIGEST`); a server that requires a
//! client certificate; the handoff to a target that replicates over TLS,
//! with and without a certificate for it; and each refusal with the
//! sentence that names the cause and the key that fixes it.

mod common;

use std::path::Path;

use common::redis::{RedisServer, ServerTls, compat_server};
use common::tls::Pki;
use common::*;
use redback::config::Config;
use redback::replication::Connection;

/// A config for instance `app` at `address`, with `tables` (e.g. an
/// `[instance.app.tls]` table) appended; returns its path.
fn config(dir: &Path, address: &str, tables: &str) -> String {
    let path = app_config(
        dir,
        &format!("address = \"{address}\"\nconnect_timeout_secs = 2"),
    );
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(tables);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn tls_table(pki: &Pki, extra: &str) -> String {
    format!("\n[instance.app.tls]\n{}", pki.instance_tls(extra))
}

fn handoff_lines(pki: &Pki) -> String {
    format!(
        "handoff_cert_file = \"{}\"\nhandoff_key_file = \"{}\"\n",
        pki.handoff_cert.display(),
        pki.handoff_key.display()
    )
}

fn run_ok(args: &[&str]) -> serde_json::Value {
    let (code, out, err) = redback(args);
    assert_eq!(code, 0, "{args:?}: {out}\n{err}");
    serde_json::from_str(&out).unwrap_or_else(|_| panic!("{args:?}: not JSON: {out}\n{err}"))
}

#[test]
fn a_backup_and_every_restore_mode_work_over_tls_with_client_certificates() {
    let pki = Pki::new();
    let tls = ServerTls {
        pki: &pki,
        auth_clients: true,
        replication: true,
    };
    let source = RedisServer::start_tls(&tls, &[]);
    source.fill_mixed();
    let before = source.digest();
    let tmp = tempfile::tempdir().unwrap();
    let c = config(
        tmp.path(),
        &source.addr(),
        &tls_table(&pki, &handoff_lines(&pki)),
    );
    let id = take_backup(&c);
    let (code, out, err) = redback(&["verify", "--config", &c, "--backup", &id]);
    assert_eq!(code, 0, "{out}\n{err}");

    // The whole instance in place: RESTORE pipeline, then handoff (the
    // target replicates over TLS from redback's handoff master).
    for (mode, expected) in [("restore", "restore-pipeline"), ("handoff", "handoff")] {
        source.cli(&["FLUSHALL"]);
        source.cli(&["SET", "written-after-the-backup", "x"]);
        let report = run_ok(&[
            "restore", "--config", &c, "--backup", &id, "--mode", mode, "--yes", "--json",
        ]);
        assert_eq!(report["mode"], expected, "{report}");
        assert_eq!(report["keys_restored"], 2314, "{mode}");
        assert_eq!(source.digest(), before, "{mode}: equal key by key");
        assert!(
            source.cli(&["INFO", "replication"]).contains("role:master"),
            "{mode}: left a replica of redback"
        );
    }

    // Chosen keys.
    source.cli(&["SET", "str:7", "changed"]);
    source.cli(&["DEL", "hash:big"]);
    let report = run_ok(&[
        "restore",
        "--config",
        &c,
        "--backup",
        &id,
        "--keys",
        "str:7;hash:big",
        "--yes",
        "--json",
    ]);
    assert_eq!(report["keys_restored"], 2);
    assert_eq!(source.digest(), before, "keys: equal key by key");

    // A clone into an empty TLS address: `target_tls` defaults to the
    // instance's CA and client certificate, the name from the address.
    let target = RedisServer::start_tls(
        &ServerTls {
            pki: &pki,
            auth_clients: true,
            replication: false,
        },
        &[],
    );
    let t = target.addr();
    let report = run_ok(&[
        "clone", "--config", &c, "--backup", &id, "--target", &t, "--json",
    ]);
    assert_eq!(report["keys_restored"], 2314);
    assert_eq!(target.digest(), before, "clone: equal key by key");
}

#[test]
fn a_handoff_to_a_tls_replicating_target_without_a_certificate_falls_back_to_the_pipeline_and_says_so()
 {
    let pki = Pki::new();
    let source = RedisServer::start_tls(
        &ServerTls {
            pki: &pki,
            auth_clients: false,
            replication: true,
        },
        &[],
    );
    source.cli(&["SET", "k", "v"]);
    source.cli(&["HSET", "h", "f", "1"]);
    let before = source.digest();
    let tmp = tempfile::tempdir().unwrap();
    let c = config(tmp.path(), &source.addr(), &tls_table(&pki, ""));
    let id = take_backup(&c);
    source.cli(&["FLUSHALL"]);

    let (code, _, err) = redback(&[
        "restore", "--config", &c, "--backup", &id, "--mode", "handoff", "--yes",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("tls-replication yes") && err.contains("handoff_cert_file"),
        "{err}"
    );
    assert_eq!(source.dbsize(0), 0, "a refused handoff changes nothing");

    let report = run_ok(&[
        "restore", "--config", &c, "--backup", &id, "--yes", "--json",
    ]);
    assert_eq!(report["mode"], "restore-pipeline");
    let note = report["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("not a handoff") && note.contains("handoff_cert_file"),
        "{report}"
    );
    assert_eq!(source.digest(), before);
}

#[test]
fn command_replay_goes_over_tls_into_an_older_target() {
    let Some(valkey) = compat_server("REDBACK_VALKEY9", "valkey9") else {
        return;
    };
    // A newer engine's backup (plain) replayed into Redis 7.0 over TLS,
    // configured by `target_tls` alone.
    let source = RedisServer::start_with(&valkey, &[]);
    source.fill_mixed();
    let pki = Pki::new();
    let target = RedisServer::start_tls(
        &ServerTls {
            pki: &pki,
            auth_clients: true,
            replication: false,
        },
        &[],
    );
    let tmp = tempfile::tempdir().unwrap();
    let c = config(
        tmp.path(),
        &source.addr(),
        &format!(
            "\n[instance.app.target_tls]\n{}",
            pki.instance_tls("server_name = \"redis.test\"\n")
        ),
    );
    let id = take_backup(&c);
    let t = target.addr();
    let report = run_ok(&[
        "restore", "--config", &c, "--backup", &id, "--target", &t, "--yes", "--json",
    ]);
    assert_eq!(report["mode"], "replay");
    assert_eq!(
        (target.dbsize(0), target.dbsize(5)),
        (source.dbsize(0), source.dbsize(5))
    );
    for cmd in [
        &["GET", "str:42"][..],
        &["LRANGE", "list:big", "0", "-1"],
        &["ZRANGE", "zset:big", "0", "-1", "WITHSCORES"],
        &["HGETALL", "hash:small"],
        &["XRANGE", "stream", "-", "+"],
    ] {
        assert_eq!(source.cli(cmd), target.cli(cmd), "{cmd:?}");
    }
}

/// Connects to instance `app` of the config text as a backup would; the
/// error's sentence, or `None` when the connection works.
fn connect_error(dir: &Path, address: &str, tables: &str) -> Option<String> {
    let path = config(dir, address, tables);
    let config = Config::load(Path::new(&path)).unwrap_or_else(|e| panic!("{e}"));
    let instance = config.instance("app").unwrap();
    let ep = redback::backup::endpoint_for(instance, &instance.address);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        match Connection::open(&ep).await {
            Err(e) => Some(e.to_string()),
            Ok(mut c) => c.info("server").await.err().map(|e| e.to_string()),
        }
    })
}

#[test]
fn refusals_say_which_tls_problem_it_is_and_which_key_fixes_it() {
    let pki = Pki::new();
    let tls_server = RedisServer::start_tls(
        &ServerTls {
            pki: &pki,
            auth_clients: true,
            replication: false,
        },
        &[],
    );
    let plain_server = RedisServer::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let a = tls_server.addr();

    assert_eq!(connect_error(d, &a, &tls_table(&pki, "")), None);
    let wrong_ca = format!(
        "\n[instance.app.tls]\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        pki.other_ca.display(),
        pki.client_cert.display(),
        pki.client_key.display()
    );
    let cases: Vec<(&str, String, String, Vec<&str>)> = vec![
        (
            "wrong CA",
            a.clone(),
            wrong_ca.clone(),
            vec!["certificate not trusted", "instance.app.tls.ca_file"],
        ),
        (
            "wrong server name",
            a.clone(),
            tls_table(&pki, "server_name = \"other.test\"\n"),
            vec![
                "name mismatch",
                "other.test",
                "redis.test",
                "instance.app.tls.server_name",
            ],
        ),
        (
            "no client certificate",
            a.clone(),
            format!("\n[instance.app.tls]\nca_file = \"{}\"\n", pki.ca.display()),
            vec![
                "wants a client certificate",
                "instance.app.tls.cert_file",
                "instance.app.tls.key_file",
            ],
        ),
        (
            "TLS against a plain port",
            plain_server.addr(),
            tls_table(&pki, ""),
            vec!["speak TLS on this port", "tls-port", "instance.app.tls"],
        ),
        (
            "plain against a TLS port",
            a.clone(),
            String::new(),
            vec!["tls-port", "`tls` table"],
        ),
    ];
    for (case, address, tables, words) in cases {
        let e = connect_error(d, &address, &tables).unwrap_or_else(|| panic!("{case}: connected"));
        for w in words {
            assert!(e.contains(w), "{case}: `{w}` missing from: {e}");
        }
    }

    // Through the CLI: the same sentence, and no key material in anything
    // it prints.
    let c = config(d, &a, &wrong_ca);
    let (code, out, err) = redback(&["backup", "--config", &c, "--instance", "app"]);
    assert_ne!(code, 0);
    assert!(err.contains("certificate not trusted"), "{err}");
    let key_pem = std::fs::read_to_string(&pki.client_key).unwrap();
    let key_body = key_pem.lines().nth(1).unwrap();
    assert!(!out.contains(key_body) && !err.contains(key_body));
}

#[test]
fn bad_tls_files_are_refused_at_config_load_naming_file_key_and_fix() {
    let pki = Pki::new();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let not_pem = d.join("not-pem.crt");
    std::fs::write(&not_pem, "hello").unwrap();
    let missing = d.join("missing.crt");
    let cases: Vec<(String, &str, &str)> = vec![
        (
            format!("ca_file = \"{}\"\n", missing.display()),
            "instance.app.tls.ca_file",
            "cannot read",
        ),
        (
            format!("ca_file = \"{}\"\n", not_pem.display()),
            "instance.app.tls.ca_file",
            "holds no certificate",
        ),
        (
            format!("cert_file = \"{}\"\n", pki.client_cert.display()),
            "instance.app.tls.key_file",
            "needs the private key",
        ),
        (
            format!(
                "cert_file = \"{}\"\nkey_file = \"{}\"\n",
                pki.client_cert.display(),
                pki.server_key.display()
            ),
            "instance.app.tls.key_file",
            "does not go with",
        ),
        (
            format!("key_file = \"{}\"\n", not_pem.display()),
            "instance.app.tls.cert_file",
            "needs the certificate",
        ),
        (
            format!(
                "cert_file = \"{}\"\nkey_file = \"{}\"\n",
                pki.client_cert.display(),
                not_pem.display()
            ),
            "instance.app.tls.key_file",
            "holds no PEM private key",
        ),
        (
            "server_name = \"not a name\"\n".to_string(),
            "instance.app.tls.server_name",
            "not a DNS name",
        ),
        ("sni = \"x\"\n".to_string(), "sni", "unknown field"),
    ];
    for (lines, key, words) in cases {
        let path = config(
            d,
            "127.0.0.1:6379",
            &format!("\n[instance.app.tls]\n{lines}"),
        );
        let e = Config::load(Path::new(&path)).unwrap_err().to_string();
        assert!(e.contains(key) && e.contains(words), "{lines}: {e}");
        assert!(e.contains("redback.toml"), "names the file: {e}");
    }
}
