//! The daemon end to end: `redback serve` as a process on a temp config,
//! real redis-servers, the bundled storage and provider plugins, driven
//! over its REST API; time comes from a file the test rewrites
//! (`REDBACK_TEST_CLOCK_FILE`), so windows and retention are exercised
//! without waiting for them.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::daemon::*;
use common::redis::RedisServer;
use redback::api::client::{Client, encode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_day_over_the_api() {
    let shop = RedisServer::start(&[]);
    shop.fill_mixed();
    let orders = RedisServer::start(&["--requirepass", "orders-pw"]);
    orders.fill_mixed();
    let s = Setup::new(&format!(
        r#"
[instance.shop]
address = "{}"
storage = "local"
provider = "provider-jd"

[instance.orders]
address = "{}"
password_env = "ORDERS_PW"
storage = "local"
provider = "provider-tencent"
timezone = "Asia/Shanghai"
"#,
        shop.addr(),
        orders.addr()
    ));
    // Monday 2 March 2026, 00:05 UTC (08:05 in Shanghai: Tencent's
    // 02:00-08:00 window of the day has just closed).
    set_clock(&s.clock, "2026-03-02T00:05:00Z");
    let d = s.daemon(&[("ORDERS_PW", "orders-pw")]).await;
    let c = &d.client;

    // Instances, with the provider's labels.
    let list = c.get("/instances").await.unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["orders", "shop"]);
    assert_eq!(list[1]["state_label"], "Running");
    assert_eq!(
        list[0]["policy"]["window_start"],
        json!({"hour": 2, "minute": 0})
    );

    // Policy: JD lets the days and the start time change, never retention;
    // Tencent lets nothing but retention change.
    let policy = json!({
        "weekdays": ["monday", "thursday"],
        "window_start": {"hour": 1, "minute": 0},
        "window_end": {"hour": 2, "minute": 0},
        "retention_days": 7
    });
    let r = c.put("/instances/shop/policy", &policy).await.unwrap();
    assert_eq!(r["policy"], policy);
    assert_eq!(
        c.get("/instances/shop/policy").await.unwrap()["policy"],
        policy
    );
    let mut bad = policy.clone();
    bad["retention_days"] = json!(3);
    let e = c.put("/instances/shop/policy", &bad).await.unwrap_err();
    assert_eq!(e.code(), Some("forbidden_by_provider"), "{e}");
    let mut tencent = c.get("/instances/orders/policy").await.unwrap()["policy"].clone();
    tencent["weekdays"] = json!(["monday"]);
    let e = c
        .put("/instances/orders/policy", &tencent)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("forbidden_by_provider"), "{e}");

    // Backup now: a JD name, a Tencent remark.
    let shop_digest = shop.digest();
    let named = backup_now(&d, "shop", json!({"name": "before-migration"})).await;
    assert_eq!(named["name"], "before-migration");
    assert_eq!(named["kind"], "manual");
    assert_eq!(named["status"], "complete");
    assert_eq!(named["started_at"], "2026-03-02T00:05:00Z");
    assert_eq!(named["retention_until"], "2026-03-09T00:05:00Z");
    let orders_digest = orders.digest();
    let remarked = backup_now(&d, "orders", json!({"remark": "before the sale"})).await;
    assert_eq!(remarked["name"], "before the sale");

    // The list by time range and kind.
    let range = |from: &str, to: &str, kind: &str| {
        format!(
            "/instances/shop/backups?from={}&to={}&kind={kind}",
            encode(from),
            encode(to)
        )
    };
    let manual = c
        .get(&range(
            "2026-03-02T00:00:00Z",
            "2026-03-02T01:00:00Z",
            "manual",
        ))
        .await
        .unwrap();
    assert_eq!(ids(&manual), [named["id"].as_str().unwrap()]);
    for empty in [
        range("2026-03-02T00:00:00Z", "2026-03-02T01:00:00Z", "automatic"),
        range("2026-03-02T00:06:00Z", "2026-03-03T00:00:00Z", "manual"),
        range(
            "2026-03-01T00:00:00+08:00",
            "2026-03-02T08:05:00+08:00",
            "manual",
        ),
    ] {
        assert_eq!(
            ids(&c.get(&empty).await.unwrap()),
            Vec::<String>::new(),
            "{empty}"
        );
    }
    let e = c
        .get("/instances/shop/backups?from=yesterday")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("bad_request"));

    // A download link: local storage has no presigned URLs, so the daemon
    // serves it, for the provider's hour.
    let link = c
        .post(
            &format!("/backups/{}/download-link", named["id"].as_str().unwrap()),
            &json!({"network": "internal"}),
        )
        .await
        .unwrap();
    assert_eq!(link["served_by"], "daemon");
    assert_eq!(link["expires_at"], "2026-03-02T01:05:00Z");
    let url = link["url"].as_str().unwrap();
    let (status, stored) = download(c, url).await;
    assert_eq!(status, 200);
    assert_eq!(
        hex::encode(Sha256::digest(&stored)),
        named["sha256"].as_str().unwrap()
    );
    let (status, rdb) = download(c, &format!("{url}?format=rdb")).await;
    assert_eq!(status, 200);
    assert!(rdb.starts_with(b"REDIS0"), "a plain RDB");
    assert_eq!(rdb.len() as u64, named["raw_bytes"].as_u64().unwrap());
    let altered = format!(
        "{}0",
        url.trim_end_matches(|ch: char| ch.is_ascii_hexdigit())
    );
    assert_eq!(download(c, &altered).await.0, 403);

    // Keys restore on Tencent: confirmed with the instance password.
    orders.cli(&["DEL", "hash:big", "str:7"]);
    let oid = remarked["id"].as_str().unwrap();
    let keys = json!({"mode": "keys", "keys": "hash:big;str:7"});
    let e = c
        .post(&format!("/backups/{oid}/restore"), &keys)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("forbidden_by_provider"));
    assert!(e.to_string().contains("password"), "{e}");
    // The instance's credentials never go to another address.
    let mut elsewhere = keys.clone();
    elsewhere["password"] = json!("orders-pw");
    elsewhere["target"] = json!("127.0.0.1:1");
    let e = c
        .post(&format!("/backups/{oid}/restore"), &elsewhere)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("bad_request"), "{e}");
    let mut confirmed = keys.clone();
    confirmed["password"] = json!("orders-pw");
    let r = c
        .post(&format!("/backups/{oid}/restore"), &confirmed)
        .await
        .unwrap();
    let t = d.task_end(r["task"].as_str().unwrap()).await;
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert_eq!(t["kind"], "restore");
    assert_eq!(t["keys_done"], 2, "{t:#}");
    assert_eq!(
        orders.digest(),
        orders_digest,
        "the two keys are back as they were"
    );
    // JD offers no key restore; the provider's sentence says so.
    let e = c
        .post(
            &format!("/backups/{}/restore", named["id"].as_str().unwrap()),
            &keys,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("forbidden_by_provider"));
    assert!(e.to_string().contains("JD"), "{e}");

    // Clone into a new local redis-server.
    let clone_port = free_port();
    let clone_dir = s.dir.path().join("clone");
    let r = c
        .post(
            &format!("/backups/{oid}/restore"),
            &json!({"mode": "clone", "spawn_port": clone_port, "spawn_dir": clone_dir}),
        )
        .await
        .unwrap();
    let t = d.task_end(r["task"].as_str().unwrap()).await;
    assert_eq!(t["state"], "succeeded", "{t:#}\n{}", d.log_text());
    assert_eq!(t["kind"], "clone");
    let clone_cli = |args: &[&str]| {
        let out = Command::new("redis-cli")
            .args(["-p", &clone_port.to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    // The spawned server has no DEBUG command: compare what it holds key
    // by key through DUMP, against the source (as it was backed up).
    let keyspace = |info: String| -> Vec<String> {
        info.lines()
            .filter(|l| l.starts_with("db"))
            .map(|l| l.split(",avg_ttl").next().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        keyspace(clone_cli(&["INFO", "keyspace"])),
        keyspace(orders.cli(&["INFO", "keyspace"]))
    );
    // Hash and set order is the server's own: compare sorted contents.
    let contents = |read: &dyn Fn(&[&str]) -> String, key: &str| -> Vec<String> {
        let ty = read(&["TYPE", key]);
        let mut lines: Vec<String> = match ty.trim() {
            "string" => read(&["GET", key]),
            "hash" => read(&["HGETALL", key]),
            "set" => read(&["SMEMBERS", key]),
            "zset" => read(&["ZRANGE", key, "0", "-1", "WITHSCORES"]),
            "list" => read(&["LRANGE", key, "0", "-1"]),
            "stream" => read(&["XRANGE", key, "-", "+"]),
            other => panic!("{key}: type {other}"),
        }
        .lines()
        .map(str::to_string)
        .collect();
        if matches!(ty.trim(), "hash" | "set") {
            lines.sort();
        }
        lines
    };
    let source = |args: &[&str]| orders.cli(args);
    for key in [
        "hash:big", "zset:big", "list:big", "set:big", "stream", "str:7", "int",
    ] {
        let (a, b) = (contents(&clone_cli, key), contents(&source, key));
        assert!(a == b && !a.is_empty(), "{key} differs in the clone");
    }
    clone_cli(&["SHUTDOWN", "NOSAVE"]);

    // The task center: every task with its state.
    let tasks = c.get("/tasks").await.unwrap();
    let mut seen: Vec<(String, String, String)> = tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["instance"].as_str().unwrap_or("").to_string(),
                t["kind"].as_str().unwrap().to_string(),
                t["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    let want = [
        ("orders", "backup", "succeeded"),
        ("orders", "clone", "succeeded"),
        ("orders", "restore", "succeeded"),
        ("shop", "backup", "succeeded"),
    ];
    assert_eq!(
        seen,
        want.map(|(a, b, c)| (a.into(), b.into(), c.into())),
        "{tasks:#}"
    );
    assert_eq!(
        c.get("/instances/orders").await.unwrap()["state_label"],
        "Running"
    );

    // 01:30 on a Monday: inside shop's new window, so an automatic backup
    // runs; it is not orders' window (09:30 in Shanghai).
    set_clock(&s.clock, "2026-03-02T01:30:00Z");
    let auto = d.automatic_backup("shop").await;
    let started = auto["started_at"].as_str().unwrap();
    assert!(
        ("2026-03-02T01:00:00Z".."2026-03-02T02:00:00Z").contains(&started),
        "{auto:#}"
    );
    assert_eq!(shop.digest(), shop_digest);
    assert_eq!(
        ids(&c.get("/instances/orders/backups").await.unwrap()),
        [oid],
        "no automatic backup of orders outside its window"
    );

    // Eight days on, the named backup is past its 7 days and the sweeper
    // deletes it; the automatic one is past them too but is the newest good
    // backup of shop, so it stays (keep_last = 1), as does orders' only one.
    set_clock(&s.clock, "2026-03-10T00:30:00Z");
    let named_id = named["id"].as_str().unwrap().to_string();
    let remaining = d
        .until("the sweep of the named backup", async |c: &Client| {
            let l = ids(&c.get("/instances/shop/backups").await.unwrap());
            (!l.contains(&named_id)).then_some(l)
        })
        .await;
    assert_eq!(remaining, [auto["id"].as_str().unwrap()]);
    assert_eq!(
        ids(&c.get("/instances/orders/backups").await.unwrap()),
        [oid]
    );
    assert!(
        !s.stored_files().iter().any(|f| f.contains(&named_id)),
        "{:?}",
        s.stored_files()
    );
    let tasks = c.get("/tasks?instance=shop").await.unwrap();
    assert!(
        tasks
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["kind"] == "sweep"
                && t["backup_id"] == named_id.as_str()
                && t["state"] == "succeeded"),
        "{tasks:#}"
    );
    // The link handed out on day one has expired.
    assert_eq!(download(c, url).await.0, 403);

    // The catalog is a cache of the manifests: deleted, rebuilt, the same list.
    let before = (
        c.get("/instances/shop/backups").await.unwrap(),
        c.get("/instances/orders/backups").await.unwrap(),
    );
    d.stop();
    for f in ["catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm"] {
        let _ = std::fs::remove_file(s.dir.path().join("state").join(f));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_redback"))
        .args(["catalog", "rebuild", "--json", "--config"])
        .arg(&s.config)
        .env("ORDERS_PW", "orders-pw")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["inserted"], 2, "{summary:#}");
    let d = s.daemon(&[("ORDERS_PW", "orders-pw")]).await;
    let after = (
        d.client.get("/instances/shop/backups").await.unwrap(),
        d.client.get("/instances/orders/backups").await.unwrap(),
    );
    assert_eq!(after, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_the_middle_of_a_backup() {
    let redis = RedisServer::start(&[]);
    // 20,000 keys of 1 KiB that do not compress, so the upload writes as
    // it goes; at 300 µs a key, the RDB takes about 6 s.
    redis.fill_noise("k", 20_000, 1024);
    redis.cli(&["CONFIG", "SET", "rdb-key-save-delay", "300"]);
    let s = Setup::new(&format!(
        r#"
[instance.shop]
address = "{}"
storage = "local"
provider = "provider-jd"
"#,
        redis.addr()
    ));
    set_clock(&s.clock, "2026-03-02T00:05:00Z");
    let d = s.daemon(&[]).await;
    let r = d
        .client
        .post("/instances/shop/backups", &json!({"name": "doomed"}))
        .await
        .unwrap();
    let task_id = r["task"].as_str().unwrap().to_string();
    let partial = s.backups_dir().join(".redback-partial");
    let backup_id = d
        .until("bytes of the backup in storage", async |c: &Client| {
            let t = c.get(&format!("/tasks/{task_id}")).await.unwrap();
            assert_eq!(t["state"], "running", "{t:#}");
            let written = std::fs::read_dir(&partial)
                .map(|d| {
                    d.filter_map(Result::ok)
                        .any(|e| e.metadata().map(|m| m.len() > 0).unwrap_or(false))
                })
                .unwrap_or(false);
            (written && t["bytes_done"].as_u64() > Some(0))
                .then(|| t["backup_id"].as_str().unwrap().to_string())
        })
        .await;
    d.kill9();
    assert!(
        !s.stored_files().is_empty(),
        "the cut-off upload left a partial file"
    );
    redis.cli(&["CONFIG", "SET", "rdb-key-save-delay", "0"]);

    let d = s.daemon(&[]).await;
    let t = d.client.get(&format!("/tasks/{task_id}")).await.unwrap();
    assert_eq!(t["state"], "failed", "{t:#}");
    assert_eq!(t["backup_id"], backup_id.as_str());
    assert!(t["error"].as_str().unwrap().contains("stopped"), "{t:#}");
    assert_eq!(
        s.stored_files(),
        Vec::<String>::new(),
        "no manifest, no data object, no partial file of the cut-off backup"
    );
    assert_eq!(
        ids(&d.client.get("/instances/shop/backups").await.unwrap()),
        Vec::<String>::new()
    );
    let e = d.client.get(&format!("/backups/{backup_id}")).await;
    assert!(
        e.as_ref().map(|b| b["status"] == "failed").unwrap_or(true),
        "{e:?}"
    );

    // JD's default window is 03:00-04:00: the next one runs normally.
    set_clock(&s.clock, "2026-03-02T03:30:00Z");
    let auto = d.automatic_backup("shop").await;
    assert_eq!(auto["status"], "complete");
    let id = auto["id"].as_str().unwrap();
    let files = s.stored_files();
    assert!(
        files
            .iter()
            .any(|f| f.ends_with(&format!("{id}/manifest.json"))),
        "{files:?}"
    );
    assert!(
        files.iter().all(|f| f.contains(id)),
        "only the new backup's objects: {files:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_keep_running_tasks_and_the_previous_plugin_when_a_new_one_is_refused() {
    let redis = RedisServer::start(&[]);
    redis.fill_mixed();
    let other = RedisServer::start(&[]);
    other.fill_mixed();
    let instance = |name: &str, r: &RedisServer| {
        format!(
            "\n[instance.{name}]\naddress = \"{}\"\nstorage = \"local\"\nprovider = \"provider-jd\"\n",
            r.addr()
        )
    };
    let s = Setup::new(&instance("shop", &redis));
    // A plugin directory of its own, to break a plugin in.
    let plugins = s.dir.path().join("plugins");
    for p in ["storage-local", "provider-jd"] {
        common::copy_plugin(p, &plugins, p);
    }
    let text = std::fs::read_to_string(&s.config).unwrap().replace(
        &common::repo_root()
            .join("target/plugins")
            .display()
            .to_string(),
        &plugins.display().to_string(),
    );
    std::fs::write(&s.config, &text).unwrap();
    set_clock(&s.clock, "2026-03-02T00:05:00Z");
    let d = s.daemon(&[]).await;
    let c = &d.client;

    // A slow backup runs across every reload below.
    redis.cli(&["CONFIG", "SET", "rdb-key-save-delay", "2000"]);
    let slow = c
        .post(
            "/instances/shop/backups",
            &json!({"name": "across reloads"}),
        )
        .await
        .unwrap();

    // A new storage-local that does not load: the old one serves on, and
    // the failure is reported by the reload and by /health.
    let wasm = plugins.join("storage-local/storage_local.wasm");
    let good = std::fs::read(&wasm).unwrap();
    std::fs::write(&wasm, b"\0asm not really").unwrap();
    let r = c.post("/plugins/reload", &json!({})).await.unwrap();
    assert_eq!(r["kept_previous"][0]["name"], "storage-local", "{r:#}");
    let t = c
        .get(&format!("/tasks/{}", slow["task"].as_str().unwrap()))
        .await
        .unwrap();
    assert_eq!(t["state"], "running", "the slow backup is still going");
    assert!(r["plugins"]["storage-local"].is_string(), "{r:#}");
    let h = c.get("/health").await.unwrap();
    assert_eq!(h["status"], "degraded", "{h:#}");
    let plugins_view = c.get("/plugins").await.unwrap();
    assert!(
        plugins_view["refused"][0]["error"].as_str().unwrap().len() > 10,
        "{plugins_view:#}"
    );

    // SIGHUP: a second instance added to the config appears.
    std::fs::write(&s.config, format!("{text}{}", instance("cache", &other))).unwrap();
    unsafe { libc::kill(d.child.id() as i32, libc::SIGHUP) };
    d.until("the instance added by SIGHUP", async |c: &Client| {
        let l = c.get("/instances").await.unwrap();
        (l.as_array().unwrap().len() == 2).then_some(())
    })
    .await;
    let cache = backup_now(&d, "cache", json!({"name": "after reload"})).await;
    assert_eq!(cache["status"], "complete");

    // The good build back: nothing refused any more.
    std::fs::write(&wasm, &good).unwrap();
    let r = c.post("/plugins/reload", &json!({})).await.unwrap();
    assert_eq!(r["kept_previous"], json!([]), "{r:#}");
    assert_eq!(c.get("/health").await.unwrap()["status"], "ok");

    // A config that does not validate changes nothing.
    std::fs::write(&s.config, format!("{text}\n[instance.broken]\n")).unwrap();
    let e = c.post("/plugins/reload", &json!({})).await.unwrap_err();
    assert_eq!(e.code(), Some("bad_request"), "{e}");
    assert!(e.to_string().contains("instance.broken"), "{e}");
    assert_eq!(
        c.get("/instances").await.unwrap().as_array().unwrap().len(),
        2
    );

    redis.cli(&["CONFIG", "SET", "rdb-key-save-delay", "0"]);
    let t = d.task_end(slow["task"].as_str().unwrap()).await;
    assert_eq!(t["state"], "succeeded", "{t:#}\n{}", d.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cli_command_talks_to_the_daemon_with_server() {
    let redis = RedisServer::start(&[]);
    redis.fill_mixed();
    let s = Setup::new(&format!(
        "\n[instance.shop]\naddress = \"{}\"\nstorage = \"local\"\nprovider = \"provider-jd\"\n",
        redis.addr()
    ));
    set_clock(&s.clock, "2026-03-02T00:05:00Z");
    let _d = s.daemon(&[]).await;
    let server = format!("http://127.0.0.1:{}", s.port);
    let cli = |args: &[&str]| -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_redback"))
            .args(["--server", &server])
            .args(args)
            .env("REDBACK_API_TOKEN", TOKEN)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let ok = |args: &[&str]| -> String {
        let (ok, out, err) = cli(args);
        assert!(ok, "redback {args:?}: {err}{out}");
        out
    };
    let json = |args: &[&str]| -> Value {
        let out = ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    };

    let id = ok(&["backup", "--instance", "shop", "--name", "from the cli"])
        .trim()
        .to_string();
    let list = json(&[
        "backups",
        "--instance",
        "shop",
        "--kind",
        "manual",
        "--json",
    ]);
    assert_eq!(ids(&list), [id.as_str()]);
    assert_eq!(list[0]["name"], "from the cli");
    let none = json(&[
        "backups",
        "--instance",
        "shop",
        "--from",
        "2026-03-03T00:00:00Z",
        "--json",
    ]);
    assert_eq!(ids(&none), Vec::<String>::new());
    assert!(ok(&["backups", "--instance", "shop"]).contains(&id));

    let v = json(&["verify", "--backup", &id, "--json"]);
    assert_eq!(v["keys"], redis.dbsize(0) + redis.dbsize(5));
    let i = json(&[
        "inspect",
        "--backup",
        &id,
        "--keys",
        "str:1999;int",
        "--json",
    ]);
    assert_eq!(i["matched"], 2, "{i:#}");

    let link = json(&["link", "--backup", &id, "--network", "internal", "--json"]);
    assert_eq!(link["expires_at"], "2026-03-02T01:05:00Z");

    let p = json(&[
        "policy",
        "--instance",
        "shop",
        "--weekdays",
        "monday,friday",
        "--window",
        "01:00-02:00",
        "--json",
    ]);
    assert_eq!(p["weekdays"], json!(["monday", "friday"]));
    let (ok_, _, err) = cli(&["policy", "--instance", "shop", "--retention-days", "3"]);
    assert!(!ok_ && err.contains("forbidden_by_provider"), "{err}");

    redis.cli(&["DEL", "str:5"]);
    let (ok_, _, err) = cli(&["restore", "--backup", &id]);
    assert!(!ok_ && err.contains("--yes"), "{err}");
    ok(&["restore", "--backup", &id, "--yes"]);
    assert_eq!(redis.cli(&["GET", "str:5"]).trim(), "value-5");

    let tasks = json(&["tasks", "--instance", "shop", "--json"]);
    let kinds: Vec<&str> = tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["restore", "backup"]);
    let view = json(&["config", "check", "--json"]);
    assert_eq!(view["instance"]["shop"]["provider"], "provider-jd");
    let plugins = json(&["plugin", "list", "--json"]);
    assert!(plugins["plugins"].as_array().unwrap().len() >= 2);
    let check = json(&["plugin", "check", "--storage", "local", "--json"]);
    assert!(
        check["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["passed"] == true),
        "{check:#}"
    );
    let r = json(&["reload", "--json"]);
    assert_eq!(r["instances"], 1);
    assert_eq!(json(&["sweep", "--json"])["deleted"], json!([]));
    assert_eq!(json(&["catalog", "rebuild", "--json"])["inserted"], 1);

    // A stored backup altered in place: verify names it damaged (422), not
    // a storage that may come back.
    let data = walk_files(&s.backups_dir())
        .into_iter()
        .find(|f| f.contains(&id) && f.ends_with(".zst"))
        .unwrap();
    let mut bytes = std::fs::read(&data).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();
    let (ok_, _, err) = cli(&["verify", "--backup", &id]);
    assert!(
        !ok_ && err.contains("422") && err.contains("backup_damaged"),
        "{err}"
    );

    // Without a token, the daemon's sentence says where to find it.
    let out = Command::new(env!("CARGO_BIN_EXE_redback"))
        .args(["--server", &server, "tasks"])
        .env_remove("REDBACK_API_TOKEN")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("Authorization: Bearer"),
        "{err}"
    );
    // Neither --config nor --server: the fix is named.
    let out = Command::new(env!("CARGO_BIN_EXE_redback"))
        .args(["backups", "--instance", "shop"])
        .env_remove("REDBACK_SERVER")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--config FILE") && err.contains("--server"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alibaba_style_reads_a_replica_and_archives_for_its_own_seven_days() {
    let master = RedisServer::start(&[]);
    master.fill_mixed();
    let port = master.port.to_string();
    let replica = RedisServer::start(&["--replicaof", "127.0.0.1", &port]);
    let started = Instant::now();
    while !replica
        .cli(&["INFO", "replication"])
        .contains("master_link_status:up")
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the replica never synced"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // No prefer_replica in the config: the provider asks for it.
    let s = Setup::new(&format!(
        r#"
[storage.archive]
plugin = "storage-local"
root = "archive"

[instance.orders]
address = "{}"
storage = "local"
provider = "provider-alibaba"
archive_storage = "archive"
"#,
        master.addr()
    ));
    set_clock(&s.clock, "2026-03-02T00:05:00Z");
    let d = s.daemon(&[]).await;
    let b = backup_now(&d, "orders", json!({})).await;
    assert_eq!(b["source_role"], "replica", "{b:#}");
    assert_eq!(b["source_address"], replica.addr().as_str());
    let id = b["id"].as_str().unwrap().to_string();
    let archived = d
        .until("the archive copy", async |c: &Client| {
            let b = c.get(&format!("/backups/{id}")).await.unwrap();
            b["archived"].is_object().then_some(b)
        })
        .await;
    assert_eq!(archived["archived"]["storage"], "archive");
    let archive_root = s.dir.path().join("archive");
    let copies = || -> usize {
        walk_files(&archive_root)
            .iter()
            .filter(|f| f.contains(&id))
            .count()
    };
    assert_eq!(copies(), 2, "data and manifest in the archive");

    // Eight days on: the archive copy is past Alibaba's 7 days and goes;
    // the backup itself is the newest good one of the instance and stays.
    set_clock(&s.clock, "2026-03-10T00:30:00Z");
    d.until("the archive sweep", async |c: &Client| {
        let b = c.get(&format!("/backups/{id}")).await.unwrap();
        b["archived"].is_null().then_some(())
    })
    .await;
    assert_eq!(copies(), 0);
    assert_eq!(
        ids(&d.client.get("/instances/orders/backups").await.unwrap()),
        [id.as_str()]
    );
}
