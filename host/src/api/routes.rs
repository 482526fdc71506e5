//! The daemon's REST routes over the service: instances, policies,
//! backups, restores, download links, tasks. Every route but `/health` and
//! `/download/<token>` (which carries its own signed token) needs the
//! bearer token.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::backup::Kind;
use crate::catalog::{BackupQuery, TaskQuery};
use crate::daemon::service::{RestoreRequest, Service, ServiceError};
use crate::provider::Policy;
use crate::storage::Network;

/// What every route can reach.
#[derive(Clone)]
pub struct Api {
    pub service: Arc<Service>,
    /// The bearer token, compared in constant time.
    pub token: Arc<Vec<u8>>,
}

/// A JSON error with a stable code.
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "error": { "code": self.code, "message": self.message } })),
        )
            .into_response()
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let (status, code) = match &e {
            ServiceError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ServiceError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden_by_provider"),
            ServiceError::Conflict(_) => (StatusCode::CONFLICT, "busy"),
            ServiceError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ServiceError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ServiceError::Damaged(_) => (StatusCode::UNPROCESSABLE_ENTITY, "backup_damaged"),
            ServiceError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

type ApiResult = Result<Response, ApiError>;

fn ok(v: impl serde::Serialize) -> ApiResult {
    Ok(Json(v).into_response())
}

/// Refuses requests without the bearer token.
pub async fn require_token(State(api): State<Api>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::as_bytes);
    match given {
        Some(g) if crate::links::same_secret(g, &api.token) => next.run(req).await,
        Some(_) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_token",
            "the bearer token does not match the daemon's",
        )
        .into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "no_token",
            "send `Authorization: Bearer <token>` (the daemon's token: REDBACK_API_TOKEN, daemon.api_token_file, or the api-token file in its state directory)",
        )
        .into_response(),
    }
}

/// One instance; `with_rules` adds the provider's whole rule set (the
/// single-instance view; the list leaves it out, it is the same for every
/// instance of a provider and would be most of a 10,000-instance reply).
fn instance_view(
    service: &Service,
    m: &crate::daemon::service::Managed,
    with_rules: bool,
) -> Value {
    let activity = service.tasks.activity(&m.config.name);
    let descriptor = m.provider.as_ref().map(|p| p.descriptor());
    let state_label = match (descriptor, &activity) {
        (Some(d), None) => d.labels.running.as_str(),
        (Some(d), Some(a)) => match a {
            crate::tasks::Activity::BackingUp { .. } => d.labels.backing_up.as_str(),
            crate::tasks::Activity::RecoveringByBackup { .. } => {
                d.labels.recovering_by_backup.as_str()
            }
            crate::tasks::Activity::RecoveringByKey { .. } => d.labels.recovering_by_key.as_str(),
            crate::tasks::Activity::Cloning { .. } => d.labels.cloning.as_str(),
        },
        (None, None) => "running",
        (None, Some(_)) => "busy",
    };
    let mut v = json!({
        "name": m.config.name,
        "address": m.config.address,
        "storage": m.config.storage,
        "archive_storage": m.config.archive_storage,
        "provider": m.config.provider,
        "timezone": m.tz.iana_name(),
        "state": activity.as_ref().map(|a| serde_json::to_value(a).unwrap_or_default()).unwrap_or(json!({"state": "running"})),
        "state_label": state_label,
        "policy": *m.policy.read().unwrap_or_else(|p| p.into_inner()),
    });
    if with_rules && let Some(o) = v.as_object_mut() {
        o.insert(
            "provider_rules".into(),
            serde_json::to_value(descriptor).unwrap_or_default(),
        );
    }
    v
}

pub async fn list_instances(State(api): State<Api>) -> ApiResult {
    // Serialised one instance at a time into one buffer: no tree of the
    // whole list is ever held.
    let live = api.service.live();
    let mut out = Vec::with_capacity(live.instances.len() * 512);
    out.push(b'[');
    for (i, m) in live.instances.values().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, &instance_view(&api.service, m, false))
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
    }
    out.push(b']');
    Ok(([(header::CONTENT_TYPE, "application/json")], out).into_response())
}

pub async fn get_instance(State(api): State<Api>, Path(name): Path<String>) -> ApiResult {
    let m = api.service.instance(&name)?;
    ok(instance_view(&api.service, &m, true))
}

