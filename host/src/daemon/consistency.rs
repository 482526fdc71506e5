//! `redback catalog check` and `redback catalog cleanup`: the catalog held
//! against what the storages hold under each instance's backup prefix, in
//! its storage and in its archive storage.
//!
//! Check reports: good backups (and archive copies) in the catalog whose
//! manifest is missing or unreadable, or whose data object is missing or
//! of the wrong size; manifests in storage the catalog does not list; and
//! orphans, objects that belong to no good backup, no backup under way and
//! no archive copy under way. Clean-up writes a missing manifest back from
//! the catalog's copy when the data object is whole, records manifests the
//! catalog lacks, marks rows whose objects are all gone, and deletes
//! orphans; it is idempotent.
//!
//! Storage is listed before the catalog is read, so an object that appears
//! after the listing is never judged, and one listed while its backup ran
//! is claimed by the row the backup wrote before its first byte. Must not:
//! delete an object of a complete backup, of a running backup or of an
//! archive copy under way; delete anything on a failed listing; decide
//! anything about a backup whose data object is damaged (that is reported
//! for an operator).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::backup::{self, Manifest};
use crate::catalog::{BackupRecord, BackupStatus, Catalog, TaskKind};
use crate::config::{Config, InstanceConfig};
use crate::storage::{ErrorKind, MAX_LIST_KEYS, ObjectMeta, Storage};

/// What is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// A good backup (or archive copy) in the catalog has no manifest.
    ManifestMissing,
    /// Its manifest does not parse.
    ManifestUnreadable,
    /// Its data object is missing.
    DataMissing,
    /// Its data object is not the size its manifest says.
    DataWrongSize,
    /// A manifest in storage that the catalog does not list.
    NotInCatalog,
    /// An object under a backup prefix that belongs to nothing.
    Orphan,
    /// A storage that is not open or could not be listed.
    StorageUnavailable,
}

/// One disagreement: what, where, and the fix.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    pub problem: Problem,
    pub instance: String,
    pub storage: String,
    /// Whether `storage` is the instance's archive storage.
    pub archive: bool,
    pub backup_id: Option<String>,
    pub key: Option<String>,
    /// A sentence naming the thing and the fix.
    pub message: String,
    #[serde(skip)]
    repair: Option<Repair>,
}

/// What the clean-up does about a finding.
#[derive(Debug, Clone)]
enum Repair {
    /// Writes the catalog's copy of the manifest back.
    WriteManifest { key: String, json: Vec<u8> },
    /// Records a complete backup from the manifest in storage.
    Record {
        manifest: Box<Manifest>,
        key: String,
    },
    /// Records the archive copy of a backup the catalog has.
    SetArchived { id: String, at: jiff::Timestamp },
    /// The row says complete, and nothing of it is left: marks it failed.
    MarkLost { id: String },
    /// The row says archived, and nothing of the copy is left.
    ClearArchived { id: String },
    /// Deletes an orphan.
    Delete { key: String },
}

/// The result of a check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckReport {
    /// No finding: catalog and storage agree.
    pub agree: bool,
    /// Good backups and archive copies the catalog lists and that were checked.
    pub backups_checked: usize,
    pub archive_copies_checked: usize,
    /// Objects listed under the backup prefixes.
    pub objects_listed: usize,
    pub findings: Vec<Finding>,
}

/// One change the clean-up made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Action {
    /// `wrote_manifest`, `recorded`, `recorded_archive_copy`, `marked_failed`,
    /// `cleared_archive_copy` or `deleted`.
    pub action: String,
    pub storage: String,
    pub backup_id: Option<String>,
    pub key: Option<String>,
}

/// The result of a clean-up: what it did, and the check after it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CleanupReport {
    pub actions: Vec<Action>,
    /// Actions that failed, with the reason.
    pub failed: Vec<String>,
    pub after: CheckReport,
}

