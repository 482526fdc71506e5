//! Crash consistency of the daemon: `redback serve` killed with SIGKILL at
//! each crash point of a backup, a sweep and an archive copy (armed with
//! `REDBACK_TEST_CRASH_AT`, see host/src/crash_point.rs; the kill in the
//! middle of an upload at an observed moment is tests/daemon.rs
//! `kill_9_in_the_middle_of_a_backup`), then started again: catalog and
//! storage agree (`GET /catalog/check`), no object is left that belongs to
//! no listed backup (the storage roots walked, unfinished uploads
//! included), every listed backup verifies, and nothing good was lost.
//! And `redback catalog check` / `cleanup` on planted damage.

mod common;

use std::path::Path;
use std::process::Command;

use common::daemon::*;
use common::redis::RedisServer;
use serde_json::{Value, json};

const CRASH_AT: &str = "REDBACK_TEST_CRASH_AT";

/// One instance, `shop`, with a small dataset, JD-style (7 days of
/// retention, keep the newest), backed up to `local` and copied to
/// `archive`.
struct Scene {
    _redis: RedisServer,
    s: Setup,
}

fn scene() -> Scene {
    let redis = RedisServer::start(&[]);
    redis.fill_mixed();
    let s = Setup::new(&format!(
        r#"
[storage.archive]
plugin = "storage-local"
root = "archive"

[instance.shop]
address = "{}"
storage = "local"
provider = "provider-jd"
archive_storage = "archive"
"#,
        redis.addr()
    ));
    // Outside JD's 03:00-04:00 window: no automatic backup.
    set_clock(&s.clock, "2026-03-02T00:05:00Z");
    Scene { _redis: redis, s }
}

impl Scene {
    fn archive_dir(&self) -> std::path::PathBuf {
        self.s.dir.path().join("archive")
    }

    /// The daemon's catalog, read beside it (the API lists only complete
    /// backups).
    fn catalog(&self) -> redback::catalog::Catalog {
        redback::catalog::Catalog::open(&self.s.dir.path().join("state/catalog.sqlite")).unwrap()
    }

    /// Every file under both storage roots, unfinished uploads included.
    fn all_files(&self) -> Vec<String> {
        let mut f = walk_files(&self.s.backups_dir());
        f.extend(walk_files(&self.archive_dir()));
        f
    }

    /// After a restart: catalog and storage agree, every file belongs to a
    /// listed backup (its data and manifest) or to an archive copy the
    /// catalog records, and every listed backup verifies.
    /// Returns the listed backups.
    async fn assert_consistent(&self, d: &Daemon) -> Vec<Value> {
        let check = d.client.get("/catalog/check").await.unwrap();
        assert_eq!(check["agree"], true, "{check:#}\n{}", d.log_text());
        let listed: Vec<Value> = d
            .client
            .get("/instances/shop/backups")
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .clone();
        let mut expected = Vec::new();
        for b in &listed {
            let id = b["id"].as_str().unwrap();
            let v = d
                .client
                .post(&format!("/backups/{id}/verify"), &json!({}))
                .await;
            assert!(
                v.is_ok(),
                "backup {id} is listed but does not verify: {v:?}"
            );
            expected.push((self.s.backups_dir(), id.to_string()));
            if b["archived"].is_object() {
                expected.push((self.archive_dir(), id.to_string()));
            }
        }
        // Archive copies the catalog records whose original was swept.
        for f in walk_files(&self.archive_dir()) {
            let id = Path::new(&f).parent().unwrap().file_name().unwrap();
            let id = id.to_string_lossy().to_string();
            if expected.iter().any(|(_, e)| *e == id) {
                continue;
            }
            let row = self.catalog().get_backup(&id).unwrap();
            if row.is_some_and(|r| r.archived.is_some_and(|a| a.storage == "archive")) {
                expected.push((self.archive_dir(), id));
            }
        }
        let mut want: Vec<String> = expected
            .iter()
            .flat_map(|(root, id)| {
                ["dump.rdb.zst", "manifest.json"].map(|f| format!("{}/{id}/{f}", root.display()))
            })
            .collect();
        want.sort();
        // Files are `<root>/<prefix>/shop/<id>/<file>`: compare without
        // the prefix folders.
        let mut files: Vec<String> = self
            .all_files()
            .iter()
            .map(|f| {
                let p = Path::new(f);
                let root = [self.s.backups_dir(), self.archive_dir()]
                    .into_iter()
                    .find(|r| p.starts_with(r))
                    .unwrap();
                let parts: Vec<_> = p.iter().rev().take(2).collect();
                format!(
                    "{}/{}/{}",
                    root.display(),
                    parts[1].to_string_lossy(),
                    parts[0].to_string_lossy()
                )
            })
            .collect();
        files.sort();
        assert_eq!(
            files,
            want,
            "only the listed backups' objects (and recorded archive copies) are stored: {:?}",
            self.all_files()
        );
        listed
    }
}

