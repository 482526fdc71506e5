//! Every command with `--server URL`: the same command asked of a running
//! daemon over its REST API, printed the way the one-shot command prints.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::{CatalogCommand, Command, ConfigCommand, PluginCommand, RestoreModeArg};
use crate::api::client::{Client, encode};

/// A client of the daemon at `url`, with the token from `--token-file`
/// or `REDBACK_API_TOKEN`.
pub(super) fn client(url: &str, token_file: Option<&Path>) -> anyhow::Result<Client> {
    let token = match token_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("--token-file: cannot read {}", f.display()))?
                .trim()
                .to_string(),
        ),
        None => std::env::var("REDBACK_API_TOKEN").ok(),
    };
    Ok(Client::new(url, token)?)
}

fn print_json(v: &Value) -> anyhow::Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(ExitCode::SUCCESS)
}

/// Polls a task until it ends, showing its progress; fails with the
/// task's error if it failed.
async fn wait(c: &Client, label: &str, task: &str) -> anyhow::Result<Value> {
    let done = Arc::new(AtomicU64::new(0));
    let keys = Arc::new(AtomicU64::new(0));
    let shown = {
        let (d, k) = (done.clone(), keys.clone());
        super::progress::Progress::start(
            label,
            None,
            Arc::new(move || {
                let k = k.load(Ordering::Relaxed);
                (d.load(Ordering::Relaxed), (k > 0).then_some(k))
            }),
        )
    };
    let t = loop {
        let t = c.get(&format!("/tasks/{}", encode(task))).await?;
        done.store(t["bytes_done"].as_u64().unwrap_or(0), Ordering::Relaxed);
        keys.store(t["keys_done"].as_u64().unwrap_or(0), Ordering::Relaxed);
        if t["state"] != "running" && t["state"] != "pending" {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    shown.finish();
    if t["state"] != "succeeded" {
        bail!(
            "task {task} {}: {}",
            t["state"].as_str().unwrap_or("ended"),
            t["error"].as_str().unwrap_or("no reason given")
        );
    }
    Ok(t)
}

/// Refuses a one-shot option the daemon does not take, naming it.
fn unsupported(given: bool, option: &str, why: &str) -> anyhow::Result<()> {
    if given {
        bail!("{option} is not available with --server: {why}");
    }
    Ok(())
}

pub(super) async fn run(c: &Client, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve { .. } => unreachable!("serve never goes to a daemon"),
        Command::Backup {
            instance,
            name,
            json,
            ..
        } => {
            let r = c
                .post(
                    &format!("/instances/{}/backups", encode(&instance)),
                    &json!({ "name": name }),
                )
                .await?;
            let task = r["task"].as_str().unwrap_or_default().to_string();
            let t = wait(c, &format!("backup of {instance}"), &task).await?;
            let id = t["backup_id"].as_str().unwrap_or_default();
            if json {
                return print_json(&c.get(&format!("/backups/{}", encode(id))).await?);
            }
            println!("{id}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Backups {
            instance,
            from,
            to,
            kind,
            json,
            ..
        } => {
            let mut q = Vec::new();
            for (k, v) in [("from", from), ("to", to), ("kind", kind)] {
                if let Some(v) = v {
                    q.push(format!("{k}={}", encode(&v)));
                }
            }
            let list = c
                .get(&format!(
                    "/instances/{}/backups?{}",
                    encode(&instance),
                    q.join("&")
                ))
                .await?;
            if json {
                return print_json(&list);
            }
            println!(
                "{:<24}  {:<9}  {:<20}  {:>12}  {:<15}  NAME",
                "ID", "KIND", "STARTED (UTC)", "STORED", "SOURCE"
            );
            for b in list.as_array().into_iter().flatten() {
                let started = b["started_at"].as_str().unwrap_or_default();
                println!(
                    "{:<24}  {:<9}  {:<20}  {:>12}  {:<15}  {}",
                    b["id"].as_str().unwrap_or_default(),
                    b["kind"].as_str().unwrap_or_default(),
                    started.get(..19).unwrap_or(started),
                    b["stored_bytes"],
                    format!(
                        "{} {}",
                        b["source_role"].as_str().unwrap_or_default(),
                        b["source_address"].as_str().unwrap_or_default()
                    ),
                    b["name"].as_str().unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { backup, json, .. } => {
            let v = c
                .post(&format!("/backups/{}/verify", encode(&backup)), &json!({}))
                .await?;
            super::backup_cmd::print_verified(&serde_json::from_value(v)?, json)
        }
        Command::Inspect {
            backup,
            keys,
            top,
            json,
            ..
        } => {
            let mut path = format!("/backups/{}/inspect?top={top}", encode(&backup));
            if let Some(k) = keys {
                path.push_str(&format!("&keys={}", encode(&k)));
            }
            let r = c.get(&path).await?;
            super::backup_cmd::print_inspection(&serde_json::from_value(r)?, json)
        }
        Command::Restore {
            backup,
            target,
            target_password_env,
            keys,
            db,
            no_replace,
            best_effort,
            mode,
            listen,
            advertise,
            confirm_password_env,
            yes,
            json,
            ..
        } => {
            let why = "the daemon restores into the instance itself, the way it chooses";
            unsupported(
                target.is_some(),
                "--target",
                "use `clone --target` for another address",
            )?;
            unsupported(target_password_env.is_some(), "--target-password-env", why)?;
            unsupported(best_effort, "--best-effort", why)?;
            unsupported(mode != RestoreModeArg::Auto, "--mode", why)?;
            unsupported(
                listen.is_some() || advertise.is_some(),
                "--listen/--advertise",
                why,
            )?;
            if keys.is_none() && !yes {
                bail!(
                    "a whole-instance restore overwrites the instance's data; add --yes to go ahead"
                );
            }
            let password = match confirm_password_env {
                Some(var) => Some(std::env::var(&var).with_context(|| {
                    format!("--confirm-password-env names `{var}`, which is not set")
                })?),
                None => None,
            };
            let body = json!({
                "mode": if keys.is_some() { "keys" } else { "in-place" },
                "keys": keys,
                "db": db,
                "password": password,
                "no_replace": no_replace,
            });
            restore_task(c, &backup, &body, json).await
        }
        Command::Clone {
            backup,
            target,
            target_password_env,
            force,
            spawn,
            port,
            dir,
            json,
            ..
        } => {
            let why = "the daemon clones with its own settings";
            unsupported(target_password_env.is_some(), "--target-password-env", why)?;
            unsupported(force, "--force", why)?;
            let body = if spawn {
                let (Some(port), Some(dir)) = (port, dir) else {
                    bail!(
                        "with --server, --spawn needs --port and --dir (on the daemon's machine)"
                    );
                };
                let dir = if dir.is_absolute() {
                    dir
                } else {
                    std::env::current_dir()?.join(dir)
                };
                json!({ "mode": "clone", "spawn_port": port, "spawn_dir": dir })
            } else {
                json!({ "mode": "clone", "target": target })
            };
            restore_task(c, &backup, &body, json).await
        }
        Command::Tasks {
            instance,
            id,
            limit,
            json,
        } => {
            if let Some(id) = id {
                return print_json(&c.get(&format!("/tasks/{}", encode(&id))).await?);
            }
            let mut path = format!("/tasks?limit={limit}");
            if let Some(i) = instance {
                path.push_str(&format!("&instance={}", encode(&i)));
            }
            let list = c.get(&path).await?;
            if json {
                return print_json(&list);
            }
            println!(
                "{:<34}  {:<8}  {:<12}  {:<10}  {:<24}  ERROR",
                "ID", "KIND", "INSTANCE", "STATE", "STARTED"
            );
            for t in list.as_array().into_iter().flatten() {
                println!(
                    "{:<34}  {:<8}  {:<12}  {:<10}  {:<24}  {}",
                    t["id"].as_str().unwrap_or_default(),
                    t["kind"].as_str().unwrap_or_default(),
                    t["instance"].as_str().unwrap_or("-"),
                    t["state"].as_str().unwrap_or_default(),
                    t["started_at"].as_str().unwrap_or("-"),
                    t["error"].as_str().unwrap_or("")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Link {
            backup,
            network,
            json,
        } => {
            let l = c
                .post(
                    &format!("/backups/{}/download-link", encode(&backup)),
                    &json!({ "network": network }),
                )
                .await?;
            if json {
                return print_json(&l);
            }
            println!("{}", l["url"].as_str().unwrap_or_default());
            eprintln!("expires at {}", l["expires_at"].as_str().unwrap_or("?"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy {
            instance,
            weekdays,
            window,
            retention_days,
            json,
        } => {
            let path = format!("/instances/{}/policy", encode(&instance));
            let mut policy = c.get(&path).await?["policy"].clone();
            let changing = weekdays.is_some() || window.is_some() || retention_days.is_some();
            if let Some(w) = weekdays {
                policy["weekdays"] = w
                    .split(',')
                    .map(|d| Value::String(d.trim().to_lowercase()))
                    .collect();
            }
            if let Some(w) = window {
                let (a, b) = crate::config::parse_window(&w).with_context(|| {
                    format!("--window `{w}`: write HH:MM-HH:MM, e.g. 02:00-08:00")
                })?;
                policy["window_start"] = serde_json::to_value(a)?;
                policy["window_end"] = serde_json::to_value(b)?;
            }
            if let Some(d) = retention_days {
                policy["retention_days"] = json!(d);
            }
            if changing {
                policy = c.put(&path, &policy).await?["policy"].clone();
            }
            if json {
                return print_json(&policy);
            }
            let hm = |v: &Value| format!("{:02}:{:02}", v["hour"], v["minute"]);
            println!(
                "{instance}: {} {}-{}, kept {} days",
                policy["weekdays"]
                    .as_array()
                    .map(|a| a
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(","))
                    .unwrap_or_default(),
                hm(&policy["window_start"]),
                hm(&policy["window_end"]),
                policy["retention_days"]
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Reload { json } => {
            let r = c.post("/plugins/reload", &json!({})).await?;
            if json {
                return print_json(&r);
            }
            println!(
                "reloaded: {} plugins, {} instances",
                r["plugins"].as_object().map_or(0, |o| o.len()),
                r["instances"]
            );
            for k in r["kept_previous"].as_array().into_iter().flatten() {
                println!(
                    "kept the previous {}: the new one was refused: {}",
                    k["name"].as_str().unwrap_or("?"),
                    k["error"].as_str().unwrap_or("")
                );
            }
            let failed = r["kept_previous"].as_array().is_some_and(|a| !a.is_empty())
                || r["refused"].as_array().is_some_and(|a| !a.is_empty());
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Sweep { json } => {
            let r = c.post("/sweep", &json!({})).await?;
            if json {
                return print_json(&r);
            }
            let deleted = r["deleted"].as_array().cloned().unwrap_or_default();
            println!("{} backups past their retention deleted", deleted.len());
            for d in deleted {
                println!("  {}", d.as_str().unwrap_or_default());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Catalog {
            command: CatalogCommand::Rebuild { json, .. },
        } => {
            let s: crate::daemon::rebuild::RebuildSummary =
                serde_json::from_value(c.post("/catalog/rebuild", &json!({})).await?)?;
            super::catalog_cmd::print(&s, c.base(), json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Catalog {
            command: CatalogCommand::Check { json, .. },
        } => {
            let r = serde_json::from_value(c.get("/catalog/check").await?)?;
            super::catalog_cmd::print_check(&r, json)
        }
        Command::Catalog {
            command: CatalogCommand::Cleanup { json, .. },
        } => {
            let r = serde_json::from_value(c.post("/catalog/cleanup", &json!({})).await?)?;
            super::catalog_cmd::print_cleanup(&r, json)
        }
        Command::Config {
            command: ConfigCommand::Check { json, .. },
        } => super::config_cmd::print_view(&c.get("/config").await?, json),
        Command::Plugin {
            command: PluginCommand::List { json, .. },
        } => {
            let r = c.get("/plugins").await?;
            if json {
                return print_json(&r);
            }
            println!(
                "{:<20}  {:<8}  {:<24}  SHA256",
                "NAME", "KIND", "IMPLEMENTS"
            );
            for p in r["plugins"].as_array().into_iter().flatten() {
                println!(
                    "{:<20}  {:<8}  {:<24}  {}",
                    p["name"].as_str().unwrap_or_default(),
                    p["kind"].as_str().unwrap_or_default(),
                    p["implements"].as_str().unwrap_or_default(),
                    p["sha256"].as_str().unwrap_or_default()
                );
            }
            for p in r["refused"].as_array().into_iter().flatten() {
                println!(
                    "REFUSED {}: {}",
                    p["folder"].as_str().unwrap_or_default(),
                    p["error"].as_str().unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin {
            command:
                PluginCommand::Check {
                    folder,
                    set,
                    storage,
                    json,
                    ..
                },
        } => match (folder, storage) {
            // A folder is on this machine: checked here.
            (Some(folder), _) => {
                super::plugin_cmd::check(Some(folder), set, None, None, json).await
            }
            (None, Some(name)) => {
                let r = c
                    .post(&format!("/storages/{}/check", encode(&name)), &json!({}))
                    .await?;
                if json {
                    print_json(&r)?;
                } else {
                    for check in r["results"].as_array().into_iter().flatten() {
                        println!(
                            "{}  {}  {}",
                            if check["passed"] == true {
                                "ok  "
                            } else {
                                "FAIL"
                            },
                            check["name"].as_str().unwrap_or_default(),
                            check["detail"].as_str().unwrap_or_default()
                        );
                    }
                }
                let passed = r["results"]
                    .as_array()
                    .is_some_and(|a| a.iter().all(|c| c["passed"] == true));
                Ok(if passed {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                })
            }
            (None, None) => bail!("give a plugin folder, or --storage NAME of the daemon"),
        },
    }
}

async fn restore_task(
    c: &Client,
    backup: &str,
    body: &Value,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let r = c
        .post(&format!("/backups/{}/restore", encode(backup)), body)
        .await?;
    let task = r["task"].as_str().unwrap_or_default().to_string();
    let label = format!("{} of {backup}", body["mode"].as_str().unwrap_or("restore"));
    let t = wait(c, &label, &task).await?;
    if json {
        return print_json(&t);
    }
    println!(
        "{label} done: {} bytes, {} keys (task {task})",
        t["bytes_done"], t["keys_done"]
    );
    Ok(ExitCode::SUCCESS)
}
