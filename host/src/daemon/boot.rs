//! Bring-up of the full daemon: catalog, providers and policies, task
//! center, crash recovery and catalog clean-up, scheduler, sweeper; the
//! pieces `serve` runs.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, RwLock};

use anyhow::{Context, bail};

use super::Daemon;
use super::providers::{effective_policy, open_providers};
use super::service::{Live, Managed, ScheduledBackups, Service};
use crate::catalog::Catalog;
use crate::config::Config;
use crate::links::LinkKey;
use crate::plugin::{PluginHost, PluginSet};
use crate::provider::Policy;
use crate::schedule::{Clock, Limits, Scheduler, WindowLog, WindowOutcome};
use crate::tasks::TaskCenter;

/// The scheduler's window log, kept in the catalog.
pub struct CatalogWindows(pub Arc<Catalog>);

impl WindowLog for CatalogWindows {
    fn done(&self, instance: &str, window_id: &str) -> bool {
        match self.0.window_done(instance, window_id) {
            Ok(d) => d,
            Err(e) => {
                // Not knowing is safer as "done" than as a second run.
                tracing::error!("window log: {e}");
                true
            }
        }
    }

    fn record(&self, instance: &str, window_id: &str, outcome: &WindowOutcome) {
        use crate::catalog::WindowOutcome as W;
        let (o, attempts, message) = match outcome {
            WindowOutcome::Succeeded { attempts, delayed } => (
                W::Succeeded,
                *attempts,
                delayed.then(|| "delayed".to_string()),
            ),
            WindowOutcome::Failed { attempts, reason } => {
                (W::Failed, *attempts, Some(reason.clone()))
            }
            WindowOutcome::Missed { reason } => (W::Missed, 0, Some(reason.clone())),
        };
        if let Err(e) = self
            .0
            .record_window(instance, window_id, o, attempts, message.as_deref())
        {
            tracing::error!("window log: {e}");
        }
    }
}

/// The API's bearer token: daemon.api_token_file, else REDBACK_API_TOKEN,
/// else one generated into the state directory (mode 0600).
pub fn api_token(daemon: &Daemon) -> anyhow::Result<Vec<u8>> {
    let d = &daemon.config.daemon;
    if let Some(f) = &d.api_token_file {
        let t = std::fs::read_to_string(f).with_context(|| {
            format!(
                "daemon.api_token_file: cannot read {}; point it at a readable file",
                f.display()
            )
        })?;
        let t = t.trim().to_string();
        if t.len() < 16 {
            bail!(
                "daemon.api_token_file: the token in {} is shorter than 16 characters; use a long random one",
                f.display()
            );
        }
        return Ok(t.into_bytes());
    }
    if let Ok(t) = std::env::var("REDBACK_API_TOKEN") {
        if t.len() < 16 {
            bail!("REDBACK_API_TOKEN is shorter than 16 characters; use a long random token");
        }
        return Ok(t.into_bytes());
    }
    let path = d.state_dir.join("api-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        return Ok(t.trim().as_bytes().to_vec());
    }
    let t = hex::encode(crate::links::random_bytes::<32>()?);
    std::fs::create_dir_all(&d.state_dir)?;
    crate::links::write_private(&path, t.as_bytes())?;
    tracing::info!("generated an API token in {}", path.display());
    Ok(t.into_bytes())
}

/// Opens everything the service needs and cleans up after a crash. A
/// policy the provider refuses stops the start, naming the instance.
pub async fn service(daemon: Daemon, clock: Arc<dyn Clock>) -> anyhow::Result<Arc<Service>> {
    let config = daemon.config;
    let catalog = Arc::new(Catalog::open(&config.daemon.catalog)?);
    let links = LinkKey::load_or_create(&config.daemon.state_dir.join("download.key"))
        .context("the download-link key")?;
    let instances = build_instances(&config, &daemon.host, &daemon.plugins, &catalog).await?;
    let tasks = TaskCenter::new(catalog.clone(), clock.clone());
    let live = Live {
        config,
        plugins: daemon.plugins,
        storages: daemon.storages,
        storage_errors: daemon.storage_errors,
        instances,
    };
    let service = Arc::new(Service::new(
        live,
        daemon.host,
        catalog,
        tasks,
        clock,
        links,
    ));
    // After a stop that cut work off, the clean-up takes what recovery
    // could not settle (a clean start skips it: it lists every instance's
    // prefixes). A storage that does not answer is reported and the daemon
    // starts all the same.
    if !service.recover().await? {
        return Ok(service);
    }
    match service.cleanup_catalog().await {
        Ok(r) => {
            for a in &r.actions {
                tracing::warn!(action = %a.action, storage = %a.storage, key = ?a.key, backup = ?a.backup_id, "catalog clean-up at start");
            }
            for f in r.after.findings.iter().map(|f| &f.message).chain(&r.failed) {
                tracing::error!("catalog check at start: {f}");
            }
        }
        Err(e) => tracing::error!("catalog clean-up at start: {e}"),
    }
    Ok(service)
}

