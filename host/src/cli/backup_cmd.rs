//! `redback backup` and `redback backups`: one-shot from a config file.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::backup::{self, Kind, Progress, Request};
use crate::config::Config;
use crate::daemon::Daemon;

pub(super) async fn backup(
    config_path: &Path,
    instance: &str,
    name: Option<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let inst = config.instance(instance)?.clone();
    let (_host, storage) = Daemon::open_storage(&config, &inst.storage).await?;
    let progress = Arc::new(Progress::default());
    let request = Request {
        kind: Kind::Manual,
        name,
    };
    let shown = {
        let p = progress.clone();
        super::progress::Progress::start(
            &format!("backup of {}", inst.name),
            None,
            Arc::new(move || (p.raw_bytes.load(Ordering::Relaxed), None)),
        )
    };
    let result = backup::run(&inst, storage, &request, progress.clone()).await;
    shown.finish();
    let manifest = result?;
    if json {
        println!(
            "{}",
            String::from_utf8_lossy(&manifest.to_json()).trim_end()
        );
    } else {
        println!("{}", manifest.id);
    }
    Ok(ExitCode::SUCCESS)
}

/// `--from`, `--to` and `--kind` of `redback backups`.
pub(super) struct Filter {
    from: Option<jiff::Timestamp>,
    to: Option<jiff::Timestamp>,
    kind: Option<Kind>,
}

impl Filter {
    pub(super) fn parse(
        from: Option<String>,
        to: Option<String>,
        kind: Option<String>,
    ) -> anyhow::Result<Filter> {
        let time = |flag: &str, v: Option<String>| -> anyhow::Result<Option<jiff::Timestamp>> {
            v.map(|s| {
                s.parse().map_err(|_| {
                    anyhow::anyhow!(
                        "{flag} `{s}`: write an RFC 3339 time such as 2026-11-21T02:00:00Z"
                    )
                })
            })
            .transpose()
        };
        let kind = match kind.as_deref() {
            None => None,
            Some("automatic") => Some(Kind::Automatic),
            Some("manual") => Some(Kind::Manual),
            Some(other) => anyhow::bail!("--kind `{other}`: write automatic or manual"),
        };
        Ok(Filter {
            from: time("--from", from)?,
            to: time("--to", to)?,
            kind,
        })
    }

    fn keeps(&self, m: &backup::Manifest) -> bool {
        let started: Option<jiff::Timestamp> = m.started_at.parse().ok();
        self.kind.is_none_or(|k| k == m.kind)
            && self.from.is_none_or(|f| started.is_some_and(|t| t >= f))
            && self.to.is_none_or(|t| started.is_some_and(|s| s < t))
    }
}

pub(super) async fn list(
    config_path: &Path,
    instance: &str,
    filter: &Filter,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let inst = config.instance(instance)?.clone();
    let (_host, storage) = Daemon::open_storage(&config, &inst.storage).await?;
    let mut manifests = backup::list(&inst, storage.as_ref()).await?;
    manifests.retain(|m| filter.keeps(m));
    if json {
        println!("{}", serde_json::to_string_pretty(&manifests)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<24}  {:<9}  {:<20}  {:>12}  {:<15}  NAME",
        "ID", "KIND", "STARTED (UTC)", "STORED", "SOURCE"
    );
    for m in &manifests {
        println!(
            "{:<24}  {:<9}  {:<20}  {:>12}  {:<15}  {}",
            m.id,
            format!("{:?}", m.kind).to_lowercase(),
            m.started_at.get(..19).unwrap_or(&m.started_at),
            m.data.stored_bytes,
            format!("{} {}", m.source.role, m.source.address),
            m.name.as_deref().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Finds backup `id`: in `instance`, or in every instance of the config.
/// Returns the instance, the storage (and its host) and the manifest.
pub(super) async fn locate(
    config: &Config,
    id: &str,
    instance: Option<&str>,
) -> anyhow::Result<(
    crate::config::InstanceConfig,
    crate::plugin::PluginHost,
    Arc<dyn crate::storage::Storage>,
    backup::Manifest,
)> {
    let candidates: Vec<&crate::config::InstanceConfig> = match instance {
        Some(name) => vec![config.instance(name)?],
        None => config.instances.values().collect(),
    };
    let mut misses = Vec::new();
    for inst in candidates {
        let (host, storage) = Daemon::open_storage(config, &inst.storage).await?;
        match backup::find(inst, storage.as_ref(), id).await {
            Ok(m) => return Ok((inst.clone(), host, storage, m)),
            Err(backup::VerifyError::NotFound { .. }) => misses.push(inst.name.clone()),
            Err(e) => return Err(e.into()),
        }
    }
    anyhow::bail!(
        "no backup {id} in instance(s) {}; `redback backups --config {} --instance NAME` lists them",
        misses.join(", "),
        config.path.display()
    )
}

pub(super) async fn verify(
    config_path: &Path,
    id: &str,
    instance: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let (_inst, _host, storage, manifest) = locate(&config, id, instance).await?;
    let v = backup::verify(storage, &manifest).await?;
    print_verified(&v, json)
}

pub(super) fn print_verified(v: &backup::Verified, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(v)?);
    } else {
        println!(
            "backup {} is good: {} stored bytes match sha256 {}; RDB v{} of {} bytes parsed, CRC-64 {} and {} keys match the manifest",
            v.id, v.stored_bytes, v.sha256, v.rdb_version, v.raw_bytes, v.rdb_crc64, v.keys
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn inspect(
    config_path: &Path,
    id: &str,
    instance: Option<&str>,
    keys: Option<&str>,
    top: usize,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let (_inst, _host, storage, manifest) = locate(&config, id, instance).await?;
    let r = backup::inspect(storage, &manifest, keys, top).await?;
    print_inspection(&r, json)
}

pub(super) fn print_inspection(r: &backup::Inspection, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(ExitCode::SUCCESS);
    }
    let s = &r.stats;
    println!(
        "backup {}: RDB v{}, {} keys ({} with a TTL), {} bytes of values",
        r.id, s.version, s.keys, s.expires, s.value_bytes
    );
    println!("{:<6} {:>12} {:>12}", "DB", "KEYS", "EXPIRES");
    for (db, d) in &s.dbs {
        println!("{db:<6} {:>12} {:>12}", d.keys, d.expires);
    }
    println!("{:<12} {:>12} {:>16}", "TYPE", "KEYS", "BYTES");
    for (kind, t) in &s.by_kind {
        println!("{kind:<12} {:>12} {:>16}", t.keys, t.bytes);
    }
    println!("biggest keys:");
    for k in &s.largest_keys {
        println!(
            "  db {:<3} {:<8} {:>12}  {}",
            k.db,
            k.kind.name(),
            k.bytes,
            k.key
        );
    }
    if let Some(p) = &r.pattern {
        println!(
            "{} keys match `{p}`{}:",
            r.matched,
            if r.matched as usize > r.keys.len() {
                " (first 1000 shown)"
            } else {
                ""
            }
        );
        for k in &r.keys {
            println!("  db {:<3} {:<8} {:>12}  {}", k.db, k.kind, k.bytes, k.key);
        }
    }
    Ok(ExitCode::SUCCESS)
}
