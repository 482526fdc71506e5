//! The operator's TOML config: parsed into serde structs (`raw`), then
//! validated into typed values (`Config`) that cannot hold a bad value.
//!
//! Owns: reading the file, resolving relative paths against the file's
//! folder, resolving secrets from `*_env` / `*_file` keys, and every error
//! that names the file, the key and the fix. Must not: load plugins, touch
//! Redis or storage; it only describes what the rest of the host should do.

mod encryption;
mod instance;
mod raw;
#[cfg_attr(not(feature = "daemon"), allow(unused_imports))]
pub(crate) use raw::is_sha256_hex;
mod secrets;
mod tls;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use instance::{Compression, InstanceConfig, PolicyOverride, parse_weekday, parse_window};
pub use secrets::Secret;
pub use tls::TlsConfig;
#[cfg(feature = "daemon")]
pub(crate) use tls::provider as tls_provider;

/// Everything wrong with a config file, each naming the file, key and fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// Default address of the REST API: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7480";

/// A validated config.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from (absolute).
    pub path: PathBuf,
    pub daemon: DaemonConfig,
    /// Per-plugin overrides from `[plugins.NAME]`, by plugin name.
    pub plugins: BTreeMap<String, PluginOverrides>,
    /// `[storage.NAME]` tables, by storage name.
    pub storages: BTreeMap<String, StorageConfig>,
    /// `[instance.NAME]` tables, by instance name.
    pub instances: BTreeMap<String, InstanceConfig>,
}

#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub listen: SocketAddr,
    /// Folder of plugin folders (each with a plugin.toml).
    pub plugin_dir: PathBuf,
    /// Where the daemon keeps its own state (compiled-plugin cache, catalog).
    pub state_dir: PathBuf,
    /// The SQLite catalog file (`state_dir/catalog.sqlite` by default).
    pub catalog: PathBuf,
    /// Zone of backup windows for instances that name none.
    pub timezone: jiff::tz::TimeZone,
    /// File holding the REST API's bearer token; `REDBACK_API_TOKEN` when
    /// not set, else a token generated into the state directory.
    pub api_token_file: Option<PathBuf>,
    /// Base URL of download links the daemon serves itself.
    pub public_url: String,
    /// Backups running at once, over all instances.
    pub max_concurrent_backups: u32,
    /// CPU priority of the threads moving backup and restore data
    /// (`data_runtime`).
    pub data_priority: crate::data_runtime::Priority,
}

/// Limits and pins for one plugin, from `[plugins.NAME]`; unset fields use
/// the plugin's request (memory) or the host defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginOverrides {
    /// The sha256 the component must have (a pin on top of plugin.toml's).
    pub sha256: Option<String>,
    pub memory_mib: Option<u32>,
    pub cpu_ms_per_call: Option<u64>,
    pub call_timeout: Option<Duration>,
}

/// One `[storage.NAME]` table.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub name: String,
    /// Name of the storage plugin that serves it.
    pub plugin: String,
    /// Hosts (`name`, `name:port`, IP, IP:port, CIDR, URL) the plugin may reach
    /// over HTTP: `allow_hosts` plus the host of every `endpoint` /
    /// `*_endpoint` setting.
    pub allow_hosts: Vec<String>,
    /// Host directory for plugins that ask for a filesystem (`root`).
    pub root: Option<PathBuf>,
    /// Settings passed to the plugin's `configure`, secrets resolved.
    pub settings: BTreeMap<String, SettingValue>,
    /// Backups writing to this storage at once (no limit of its own if unset).
    pub max_concurrent_backups: Option<u32>,
    /// `call_timeout_secs`: the deadline of one storage call as the host's
    /// retry layer sees it (`storage::resilient`; its default if unset).
    pub call_timeout: Option<Duration>,
    /// `retries`: how often a transient failure is tried again (the retry
    /// layer's default if unset).
    pub retries: Option<u32>,
    /// The key ring of `[storage.NAME.encryption]`: backups written here
    /// are encrypted at rest.
    pub encryption: Option<std::sync::Arc<crate::crypt::KeyRing>>,
}

/// A setting value: plain, or a secret that is masked when shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingValue {
    Plain(String),
    Secret(Secret),
}

