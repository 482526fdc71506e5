//! The `backups` table: a cache of manifests, plus the backups the daemon
//! knows of that have no manifest (running, failed, deleted), and the
//! rebuild that replaces the whole table with what storage's manifests say.

use std::collections::HashSet;
use std::path::Path;

use jiff::Timestamp;
use rusqlite::types::Value;
use rusqlite::{Row, Statement, params, params_from_iter};

use super::row::RowReader;
use super::{Catalog, CatalogError, millis, millis_bound, to_stored_precision};
use crate::backup::{Kind, Manifest};

stored_words! {
    /// Where a backup stands. Only `Complete` backups have a manifest in
    /// storage; a rebuild brings back only those.
    pub enum BackupStatus {
        Complete => "complete",
        Failed => "failed",
        /// In progress.
        Running => "running",
        /// Removed from storage; the row stays for the record.
        Deleted => "deleted",
    }
}

fn kind_str(kind: Kind) -> &'static str {
    match kind {
        Kind::Automatic => "automatic",
        Kind::Manual => "manual",
    }
}

fn parse_kind(text: &str) -> Option<Kind> {
    match text {
        "automatic" => Some(Kind::Automatic),
        "manual" => Some(Kind::Manual),
        _ => None,
    }
}

/// A copy of a backup in the archive storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archived {
    pub storage: String,
    pub at: Timestamp,
}

/// One backup as the catalog keeps it. Times are kept to the millisecond
/// (see [`super::to_stored_precision`]).
#[derive(Debug, Clone, PartialEq)]
pub struct BackupRecord {
    pub id: String,
    pub instance: String,
    /// The name of the storage (from the config) holding the backup.
    pub storage: String,
    pub kind: Kind,
    /// Name or remark of a manual backup.
    pub name: Option<String>,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub status: BackupStatus,
    pub stored_bytes: u64,
    pub raw_bytes: u64,
    /// `host:port` the RDB was read from.
    pub source_address: Option<String>,
    /// `master` or `replica`.
    pub source_role: Option<String>,
    pub redis_version: Option<String>,
    pub rdb_version: Option<u32>,
    pub data_key: Option<String>,
    pub manifest_key: Option<String>,
    /// sha256 of the stored bytes, lowercase hex.
    pub sha256: Option<String>,
    pub retention_until: Option<Timestamp>,
    pub archived: Option<Archived>,
    /// The manifest as written to storage, verbatim.
    pub manifest_json: Option<String>,
}

impl BackupRecord {
    /// The manifest kept with this record, parsed.
    pub fn manifest(&self) -> Option<Result<Manifest, crate::backup::manifest::ManifestError>> {
        self.manifest_json
            .as_deref()
            .map(|json| Manifest::from_json(json.as_bytes()))
    }

    /// A complete backup as its manifest describes it; the error says which
    /// field is wrong.
    fn from_manifest(
        storage: &str,
        m: &Manifest,
        manifest_key: &str,
    ) -> Result<BackupRecord, String> {
        let time = |field: &str, text: &str| {
            text.parse::<Timestamp>()
                .map(to_stored_precision)
                .map_err(|e| format!("{field} `{text}` is not an RFC 3339 time: {e}"))
        };
        let json = serde_json::to_string(m).map_err(|e| e.to_string())?;
        Ok(BackupRecord {
            id: m.id.clone(),
            instance: m.instance.clone(),
            storage: storage.to_string(),
            kind: m.kind,
            name: m.name.clone(),
            started_at: time("started_at", &m.started_at)?,
            finished_at: Some(time("finished_at", &m.finished_at)?),
            status: BackupStatus::Complete,
            stored_bytes: m.data.stored_bytes,
            raw_bytes: m.data.raw_bytes,
            source_address: Some(m.source.address.clone()),
            source_role: Some(m.source.role.clone()),
            redis_version: Some(m.source.redis_version.clone()),
            rdb_version: Some(m.source.rdb_version),
            data_key: Some(m.data.key.clone()),
            manifest_key: Some(manifest_key.to_string()),
            sha256: Some(m.data.sha256.clone()),
            retention_until: m
                .retention_until
                .as_deref()
                .map(|t| time("retention_until", t))
                .transpose()?,
            archived: None,
            manifest_json: Some(json),
        })
    }
}

