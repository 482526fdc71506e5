//! A storage backend on an object store, whatever its dialect: the
//! contract's calls (`backend.rs`), uploads (`upload.rs`), the unfinished
//! uploads `delete` aborts (`unfinished.rs`) and settings (`settings.rs`)
//! are written once here; each plugin brings a [`Dialect`]
//! (how requests are signed and a few service differences) and its config.
//!
//! This file holds the requests: where a key lives on an endpoint, the
//! retry loop, and the services' XML errors mapped onto the contract's
//! error variants.

pub mod backend;
pub mod settings;
pub mod unfinished;
pub mod upload;

use crate::bindings::redback::storage::types::{Error, ObjectMeta};
use crate::http::{self, Attempt, Response};
use crate::keys::quoted;
use crate::{uri, xml};

/// Attempts of one request before a transient failure is reported.
const ATTEMPTS: u32 = 4;

/// Where requests go: scheme, `host[:port]`, and the path before the key
/// (`/bucket` for path-style S3, empty when the host names the bucket).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub https: bool,
    pub authority: String,
    pub prefix: String,
}

impl Endpoint {
    /// The encoded path of `key` (`""`: the bucket itself).
    pub fn path(&self, key: &str) -> String {
        format!("{}/{}", self.prefix, uri::encode(key, true))
    }

    pub fn scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }
}

/// A request about to be sent, for the dialect to sign.
pub struct Outgoing<'a> {
    pub method: &'a str,
    pub endpoint: &'a Endpoint,
    /// The object key, not encoded (`""`: the bucket).
    pub key: &'a str,
    /// `endpoint.path(key)`.
    pub path: &'a str,
    pub query: &'a [(String, String)],
    /// The headers to send, `host` excepted (`wasi:http` sets it from the
    /// authority); the dialect adds its own.
    pub headers: Vec<(String, String)>,
}

/// What differs between object stores.
pub trait Dialect {
    /// Adds the headers that authenticate `req` at `now` (Unix seconds).
    fn sign(&self, req: &mut Outgoing, now: u64);

    /// The query of a presigned `GET` of `key` on `endpoint`, valid for
    /// `ttl` seconds from `now`.
    fn presign_get(&self, endpoint: &Endpoint, key: &str, ttl: u32, now: u64) -> String;

    /// The longest validity a presigned link may have, in seconds.
    fn max_link_ttl(&self) -> u32 {
        7 * 24 * 3600
    }

    /// The query of a list page: keys under `prefix`, after `after`. By
    /// default ListObjectsV2 (S3, OSS), with `start-after`.
    fn list_query(&self, prefix: &str, after: Option<&str>, max: u32) -> Vec<(String, String)> {
        let mut q = vec![
            ("list-type".to_string(), "2".to_string()),
            ("prefix".to_string(), prefix.to_string()),
            ("max-keys".to_string(), max.to_string()),
        ];
        if let Some(after) = after {
            q.push(("start-after".into(), after.into()));
        }
        q
    }

    /// Headers a ranged `GET` needs besides `Range`.
    fn range_headers(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// What to check when the service refuses the credentials.
    fn credentials_hint(&self) -> &'static str;
}

/// A configured backend: where its bucket is, and how to speak to it.
pub struct Client {
    pub endpoints: settings::Endpoints,
    pub part_size: usize,
    pub dialect: Box<dyn Dialect>,
}

/// One call: what it does (for messages), and what to send.
pub struct Call<'a> {
    pub what: String,
    pub method: &'a str,
    pub key: &'a str,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: &'a [u8],
}

