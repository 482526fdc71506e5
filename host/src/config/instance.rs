//! `[instance.NAME]` tables: the Redis instances redback backs up.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::secrets::Secret;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInstance {
    address: String,
    username: Option<String>,
    password: Option<String>,
    password_env: Option<String>,
    password_file: Option<String>,
    replica: Option<String>,
    #[serde(default)]
    prefer_replica: bool,
    storage: String,
    compression: Option<String>,
    zstd_level: Option<i32>,
    prefix: Option<String>,
    connect_timeout_secs: Option<u64>,
    read_timeout_secs: Option<u64>,
}

/// How the RDB is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase", tag = "codec")]
pub enum Compression {
    /// zstd frames at this level (1 fastest … 19 smallest).
    Zstd { level: i32 },
    /// The plain RDB.
    None,
}

/// A validated `[instance.NAME]`.
#[derive(Debug, Clone)]
pub struct InstanceConfig {
    pub name: String,
    /// `host:port` of the master (or the only node).
    pub address: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// A replica to read backups from, if the operator names one.
    pub replica: Option<String>,
    /// Read from an online replica when there is one (found through the
    /// master's `INFO replication` when `replica` is not set).
    pub prefer_replica: bool,
    /// The `[storage.NAME]` backups go to.
    pub storage: String,
    pub compression: Compression,
    /// Storage key prefix: backups live under `<prefix>/<instance>/<backup-id>/`.
    pub prefix: String,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

pub(super) type KeyError = (String, String);

fn is_address(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    }
}

pub(super) fn validate(
    name: &str,
    raw: RawInstance,
    storages: &BTreeMap<String, super::StorageConfig>,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<InstanceConfig, KeyError> {
    let key = |f: &str| format!("instance.{name}.{f}");
    if !(1..=64).contains(&name.len())
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err((
            format!("instance.{name}"),
            "instance names use A-Z, a-z, 0-9, `-` and `_` (1 to 64)".into(),
        ));
    }
    if !is_address(&raw.address) {
        return Err((
            key("address"),
            format!(
                "`{}` is not HOST:PORT, e.g. \"127.0.0.1:6379\"",
                raw.address
            ),
        ));
    }
    if let Some(r) = &raw.replica
        && !is_address(r)
    {
        return Err((key("replica"), format!("`{r}` is not HOST:PORT")));
    }
    if raw.password.is_some() {
        return Err((
            key("password"),
            "secrets may not be written in the config; use `password_env = \"VAR\"` or `password_file = \"path\"`".into(),
        ));
    }
    let password = match (raw.password_env, raw.password_file) {
        (Some(_), Some(_)) => return Err((key("password_env"), "give `password_env` or `password_file`, not both".into())),
        (Some(var), None) => Some(Secret::new(env(&var).ok_or_else(|| {
            (key("password_env"), format!("names environment variable `{var}`, which is not set; export it, or use `password_file`"))
        })?)),
        (None, Some(file)) => {
            let path = base.join(&file);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| (key("password_file"), format!("cannot read {}: {e}", path.display())))?;
            Some(Secret::new(text.trim_end_matches(['\r', '\n']).to_string()))
        }
        (None, None) => None,
    };
    if !storages.contains_key(&raw.storage) {
        return Err((
            key("storage"),
            format!(
                "no [storage.{}] in the config; defined: {}",
                raw.storage,
                super::join_or_none(storages.keys())
            ),
        ));
    }
    let compression = match raw.compression.as_deref().unwrap_or("zstd") {
        "zstd" => {
            // Level 1: on 2 cores, level 3 made a 667 MB backup 1.21x of
            // `redis-cli --rdb` against 1.08x (make bench-snapshot).
            let level = raw.zstd_level.unwrap_or(1);
            if !(1..=19).contains(&level) {
                return Err((
                    key("zstd_level"),
                    format!("{level} is out of range; use 1 (fastest) to 19 (smallest)"),
                ));
            }
            Compression::Zstd { level }
        }
        "none" => {
            if raw.zstd_level.is_some() {
                return Err((
                    key("zstd_level"),
                    "set only with compression = \"zstd\"".into(),
                ));
            }
            Compression::None
        }
        other => {
            return Err((
                key("compression"),
                format!("`{other}` is not one of \"zstd\", \"none\""),
            ));
        }
    };
    let prefix = raw.prefix.unwrap_or_else(|| "redback".into());
    if crate::storage::key_problem(&prefix).is_some()
        || !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
        || prefix.len() > 200
    {
        return Err((
            key("prefix"),
            "use up to 200 of A-Z, a-z, 0-9, `.`, `_`, `-` and `/`, no empty or `..` segment"
                .into(),
        ));
    }
    let secs = |v: Option<u64>, d: u64, f: &str| -> Result<Duration, KeyError> {
        match v {
            Some(0) => Err((key(f), "must be at least 1".into())),
            Some(s) => Ok(Duration::from_secs(s)),
            None => Ok(Duration::from_secs(d)),
        }
    };
    Ok(InstanceConfig {
        name: name.to_string(),
        address: raw.address,
        username: raw.username,
        password,
        replica: raw.replica,
        prefer_replica: raw.prefer_replica,
        storage: raw.storage,
        compression,
        prefix,
        connect_timeout: secs(raw.connect_timeout_secs, 10, "connect_timeout_secs")?,
        read_timeout: secs(raw.read_timeout_secs, 120, "read_timeout_secs")?,
    })
}
