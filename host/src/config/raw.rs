//! The config file as serde reads it, and its validation into `Config`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::data_runtime::Priority;

use super::secrets::{Secret, looks_secret};
use super::{
    Config, ConfigError, DEFAULT_LISTEN, DaemonConfig, PluginOverrides, SettingValue, StorageConfig,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    daemon: RawDaemon,
    #[serde(default)]
    plugins: BTreeMap<String, RawPlugin>,
    #[serde(default)]
    storage: BTreeMap<String, toml::Table>,
    #[serde(default)]
    instance: BTreeMap<String, super::instance::RawInstance>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    listen: Option<String>,
    plugin_dir: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    timezone: Option<String>,
    api_token_file: Option<PathBuf>,
    public_url: Option<String>,
    max_concurrent_backups: Option<u32>,
    catalog: Option<PathBuf>,
    data_priority: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlugin {
    sha256: Option<String>,
    memory_mib: Option<u32>,
    cpu_ms_per_call: Option<u64>,
    call_timeout_secs: Option<u64>,
}

/// Keys of a `[storage.NAME]` table that the host reads itself.
const HOST_KEYS: [&str; 7] = [
    "plugin",
    "allow_hosts",
    "root",
    "max_concurrent_backups",
    "call_timeout_secs",
    "retries",
    "encryption",
];

pub(super) fn validate(
    raw: RawConfig,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let base = path.parent().unwrap_or(Path::new("."));
    let invalid = |key: String, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        key,
        message,
    };

    let listen_text = raw.daemon.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen = listen_text.parse().map_err(|_| {
        invalid(
            "daemon.listen".into(),
            format!("`{listen_text}` is not an address; write IP:PORT, e.g. \"{DEFAULT_LISTEN}\""),
        )
    })?;
    let zone_name = raw.daemon.timezone.as_deref().unwrap_or("UTC");
    let timezone = jiff::tz::TimeZone::get(zone_name).map_err(|_| {
        invalid(
            "daemon.timezone".into(),
            format!(
                "`{zone_name}` is not an IANA time zone; write e.g. \"Asia/Shanghai\" or \"UTC\""
            ),
        )
    })?;
    let public_url = match raw.daemon.public_url {
        Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
            u.trim_end_matches('/').to_string()
        }
        Some(u) => {
            return Err(invalid(
                "daemon.public_url".into(),
                format!(
                    "`{u}` is not an http:// or https:// URL; write the address users reach the daemon at, e.g. \"https://backup.example.com\""
                ),
            ));
        }
        None => format!("http://{listen}"),
    };
    let max_concurrent_backups = raw.daemon.max_concurrent_backups.unwrap_or(2);
    if max_concurrent_backups == 0 {
        return Err(invalid(
            "daemon.max_concurrent_backups".into(),
            "must be at least 1".into(),
        ));
    }
    let data_priority = match raw.daemon.data_priority.as_deref() {
        None => Priority::Idle,
        Some(text) => Priority::parse(text).ok_or_else(|| {
            invalid(
                "daemon.data_priority".into(),
                format!(
                    "`{text}` is not a priority; write \"idle\" (the default: backup and restore \
                     threads take only CPU time nothing else wants), \"low\" (nice 19) or \"normal\""
                ),
            )
        })?,
    };
    let state_dir = base.join(raw.daemon.state_dir.unwrap_or_else(|| "var".into()));
    let daemon = DaemonConfig {
        listen,
        plugin_dir: base.join(raw.daemon.plugin_dir.unwrap_or_else(|| "plugins".into())),
        catalog: match raw.daemon.catalog {
            Some(c) => base.join(c),
            None => state_dir.join("catalog.sqlite"),
        },
        state_dir,
        timezone,
        api_token_file: raw.daemon.api_token_file.map(|f| base.join(f)),
        public_url,
        max_concurrent_backups,
        data_priority,
    };

    let mut plugins = BTreeMap::new();
    for (name, p) in raw.plugins {
        let key = |field: &str| format!("plugins.{name}.{field}");
        if let Some(sha) = &p.sha256
            && !is_sha256_hex(sha)
        {
            return Err(invalid(
                key("sha256"),
                "must be 64 lowercase hex digits (run `sha256sum` on the .wasm file)".into(),
            ));
        }
        if let Some(m) = p.memory_mib
            && !(1..=4096).contains(&m)
        {
            return Err(invalid(
                key("memory_mib"),
                format!("{m} is out of range; use 1 to 4096"),
            ));
        }
        if p.cpu_ms_per_call == Some(0) {
            return Err(invalid(key("cpu_ms_per_call"), "must be at least 1".into()));
        }
        if p.call_timeout_secs == Some(0) {
            return Err(invalid(
                key("call_timeout_secs"),
                "must be at least 1".into(),
            ));
        }
        plugins.insert(
            name,
            PluginOverrides {
                sha256: p.sha256,
                memory_mib: p.memory_mib,
                cpu_ms_per_call: p.cpu_ms_per_call,
                call_timeout: p.call_timeout_secs.map(Duration::from_secs),
            },
        );
    }

    let mut storages = BTreeMap::new();
    for (name, table) in raw.storage {
        let storage = validate_storage(&name, table, base, env).map_err(|(k, m)| invalid(k, m))?;
        storages.insert(name, storage);
    }
    let mut instances = BTreeMap::new();
    for (name, r) in raw.instance {
        let i = super::instance::validate(&name, r, &storages, base, env)
            .map_err(|(k, m)| invalid(k, m))?;
        instances.insert(name, i);
    }
    Ok(Config {
        path: path.to_path_buf(),
        daemon,
        plugins,
        storages,
        instances,
    })
}

