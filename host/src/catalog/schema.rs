//! The schema, as an ordered list of migrations. `PRAGMA user_version` is
//! the number of migrations applied; each one runs in its own transaction
//! together with the version bump, so a crash leaves the file at one version
//! or the next, never between.
//!
//! To change the schema, append a migration; never edit one that has
//! shipped (files in the field have run it). Tables are STRICT (SQLite
//! refuses a value of the wrong type); enum-like text columns have no CHECK,
//! so that a new value needs no table rebuild: the reader refuses what it
//! does not know, naming the row.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::CatalogError;

/// Version 1: backups and tasks. Times are unix milliseconds, UTC.
const V1: &str = "
CREATE TABLE backups (
    id              TEXT PRIMARY KEY NOT NULL,
    instance        TEXT NOT NULL,
    storage         TEXT NOT NULL,
    kind            TEXT NOT NULL,     -- automatic | manual
    name            TEXT,              -- name or remark of a manual backup
    started_at      INTEGER NOT NULL,
    finished_at     INTEGER,
    status          TEXT NOT NULL,     -- complete | failed | running | deleted
    stored_bytes    INTEGER NOT NULL DEFAULT 0,
    raw_bytes       INTEGER NOT NULL DEFAULT 0,
    source_address  TEXT,
    source_role     TEXT,
    redis_version   TEXT,
    rdb_version     INTEGER,
    data_key        TEXT,
    manifest_key    TEXT,
    sha256          TEXT,
    retention_until INTEGER,
    archive_storage TEXT,
    archived_at     INTEGER,
    manifest        TEXT               -- the manifest JSON, verbatim
) STRICT;
-- (started_at, id): lists are newest first with id breaking ties.
CREATE INDEX backups_instance_started ON backups (instance, started_at, id);
CREATE INDEX backups_started ON backups (started_at, id);

CREATE TABLE tasks (
    id          TEXT PRIMARY KEY NOT NULL,
    kind        TEXT NOT NULL,         -- backup | restore | clone | archive | sweep | download
    instance    TEXT,
    backup_id   TEXT,                  -- no foreign key: a task outlives its backup
    state       TEXT NOT NULL,         -- queued | running | succeeded | failed | cancelled
    bytes_done  INTEGER NOT NULL DEFAULT 0,
    bytes_total INTEGER,
    keys_done   INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    started_at  INTEGER,
    ended_at    INTEGER,
    error       TEXT,
    detail      TEXT NOT NULL DEFAULT '{}'
) STRICT;
CREATE INDEX tasks_created ON tasks (created_at, id);
CREATE INDEX tasks_unfinished ON tasks (state) WHERE state IN ('queued', 'running');
";

