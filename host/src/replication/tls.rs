//! TLS at the transport seam: the client handshake to a Redis server, the
//! server handshake of the handoff master, and every TLS failure turned
//! into a sentence that says which of the usual four it is (the server does
//! not speak TLS, its certificate is not trusted, its name does not match,
//! it wants a client certificate) and which key fixes it.
//!
//! Must not: read files or build rustls configs (that is `config::tls`,
//! at load time), or log key material.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{self, AlertDescription, CertificateError};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::conn::Transport;
use super::{Endpoint, ErrorKind, ReplError};
use crate::config::TlsConfig;

/// Wraps a connected TCP stream in TLS as `tls` says.
pub(super) async fn connect(
    ep: &Endpoint,
    tls: &TlsConfig,
    tcp: TcpStream,
) -> Result<Box<dyn Transport>, ReplError> {
    let name = server_name(ep, tls)?;
    let connector = TlsConnector::from(tls.client.clone());
    let t = ep.connect_timeout;
    match tokio::time::timeout(t, connector.connect(name, tcp)).await {
        Err(_) => Err(ep.error(
            ErrorKind::Connect,
            format!(
                "no TLS handshake within {} s: the server does not seem to speak TLS on this port \
                 (a plain Redis port waits for a command); point `address` at its tls-port, or remove `{}`",
                t.as_secs(),
                tls.key
            ),
        )),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof && rustls_error(&e).is_none() => {
            Err(ep.error(
                ErrorKind::Connect,
                format!(
                    "the server closed the connection during the TLS handshake: it may not speak TLS on this port \
                     (point `address` at its tls-port, or remove `{}`), or it refused us",
                    tls.key
                ),
            ))
        }
        Ok(Err(e)) => Err(ep.error(
            kind_of(&e),
            explain(ep, tls, &e).unwrap_or_else(|| format!("TLS handshake failed: {e}")),
        )),
        Ok(Ok(stream)) => Ok(Box::new(stream)),
    }
}

/// Connection errors are worth a retry; a refused certificate is not.
fn kind_of(e: &std::io::Error) -> ErrorKind {
    if rustls_error(e).is_some() {
        ErrorKind::Refused
    } else {
        ErrorKind::Connect
    }
}

/// SNI and the name the certificate must hold: `server_name`, else the
/// host of the address.
fn server_name(ep: &Endpoint, tls: &TlsConfig) -> Result<ServerName<'static>, ReplError> {
    if let Some(n) = &tls.server_name {
        return Ok(n.clone());
    }
    let host = ep
        .addr
        .rsplit_once(':')
        .map_or(ep.addr.as_str(), |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|_| {
        ep.error(
            ErrorKind::Connect,
            format!(
                "`{host}` is not a name TLS can verify; set `{}.server_name` to the name in the server's certificate",
                tls.key
            ),
        )
    })
}

fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// The sentence for a TLS failure, naming the key that fixes it; `None`
/// when `e` is not one.
pub(super) fn explain(ep: &Endpoint, tls: &TlsConfig, e: &std::io::Error) -> Option<String> {
    let key = &tls.key;
    let err = rustls_error(e)?;
    Some(match err {
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => {
            let presented = match err {
                rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                    presented,
                    ..
                }) => format!(" (it holds {})", presented.join(", ")),
                _ => String::new(),
            };
            let name = match &tls.server_name {
                Some(n) => n.to_str().into_owned(),
                None => ep
                    .addr
                    .rsplit_once(':')
                    .map_or(ep.addr.clone(), |(h, _)| h.to_string()),
            };
            format!(
                "name mismatch: the server's certificate is not valid for `{name}`{presented}; \
                 set `{key}.server_name` to a name in the certificate"
            )
        }
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer
            | CertificateError::BadSignature
            | CertificateError::UnsupportedSignatureAlgorithmContext { .. },
        ) => match &tls.ca_file {
            Some(ca) => format!(
                "certificate not trusted: the server's certificate is not signed by a CA in {}; \
                 set `{key}.ca_file` to the CA that signed it (the server's tls-ca-cert-file)",
                ca.display()
            ),
            None => format!(
                "certificate not trusted: no public CA signed the server's certificate; \
                 set `{key}.ca_file` to the CA that signed it (the server's tls-ca-cert-file)"
            ),
        },
        rustls::Error::InvalidCertificate(other) => format!(
            "the server's certificate is refused: {other:?}; give it a valid certificate, or set `{key}.ca_file`"
        ),
        rustls::Error::AlertReceived(
            alert @ (AlertDescription::CertificateRequired
            | AlertDescription::HandshakeFailure
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::AccessDenied),
        ) => {
            if tls.has_client_cert() {
                format!(
                    "the server refused our client certificate ({alert:?}); `{key}.cert_file` must be signed by a CA \
                     the server trusts (its tls-ca-cert-file)"
                )
            } else {
                format!(
                    "the server wants a client certificate ({alert:?}; tls-auth-clients): set `{key}.cert_file` and `{key}.key_file`"
                )
            }
        }
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => format!(
            "the server does not speak TLS on this port (its answer is not TLS); point `address` at its \
             tls-port, or remove `{key}`"
        ),
        other => format!("TLS failed: {other}"),
    })
}

/// The server side of the handoff: `config` is the certificate redback
/// presents to a target with `tls-replication yes`.
pub(super) async fn accept(
    ep: &Endpoint,
    config: std::sync::Arc<rustls::ServerConfig>,
    tcp: TcpStream,
    within: Duration,
) -> Result<Box<dyn Transport>, ReplError> {
    let key = ep.tls.as_ref().map_or("tls", |t| t.key.as_str());
    match tokio::time::timeout(within, TlsAcceptor::from(config).accept(tcp)).await {
        Err(_) => Err(ep.timeout_error("the target's TLS handshake", within)),
        Ok(Err(e)) => Err(ep.error(
            ErrorKind::Refused,
            format!(
                "the target refused redback's handoff certificate ({e}); `{key}.handoff_cert_file` must be signed \
                 by a CA in the target's tls-ca-cert-file"
            ),
        )),
        Ok(Ok(s)) => Ok(Box::new(s)),
    }
}
