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
    let addr = listen.unwrap_or(config.daemon.listen);
    let daemon = Daemon::start(config).await?;
    let state = Arc::new(daemon.state());
    let clock = clock()?;
    let service = crate::daemon::boot::service(&daemon, clock).await?;
    let token = crate::daemon::boot::api_token(&daemon)?;
    crate::daemon::boot::start_background(&service).await;
    tracing::info!(
        plugins = state.plugins.len(),
        refused = state.refused_plugins.len(),
        storages_ready = daemon.storages.len(),
        storages_failed = daemon.storage_errors.len(),
        "daemon started"
    );
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr}; pick a free address with --listen or daemon.listen")
    })?;
    tracing::info!("REST API on http://{}", listener.local_addr()?);
    let api = crate::api::routes::Api {
        service,
        token: Arc::new(token),
    };
    axum::serve(listener, crate::api::router(state, Some(api)))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the API server failed")?;
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