/// Version 2: the scheduler's window log, policies set through the API, and
/// an index for the sweeper's expiry query.
const V2: &str = "
CREATE TABLE schedule_windows (
    instance  TEXT NOT NULL,
    window_id TEXT NOT NULL,
    outcome   TEXT NOT NULL,           -- succeeded | failed | missed
    attempts  INTEGER NOT NULL,
    message   TEXT,
    at        INTEGER NOT NULL,
    PRIMARY KEY (instance, window_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE policies (
    instance   TEXT PRIMARY KEY NOT NULL,
    policy     TEXT NOT NULL,          -- JSON
    updated_at INTEGER NOT NULL
) STRICT;

CREATE INDEX backups_expiry ON backups (retention_until) WHERE status = 'complete';
";

const MIGRATIONS: &[&str] = &[V1, V2];

/// The schema version this code writes: the number of migrations.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Applies the migrations the file lacks, up to `target`, one transaction
/// each. `BEGIN IMMEDIATE` takes the write lock before reading the version,
/// so two processes opening the same file do not both apply a step.
pub(super) fn migrate(conn: &mut Connection, path: &Path, target: i64) -> Result<(), CatalogError> {
    let sql = |source| CatalogError::Sql {
        path: path.to_path_buf(),
        source,
    };
    loop {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sql)?;
        if version > SCHEMA_VERSION {
            return Err(CatalogError::TooNew {
                path: path.to_path_buf(),
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        if version < 0 {
            return Err(CatalogError::BadRow {
                path: path.to_path_buf(),
                table: "(file header)",
                row: "user_version".into(),
                column: "user_version".into(),
                problem: format!("is {version}; schema versions start at 0"),
            });
        }
        if version >= target {
            return Ok(());
        }
        let next = version + 1;
        let migrate_err = |source| CatalogError::Migrate {
            path: path.to_path_buf(),
            version: next,
            source,
        };
        tx.execute_batch(MIGRATIONS[version as usize])
            .map_err(migrate_err)?;
        tx.pragma_update(None, "user_version", next)
            .map_err(migrate_err)?;
        tx.commit().map_err(migrate_err)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::testing::manifest;
    use crate::catalog::{Catalog, WindowOutcome};

    fn user_version(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_new_file_gets_every_migration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        drop(Catalog::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        assert_eq!(user_version(&conn), SCHEMA_VERSION);
        assert_eq!(SCHEMA_VERSION, 2);
    }

    #[test]
    fn a_version_1_file_is_migrated_and_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        {
            // A file as the first release left it: migration 1 only, with
            // a backup written through that schema.
            let mut conn = Connection::open(&path).unwrap();
            migrate(&mut conn, &path, 1).unwrap();
            assert_eq!(user_version(&conn), 1);
            conn.execute(
                "INSERT INTO backups (id, instance, storage, kind, started_at, finished_at, \
                 status, stored_bytes, raw_bytes, retention_until) \
                 VALUES ('b1', 'orders', 'local', 'manual', 1000, 2000, 'complete', 10, 20, 5000)",
                [],
            )
            .unwrap();
            let tables: i64 = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE name IN ('schedule_windows', 'policies')",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(tables, 0);
        }
        let cat = Catalog::open(&path).unwrap();
        assert_eq!(user_version(&cat.conn()), SCHEMA_VERSION);
        let b = cat.get_backup("b1").unwrap().expect("row kept");
        assert_eq!(b.instance, "orders");
        assert_eq!(b.stored_bytes, 10);
        assert_eq!(b.started_at.as_millisecond(), 1000);
        // What version 2 brought works on the migrated file.
        cat.record_window("orders", "w1", WindowOutcome::Succeeded, 1, None)
            .unwrap();
        assert!(cat.window_done("orders", "w1").unwrap());
        cat.set_policy("orders", &serde_json::json!({"keep_days": 7}))
            .unwrap();
        assert_eq!(
            cat.expired_backups(jiff::Timestamp::from_millisecond(6000).unwrap())
                .unwrap()
                .len(),
            1
        );
        let plan: String = cat
            .conn()
            .query_row(
                "EXPLAIN QUERY PLAN SELECT id FROM backups WHERE status = 'complete' AND retention_until < 1",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("backups_expiry"), "{plan}");
    }

    #[test]
    fn a_file_from_a_newer_redback_is_refused_naming_file_and_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
                .unwrap();
        }
        let err = Catalog::open(&path).unwrap_err();
        assert!(
            matches!(err, CatalogError::TooNew { found, known, .. } if found == SCHEMA_VERSION + 1 && known == SCHEMA_VERSION),
            "{err}"
        );
        let msg = err.to_string();
        assert!(msg.contains(&*path.to_string_lossy()), "{msg}");
        assert!(msg.contains("newer redback"), "{msg}");
        assert!(msg.contains("rebuild"), "{msg}");
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        std::fs::write(&path, vec![b'x'; 4096]).unwrap();
        let err = Catalog::open(&path).unwrap_err();
        assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    }

    #[test]
    fn reopening_a_file_finds_its_data_and_migrates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        {
            let cat = Catalog::open(&path).unwrap();
            cat.record_manifest("local", &manifest("orders", "b1", 100), "k/b1")
                .unwrap();
            cat.set_policy("orders", &serde_json::json!({"x": 1}))
                .unwrap();
        }
        let cat = Catalog::open(&path).unwrap();
        assert_eq!(user_version(&cat.conn()), SCHEMA_VERSION);
        assert_eq!(cat.get_backup("b1").unwrap().unwrap().storage, "local");
        assert_eq!(
            cat.get_policy("orders").unwrap(),
            Some(serde_json::json!({"x": 1}))
        );
    }
}
