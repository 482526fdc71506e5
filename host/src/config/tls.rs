//! `tls` tables: how redback speaks TLS to Redis (`[instance.NAME.tls]`
//! for the instance's nodes, `[instance.NAME.target_tls]` for a clone's
//! target address).
//!
//! Owns: reading the CA, certificate and key files once, at config load,
//! and building the rustls client (and handoff server) configurations from
//! them, so a bad file is an error naming the file, the key and the fix
//! before anything connects. Must not: connect (that is `replication/`), or
//! let key material reach a `Debug` or a log line: the built configs hold
//! it, and `TlsConfig`'s `Debug` prints only paths.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::instance::KeyError;

/// A `tls` table as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    /// PEM CA certificate(s) the server's certificate must chain to; the
    /// public web roots (Mozilla's, compiled in) when not set.
    ca_file: Option<String>,
    /// PEM client certificate (chain) for servers with `tls-auth-clients`.
    cert_file: Option<String>,
    /// PEM private key of `cert_file`.
    key_file: Option<String>,
    /// The name sent as SNI and checked against the certificate; the host
    /// of the address when not set.
    server_name: Option<String>,
    /// PEM certificate redback presents when a target with
    /// `tls-replication yes` connects to it during a handoff restore.
    handoff_cert_file: Option<String>,
    handoff_key_file: Option<String>,
}

/// `target_tls`: `false` (plain), or a table of its own.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawTargetTls {
    Enabled(bool),
    Table(RawTls),
}

/// A validated `tls` table: the files read, the rustls configs built.
#[derive(Clone)]
pub struct TlsConfig {
    /// The table's key (`instance.orders.tls`), for the fix in messages.
    pub key: String,
    /// Where the trusted CAs come from, for messages (`None`: web roots).
    pub ca_file: Option<PathBuf>,
    /// The client certificate, for messages (its key is never named in
    /// logs beyond its path).
    pub cert_file: Option<PathBuf>,
    /// SNI and verified name; `None`: the host of the address.
    pub server_name: Option<ServerName<'static>>,
    /// The client side, used for every connection to the server.
    pub client: Arc<rustls::ClientConfig>,
    /// The server side of a handoff restore, when a certificate is set.
    pub handoff: Option<Arc<rustls::ServerConfig>>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("key", &self.key)
            .field("ca_file", &self.ca_file)
            .field("cert_file", &self.cert_file)
            .field("server_name", &self.server_name)
            .field("handoff", &self.handoff.is_some())
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// The same trust and client certificate, for another server (under
    /// the config key `key`): the server name is left to that server's
    /// address.
    pub fn for_other_server(&self, key: &str) -> TlsConfig {
        TlsConfig {
            key: key.to_string(),
            server_name: None,
            ..self.clone()
        }
    }

    /// Whether a client certificate is configured.
    pub fn has_client_cert(&self) -> bool {
        self.cert_file.is_some()
    }
}

