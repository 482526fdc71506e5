//! Blocking HTTP requests over `wasi:http`, with request bodies written as
//! the host takes them and response bodies read as a stream, and the retry
//! loop the plugins wrap idempotent requests in.

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasip2::io::streams::{InputStream, StreamError};

/// Seconds to connect, to the first response byte, and between bytes.
const CONNECT_TIMEOUT_S: u64 = 10;
const BYTE_TIMEOUT_S: u64 = 120;

/// A request to send. `authority` is `host[:port]`.
pub struct Request<'a> {
    pub method: &'a str,
    pub https: bool,
    pub authority: &'a str,
    pub path_and_query: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// Why no response arrived: the connection failed, timed out, or the host
/// refused the request (a destination the plugin was not granted).
#[derive(Debug, Clone)]
pub struct Failure {
    pub message: String,
    /// The host's sandbox refused the destination: retrying will not help.
    pub denied: bool,
}

/// A response whose body is read on demand.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    // Drop order: the stream before the body it belongs to.
    stream: Option<InputStream>,
    _body: Option<IncomingBody>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The next bytes of the body, `max` of them unless the body ends
    /// first; empty at the end. The host hands a body over in the pieces
    /// it received (often 16 KiB), so this gathers them: one call per
    /// `max` bytes, not per network read.
    pub fn read(&mut self, max: usize) -> Result<Vec<u8>, Failure> {
        let mut out: Vec<u8> = Vec::new();
        while out.len() < max {
            let Some(stream) = &self.stream else {
                break;
            };
            match stream.blocking_read((max - out.len()) as u64) {
                Ok(bytes) if out.is_empty() => out = bytes,
                Ok(bytes) => out.extend_from_slice(&bytes),
                Err(StreamError::Closed) => self.stream = None,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(Failure {
                        message: format!("reading the response body: {}", e.to_debug_string()),
                        denied: false,
                    });
                }
            }
        }
        Ok(out)
    }

    /// The whole body, refusing one over `limit` bytes.
    pub fn read_all(&mut self, limit: usize) -> Result<Vec<u8>, Failure> {
        let mut out = Vec::new();
        loop {
            let b = self.read(64 << 10)?;
            if b.is_empty() {
                return Ok(out);
            }
            out.extend_from_slice(&b);
            if out.len() > limit {
                return Err(Failure {
                    message: format!("a response body over {limit} bytes"),
                    denied: false,
                });
            }
        }
    }

    /// The body as text, for error documents (at most 64 KiB).
    pub fn text(&mut self) -> String {
        match self.read_all(64 << 10) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => format!("(unreadable body: {})", e.message),
        }
    }
}

fn failure(message: String) -> Failure {
    Failure {
        message,
        denied: false,
    }
}