/// Which backups to list, newest first. The time range is half-open on
/// `started_at`: `from` is inclusive, `to` exclusive, so consecutive ranges
/// neither overlap nor leave gaps.
#[derive(Debug, Clone, Default)]
pub struct BackupQuery {
    pub instance: Option<String>,
    /// Inclusive lower bound on `started_at`.
    pub from: Option<Timestamp>,
    /// Exclusive upper bound on `started_at`.
    pub to: Option<Timestamp>,
    pub kind: Option<Kind>,
    pub status: Option<BackupStatus>,
    /// At most this many (all when `None`).
    pub limit: Option<u32>,
    /// Skip this many of the newest first.
    pub offset: u32,
}

/// What [`Catalog::rebuild`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebuildReport {
    /// Rows the table held before.
    pub removed: usize,
    /// Rows it holds now.
    pub inserted: usize,
    /// Manifests left out, each with the reason.
    pub skipped: Vec<SkippedManifest>,
}

/// A manifest a rebuild could not take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedManifest {
    pub storage: String,
    pub manifest_key: String,
    pub backup_id: String,
    pub reason: String,
}

/// The columns in the order `read_backup` and `bind_backup` use.
macro_rules! backup_columns {
    () => {
        "id, instance, storage, kind, name, started_at, finished_at, status, \
         stored_bytes, raw_bytes, source_address, source_role, redis_version, \
         rdb_version, data_key, manifest_key, sha256, retention_until, \
         archive_storage, archived_at, manifest"
    };
}

/// Insert, or replace every column; when `?22` is true the archive columns
/// of an existing row are kept (a manifest does not know about archives).
const UPSERT: &str = concat!(
    "INSERT INTO backups (",
    backup_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, \
     ?16, ?17, ?18, ?19, ?20, ?21) \
     ON CONFLICT (id) DO UPDATE SET \
     instance = excluded.instance, storage = excluded.storage, kind = excluded.kind, \
     name = excluded.name, started_at = excluded.started_at, \
     finished_at = excluded.finished_at, status = excluded.status, \
     stored_bytes = excluded.stored_bytes, raw_bytes = excluded.raw_bytes, \
     source_address = excluded.source_address, source_role = excluded.source_role, \
     redis_version = excluded.redis_version, rdb_version = excluded.rdb_version, \
     data_key = excluded.data_key, manifest_key = excluded.manifest_key, \
     sha256 = excluded.sha256, retention_until = excluded.retention_until, \
     archive_storage = CASE WHEN ?22 THEN archive_storage ELSE excluded.archive_storage END, \
     archived_at = CASE WHEN ?22 THEN archived_at ELSE excluded.archived_at END, \
     manifest = excluded.manifest"
);

const SELECT: &str = concat!("SELECT ", backup_columns!(), " FROM backups");

/// Newest first; `id` breaks ties so pages are stable. The indexes end in
/// `(started_at, id)`, so this order is read straight off them.
const NEWEST_FIRST: &str = " ORDER BY started_at DESC, id DESC";

fn read_backup(path: &Path, row: &Row<'_>) -> Result<BackupRecord, CatalogError> {
    let r = RowReader::new(path, "backups", row)?;
    let archived = match r.get::<Option<String>>(18)? {
        None => None,
        Some(storage) => Some(Archived {
            storage,
            at: r.time(19)?,
        }),
    };
    let rdb_version = match r.get::<Option<i64>>(13)? {
        None => None,
        Some(v) => Some(
            u32::try_from(v).map_err(|_| r.bad(13, format!("holds {v}, not an RDB version")))?,
        ),
    };
    Ok(BackupRecord {
        instance: r.get(1)?,
        storage: r.get(2)?,
        kind: r.word(3, parse_kind, "automatic | manual")?,
        name: r.get(4)?,
        started_at: r.time(5)?,
        finished_at: r.opt_time(6)?,
        status: r.word(7, BackupStatus::parse, &BackupStatus::expected())?,
        stored_bytes: r.size(8)?,
        raw_bytes: r.size(9)?,
        source_address: r.get(10)?,
        source_role: r.get(11)?,
        redis_version: r.get(12)?,
        rdb_version,
        data_key: r.get(14)?,
        manifest_key: r.get(15)?,
        sha256: r.get(16)?,
        retention_until: r.opt_time(17)?,
        archived,
        manifest_json: r.get(20)?,
        id: r.id,
    })
}