/// The rustls crypto provider: ring (pure Rust and assembly; no cmake);
/// the plugins' HTTPS connector uses it too.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Validates the table at `key` (e.g. `instance.orders.tls`); file paths
/// resolve against `base`.
pub(super) fn validate(key: &str, raw: RawTls, base: &Path) -> Result<TlsConfig, KeyError> {
    let field = |f: &str| format!("{key}.{f}");
    let path_of = |f: &str, v: &str| -> Result<PathBuf, KeyError> {
        if v.is_empty() {
            return Err((field(f), "is empty; give the path of a PEM file".into()));
        }
        Ok(base.join(v))
    };
    let mut roots = rustls::RootCertStore::empty();
    let ca_file = match &raw.ca_file {
        Some(v) => {
            let path = path_of("ca_file", v)?;
            let certs = read_certs(&path, &field("ca_file"), "CA certificate")?;
            for c in certs {
                roots.add(c).map_err(|e| {
                    (
                        field("ca_file"),
                        format!(
                            "{} holds a certificate rustls cannot use as a CA ({e}); give the CA that signed the server's certificate",
                            path.display()
                        ),
                    )
                })?;
            }
            Some(path)
        }
        None => {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            None
        }
    };
    let server_name = match &raw.server_name {
        None => None,
        Some(n) => Some(ServerName::try_from(n.clone()).map_err(|_| {
            (
                field("server_name"),
                format!("`{n}` is not a DNS name or IP address; write the name in the server's certificate"),
            )
        })?),
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| (key.to_string(), format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots);
    let (cert_file, client) = match pair(
        &field("cert_file"),
        &field("key_file"),
        raw.cert_file.as_deref(),
        raw.key_file.as_deref(),
        base,
    )? {
        Some((cert_path, certs, key)) => {
            let config = builder.with_client_auth_cert(certs, key).map_err(|e| {
                (
                    field("key_file"),
                    format!(
                        "does not go with {} ({e}); give the private key of that certificate",
                        cert_path.display()
                    ),
                )
            })?;
            (Some(cert_path), config)
        }
        None => (None, builder.with_no_client_auth()),
    };
    let handoff = match pair(
        &field("handoff_cert_file"),
        &field("handoff_key_file"),
        raw.handoff_cert_file.as_deref(),
        raw.handoff_key_file.as_deref(),
        base,
    )? {
        None => None,
        Some((cert_path, certs, private)) => {
            let config = rustls::ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| (key.to_string(), format!("TLS setup failed: {e}")))?
                .with_no_client_auth()
                .with_single_cert(certs, private)
                .map_err(|e| {
                    (
                        field("handoff_key_file"),
                        format!(
                            "does not go with {} ({e}); give the private key of that certificate",
                            cert_path.display()
                        ),
                    )
                })?;
            Some(Arc::new(config))
        }
    };
    Ok(TlsConfig {
        key: key.to_string(),
        ca_file,
        cert_file,
        server_name,
        client: Arc::new(client),
        handoff,
    })
}

type CertAndKey = (
    PathBuf,
    Vec<CertificateDer<'static>>,
    PrivateKeyDer<'static>,
);

/// A certificate file and its key file: both or neither.
fn pair(
    cert_key: &str,
    key_key: &str,
    cert: Option<&str>,
    key: Option<&str>,
    base: &Path,
) -> Result<Option<CertAndKey>, KeyError> {
    let (cert, key) = match (cert, key) {
        (None, None) => return Ok(None),
        (Some(c), Some(k)) if !c.is_empty() && !k.is_empty() => (c, k),
        (Some(_), None) => {
            return Err((
                key_key.to_string(),
                format!("missing; `{cert_key}` needs the private key that goes with it"),
            ));
        }
        (None, Some(_)) => {
            return Err((
                cert_key.to_string(),
                format!("missing; `{key_key}` needs the certificate that goes with it"),
            ));
        }
        _ => {
            return Err((
                cert_key.to_string(),
                "is empty; give the paths of a PEM certificate and its key".into(),
            ));
        }
    };
    let cert_path = base.join(cert);
    let certs = read_certs(&cert_path, cert_key, "certificate")?;
    let key_path = base.join(key);
    // The key's bytes never appear in a message: only its path does.
    let bytes = std::fs::read(&key_path).map_err(|e| {
        (
            key_key.to_string(),
            format!(
                "cannot read {}: {e}; point it at a readable PEM private key",
                key_path.display()
            ),
        )
    })?;
    let private = PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| {
        (
            key_key.to_string(),
            format!(
                "{} holds no PEM private key (BEGIN PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)",
                key_path.display()
            ),
        )
    })?;
    Ok(Some((cert_path, certs, private)))
}

/// Every certificate of a PEM file; at least one.
fn read_certs(
    path: &Path,
    key: &str,
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, KeyError> {
    let bytes = std::fs::read(path).map_err(|e| {
        (
            key.to_string(),
            format!(
                "cannot read {}: {e}; point it at a readable PEM {what} file",
                path.display()
            ),
        )
    })?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            (
                key.to_string(),
                format!(
                    "{} is not valid PEM ({e}); give a PEM {what} file",
                    path.display()
                ),
            )
        })?;
    if certs.is_empty() {
        return Err((
            key.to_string(),
            format!(
                "{} holds no certificate (no BEGIN CERTIFICATE block); give a PEM {what} file",
                path.display()
            ),
        ));
    }
    Ok(certs)
}
