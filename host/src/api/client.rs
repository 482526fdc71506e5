//! A client of the daemon's REST API, for `--server URL` and the tests:
//! JSON requests with the bearer token, the API's error shape read back
//! into a sentence, and streamed bodies for downloads.
//!
//! Owns: HTTP/1.1 to a daemon (one connection per request, plain http).
//! Must not: know what a route means; callers name the path.

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// Why a request to the daemon did not give what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach the daemon at {url}: {why}; is `redback serve` running there (check --server)?"
    )]
    Unreachable { url: String, why: String },
    /// The daemon answered with an error: its stable code and sentence.
    #[error("the daemon answered {status} {code}: {message}")]
    Api {
        status: StatusCode,
        code: String,
        message: String,
    },
    #[error("`{0}` is not a daemon URL; write it as http://HOST:PORT")]
    BadUrl(String),
    #[error("the daemon's reply to {path} is not the JSON expected: {why}")]
    BadReply { path: String, why: String },
}

impl ClientError {
    /// The API's error code, when the daemon answered one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A daemon at `http://HOST:PORT`, with the bearer token if there is one.
#[derive(Clone)]
pub struct Client {
    authority: String,
    base: String,
    token: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Client").field("base", &self.base).finish()
    }
}

/// A response whose body has not been read yet.
pub struct Streamed {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Incoming,
}

impl Client {
    pub fn new(url: &str, token: Option<String>) -> Result<Client, ClientError> {
        let uri: Uri = url
            .parse()
            .map_err(|_| ClientError::BadUrl(url.to_string()))?;
        if uri.scheme_str() != Some("http") {
            return Err(ClientError::BadUrl(url.to_string()));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| ClientError::BadUrl(url.to_string()))?
            .to_string();
        let prefix = uri.path().trim_end_matches('/');
        Ok(Client {
            base: format!("http://{authority}{prefix}"),
            authority,
            token,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends `method path` with an optional JSON body; the response unread.
    /// `path` is relative to the base URL, or a whole `http://` URL on the
    /// same daemon (a download link).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Streamed, ClientError> {
        let url = if path.starts_with("http://") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        let uri: Uri = url.parse().map_err(|_| ClientError::BadUrl(url.clone()))?;
        let authority = uri
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_else(|| self.authority.clone());
        let unreachable = |why: String| ClientError::Unreachable {
            url: self.base.clone(),
            why,
        };
        let stream = tokio::net::TcpStream::connect(&authority)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        tokio::spawn(async move {
            // The connection ends with the response body; its error, if
            // any, reaches the body's reader.
            let _ = conn.await;
        });
        let mut req = Request::builder()
            .method(method)
            .uri(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
            .header(http::header::HOST, &authority);
        // The token goes to the daemon only, never to another host a
        // link points at (a presigned storage URL).
        if let Some(t) = &self.token
            && authority == self.authority
        {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let body = match body {
            Some(v) => {
                req = req.header(http::header::CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(serde_json::to_vec(v).unwrap_or_default()))
            }
            None => Full::new(Bytes::new()),
        };
        let req = req
            .body(body)
            .map_err(|e| ClientError::BadUrl(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let (parts, body) = resp.into_parts();
        Ok(Streamed {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// Sends a request and reads a JSON reply; an error reply becomes
    /// `ClientError::Api` with the daemon's code and sentence.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let r = self.send(method, path, body).await?;
        let status = r.status;
        let bytes = r
            .body
            .collect()
            .await
            .map_err(|e| ClientError::Unreachable {
                url: self.base.clone(),
                why: format!("the reply was cut off: {e}"),
            })?
            .to_bytes();
        let value: Option<Value> = serde_json::from_slice(&bytes).ok();
        if !status.is_success() {
            let err = value.as_ref().and_then(|v| v.get("error"));
            let field = |k: &str| {
                err.and_then(|e| e.get(k))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            return Err(ClientError::Api {
                status,
                code: field("code").unwrap_or_else(|| "http".into()),
                message: field("message")
                    .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string()),
            });
        }
        value.ok_or_else(|| ClientError::BadReply {
            path: path.to_string(),
            why: format!("{} bytes that do not parse", bytes.len()),
        })
    }

    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.json(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.json(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.json(Method::PUT, path, Some(body)).await
    }
}

/// Percent-encodes a query value or path segment (RFC 3986 unreserved
/// characters stay as they are).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_the_token_never_printed() {
        let c = Client::new("http://127.0.0.1:7480/", Some("secret-token".into())).unwrap();
        assert_eq!(c.base(), "http://127.0.0.1:7480");
        assert!(!format!("{c:?}").contains("secret"));
        for bad in ["127.0.0.1:7480", "https://x:1", "ftp://x", ""] {
            assert!(
                matches!(Client::new(bad, None), Err(ClientError::BadUrl(_))),
                "{bad}"
            );
        }
        assert_eq!(
            encode("2026-11-21T02:00:00+08:00"),
            "2026-11-21T02%3A00%3A00%2B08%3A00"
        );
    }

    #[tokio::test]
    async fn a_dead_daemon_is_named_with_the_fix() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let c = Client::new(&format!("http://{addr}"), None).unwrap();
        let e = c.get("/health").await.unwrap_err().to_string();
        assert!(
            e.contains(&addr.to_string()) && e.contains("--server"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn error_replies_carry_the_code_and_sentence() {
        let app = axum::Router::new().route(
            "/x",
            axum::routing::get(|| async {
                crate::api::routes::ApiError::new(StatusCode::CONFLICT, "busy", "it is busy")
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        let c = Client::new(&format!("http://{addr}"), Some("t".into())).unwrap();
        let e = c.get("/x").await.unwrap_err();
        assert_eq!(e.code(), Some("busy"));
        assert_eq!(e.status(), Some(StatusCode::CONFLICT));
        assert!(e.to_string().contains("it is busy"));
    }
}
