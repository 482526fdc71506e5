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
    provider: Option<String>,
    timezone: Option<String>,
    policy: Option<RawPolicy>,
    archive_storage: Option<String>,
    archive_retention_days: Option<u32>,
    keep_last: Option<u32>,
    tls: Option<super::tls::RawTls>,
    target_tls: Option<super::tls::RawTargetTls>,
}

/// `[instance.NAME.policy]`: the operator's changes to the provider's
/// default policy; the provider accepts or refuses them when the daemon
/// starts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    weekdays: Option<Vec<String>>,
    window: Option<String>,
    retention_days: Option<u32>,
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
    /// The provider plugin whose semantics apply (`provider-tencent`);
    /// without one the instance is backed up only on demand.
    pub provider: Option<String>,
    /// The zone its backup windows are in (the daemon's when not set).
    pub timezone: Option<jiff::tz::TimeZone>,
    /// Changes to the provider's default policy.
    pub policy: PolicyOverride,
    /// A second storage completed backups are copied to.
    pub archive_storage: Option<String>,
    /// Days an archived copy is kept; the provider's when not set.
    pub archive_retention_days: Option<u32>,
    /// Complete backups the sweeper never deletes, newest first (0: none).
    pub keep_last: u32,
    /// TLS to the instance's nodes (address, replica, replicas found in
    /// `INFO replication`); `None`: plain TCP.
    pub tls: Option<super::TlsConfig>,
    /// TLS to a clone's or restore's target address: `target_tls` when
    /// set (`false`: plain), else the instance's `tls` with the server
    /// name taken from the target's address.
    pub target_tls: Option<super::TlsConfig>,
}

/// Parts of a policy the config sets; `None` keeps the provider's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyOverride {
    pub weekdays: Option<Vec<crate::provider::Weekday>>,
    pub window: Option<(crate::provider::TimeOfDay, crate::provider::TimeOfDay)>,
    pub retention_days: Option<u32>,
}

impl PolicyOverride {
    /// `base` with these changes applied.
    pub fn apply(&self, base: &crate::provider::Policy) -> crate::provider::Policy {
        let mut p = base.clone();
        if let Some(w) = &self.weekdays {
            p.weekdays = w.clone();
        }
        if let Some((start, end)) = self.window {
            p.window_start = start;
            p.window_end = end;
        }
        if let Some(r) = self.retention_days {
            p.retention_days = r;
        }
        p
    }

    pub fn is_empty(&self) -> bool {
        *self == PolicyOverride::default()
    }
}

/// `"monday"` or `"mon"`, any case.
pub fn parse_weekday(s: &str) -> Option<crate::provider::Weekday> {
    use crate::provider::Weekday::*;
    let l = s.to_ascii_lowercase();
    let all = [
        ("monday", Monday),
        ("tuesday", Tuesday),
        ("wednesday", Wednesday),
        ("thursday", Thursday),
        ("friday", Friday),
        ("saturday", Saturday),
        ("sunday", Sunday),
    ];
    all.iter()
        .find(|(name, _)| l == *name || (l.len() == 3 && name.starts_with(&l)))
        .map(|(_, d)| *d)
}

/// `"02:00-08:00"`: a start and an end time of day.
pub fn parse_window(s: &str) -> Option<(crate::provider::TimeOfDay, crate::provider::TimeOfDay)> {
    let time = |t: &str| {
        let (h, m) = t.trim().split_once(':')?;
        let (hour, minute) = (h.parse::<u8>().ok()?, m.parse::<u8>().ok()?);
        (hour < 24 && minute < 60 && m.len() == 2)
            .then_some(crate::provider::TimeOfDay { hour, minute })
    };
    let (a, b) = s.split_once('-')?;
    Some((time(a)?, time(b)?))
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
    if let Some(p) = &raw.provider
        && p.is_empty()
    {
        return Err((
            key("provider"),
            "name a provider plugin, e.g. \"provider-tencent\", or leave it out".into(),
        ));
    }
    let timezone = match &raw.timezone {
        None => None,
        Some(z) => Some(jiff::tz::TimeZone::get(z).map_err(|_| {
            (
                key("timezone"),
                format!("`{z}` is not an IANA time zone; write e.g. \"Asia/Shanghai\" or \"UTC\""),
            )
        })?),
    };
    let mut policy = PolicyOverride::default();
    if let Some(p) = raw.policy {
        if let Some(days) = p.weekdays {
            let parsed = days
                .iter()
                .map(|d| {
                    parse_weekday(d).ok_or_else(|| {
                        (
                            key("policy.weekdays"),
                            format!("`{d}` is not a weekday; write \"monday\" … \"sunday\" or \"mon\" … \"sun\""),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            policy.weekdays = Some(parsed);
        }
        if let Some(w) = p.window {
            policy.window = Some(parse_window(&w).ok_or_else(|| {
                (
                    key("policy.window"),
                    format!("`{w}` is not a window; write START-END as HH:MM-HH:MM, e.g. \"02:00-08:00\""),
                )
            })?);
        }
        policy.retention_days = p.retention_days;
    }
    if let Some(a) = &raw.archive_storage {
        if !storages.contains_key(a) {
            return Err((
                key("archive_storage"),
                format!(
                    "no [storage.{a}] in the config; defined: {}",
                    super::join_or_none(storages.keys())
                ),
            ));
        }
        if *a == raw.storage {
            return Err((
                key("archive_storage"),
                "is the instance's own storage; an archive must be a second storage".into(),
            ));
        }
    } else if raw.archive_retention_days.is_some() {
        return Err((
            key("archive_retention_days"),
            "set only with `archive_storage`".into(),
        ));
    }
    if raw.archive_retention_days == Some(0) {
        return Err((key("archive_retention_days"), "must be at least 1".into()));
    }
    let tls = match raw.tls {
        Some(t) => Some(super::tls::validate(&key("tls"), t, base)?),
        None => None,
    };
    let target_tls = match raw.target_tls {
        None => tls.as_ref().map(|t| t.for_other_server(&key("target_tls"))),
        Some(super::tls::RawTargetTls::Enabled(true)) => match &tls {
            Some(t) => Some(t.for_other_server(&key("target_tls"))),
            None => Some(super::tls::validate(
                &key("target_tls"),
                Default::default(),
                base,
            )?),
        },
        Some(super::tls::RawTargetTls::Enabled(false)) => None,
        Some(super::tls::RawTargetTls::Table(t)) => {
            Some(super::tls::validate(&key("target_tls"), t, base)?)
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
        provider: raw.provider,
        timezone,
        policy,
        archive_storage: raw.archive_storage,
        archive_retention_days: raw.archive_retention_days,
        keep_last: raw.keep_last.unwrap_or(1),
        tls,
        target_tls,
    })
}
