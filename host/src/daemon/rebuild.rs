//! `redback catalog rebuild`: the catalog's backups table made again from
//! the manifests in storage, the source of truth. Used after the SQLite
//! file is lost or damaged, by the CLI and by `POST /catalog/rebuild`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::backup;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::storage::Storage;

/// What a rebuild did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RebuildSummary {
    /// Rows the backups table held before.
    pub removed: usize,
    /// Complete backups found in the instances' storages.
    pub inserted: usize,
    /// Of those, how many have a copy in their archive storage.
    pub archived: usize,
    /// Manifests left out, with the reason.
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Skipped {
    pub storage: String,
    pub manifest_key: String,
    pub backup_id: String,
    pub reason: String,
}

/// Lists every configured instance's manifests (main storages first, then
/// archive copies) and replaces the catalog's backups with them. Refuses
/// to start if a storage an instance uses did not open: rebuilding without
/// it would drop its backups from the catalog.
pub async fn rebuild_catalog(
    config: &Config,
    storages: &BTreeMap<String, Arc<dyn Storage>>,
    catalog: &Catalog,
) -> anyhow::Result<RebuildSummary> {
    let storage = |name: &str| -> anyhow::Result<&Arc<dyn Storage>> {
        storages.get(name).with_context(|| {
            format!(
                "storage `{name}` did not open, so its backups cannot be listed; fix it (see `redback config check`) and rebuild again"
            )
        })
    };
    if config.instances.is_empty() {
        bail!(
            "the config names no instance, so a rebuild would empty the catalog; rebuild with the daemon's own config"
        );
    }
    let mut mains = Vec::new();
    for i in config.instances.values() {
        let s = storage(&i.storage)?;
        let found = backup::list(i, s.as_ref())
            .await
            .with_context(|| format!("listing the backups of instance `{}`", i.name))?;
        for m in found {
            let (_, manifest_key) = backup::object_keys(i, &m.id);
            mains.push((i.storage.clone(), manifest_key, m));
        }
    }
    // Archive copies are listed before the catalog changes: a storage that
    // fails here leaves it as it was.
    let mut copies = Vec::new();
    for i in config.instances.values() {
        let Some(archive) = &i.archive_storage else {
            continue;
        };
        let s = storage(archive)?;
        let found = backup::list(i, s.as_ref()).await.with_context(|| {
            format!(
                "listing the archive copies of instance `{}` in `{archive}`",
                i.name
            )
        })?;
        for m in found {
            let (_, manifest_key) = backup::object_keys(i, &m.id);
            let at = s
                .stat(&manifest_key)
                .await
                .ok()
                .and_then(|o| jiff::Timestamp::from_millisecond(o.modified_unix_ms as i64).ok())
                .or_else(|| m.finished_at.parse().ok())
                .unwrap_or_else(jiff::Timestamp::now);
            copies.push((m.id, archive.clone(), at));
        }
    }
    let report = catalog.rebuild(mains)?;
    let known: HashSet<String> = catalog
        .list_backups(&Default::default())?
        .into_iter()
        .map(|b| b.id)
        .collect();
    let mut archived = 0;
    for (id, archive, at) in copies {
        // A copy whose original was swept is not in the list; left out.
        if known.contains(&id) {
            catalog.set_archived(&id, &archive, at)?;
            archived += 1;
        }
    }
    Ok(RebuildSummary {
        removed: report.removed,
        inserted: report.inserted,
        archived,
        skipped: report
            .skipped
            .into_iter()
            .map(|s| Skipped {
                storage: s.storage,
                manifest_key: s.manifest_key,
                backup_id: s.backup_id,
                reason: s.reason,
            })
            .collect(),
    })
}
