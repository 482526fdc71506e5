//! The API's security end to end, on `redback serve` as a process: secrets
//! planted in the config, the files it names and the environment never
//! reach a log line (at the most verbose level) or an API response, through
//! a console day of requests that succeed and fail; and path traversal
//! through every path parameter and request body is refused, with nothing
//! written outside the daemon's state and the storage's root.

mod common;

use std::path::Path;

use common::daemon::*;
use common::redis::RedisServer;
use common::s3::S3Server;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use redback::api::client::Client;
use serde_json::{Value, json};

/// Every request and response of a test, as text, to search for secrets.
struct Console<'a> {
    d: &'a Daemon,
    transcript: String,
}

impl<'a> Console<'a> {
    fn new(d: &'a Daemon) -> Console<'a> {
        Console {
            d,
            transcript: String::new(),
        }
    }

    /// One request with `client`; the status, headers and body are kept.
    async fn send_with(
        &mut self,
        client: &Client,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Vec<u8>) {
        let r = client
            .send(method.clone(), path, body.as_ref())
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.d.log_text()));
        let bytes = r.body.collect().await.unwrap().to_bytes().to_vec();
        self.transcript
            .push_str(&format!("{method} {path} -> {}\n", r.status));
        for (k, v) in &r.headers {
            self.transcript
                .push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
        }
        self.transcript.push_str(&String::from_utf8_lossy(&bytes));
        self.transcript.push('\n');
        (r.status, bytes)
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let client = self.d.client.clone();
        let (status, bytes) = self.send_with(&client, method, path, body).await;
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// A request that must succeed; its JSON reply.
    async fn ok(&mut self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.send(method.clone(), path, body).await;
        assert!(status.is_success(), "{method} {path}: {status} {v:#}");
        v
    }

