//! Restores and clones as the service runs them: the provider's rules at
//! the door (modes, password confirmations, targets), then a task that
//! verifies and restores. Must not speak Redis itself: `restore` does.

use super::*;

impl Service {
    /// Checks a restore against the provider's rules, then starts it.
    pub fn restore(
        self: &Arc<Self>,
        backup_id: &str,
        req: RestoreRequest,
    ) -> Result<String, ServiceError> {
        let b = self.backup_record(backup_id)?;
        let m = self.instance(&b.instance)?;
        if let Some(p) = &m.provider {
            let d = p.descriptor();
            if !d.restore_modes.contains(&req.mode) {
                return Err(ServiceError::Forbidden(format!(
                    "{} does not offer a {} restore; it offers: {}",
                    d.display_name,
                    mode_word(req.mode),
                    d.restore_modes
                        .iter()
                        .map(|m| mode_word(*m))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            if d.password_confirms.contains(&req.mode) {
                let expected = m
                    .config
                    .password
                    .as_ref()
                    .map(|s| s.expose().as_bytes().to_vec());
                let given = req.password.as_deref().map(str::as_bytes);
                let ok = match (expected.as_deref(), given) {
                    (Some(e), Some(g)) => crate::links::same_secret(e, g),
                    (None, Some(g)) => g.is_empty(),
                    _ => false,
                };
                if !ok {
                    return Err(ServiceError::Forbidden(format!(
                        "a {} restore of instance '{}' needs the instance password as confirmation; the password given {}",
                        mode_word(req.mode),
                        m.config.name,
                        if req.password.is_some() {
                            "does not match"
                        } else {
                            "is missing"
                        }
                    )));
                }
            }
        }
        if req.target.is_some() && req.mode != RestoreMode::Clone {
            return Err(ServiceError::BadRequest(
                "`target` is for a clone; an in-place or keys restore goes into the instance itself"
                    .into(),
            ));
        }
        let manifest = self.manifest_of(&b)?;
        let storage = self.storage(&b.storage)?;
        let (kind, activity): (TaskKind, fn(String, String) -> Activity) = match req.mode {
            RestoreMode::InPlace => (TaskKind::Restore, |task, backup_id| {
                Activity::RecoveringByBackup { task, backup_id }
            }),
            RestoreMode::Keys => (TaskKind::Restore, |task, backup_id| {
                Activity::RecoveringByKey { task, backup_id }
            }),
            RestoreMode::Clone => (TaskKind::Clone, |task, backup_id| Activity::Cloning {
                task,
                backup_id,
            }),
        };
        let scope = match req.mode {
            RestoreMode::InPlace => crate::restore::Scope::WholeInPlace,
            RestoreMode::Keys => crate::restore::Scope::Keys {
                filter: crate::restore::KeyFilter::parse(req.keys.as_deref().unwrap_or(""))
                    .ok_or_else(|| {
                        ServiceError::BadRequest(
                            "a keys restore needs `keys`, e.g. \"k1;k2;user:*\"".into(),
                        )
                    })?,
                db: req.db,
            },
            RestoreMode::Clone => {
                if req.target.is_none() && req.spawn_port.is_none() {
                    return Err(ServiceError::BadRequest(
                        "a clone needs `target` (an empty Redis) or `spawn_port` and `spawn_dir` (a new local redis-server)".into(),
                    ));
                }
                if let Some(d) = &req.spawn_dir
                    && !plain_absolute(d)
                {
                    return Err(ServiceError::BadRequest(format!(
                        "`spawn_dir` is {:?}; give an absolute path on the daemon's machine, \
                         without `.` or `..` parts or NUL",
                        d.display()
                    )));
                }
                crate::restore::Scope::CloneInto { force: false }
            }
        };
        let task = self.tasks.start(NewTask {
            kind,
            instance: Some(&m.config.name),
            backup_id: Some(backup_id),
            activity: Some(activity),
            detail: serde_json::json!({
                "mode": mode_word(req.mode),
                "keys": req.keys,
                "target": req.target,
                "spawn_port": req.spawn_port,
            }),
        })?;
        let id = task.id.clone();
        tokio::spawn(async move {
            let progress = Arc::new(crate::restore::Progress::default());
            let p = progress.clone();
            task.progress
                .follow(move || (p.raw_bytes.load(Relaxed), p.keys.load(Relaxed)));
            task.progress
                .bytes_total
                .store(manifest.data.raw_bytes, Relaxed);
            let r: Result<serde_json::Value, String> = async {
                if req.mode == RestoreMode::Clone && req.target.is_none() {
                    let port = req.spawn_port.unwrap_or_default();
                    let dir = req
                        .spawn_dir
                        .clone()
                        .ok_or("a spawned clone needs `spawn_dir`")?;
                    let opts = crate::restore::spawn::SpawnOptions {
                        redis_server: "redis-server".into(),
                        port,
                        dir,
                        bind: "127.0.0.1".into(),
                    };
                    let s = crate::restore::spawn::clone_to_new_server(storage, &manifest, &opts)
                        .await
                        .map_err(|e| e.to_string())?;
                    return serde_json::to_value(s).map_err(|e| e.to_string());
                }
                let addr = req
                    .target
                    .clone()
                    .unwrap_or_else(|| m.config.address.clone());
                let mut ep = crate::backup::endpoint_for(&m.config, &addr);
                if req.target.is_some() {
                    // The instance's credentials never go to another address.
                    ep.username = None;
                    ep.password = req.target_password.clone().map(crate::config::Secret::new);
                    ep.tls = m.config.target_tls.clone();
                }
                let opts = crate::restore::Options {
                    scope,
                    replace: !req.no_replace,
                    best_effort: false,
                };
                let report = crate::restore::run(storage, &manifest, &ep, opts, progress.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                serde_json::to_value(report).map_err(|e| e.to_string())
            }
            .await;
            match r {
                Ok(v) => task.succeed(Some(v)),
                Err(e) => task.fail(e, None),
            }
        });
        Ok(id)
    }
}