/// Starts a backup in a daemon armed to crash at `point`, waits for the
/// crash, starts the daemon again; returns the scene, the new daemon, the
/// backup's id and the task's.
async fn crash_a_backup_at(point: &str) -> (Scene, Daemon, String, String) {
    let sc = scene();
    let d = sc.s.daemon(&[(CRASH_AT, point)]).await;
    let r = d
        .client
        .post("/instances/shop/backups", &json!({"name": "crash"}))
        .await
        .unwrap();
    let task = r["task"].as_str().unwrap().to_string();
    let log = d.killed().await;
    assert!(log.contains(&format!("crashing at {point}")), "{log}");
    let d = sc.s.daemon(&[]).await;
    let t = d.client.get(&format!("/tasks/{task}")).await.unwrap();
    let id = t["backup_id"].as_str().unwrap().to_string();
    (sc, d, id, task)
}

async fn assert_backup_rolled_back(point: &str) {
    let (sc, d, id, task) = crash_a_backup_at(point).await;
    let t = d.client.get(&format!("/tasks/{task}")).await.unwrap();
    assert_eq!(t["state"], "failed", "{t:#}");
    let listed = sc.assert_consistent(&d).await;
    assert!(listed.is_empty(), "{listed:#?}");
    assert!(sc.all_files().is_empty(), "{:?}", sc.all_files());
    let b = d.client.get(&format!("/backups/{id}")).await;
    assert!(
        b.as_ref().map(|b| b["status"] == "failed").unwrap_or(true),
        "{b:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_killed_while_the_data_uploads_leaves_nothing() {
    assert_backup_rolled_back("backup-uploading").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_killed_after_the_data_before_the_manifest_leaves_nothing() {
    assert_backup_rolled_back("backup-data-stored").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_killed_after_the_manifest_before_the_catalog_is_kept() {
    let (sc, d, id, _) = crash_a_backup_at("backup-manifest-stored").await;
    let listed = sc.assert_consistent(&d).await;
    assert_eq!(ids(&Value::Array(listed.clone())), [id.as_str()]);
    assert_eq!(listed[0]["status"], "complete");
    // The copy to the archive was not started: the archive stays empty.
    assert!(listed[0]["archived"].is_null(), "{:#}", listed[0]);
    assert!(walk_files(&sc.archive_dir()).is_empty());
}

/// A backup, then its copy to the archive cut off at `point`.
async fn crash_an_archive_copy_at(point: &str) -> (Scene, Daemon, String) {
    let (sc, d, id, task) = crash_a_backup_at(point).await;
    let t = d.client.get(&format!("/tasks/{task}")).await.unwrap();
    assert_eq!(t["state"], "succeeded", "the backup itself ended: {t:#}");
    let listed = sc.assert_consistent(&d).await;
    assert_eq!(
        ids(&Value::Array(listed)),
        [id.as_str()],
        "the backup is kept"
    );
    (sc, d, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_copy_killed_mid_copy_is_removed_and_the_backup_kept() {
    let (sc, d, id) = crash_an_archive_copy_at("archive-copying").await;
    let b = d.client.get(&format!("/backups/{id}")).await.unwrap();
    assert!(b["archived"].is_null(), "{b:#}");
    assert_eq!(walk_files(&sc.archive_dir()), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_copy_killed_before_its_manifest_is_removed_and_the_backup_kept() {
    let (sc, d, id) = crash_an_archive_copy_at("archive-data-copied").await;
    let b = d.client.get(&format!("/backups/{id}")).await.unwrap();
    assert!(b["archived"].is_null(), "{b:#}");
    assert_eq!(walk_files(&sc.archive_dir()), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_copy_killed_after_its_manifest_before_the_catalog_is_recorded() {
    let (sc, d, id) = crash_an_archive_copy_at("archive-manifest-copied").await;
    let b = d.client.get(&format!("/backups/{id}")).await.unwrap();
    assert_eq!(b["archived"]["storage"], "archive", "{b:#}");
    assert_eq!(walk_files(&sc.archive_dir()).len(), 2);
}

/// Two good backups on day 0; on day 8 the older one is past its 7 days
/// (the newer one is kept as the newest) and its sweep is cut off at
/// `point`. After the restart the older one is fully gone, the newer one
/// still complete and verified.
async fn assert_sweep_finished_after_a_crash_at(point: &str) {
    let sc = scene();
    let d = sc.s.daemon(&[]).await;
    let old = backup_now(&d, "shop", json!({"name": "old"})).await;
    set_clock(&sc.s.clock, "2026-03-02T00:06:00Z");
    let new = d
        .until("the clock to move", async |c| {
            let b = backup_now_with(c, "shop", json!({"name": "new"})).await;
            (b["started_at"].as_str() > old["started_at"].as_str()).then_some(b)
        })
        .await;
    d.until("both archive copies", async |c| {
        let l = c.get("/instances/shop/backups").await.unwrap();
        l.as_array()
            .unwrap()
            .iter()
            .all(|b| b["archived"].is_object())
            .then_some(())
    })
    .await;
    d.stop();
    let (old_id, new_id) = (old["id"].as_str().unwrap(), new["id"].as_str().unwrap());

    set_clock(&sc.s.clock, "2026-03-10T00:30:00Z");
    let log = Daemon::spawn(&sc.s.config, &sc.s.clock, sc.s.port, &[(CRASH_AT, point)])
        .killed()
        .await;
    assert!(log.contains(&format!("crashing at {point}")), "{log}");
    let d = sc.s.daemon(&[]).await;
    let listed = sc.assert_consistent(&d).await;
    assert!(ids(&Value::Array(listed)).contains(&new_id.to_string()));
    let gone = sc.catalog().get_backup(old_id).unwrap().unwrap();
    assert_eq!(gone.status, redback::catalog::BackupStatus::Deleted);
    // The archive copy of the swept backup is kept (JD sets no archive
    // retention) and still recorded: it is the only copy now.
    assert_eq!(gone.archived.map(|a| a.storage).as_deref(), Some("archive"));
    let in_main: Vec<String> = walk_files(&sc.s.backups_dir())
        .into_iter()
        .filter(|f| f.contains(old_id))
        .collect();
    assert!(in_main.is_empty(), "{in_main:?}");
    let check = d.client.get("/catalog/check").await.unwrap();
    assert!(
        check["archive_copies_checked"].as_u64() >= Some(2),
        "{check:#}"
    );
}

async fn backup_now_with(c: &redback::api::client::Client, instance: &str, body: Value) -> Value {
    let r = c
        .post(&format!("/instances/{instance}/backups"), &body)
        .await
        .unwrap();
    let task = r["task"].as_str().unwrap();
    loop {
        let t = c.get(&format!("/tasks/{task}")).await.unwrap();
        if t["state"] == "succeeded" {
            let id = t["backup_id"].as_str().unwrap();
            return c.get(&format!("/backups/{id}")).await.unwrap();
        }
        assert!(t["state"] == "running" || t["state"] == "pending", "{t:#}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_killed_after_the_manifest_is_deleted_is_finished() {
    assert_sweep_finished_after_a_crash_at("sweep-manifest-deleted").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_killed_after_the_data_is_deleted_is_finished() {
    assert_sweep_finished_after_a_crash_at("sweep-data-deleted").await;
}

fn cli(config: Option<&Path>, server: Option<&str>, args: &[&str]) -> (i32, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_redback"));
    c.args(args).env("REDBACK_API_TOKEN", TOKEN);
    if let Some(s) = server {
        c.args(["--server", s]);
    }
    if let Some(f) = config {
        c.args(["--config", f.to_str().unwrap()]);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_check_reports_an_orphan_and_a_missing_manifest_and_cleanup_repairs_both() {
    let sc = scene();
    let d = sc.s.daemon(&[]).await;
    let a = backup_now(&d, "shop", json!({"name": "a"})).await;
    let a_id = a["id"].as_str().unwrap().to_string();
    let data = walk_files(&sc.s.backups_dir())
        .into_iter()
        .find(|f| f.ends_with(&format!("{a_id}/dump.rdb.zst")))
        .unwrap();
    let folder = Path::new(&data).parent().unwrap();
    let manifest = folder.join("manifest.json");
    let server = format!("http://127.0.0.1:{}", sc.s.port);
    let (code, out) = cli(None, Some(&server), &["catalog", "check"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("agree"), "{out}");

    // An orphan: a backup folder with data and no manifest; and backup a's
    // manifest gone.
    let orphan_dir = folder.with_file_name("20260101T000000Z-dead");
    std::fs::create_dir_all(&orphan_dir).unwrap();
    std::fs::write(orphan_dir.join("dump.rdb.zst"), b"not a backup").unwrap();
    let saved = std::fs::read(&manifest).unwrap();
    std::fs::remove_file(&manifest).unwrap();

    for (config, server) in [(Some(sc.s.config.as_path()), None), (None, Some(&*server))] {
        let (code, out) = cli(config, server, &["catalog", "check"]);
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains("20260101T000000Z-dead/dump.rdb.zst")
                && out.contains("belongs to no good backup"),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                "backup {a_id} is good in the catalog but its manifest"
            )) && out.contains("is missing")
                && out.contains("writes it back"),
            "{out}"
        );
    }
    let check = d.client.get("/catalog/check").await.unwrap();
    let mut problems: Vec<&str> = check["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["problem"].as_str().unwrap())
        .collect();
    problems.sort();
    assert_eq!(problems, ["manifest_missing", "orphan"], "{check:#}");

    let (code, out) = cli(None, Some(&server), &["catalog", "cleanup", "--json"]);
    assert_eq!(code, 0, "{out}");
    let r: Value = serde_json::from_str(&out).unwrap();
    let mut actions: Vec<&str> = r["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    actions.sort();
    assert_eq!(actions, ["deleted", "wrote_manifest"], "{r:#}");
    assert_eq!(r["after"]["agree"], true, "{r:#}");
    assert!(!orphan_dir.join("dump.rdb.zst").exists());
    let rewritten: Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    let original: Value = serde_json::from_slice(&saved).unwrap();
    assert_eq!(rewritten, original, "the manifest as it was");
    let listed = sc.assert_consistent(&d).await;
    assert_eq!(ids(&Value::Array(listed)), [a_id.as_str()]);

    // Idempotent: nothing more to do.
    let again = d.client.post("/catalog/cleanup", &json!({})).await.unwrap();
    assert_eq!(again["actions"], json!([]), "{again:#}");

    // One-shot, with the daemon stopped: a stray object in a good
    // backup's folder is deleted.
    d.stop();
    let stray = folder.join("stray.tmp");
    std::fs::write(&stray, b"x").unwrap();
    let (code, out) = cli(Some(&sc.s.config), None, &["catalog", "cleanup"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("deleted") && out.contains("stray.tmp"),
        "{out}"
    );
    assert!(!stray.exists());
    let (code, out) = cli(Some(&sc.s.config), None, &["catalog", "check"]);
    assert_eq!(code, 0, "{out}");
}
