//! The handoff restore of a whole instance: redback serves the backup as a
//! replication master, the target runs `REPLICAOF` to it and loads the RDB
//! at its native speed, then `REPLICAOF NO ONE` (and its previous master, if
//! it had one) puts it back on its own. A replica throws its data away when
//! it loads a new payload, so the last bytes of the payload are held back
//! until the stored object's sha256 matched the manifest: a damaged backup
//! leaves the target as it was, in one pass.
//!
//! A target with `tls-replication yes` connects to its master over TLS, so
//! the handoff needs a server certificate the target trusts (the target's
//! `handoff_cert_file`); without one, [`unavailable`] says why and the
//! caller restores by the RESTORE pipeline instead, saying so.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Report, RestoreError, total_keys};
use crate::backup::{self, Manifest};
use crate::replication::master::{FakeMaster, drain};
use crate::replication::{Connection, Endpoint, info_field};
use crate::storage::Storage;

/// Where the fake master listens and what address the target is told.
#[derive(Debug, Clone)]
pub struct HandoffOptions {
    /// Listen address, e.g. `0.0.0.0:7481` (port 0: any). `None`: the
    /// address our connection to the target comes from, any port, which
    /// the target can reach unless a NAT is in the way.
    pub listen: Option<String>,
    /// The `host:port` the target should connect to when it differs from
    /// the listen address (NAT, containers). Port 0 in it is replaced by
    /// the port actually bound.
    pub advertise: Option<String>,
    /// How long to wait for the target to load the RDB.
    pub load_timeout: Duration,
}

impl Default for HandoffOptions {
    fn default() -> Self {
        HandoffOptions {
            listen: None,
            advertise: None,
            load_timeout: Duration::from_secs(3600),
        }
    }
}

/// Why a handoff into `target` cannot work, or `None` when it can: a
/// target that replicates over TLS (`tls-replication yes`, or a TLS
/// connection whose `CONFIG GET` is refused) needs a handoff certificate.
pub async fn unavailable(
    target: &Endpoint,
) -> Result<Option<String>, crate::replication::ReplError> {
    if target.tls.as_ref().is_some_and(|t| t.handoff.is_some()) {
        return Ok(None);
    }
    let mut conn = Connection::open(target).await?;
    let tls_replication = match conn.raw(&[b"CONFIG", b"GET", b"tls-replication"]).await? {
        crate::replication::Reply::Array(Some(items)) => items
            .get(1)
            .and_then(|r| r.text())
            .map(|v| v.eq_ignore_ascii_case("yes")),
        _ => None,
    };
    let key = target.tls.as_ref().map_or("tls", |t| t.key.as_str());
    Ok(match tls_replication {
        Some(true) => Some(format!(
            "the target replicates over TLS (tls-replication yes) and `{key}` has no `handoff_cert_file` \
             for redback to serve it with"
        )),
        None if target.tls.is_some() => Some(format!(
            "the target does not say whether it replicates over TLS (CONFIG GET refused) and `{key}` has no \
             `handoff_cert_file` for redback to serve it with"
        )),
        _ => None,
    })
}

/// Restores the whole of `m` into `target` by handoff, on the data
/// runtime (`data_runtime`).
pub async fn run(
    storage: Arc<dyn Storage>,
    m: &Manifest,
    target: &Endpoint,
    o: &HandoffOptions,
    progress: Arc<super::Progress>,
) -> Result<Report, RestoreError> {
    let (m, target, o) = (m.clone(), target.clone(), o.clone());
    crate::data_runtime::run(async move { hand_off(storage, &m, &target, &o, progress).await })
        .await
}

