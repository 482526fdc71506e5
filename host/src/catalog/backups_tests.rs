use serde_json::json;

use super::*;
use crate::catalog::testing::{at, manifest, manifest_key};
use crate::catalog::{TaskKind, TaskRecord};

/// A catalog holding `manifests` recorded from storage `local`.
fn catalog_with(manifests: &[Manifest]) -> Catalog {
    let cat = Catalog::open_in_memory().unwrap();
    for m in manifests {
        cat.record_manifest("local", m, &manifest_key(m)).unwrap();
    }
    cat
}

fn ids(list: &[BackupRecord]) -> Vec<&str> {
    list.iter().map(|b| b.id.as_str()).collect()
}

fn query(instance: &str) -> BackupQuery {
    BackupQuery {
        instance: Some(instance.into()),
        ..BackupQuery::default()
    }
}

#[test]
fn record_manifest_keeps_every_field_and_the_manifest() {
    let m = manifest("orders", "b1", 1_800_000_000);
    let cat = catalog_with(std::slice::from_ref(&m));
    let b = cat.get_backup("b1").unwrap().unwrap();
    assert_eq!(b.id, "b1");
    assert_eq!(b.instance, "orders");
    assert_eq!(b.storage, "local");
    assert_eq!(b.kind, Kind::Manual);
    assert_eq!(b.name.as_deref(), Some("backup b1"));
    assert_eq!(b.started_at, at(1_800_000_000));
    assert_eq!(b.finished_at, Some(at(1_800_000_009)));
    assert_eq!(b.status, BackupStatus::Complete);
    assert_eq!((b.stored_bytes, b.raw_bytes), (1_800_001_000, 3000));
    assert_eq!(b.source_address.as_deref(), Some("127.0.0.1:6380"));
    assert_eq!(b.source_role.as_deref(), Some("replica"));
    assert_eq!(b.redis_version.as_deref(), Some("7.0.15"));
    assert_eq!(b.rdb_version, Some(10));
    assert_eq!(
        b.data_key.as_deref(),
        Some("redback/orders/b1/dump.rdb.zst")
    );
    assert_eq!(
        b.manifest_key.as_deref(),
        Some("redback/orders/b1/manifest.json")
    );
    assert_eq!(b.sha256, Some("ab".repeat(32)));
    assert_eq!(b.retention_until, Some(at(1_800_086_400)));
    assert_eq!(b.archived, None);
    assert_eq!(b.manifest().unwrap().unwrap(), m);
    assert_eq!(cat.get_backup("nope").unwrap(), None);
}

#[test]
fn record_manifest_refuses_a_time_that_does_not_parse_naming_the_key() {
    let mut m = manifest("orders", "b1", 100);
    m.started_at = "yesterday".into();
    let cat = Catalog::open_in_memory().unwrap();
    let err = cat
        .record_manifest("local", &m, "redback/orders/b1/manifest.json")
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("redback/orders/b1/manifest.json"), "{msg}");
    assert!(msg.contains("started_at `yesterday`"), "{msg}");
    assert_eq!(cat.get_backup("b1").unwrap(), None);
}

#[test]
fn upsert_backup_inserts_a_running_backup_then_replaces_it() {
    let cat = Catalog::open_in_memory().unwrap();
    let running = BackupRecord {
        id: "b1".into(),
        instance: "orders".into(),
        storage: "s3".into(),
        kind: Kind::Automatic,
        name: None,
        started_at: at(100),
        finished_at: None,
        status: BackupStatus::Running,
        stored_bytes: 0,
        raw_bytes: 0,
        source_address: Some("10.0.0.1:6379".into()),
        source_role: Some("master".into()),
        redis_version: None,
        rdb_version: None,
        data_key: None,
        manifest_key: None,
        sha256: None,
        retention_until: None,
        archived: Some(Archived {
            storage: "cold".into(),
            at: at(50),
        }),
        manifest_json: None,
    };
    cat.upsert_backup(&running).unwrap();
    assert_eq!(cat.get_backup("b1").unwrap().unwrap(), running);
    let failed = BackupRecord {
        status: BackupStatus::Failed,
        finished_at: Some(at(160)),
        stored_bytes: 77,
        archived: None,
        ..running.clone()
    };
    cat.upsert_backup(&failed).unwrap();
    assert_eq!(cat.get_backup("b1").unwrap().unwrap(), failed);
    assert_eq!(cat.list_backups(&BackupQuery::default()).unwrap().len(), 1);
}