/// Compares the catalog with the storages of every configured instance.
pub async fn check(
    config: &Config,
    storages: &BTreeMap<String, Arc<dyn Storage>>,
    catalog: &Catalog,
) -> anyhow::Result<CheckReport> {
    Ok(survey(config, storages, catalog).await?.evaluate())
}

/// Repairs what a check finds that can be repaired safely, then checks
/// again (up to three passes: a backup marked failed in one pass leaves
/// orphans for the next).
pub async fn cleanup(
    config: &Config,
    storages: &BTreeMap<String, Arc<dyn Storage>>,
    catalog: &Catalog,
) -> anyhow::Result<CleanupReport> {
    let mut actions = Vec::new();
    let mut failed = Vec::new();
    for _ in 0..3 {
        let mut findings = check(config, storages, catalog).await?.findings;
        // Catalog first, then manifests, then deletes (manifests before
        // data), so an interrupted clean-up never makes a backup look good.
        findings.sort_by_key(|f| match &f.repair {
            Some(Repair::Delete { key }) if key.ends_with(backup::manifest::MANIFEST_FILE) => 1,
            Some(Repair::Delete { .. }) => 2,
            _ => 0,
        });
        let mut did = 0;
        for f in findings {
            let Some(repair) = f.repair else { continue };
            let storage = storages.get(&f.storage);
            let (word, result) = apply(&repair, &f.storage, storage, catalog).await;
            match result {
                Ok(()) => {
                    did += 1;
                    actions.push(Action {
                        action: word.into(),
                        storage: f.storage,
                        backup_id: f.backup_id,
                        key: f.key,
                    });
                }
                Err(e) => failed.push(format!("{word} for `{}`: {e}", f.message)),
            }
        }
        if did == 0 {
            break;
        }
    }
    let after = check(config, storages, catalog).await?;
    Ok(CleanupReport {
        actions,
        failed,
        after,
    })
}

async fn apply(
    repair: &Repair,
    storage_name: &str,
    storage: Option<&Arc<dyn Storage>>,
    catalog: &Catalog,
) -> (&'static str, Result<(), String>) {
    let storage = || storage.ok_or_else(|| format!("storage `{storage_name}` is not open"));
    match repair {
        Repair::WriteManifest { key, json } => (
            "wrote_manifest",
            async {
                let mut up = storage()?
                    .start_upload(key)
                    .await
                    .map_err(|e| e.to_string())?;
                up.write(json).await.map_err(|e| e.to_string())?;
                up.finish().await.map(|_| ()).map_err(|e| e.to_string())
            }
            .await,
        ),
        Repair::Record { manifest, key } => (
            "recorded",
            catalog
                .record_manifest(storage_name, manifest, key)
                .map(|_| ())
                .map_err(|e| e.to_string()),
        ),
        Repair::SetArchived { id, at } => (
            "recorded_archive_copy",
            catalog
                .set_archived(id, storage_name, *at)
                .map_err(|e| e.to_string()),
        ),
        Repair::MarkLost { id } => (
            "marked_failed",
            catalog
                .set_backup_status(id, BackupStatus::Failed)
                .map_err(|e| e.to_string()),
        ),
        Repair::ClearArchived { id } => (
            "cleared_archive_copy",
            catalog.clear_archived(id).map_err(|e| e.to_string()),
        ),
        Repair::Delete { key } => (
            "deleted",
            async {
                match storage()?.delete(key).await {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(e.to_string()),
                }
            }
            .await,
        ),
    }
}

/// What one instance's prefix in one storage holds.
struct Area {
    instance: InstanceConfig,
    storage: String,
    archive: bool,
    objects: BTreeMap<String, ObjectMeta>,
    /// Each manifest listed, parsed or why not.
    manifests: BTreeMap<String, Result<Manifest, String>>,
}

/// Storage first, then the catalog (see the module doc).
struct Survey {
    areas: Vec<Area>,
    unavailable: Vec<Finding>,
    rows: Vec<BackupRecord>,
    /// Backups whose archive copy is under way.
    copying: HashSet<String>,
}

