//! Bring-up of the daemon's parts from a config: the plugin host, the
//! loaded plugin set and the opened storages. Used by `serve` and by every
//! one-shot command that needs storages.
//!
//! Owns: the order things start in and what a failure of one part does to
//! the rest (a refused plugin or a storage that fails to open is reported,
//! the others keep working). Must not: serve HTTP or parse arguments.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;

pub mod boot;
pub mod config_view;
pub mod consistency;
pub mod providers;
pub mod rebuild;
mod recovery;
pub mod reload;
pub mod service;

use crate::api::{DaemonState, PluginInfo, StorageStatus};
use crate::config::Config;
use crate::plugin::{PluginHost, PluginSet};
use crate::storage::Storage;
use crate::storage::resilient::Resilient;

/// The running parts of a daemon.
pub struct Daemon {
    pub config: Config,
    pub host: Arc<PluginHost>,
    pub plugins: PluginSet,
    pub storages: BTreeMap<String, Arc<dyn Storage>>,
    /// Storages that did not open, with the reason.
    pub storage_errors: BTreeMap<String, String>,
}

impl Daemon {
    /// Loads the plugin directory (compiled components cached under the
    /// state directory).
    pub fn load_plugins(config: &Config) -> anyhow::Result<(PluginHost, PluginSet)> {
        let cache = config.daemon.state_dir.join("plugin-cache");
        let host = PluginHost::new(Some(cache)).context("cannot start the plugin host")?;
        let plugins = host.load_dir(&config.daemon.plugin_dir, &config.plugins)?;
        Ok((host, plugins))
    }

    /// Loads plugins and opens only the storage `name`, for one-shot
    /// commands. The host must outlive the storage (it drives the plugins'
    /// CPU-budget clock).
    pub async fn open_storage(
        config: &Config,
        name: &str,
    ) -> anyhow::Result<(PluginHost, Arc<dyn Storage>)> {
        let cfg = config.storage(name)?;
        crate::data_runtime::set_priority(config.daemon.data_priority);
        let (host, plugins) = Self::load_plugins(config)?;
        let plugin = plugins.loaded.get(&cfg.plugin).with_context(|| {
            format!(
                "storage `{name}`: {}",
                plugins.why_missing(&cfg.plugin, &config.daemon.plugin_dir)
            )
        })?;
        let storage = host
            .open_storage(plugin, cfg, config.plugins.get(&cfg.plugin))
            .await?;
        Ok((host, Resilient::for_config(storage, cfg)))
    }

    /// Loads plugins and opens every configured storage.
    pub async fn start(config: Config) -> anyhow::Result<Daemon> {
        crate::data_runtime::set_priority(config.daemon.data_priority);
        let (host, plugins) = Self::load_plugins(&config)?;
        let mut storages = BTreeMap::new();
        let mut storage_errors = BTreeMap::new();
        for (name, cfg) in &config.storages {
            let Some(plugin) = plugins.loaded.get(&cfg.plugin) else {
                let why = plugins.why_missing(&cfg.plugin, &config.daemon.plugin_dir);
                tracing::error!(storage = %name, "storage not opened: {why}");
                storage_errors.insert(name.clone(), why);
                continue;
            };
            match host
                .open_storage(plugin, cfg, config.plugins.get(&cfg.plugin))
                .await
            {
                Ok(s) => {
                    tracing::info!(storage = %name, plugin = %cfg.plugin, "storage ready");
                    storages.insert(name.clone(), Resilient::for_config(s, cfg));
                }
                Err(e) => {
                    tracing::error!("storage not opened: {e}");
                    storage_errors.insert(name.clone(), e.to_string());
                }
            }
        }
        Ok(Daemon {
            config,
            host: Arc::new(host),
            plugins,
            storages,
            storage_errors,
        })
    }

    /// The state the API shows.
    pub fn state(&self) -> DaemonState {
        daemon_state(
            &self.config,
            &self.plugins,
            &self.storages,
            &self.storage_errors,
        )
    }
}

/// What the API's `/health` shows of a config, its plugins and storages.
pub fn daemon_state(
    config: &Config,
    plugins: &PluginSet,
    storages: &BTreeMap<String, Arc<dyn Storage>>,
    storage_errors: &BTreeMap<String, String>,
) -> DaemonState {
    let mut list: Vec<StorageStatus> = config
        .storages
        .values()
        .map(|cfg| StorageStatus {
            name: cfg.name.clone(),
            plugin: cfg.plugin.clone(),
            ready: storages.contains_key(&cfg.name),
            error: storage_errors.get(&cfg.name).cloned(),
        })
        .collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    DaemonState {
        version: env!("CARGO_PKG_VERSION"),
        plugins: plugins
            .loaded
            .values()
            .map(|p| PluginInfo::from(p.as_ref()))
            .collect(),
        refused_plugins: plugins.refused.clone(),
        storages: list,
    }
}
