//! The conformance kit against every bundled storage plugin, the template a
//! third party starts from, and a deliberately broken plugin it must catch.

mod common;

use common::*;
use redback::plugin::PluginHost;
use redback::storage::conformance;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_local_passes_the_kit() {
    let tmp = tempfile::tempdir().unwrap();
    let host = PluginHost::new(None).unwrap();
    let plugin = load(&host, "storage-local");
    let cfg = storage_config("local", "storage-local", &[("root", "objects")], tmp.path());
    let storage = open(&host, &plugin, &cfg, None).await.unwrap();
    let report = conformance::run(storage.as_ref()).await;
    assert!(report.passed(), "{}", report.table());
    // The kit cleans up after itself and leaves no partial files behind.
    let (left, _) = storage
        .list("", None, 1000)
        .await
        .map(|p| (p.objects, p.next_cursor))
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
    let partial = tmp.path().join("objects/.redback-partial");
    let partial_files = std::fs::read_dir(&partial).map(|d| d.count()).unwrap_or(0);
    assert_eq!(
        partial_files,
        0,
        "partial uploads left in {}",
        partial.display()
    );
}

#[test]
fn the_template_passes_plugin_check_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = built_plugin("storage-template");
    let root = format!("root={}", tmp.path().display());
    let (code, out, err) = redback(&["plugin", "check", folder.to_str().unwrap(), "--set", &root]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("round-trip-64MiB") && out.contains("checks passed"),
        "{out}"
    );
}

#[test]
fn plugin_check_runs_against_a_configured_storage() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("redback.toml");
    let plugins = repo_root().join("target/plugins");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nplugin_dir = \"{}\"\nstate_dir = \"state\"\n[storage.local]\nplugin = \"storage-local\"\nroot = \"backups\"\n",
            plugins.display()
        ),
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let (code, out, err) = redback(&[
        "plugin",
        "check",
        "--config",
        c,
        "--storage",
        "local",
        "--json",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["storage"], "local");
    assert!(v["results"].as_array().unwrap().len() >= 18);

    let (code, _, err) = redback(&["plugin", "check", "--config", c, "--storage", "nope"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("storage.nope") && err.contains("local"),
        "{err}"
    );
}

#[test]
fn a_plugin_whose_upload_is_visible_before_finish_fails_naming_the_check() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = built_plugin("misbehaving");
    let root = format!("root={}", tmp.path().display());
    let (code, out, err) = redback(&[
        "plugin",
        "check",
        folder.to_str().unwrap(),
        "--set",
        &root,
        "--set",
        "behavior=visible-before-finish",
    ]);
    assert_eq!(code, 1, "{out}\n{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with("unfinished-upload-invisible"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        row.contains("FAIL") && row.contains("before finish"),
        "{row}"
    );
    assert!(
        out.contains("FAILED: ") && out.contains("unfinished-upload-invisible"),
        "{out}"
    );
}
