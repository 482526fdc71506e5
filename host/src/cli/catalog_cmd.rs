//! `redback catalog rebuild`: the catalog made again from the manifests in
//! storage.

use std::path::Path;
use std::process::ExitCode;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::daemon::Daemon;
use crate::daemon::rebuild::{RebuildSummary, rebuild_catalog};

pub(super) async fn rebuild(path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(path)?;
    let daemon = Daemon::start(config).await?;
    let catalog = Catalog::open(&daemon.config.daemon.catalog)?;
    let summary = rebuild_catalog(&daemon.config, &daemon.storages, &catalog).await?;
    print(
        &summary,
        &daemon.config.daemon.catalog.display().to_string(),
        json,
    )?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn print(s: &RebuildSummary, catalog: &str, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(s)?);
        return Ok(());
    }
    println!(
        "catalog {catalog}: {} backups from the manifests in storage ({} with an archive copy); {} rows replaced",
        s.inserted, s.archived, s.removed
    );
    for k in &s.skipped {
        println!(
            "skipped {} in storage `{}` (backup {}): {}",
            k.manifest_key, k.storage, k.backup_id, k.reason
        );
    }
    Ok(())
}