async fn survey(
    config: &Config,
    storages: &BTreeMap<String, Arc<dyn Storage>>,
    catalog: &Catalog,
) -> anyhow::Result<Survey> {
    let mut areas = Vec::new();
    let mut unavailable = Vec::new();
    for i in config.instances.values() {
        let wanted = std::iter::once((&i.storage, false))
            .chain(i.archive_storage.as_ref().map(|a| (a, true)));
        for (name, archive) in wanted {
            let unavailable_because = |why: String| Finding {
                problem: Problem::StorageUnavailable,
                instance: i.name.clone(),
                storage: name.clone(),
                archive,
                backup_id: None,
                key: None,
                message: format!(
                    "storage `{name}` ({}) of instance `{}` was not checked: {why}; fix the storage (see `redback config check`) and check again",
                    if archive { "archive" } else { "backups" },
                    i.name
                ),
                repair: None,
            };
            let Some(s) = storages.get(name) else {
                unavailable.push(unavailable_because("it is not open".into()));
                continue;
            };
            match list_area(i, s.as_ref()).await {
                Ok((objects, manifests)) => areas.push(Area {
                    instance: i.clone(),
                    storage: name.clone(),
                    archive,
                    objects,
                    manifests,
                }),
                Err(e) => unavailable.push(unavailable_because(e.to_string())),
            }
        }
    }
    let rows = catalog.list_backups(&Default::default())?;
    let copying = catalog
        .interrupted_tasks()?
        .into_iter()
        .filter(|t| t.kind == TaskKind::Archive)
        .filter_map(|t| t.backup_id)
        .collect();
    Ok(Survey {
        areas,
        unavailable,
        rows,
        copying,
    })
}

type Listing = (
    BTreeMap<String, ObjectMeta>,
    BTreeMap<String, Result<Manifest, String>>,
);

