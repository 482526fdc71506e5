use serde_json::json;

use super::*;
use crate::catalog::testing::at;

/// A task created at `created_secs`.
fn task(id: &str, kind: TaskKind, instance: &str, created_secs: i64) -> TaskRecord {
    TaskRecord {
        created_at: at(created_secs),
        ..TaskRecord::queued(id, kind, Some(instance.into()))
    }
}

fn ids(list: &[TaskRecord]) -> Vec<&str> {
    list.iter().map(|t| t.id.as_str()).collect()
}

#[test]
fn insert_and_get_keep_every_field() {
    let cat = Catalog::open_in_memory().unwrap();
    let t = TaskRecord {
        id: "t1".into(),
        kind: TaskKind::Restore,
        instance: Some("orders".into()),
        backup_id: Some("b1".into()),
        state: TaskState::Running,
        bytes_done: 10,
        bytes_total: Some(100),
        keys_done: 3,
        created_at: at(100),
        started_at: Some(at(101)),
        ended_at: None,
        error: None,
        detail: json!({"mode": "by_keys", "keys": ["a", "b"], "target": "users", "delayed": true}),
    };
    cat.insert_task(&t).unwrap();
    assert_eq!(cat.get_task("t1").unwrap(), Some(t.clone()));
    assert_eq!(cat.get_task("nope").unwrap(), None);
    let err = cat.insert_task(&t).unwrap_err();
    assert!(matches!(err, CatalogError::TaskExists { .. }), "{err}");
    let global = TaskRecord::queued("sweep", TaskKind::Sweep, None);
    cat.insert_task(&global).unwrap();
    assert_eq!(cat.get_task("sweep").unwrap(), Some(global));
}

#[test]
fn a_task_goes_queued_running_succeeded_with_progress() {
    let cat = Catalog::open_in_memory().unwrap();
    cat.insert_task(&task("t1", TaskKind::Backup, "orders", 100))
        .unwrap();
    cat.start_task("t1", at(105)).unwrap();
    assert!(cat.update_task_progress("t1", 500, Some(1000), 20).unwrap());
    let t = cat.get_task("t1").unwrap().unwrap();
    assert_eq!(t.state, TaskState::Running);
    assert_eq!(t.started_at, Some(at(105)));
    assert_eq!(
        (t.bytes_done, t.bytes_total, t.keys_done),
        (500, Some(1000), 20)
    );
    let before = crate::catalog::to_stored_precision(Timestamp::now());
    cat.finish_task("t1", TaskState::Succeeded, None, Timestamp::now())
        .unwrap();
    let t = cat.get_task("t1").unwrap().unwrap();
    assert_eq!(t.state, TaskState::Succeeded);
    assert!(t.ended_at.unwrap() >= before);
    assert_eq!(t.error, None);
    // An ended task does not change: a late progress report is ignored, a
    // second end or a start is refused.
    assert!(!cat.update_task_progress("t1", 1, None, 1).unwrap());
    assert_eq!(cat.get_task("t1").unwrap().unwrap().bytes_done, 500);
    let err = cat
        .finish_task("t1", TaskState::Cancelled, None, Timestamp::now())
        .unwrap_err();
    assert!(
        matches!(
            &err,
            CatalogError::TaskEnded {
                state: "succeeded",
                ..
            }
        ),
        "{err}"
    );
    assert!(cat.start_task("t1", at(200)).is_err());
    assert_eq!(
        cat.get_task("t1").unwrap().unwrap().state,
        TaskState::Succeeded
    );
}

#[test]
fn finish_task_records_the_error_and_refuses_non_end_states_and_unknown_ids() {
    let cat = Catalog::open_in_memory().unwrap();
    cat.insert_task(&task("t1", TaskKind::Clone, "orders", 100))
        .unwrap();
    assert!(matches!(
        cat.finish_task("t1", TaskState::Running, None, Timestamp::now()),
        Err(CatalogError::BadInput { .. })
    ));
    cat.finish_task(
        "t1",
        TaskState::Failed,
        Some("target refused AUTH"),
        Timestamp::now(),
    )
    .unwrap();
    let t = cat.get_task("t1").unwrap().unwrap();
    assert_eq!(t.state, TaskState::Failed);
    assert_eq!(t.error.as_deref(), Some("target refused AUTH"));
    assert!(matches!(
        cat.finish_task("nope", TaskState::Failed, None, Timestamp::now()),
        Err(CatalogError::NotFound { .. })
    ));
    assert!(matches!(
        cat.update_task_progress("nope", 1, None, 1),
        Err(CatalogError::NotFound { .. })
    ));
    assert!(matches!(
        cat.start_task("nope", at(1)),
        Err(CatalogError::NotFound { .. })
    ));
}

