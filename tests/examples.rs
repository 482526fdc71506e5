//! The configs in examples/ are what the README and the systemd unit point
//! people at, so each must pass `redback config check` as it is written,
//! given only the environment variables its `*_env` keys name, and must
//! resolve to what its comments promise (instances, providers, storages,
//! policies). Run through the built binary, against the bundled plugins in
//! target/plugins (scripts/build-plugins.sh; `make test` builds them first).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn examples_dir() -> PathBuf {
    common::repo_root().join("examples")
}

/// Every `*_env` value of a TOML document: the variables it needs.
fn env_vars_named(doc: &toml::Value, out: &mut BTreeSet<String>) {
    match doc {
        toml::Value::Table(t) => {
            for (k, v) in t {
                match v {
                    toml::Value::String(var) if k.ends_with("_env") => {
                        out.insert(var.clone());
                    }
                    _ => env_vars_named(v, out),
                }
            }
        }
        toml::Value::Array(items) => items.iter().for_each(|v| env_vars_named(v, out)),
        _ => {}
    }
}

fn env_vars_of(example: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(example).unwrap();
    let doc: toml::Value =
        toml::from_str(&text).unwrap_or_else(|e| panic!("{} is not TOML: {e}", example.display()));
    let mut vars = BTreeSet::new();
    env_vars_named(&doc, &mut vars);
    vars
}

/// `redback config check --config FILE --json`, with `vars` set to dummy
/// values and nothing else of the caller's that the config could read.
fn config_check(example: &Path, vars: &BTreeSet<String>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_redback"));
    cmd.args(["config", "check", "--config"])
        .arg(example)
        .arg("--json")
        .env("REDBACK_LOG", "warn")
        .env_remove("REDBACK_API_TOKEN");
    for var in env_vars_of(example) {
        cmd.env_remove(var);
    }
    for var in vars {
        cmd.env(var, format!("example-value-of-{var}"));
    }
    cmd.output().unwrap()
}

/// Checks `file` with the variables it names and returns the JSON view,
/// after asserting it succeeded with no problem.
fn checked(file: &str) -> Value {
    // A clear message when the plugins are missing, instead of a failed check.
    common::built_plugin("provider-tencent");
    let example = examples_dir().join(file);
    let out = config_check(&example, &env_vars_of(&example));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "config check of {file} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let view: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("config check --json of {file} printed no JSON ({e}):\n{stdout}")
    });
    assert_eq!(view["problems"], Value::Array(vec![]), "{file}: {view:#}");
    view
}

/// What one instance of an example must resolve to.
struct Instance {
    name: &'static str,
    provider: Option<&'static str>,
    storage: &'static str,
    storage_plugin: &'static str,
    archive_storage: Option<&'static str>,
    prefer_replica: bool,
    weekdays: usize,
    window: (u64, u64),
    retention_days: u64,
}

fn assert_instances(file: &str, view: &Value, expected: &[Instance]) {
    let names: BTreeSet<&str> = view["instance"]
        .as_object()
        .unwrap_or_else(|| panic!("{file}: no instance table in {view:#}"))
        .keys()
        .map(String::as_str)
        .collect();
    let wanted: BTreeSet<&str> = expected.iter().map(|i| i.name).collect();
    assert_eq!(names, wanted, "{file}: instances");
    for want in expected {
        let i = &view["instance"][want.name];
        let at = format!("{file}: instance.{}", want.name);
        assert_eq!(i["provider"].as_str(), want.provider, "{at}.provider");
        assert_eq!(i["storage"], want.storage, "{at}.storage");
        assert_eq!(
            view["storage"][want.storage]["plugin"], want.storage_plugin,
            "{at}: storage.{}.plugin",
            want.storage
        );
        assert_eq!(
            i["archive_storage"].as_str(),
            want.archive_storage,
            "{at}.archive_storage"
        );
        assert_eq!(
            i["prefer_replica"], want.prefer_replica,
            "{at}.prefer_replica"
        );
        // The policy as the provider accepted it.
        let p = &i["policy"];
        assert_eq!(
            p["weekdays"].as_array().map(Vec::len),
            Some(want.weekdays),
            "{at}.policy: {p:#}"
        );
        assert_eq!(
            (
                p["window_start"]["hour"].as_u64().unwrap_or(99),
                p["window_end"]["hour"].as_u64().unwrap_or(99)
            ),
            want.window,
            "{at}.policy window: {p:#}"
        );
        assert_eq!(p["retention_days"], want.retention_days, "{at}.policy");
    }
}

/// Secrets of the object-storage examples arrive masked, never in clear.
fn assert_secrets_masked(file: &str, view: &Value) {
    let text = view.to_string();
    assert!(
        !text.contains("example-value-of-"),
        "{file}: a secret shows in the resolved view: {view:#}"
    );
}

#[test]
fn every_example_config_is_checked_here() {
    let mut found: Vec<String> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    found.sort();
    assert_eq!(
        found,
        ["alibaba.toml", "jd.toml", "quickstart.toml", "tencent.toml"],
        "a new example needs its test in tests/examples.rs"
    );
}