impl Catalog {
    /// Runs the upsert statement for `rec`.
    fn bind_backup(
        &self,
        stmt: &mut Statement<'_>,
        rec: &BackupRecord,
        keep_archive: bool,
    ) -> Result<(), CatalogError> {
        let stored = self.size_in("backup", &rec.id, rec.stored_bytes)?;
        let raw = self.size_in("backup", &rec.id, rec.raw_bytes)?;
        stmt.execute(params![
            rec.id,
            rec.instance,
            rec.storage,
            kind_str(rec.kind),
            rec.name,
            millis(rec.started_at),
            rec.finished_at.map(millis),
            rec.status.as_str(),
            stored,
            raw,
            rec.source_address,
            rec.source_role,
            rec.redis_version,
            rec.rdb_version,
            rec.data_key,
            rec.manifest_key,
            rec.sha256,
            rec.retention_until.map(millis),
            rec.archived.as_ref().map(|a| a.storage.as_str()),
            rec.archived.as_ref().map(|a| millis(a.at)),
            rec.manifest_json,
            keep_archive,
        ])
        .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// Inserts the backup, or replaces every field of the one with its id.
    pub fn upsert_backup(&self, rec: &BackupRecord) -> Result<(), CatalogError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(UPSERT).map_err(|e| self.sql(e))?;
        self.bind_backup(&mut stmt, rec, false)
    }

    /// Records a complete backup from its manifest (found in `storage` under
    /// `manifest_key`). An existing row with the same id is replaced, except
    /// for its archive copy, which the manifest does not know about.
    pub fn record_manifest(
        &self,
        storage: &str,
        manifest: &Manifest,
        manifest_key: &str,
    ) -> Result<BackupRecord, CatalogError> {
        let rec = BackupRecord::from_manifest(storage, manifest, manifest_key)
            .map_err(|problem| self.bad_input("manifest", manifest_key, problem))?;
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(UPSERT).map_err(|e| self.sql(e))?;
        self.bind_backup(&mut stmt, &rec, true)?;
        Ok(rec)
    }

    pub fn get_backup(&self, id: &str) -> Result<Option<BackupRecord>, CatalogError> {
        Ok(self.select_backups(" WHERE id = ?1", [id])?.pop())
    }

    /// Sets the status of a backup; an unknown id is an error.
    pub fn set_backup_status(&self, id: &str, status: BackupStatus) -> Result<(), CatalogError> {
        let changed = self
            .conn()
            .execute(
                "UPDATE backups SET status = ?2 WHERE id = ?1",
                params![id, status.as_str()],
            )
            .map_err(|e| self.sql(e))?;
        if changed == 0 {
            return Err(self.not_found("backup", id));
        }
        Ok(())
    }

    /// Records that a copy of the backup is in `archive_storage` since `at`.
    pub fn set_archived(
        &self,
        id: &str,
        archive_storage: &str,
        at: Timestamp,
    ) -> Result<(), CatalogError> {
        let changed = self
            .conn()
            .execute(
                "UPDATE backups SET archive_storage = ?2, archived_at = ?3 WHERE id = ?1",
                params![id, archive_storage, millis(at)],
            )
            .map_err(|e| self.sql(e))?;
        if changed == 0 {
            return Err(self.not_found("backup", id));
        }
        Ok(())
    }

    /// Removes the row (to keep it as a record, set the status `deleted`
    /// instead). Returns whether there was one.
    pub fn delete_backup(&self, id: &str) -> Result<bool, CatalogError> {
        let changed = self
            .conn()
            .execute("DELETE FROM backups WHERE id = ?1", [id])
            .map_err(|e| self.sql(e))?;
        Ok(changed > 0)
    }

