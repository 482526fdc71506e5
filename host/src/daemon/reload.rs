//! Reloading the config file and the plugin directory while the daemon
//! runs (SIGHUP, `POST /plugins/reload`): tasks in progress keep the
//! storages and instances they started with; a plugin that fails to load,
//! or a storage that fails to open, keeps its previous version serving and
//! is reported; a config that does not validate changes nothing.

use serde::Serialize;
use std::collections::BTreeMap;

use super::boot::build_instances;
use super::service::{Live, Service, ServiceError};
use crate::config::Config;

/// What a reload did.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    /// Plugins serving now, with their sha256.
    pub plugins: BTreeMap<String, String>,
    /// Plugins whose new version was refused; the previous one serves on.
    pub kept_previous: Vec<Kept>,
    /// Plugins refused with no previous version to fall back on.
    pub refused: Vec<Kept>,
    /// Storages that are not open, with the reason.
    pub storage_errors: BTreeMap<String, String>,
    /// `[daemon]` keys that changed but only take effect at a restart.
    pub restart_needed: Vec<String>,
    pub instances: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Kept {
    pub name: String,
    pub error: String,
}

impl Service {
    /// Reads the config file again, reloads the plugin directory, reopens
    /// the storages and providers, and hands the scheduler the new plans.
    pub async fn reload(&self) -> Result<ReloadReport, ServiceError> {
        let _one = self.reloading.lock().await;
        let old = self.live();
        let mut config = Config::load(&old.config.path).map_err(|e| {
            ServiceError::BadRequest(format!("{e:#}; the daemon goes on with the config it had"))
        })?;
        let mut restart_needed = Vec::new();
        {
            let (new, was) = (&mut config.daemon, &old.config.daemon);
            if new.listen != was.listen {
                restart_needed.push("daemon.listen".to_string());
                new.listen = was.listen;
            }
            if new.state_dir != was.state_dir {
                restart_needed.push("daemon.state_dir".to_string());
                new.state_dir = was.state_dir.clone();
            }
            if new.catalog != was.catalog {
                restart_needed.push("daemon.catalog".to_string());
                new.catalog = was.catalog.clone();
            }
            if new.max_concurrent_backups != was.max_concurrent_backups {
                restart_needed.push("daemon.max_concurrent_backups".to_string());
            }
            if new.data_priority != was.data_priority {
                restart_needed.push("daemon.data_priority".to_string());
                new.data_priority = was.data_priority;
            }
            for (name, st) in &config.storages {
                let before = old
                    .config
                    .storages
                    .get(name)
                    .and_then(|s| s.max_concurrent_backups);
                if st.max_concurrent_backups != before {
                    restart_needed.push(format!("storage.{name}.max_concurrent_backups"));
                }
            }
            if new.api_token_file != was.api_token_file {
                restart_needed.push("daemon.api_token_file".to_string());
                new.api_token_file = was.api_token_file.clone();
            }
        }

        let mut plugins = self
            .host
            .load_dir(&config.daemon.plugin_dir, &config.plugins)
            .map_err(|e| {
                ServiceError::BadRequest(format!("{e}; the daemon goes on with the plugins it had"))
            })?;
        let mut kept_previous = Vec::new();
        let mut refused = Vec::new();
        for r in &plugins.refused {
            let name = r.name.clone().unwrap_or_else(|| {
                r.folder
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            let entry = Kept {
                name: name.clone(),
                error: r.error.clone(),
            };
            match old.plugins.loaded.get(&name) {
                Some(previous) if !plugins.loaded.contains_key(&name) => {
                    tracing::error!(plugin = %name, "the new version was refused; the previous one serves on: {}", r.error);
                    kept_previous.push(entry);
                    plugins.loaded.insert(name, previous.clone());
                }
                _ => {
                    tracing::error!(plugin = %name, "plugin refused: {}", r.error);
                    refused.push(entry);
                }
            }
        }

        let mut storages = BTreeMap::new();
        let mut storage_errors = BTreeMap::new();
        for (name, cfg) in &config.storages {
            let opened = match plugins.loaded.get(&cfg.plugin) {
                None => Err(plugins.why_missing(&cfg.plugin, &config.daemon.plugin_dir)),
                Some(plugin) => self
                    .host
                    .open_storage(plugin, cfg, config.plugins.get(&cfg.plugin))
                    .await
                    .map(|s| crate::storage::resilient::Resilient::for_config(s, cfg))
                    .map_err(|e| e.to_string()),
            };
            match (opened, old.storages.get(name)) {
                (Ok(s), _) => {
                    storages.insert(name.clone(), s);
                }
                (Err(e), Some(previous)) => {
                    tracing::error!(storage = %name, "did not reopen; the previous one serves on: {e}");
                    storage_errors.insert(
                        name.clone(),
                        format!("{e} (the previous configuration serves on)"),
                    );
                    storages.insert(name.clone(), previous.clone());
                }
                (Err(e), None) => {
                    tracing::error!(storage = %name, "storage not opened: {e}");
                    storage_errors.insert(name.clone(), e);
                }
            }
        }

        let instances = build_instances(&config, &self.host, &plugins, &self.catalog)
            .await
            .map_err(|e| {
                ServiceError::BadRequest(format!(
                    "{e:#}; the daemon goes on with the config it had"
                ))
            })?;
        let report = ReloadReport {
            plugins: plugins
                .loaded
                .iter()
                .map(|(n, p)| (n.clone(), p.manifest.sha256.clone()))
                .collect(),
            kept_previous,
            refused,
            storage_errors: storage_errors.clone(),
            restart_needed,
            instances: instances.len(),
        };
        self.swap_live(Live {
            config,
            plugins,
            storages,
            storage_errors,
            instances,
        });
        self.policies_changed().await;
        tracing::info!(
            plugins = report.plugins.len(),
            kept_previous = report.kept_previous.len(),
            instances = report.instances,
            "reloaded the config and the plugin directory"
        );
        Ok(report)
    }
}

impl Live {
    /// What `/health` shows.
    pub fn state(&self) -> crate::api::DaemonState {
        super::daemon_state(
            &self.config,
            &self.plugins,
            &self.storages,
            &self.storage_errors,
        )
    }
}