async fn hand_off(
    storage: Arc<dyn Storage>,
    m: &Manifest,
    target: &Endpoint,
    o: &HandoffOptions,
    progress: Arc<super::Progress>,
) -> Result<Report, RestoreError> {
    let failed = |message: String| RestoreError::Failed {
        target: target.addr.clone(),
        restored: 0,
        message,
    };
    // A key the ring does not have stops the restore before the target
    // is touched.
    backup::stream::readable(storage.as_ref(), m).map_err(backup::VerifyError::from)?;
    if let Some(why) = unavailable(target).await? {
        return Err(failed(format!("{why}; restore with --mode restore")));
    }
    let mut conn = Connection::open(target).await?;
    let before = conn.info("replication").await?;
    let previous_master = match (
        info_field(&before, "role"),
        info_field(&before, "master_host"),
        info_field(&before, "master_port"),
    ) {
        (Some("slave"), Some(h), Some(p)) => Some((h.to_string(), p.to_string())),
        _ => None,
    };
    let listen = match (&o.listen, conn.local_addr()) {
        (Some(l), _) => l.clone(),
        (None, Some(a)) => std::net::SocketAddr::new(a.ip(), 0).to_string(),
        (None, None) => "0.0.0.0:0".into(),
    };
    let master = FakeMaster::bind(&listen, target).await?;
    let bound = master.local_addr();
    let (host, port) = match &o.advertise {
        Some(a) => {
            let (h, p) = a
                .rsplit_once(':')
                .ok_or_else(|| failed(format!("--advertise `{a}` is not HOST:PORT")))?;
            (
                h.to_string(),
                if p == "0" {
                    bound.port().to_string()
                } else {
                    p.to_string()
                },
            )
        }
        None => (bound.ip().to_string(), bound.port().to_string()),
    };
    conn.command(&[b"REPLICAOF", host.as_bytes(), port.as_bytes()])
        .await?;

    let outcome = async {
        let (download, reader) = backup::stream::open(storage, m);
        let (stored, sha256) = (m.data.stored_bytes, m.data.sha256.clone());
        let verified = Box::pin(async move {
            let (n, sha) = download
                .await
                .map_err(|e| format!("the download stopped: {e}"))?
                .map_err(|e| e.to_string())?;
            if n != stored || sha != sha256 {
                return Err(format!(
                    "the backup did not verify: the stored object's sha256 is {sha}, the manifest says {sha256}"
                ));
            }
            Ok(())
        });
        let stream = master
            .serve(reader, m.data.raw_bytes, Duration::from_secs(60), verified, &progress.raw_bytes)
            .await?;
        let keep_alive = drain(stream);
        // Wait for the target to load what it received.
        let started = Instant::now();
        loop {
            // The link is up once the target loaded the payload; DBSIZE
            // answers LOADING until then.
            let r = conn.info("replication").await?;
            if info_field(&r, "master_link_status") == Some("up")
                && conn.command(&[b"DBSIZE"]).await.is_ok()
            {
                break;
            }
            if started.elapsed() > o.load_timeout {
                keep_alive.abort();
                return Err(failed(format!(
                    "the target did not finish loading within {} s",
                    o.load_timeout.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        keep_alive.abort();
        Ok(())
    }
    .await;
    // Whatever happened, the target must not stay a replica of redback.
    let detach = match &previous_master {
        Some((h, p)) => {
            conn.command(&[b"REPLICAOF", h.as_bytes(), p.as_bytes()])
                .await
        }
        None => conn.command(&[b"REPLICAOF", b"NO", b"ONE"]).await,
    };
    outcome?;
    detach?;
    let keys = total_keys(&mut conn).await?;
    let expected = m.stats.get("keys").and_then(|k| k.as_u64()).unwrap_or(0);
    if previous_master.is_none() && keys != expected {
        return Err(failed(format!(
            "the target holds {keys} keys after loading, the backup {expected}"
        )));
    }
    Ok(Report {
        backup: m.id.clone(),
        target: target.addr.clone(),
        mode: "handoff".into(),
        keys_in_backup: expected,
        keys_found: expected,
        keys_restored: keys,
        raw_bytes: m.data.raw_bytes,
        ..Report::default()
    })
}