#[test]
fn sizes_beyond_what_sqlite_stores_are_refused() {
    let cat = Catalog::open_in_memory().unwrap();
    let mut m = manifest("orders", "b1", 100);
    m.data.raw_bytes = u64::MAX;
    let err = cat.record_manifest("local", &m, "k").unwrap_err();
    assert!(matches!(err, CatalogError::BadInput { .. }), "{err}");
    assert!(err.to_string().contains("too large"), "{err}");
}

#[test]
fn record_manifest_again_keeps_the_archive_copy_and_upsert_does_not() {
    let m = manifest("orders", "b1", 100);
    let cat = catalog_with(std::slice::from_ref(&m));
    cat.set_archived("b1", "cold", at(500)).unwrap();
    let archived = Some(Archived {
        storage: "cold".into(),
        at: at(500),
    });
    assert_eq!(cat.get_backup("b1").unwrap().unwrap().archived, archived);
    let again = cat.record_manifest("local", &m, &manifest_key(&m)).unwrap();
    assert_eq!(again.archived, None);
    assert_eq!(cat.get_backup("b1").unwrap().unwrap().archived, archived);
    cat.upsert_backup(&again).unwrap();
    assert_eq!(cat.get_backup("b1").unwrap().unwrap().archived, None);
}

#[test]
fn status_archive_and_delete_change_one_row_and_refuse_unknown_ids() {
    let cat = catalog_with(&[manifest("orders", "b1", 100), manifest("orders", "b2", 200)]);
    cat.set_backup_status("b1", BackupStatus::Deleted).unwrap();
    assert_eq!(
        cat.get_backup("b1").unwrap().unwrap().status,
        BackupStatus::Deleted
    );
    assert_eq!(
        cat.get_backup("b2").unwrap().unwrap().status,
        BackupStatus::Complete
    );
    assert!(matches!(
        cat.set_backup_status("nope", BackupStatus::Failed),
        Err(CatalogError::NotFound { .. })
    ));
    assert!(matches!(
        cat.set_archived("nope", "cold", at(1)),
        Err(CatalogError::NotFound { .. })
    ));
    assert!(cat.delete_backup("b1").unwrap());
    assert!(!cat.delete_backup("b1").unwrap());
    assert_eq!(cat.get_backup("b1").unwrap(), None);
    assert_eq!(
        ids(&cat.list_backups(&BackupQuery::default()).unwrap()),
        ["b2"]
    );
}