/// Each configured instance with its provider and the policy in force
/// (the stored one if the provider still accepts it, else the config's).
pub async fn build_instances(
    config: &Config,
    host: &PluginHost,
    plugins: &PluginSet,
    catalog: &Catalog,
) -> anyhow::Result<BTreeMap<String, Arc<Managed>>> {
    let (providers, provider_errors) = open_providers(config, host, plugins).await;
    // One query for every stored policy, not one per instance.
    let mut stored_policies = catalog.get_all_policies()?;
    let mut instances = BTreeMap::new();
    for (name, i) in &config.instances {
        let provider = match &i.provider {
            Some(p) => match providers.get(p) {
                Some(p) => Some(p.clone()),
                None => bail!(
                    "{}: `instance.{name}.provider`: {}",
                    config.path.display(),
                    provider_errors.get(p).cloned().unwrap_or_default()
                ),
            },
            None => None,
        };
        let policy = match &provider {
            Some(p) => {
                let stored: Option<Policy> = stored_policies
                    .remove(name)
                    .and_then(|v| serde_json::from_value(v).ok());
                let (policy, _) = effective_policy(i, p.as_ref(), stored.as_ref())
                    .await
                    .map_err(|sentence| {
                        anyhow::anyhow!(
                            "{}: `instance.{name}.policy`: {} refuses it: {sentence}",
                            config.path.display(),
                            i.provider.as_deref().unwrap_or_default()
                        )
                    })?;
                Some(policy)
            }
            None => None,
        };
        instances.insert(
            name.clone(),
            Arc::new(Managed {
                config: i.clone(),
                provider,
                tz: i
                    .timezone
                    .clone()
                    .unwrap_or_else(|| config.daemon.timezone.clone()),
                policy: RwLock::new(policy),
            }),
        );
    }
    Ok(instances)
}

/// Starts the scheduler, the sweeper and the progress writer.
pub async fn start_background(service: &Arc<Service>) {
    let live = service.live();
    let d = &live.config.daemon;
    let global = NonZeroUsize::new(d.max_concurrent_backups as usize).unwrap_or(NonZeroUsize::MIN);
    // A storage without a limit of its own is held only by the global one.
    let limits = Limits {
        global,
        per_storage: global,
        storages: live
            .config
            .storages
            .values()
            .filter_map(|s| {
                let n = NonZeroUsize::new(s.max_concurrent_backups? as usize)?;
                Some((s.name.clone(), n))
            })
            .collect(),
    };
    let scheduler = Scheduler::new(
        service.clock.clone(),
        Arc::new(ScheduledBackups(service.clone())),
        Arc::new(CatalogWindows(service.catalog.clone())),
        limits,
    );
    *service.scheduler.lock().await = Some(scheduler.spawn(service.plans()));

    let s = service.clone();
    tokio::spawn(async move {
        loop {
            s.tasks.flush_progress();
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    });
    let s = service.clone();
    tokio::spawn(async move {
        loop {
            match s.sweep().await {
                Ok(d) if !d.is_empty() => tracing::info!(deleted = d.len(), "retention sweep"),
                Ok(_) => {}
                Err(e) => tracing::error!("retention sweep: {e}"),
            }
            let next = s.clock.now() + jiff::SignedDuration::from_secs(60);
            s.clock.sleep_until(next).await;
        }
    });
}