impl<'a> Call<'a> {
    /// `method` on `key` (`""`: the bucket), described as `what` in errors.
    pub fn new(what: String, method: &'a str, key: &'a str) -> Call<'a> {
        Call {
            what,
            method,
            key,
            query: Vec::new(),
            headers: Vec::new(),
            body: &[],
        }
    }

    pub fn query(mut self, name: &str, value: impl Into<String>) -> Self {
        self.query.push((name.to_string(), value.into()));
        self
    }

    pub fn queries(mut self, pairs: Vec<(String, String)>) -> Self {
        self.query.extend(pairs);
        self
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn body(mut self, body: &'a [u8]) -> Self {
        self.body = body;
        self
    }

    /// Sends the call; a response whose status is not in `ok` becomes the
    /// error its status and body describe.
    pub fn expect(&self, client: &Client, ok: &[u16]) -> Result<Response, Error> {
        let mut r = self.send(client)?;
        if ok.contains(&r.status) {
            Ok(r)
        } else {
            Err(status_error(client, &self.what, &mut r))
        }
    }

    /// Sends the call, signed anew for each attempt, with retries on
    /// connection errors, 429 and 5xx (501 excepted); returns the response
    /// of any other status for the caller to judge.
    pub fn send(&self, client: &Client) -> Result<Response, Error> {
        let ep = &client.endpoints.endpoint;
        let path = ep.path(self.key);
        let query = uri::canonical_query(&self.query);
        let path_and_query = if query.is_empty() {
            path.clone()
        } else {
            format!("{path}?{query}")
        };
        http::retry(ATTEMPTS, || {
            let mut headers = self.headers.clone();
            // Every request that may carry a body says how long it is
            // (some servers refuse a DELETE or POST without it).
            if !matches!(self.method, "GET" | "HEAD") {
                headers.push(("content-length".into(), self.body.len().to_string()));
            }
            let mut out = Outgoing {
                method: self.method,
                endpoint: ep,
                key: self.key,
                path: &path,
                query: &self.query,
                headers,
            };
            client.dialect.sign(&mut out, http::now_unix_secs());
            let sent = http::send(&http::Request {
                method: self.method,
                https: ep.https,
                authority: &ep.authority,
                path_and_query: &path_and_query,
                headers: &out.headers,
                body: self.body,
            });
            match sent {
                // 501 Not Implemented stays so: it is an answer, not a
                // hiccup to retry.
                Ok(mut r) if r.status == 429 || (r.status >= 500 && r.status != 501) => {
                    Attempt::Retry(status_error(client, &self.what, &mut r))
                }
                Ok(r) => Attempt::Done(r),
                Err(f) if f.denied => Attempt::Fail(Error::AccessDenied(format!(
                    "{}: the host refused the connection to {} ({}); \
                     the endpoint must be in the storage's config",
                    self.what, ep.authority, f.message
                ))),
                Err(f) => Attempt::Retry(Error::Unavailable(format!(
                    "{}: no response from {}: {}",
                    self.what, ep.authority, f.message
                ))),
            }
        })
    }
}

/// The error for a response that is not a success, from its status and
/// the `<Error><Code>…<Message>…` body the services share.
pub fn status_error(client: &Client, what: &str, r: &mut Response) -> Error {
    let body = r.text();
    error_of(client, what, r, &body)
}

/// [`status_error`] of a response whose body the caller already read.
pub fn error_of(client: &Client, what: &str, r: &Response, body: &str) -> Error {
    let code = xml::text(body, "Code")
        .or_else(|| r.header("x-oss-ec").map(|ec| format!("EC {ec}")))
        .unwrap_or_default();
    let message = xml::text(body, "Message").unwrap_or_default();
    let detail = match (code.is_empty(), message.is_empty()) {
        (true, true) => format!("HTTP {}", r.status),
        (false, true) => format!("HTTP {} {code}", r.status),
        _ => format!("HTTP {} {code}: {message}", r.status),
    };
    let m = format!("{what}: {detail}");
    match r.status {
        404 => Error::NotFound(m),
        401 | 403 => Error::AccessDenied(format!(
            "{m}; check {} and the bucket's policy",
            client.dialect.credentials_hint()
        )),
        501 => Error::Other(m),
        429 | 500..=599 => Error::Unavailable(m),
        _ => Error::Other(m),
    }
}

/// `HEAD` of `key`: size, modification time and ETag, or `not-found`.
pub fn head(client: &Client, key: &str) -> Result<ObjectMeta, Error> {
    // HEAD has no body: the status says it all.
    let r = Call::new(format!("HEAD {}", quoted(key)), "HEAD", key).expect(client, &[200])?;
    let size_bytes = r
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::Other(format!("HEAD {}: no Content-Length", quoted(key))))?;
    Ok(ObjectMeta {
        key: key.to_string(),
        size_bytes,
        modified_unix_ms: r
            .header("last-modified")
            .and_then(crate::time::parse_http_date)
            .unwrap_or(0),
        etag: r.header("etag").map(str::to_string),
    })
}
