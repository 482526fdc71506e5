//! `redback restore` and `redback clone`: one-shot from a config file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

use super::backup_cmd::locate;
use crate::config::{Config, Secret};
use crate::restore::spawn::{SpawnOptions, clone_to_new_server, find_binary};
use crate::restore::{self, KeyFilter, Options, Progress, Scope};

/// Where to restore to, from the command line.
pub(super) struct TargetArgs {
    pub target: Option<String>,
    pub target_password_env: Option<String>,
}

fn target_endpoint(
    inst: &crate::config::InstanceConfig,
    args: &TargetArgs,
) -> anyhow::Result<crate::replication::Endpoint> {
    let addr = args.target.clone().unwrap_or_else(|| inst.address.clone());
    let mut ep = crate::backup::endpoint_for(inst, &addr);
    if args.target.is_some() {
        ep.instance = format!("{} (target {addr})", inst.name);
        ep.tls = inst.target_tls.clone();
        if let Some(var) = &args.target_password_env {
            let pw = std::env::var(var).with_context(|| {
                format!("--target-password-env names `{var}`, which is not set")
            })?;
            ep.password = Some(Secret::new(pw));
        }
    }
    Ok(ep)
}

/// What and how to restore, from the command line.
pub(super) struct How {
    pub keys: Option<String>,
    pub db: Option<u64>,
    pub no_replace: bool,
    pub best_effort: bool,
    pub mode: super::RestoreModeArg,
    pub listen: Option<String>,
    pub advertise: Option<String>,
    pub yes: bool,
    pub json: bool,
}

