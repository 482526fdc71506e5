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
    let clock: Arc<dyn crate::schedule::Clock> = Arc::new(crate::schedule::SystemClock);
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