#[test]
fn list_is_newest_first_ties_by_id_and_pages_with_limit_and_offset() {
    let cat = catalog_with(&[
        manifest("orders", "b1", 100),
        manifest("orders", "b3", 300),
        manifest("orders", "b2a", 200),
        manifest("orders", "b2b", 200),
        manifest("users", "u1", 250),
    ]);
    let all = cat.list_backups(&query("orders")).unwrap();
    assert_eq!(ids(&all), ["b3", "b2b", "b2a", "b1"]);
    let every = cat.list_backups(&BackupQuery::default()).unwrap();
    assert_eq!(ids(&every), ["b3", "u1", "b2b", "b2a", "b1"]);
    let page = |limit, offset| {
        let q = BackupQuery {
            limit,
            offset,
            ..query("orders")
        };
        ids(&cat.list_backups(&q).unwrap())
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(page(Some(2), 0), ["b3", "b2b"]);
    assert_eq!(page(Some(2), 2), ["b2a", "b1"]);
    assert_eq!(page(None, 3), ["b1"]);
    assert!(page(Some(2), 4).is_empty());
    assert!(page(Some(0), 0).is_empty());
}

/// `from` is inclusive and `to` exclusive, to the millisecond, including
/// bounds between two stored milliseconds.
#[test]
fn time_range_includes_from_and_excludes_to() {
    let cat = catalog_with(&[
        manifest("orders", "t100", 100),
        manifest("orders", "t200", 200),
        manifest("orders", "t300", 300),
    ]);
    let range = |from: Option<Timestamp>, to: Option<Timestamp>| {
        let q = BackupQuery {
            from,
            to,
            ..query("orders")
        };
        ids(&cat.list_backups(&q).unwrap())
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(range(Some(at(200)), Some(at(300))), ["t200"]);
    assert_eq!(range(Some(at(100)), Some(at(300))), ["t200", "t100"]);
    assert_eq!(range(Some(at(100)), None), ["t300", "t200", "t100"]);
    assert_eq!(range(None, Some(at(200))), ["t100"]);
    assert!(range(Some(at(200)), Some(at(200))).is_empty());
    let ms = jiff::SignedDuration::from_millis(1);
    let ns = jiff::SignedDuration::from_nanos(1);
    assert_eq!(range(Some(at(200) - ms), Some(at(200) + ms)), ["t200"]);
    // Bounds inside a millisecond compare as the untruncated times would.
    assert!(range(Some(at(200) + ns), Some(at(300))).is_empty());
    assert_eq!(range(Some(at(200) - ns), Some(at(200) + ns)), ["t200"]);
    assert!(range(None, Some(at(100) - ns)).is_empty());
}

/// jiff writes fractional seconds only when there are some, so as text
/// `10:00:00.5Z` sorts before `10:00:00Z`; stored as numbers they do not.
#[test]
fn fractional_second_manifests_sort_by_time_not_text() {
    let mut half = manifest("orders", "half", 0);
    half.started_at = "2026-11-21T10:00:00.5Z".into();
    let mut whole = manifest("orders", "whole", 0);
    whole.started_at = "2026-11-21T10:00:00Z".into();
    let mut nanos = manifest("orders", "nanos", 0);
    nanos.started_at = "2026-11-21T10:00:00.123456789Z".into();
    let cat = catalog_with(&[half, whole, nanos]);
    let all = cat.list_backups(&query("orders")).unwrap();
    assert_eq!(ids(&all), ["half", "nanos", "whole"]);
    assert_eq!(
        all[1].started_at,
        "2026-11-21T10:00:00.123Z".parse::<Timestamp>().unwrap()
    );
    let from = "2026-11-21T10:00:00.2Z".parse::<Timestamp>().unwrap();
    let q = BackupQuery {
        from: Some(from),
        ..query("orders")
    };
    assert_eq!(ids(&cat.list_backups(&q).unwrap()), ["half"]);
}

#[test]
fn kind_status_and_instance_filters() {
    let mut auto = manifest("orders", "auto", 100);
    auto.kind = Kind::Automatic;
    let cat = catalog_with(&[
        auto,
        manifest("orders", "manual", 200),
        manifest("orders", "gone", 300),
        manifest("users", "other", 400),
    ]);
    cat.set_backup_status("gone", BackupStatus::Deleted)
        .unwrap();
    let with = |f: fn(&mut BackupQuery)| {
        let mut q = query("orders");
        f(&mut q);
        ids(&cat.list_backups(&q).unwrap())
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(with(|q| q.kind = Some(Kind::Automatic)), ["auto"]);
    assert_eq!(with(|q| q.kind = Some(Kind::Manual)), ["gone", "manual"]);
    assert_eq!(
        with(|q| q.status = Some(BackupStatus::Complete)),
        ["manual", "auto"]
    );
    assert_eq!(with(|q| q.status = Some(BackupStatus::Deleted)), ["gone"]);
    assert!(with(|q| q.status = Some(BackupStatus::Running)).is_empty());
    assert_eq!(
        with(|q| {
            q.kind = Some(Kind::Manual);
            q.status = Some(BackupStatus::Complete);
        }),
        ["manual"]
    );
    assert_eq!(with(|q| q.instance = Some("users".into())), ["other"]);
    assert!(with(|q| q.instance = Some("nobody".into())).is_empty());
}

#[test]
fn expired_backups_are_complete_ones_retained_until_before_now() {
    let mut keep_forever = manifest("orders", "forever", 50);
    keep_forever.retention_until = None;
    // Each kept for a day: until 86_500, 86_600, 86_700.
    let cat = catalog_with(&[
        keep_forever,
        manifest("orders", "b100", 100),
        manifest("users", "u200", 200),
        manifest("orders", "b300", 300),
    ]);
    cat.set_backup_status("b300", BackupStatus::Failed).unwrap();
    assert!(cat.expired_backups(at(86_500)).unwrap().is_empty());
    let ms = jiff::SignedDuration::from_millis(1);
    assert_eq!(
        ids(&cat.expired_backups(at(86_500) + ms).unwrap()),
        ["b100"]
    );
    assert_eq!(
        ids(&cat.expired_backups(at(1_000_000)).unwrap()),
        ["b100", "u200"]
    );
}

#[test]
fn newest_complete_skips_other_states_and_instances() {
    let cat = catalog_with(&[
        manifest("orders", "b100", 100),
        manifest("orders", "b200", 200),
        manifest("orders", "b300", 300),
        manifest("users", "u400", 400),
    ]);
    assert_eq!(cat.newest_complete("orders").unwrap().unwrap().id, "b300");
    cat.set_backup_status("b300", BackupStatus::Failed).unwrap();
    cat.set_backup_status("b200", BackupStatus::Deleted)
        .unwrap();
    assert_eq!(cat.newest_complete("orders").unwrap().unwrap().id, "b100");
    assert_eq!(cat.newest_complete("nobody").unwrap(), None);
}

#[test]
fn rebuild_from_the_same_manifests_gives_the_same_list() {
    let mut manifests: Vec<Manifest> = (0..50)
        .map(|i| {
            let mut m = manifest(
                ["orders", "users"][i % 2],
                &format!("b{i:03}"),
                1000 * i as i64,
            );
            if i % 3 == 0 {
                m.kind = Kind::Automatic;
                m.name = None;
            }
            m
        })
        .collect();
    manifests[7].started_at = "2026-11-21T10:00:00.123456789Z".into();
    let original = catalog_with(&manifests);
    let fresh = Catalog::open_in_memory().unwrap();
    let report = fresh
        .rebuild(
            manifests
                .iter()
                .map(|m| ("local".to_string(), manifest_key(m), m.clone())),
        )
        .unwrap();
    assert_eq!(
        report,
        RebuildReport {
            removed: 0,
            inserted: 50,
            skipped: vec![]
        }
    );
    let all = BackupQuery::default();
    let expected = original.list_backups(&all).unwrap();
    assert_eq!(expected.len(), 50);
    assert_eq!(fresh.list_backups(&all).unwrap(), expected);
    assert_eq!(
        fresh.list_backups(&query("users")).unwrap(),
        original.list_backups(&query("users")).unwrap()
    );
}

#[test]
fn rebuild_replaces_only_the_backups_table_but_running_rows() {
    let cat = catalog_with(&[manifest("orders", "old", 100)]);
    let running = BackupRecord {
        status: BackupStatus::Running,
        id: "running".into(),
        ..cat.get_backup("old").unwrap().unwrap()
    };
    cat.upsert_backup(&running).unwrap();
    cat.insert_task(&TaskRecord::queued(
        "t1",
        TaskKind::Backup,
        Some("orders".into()),
    ))
    .unwrap();
    cat.set_policy("orders", &json!({"keep_days": 1})).unwrap();
    cat.record_window(
        "orders",
        "w1",
        crate::catalog::WindowOutcome::Succeeded,
        1,
        None,
    )
    .unwrap();

    let new = manifest("orders", "new", 200);
    let report = cat
        .rebuild([("s3".to_string(), manifest_key(&new), new.clone())])
        .unwrap();
    // The running backup has no manifest yet: kept for the crash clean-up.
    assert_eq!((report.removed, report.inserted), (1, 1));
    let list = cat.list_backups(&BackupQuery::default()).unwrap();
    assert_eq!(ids(&list), ["new", "running"]);
    assert_eq!(list[0].storage, "s3");
    assert!(cat.get_task("t1").unwrap().is_some());
    assert!(cat.get_policy("orders").unwrap().is_some());
    assert!(cat.window_done("orders", "w1").unwrap());
}

#[test]
fn rebuild_skips_bad_and_repeated_manifests_and_reports_them() {
    let good = manifest("orders", "good", 100);
    let mut bad = manifest("orders", "bad", 200);
    bad.retention_until = Some("soon".into());
    let cat = Catalog::open_in_memory().unwrap();
    let report = cat
        .rebuild([
            ("local".to_string(), "k/good".to_string(), good.clone()),
            ("local".to_string(), "k/bad".to_string(), bad),
            ("archive".to_string(), "a/good".to_string(), good),
        ])
        .unwrap();
    assert_eq!(report.inserted, 1);
    assert_eq!(report.skipped.len(), 2, "{report:?}");
    assert_eq!(report.skipped[0].manifest_key, "k/bad");
    assert!(report.skipped[0].reason.contains("retention_until `soon`"));
    assert_eq!(report.skipped[1].storage, "archive");
    assert!(report.skipped[1].reason.contains("came already"));
    assert_eq!(cat.get_backup("good").unwrap().unwrap().storage, "local");
}

#[test]
fn unknown_words_and_negative_sizes_in_the_file_are_errors_naming_the_row() {
    let cat = catalog_with(&[manifest("orders", "b1", 100), manifest("orders", "b2", 200)]);
    cat.conn()
        .execute("UPDATE backups SET status = 'exploded' WHERE id = 'b1'", [])
        .unwrap();
    let err = cat.get_backup("b1").unwrap_err().to_string();
    assert!(
        err.contains("table backups, row `b1`: column status holds `exploded`"),
        "{err}"
    );
    assert!(
        err.contains("complete | failed | running | deleted"),
        "{err}"
    );
    assert!(err.contains(":memory:"), "{err}");
    assert!(cat.list_backups(&BackupQuery::default()).is_err());
    cat.conn()
        .execute("UPDATE backups SET stored_bytes = -5 WHERE id = 'b2'", [])
        .unwrap();
    let err = cat.get_backup("b2").unwrap_err().to_string();
    assert!(err.contains("row `b2`: column stored_bytes"), "{err}");
    cat.conn()
        .execute(
            "UPDATE backups SET stored_bytes = 5, kind = 'weekly' WHERE id = 'b2'",
            [],
        )
        .unwrap();
    let err = cat.get_backup("b2").unwrap_err().to_string();
    assert!(err.contains("column kind holds `weekly`"), "{err}");
}

/// The list reads rows off the (instance, started_at, id) index in order:
/// no table scan, no sort.
#[test]
fn listing_an_instance_by_time_uses_the_index_without_sorting() {
    let cat = Catalog::open_in_memory().unwrap();
    let conn = cat.conn();
    let sql = format!(
        "EXPLAIN QUERY PLAN {SELECT} WHERE 1 AND instance = ? AND started_at >= ? \
         AND started_at < ?{NEWEST_FIRST} LIMIT ? OFFSET ?"
    );
    let mut stmt = conn.prepare(&sql).unwrap();
    let plan: Vec<String> = stmt
        .query_map(params!["orders", 0, 10, -1, 0], |r| r.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let plan = plan.join("\n");
    assert!(plan.contains("backups_instance_started"), "{plan}");
    assert!(!plan.contains("TEMP B-TREE"), "{plan}");
}
