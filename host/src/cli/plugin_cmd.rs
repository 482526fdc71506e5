//! `redback plugin list` and `redback plugin check`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};

use crate::api::PluginInfo;
use crate::config::{Config, StorageConfig};
use crate::daemon::Daemon;
use crate::plugin::{Kind, PluginHost};
use crate::storage::conformance;

pub(super) async fn list(config_path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let (_host, set) = Daemon::load_plugins(&config)?;
    let infos: Vec<PluginInfo> = set
        .loaded
        .values()
        .map(|p| PluginInfo::from(p.as_ref()))
        .collect();
    if json {
        let v = serde_json::json!({ "plugins": infos, "refused": set.refused });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("plugin directory: {}", config.daemon.plugin_dir.display());
    let w = infos.iter().map(|p| p.name.len()).max().unwrap_or(4).max(4);
    println!(
        "{:<w$}  {:<8}  {:<24}  SHA256",
        "NAME", "KIND", "IMPLEMENTS"
    );
    for p in &infos {
        println!(
            "{:<w$}  {:<8}  {:<24}  {}",
            p.name,
            p.kind.to_string(),
            p.implements,
            p.sha256
        );
    }
    for r in &set.refused {
        println!("REFUSED {}: {}", r.folder.display(), r.error);
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn check(
    folder: Option<PathBuf>,
    set: Vec<String>,
    config: Option<PathBuf>,
    storage: Option<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    // Keeps a scratch root alive for the length of the check.
    let mut _scratch: Option<tempfile::TempDir> = None;
    // The host must outlive the check: it drives the CPU-budget clock.
    let (storage, _host) = match (folder, config, storage) {
        (Some(folder), None, None) => {
            let host = PluginHost::new(None)?;
            let plugin = Arc::new(host.load_plugin(&folder, None)?);
            if plugin.manifest.kind != Kind::Storage {
                bail!(
                    "{} holds a {} plugin; the conformance kit checks storage plugins",
                    folder.display(),
                    plugin.manifest.kind
                );
            }
            let mut table = toml::Table::new();
            table.insert("plugin".into(), plugin.manifest.name.clone().into());
            for kv in &set {
                let (k, v) = kv
                    .split_once('=')
                    .with_context(|| format!("--set {kv}: write KEY=VALUE"))?;
                let value: toml::Value = if k == "allow_hosts" {
                    toml::Value::Array(
                        v.split(',')
                            .map(|h| toml::Value::String(h.trim().into()))
                            .collect(),
                    )
                } else {
                    v.into()
                };
                table.insert(k.to_string(), value);
            }
            if plugin.manifest.capabilities.filesystem && !table.contains_key("root") {
                let dir = tempfile::Builder::new()
                    .prefix("redback-check-")
                    .tempdir()?;
                eprintln!(
                    "no --set root=DIR given: using scratch directory {}",
                    dir.path().display()
                );
                table.insert("root".into(), dir.path().display().to_string().into());
                _scratch = Some(dir);
            }
            let cwd = std::env::current_dir()?;
            let cfg = StorageConfig::from_table("check", table, &cwd)
                .map_err(|e| anyhow::anyhow!("--set: {e}"))?;
            let s = host.open_storage(&plugin, &cfg, None).await?;
            (s, host)
        }
        (None, Some(config), Some(name)) => {
            let config = Config::load(&config)?;
            let (host, s) = Daemon::open_storage(&config, &name).await?;
            (s, host)
        }
        _ => bail!("give a plugin folder, or --config FILE --storage NAME"),
    };
    let report = conformance::run(storage.as_ref()).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
