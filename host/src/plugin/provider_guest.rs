//! A provider plugin adapted to the `Provider` trait. Provider calls are
//! rare and cheap, so one instance serves them one at a time; an instance
//! that trapped or hit a limit is replaced by a fresh one.

use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use tokio::sync::Mutex;
use wasmtime::Store;

use super::LoadedPlugin;
use super::http_grants::HttpGate;
use super::sandbox::{Limits, StoreState, new_store};
use crate::provider::{
    BackupKind, Changeable, Descriptor, Labels, LinkLifetime, Policy, Provider, RestoreMode,
    TimeOfDay, Weekday,
};
use crate::storage::Network;

pub(super) mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/provider",
        world: "redback:provider/provider-adapter",
        exports: { default: async },
    });
}

use bindings::redback::provider::types as wit;

struct Instance {
    store: Store<StoreState>,
    api: bindings::ProviderAdapter,
}

pub(super) struct WasmProvider {
    plugin: Arc<LoadedPlugin>,
    limits: Limits,
    descriptor: Descriptor,
    current: Mutex<Option<Instance>>,
}

impl WasmProvider {
    pub(super) async fn open(
        plugin: Arc<LoadedPlugin>,
        limits: Limits,
    ) -> anyhow::Result<WasmProvider> {
        let name = plugin.manifest.name.clone();
        let mut inst = instantiate(&plugin, &limits).await?;
        inst.store.data_mut().start_call();
        let d = tokio::time::timeout(
            limits.call_timeout,
            inst.api
                .redback_provider_adapter()
                .call_describe(&mut inst.store),
        )
        .await
        .map_err(|_| anyhow!("provider plugin '{name}': `describe` timed out"))?
        .map_err(|e| anyhow!("provider plugin '{name}': `describe` trapped: {e:#}"))?;
        let descriptor =
            descriptor(d).with_context(|| format!("provider plugin '{name}': bad descriptor"))?;
        Ok(WasmProvider {
            plugin,
            limits,
            descriptor,
            current: Mutex::new(Some(inst)),
        })
    }

    /// Runs `call` on the instance, replacing the instance if it fails.
    async fn with_instance<R>(
        &self,
        op: &str,
        call: impl AsyncFnOnce(&mut Instance) -> wasmtime::Result<R>,
    ) -> anyhow::Result<R> {
        let name = &self.plugin.manifest.name;
        let mut slot = self.current.lock().await;
        let mut inst = match slot.take() {
            Some(i) => i,
            None => instantiate(&self.plugin, &self.limits).await?,
        };
        inst.store.data_mut().start_call();
        inst.store.set_epoch_deadline(1);
        match tokio::time::timeout(self.limits.call_timeout, call(&mut inst)).await {
            Ok(Ok(r)) => {
                *slot = Some(inst);
                Ok(r)
            }
            Ok(Err(e)) => {
                bail!("provider plugin '{name}': `{op}` failed and the instance was stopped: {e:#}")
            }
            Err(_) => bail!(
                "provider plugin '{name}': `{op}` did not finish within {} s; the instance was stopped",
                self.limits.call_timeout.as_secs()
            ),
        }
    }
}

async fn instantiate(plugin: &LoadedPlugin, limits: &Limits) -> anyhow::Result<Instance> {
    let name = &plugin.manifest.name;
    let pre = plugin.provider_pre.as_ref().ok_or_else(|| {
        anyhow!(
            "plugin '{name}' is a {} plugin, not a provider",
            plugin.manifest.kind
        )
    })?;
    let mut store = new_store(
        &plugin.engine,
        name,
        limits,
        None,
        HttpGate::new(name, None),
    )?;
    let api = pre
        .instantiate_async(&mut store)
        .await
        .map_err(|e| anyhow!("provider plugin '{name}': cannot instantiate: {e:#}"))?;
    Ok(Instance { store, api })
}

#[async_trait::async_trait]
impl Provider for WasmProvider {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    async fn validate_policy(&self, requested: &Policy) -> anyhow::Result<Result<Policy, String>> {
        let p = to_wit_policy(requested);
        let r = self
            .with_instance("validate-policy", async |i: &mut Instance| {
                i.api
                    .redback_provider_adapter()
                    .call_validate_policy(&mut i.store, &p)
                    .await
            })
            .await?;
        match r {
            Ok(p) => Ok(Ok(policy(p)?)),
            Err(sentence) => Ok(Err(sentence)),
        }
    }

    async fn object_prefix(
        &self,
        instance: &str,
        backup_id: &str,
        kind: BackupKind,
        started_unix_secs: i64,
    ) -> anyhow::Result<String> {
        let kind = match kind {
            BackupKind::Automatic => wit::BackupKind::Automatic,
            BackupKind::Manual => wit::BackupKind::Manual,
        };
        let prefix = self
            .with_instance("object-prefix", async |i: &mut Instance| {
                i.api
                    .redback_provider_adapter()
                    .call_object_prefix(&mut i.store, instance, backup_id, kind, started_unix_secs)
                    .await
            })
            .await?;
        let ok = !prefix.is_empty()
            && prefix.len() <= 512
            && !prefix.ends_with('/')
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
            && crate::storage::key_problem(&prefix).is_none();
        if !ok {
            bail!(
                "provider plugin '{}': `object-prefix` returned `{prefix}`, which is not a storage prefix \
                 (non-empty, at most 512 bytes of [A-Za-z0-9._-/], no trailing `/`, no `.`/`..` segments)",
                self.plugin.manifest.name
            );
        }
        Ok(prefix)
    }
}