#[test]
fn set_task_detail_replaces_the_document_even_after_the_end() {
    let cat = Catalog::open_in_memory().unwrap();
    cat.insert_task(&task("t1", TaskKind::Backup, "orders", 100))
        .unwrap();
    cat.finish_task(
        "t1",
        TaskState::Failed,
        Some("upload failed"),
        Timestamp::now(),
    )
    .unwrap();
    let detail = json!({"partial_objects": ["redback/orders/b1/dump.rdb.zst"]});
    cat.set_task_detail("t1", &detail).unwrap();
    assert_eq!(cat.get_task("t1").unwrap().unwrap().detail, detail);
    assert!(cat.set_task_detail("nope", &detail).is_err());
}

#[test]
fn list_tasks_filters_and_is_newest_first() {
    let cat = Catalog::open_in_memory().unwrap();
    cat.insert_task(&task("a", TaskKind::Backup, "orders", 100))
        .unwrap();
    cat.insert_task(&task("b", TaskKind::Restore, "orders", 200))
        .unwrap();
    cat.insert_task(&task("c", TaskKind::Backup, "users", 300))
        .unwrap();
    cat.insert_task(&task("d", TaskKind::Backup, "orders", 400))
        .unwrap();
    cat.finish_task("d", TaskState::Cancelled, None, Timestamp::now())
        .unwrap();
    let list = |q: TaskQuery| {
        ids(&cat.list_tasks(&q).unwrap())
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(list(TaskQuery::default()), ["d", "c", "b", "a"]);
    let orders = || TaskQuery {
        instance: Some("orders".into()),
        ..TaskQuery::default()
    };
    assert_eq!(list(orders()), ["d", "b", "a"]);
    assert_eq!(
        list(TaskQuery {
            kind: Some(TaskKind::Backup),
            ..orders()
        }),
        ["d", "a"]
    );
    assert_eq!(
        list(TaskQuery {
            state: Some(TaskState::Queued),
            ..orders()
        }),
        ["b", "a"]
    );
    assert_eq!(
        list(TaskQuery {
            limit: Some(2),
            ..TaskQuery::default()
        }),
        ["d", "c"]
    );
}

#[test]
fn tasks_left_queued_or_running_are_found_and_failed_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    {
        let cat = Catalog::open(&path).unwrap();
        cat.insert_task(&task("queued", TaskKind::Archive, "orders", 100))
            .unwrap();
        cat.insert_task(&task("running", TaskKind::Backup, "orders", 200))
            .unwrap();
        cat.start_task("running", at(201)).unwrap();
        cat.update_task_progress("running", 7, None, 0).unwrap();
        cat.insert_task(&task("done", TaskKind::Backup, "orders", 50))
            .unwrap();
        cat.finish_task("done", TaskState::Succeeded, None, Timestamp::now())
            .unwrap();
        // The daemon stops here without ending the first two.
    }
    let cat = Catalog::open(&path).unwrap();
    let left = cat.interrupted_tasks().unwrap();
    assert_eq!(ids(&left), ["queued", "running"]);
    for t in &left {
        assert!(
            cat.mark_interrupted(&t.id, INTERRUPTED_MESSAGE, Timestamp::now())
                .unwrap()
        );
    }
    assert!(cat.interrupted_tasks().unwrap().is_empty());
    let t = cat.get_task("running").unwrap().unwrap();
    assert_eq!(t.state, TaskState::Failed);
    assert_eq!(t.error.as_deref(), Some(INTERRUPTED_MESSAGE));
    assert!(t.ended_at.is_some());
    assert_eq!(t.bytes_done, 7);
    // Ended tasks are left alone.
    assert!(
        !cat.mark_interrupted("done", INTERRUPTED_MESSAGE, Timestamp::now())
            .unwrap()
    );
    assert_eq!(
        cat.get_task("done").unwrap().unwrap().state,
        TaskState::Succeeded
    );
    assert!(
        cat.mark_interrupted("nope", INTERRUPTED_MESSAGE, Timestamp::now())
            .is_err()
    );
}

#[test]
fn unknown_words_and_bad_detail_in_the_file_are_errors_naming_the_row() {
    let cat = Catalog::open_in_memory().unwrap();
    cat.insert_task(&task("t1", TaskKind::Backup, "orders", 100))
        .unwrap();
    cat.conn()
        .execute("UPDATE tasks SET state = 'paused' WHERE id = 't1'", [])
        .unwrap();
    let err = cat.get_task("t1").unwrap_err().to_string();
    assert!(
        err.contains("table tasks, row `t1`: column state holds `paused`"),
        "{err}"
    );
    assert!(cat.interrupted_tasks().unwrap().is_empty());
    cat.conn()
        .execute(
            "UPDATE tasks SET state = 'queued', kind = 'teleport' WHERE id = 't1'",
            [],
        )
        .unwrap();
    let err = cat.interrupted_tasks().unwrap_err().to_string();
    assert!(err.contains("column kind holds `teleport`"), "{err}");
    cat.conn()
        .execute(
            "UPDATE tasks SET kind = 'backup', detail = '{' WHERE id = 't1'",
            [],
        )
        .unwrap();
    let err = cat.get_task("t1").unwrap_err().to_string();
    assert!(err.contains("column detail holds invalid JSON"), "{err}");
}
