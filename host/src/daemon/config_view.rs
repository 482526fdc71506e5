//! The resolved view of a config that `redback config check` prints and
//! `GET /config` serves: every value as the daemon uses it, secrets
//! masked, and the problems found.

use serde_json::{Value, json};

use crate::config::{Compression, Config};
use crate::daemon::Daemon;
use crate::daemon::providers::{effective_policy, open_providers};

/// A `tls` table as resolved: paths and names, never key material.
fn tls_view(t: &crate::config::TlsConfig) -> Value {
    json!({
        "ca_file": t.ca_file.as_ref().map(|p| p.display().to_string())
            .unwrap_or_else(|| "(public web roots)".into()),
        "cert_file": t.cert_file.as_ref().map(|p| p.display().to_string()),
        "server_name": t.server_name.as_ref().map(|n| n.to_str().into_owned())
            .unwrap_or_else(|| "(the address's host)".into()),
        "handoff_certificate": t.handoff.is_some(),
    })
}

/// The config as the daemon resolves it (secrets masked), with every
/// problem found (a policy its provider refuses, a provider that does not
/// load) under `problems`.
pub async fn resolved_view(config: &Config) -> anyhow::Result<Value> {
    let mut problems: Vec<String> = Vec::new();
    let mut instances = serde_json::Map::new();

    // The provider's verdict on each instance's policy needs the plugins.
    let loaded = Daemon::load_plugins(config);
    let (providers, provider_errors) = match &loaded {
        Ok((host, plugins)) => open_providers(config, host, plugins).await,
        Err(e) => {
            problems.push(format!("plugins: {e:#}"));
            Default::default()
        }
    };
    for (name, i) in &config.instances {
        let mut policy = Value::Null;
        if let Some(p) = &i.provider {
            if let Some(provider) = providers.get(p) {
                match effective_policy(i, provider.as_ref(), None).await {
                    Ok((pol, _)) => policy = serde_json::to_value(pol)?,
                    Err(sentence) => problems.push(format!(
                        "{}: `instance.{name}.policy`: {p} refuses it: {sentence}",
                        config.path.display()
                    )),
                }
            } else if let Some(why) = provider_errors.get(p) {
                problems.push(format!(
                    "{}: `instance.{name}.provider`: {why}",
                    config.path.display()
                ));
            }
        }
        instances.insert(
            name.clone(),
            json!({
                "address": i.address,
                "username": i.username,
                "password": i.password.as_ref().map(|s| s.to_string()),
                "replica": i.replica,
                "prefer_replica": i.prefer_replica,
                "storage": i.storage,
                "compression": match i.compression {
                    Compression::Zstd { level } => format!("zstd level {level}"),
                    Compression::None => "none".into(),
                },
                "prefix": i.prefix,
                "provider": i.provider,
                "timezone": i.timezone.as_ref().map(|z| z.iana_name().unwrap_or("?").to_string())
                    .unwrap_or_else(|| format!("{} (daemon)", config.daemon.timezone.iana_name().unwrap_or("?"))),
                "policy": policy,
                "archive_storage": i.archive_storage,
                "archive_retention_days": i.archive_retention_days,
                "keep_last": i.keep_last,
                "tls": i.tls.as_ref().map(tls_view),
                "target_tls": i.target_tls.as_ref().map(tls_view),
            }),
        );
    }
    let storages: serde_json::Map<String, Value> = config
        .storages
        .iter()
        .map(|(name, s)| {
            let settings: serde_json::Map<String, Value> = s
                .settings
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.to_string())))
                .collect();
            (
                name.clone(),
                json!({
                    "plugin": s.plugin,
                    "root": s.root,
                    "allow_hosts": s.allow_hosts,
                    "max_concurrent_backups": s.max_concurrent_backups,
                    "settings": settings,
                    // Key ids and where each key comes from; never a key.
                    "encryption": s.encryption.as_ref().map(|r| json!({
                        "cipher": crate::crypt::CIPHER,
                        "key": r.current_id(),
                        "keys": r.sources().map(|(id, src)| (id.to_string(), Value::String(src.to_string()))).collect::<serde_json::Map<_, _>>(),
                    })),
                }),
            )
        })
        .collect();
    let d = &config.daemon;
    let view = json!({
        "file": config.path,
        "daemon": {
            "listen": d.listen.to_string(),
            "plugin_dir": d.plugin_dir,
            "state_dir": d.state_dir,
            "catalog": d.catalog,
            "timezone": d.timezone.iana_name(),
            "api_token": match &d.api_token_file {
                Some(f) => format!("from file {}", f.display()),
                None => "from REDBACK_API_TOKEN, else generated into the state directory".into(),
            },
            "public_url": d.public_url,
            "max_concurrent_backups": d.max_concurrent_backups,
            "data_priority": d.data_priority,
        },
        "storage": storages,
        "instance": instances,
        "problems": problems,
    });
    Ok(view)
}
