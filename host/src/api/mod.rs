//! The REST API served by `redback serve` (axum).
//!
//! Owns: routes, JSON shapes and HTTP status codes. Must not: run backups
//! or talk to plugins itself; it reads the daemon state it is handed.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};

pub mod client;
pub mod routes;
use serde::Serialize;

use crate::plugin::{LoadedPlugin, Refused};

/// A plugin as the API and `plugin list --json` show it.
#[derive(Debug, Clone, Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub kind: crate::plugin::Kind,
    pub implements: String,
    pub sha256: String,
    pub description: String,
    pub capabilities: crate::plugin::manifest::Capabilities,
    pub compiled: crate::plugin::Source,
    pub load_ms: f64,
}

impl From<&LoadedPlugin> for PluginInfo {
    fn from(p: &LoadedPlugin) -> Self {
        let m = &p.manifest;
        PluginInfo {
            name: m.name.clone(),
            kind: m.kind,
            implements: m.implements.clone(),
            sha256: m.sha256.clone(),
            description: m.description.clone(),
            capabilities: m.capabilities.clone(),
            compiled: p.source,
            load_ms: (p.load_time.as_secs_f64() * 1e4).round() / 10.0,
        }
    }
}

/// A configured storage and whether it opened.
#[derive(Debug, Clone, Serialize)]
pub struct StorageStatus {
    pub name: String,
    pub plugin: String,
    pub ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What the daemon knows, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DaemonState {
    pub version: &'static str,
    pub plugins: Vec<PluginInfo>,
    pub refused_plugins: Vec<Refused>,
    pub storages: Vec<StorageStatus>,
}

#[derive(Serialize)]
struct Health<'a> {
    /// `ok` when every plugin loaded and every storage opened, else `degraded`.
    status: &'static str,
    #[serde(flatten)]
    state: &'a DaemonState,
}

async fn health(State(state): State<Arc<DaemonState>>) -> axum::Json<serde_json::Value> {
    let degraded = !state.refused_plugins.is_empty() || state.storages.iter().any(|s| !s.ready);
    let body = Health {
        status: if degraded { "degraded" } else { "ok" },
        state: &state,
    };
    axum::Json(serde_json::to_value(body).unwrap_or_default())
}

/// The router of the API: `/health` alone (from a fixed state), or with a
/// service, every route (`/health` then shows the state in force, reloads
/// included).
pub fn router(state: Arc<DaemonState>, api: Option<routes::Api>) -> Router {
    let Some(api) = api else {
        return Router::new()
            .route("/health", get(health))
            .with_state(state);
    };
    use routes::*;
    let authed = Router::new()
        .route("/instances", get(list_instances))
        .route("/instances/{name}", get(get_instance))
        .route("/instances/{name}/policy", get(get_policy).put(set_policy))
        .route(
            "/instances/{name}/backups",
            get(list_backups).post(backup_now),
        )
        .route("/backups/{id}", get(get_backup))
        .route("/backups/{id}/restore", post(restore))
        .route("/backups/{id}/download-link", post(download_link))
        .route("/tasks", get(list_tasks))
        .route("/tasks/{id}", get(get_task))
        .route("/sweep", post(sweep))
        .route("/plugins", get(list_plugins))
        .route("/plugins/reload", post(reload))
        .route("/catalog/rebuild", post(rebuild_catalog))
        .route("/config", get(get_config))
        .route("/backups/{id}/verify", post(verify_backup))
        .route("/backups/{id}/inspect", get(inspect_backup))
        .route("/storages/{name}/check", post(check_storage))
        .route_layer(axum::middleware::from_fn_with_state(
            api.clone(),
            require_token,
        ))
        .with_state(api.clone());
    let open = Router::new()
        .route("/health", get(live_health))
        .route("/download/{token}", get(download))
        .with_state(api);
    authed.merge(open)
}

/// `/health` of a running daemon: the state in force since the last reload.
async fn live_health(State(api): State<routes::Api>) -> axum::Json<serde_json::Value> {
    health(State(Arc::new(api.service.live().state()))).await
}