    /// Runs `SELECT ... <sql>` and reads every row.
    fn select_backups(
        &self,
        sql: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<BackupRecord>, CatalogError> {
        self.select_rows(&format!("{SELECT}{sql}"), args, |row| {
            read_backup(&self.path, row)
        })
    }

    /// The backups `q` selects, newest first (by `started_at`, then id).
    pub fn list_backups(&self, q: &BackupQuery) -> Result<Vec<BackupRecord>, CatalogError> {
        let mut sql = String::from(" WHERE 1");
        let mut args: Vec<Value> = Vec::new();
        if let Some(instance) = &q.instance {
            sql.push_str(" AND instance = ?");
            args.push(Value::Text(instance.clone()));
        }
        if let Some(from) = q.from {
            sql.push_str(" AND started_at >= ?");
            args.push(Value::Integer(millis_bound(from)));
        }
        if let Some(to) = q.to {
            sql.push_str(" AND started_at < ?");
            args.push(Value::Integer(millis_bound(to)));
        }
        if let Some(kind) = q.kind {
            sql.push_str(" AND kind = ?");
            args.push(Value::Text(kind_str(kind).into()));
        }
        if let Some(status) = q.status {
            sql.push_str(" AND status = ?");
            args.push(Value::Text(status.as_str().into()));
        }
        sql.push_str(NEWEST_FIRST);
        sql.push_str(" LIMIT ? OFFSET ?");
        args.push(Value::Integer(q.limit.map_or(-1, i64::from)));
        args.push(Value::Integer(q.offset.into()));
        self.select_backups(&sql, params_from_iter(args))
    }

    /// Complete backups whose `retention_until` is before `now`, oldest
    /// first. Whether to keep the last good one is the sweeper's call.
    pub fn expired_backups(&self, now: Timestamp) -> Result<Vec<BackupRecord>, CatalogError> {
        // `status = 'complete'` is written out so the partial index applies.
        self.select_backups(
            " WHERE status = 'complete' AND retention_until < ?1 ORDER BY started_at, id",
            [millis_bound(now)],
        )
    }

    /// Backups with a copy in an archive storage (whatever became of the
    /// original), oldest copy first: what the archive sweep looks at.
    pub fn archived_backups(&self) -> Result<Vec<BackupRecord>, CatalogError> {
        self.select_backups(
            " WHERE archive_storage IS NOT NULL ORDER BY archived_at, id",
            [],
        )
    }

    /// Forgets the archive copy of backup `id` (it was deleted).
    pub fn clear_archived(&self, id: &str) -> Result<(), CatalogError> {
        let changed = self
            .conn()
            .execute(
                "UPDATE backups SET archive_storage = NULL, archived_at = NULL WHERE id = ?1",
                params![id],
            )
            .map_err(|e| self.sql(e))?;
        if changed == 0 {
            return Err(self.not_found("backup", id));
        }
        Ok(())
    }

    /// The newest complete backup of `instance`.
    pub fn newest_complete(&self, instance: &str) -> Result<Option<BackupRecord>, CatalogError> {
        let mut found = self.select_backups(
            &format!(" WHERE instance = ?1 AND status = 'complete'{NEWEST_FIRST} LIMIT 1"),
            [instance],
        )?;
        Ok(found.pop())
    }

    /// Replaces the backups table but its running rows, in one transaction,
    /// with exactly what `manifests` (storage name, manifest key, manifest) say: every
    /// backup becomes `complete` with no archive copy. Tasks, the window log
    /// and policies are untouched. A manifest whose times do not parse, or
    /// whose id came already (list main storages before archive ones), is
    /// skipped and reported; nothing is written if SQLite fails.
    pub fn rebuild(
        &self,
        manifests: impl IntoIterator<Item = (String, String, Manifest)>,
    ) -> Result<RebuildReport, CatalogError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| self.sql(e))?;
        let mut report = RebuildReport {
            removed: tx
                // Backups still running (or cut off by a crash, for the
                // next start to clean up) have no manifest yet: kept.
                .execute("DELETE FROM backups WHERE status != 'running'", [])
                .map_err(|e| self.sql(e))?,
            ..RebuildReport::default()
        };
        {
            let mut stmt = tx.prepare_cached(UPSERT).map_err(|e| self.sql(e))?;
            let mut seen: HashSet<String> = HashSet::new();
            for (storage, manifest_key, manifest) in manifests {
                let skip = |reason: String| SkippedManifest {
                    storage: storage.clone(),
                    manifest_key: manifest_key.clone(),
                    backup_id: manifest.id.clone(),
                    reason,
                };
                if seen.contains(&manifest.id) {
                    report.skipped.push(skip(format!(
                        "backup id `{}` came already from an earlier manifest",
                        manifest.id
                    )));
                    continue;
                }
                match BackupRecord::from_manifest(&storage, &manifest, &manifest_key) {
                    Err(reason) => report.skipped.push(skip(reason)),
                    Ok(rec) => {
                        self.bind_backup(&mut stmt, &rec, false)?;
                        seen.insert(rec.id);
                        report.inserted += 1;
                    }
                }
            }
        }
        tx.commit().map_err(|e| self.sql(e))?;
        Ok(report)
    }
}

#[cfg(test)]
#[path = "backups_tests.rs"]
mod tests;