pub(super) async fn restore(
    config_path: &Path,
    id: &str,
    instance: Option<&str>,
    target: TargetArgs,
    how: How,
) -> anyhow::Result<ExitCode> {
    let How {
        keys,
        db,
        no_replace,
        best_effort,
        mode,
        listen,
        advertise,
        yes,
        json,
    } = how;
    let config = Config::load(config_path)?;
    let (inst, _host, storage, manifest) = locate(&config, id, instance).await?;
    let ep = target_endpoint(&inst, &target)?;
    let scope = match keys.as_deref() {
        Some(list) => Scope::Keys {
            filter: KeyFilter::parse(list).context("--keys holds no key; write `k1;k2;user:*`")?,
            db,
        },
        None => {
            if db.is_some() {
                bail!("--db selects keys of one db; it needs --keys");
            }
            Scope::WholeInPlace
        }
    };
    if !yes {
        let what = match &scope {
            Scope::WholeInPlace => format!("replaces every key of {} with backup {id}", ep.addr),
            _ => format!(
                "overwrites the chosen keys of {} with their values in backup {id}",
                ep.addr
            ),
        };
        bail!("this restore {what}; add --yes to confirm");
    }
    let whole = matches!(scope, Scope::WholeInPlace);
    if !whole && mode == super::RestoreModeArg::Handoff {
        bail!("--mode handoff restores a whole instance; a key restore uses the RESTORE pipeline");
    }
    // A target older than the backup cannot load its RDB or RESTORE its
    // payloads: such a restore replays plain commands instead.
    let (native, target_max) = restore::target_reads(&manifest, &ep).await?;
    if !native && mode == super::RestoreModeArg::Handoff {
        bail!(
            "{} reads RDB versions up to {target_max}, backup {id} is version {}: a handoff cannot work; \
             use --mode auto (command replay)",
            ep.addr,
            manifest.source.rdb_version
        );
    }
    // A target that replicates over TLS needs a handoff certificate; in
    // auto mode, without one, the RESTORE pipeline does the restore.
    let mut note = None;
    if whole
        && native
        && mode != super::RestoreModeArg::Restore
        && let Some(why) = restore::handoff::unavailable(&ep).await?
    {
        if mode == super::RestoreModeArg::Handoff {
            bail!(
                "{why}; set `handoff_cert_file` and `handoff_key_file` there, or use --mode restore"
            );
        }
        let n = format!("restored by the RESTORE pipeline, not a handoff: {why}");
        tracing::warn!("{n}");
        note = Some(n);
    }
    let report = if whole && native && mode != super::RestoreModeArg::Restore && note.is_none() {
        let o = restore::handoff::HandoffOptions {
            listen,
            advertise,
            ..Default::default()
        };
        let progress = std::sync::Arc::new(Progress::default());
        let p = progress.clone();
        let shown = super::progress::Progress::start(
            &format!("handoff of {} to {}", manifest.id, ep.addr),
            Some(manifest.data.raw_bytes),
            std::sync::Arc::new(move || {
                (p.raw_bytes.load(std::sync::atomic::Ordering::Relaxed), None)
            }),
        );
        let r = restore::handoff::run(storage, &manifest, &ep, &o, progress).await;
        shown.finish();
        r?
    } else {
        let opts = Options {
            scope,
            replace: !no_replace,
            best_effort,
        };
        run_shown(storage, &manifest, &ep, opts).await?
    };
    let report = restore::Report {
        note: note.or(report.note),
        ..report
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "restored ({}) {} of {} matching keys from backup {} into {} ({} expired, {} kept as they were, {} refused)",
            report.mode,
            report.keys_restored,
            report.keys_found,
            report.backup,
            report.target,
            report.keys_expired,
            report.keys_existing,
            report.refused.len()
        );
        if let Some(n) = &report.note {
            println!("{n}");
        }
        if !report.missing_patterns.is_empty() {
            println!("not in the backup: {}", report.missing_patterns.join(";"));
        }
        for (k, why) in &report.refused {
            println!("refused {k}: {why}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) struct SpawnArgs {
    pub port: Option<u16>,
    pub dir: Option<PathBuf>,
    pub redis_server: PathBuf,
}

pub(super) async fn clone(
    config_path: &Path,
    id: &str,
    instance: Option<&str>,
    target: TargetArgs,
    force: bool,
    spawn: Option<SpawnArgs>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let (inst, _host, storage, manifest) = locate(&config, id, instance).await?;
    if let Some(s) = spawn {
        let (Some(port), Some(dir)) = (s.port, s.dir) else {
            bail!("--spawn needs --port P and --dir D for the new server");
        };
        if !find_binary(&s.redis_server) {
            bail!(
                "cannot find {}; install redis-server or pass --redis-server PATH",
                s.redis_server.display()
            );
        }
        let opts = SpawnOptions {
            redis_server: s.redis_server,
            port,
            dir,
            bind: "127.0.0.1".into(),
        };
        let spawned = clone_to_new_server(storage, &manifest, &opts).await?;
        if json {
            println!("{}", serde_json::to_string_pretty(&spawned)?);
        } else {
            println!("{}", spawned.address);
            eprintln!(
                "clone of backup {id} running at {} with {} keys (data {}, log {}, pid file {})",
                spawned.address,
                spawned.keys,
                spawned.dir.display(),
                spawned.log_file.display(),
                spawned.pid_file.display()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if target.target.is_none() {
        bail!("clone needs --target ADDR (an empty instance) or --spawn --port P --dir D");
    }
    let ep = target_endpoint(&inst, &target)?;
    let opts = Options {
        scope: Scope::CloneInto { force },
        replace: true,
        best_effort: false,
    };
    let report = run_shown(storage, &manifest, &ep, opts).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "cloned backup {} into {}: {} keys restored, {} expired",
            report.backup, report.target, report.keys_restored, report.keys_expired
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs the RESTORE pipeline (or replay) with a progress display.
async fn run_shown(
    storage: std::sync::Arc<dyn crate::storage::Storage>,
    manifest: &crate::backup::Manifest,
    ep: &crate::replication::Endpoint,
    opts: Options,
) -> Result<restore::Report, restore::RestoreError> {
    use std::sync::atomic::Ordering;
    let progress = std::sync::Arc::new(Progress::default());
    let p = progress.clone();
    let shown = super::progress::Progress::start(
        &format!("restore of {} into {}", manifest.id, ep.addr),
        Some(manifest.data.raw_bytes),
        std::sync::Arc::new(move || {
            (
                p.raw_bytes.load(Ordering::Relaxed),
                Some(p.keys.load(Ordering::Relaxed)),
            )
        }),
    );
    let r = restore::run(storage, manifest, ep, opts, progress).await;
    shown.finish();
    r
}