pub async fn get_policy(State(api): State<Api>, Path(name): Path<String>) -> ApiResult {
    let m = api.service.instance(&name)?;
    ok(json!({ "policy": *m.policy.read().unwrap_or_else(|p| p.into_inner()) }))
}

pub async fn set_policy(
    State(api): State<Api>,
    Path(name): Path<String>,
    Json(policy): Json<Policy>,
) -> ApiResult {
    let accepted = api.service.set_policy(&name, policy).await?;
    api.service.policies_changed().await;
    ok(json!({ "policy": accepted }))
}

#[derive(Debug, Deserialize)]
pub struct BackupsQuery {
    /// RFC 3339 times: backups started at or after `from`, before `to`.
    from: Option<String>,
    to: Option<String>,
    /// `automatic` or `manual`.
    kind: Option<Kind>,
    limit: Option<u32>,
}

fn time(field: &str, v: Option<String>) -> Result<Option<jiff::Timestamp>, ApiError> {
    v.map(|s| {
        s.parse().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("`{field}` is `{s}`; write an RFC 3339 time such as 2026-11-21T02:00:00Z"),
            )
        })
    })
    .transpose()
}

pub async fn list_backups(
    State(api): State<Api>,
    Path(name): Path<String>,
    Query(q): Query<BackupsQuery>,
) -> ApiResult {
    api.service.instance(&name)?;
    let rows = api.service.list_backups(&BackupQuery {
        instance: Some(name),
        from: time("from", q.from)?,
        to: time("to", q.to)?,
        kind: q.kind,
        status: Some(crate::catalog::BackupStatus::Complete),
        limit: q.limit,
        ..Default::default()
    })?;
    ok(rows.iter().map(backup_view).collect::<Vec<_>>())
}

fn backup_view(b: &crate::catalog::BackupRecord) -> Value {
    json!({
        "id": b.id,
        "instance": b.instance,
        "storage": b.storage,
        "kind": b.kind,
        "name": b.name,
        "started_at": b.started_at.to_string(),
        "finished_at": b.finished_at.map(|t| t.to_string()),
        "status": b.status.to_string(),
        "stored_bytes": b.stored_bytes,
        "raw_bytes": b.raw_bytes,
        "source_address": b.source_address,
        "source_role": b.source_role,
        "redis_version": b.redis_version,
        "rdb_version": b.rdb_version,
        "sha256": b.sha256,
        "retention_until": b.retention_until.map(|t| t.to_string()),
        "archived": b.archived.as_ref().map(|a| json!({"storage": a.storage, "at": a.at.to_string()})),
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct BackupNow {
    /// The name (JD style) or remark (Tencent style) of the backup.
    name: Option<String>,
    remark: Option<String>,
}

pub async fn backup_now(
    State(api): State<Api>,
    Path(name): Path<String>,
    body: Option<Json<BackupNow>>,
) -> ApiResult {
    let b = body.map(|Json(b)| b).unwrap_or_default();
    let task = api.service.backup_now(&name, b.name.or(b.remark))?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "task": task }))).into_response())
}

pub async fn get_backup(State(api): State<Api>, Path(id): Path<String>) -> ApiResult {
    ok(backup_view(&api.service.backup_record(&id)?))
}

pub async fn restore(
    State(api): State<Api>,
    Path(id): Path<String>,
    Json(req): Json<RestoreRequest>,
) -> ApiResult {
    let task = api.service.restore(&id, req)?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "task": task }))).into_response())
}

#[derive(Debug, Deserialize)]
pub struct LinkRequest {
    network: Option<Network>,
}

pub async fn download_link(
    State(api): State<Api>,
    Path(id): Path<String>,
    body: Option<Json<LinkRequest>>,
) -> ApiResult {
    let network = body
        .and_then(|Json(b)| b.network)
        .unwrap_or(Network::Public);
    ok(api.service.download_link(&id, network).await?)
}

#[derive(Debug, Deserialize)]
pub struct DownloadQuery {
    /// `rdb`: decompress on the fly into a plain RDB file.
    format: Option<String>,
}

