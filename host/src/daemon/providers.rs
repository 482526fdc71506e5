//! The provider adapters the config's instances name, and each instance's
//! effective policy: the provider's default with the operator's changes,
//! as the provider accepts them.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{Config, InstanceConfig};
use crate::plugin::{PluginHost, PluginSet};
use crate::provider::{Policy, Provider};

/// Opens every provider plugin an instance names. A provider that cannot
/// be opened is reported by name; its instances are not scheduled.
pub async fn open_providers(
    config: &Config,
    host: &PluginHost,
    plugins: &PluginSet,
) -> (
    BTreeMap<String, Arc<dyn Provider>>,
    BTreeMap<String, String>,
) {
    let mut open = BTreeMap::new();
    let mut errors = BTreeMap::new();
    for name in config
        .instances
        .values()
        .filter_map(|i| i.provider.as_ref())
    {
        if open.contains_key(name) || errors.contains_key(name) {
            continue;
        }
        let Some(plugin) = plugins.loaded.get(name) else {
            errors.insert(
                name.clone(),
                plugins.why_missing(name, &config.daemon.plugin_dir),
            );
            continue;
        };
        match host.open_provider(plugin, config.plugins.get(name)).await {
            Ok(p) => {
                open.insert(name.clone(), p);
            }
            Err(e) => {
                errors.insert(name.clone(), format!("{e:#}"));
            }
        }
    }
    (open, errors)
}

/// Where an effective policy came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicySource {
    /// The config's `[instance.NAME.policy]` (or the provider's default).
    Config,
    /// A change made through the API, kept in the catalog.
    Api,
}

/// The policy `instance` runs under: `stored` (set through the API) if
/// any, else the provider's default with the config's changes; either way
/// as the provider returns it from `validate-policy`. `Err` is the
/// provider's sentence, or the plugin failing.
pub async fn effective_policy(
    instance: &InstanceConfig,
    provider: &dyn Provider,
    stored: Option<&Policy>,
) -> Result<(Policy, PolicySource), String> {
    let (requested, source) = match stored {
        Some(p) => (p.clone(), PolicySource::Api),
        None => (
            instance.policy.apply(&provider.descriptor().default_policy),
            PolicySource::Config,
        ),
    };
    match provider.validate_policy(&requested).await {
        Ok(Ok(p)) => Ok((p, source)),
        Ok(Err(sentence)) => Err(sentence),
        Err(e) => Err(format!("the provider plugin failed: {e:#}")),
    }
}
