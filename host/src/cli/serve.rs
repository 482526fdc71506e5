//! `redback serve`: the daemon.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::config::Config;
use crate::daemon::Daemon;

pub(super) async fn run(
    config_path: &Path,
    listen: Option<SocketAddr>,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    if let Some(p) = crate::crash_point::armed().map_err(anyhow::Error::msg)? {
        tracing::warn!(
            "{}={p}: the daemon kills itself with SIGKILL on reaching that point: for tests only",
            crate::crash_point::ENV
        );
    }
    let addr = listen.unwrap_or(config.daemon.listen);
    let daemon = Daemon::start(config).await?;
    let token = crate::daemon::boot::api_token(&daemon)?;
    let (plugins, refused, ready, failed) = (
        daemon.plugins.loaded.len(),
        daemon.plugins.refused.len(),
        daemon.storages.len(),
        daemon.storage_errors.len(),
    );
    let state = Arc::new(daemon.state());
    let clock = clock()?;
    let service = crate::daemon::boot::service(daemon, clock).await?;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr}; pick a free address with --listen or daemon.listen")
    })?;
    crate::daemon::boot::start_background(&service).await;
    tracing::info!(
        plugins,
        refused,
        storages_ready = ready,
        storages_failed = failed,
        "daemon started"
    );
    #[cfg(unix)]
    reload_on_sighup(service.clone())?;
    tracing::info!("REST API on http://{}", listener.local_addr()?);
    let api = crate::api::routes::Api {
        service: service.clone(),
        token: Arc::new(token),
    };
    // The first signal stops the scheduler at once and lets requests in
    // flight end; a second one stops without waiting for them.
    let stopping = Arc::new(tokio::sync::Notify::new());
    let (s, n) = (service.clone(), stopping.clone());
    let server = axum::serve(listener, crate::api::router(state, Some(api)))
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            n.notify_one();
            tracing::info!(
                "stopping: no new automatic backups; waiting for requests and tasks in progress"
            );
            if let Some(h) = s.scheduler.lock().await.take() {
                tokio::spawn(h.shutdown());
            }
        });
    tokio::select! {
        r = server => r.context("the API server failed")?,
        _ = async { stopping.notified().await; shutdown_signal().await } => {
            tracing::warn!("stopping without waiting for the requests and tasks in progress");
            return Ok(ExitCode::SUCCESS);
        }
    }
    drain(&service).await;
    tracing::info!("daemon stopped");
    Ok(ExitCode::SUCCESS)
}

/// The wall clock, or for end-to-end tests a clock read from the file
/// named by `REDBACK_TEST_CLOCK_FILE` (an RFC 3339 time the test rewrites
/// to move the daemon's time). Never set it in production.
fn clock() -> anyhow::Result<Arc<dyn crate::schedule::Clock>> {
    let Some(path) = std::env::var_os("REDBACK_TEST_CLOCK_FILE") else {
        return Ok(Arc::new(crate::schedule::SystemClock));
    };
    let path = std::path::PathBuf::from(path);
    let read = move || -> anyhow::Result<jiff::Timestamp> {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("REDBACK_TEST_CLOCK_FILE: cannot read {}", path.display()))?;
        text.trim().parse().with_context(|| {
            format!(
                "REDBACK_TEST_CLOCK_FILE: {} holds `{}`, not an RFC 3339 time",
                path.display(),
                text.trim()
            )
        })
    };
    let clock = crate::schedule::ManualClock::new(read()?);
    tracing::warn!(
        "the daemon's time comes from REDBACK_TEST_CLOCK_FILE, not the system clock: for tests only"
    );
    let c = clock.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            match read() {
                Ok(t) if t != crate::schedule::Clock::now(&c) => c.set(t),
                Ok(_) => {}
                Err(e) => tracing::error!("{e:#}"),
            }
        }
    });
    Ok(Arc::new(clock))
}

/// SIGHUP reloads the config and the plugin directory; a failed reload
/// is logged and the daemon goes on as it was.
#[cfg(unix)]
fn reload_on_sighup(service: Arc<crate::daemon::service::Service>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the config and the plugin directory");
            match service.reload().await {
                Ok(r) if r.kept_previous.is_empty() && r.refused.is_empty() => {}
                Ok(r) => tracing::error!(
                    kept_previous = ?r.kept_previous,
                    refused = ?r.refused,
                    "reloaded, with plugins refused"
                ),
                Err(e) => tracing::error!("reload failed: {e}"),
            }
        }
    });
    Ok(())
}

/// After the stop signal: no new automatic backups, and the tasks in
/// progress run to their end, unless a second signal says not to wait.
async fn drain(service: &crate::daemon::service::Service) {
    let running = service.tasks.running_count();
    if running > 0 {
        tracing::warn!(
            running,
            "waiting for the tasks in progress to end; signal again to stop now (they are then marked failed at the next start)"
        );
    }
    let wait = async {
        // The scheduler starts nothing more and waits for its attempts.
        if let Some(h) = service.scheduler.lock().await.take() {
            h.shutdown().await;
        }
        while service.tasks.running_count() > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    };
    tokio::select! {
        _ = wait => {}
        _ = shutdown_signal() => tracing::warn!("stopping without waiting for the tasks in progress"),
    }
    service.tasks.flush_progress();
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
