//! Sends a plugin's outbound request to exactly the addresses the
//! allow-list checked.
//!
//! Owns: the TCP connection to the given socket addresses (tried in order),
//! TLS (rustls with the ring provider and the webpki roots; the server name
//! and certificate are the request's host, not the address), the HTTP/1.1
//! exchange (hyper) and wasmtime-wasi-http's timeouts (connect, first byte,
//! between bytes; 600 s when the guest sets none). It follows
//! `wasmtime_wasi_http::default_send_request` of 48.0.8 step by step, except
//! that it never resolves a name: the default sender resolves the host again
//! and connects to whatever that second answer is, which a DNS server
//! changing its answer between the check and the connect (DNS rebinding)
//! could point at loopback or a metadata service.
//!
//! Must not: resolve names or decide what is allowed (`http_grants` does
//! both, and hands the checked addresses here).

use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Scheme;
use http::{Request, Response};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions};

/// What the default sender waits when the guest sets no timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}
impl<T> Stream for T where T: AsyncRead + AsyncWrite + Send + Sync + Unpin + 'static {}

/// The TLS client setup, made once: ring, safe protocol versions, webpki
/// roots, no client certificate (as the default sender).
fn tls_config() -> Result<Arc<rustls::ClientConfig>, Error> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    if let Some(c) = CONFIG.get() {
        return Ok(c.clone());
    }
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    let config = rustls::ClientConfig::builder_with_provider(crate::config::tls_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::InternalError(Some(format!("TLS setup: {e}"))))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(CONFIG.get_or_init(|| Arc::new(config)).clone())
}

/// The name the server's certificate must carry: the request's host (an IP
/// literal checks as an IP), never the address connected to.
fn server_name(host: &str) -> Result<ServerName<'static>, Error> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Ok(ServerName::from(ip));
    }
    Ok(ServerName::try_from(bare)?.to_owned())
}

/// Connects to the first of `addrs` that answers within the timeout.
async fn connect(addrs: &[SocketAddr], timeout: Duration) -> Result<TcpStream, Error> {
    let attempts = async {
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(Error::Connect(last.unwrap_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "no address to connect to")
        })))
    };
    tokio::time::timeout(timeout, attempts)
        .await
        .map_err(|_| Error::ConnectionTimeout)?
}

/// A response body that fails when no frame came for the between-bytes
/// timeout (as the default sender's).
pub struct IncomingBody {
    incoming: hyper::body::Incoming,
    timeout: tokio::time::Interval,
}