fn weekday(w: wit::Weekday) -> Weekday {
    match w {
        wit::Weekday::Monday => Weekday::Monday,
        wit::Weekday::Tuesday => Weekday::Tuesday,
        wit::Weekday::Wednesday => Weekday::Wednesday,
        wit::Weekday::Thursday => Weekday::Thursday,
        wit::Weekday::Friday => Weekday::Friday,
        wit::Weekday::Saturday => Weekday::Saturday,
        wit::Weekday::Sunday => Weekday::Sunday,
    }
}

fn to_wit_weekday(w: Weekday) -> wit::Weekday {
    match w {
        Weekday::Monday => wit::Weekday::Monday,
        Weekday::Tuesday => wit::Weekday::Tuesday,
        Weekday::Wednesday => wit::Weekday::Wednesday,
        Weekday::Thursday => wit::Weekday::Thursday,
        Weekday::Friday => wit::Weekday::Friday,
        Weekday::Saturday => wit::Weekday::Saturday,
        Weekday::Sunday => wit::Weekday::Sunday,
    }
}

fn time(t: wit::TimeOfDay) -> anyhow::Result<TimeOfDay> {
    if t.hour > 23 || t.minute > 59 {
        bail!("time of day {}:{} is out of range", t.hour, t.minute);
    }
    Ok(TimeOfDay {
        hour: t.hour,
        minute: t.minute,
    })
}

fn policy(p: wit::Policy) -> anyhow::Result<Policy> {
    let mut weekdays: Vec<Weekday> = p.weekdays.into_iter().map(weekday).collect();
    weekdays.sort();
    weekdays.dedup();
    Ok(Policy {
        weekdays,
        window_start: time(p.window_start)?,
        window_end: time(p.window_end)?,
        retention_days: p.retention_days,
    })
}

fn to_wit_policy(p: &Policy) -> wit::Policy {
    wit::Policy {
        weekdays: p.weekdays.iter().copied().map(to_wit_weekday).collect(),
        window_start: wit::TimeOfDay {
            hour: p.window_start.hour,
            minute: p.window_start.minute,
        },
        window_end: wit::TimeOfDay {
            hour: p.window_end.hour,
            minute: p.window_end.minute,
        },
        retention_days: p.retention_days,
    }
}

fn restore_mode(m: wit::RestoreMode) -> RestoreMode {
    match m {
        wit::RestoreMode::InPlace => RestoreMode::InPlace,
        wit::RestoreMode::Keys => RestoreMode::Keys,
        wit::RestoreMode::Clone => RestoreMode::Clone,
    }
}

fn descriptor(d: wit::Descriptor) -> anyhow::Result<Descriptor> {
    if d.retention_range.min > d.retention_range.max {
        bail!(
            "retention range {}..{} is empty",
            d.retention_range.min,
            d.retention_range.max
        );
    }
    let default_policy = policy(d.default_policy)?;
    Ok(Descriptor {
        name: d.name,
        display_name: d.display_name,
        default_policy,
        changeable: Changeable {
            weekdays: d.changeable.contains(wit::Changeable::WEEKDAYS),
            window: d.changeable.contains(wit::Changeable::WINDOW),
            retention: d.changeable.contains(wit::Changeable::RETENTION),
        },
        min_weekdays: d.min_weekdays,
        retention_min_days: d.retention_range.min,
        retention_max_days: d.retention_range.max,
        download_links: d
            .download_links
            .into_iter()
            .map(|l| LinkLifetime {
                network: match l.network {
                    wit::Network::Internal => Network::Internal,
                    wit::Network::Public => Network::Public,
                },
                ttl_secs: l.ttl_seconds,
                label: l.label,
            })
            .collect(),
        restore_modes: d.restore_modes.into_iter().map(restore_mode).collect(),
        recommended_restore: d.recommended_restore.map(restore_mode),
        password_confirms: d.password_confirms.into_iter().map(restore_mode).collect(),
        backup_from_replica: d.backup_from_replica,
        archive_retention_days: d.archive.map(|a| a.retention_days),
        labels: Labels {
            running: d.labels.running,
            backing_up: d.labels.backing_up,
            recovering_by_backup: d.labels.recovering_by_backup,
            recovering_by_key: d.labels.recovering_by_key,
            cloning: d.labels.cloning,
            automatic_backup: d.labels.automatic_backup,
            manual_backup: d.labels.manual_backup,
            manual_backup_text: d.labels.manual_backup_text,
        },
    })
}