/// Sends `req` and waits for the response head.
pub fn send(req: &Request) -> Result<Response, Failure> {
    let headers = Fields::new();
    for (k, v) in req.headers {
        headers
            .append(k, v.as_bytes())
            .map_err(|e| failure(format!("header {k}: {e:?}")))?;
    }
    let r = OutgoingRequest::new(headers);
    let method = match req.method {
        "GET" => Method::Get,
        "PUT" => Method::Put,
        "POST" => Method::Post,
        "HEAD" => Method::Head,
        "DELETE" => Method::Delete,
        other => Method::Other(other.to_string()),
    };
    let bad = |what: &str| failure(format!("cannot set the request {what}"));
    r.set_method(&method).map_err(|()| bad("method"))?;
    let scheme = if req.https {
        Scheme::Https
    } else {
        Scheme::Http
    };
    r.set_scheme(Some(&scheme)).map_err(|()| bad("scheme"))?;
    r.set_authority(Some(req.authority))
        .map_err(|()| bad("authority"))?;
    r.set_path_with_query(Some(req.path_and_query))
        .map_err(|()| bad("path"))?;
    let body = r.body().map_err(|()| bad("body"))?;
    let options = RequestOptions::new();
    // A host may not support a timeout; the defaults then apply.
    let _ = options.set_connect_timeout(Some(CONNECT_TIMEOUT_S * 1_000_000_000));
    let _ = options.set_first_byte_timeout(Some(BYTE_TIMEOUT_S * 1_000_000_000));
    let _ = options.set_between_bytes_timeout(Some(BYTE_TIMEOUT_S * 1_000_000_000));
    let future = outgoing_handler::handle(r, Some(options)).map_err(|code| Failure {
        denied: matches!(
            code,
            wasip2::http::types::ErrorCode::HttpRequestDenied
                | wasip2::http::types::ErrorCode::DestinationIpProhibited
        ),
        message: format!("{code:?}"),
    })?;
    // A body the host stopped taking means the request failed (refused
    // connection, reset: the response future says why) or the server
    // answered before reading it all (an error status, which it can only
    // give without the whole body): either way the response decides.
    let sent = write_body(body, req.body);
    future.subscribe().block();
    let incoming = match future.get() {
        Some(Ok(Ok(resp))) => resp,
        Some(Ok(Err(code))) => {
            return Err(Failure {
                denied: matches!(
                    code,
                    wasip2::http::types::ErrorCode::HttpRequestDenied
                        | wasip2::http::types::ErrorCode::DestinationIpProhibited
                ),
                message: format!("{code:?}"),
            });
        }
        _ => return Err(sent.err().unwrap_or_else(|| failure("no response".into()))),
    };
    let status = incoming.status();
    let headers = incoming
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let body = incoming.consume().ok();
    let stream = body.as_ref().and_then(|b| b.stream().ok());
    Ok(Response {
        status,
        headers,
        stream,
        _body: body,
    })
}

fn write_body(body: OutgoingBody, bytes: &[u8]) -> Result<(), Failure> {
    // No stream for an empty body: flushing one races the host closing a
    // request that has nothing to send.
    if !bytes.is_empty() {
        let out = body
            .write()
            .map_err(|()| failure("cannot open the request body".into()))?;
        let broken = |e: StreamError| {
            failure(match e {
                StreamError::Closed => "the connection closed while sending".into(),
                StreamError::LastOperationFailed(e) => {
                    format!("sending the request body: {}", e.to_debug_string())
                }
            })
        };
        let mut rest = bytes;
        while !rest.is_empty() {
            let room = out.check_write().map_err(broken)?;
            if room == 0 {
                out.subscribe().block();
                continue;
            }
            let n = rest.len().min(room as usize);
            out.write(&rest[..n]).map_err(broken)?;
            rest = &rest[n..];
        }
        out.blocking_flush().map_err(broken)?;
    }
    OutgoingBody::finish(body, None).map_err(|e| failure(format!("finishing the body: {e:?}")))
}

/// Wall-clock time, Unix seconds.
pub fn now_unix_secs() -> u64 {
    wasip2::clocks::wall_clock::now().seconds
}

/// Sleeps `ms` milliseconds.
pub fn sleep_ms(ms: u64) {
    wasip2::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
}

/// What one attempt of a retried operation came to.
pub enum Attempt<T, E> {
    Done(T),
    /// A transient failure (connection error, 5xx, 429): try again.
    Retry(E),
    /// A final failure.
    Fail(E),
}

/// Runs `op` up to `attempts` times, sleeping 200 ms, 400 ms, 800 ms, …
/// (at most 5 s) between transient failures; returns the last error. Each
/// retried failure is written to stderr, which the host logs under the
/// plugin's name.
pub fn retry<T, E: std::fmt::Display>(
    attempts: u32,
    mut op: impl FnMut() -> Attempt<T, E>,
) -> Result<T, E> {
    let mut delay = 200;
    let mut n = 1;
    loop {
        match op() {
            Attempt::Done(v) => return Ok(v),
            Attempt::Fail(e) => return Err(e),
            Attempt::Retry(e) if n >= attempts => return Err(e),
            Attempt::Retry(e) => {
                eprintln!("attempt {n} of {attempts} failed, retrying in {delay} ms: {e}");
                sleep_ms(delay);
                delay = (delay * 2).min(5_000);
                n += 1;
            }
        }
    }
}