impl SettingValue {
    /// The value as the plugin sees it.
    pub fn expose(&self) -> &str {
        match self {
            SettingValue::Plain(s) => s,
            SettingValue::Secret(s) => s.expose(),
        }
    }
}

impl std::fmt::Display for SettingValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SettingValue::Plain(s) => f.write_str(s),
            SettingValue::Secret(s) => s.fmt(f),
        }
    }
}

impl StorageConfig {
    /// Validates a storage table given outside a config file, as
    /// `redback plugin check FOLDER --set key=value` does; relative paths
    /// resolve against `base`. The error names the key and the fix.
    pub fn from_table(
        name: &str,
        table: toml::Table,
        base: &Path,
    ) -> Result<StorageConfig, String> {
        raw::validate_storage(name, table, base, &|n| std::env::var(n).ok())
            .map_err(|(key, message)| format!("`{key}`: {message}"))
    }
}

impl Config {
    /// Reads and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        Self::parse(&text, &abs, &|name| std::env::var(name).ok())
    }

    /// Validates config text as if it were read from `path` (relative paths
    /// resolve against its folder); `env` looks up environment variables.
    pub fn parse(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw: raw::RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: syntax_message(text, &e),
        })?;
        raw::validate(raw, path, env)
    }

    /// An instance by name, or an error listing the known ones.
    pub fn instance(&self, name: &str) -> Result<&InstanceConfig, ConfigError> {
        self.instances
            .get(name)
            .ok_or_else(|| ConfigError::Invalid {
                path: self.path.clone(),
                key: format!("instance.{name}"),
                message: format!(
                    "no such instance; the config defines: {}",
                    join_or_none(self.instances.keys())
                ),
            })
    }

    /// A storage table by name, or an error listing the known ones.
    pub fn storage(&self, name: &str) -> Result<&StorageConfig, ConfigError> {
        self.storages.get(name).ok_or_else(|| ConfigError::Invalid {
            path: self.path.clone(),
            key: format!("storage.{name}"),
            message: format!(
                "no such storage; the config defines: {}",
                join_or_none(self.storages.keys())
            ),
        })
    }
}

pub(crate) fn join_or_none<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = names.map(String::as_str).collect();
    if v.is_empty() {
        "none".to_string()
    } else {
        v.join(", ")
    }
}

/// A TOML error as `line L, column C (where): message`. toml's own text
/// quotes the whole source line under it, and that line may hold a secret
/// written by mistake: here the place is named by its table header and key
/// only, never a value, and quoted string values in the message are masked
/// (serde quotes the value it could not use: `invalid type: string "…"`).
fn syntax_message(text: &str, e: &toml::de::Error) -> String {
    let place = e
        .span()
        .map(|span| {
            let start = span.start.min(text.len());
            let before = &text.as_bytes()[..start];
            let line_no = before.iter().filter(|b| **b == b'\n').count() + 1;
            let line_start = before
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1);
            let column = start - line_start + 1;
            let line = text[line_start..].lines().next().unwrap_or("").trim();
            let header = text[..line_start]
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| l.starts_with('['));
            let key = line
                .split_once('=')
                .filter(|_| !line.starts_with('['))
                .map(|(k, _)| format!("`{} = …`", k.trim()));
            let what = match (line.starts_with('['), key, header) {
                (true, _, _) => format!(" (`{line}`)"),
                (false, Some(k), Some(h)) => format!(" ({k} in `{h}`)"),
                (false, Some(k), None) => format!(" ({k})"),
                (false, None, Some(h)) => format!(" (in `{h}`)"),
                (false, None, None) => String::new(),
            };
            format!("line {line_no}, column {column}{what}: ")
        })
        .unwrap_or_default();
    let mut masked = String::new();
    let mut in_quotes = false;
    for ch in e.message().trim_end().chars() {
        if ch == '"' {
            if in_quotes {
                masked.push_str("***");
            }
            in_quotes = !in_quotes;
            masked.push(ch);
        } else if !in_quotes {
            masked.push(ch);
        }
    }
    format!("{place}{masked}")
}

#[cfg(test)]
mod tests;