    /// Waits for task `id` to end; returns it.
    async fn task_end(&mut self, id: &str) -> Value {
        let started = std::time::Instant::now();
        loop {
            let t = self.ok(Method::GET, &format!("/tasks/{id}"), None).await;
            if t["state"] != "running" && t["state"] != "pending" {
                return t;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(120),
                "task {id} never ended: {t:#}\n{}",
                self.d.log_text()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Starts a manual backup of `instance` and waits for its task.
    async fn backup(&mut self, instance: &str) -> Value {
        let r = self
            .ok(
                Method::POST,
                &format!("/instances/{instance}/backups"),
                Some(json!({"name": "nightly"})),
            )
            .await;
        self.task_end(r["task"].as_str().unwrap()).await
    }
}

/// A secret as written, and the encodings code could print it in.
fn spellings(secret: &str) -> Vec<String> {
    let b = secret.as_bytes();
    vec![
        secret.to_string(),
        hex::encode(b),
        hex::encode_upper(b),
        base64(b, true),
        base64(b, false),
        base64(b, false).replace('+', "-").replace('/', "_"),
    ]
}

fn base64(bytes: &[u8], pad: bool) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
        if pad {
            out.push_str(&"=".repeat(3 - chunk.len()));
        }
    }
    out
}

/// Panics naming the secret, its spelling and the line it is on.
fn assert_no_secret(what: &str, text: &str, secrets: &[(&str, &str)]) {
    for (name, secret) in secrets {
        for s in spellings(secret) {
            if let Some(at) = text.find(&s) {
                let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
                let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
                panic!("{what} holds the {name} (as `{s}`):\n{}", &text[start..end]);
            }
        }
    }
}

const SHOP_PW: &str = "shop-pw-env-7Qm2Xr9Lk4";
const ORDERS_PW: &str = "orders-pw-file-Zt8Vn3Hq6W";
const LOCKED_PW: &str = "locked-pw-Cs2Mf7Wb4N";
const WRONG_PW: &str = "wrong-pw-env-Jd5Rk8Ts2E";
const WRONG_S3_SECRET: &str = "wrong-s3-secret-Ua9Ge3Yv6P";
const ENV_ONLY: &str = "env-only-Hc6Lp9Qz3U";
const WRONG_CONFIRM: &str = "wrong-confirm-Rb1Xk5Dn8J";
const WRONG_TOKEN: &str = "wrong-token-Eq4Tz7Fa2V";
const INLINE: &str = "inline-in-config-Wm3Kd8Rf5Y";
const TARGET_PW: &str = "clone-target-pw-Np6Vs1Lh9C";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_line_or_an_api_response() {
    let shop = RedisServer::start(&["--requirepass", SHOP_PW]);
    shop.fill_mixed();
    let orders = RedisServer::start(&["--requirepass", ORDERS_PW]);
    orders.fill_mixed();
    let locked = RedisServer::start(&["--requirepass", LOCKED_PW]);
    let clone_target = RedisServer::start(&["--requirepass", TARGET_PW]);
    let s3 = S3Server::start();
    let secrets_dir = tempfile::tempdir().unwrap();
    let orders_pw = common::secret_file(secrets_dir.path(), ORDERS_PW);
    let s3_secret = secrets_dir.path().join("s3-secret");
    std::fs::write(&s3_secret, common::s3::SECRET_KEY).unwrap();
    let wrong_s3_secret = secrets_dir.path().join("wrong-s3-secret");
    std::fs::write(&wrong_s3_secret, WRONG_S3_SECRET).unwrap();
    let storages = format!(
        r#"
[storage.s3]
plugin = "storage-s3"
endpoint = "{endpoint}"
bucket = "{bucket}"
access_key_id = "{access}"
secret_access_key_file = "{s3_secret}"

[storage.s3-wrong]
plugin = "storage-s3"
endpoint = "{endpoint}"
bucket = "{bucket}"
access_key_id = "{access}"
secret_access_key_file = "{wrong_s3_secret}"
"#,
        endpoint = s3.endpoint(),
        bucket = common::s3::BUCKET,
        access = common::s3::ACCESS_KEY,
        s3_secret = s3_secret.display(),
        wrong_s3_secret = wrong_s3_secret.display(),
    );
    let instances = format!(
        r#"
[instance.shop]
address = "{shop}"
password_env = "SHOP_PW"
storage = "s3"
provider = "provider-jd"

[instance.orders]
address = "{orders}"
password_file = "{orders_pw}"
storage = "local"
provider = "provider-tencent"

[instance.locked]
address = "{locked}"
password_env = "LOCKED_PW"
storage = "local"
"#,
        shop = shop.addr(),
        orders = orders.addr(),
        orders_pw = orders_pw.display(),
        locked = locked.addr(),
    );
    let s = Setup::new(&format!("{storages}{instances}"));
    let good_config = std::fs::read_to_string(&s.config).unwrap();
    set_clock(&s.clock, "2026-03-02T00:05:00Z");
    let d = s
        .daemon(&[
            ("REDBACK_LOG", "trace"),
            ("SHOP_PW", SHOP_PW),
            ("LOCKED_PW", WRONG_PW),
            ("AWS_SECRET_ACCESS_KEY", ENV_ONLY),
            ("REDIS_PASSWORD", ENV_ONLY),
        ])
        .await;
    let mut c = Console::new(&d);

    // Every GET route.
    for path in [
        "/health",
        "/openapi.json",
        "/metrics",
        "/instances",
        "/instances/shop",
        "/instances/orders",
        "/instances/locked",
        "/instances/orders/policy",
        "/instances/shop/backups",
        "/tasks",
        "/plugins",
        "/config",
    ] {
        c.ok(Method::GET, path, None).await;
    }

    // Backups: to S3 with the secret key, to local with a password file;
    // one with the wrong password fails and says so without the password.
    let shop_task = c.backup("shop").await;
    assert_eq!(shop_task["state"], "succeeded", "{shop_task:#}");
    let orders_task = c.backup("orders").await;
    assert_eq!(orders_task["state"], "succeeded", "{orders_task:#}");
    let locked_task = c.backup("locked").await;
    assert_eq!(locked_task["state"], "failed", "{locked_task:#}");
    let why = locked_task["error"].as_str().unwrap();
    assert!(why.contains("locked"), "{why}");

    for task in [&shop_task, &orders_task] {
        let id = task["backup_id"].as_str().unwrap();
        c.ok(Method::GET, &format!("/backups/{id}"), None).await;
        c.ok(Method::GET, &format!("/backups/{id}/inspect"), None)
            .await;
        c.ok(Method::POST, &format!("/backups/{id}/verify"), None)
            .await;
    }
    // Links: presigned by S3 (signed with the secret, never holding it),
    // and served by the daemon; both downloaded.
    let shop_id = shop_task["backup_id"].as_str().unwrap();
    let orders_id = orders_task["backup_id"].as_str().unwrap();
    for id in [shop_id, orders_id] {
        let link = c
            .ok(
                Method::POST,
                &format!("/backups/{id}/download-link"),
                Some(json!({"network": "public"})),
            )
            .await;
        let client = d.client.clone();
        let (status, _) = c
            .send_with(&client, Method::GET, link["url"].as_str().unwrap(), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{link:#}");
    }

    // A restore confirmed with the instance password; one with a wrong
    // confirmation, refused; a clone into a server with its own password.
    let (status, _) = c
        .send(
            Method::POST,
            &format!("/backups/{orders_id}/restore"),
            Some(json!({"mode": "in-place", "password": WRONG_CONFIRM})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let r = c
        .ok(
            Method::POST,
            &format!("/backups/{orders_id}/restore"),
            Some(json!({"mode": "in-place", "password": ORDERS_PW})),
        )
        .await;
    let t = c.task_end(r["task"].as_str().unwrap()).await;
    assert_eq!(t["state"], "succeeded", "{t:#}\n{}", d.log_text());
    let r = c
        .ok(
            Method::POST,
            &format!("/backups/{orders_id}/restore"),
            Some(json!({
                "mode": "clone",
                "target": clone_target.addr(),
                "target_password": TARGET_PW,
                "password": ORDERS_PW,
            })),
        )
        .await;
    let t = c.task_end(r["task"].as_str().unwrap()).await;
    assert_eq!(t["state"], "succeeded", "{t:#}\n{}", d.log_text());
    assert_eq!(clone_target.digest(), orders.digest());

    // A plugin error: a storage whose secret key S3 does not know.
    let (status, report) = c.send(Method::POST, "/storages/s3-wrong/check", None).await;
    assert!(
        !status.is_success() || report.to_string().contains("\"passed\":false"),
        "{status} {report:#}"
    );

    // Bad reloads: a syntax error on a line holding a secret, then a
    // secret written in the config; both refused, the old config kept.
    std::fs::write(
        &s.config,
        format!("{good_config}\n[instance.typo]\npassword = \"{INLINE}\n"),
    )
    .unwrap();
    let (status, _) = c.send(Method::POST, "/plugins/reload", None).await;
    assert!(!status.is_success(), "{status}");
    std::fs::write(
        &s.config,
        format!("{good_config}\n[instance.inline]\naddress = \"127.0.0.1:1\"\nstorage = \"local\"\npassword = \"{INLINE}\"\n"),
    )
    .unwrap();
    let (status, _) = c.send(Method::POST, "/plugins/reload", None).await;
    assert!(!status.is_success(), "{status}");
    std::fs::write(&s.config, &good_config).unwrap();
    c.ok(Method::POST, "/plugins/reload", None).await;

    // A wrong bearer token.
    let stranger = Client::new(d.client.base(), Some(WRONG_TOKEN.into())).unwrap();
    let (status, _) = c
        .send_with(&stranger, Method::GET, "/instances", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    c.ok(Method::POST, "/sweep", None).await;
    c.ok(Method::POST, "/catalog/rebuild", None).await;
    c.ok(Method::GET, "/tasks?limit=1000", None).await;
    c.ok(Method::GET, "/config", None).await;
    c.ok(Method::GET, "/metrics", None).await;

    let transcript = std::mem::take(&mut c.transcript);
    let log_file = d.log.clone();
    d.stop();
    let log = std::fs::read_to_string(&log_file).unwrap();
    // The log really is the most verbose one.
    assert!(log.contains("TRACE"), "not a trace log:\n{log}");
    let secrets = [
        ("instance password from an env var", SHOP_PW),
        ("instance password from a file", ORDERS_PW),
        ("password the server really has", LOCKED_PW),
        ("wrong instance password", WRONG_PW),
        ("S3 secret key", common::s3::SECRET_KEY),
        ("wrong S3 secret key", WRONG_S3_SECRET),
        ("unrelated secret in the environment", ENV_ONLY),
        ("wrong confirmation password", WRONG_CONFIRM),
        ("clone target's password", TARGET_PW),
        ("API token", TOKEN),
        ("wrong API token", WRONG_TOKEN),
        ("secret written in the config", INLINE),
    ];
    assert_no_secret("the log", &log, &secrets);
    assert_no_secret("an API response", &transcript, &secrets);
}

/// What each path parameter is tried with: dot segments raw and encoded,
/// slashes and backslashes encoded, NUL.
const HOSTILE: [&str; 9] = [
    "..",
    "%2e%2e",
    "%2e%2e%2f%2e%2e%2fetc",
    "..%2f..%2f..%2fetc%2fpasswd",
    "..%5c..%5cwindows",
    "a%00b",
    "%00",
    "shop%2f..%2f..",
    "..%252f..",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_traversal_through_the_api_and_storage_keys_is_refused() {
    let shop = RedisServer::start(&[]);
    shop.fill_mixed();
    let s = Setup::new(&format!(
        r#"
[instance.shop]
address = "{}"
storage = "local"
"#,
        shop.addr()
    ));
    // A file beside the storage root that a climb would reach.
    let outside = s.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("keep.txt"), b"untouched").unwrap();
    set_clock(&s.clock, "2026-03-02T00:05:00Z");
    let d = s.daemon(&[]).await;
    let mut c = Console::new(&d);
    let good = c.backup("shop").await;
    assert_eq!(good["state"], "succeeded", "{good:#}");
    let good_id = good["backup_id"].as_str().unwrap().to_string();

    for v in HOSTILE {
        let routes = [
            (Method::GET, format!("/instances/{v}"), None),
            (Method::GET, format!("/instances/{v}/policy"), None),
            (
                Method::PUT,
                format!("/instances/{v}/policy"),
                Some(
                    json!({"weekdays": ["monday"], "window_start": {"hour": 1, "minute": 0}, "window_end": {"hour": 2, "minute": 0}, "retention_days": 7}),
                ),
            ),
            (Method::GET, format!("/instances/{v}/backups"), None),
            (
                Method::POST,
                format!("/instances/{v}/backups"),
                Some(json!({})),
            ),
            (Method::GET, format!("/backups/{v}"), None),
            (
                Method::POST,
                format!("/backups/{v}/restore"),
                Some(json!({"mode": "in-place"})),
            ),
            (
                Method::POST,
                format!("/backups/{v}/download-link"),
                Some(json!({})),
            ),
            (Method::POST, format!("/backups/{v}/verify"), None),
            (Method::GET, format!("/backups/{v}/inspect"), None),
            (Method::GET, format!("/tasks/{v}"), None),
            (Method::POST, format!("/storages/{v}/check"), None),
            (Method::GET, format!("/download/{v}"), None),
            (
                Method::GET,
                format!("/download/{v}.9999999999.{}", "0".repeat(64)),
                None,
            ),
        ];
        for (method, path, body) in routes {
            let (status, reply) = c.send(method.clone(), &path, body).await;
            assert!(
                status.is_client_error(),
                "{method} {path}: {status} {reply:#}"
            );
        }
    }

    // Request bodies: backup names, restore keys, clone targets.
    for name in ["../../outside/x", "a\0b", "..\\..\\x", "line\nbreak"] {
        let (status, reply) = c
            .send(
                Method::POST,
                "/instances/shop/backups",
                Some(json!({"name": name})),
            )
            .await;
        if status.is_success() {
            let t = c.task_end(reply["task"].as_str().unwrap()).await;
            assert_eq!(t["state"], "succeeded", "{name:?}: {t:#}");
        } else {
            assert_eq!(status, StatusCode::BAD_REQUEST, "{name:?}: {reply:#}");
        }
    }
    let restore = format!("/backups/{good_id}/restore");
    for body in [
        json!({"mode": "clone", "spawn_port": 1, "spawn_dir": "/tmp/../etc/redback"}),
        json!({"mode": "clone", "spawn_port": 1, "spawn_dir": "../../outside"}),
        json!({"mode": "clone", "spawn_port": 1, "spawn_dir": "/tmp/a\u{0}b"}),
        json!({"mode": "clone", "target": "../../outside"}),
        json!({"mode": "keys", "keys": "../../*"}),
        json!({"mode": "keys", "keys": "..%2f..%2f*"}),
    ] {
        let (status, reply) = c.send(Method::POST, &restore, Some(body.clone())).await;
        if status.is_success() {
            // Key patterns are Redis globs, not paths: they restore
            // nothing outside Redis (and here match no key).
            let t = c.task_end(reply["task"].as_str().unwrap()).await;
            assert!(
                body["mode"] == "keys" || t["state"] == "failed",
                "{body}: {t:#}"
            );
        } else {
            assert!(status.is_client_error(), "{body}: {status} {reply:#}");
        }
    }
    let (status, _) = c
        .send(Method::GET, "/download/x.1.00?format=..%2f..%2fetc", None)
        .await;
    assert!(status.is_client_error());

    // Nothing was written outside the state directory and the storage
    // root, and every stored object is <instance>/<backup id>/<file>.
    let files = walk_files(s.dir.path());
    for f in &files {
        let rel = Path::new(f).strip_prefix(s.dir.path()).unwrap();
        let top = rel.components().next().unwrap().as_os_str();
        assert!(
            ["state", "backups", "outside", "redback.toml", "clock"]
                .iter()
                .any(|t| top == *t)
                || top.to_string_lossy().starts_with("daemon-"),
            "a file outside the daemon's folders: {}",
            rel.display()
        );
    }
    assert_eq!(
        walk_files(&outside),
        [outside.join("keep.txt").display().to_string()]
    );
    assert_eq!(
        std::fs::read(outside.join("keep.txt")).unwrap(),
        b"untouched"
    );
    for f in s.stored_files() {
        // <storage prefix>/shop/<backup id>/<file>
        let parts: Vec<&str> = f.rsplitn(4, '/').collect();
        assert!(
            parts.len() >= 3
                && parts[2] == "shop"
                && ["manifest.json", "dump.rdb.zst"].contains(&parts[0])
                && !f.split('/').any(|p| p == ".." || p == "."),
            "{f}"
        );
    }
    d.stop();
}