async fn list_area(
    i: &InstanceConfig,
    s: &dyn Storage,
) -> Result<Listing, crate::storage::StorageError> {
    let prefix = backup::instance_prefix(i);
    let mut objects = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = s.list(&prefix, cursor.as_deref(), MAX_LIST_KEYS).await?;
        for o in page.objects {
            objects.insert(o.key.clone(), o);
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let mut manifests = BTreeMap::new();
    let suffix = format!("/{}", backup::manifest::MANIFEST_FILE);
    for key in objects.keys().filter(|k| k.ends_with(&suffix)) {
        let parsed = match backup::read_all(s, key, 1 << 20).await {
            Ok(bytes) => Manifest::from_json(&bytes).map_err(|e| e.to_string()),
            // Deleted since the listing: judged at the next check.
            Err(e) if e.kind == ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        manifests.insert(key.clone(), parsed);
    }
    objects.retain(|k, _| !k.ends_with(&suffix) || manifests.contains_key(k));
    Ok((objects, manifests))
}

impl Survey {
    fn evaluate(self) -> CheckReport {
        let mut findings = self.unavailable.clone();
        let (mut backups, mut copies, mut listed) = (0, 0, 0);
        let by_id: HashMap<&str, &BackupRecord> =
            self.rows.iter().map(|r| (r.id.as_str(), r)).collect();
        for area in &self.areas {
            listed += area.objects.len();
            let name = &area.instance.name;
            // The rows whose objects this area must hold.
            let good: Vec<&BackupRecord> = self
                .rows
                .iter()
                .filter(|r| &r.instance == name)
                .filter(|r| match (&r.archived, area.archive) {
                    (Some(a), true) => a.storage == area.storage,
                    (_, false) => r.status == BackupStatus::Complete && r.storage == area.storage,
                    _ => false,
                })
                .collect();
            if area.archive {
                copies += good.len();
            } else {
                backups += good.len();
            }
            let mut claimed: HashSet<String> = HashSet::new();
            let mut claim = |r: &BackupRecord| {
                claimed.extend(r.data_key.iter().cloned());
                claimed.extend(r.manifest_key.iter().cloned());
            };
            for r in &good {
                claim(r);
            }
            for r in &self.rows {
                let under_way = if area.archive {
                    self.copying.contains(&r.id)
                } else {
                    r.status == BackupStatus::Running
                };
                if under_way && &r.instance == name {
                    claim(r);
                }
            }
            for r in &good {
                findings.extend(area.judge_row(r));
            }
            // Manifests the catalog does not list.
            for (key, parsed) in &area.manifests {
                let Ok(m) = parsed else { continue };
                if claimed.contains(key) {
                    continue;
                }
                claimed.insert(key.clone());
                claimed.insert(m.data.key.clone());
                findings.push(area.unlisted(key, m, by_id.get(m.id.as_str()).copied()));
            }
            for key in area.objects.keys().filter(|k| !claimed.contains(*k)) {
                findings.push(area.orphan(key));
            }
        }
        CheckReport {
            agree: findings.is_empty(),
            backups_checked: backups,
            archive_copies_checked: copies,
            objects_listed: listed,
            findings,
        }
    }
}

impl Area {
    fn finding(&self, problem: Problem, id: Option<&str>, key: &str, message: String) -> Finding {
        Finding {
            problem,
            instance: self.instance.name.clone(),
            storage: self.storage.clone(),
            archive: self.archive,
            backup_id: id.map(str::to_owned),
            key: Some(key.to_owned()),
            message,
            repair: None,
        }
    }

    fn what(&self) -> &'static str {
        if self.archive {
            "the archive copy of backup"
        } else {
            "backup"
        }
    }

    /// The data object of `r` here, if it is the size the catalog says.
    fn data_whole(&self, r: &BackupRecord) -> bool {
        r.data_key
            .as_ref()
            .and_then(|k| self.objects.get(k))
            .is_some_and(|o| o.size_bytes == r.stored_bytes)
    }

    /// A row the catalog holds as good here: manifest and data object.
    fn judge_row(&self, r: &BackupRecord) -> Vec<Finding> {
        let mut out = Vec::new();
        let (what, s, id) = (self.what(), &self.storage, r.id.as_str());
        let manifest_key = r.manifest_key.clone().unwrap_or_default();
        let data_key = r.data_key.clone().unwrap_or_default();
        let data = self.objects.get(&data_key);
        let manifest = self.manifests.get(&manifest_key);
        if !matches!(manifest, Some(Ok(_))) {
            let (problem, state) = match manifest {
                Some(Err(e)) => (Problem::ManifestUnreadable, format!("does not parse ({e})")),
                _ => (Problem::ManifestMissing, "is missing".to_string()),
            };
            let catalog_copy = r.manifest().and_then(Result::ok);
            let (repair, fix) = match (self.data_whole(r), catalog_copy) {
                (true, Some(m)) => (
                    Some(Repair::WriteManifest {
                        key: manifest_key.clone(),
                        json: m.to_json(),
                    }),
                    "`redback catalog cleanup` writes it back from the catalog's copy (the data object is whole)".to_string(),
                ),
                (true, None) => (
                    None,
                    "the catalog has no copy of it; `redback verify` the data, then write the manifest back by hand or delete the backup".to_string(),
                ),
                (false, _) if data.is_none() && manifest.is_none() => (
                    Some(if self.archive {
                        Repair::ClearArchived { id: id.into() }
                    } else {
                        Repair::MarkLost { id: id.into() }
                    }),
                    "nothing of it is left; `redback catalog cleanup` records it as gone".to_string(),
                ),
                (false, _) => (
                    None,
                    "its data object is not whole either, so it cannot be restored; delete its objects, then run `redback catalog cleanup`".to_string(),
                ),
            };
            let mut f = self.finding(
                problem,
                Some(id),
                &manifest_key,
                format!(
                    "{what} {id} is good in the catalog but its manifest {manifest_key} in storage `{s}` {state}; fix: {fix}"
                ),
            );
            f.repair = repair;
            out.push(f);
        }
        if manifest.is_some() {
            match data {
                None => out.push(self.finding(
                    Problem::DataMissing,
                    Some(id),
                    &data_key,
                    format!(
                        "{what} {id} has a manifest but its data object {data_key} is missing from storage `{s}`: it cannot be restored; fix: copy the object back from another copy, or delete the manifest {manifest_key} and run `redback catalog cleanup`"
                    ),
                )),
                Some(o) if o.size_bytes != r.stored_bytes => out.push(self.finding(
                    Problem::DataWrongSize,
                    Some(id),
                    &data_key,
                    format!(
                        "{what} {id}: its data object {data_key} in storage `{s}` holds {} bytes, its manifest says {}: it cannot be restored; fix: copy the object back from another copy, or delete {manifest_key} and {data_key} and run `redback catalog cleanup`",
                        o.size_bytes, r.stored_bytes
                    ),
                )),
                Some(_) => {}
            }
        }
        out
    }

    /// A manifest here that the catalog does not list (as good here).
    fn unlisted(&self, key: &str, m: &Manifest, row: Option<&BackupRecord>) -> Finding {
        let s = &self.storage;
        let data_whole = self
            .objects
            .get(&m.data.key)
            .is_some_and(|o| o.size_bytes == m.data.stored_bytes);
        let (repair, fix) = match (data_whole, self.archive, row) {
            (false, _, _) => (
                None,
                format!(
                    "its data object {} is missing or not the size it says, so it is not a backup; delete {key}, then run `redback catalog cleanup`",
                    m.data.key
                ),
            ),
            (true, false, _) => (
                Some(Repair::Record {
                    manifest: Box::new(m.clone()),
                    key: key.into(),
                }),
                "`redback catalog cleanup` records it from the manifest".to_string(),
            ),
            (true, true, Some(_)) => (
                Some(Repair::SetArchived {
                    id: m.id.clone(),
                    at: self
                        .objects
                        .get(key)
                        .and_then(|o| {
                            jiff::Timestamp::from_millisecond(o.modified_unix_ms as i64).ok()
                        })
                        .unwrap_or_else(jiff::Timestamp::now),
                }),
                "`redback catalog cleanup` records the copy".to_string(),
            ),
            (true, true, None) => (
                None,
                "the catalog does not know its backup at all; run `redback catalog rebuild` if the catalog was lost, else delete the copy's objects".to_string(),
            ),
        };
        let mut f = self.finding(
            Problem::NotInCatalog,
            Some(&m.id),
            key,
            format!(
                "{} {} has a manifest {key} in storage `{s}` that the catalog does not list; fix: {fix}",
                self.what(),
                m.id
            ),
        );
        f.repair = repair;
        f
    }

    fn orphan(&self, key: &str) -> Finding {
        let mut f = self.finding(
            Problem::Orphan,
            None,
            key,
            format!(
                "object {key} in storage `{}` belongs to no good backup{} and to no work under way; fix: `redback catalog cleanup` deletes it",
                self.storage,
                if self.archive { " copy" } else { "" }
            ),
        );
        f.repair = Some(Repair::Delete { key: key.into() });
        f
    }
}

impl super::service::Service {
    /// [`check`] on the config and storages in force; waits for a sweep
    /// in progress, which would show as a half-deleted backup.
    pub async fn check_catalog(&self) -> Result<CheckReport, super::service::ServiceError> {
        let _turn = self.maintenance.lock().await;
        let live = self.live();
        check(&live.config, &live.storages, &self.catalog)
            .await
            .map_err(|e| super::service::ServiceError::Unavailable(format!("{e:#}")))
    }

    /// [`cleanup`] on the config and storages in force, between sweeps.
    pub async fn cleanup_catalog(&self) -> Result<CleanupReport, super::service::ServiceError> {
        let _turn = self.maintenance.lock().await;
        let live = self.live();
        cleanup(&live.config, &live.storages, &self.catalog)
            .await
            .map_err(|e| super::service::ServiceError::Unavailable(format!("{e:#}")))
    }
}
