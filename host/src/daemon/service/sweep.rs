//! The retention sweeps: backups past their retention (never the newest
//! `keep_last` good ones) and archive copies past the archive's own,
//! manifest first, each sweep a task. Must not decide retention: the
//! catalog's expiry and the provider's rules do.

use super::*;

impl Service {
    /// Deletes backups past their retention (manifest first, so a half-done
    /// delete never leaves something that looks like a backup), keeping the
    /// newest `keep_last` complete ones of each instance; and archived
    /// copies past the archive's retention. Returns the ids deleted.
    pub async fn sweep(&self) -> Result<Vec<String>, ServiceError> {
        let _turn = self.maintenance.lock().await;
        let now = self.clock.now();
        let mut deleted = Vec::new();
        for b in self.catalog.expired_backups(now)? {
            let Some(m) = self.live().instances.get(&b.instance).cloned() else {
                continue;
            };
            // A restore, clone or backup of the instance may be reading it:
            // the next sweep (a minute on) takes it.
            if self.tasks.activity(&b.instance).is_some() {
                continue;
            }
            if m.config.keep_last > 0 {
                let newest = self.catalog.list_backups(&BackupQuery {
                    instance: Some(b.instance.clone()),
                    status: Some(BackupStatus::Complete),
                    limit: Some(m.config.keep_last),
                    ..Default::default()
                })?;
                if newest.iter().any(|n| n.id == b.id) {
                    continue;
                }
            }
            let Ok(storage) = self.storage(&b.storage) else {
                continue;
            };
            let detail =
                serde_json::json!({ "retention_until": b.retention_until.map(|t| t.to_string()) });
            if self
                .sweep_objects(&b, storage.as_ref(), detail, || {
                    self.catalog.set_backup_status(&b.id, BackupStatus::Deleted)
                })
                .await?
            {
                deleted.push(b.id.clone());
            }
        }
        deleted.extend(self.sweep_archives().await?);
        Ok(deleted)
    }

    /// Deletes archive copies past the archive's retention (the instance's
    /// `archive_retention_days`, else its provider's; none: kept). Returns
    /// `<id> (archive)` for each copy deleted.
    async fn sweep_archives(&self) -> Result<Vec<String>, ServiceError> {
        let now = self.clock.now();
        let live = self.live();
        let mut deleted = Vec::new();
        for b in self.catalog.archived_backups()? {
            let (Some(a), Some(m)) = (&b.archived, live.instances.get(&b.instance)) else {
                continue;
            };
            if self.tasks.activity(&b.instance).is_some() {
                continue;
            }
            let days = m.config.archive_retention_days.or_else(|| {
                m.provider
                    .as_ref()
                    .and_then(|p| p.descriptor().archive_retention_days)
            });
            let Some(days) = days else { continue };
            let until =
                a.at.checked_add(jiff::SignedDuration::from_hours(24 * i64::from(days)))
                    .unwrap_or(a.at);
            if until >= now {
                continue;
            }
            let Ok(storage) = self.storage(&a.storage) else {
                continue;
            };
            let detail = serde_json::json!({
                "archive_storage": a.storage,
                "archive_retention_days": days,
            });
            if self
                .sweep_objects(&b, storage.as_ref(), detail, || {
                    self.catalog.clear_archived(&b.id)
                })
                .await?
            {
                deleted.push(format!("{} (archive)", b.id));
            }
        }
        Ok(deleted)
    }

    /// Deletes backup `b`'s objects from `storage` as a sweep task, the
    /// manifest first so a half-done delete never leaves something that
    /// looks like a backup, then records it with `record`. Returns whether
    /// it went; a failure is the task's.
    async fn sweep_objects(
        &self,
        b: &BackupRecord,
        storage: &dyn Storage,
        detail: serde_json::Value,
        record: impl FnOnce() -> Result<(), crate::catalog::CatalogError>,
    ) -> Result<bool, ServiceError> {
        let task = self.tasks.start(NewTask {
            kind: TaskKind::Sweep,
            instance: Some(&b.instance),
            backup_id: Some(&b.id),
            activity: None,
            detail,
        })?;
        let mut result = Ok(());
        let keys = [
            (b.manifest_key.as_deref(), CrashPoint::SweepManifestDeleted),
            (b.data_key.as_deref(), CrashPoint::SweepDataDeleted),
        ];
        for (key, point) in keys {
            let Some(key) = key else { continue };
            match storage.delete(key).await {
                Ok(()) => crash_point::reached(point),
                Err(e) if e.kind == crate::storage::ErrorKind::NotFound => {}
                Err(e) => {
                    result = Err(e.to_string());
                    break;
                }
            }
        }
        match result.and_then(|()| record().map_err(|e| e.to_string())) {
            Ok(()) => {
                task.succeed(None);
                Ok(true)
            }
            Err(e) => {
                task.fail(e, None);
                Ok(false)
            }
        }
    }
}
