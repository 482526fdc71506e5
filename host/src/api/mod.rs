//! The REST API served by `redback serve` (axum).
//!
//! Owns: routes, JSON shapes and HTTP status codes, the OpenAPI document
//! (`openapi.json`, served at `/openapi.json`) and `/metrics`. Must not: run
//! backups or talk to plugins itself; it reads the daemon state it is
//! handed.
//!
//! Invariant: [`mounted_routes`] lists every (method, path) the router
//! mounts, the router is built from that list, and a test holds the list
//! and the OpenAPI document to each other.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::handler::Handler;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, get};

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

/// The OpenAPI 3.1 document of every route in [`mounted_routes`].
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// The Prometheus text: counters since the daemon started, gauges read
/// from the task center and the catalog now.
async fn metrics(State(api): State<routes::Api>) -> Response {
    let service = api.service.clone();
    let text = tokio::task::spawn_blocking(move || {
        service
            .tasks
            .metrics_text(service.live().instances.keys().cloned())
    })
    .await;
    let internal =
        |m: String| routes::ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", m);
    match text {
        Ok(Ok(text)) => {
            ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
        }
        Ok(Err(e)) => internal(e.to_string()).into_response(),
        Err(e) => internal(format!("reading the metrics stopped: {e}")).into_response(),
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Anyone: `/health`, and `/download/{token}`, whose path carries its
    /// own signed token.
    Open,
    /// Holders of the daemon's bearer token.
    Token,
}

/// A route served with a service.
struct Mount {
    access: Access,
    method: Method,
    path: &'static str,
    handler: MethodRouter<routes::Api>,
}

fn mount<H, T>(access: Access, method: Method, path: &'static str, handler: H) -> Mount
where
    H: Handler<T, routes::Api>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("a method axum can route");
    Mount {
        access,
        method,
        path,
        handler: axum::routing::on(filter, handler),
    }
}

/// The routes served only with a service: the router mounts exactly these,
/// one method each, so the method written here is the one served.
fn service_routes() -> Vec<Mount> {
    use Access::{Open, Token};
    use routes::*;
    vec![
        mount(Token, Method::GET, "/openapi.json", openapi),
        mount(Token, Method::GET, "/metrics", metrics),
        mount(Token, Method::GET, "/instances", list_instances),
        mount(Token, Method::GET, "/instances/{name}", get_instance),
        mount(Token, Method::GET, "/instances/{name}/policy", get_policy),
        mount(Token, Method::PUT, "/instances/{name}/policy", set_policy),
        mount(
            Token,
            Method::GET,
            "/instances/{name}/backups",
            list_backups,
        ),
        mount(Token, Method::POST, "/instances/{name}/backups", backup_now),
        mount(Token, Method::GET, "/backups/{id}", get_backup),
        mount(Token, Method::POST, "/backups/{id}/restore", restore),
        mount(
            Token,
            Method::POST,
            "/backups/{id}/download-link",
            download_link,
        ),
        mount(Token, Method::GET, "/tasks", list_tasks),
        mount(Token, Method::GET, "/tasks/{id}", get_task),
        mount(Token, Method::POST, "/sweep", sweep),
        mount(Token, Method::GET, "/plugins", list_plugins),
        mount(Token, Method::POST, "/plugins/reload", reload),
        mount(Token, Method::POST, "/catalog/rebuild", rebuild_catalog),
        mount(Token, Method::GET, "/catalog/check", check_catalog),
        mount(Token, Method::POST, "/catalog/cleanup", cleanup_catalog),
        mount(Token, Method::GET, "/config", get_config),
        mount(Token, Method::POST, "/backups/{id}/verify", verify_backup),
        mount(Token, Method::GET, "/backups/{id}/inspect", inspect_backup),
        mount(Token, Method::POST, "/storages/{name}/check", check_storage),
        mount(Open, Method::GET, "/download/{token}", download),
    ]
}

/// Every route the router mounts with a service: `/health` (mounted in
/// [`router`] by hand, with or without a service), then [`service_routes`].
pub fn mounted_routes() -> Vec<(Method, &'static str, Access)> {
    let mut all = vec![(Method::GET, "/health", Access::Open)];
    all.extend(
        service_routes()
            .into_iter()
            .map(|m| (m.method, m.path, m.access)),
    );
    all
}

/// The router of the API: `/health` alone, or with a service, every route
/// of [`mounted_routes`] (without a service there is no token to check, so
/// nothing else is served).
pub fn router(state: Arc<DaemonState>, api: Option<routes::Api>) -> Router {
    let Some(api) = api else {
        return Router::new()
            .route("/health", get(health))
            .with_state(state);
    };
    // With a service, /health shows the state in force since the last
    // reload.
    let base = Router::new()
        .route("/health", get(live_health))
        .with_state(api.clone());
    let (mut authed, mut open) = (Router::new(), Router::new());
    for m in service_routes() {
        // Routes of one path merge into one method router.
        match m.access {
            Access::Token => authed = authed.route(m.path, m.handler),
            Access::Open => open = open.route(m.path, m.handler),
        }
    }
    let authed = authed
        .route_layer(axum::middleware::from_fn_with_state(
            api.clone(),
            routes::require_token,
        ))
        .with_state(api.clone());
    base.merge(authed).merge(open.with_state(api))
}

/// `/health` of a running daemon: the state in force since the last reload.
async fn live_health(State(api): State<routes::Api>) -> axum::Json<serde_json::Value> {
    health(State(Arc::new(api.service.live().state()))).await
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::net::SocketAddr;

    use serde_json::Value;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::backup::Kind;
    use crate::catalog::{BackupStatus, Catalog};
    use crate::daemon::service::{Managed, Service};
    use crate::tasks::TaskCenter;

    const TOKEN: &str = "test-token";
    const METHODS: [Method; 5] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
    ];

    fn document() -> Value {
        serde_json::from_str(OPENAPI).expect("openapi.json is JSON")
    }

    /// Every (method, path) of the document, with its operation.
    fn operations(doc: &Value) -> Vec<(Method, String, Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                out.push((m, path.clone(), op.clone()));
            }
        }
        out
    }

    /// `$ref`s followed.
    fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let target = doc.pointer(r.trim_start_matches('#'));
                resolve(doc, target.unwrap_or_else(|| panic!("{r} points nowhere")))
            }
            None => v,
        }
    }

    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(r)) = o.get("$ref") {
                    out.push(r.clone());
                }
                o.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn the_document_is_openapi_3_1_and_every_ref_resolves() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(all.len() > 20, "{all:?}");
        for r in all {
            assert!(doc.pointer(r.trim_start_matches('#')).is_some(), "{r}");
        }
        for (method, path, op) in operations(&doc) {
            let declared: BTreeSet<String> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| resolve(&doc, p))
                .filter(|p| p["in"] == "path")
                .inspect(|p| assert_eq!(p["required"], true, "{method} {path}"))
                .map(|p| p["name"].as_str().unwrap().to_string())
                .collect();
            let in_path: BTreeSet<String> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .map(str::to_string)
                .collect();
            assert_eq!(declared, in_path, "path parameters of {method} {path}");
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
        }
    }

    #[test]
    fn documented_routes_are_the_mounted_ones_with_the_same_access() {
        let doc = document();
        let documented: BTreeSet<(String, String, Access)> = operations(&doc)
            .into_iter()
            .map(|(m, path, op)| {
                // The document's security is for everyone (`[]`) or the
                // global bearer requirement.
                let access = match op.get("security") {
                    Some(s) if s.as_array().is_some_and(Vec::is_empty) => Access::Open,
                    Some(other) => panic!("{m} {path}: security {other}"),
                    None => Access::Token,
                };
                (m.to_string(), path, access)
            })
            .collect();
        let mounted: BTreeSet<(String, String, Access)> = mounted_routes()
            .into_iter()
            .map(|(m, p, a)| (m.to_string(), p.to_string(), a))
            .collect();
        assert_eq!(
            mounted_routes().len(),
            mounted.len(),
            "a route is listed twice"
        );
        let undocumented: Vec<_> = mounted.difference(&documented).collect();
        let unmounted: Vec<_> = documented.difference(&mounted).collect();
        assert!(
            undocumented.is_empty() && unmounted.is_empty(),
            "mounted but not documented: {undocumented:?}; documented but not mounted: {unmounted:?}"
        );
        assert_eq!(doc["security"], serde_json::json!([{ "bearer": [] }]));
    }

    /// Every `code` routes.rs and this file answer with: the string right
    /// after a `StatusCode::X,`.
    fn codes_in_source() -> BTreeSet<String> {
        let mut codes = BTreeSet::new();
        for src in [include_str!("routes.rs"), include_str!("mod.rs")] {
            for (i, _) in src.match_indices("StatusCode::") {
                let rest = &src[i..];
                let Some(comma) = rest.find(',') else {
                    continue;
                };
                if !rest[..comma]["StatusCode::".len()..]
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_')
                {
                    continue;
                }
                let after = rest[comma + 1..].trim_start();
                if let Some(code) = after.strip_prefix('"').and_then(|a| a.split('"').next()) {
                    codes.insert(code.to_string());
                }
            }
        }
        codes
    }

    #[test]
    fn the_error_codes_documented_are_the_ones_the_routes_use() {
        let doc = document();
        let documented: BTreeSet<String> = doc["components"]["schemas"]["Error"]["properties"]
            ["error"]["properties"]["code"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        let used = codes_in_source();
        assert!(
            used.contains("not_found") && used.contains("no_token"),
            "{used:?}"
        );
        assert_eq!(documented, used);
    }

    /// A service over an in-memory catalog with one instance, `a`, whose
    /// storage is not open, and one complete backup, `b1`, without a
    /// manifest.
    fn service() -> Arc<Service> {
        let config = crate::config::Config::parse(
            "[storage.local]\nplugin = \"storage-local\"\nroot = \"backups\"\n\
             [instance.a]\naddress = \"127.0.0.1:1\"\nstorage = \"local\"\n",
            std::path::Path::new("/etc/redback/test.toml"),
            &|_| None,
        )
        .unwrap();
        let catalog = Arc::new(Catalog::open_in_memory().unwrap());
        catalog
            .upsert_backup(&crate::metrics::backup_row(
                "a",
                "b1",
                Kind::Manual,
                1_700_000_000,
                BackupStatus::Complete,
            ))
            .unwrap();
        let clock: Arc<dyn crate::schedule::Clock> = Arc::new(crate::schedule::ManualClock::new(
            jiff::Timestamp::from_second(1_700_000_100).unwrap(),
        ));
        let managed = Managed {
            config: config.instances["a"].clone(),
            provider: None,
            tz: jiff::tz::TimeZone::UTC,
            policy: std::sync::RwLock::new(None),
        };
        let live = crate::daemon::service::Live {
            config,
            plugins: Default::default(),
            storages: Default::default(),
            storage_errors: Default::default(),
            instances: [("a".to_string(), Arc::new(managed))].into(),
        };
        Arc::new(Service::new(
            live,
            Arc::new(crate::plugin::PluginHost::new(None).unwrap()),
            catalog.clone(),
            TaskCenter::new(catalog, clock.clone()),
            clock,
            crate::links::LinkKey::from_bytes([7; 32]),
        ))
    }

    async fn serve() -> SocketAddr {
        let state = Arc::new(DaemonState {
            version: "test",
            plugins: Vec::new(),
            refused_plugins: Vec::new(),
            storages: Vec::new(),
        });
        let api = routes::Api {
            service: service(),
            token: Arc::new(TOKEN.as_bytes().to_vec()),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(axum::serve(listener, router(state, Some(api))).into_future());
        addr
    }

    struct Reply {
        status: u16,
        content_type: String,
        body: String,
    }

    /// One HTTP/1.1 request on its own connection.
    async fn call(
        addr: SocketAddr,
        method: &Method,
        path: &str,
        token: bool,
        body: Option<&Value>,
    ) -> Reply {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
        if token {
            head.push_str(&format!("Authorization: Bearer {TOKEN}\r\n"));
        }
        let body = body.map(Value::to_string).unwrap_or_default();
        if !body.is_empty() {
            head.push_str("Content-Type: application/json\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        conn.write_all(head.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        conn.read_to_end(&mut raw).await.unwrap();
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let (headers, body) = raw.split_once("\r\n\r\n").expect("a whole response");
        let status = headers[9..12].parse().unwrap();
        let header = |name: &str| {
            headers.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
        };
        let body = if header("transfer-encoding").is_some_and(|v| v == "chunked") {
            dechunk(body)
        } else {
            body.to_string()
        };
        Reply {
            status,
            content_type: header("content-type").unwrap_or_default(),
            body,
        }
    }

    fn dechunk(mut body: &str) -> String {
        let mut out = String::new();
        while let Some((size, rest)) = body.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            if n == 0 {
                break;
            }
            out.push_str(&rest[..n]);
            body = &rest[n + 2..];
        }
        out
    }

    /// A documented path with its parameters filled in.
    fn concrete(path: &str) -> String {
        path.replace("{name}", "a")
            .replace("{id}", "b1")
            .replace("{token}", "not-a-signed-token")
    }

    fn essence(content_type: &str) -> &str {
        content_type.split(';').next().unwrap_or_default().trim()
    }

    #[tokio::test]
    async fn every_documented_route_answers_as_documented() {
        let doc = document();
        let addr = serve().await;
        let codes = &doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]
            ["enum"];
        for (method, path, op) in operations(&doc) {
            let what = format!("{method} {path}");
            let example = op
                .pointer("/requestBody/content/application~1json/example")
                .cloned();
            let url = concrete(&path);
            let r = call(addr, &method, &url, true, example.as_ref()).await;
            // The router answers 404 with an empty body for a path it does
            // not know, and 405 for a method it does not serve.
            assert_ne!(r.status, 405, "{what}");
            assert!(
                r.status != 404 || r.body.contains("\"not_found\""),
                "{what}: the router does not know it"
            );
            let documented = op["responses"]
                .get(r.status.to_string())
                .unwrap_or_else(|| {
                    panic!("{what} answered {} ({}), not documented", r.status, r.body)
                });
            let response = resolve(&doc, documented);
            let content = response["content"].as_object().unwrap();
            assert!(
                content
                    .keys()
                    .any(|k| essence(k) == essence(&r.content_type)),
                "{what}: {} is {}, documented as {:?}",
                r.status,
                r.content_type,
                content.keys()
            );
            if r.status >= 400 {
                // Every error of a documented example is the daemon's own.
                let e: Value = serde_json::from_str(&r.body)
                    .unwrap_or_else(|_| panic!("{what}: {} {}", r.status, r.body));
                assert!(e["error"]["message"].is_string(), "{what}: {e}");
                assert!(
                    codes.as_array().unwrap().contains(&e["error"]["code"]),
                    "{what}: {e}"
                );
            }

            let bare = call(addr, &method, &url, false, example.as_ref()).await;
            if op.get("security").is_some() {
                assert_ne!(bare.status, 401, "{what} is documented open");
            } else {
                assert_eq!(bare.status, 401, "{what} is documented behind the token");
                assert!(bare.body.contains("\"no_token\""), "{what}: {}", bare.body);
            }

            let item = doc["paths"][&path].as_object().unwrap();
            for other in METHODS {
                if !item.contains_key(&other.as_str().to_lowercase()) {
                    let r = call(addr, &other, &url, true, None).await;
                    assert_eq!(r.status, 405, "{other} {path} is served but not documented");
                }
            }
        }
    }

    #[tokio::test]
    async fn metrics_are_text_0_0_4_behind_the_token() {
        let addr = serve().await;
        let r = call(addr, &Method::GET, "/metrics", true, None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.content_type.starts_with("text/plain; version=0.0.4"));
        let samples = crate::metrics::parse(&r.body);
        let complete = samples
            .iter()
            .find(|s| {
                s.name == "redback_catalog_backups"
                    && s.label("instance") == Some("a")
                    && s.label("status") == Some("complete")
            })
            .expect("the catalog's backups of a");
        assert_eq!(complete.value, "1");
        assert!(r.body.contains(
            "redback_backup_last_success_timestamp_seconds{instance=\"a\"} 1700000030\n"
        ));
        assert_eq!(
            call(addr, &Method::GET, "/metrics", false, None)
                .await
                .status,
            401
        );
    }

    #[tokio::test]
    async fn the_openapi_document_is_served_as_is_behind_the_token() {
        let addr = serve().await;
        let r = call(addr, &Method::GET, "/openapi.json", true, None).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type, "application/json");
        assert_eq!(r.body, OPENAPI);
        let bare = call(addr, &Method::GET, "/openapi.json", false, None).await;
        assert_eq!(bare.status, 401, "{}", bare.body);
        assert!(bare.body.contains("\"no_token\""), "{}", bare.body);
        assert!(!bare.body.contains("/instances"), "{}", bare.body);
    }

    #[tokio::test]
    async fn without_a_service_only_health_is_served() {
        let state = Arc::new(DaemonState {
            version: "test",
            plugins: Vec::new(),
            refused_plugins: Vec::new(),
            storages: Vec::new(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(axum::serve(listener, router(state, None)).into_future());
        assert_eq!(
            call(addr, &Method::GET, "/health", false, None)
                .await
                .status,
            200
        );
        for path in ["/openapi.json", "/instances"] {
            assert_eq!(
                call(addr, &Method::GET, path, true, None).await.status,
                404,
                "{path}"
            );
        }
    }
}
