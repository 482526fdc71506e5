//! `redback catalog rebuild`: the catalog made again from the manifests in
//! storage; `redback catalog check` and `cleanup`: the catalog held against
//! the storages, and repaired.

use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;

use crate::catalog::{Catalog, TaskState};
use crate::config::Config;
use crate::daemon::Daemon;
use crate::daemon::consistency::{self, CheckReport, CleanupReport};
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

pub(super) async fn check(path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(path)?;
    let daemon = Daemon::start(config).await?;
    let catalog = Catalog::open(&daemon.config.daemon.catalog)?;
    let report = consistency::check(&daemon.config, &daemon.storages, &catalog).await?;
    print_check(&report, json)
}

pub(super) async fn cleanup(path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(path)?;
    let daemon = Daemon::start(config).await?;
    let catalog = Catalog::open(&daemon.config.daemon.catalog)?;
    // A daemon may be at work on this catalog (or one stopped by a crash
    // left its tasks): its start-up recovery settles those, then cleans up.
    let unfinished = catalog.interrupted_tasks()?;
    if let Some(t) = unfinished.first() {
        bail!(
            "the catalog {} shows {} task(s) {} (first: {} {}): a daemon is at work on it, or one stopped without settling them; run `redback catalog cleanup --server URL` against the running daemon, or start the daemon (its start-up recovers and cleans up)",
            daemon.config.daemon.catalog.display(),
            unfinished.len(),
            match t.state {
                TaskState::Queued => "queued",
                _ => "running",
            },
            t.kind.as_str(),
            t.id
        );
    }
    let report = consistency::cleanup(&daemon.config, &daemon.storages, &catalog).await?;
    print_cleanup(&report, json)
}

/// Prints a check; the exit code says whether catalog and storage agree.
pub(super) fn print_check(r: &CheckReport, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
    } else if r.agree {
        println!(
            "catalog and storage agree: {} backups, {} archive copies, {} objects checked",
            r.backups_checked, r.archive_copies_checked, r.objects_listed
        );
    } else {
        println!(
            "catalog and storage disagree ({} backups, {} archive copies, {} objects checked): {} problem(s)",
            r.backups_checked,
            r.archive_copies_checked,
            r.objects_listed,
            r.findings.len()
        );
        for f in &r.findings {
            println!("- {}", f.message);
        }
    }
    Ok(if r.agree {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Prints a clean-up; the exit code says whether they agree after it.
pub(super) fn print_cleanup(r: &CleanupReport, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
    } else {
        println!("{} change(s)", r.actions.len());
        for a in &r.actions {
            println!(
                "  {} in storage `{}`{}{}",
                a.action,
                a.storage,
                a.backup_id
                    .as_deref()
                    .map(|b| format!(", backup {b}"))
                    .unwrap_or_default(),
                a.key
                    .as_deref()
                    .map(|k| format!(", {k}"))
                    .unwrap_or_default()
            );
        }
        for f in &r.failed {
            println!("  failed: {f}");
        }
        if r.after.agree {
            println!("catalog and storage agree now");
        } else {
            println!("left for an operator:");
            for f in &r.after.findings {
                println!("- {}", f.message);
            }
        }
    }
    Ok(if r.after.agree && r.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