#[test]
fn quickstart_is_the_demo_instance_on_the_loopback_server_make_run_starts() {
    let view = checked("quickstart.toml");
    let d = &view["daemon"];
    assert_eq!(d["listen"], "127.0.0.1:7480");
    assert_eq!(d["timezone"], "UTC");
    assert_eq!(d["max_concurrent_backups"], 2);
    let catalog = PathBuf::from(d["catalog"].as_str().unwrap());
    assert!(catalog.ends_with("var/redback/catalog.sqlite"), "{d:#}");
    assert_eq!(view["storage"]["local"]["plugin"], "storage-local");
    assert!(
        view["storage"]["local"]["root"]
            .as_str()
            .is_some_and(|r| r.ends_with("var/backups")),
        "{view:#}"
    );
    assert_instances(
        "quickstart.toml",
        &view,
        &[Instance {
            name: "demo",
            provider: Some("provider-tencent"),
            storage: "local",
            storage_plugin: "storage-local",
            archive_storage: None,
            prefer_replica: true,
            weekdays: 7,
            window: (2, 8),
            retention_days: 7,
        }],
    );
    // scripts/run.sh starts the server the instance points at.
    let run = std::fs::read_to_string(common::repo_root().join("scripts/run.sh")).unwrap();
    let port = view["instance"]["demo"]["address"]
        .as_str()
        .unwrap()
        .rsplit_once(':')
        .unwrap()
        .1;
    assert!(
        run.lines().any(|l| l.trim() == format!("port={port}")),
        "scripts/run.sh does not start redis-server on the quickstart's port {port}"
    );
}

#[test]
fn jd_example_backs_up_on_chosen_days_into_jd_cloud_oss() {
    let view = checked("jd.toml");
    let common = |name| Instance {
        name,
        provider: Some("provider-jd"),
        storage: "jdoss",
        storage_plugin: "storage-s3",
        archive_storage: None,
        prefer_replica: false,
        weekdays: 7,
        window: (3, 4),
        retention_days: 7,
    };
    assert_instances(
        "jd.toml",
        &view,
        &[
            Instance {
                weekdays: 6,
                window: (1, 2),
                ..common("sessions")
            },
            common("carts"),
        ],
    );
    let s = &view["storage"]["jdoss"]["settings"];
    assert_eq!(s["secret_access_key"], "***", "{s:#}");
    assert_eq!(
        s["public_endpoint"],
        "https://s3.cn-north-1.jdcloud-oss.com"
    );
    assert_secrets_masked("jd.toml", &view);
}

#[test]
fn alibaba_example_reads_a_replica_and_archives_to_a_second_oss_bucket() {
    let view = checked("alibaba.toml");
    assert_instances(
        "alibaba.toml",
        &view,
        &[Instance {
            name: "orders",
            provider: Some("provider-alibaba"),
            storage: "oss",
            storage_plugin: "storage-oss",
            archive_storage: Some("oss-archive"),
            prefer_replica: true,
            weekdays: 5,
            window: (4, 5),
            retention_days: 7,
        }],
    );
    let orders = &view["instance"]["orders"];
    assert_eq!(orders["replica"], "10.0.1.22:6379");
    assert_eq!(orders["archive_retention_days"], 7);
    assert_eq!(view["storage"]["oss-archive"]["plugin"], "storage-oss");
    assert_eq!(
        view["storage"]["oss"]["settings"]["access_key_secret"],
        "***"
    );
    assert_secrets_masked("alibaba.toml", &view);
}

#[test]
fn tencent_example_runs_every_day_in_its_window_with_changed_retention() {
    let view = checked("tencent.toml");
    let common = |name| Instance {
        name,
        provider: Some("provider-tencent"),
        storage: "cos",
        storage_plugin: "storage-cos",
        archive_storage: None,
        prefer_replica: true,
        weekdays: 7,
        window: (2, 8),
        retention_days: 7,
    };
    assert_instances(
        "tencent.toml",
        &view,
        &[
            Instance {
                window: (3, 5),
                retention_days: 30,
                ..common("payments")
            },
            common("feeds"),
        ],
    );
    assert_eq!(view["instance"]["payments"]["password"], "***");
    assert_eq!(view["storage"]["cos"]["settings"]["secret_key"], "***");
    assert_secrets_masked("tencent.toml", &view);
}

#[test]
fn examples_with_secrets_fail_the_check_naming_each_missing_variable() {
    for file in ["jd.toml", "alibaba.toml", "tencent.toml"] {
        let example = examples_dir().join(file);
        let needed = env_vars_of(&example);
        assert!(!needed.is_empty(), "{file} names no *_env secret");
        for missing in &needed {
            let mut others = needed.clone();
            others.remove(missing);
            let out = config_check(&example, &others);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success() && stderr.contains(missing.as_str()),
                "{file} without {missing}: {}\n{stderr}",
                out.status
            );
        }
    }
}

#[test]
fn the_systemd_unit_starts_serve_with_flags_the_cli_accepts() {
    let unit = std::fs::read_to_string(examples_dir().join("redback.service")).unwrap();
    let line = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("redback.service has no {key}="))
            .to_string()
    };
    let exec = line("ExecStart");
    let args: Vec<&str> = exec.split_whitespace().skip(1).collect();
    assert_eq!(
        args,
        [
            "serve",
            "--config",
            "/etc/redback/redback.toml",
            "--log-format",
            "json"
        ]
    );
    assert_eq!(line("Type"), "simple");
    assert_eq!(line("KillSignal"), "SIGTERM");
    assert!(line("ExecReload").contains("-HUP $MAINPID"));
    // The same flags against a config that is not there: the CLI takes
    // them and fails on the file, not on the arguments.
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("redback.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_redback"))
        .args(["serve", "--config"])
        .arg(&missing)
        .args(&args[3..])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("cannot read config file"),
        "{}\n{stderr}",
        out.status
    );
}
