//! The Redis wire: RESP2 connections and the replica handshake that makes a
//! server stream its RDB to us.
//!
//! Owns: connecting (plain TCP, or TLS through rustls in `tls.rs`), AUTH, commands, the
//! `REPLCONF` / `PSYNC` / `SYNC` handshake and both payload framings, and
//! every error of those turned into a sentence naming the instance and the
//! fix. Must not: parse the RDB (that is `rdb/`) or decide what to back up.
//! Invariant: only this module speaks the replication protocol.

mod conn;
pub mod master;
pub mod resp;
mod sync;
mod tls;

use std::time::Duration;

pub use conn::{Connection, Transport};
pub use resp::Reply;
pub use sync::{Framing, RdbStream, SyncInfo, start_sync};

use crate::config::Secret;

/// Where a Redis server is and how to log in.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The instance's name in the config, for messages.
    pub instance: String,
    /// `host:port`.
    pub addr: String,
    /// ACL user; `None` uses the default user.
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub connect_timeout: Duration,
    /// Longest silence accepted while waiting for a reply or payload bytes.
    /// The `\n` keep-alives a master sends while it prepares the RDB count
    /// as activity.
    pub read_timeout: Duration,
    /// TLS to the server; `None`: plain TCP.
    pub tls: Option<crate::config::TlsConfig>,
}

impl Endpoint {
    pub fn new(instance: &str, addr: &str) -> Endpoint {
        Endpoint {
            instance: instance.to_string(),
            addr: addr.to_string(),
            username: None,
            password: None,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            tls: None,
        }
    }

    fn resp_error(&self, doing: &str, e: resp::RespError) -> ReplError {
        match e {
            resp::RespError::Closed => self.error(
                ErrorKind::Closed,
                format!("the server closed the connection during {doing}"),
            ),
            resp::RespError::Io(e) => {
                if let Some(tls) = &self.tls
                    && let Some(why) = tls::explain(self, tls, &e)
                {
                    return self.error(ErrorKind::Refused, format!("{why} (during {doing})"));
                }
                self.error(
                    ErrorKind::Closed,
                    format!("connection failed during {doing}: {e}"),
                )
            }
            resp::RespError::Protocol(m) => {
                self.error(ErrorKind::Protocol, format!("{doing}: {m}"))
            }
        }
    }

    fn timeout_error(&self, doing: &str, after: Duration) -> ReplError {
        self.error(
            ErrorKind::Timeout,
            format!(
                "no answer within {} s during {doing}; the server may be overloaded or unreachable \
                 (raise `read_timeout_secs` under [instance.{}] if it is just slow)",
                after.as_secs(),
                self.instance
            ),
        )
    }

    fn error(&self, kind: ErrorKind, message: impl Into<String>) -> ReplError {
        ReplError {
            instance: self.instance.clone(),
            addr: self.addr.clone(),
            kind,
            message: message.into(),
        }
    }
}

/// What kind of failure, for callers that react differently (retry on
/// `Loading`, stop on `Auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Connect,
    Auth,
    /// The server is loading its dataset: retry later.
    Loading,
    /// A replica whose master link is down.
    MasterDown,
    Timeout,
    /// The connection closed early, or the payload was cut short.
    Closed,
    Protocol,
    /// The server refused a command for another reason.
    Refused,
}

/// A failure talking to one Redis instance; the message says what to do.
#[derive(Debug, Clone, thiserror::Error)]
#[error("instance '{instance}' ({addr}): {message}")]
pub struct ReplError {
    pub instance: String,
    pub addr: String,
    pub kind: ErrorKind,
    pub message: String,
}

impl ReplError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Loading
                | ErrorKind::MasterDown
                | ErrorKind::Timeout
                | ErrorKind::Closed
                | ErrorKind::Connect
        )
    }
}

/// The value of `key` in `INFO` output parsed by `Connection::info`.
pub fn info_field<'a>(info: &'a [(String, String)], key: &str) -> Option<&'a str> {
    info.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Turns a server error reply into a `ReplError` with the fix.
fn server_error(ep: &Endpoint, during: &str, reply: &str) -> ReplError {
    let code = reply.split_whitespace().next().unwrap_or("");
    let who = if ep.username.is_some() {
        "user and password"
    } else {
        "password"
    };
    match code {
        "NOAUTH" => ep.error(
            ErrorKind::Auth,
            format!("the server requires a password ({during}: {reply}); set `password_env` or `password_file` for the instance"),
        ),
        "WRONGPASS" | "NOPERM" => ep.error(
            ErrorKind::Auth,
            format!("the server refused the {who} ({during}: {reply}); check `username` and the password, and that the ACL user may run REPLCONF and PSYNC/SYNC"),
        ),
        "LOADING" => ep.error(ErrorKind::Loading, format!("the server is loading its dataset ({during}); retry when it has finished")),
        "MASTERDOWN" => ep.error(
            ErrorKind::MasterDown,
            format!("the replica's link to its master is down ({during}: {reply}); back up the master, or wait for the link"),
        ),
        _ if reply.contains("invalid password") || reply.contains("invalid username-password") => ep.error(
            ErrorKind::Auth,
            format!("the server refused the {who} ({during}: {reply}); check the password"),
        ),
        _ if reply.contains("without any password configured") => ep.error(
            ErrorKind::Auth,
            format!("a password is configured but the server has none ({during}); remove `password_env`/`password_file` or set `requirepass`"),
        ),
        _ => ep.error(ErrorKind::Refused, format!("{during} failed: {reply}")),
    }
}
