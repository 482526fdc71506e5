//! Signed requests to the bucket: where a key lives on an endpoint, the
//! SigV4 headers, the retry loop, and S3's XML errors mapped onto the
//! contract's error variants.

use objstore::http::{self, Attempt, Response};
use objstore::keys::quoted;
use objstore::sigv4::{self, Signer, UNSIGNED_PAYLOAD};
use objstore::{uri, xml};

use crate::config::{Config, Endpoint};
use crate::redback::storage::types::Error;

/// Attempts of one request before a transient failure is reported.
const ATTEMPTS: u32 = 4;

/// Where an object (or, with `key` empty, the bucket) is on `ep`:
/// the authority to connect to and the encoded path.
pub(crate) fn locate(cfg: &Config, ep: &Endpoint, key: &str) -> (String, String) {
    let key = uri::encode(key, true);
    if cfg.path_style {
        (ep.authority.clone(), format!("/{}/{key}", cfg.bucket))
    } else {
        (
            format!("{}.{}", cfg.bucket, ep.authority),
            format!("/{key}"),
        )
    }
}

/// One S3 call: what it does (for messages), and what to send.
pub(crate) struct Call<'a> {
    pub(crate) what: String,
    pub(crate) method: &'a str,
    pub(crate) key: &'a str,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: &'a [u8],
}

impl<'a> Call<'a> {
    /// `method` on `key` (`""`: the bucket), described as `what` in errors.
    pub(crate) fn new(what: String, method: &'a str, key: &'a str) -> Call<'a> {
        Call {
            what,
            method,
            key,
            query: Vec::new(),
            headers: Vec::new(),
            body: &[],
        }
    }

    pub(crate) fn query(mut self, name: &str, value: impl Into<String>) -> Self {
        self.query.push((name.to_string(), value.into()));
        self
    }

    pub(crate) fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub(crate) fn body(mut self, body: &'a [u8]) -> Self {
        self.body = body;
        self
    }

    /// Sends the call; a response whose status is not in `ok` becomes the
    /// error its status and body describe.
    pub(crate) fn expect(&self, cfg: &Config, ok: &[u16]) -> Result<Response, Error> {
        let mut r = send(cfg, self)?;
        if ok.contains(&r.status) {
            Ok(r)
        } else {
            Err(status_error(&self.what, &mut r))
        }
    }
}

/// Sends `call` with retries on connection errors, 429 and 5xx; returns
/// the response of any other status for the caller to judge.
pub(crate) fn send(cfg: &Config, call: &Call) -> Result<Response, Error> {
    let (authority, path) = locate(cfg, &cfg.endpoint, call.key);
    let query = uri::canonical_query(&call.query);
    let path_and_query = if query.is_empty() {
        path.clone()
    } else {
        format!("{path}?{query}")
    };
    http::retry(ATTEMPTS, || {
        let amz_date = sigv4::amz_date(http::now_unix_secs());
        let mut headers = call.headers.clone();
        headers.push(("x-amz-date".into(), amz_date.clone()));
        headers.push(("x-amz-content-sha256".into(), UNSIGNED_PAYLOAD.into()));
        // Every request that may carry a body says how long it is (some
        // servers refuse a DELETE or POST without it).
        if !matches!(call.method, "GET" | "HEAD") {
            headers.push(("content-length".into(), call.body.len().to_string()));
        }
        // `host` is signed; wasi:http sets the header itself from the
        // authority.
        let mut signed = headers.clone();
        signed.push(("host".into(), authority.clone()));
        let signer = Signer {
            credentials: &cfg.credentials,
            region: &cfg.region,
            service: "s3",
            amz_date: &amz_date,
        };
        let auth = signer.authorization(&sigv4::Request {
            method: call.method,
            canonical_uri: &path,
            query: &call.query,
            headers: &signed,
            payload_hash: UNSIGNED_PAYLOAD,
        });
        headers.push(("authorization".into(), auth));
        let sent = http::send(&http::Request {
            method: call.method,
            https: cfg.endpoint.https,
            authority: &authority,
            path_and_query: &path_and_query,
            headers: &headers,
            body: call.body,
        });
        match sent {
            Ok(r) if r.status == 429 || r.status >= 500 => {
                let mut r = r;
                Attempt::Retry(status_error(&call.what, &mut r))
            }
            Ok(r) => Attempt::Done(r),
            Err(f) if f.denied => Attempt::Fail(Error::AccessDenied(format!(
                "{}: the host refused the connection to {authority} ({}); \
                 the endpoint must be in the storage's config",
                call.what, f.message
            ))),
            Err(f) => Attempt::Retry(Error::Unavailable(format!(
                "{}: no response from {authority}: {}",
                call.what, f.message
            ))),
        }
    })
}

/// The error for a response that is not a success, from its status and
/// S3's `<Error><Code>…<Message>…` body.
pub(crate) fn status_error(what: &str, r: &mut Response) -> Error {
    let body = r.text();
    let code = xml::text(&body, "Code").unwrap_or_default();
    let message = xml::text(&body, "Message").unwrap_or_default();
    let detail = match (code.is_empty(), message.is_empty()) {
        (true, true) => format!("HTTP {}", r.status),
        (false, true) => format!("HTTP {} {code}", r.status),
        _ => format!("HTTP {} {code}: {message}", r.status),
    };
    let m = format!("{what}: {detail}");
    match r.status {
        404 => Error::NotFound(m),
        401 | 403 => Error::AccessDenied(format!(
            "{m}; check access_key_id, the secret access key and the bucket's policy"
        )),
        429 | 500..=599 => Error::Unavailable(m),
        _ => Error::Other(m),
    }
}

/// `HEAD` of `key`: size, modification time and ETag, or `not-found`.
pub(crate) fn head(
    cfg: &Config,
    key: &str,
) -> Result<crate::redback::storage::types::ObjectMeta, Error> {
    // HEAD has no body: the status says it all.
    let r = Call::new(format!("HEAD {}", quoted(key)), "HEAD", key).expect(cfg, &[200])?;
    let size_bytes = r
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::Other(format!("HEAD {}: no Content-Length", quoted(key))))?;
    Ok(crate::redback::storage::types::ObjectMeta {
        key: key.to_string(),
        size_bytes,
        modified_unix_ms: r
            .header("last-modified")
            .and_then(objstore::time::parse_http_date)
            .unwrap_or(0),
        etag: r.header("etag").map(str::to_string),
    })
}