/// Serves a backup's data object to the holder of a valid link, streamed.
pub async fn download(
    State(api): State<Api>,
    Path(token): Path<String>,
    Query(q): Query<DownloadQuery>,
) -> ApiResult {
    let now = api.service.clock.now().as_second();
    let id = api
        .service
        .links
        .check(&token, now)
        .map_err(|e| ApiError::new(StatusCode::FORBIDDEN, "bad_link", e.to_string()))?;
    let plain = match q.format.as_deref() {
        None | Some("stored") => false,
        Some("rdb") => true,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("format `{other}` is not one of `rdb`, `stored`"),
            ));
        }
    };
    let (stream, name, len) = api.service.download_stream(&id, plain).await?;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        "application/octet-stream".parse().expect("static header"),
    );
    if let Ok(v) = format!("attachment; filename=\"{name}\"").parse() {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(len) = len
        && let Ok(v) = len.to_string().parse()
    {
        headers.insert(header::CONTENT_LENGTH, v);
    }
    Ok((headers, Body::from_stream(stream)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct TasksQuery {
    instance: Option<String>,
    limit: Option<u32>,
}

pub async fn list_tasks(State(api): State<Api>, Query(q): Query<TasksQuery>) -> ApiResult {
    let tasks = api
        .service
        .tasks
        .list(&TaskQuery {
            instance: q.instance,
            limit: q.limit.or(Some(100)),
            ..Default::default()
        })
        .map_err(ServiceError::from)?;
    ok(tasks.iter().map(task_view).collect::<Vec<_>>())
}

fn task_view(t: &crate::catalog::TaskRecord) -> Value {
    json!({
        "id": t.id,
        "kind": t.kind.to_string(),
        "instance": t.instance,
        "backup_id": t.backup_id,
        "state": t.state.to_string(),
        "bytes_done": t.bytes_done,
        "bytes_total": t.bytes_total,
        "keys_done": t.keys_done,
        "created_at": t.created_at.to_string(),
        "started_at": t.started_at.map(|x| x.to_string()),
        "ended_at": t.ended_at.map(|x| x.to_string()),
        "error": t.error,
        "detail": t.detail,
    })
}

pub async fn get_task(State(api): State<Api>, Path(id): Path<String>) -> ApiResult {
    match api.service.tasks.get(&id).map_err(ServiceError::from)? {
        Some(t) => ok(task_view(&t)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no task '{id}'"),
        )),
    }
}

pub async fn sweep(State(api): State<Api>) -> ApiResult {
    let deleted = api.service.sweep().await?;
    ok(json!({ "deleted": deleted }))
}

pub async fn list_plugins(State(api): State<Api>) -> ApiResult {
    let state = api.service.live().state();
    ok(json!({ "plugins": state.plugins, "refused": state.refused_plugins }))
}

/// Reloads the config file and the plugin directory (as SIGHUP does).
pub async fn reload(State(api): State<Api>) -> ApiResult {
    ok(api.service.reload().await?)
}

/// Makes the catalog's backup list again from the manifests in storage.
pub async fn rebuild_catalog(State(api): State<Api>) -> ApiResult {
    let live = api.service.live();
    let summary =
        crate::daemon::rebuild::rebuild_catalog(&live.config, &live.storages, &api.service.catalog)
            .await
            .map_err(|e| ServiceError::Unavailable(format!("{e:#}")))?;
    ok(summary)
}

/// The catalog held against the storages (`agree` says whether they do).
pub async fn check_catalog(State(api): State<Api>) -> ApiResult {
    ok(api.service.check_catalog().await?)
}

/// Repairs what the check finds that can be repaired, deletes orphans.
pub async fn cleanup_catalog(State(api): State<Api>) -> ApiResult {
    ok(api.service.cleanup_catalog().await?)
}

/// The config in force, resolved, secrets masked, with its problems.
pub async fn get_config(State(api): State<Api>) -> ApiResult {
    let view = crate::daemon::config_view::resolved_view(&api.service.live().config)
        .await
        .map_err(|e| ServiceError::Internal(format!("{e:#}")))?;
    ok(view)
}

pub async fn verify_backup(State(api): State<Api>, Path(id): Path<String>) -> ApiResult {
    ok(api.service.verify(&id).await?)
}

#[derive(Debug, Deserialize)]
pub struct InspectQuery {
    /// Patterns of keys to list: `user:*;k1`.
    keys: Option<String>,
    top: Option<usize>,
}

pub async fn inspect_backup(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(q): Query<InspectQuery>,
) -> ApiResult {
    ok(api
        .service
        .inspect(&id, q.keys.as_deref(), q.top.unwrap_or(10))
        .await?)
}

/// The conformance kit against one of the daemon's storages.
pub async fn check_storage(State(api): State<Api>, Path(name): Path<String>) -> ApiResult {
    ok(api.service.check_storage(&name).await?)
}
