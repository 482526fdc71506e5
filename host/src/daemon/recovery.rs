//! Start-up recovery of the sweeps and archive copies a stop cut off (the
//! backups a stop cut off are recovered in `Service::recover` itself).
//!
//! A sweep deletes the manifest first, so once it started the backup is no
//! longer good: it is finished (the rest deleted, the catalog told). An
//! archive copy is good only if its manifest landed: then the catalog is
//! told; else its objects (and the storage's unfinished uploads of them)
//! are deleted. Must not: touch a backup no cut-off task names.

use crate::backup::{self, Manifest};
use crate::catalog::{BackupRecord, BackupStatus, TaskKind, TaskRecord};
use crate::storage::{ErrorKind, Storage};

use super::service::{Service, ServiceError};

impl Service {
    /// Finishes or rolls back the sweeps and archive copies among `tasks`
    /// (the tasks a stop cut off). A storage that is not open or does not
    /// answer leaves the backup as it is, for `redback catalog check` to
    /// report.
    pub(crate) async fn finish_interrupted(
        &self,
        tasks: &[TaskRecord],
    ) -> Result<(), ServiceError> {
        for t in tasks {
            let Some(id) = &t.backup_id else { continue };
            let Some(b) = self.catalog.get_backup(id)? else {
                continue;
            };
            let archive = t.detail["archive_storage"].as_str();
            match (t.kind, archive) {
                (TaskKind::Sweep, None) if b.status == BackupStatus::Complete => {
                    let Ok(storage) = self.storage(&b.storage) else {
                        continue;
                    };
                    if delete_objects(&b, storage.as_ref()).await {
                        self.catalog
                            .set_backup_status(&b.id, BackupStatus::Deleted)?;
                        tracing::warn!(backup = %b.id, "finished a sweep cut off by a stop");
                    }
                }
                (TaskKind::Sweep, Some(a)) if b.archived.is_some() => {
                    let Ok(storage) = self.storage(a) else {
                        continue;
                    };
                    if delete_objects(&b, storage.as_ref()).await {
                        self.catalog.clear_archived(&b.id)?;
                        tracing::warn!(backup = %b.id, archive = a, "finished an archive sweep cut off by a stop");
                    }
                }
                (TaskKind::Archive, Some(a)) if b.archived.is_none() => {
                    let Ok(storage) = self.storage(a) else {
                        continue;
                    };
                    self.settle_archive_copy(&b, a, storage.as_ref()).await?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// An archive copy cut off: recorded if its manifest is there and
    /// reads, else deleted.
    async fn settle_archive_copy(
        &self,
        b: &BackupRecord,
        archive: &str,
        storage: &dyn Storage,
    ) -> Result<(), ServiceError> {
        let manifest_key = b.manifest_key.clone().unwrap_or_default();
        match backup::read_all(storage, &manifest_key, 1 << 20).await {
            Ok(bytes) if Manifest::from_json(&bytes).is_ok_and(|m| m.id == b.id) => {
                let at = storage
                    .stat(&manifest_key)
                    .await
                    .ok()
                    .and_then(|o| jiff::Timestamp::from_millisecond(o.modified_unix_ms as i64).ok())
                    .unwrap_or_else(|| self.clock.now());
                self.catalog.set_archived(&b.id, archive, at)?;
                tracing::warn!(backup = %b.id, archive, "kept an archive copy a stop cut off after its manifest landed");
            }
            Ok(_) => {
                if delete_objects(b, storage).await {
                    tracing::warn!(backup = %b.id, archive, "removed an archive copy whose manifest does not read");
                }
            }
            Err(e) if e.kind == ErrorKind::NotFound => {
                if delete_objects(b, storage).await {
                    tracing::warn!(backup = %b.id, archive, "removed an archive copy cut off by a stop");
                }
            }
            Err(e) => {
                tracing::error!(backup = %b.id, archive, "cannot tell whether the archive copy completed, left for `redback catalog check`: {e}");
            }
        }
        Ok(())
    }
}

/// Deletes `b`'s manifest, then its data; whether both are gone.
async fn delete_objects(b: &BackupRecord, storage: &dyn Storage) -> bool {
    for key in [b.manifest_key.as_deref(), b.data_key.as_deref()]
        .into_iter()
        .flatten()
    {
        match storage.delete(key).await {
            Ok(()) => {}
            Err(e) if e.kind == ErrorKind::NotFound => {}
            Err(e) => {
                tracing::error!(backup = %b.id, key, "cannot delete: {e}");
                return false;
            }
        }
    }
    true
}