type KeyError = (String, String);

pub(super) fn validate_storage(
    name: &str,
    table: toml::Table,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<StorageConfig, KeyError> {
    let key = |field: &str| format!("storage.{name}.{field}");
    if !is_name(name) {
        return Err((
            format!("storage.{name}"),
            "storage names use a-z, 0-9, `-` and `_` (1 to 64 characters)".into(),
        ));
    }
    let plugin = match table.get("plugin") {
        Some(toml::Value::String(p)) if !p.is_empty() => p.clone(),
        Some(_) => {
            return Err((
                key("plugin"),
                "must be the name of a storage plugin, a string".into(),
            ));
        }
        None => {
            return Err((
                key("plugin"),
                "missing; name the storage plugin that serves this storage, e.g. plugin = \"storage-local\"".into(),
            ));
        }
    };
    let mut allow_hosts = match table.get("allow_hosts") {
        None => Vec::new(),
        Some(toml::Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                toml::Value::String(s) => Ok(s.clone()),
                _ => Err((key("allow_hosts"), "must be a list of strings".to_string())),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err((
                key("allow_hosts"),
                "must be a list of strings, e.g. [\"s3.example.com:443\"]".into(),
            ));
        }
    };
    let max_concurrent_backups = match table.get("max_concurrent_backups") {
        None => None,
        Some(toml::Value::Integer(n)) if (1..=1024).contains(n) => Some(*n as u32),
        Some(_) => {
            return Err((
                key("max_concurrent_backups"),
                "must be a number from 1 to 1024".into(),
            ));
        }
    };
    // The host's retry layer (`storage::resilient`): a deadline per call
    // and how often a transient failure is tried again.
    let call_timeout = match table.get("call_timeout_secs") {
        None => None,
        Some(toml::Value::Integer(n)) if (1..=86_400).contains(n) => {
            Some(Duration::from_secs(*n as u64))
        }
        Some(_) => {
            return Err((
                key("call_timeout_secs"),
                "must be a number of seconds from 1 to 86400".into(),
            ));
        }
    };
    let retries = match table.get("retries") {
        None => None,
        Some(toml::Value::Integer(n)) if (0..=20).contains(n) => Some(*n as u32),
        Some(_) => {
            return Err((
                key("retries"),
                "must be a number from 0 to 20 (0: never retry a transient failure)".into(),
            ));
        }
    };
    let root = match table.get("root") {
        None => None,
        Some(toml::Value::String(r)) if !r.is_empty() => Some(base.join(r)),
        Some(_) => return Err((key("root"), "must be a directory path, a string".into())),
    };
    let encryption = match table.get("encryption") {
        None => None,
        Some(v) => Some(super::encryption::validate(name, v, base, env)?),
    };

    let mut settings = BTreeMap::new();
    let mut endpoints = Vec::new();
    for (k, v) in &table {
        if HOST_KEYS.contains(&k.as_str()) {
            continue;
        }
        let text = match v {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            _ => {
                return Err((
                    key(k),
                    "plugin settings must be strings, numbers or booleans".into(),
                ));
            }
        };
        if let Some(target) = k.strip_suffix("_env") {
            let value = env(&text).ok_or_else(|| {
                (
                    key(k),
                    format!("names environment variable `{text}`, which is not set; export it, or use `{target}_file`"),
                )
            })?;
            insert_setting(
                &mut settings,
                name,
                target,
                SettingValue::Secret(Secret::new(value)),
            )?;
        } else if let Some(target) = k.strip_suffix("_file") {
            let file = base.join(&text);
            let value = std::fs::read_to_string(&file).map_err(|e| {
                (
                    key(k),
                    format!(
                        "cannot read {}: {e}; point it at a readable file",
                        file.display()
                    ),
                )
            })?;
            let value = value.trim_end_matches(['\r', '\n']).to_string();
            insert_setting(
                &mut settings,
                name,
                target,
                SettingValue::Secret(Secret::new(value)),
            )?;
        } else if looks_secret(k) {
            return Err((
                key(k),
                format!(
                    "secrets may not be written in the config; use `{k}_env = \"VAR\"` or `{k}_file = \"path\"`"
                ),
            ));
        } else {
            if k.ends_with("endpoint") {
                endpoints.push(text.clone());
            }
            insert_setting(&mut settings, name, k, SettingValue::Plain(text))?;
        }
    }
    // Object stores address a bucket as a subdomain of the endpoint
    // (`https://bucket.s3.example.com` for endpoint `https://s3.example.com`),
    // so an endpoint grants that name too; never an IP address's.
    let bucket = match settings.get("bucket") {
        Some(SettingValue::Plain(b)) => Some(b.clone()),
        _ => None,
    };
    for ep in endpoints {
        if let Some(b) = &bucket
            && let Some(sub) = bucket_host(&ep, b)
        {
            allow_hosts.push(sub);
        }
        allow_hosts.push(ep);
    }
    Ok(StorageConfig {
        name: name.to_string(),
        plugin,
        allow_hosts,
        root,
        settings,
        max_concurrent_backups,
        call_timeout,
        retries,
        encryption,
    })
}

/// The virtual-hosted form `scheme://bucket.host[:port]` of an endpoint
/// URL whose host is a name; `None` for an IP address or a bucket that
/// cannot be a DNS label.
fn bucket_host(endpoint: &str, bucket: &str) -> Option<String> {
    let (scheme, rest) = endpoint.split_once("://")?;
    let authority = rest.split('/').next()?;
    let host = match authority.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    };
    let label_ok = !bucket.is_empty()
        && bucket
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !label_ok || host.starts_with('[') || host.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    Some(format!("{scheme}://{bucket}.{authority}"))
}

fn insert_setting(
    settings: &mut BTreeMap<String, SettingValue>,
    storage: &str,
    key: &str,
    value: SettingValue,
) -> Result<(), KeyError> {
    if settings.insert(key.to_string(), value).is_some() {
        return Err((
            format!("storage.{storage}.{key}"),
            format!("given twice (as `{key}` and `{key}_env`/`{key}_file`); keep one"),
        ));
    }
    Ok(())
}

pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_'))
}