impl Body for IncomingBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(if e.is_timeout() {
                Error::HttpResponseTimeout
            } else {
                Error::from(e)
            }))),
            Poll::Ready(Some(Ok(frame))) => {
                self.timeout.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                ready!(self.timeout.poll_tick(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.incoming.size_hint()
    }
}

/// Sends `req` over a connection to one of `addrs` (the addresses its host
/// was checked against); returns the response and the future that drives
/// the rest of the connection.
pub async fn send_to<B>(
    mut req: Request<B>,
    options: Option<RequestOptions>,
    addrs: &[SocketAddr],
) -> Result<
    (
        Response<IncomingBody>,
        impl Future<Output = Result<(), Error>> + Send + use<B>,
    ),
    Error,
>
where
    B: Body<Data = Bytes, Error = Error> + Send + 'static,
{
    let uri = req.uri();
    let host = uri.host().ok_or(Error::HttpRequestUriInvalid)?.to_string();
    let use_tls = uri.scheme() == Some(&Scheme::HTTPS);
    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .unwrap_or(DEFAULT_TIMEOUT);
    let first_byte_timeout = options
        .and_then(|o| o.first_byte_timeout)
        .unwrap_or(DEFAULT_TIMEOUT);
    // Tokio panics on a zero interval: 1 ns is zero in effect.
    let between_bytes_timeout = options
        .and_then(|o| o.between_bytes_timeout)
        .unwrap_or(DEFAULT_TIMEOUT)
        .max(Duration::from_nanos(1));

    let tcp = connect(addrs, connect_timeout).await?;
    let stream: Box<dyn Stream> = if use_tls {
        let connector = tokio_rustls::TlsConnector::from(tls_config()?);
        let tls = connector
            .connect(server_name(&host)?, tcp)
            .await
            .map_err(Error::Tls)?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;

    // The request line carries only the path: scheme and authority are for
    // proxies (the Host header is already set from the authority).
    *req.uri_mut() = http::Uri::builder()
        .path_and_query(req.uri().path_and_query().map_or("/", |p| p.as_str()))
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;

    let send = async move {
        let res = tokio::time::timeout(first_byte_timeout, sender.send_request(req))
            .await
            .map_err(|_| Error::ConnectionReadTimeout)?
            .map_err(Error::from)?;
        let mut timeout = tokio::time::interval(between_bytes_timeout);
        timeout.reset();
        Ok::<_, Error>(res.map(|incoming| IncomingBody { incoming, timeout }))
    };
    let mut send = pin!(send);
    let mut conn = Some(conn);
    // Wait for the response while driving the connection's I/O.
    let res = poll_fn(|cx| match send.as_mut().poll(cx) {
        Poll::Ready(r) => Poll::Ready(r),
        Poll::Pending => {
            let Some(c) = conn.as_mut() else {
                return Poll::Pending;
            };
            let done = ready!(Pin::new(c).poll(cx));
            conn = None;
            match done {
                Ok(()) => send.as_mut().poll(cx),
                Err(e) => Poll::Ready(Err(Error::from(e))),
            }
        }
    })
    .await?;
    Ok((res, async move {
        let Some(conn) = conn else {
            return Ok(());
        };
        conn.await.map_err(|e| {
            if e.is_timeout() {
                Error::HttpResponseTimeout
            } else {
                Error::from(e)
            }
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Empty};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A loopback server answering 200 with the request head as the body.
    async fn echo_head_server() -> SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    let head = &buf[..n];
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        head.len()
                    );
                    let _ = s.write_all(reply.as_bytes()).await;
                    let _ = s.write_all(head).await;
                });
            }
        });
        addr
    }

    fn request(uri: &str) -> Request<http_body_util::combinators::UnsyncBoxBody<Bytes, Error>> {
        let authority = uri.parse::<http::Uri>().unwrap();
        Request::get(uri)
            .header(http::header::HOST, authority.authority().unwrap().as_str())
            .body(Empty::new().map_err(|e| match e {}).boxed_unsync())
            .unwrap()
    }

    /// The checked address is the one connected to: a host name that does
    /// not resolve at all (`.invalid` is reserved) still reaches the server
    /// at the address handed in, so nothing was looked up again.
    #[tokio::test]
    async fn the_request_goes_to_the_checked_address_without_resolving_again() {
        let addr = echo_head_server().await;
        let uri = format!("http://granted.invalid:{}/bucket/key?x=1", addr.port());
        let (res, io) = send_to(request(&uri), None, &[addr]).await.unwrap();
        tokio::spawn(io);
        assert_eq!(res.status(), 200);
        let head = res.into_body().collect().await.unwrap().to_bytes();
        let head = String::from_utf8_lossy(&head);
        assert!(
            head.starts_with("GET /bucket/key?x=1 HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("host: granted.invalid:{}", addr.port())),
            "{head}"
        );
    }

    #[tokio::test]
    async fn the_next_checked_address_is_tried_when_one_refuses() {
        let addr = echo_head_server().await;
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap(); // dropped: nothing listens there now
        let uri = format!("http://granted.invalid:{}/", addr.port());
        let (res, io) = send_to(request(&uri), None, &[closed, addr]).await.unwrap();
        tokio::spawn(io);
        assert_eq!(res.status(), 200);
        let e = send_to(request(&uri), None, &[closed]).await.err().unwrap();
        assert!(matches!(e, Error::Connect(_)), "{e:?}");
    }

    /// An https request speaks TLS to the checked address, with the
    /// request's host as the server name: a server that does not answer
    /// with TLS fails the handshake, and the request is never sent in the
    /// clear.
    #[tokio::test]
    async fn https_needs_a_tls_handshake_named_after_the_host() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        // Not a TLS server at all: the handshake must fail, and nothing is
        // sent in the clear.
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await;
            }
        });
        let uri = format!("https://granted.invalid:{}/", addr.port());
        let e = send_to(request(&uri), None, &[addr]).await.err().unwrap();
        assert!(matches!(e, Error::Tls(_)), "{e:?}");
        assert_eq!(
            server_name("[::1]").unwrap(),
            ServerName::from(std::net::Ipv6Addr::LOCALHOST)
        );
        assert_eq!(
            server_name("s3.example.com").unwrap(),
            ServerName::try_from("s3.example.com").unwrap()
        );
    }
}
