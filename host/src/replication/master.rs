//! The master side of a full sync, for the handoff restore: redback poses as
//! a master, the target runs `REPLICAOF` to it, and redback streams the
//! backup's RDB as the full-resync payload so the target loads it at native
//! speed.
//!
//! A target with `tls-replication yes` speaks TLS to its master: the first
//! byte it sends tells (0x16, a TLS handshake record), and the master then
//! answers with the endpoint's `handoff_cert_file`.

use std::io::Read;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::conn::Transport;
use super::resp;
use super::{Endpoint, ErrorKind, ReplError};

/// A listening fake master.
pub struct FakeMaster {
    listener: TcpListener,
    ep: Endpoint,
}

impl FakeMaster {
    /// Listens on `addr` (`127.0.0.1:0` picks a port). `ep` names the target
    /// for messages.
    pub async fn bind(addr: &str, ep: &Endpoint) -> Result<FakeMaster, ReplError> {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            ep.error(
                ErrorKind::Connect,
                format!(
                    "cannot listen on {addr} for the handoff: {e}; pick another --listen address"
                ),
            )
        })?;
        Ok(FakeMaster {
            listener,
            ep: ep.clone(),
        })
    }

    /// The address the target must connect to.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Waits for the target, answers its replica handshake and sends
    /// `rdb_len` bytes read from `rdb` (a blocking reader, run on a blocking
    /// thread) as the payload. The last chunk is held back until `verified`
    /// says the source checked out: a replica acts only on a complete
    /// payload, so a damaged backup never reaches its dataset. Returns the
    /// connection, which must stay open until the target reports the link up.
    pub async fn serve(
        self,
        rdb: Box<dyn Read + Send>,
        rdb_len: u64,
        accept_timeout: Duration,
        verified: std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>,
        sent: &std::sync::atomic::AtomicU64,
    ) -> Result<Box<dyn Transport>, ReplError> {
        let ep = self.ep.clone();
        let (stream, _) = tokio::time::timeout(accept_timeout, self.listener.accept())
            .await
            .map_err(|_| {
                ep.error(
                    ErrorKind::Timeout,
                    format!(
                        "the target did not connect to {} within {} s after REPLICAOF; it must be able to reach that address (set --listen)",
                        self.listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
                        accept_timeout.as_secs()
                    ),
                )
            })?
            .map_err(|e| ep.error(ErrorKind::Connect, format!("accepting the target's connection: {e}")))?;
        let _ = stream.set_nodelay(true);
        let stream = self.handshake(stream).await?;
        let mut io = BufReader::new(stream);
        // The replica's handshake: PING, AUTH (masterauth), REPLCONF ..., then PSYNC.
        loop {
            let args = read_command(&mut io, &ep).await?;
            let name = args
                .first()
                .map(|a| a.to_ascii_uppercase())
                .unwrap_or_default();
            match name.as_slice() {
                b"PING" => io.get_mut().write_all(b"+PONG\r\n").await,
                b"AUTH" | b"REPLCONF" => io.get_mut().write_all(b"+OK\r\n").await,
                b"PSYNC" | b"SYNC" => break,
                other => {
                    let msg = format!(
                        "-ERR redback's handoff master does not serve {}\r\n",
                        String::from_utf8_lossy(other)
                    );
                    io.get_mut().write_all(msg.as_bytes()).await
                }
            }
            .map_err(|e| {
                ep.error(
                    ErrorKind::Closed,
                    format!("answering the target's handshake: {e}"),
                )
            })?;
        }
        let replid = random_replid();
        let header = format!("+FULLRESYNC {replid} 0\r\n${rdb_len}\r\n");
        let mut stream = io.into_inner();
        stream
            .write_all(header.as_bytes())
            .await
            .map_err(|e| ep.error(ErrorKind::Closed, format!("starting the transfer: {e}")))?;
        // Decompress on a blocking thread; write here. Bounded: 4 chunks.
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(4);
        let producer = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
            let mut rdb = rdb;
            let mut sent = 0u64;
            loop {
                let mut buf = vec![0u8; 1 << 20];
                let n = rdb.read(&mut buf)?;
                if n == 0 {
                    return Ok(sent);
                }
                buf.truncate(n);
                sent += n as u64;
                if tx.blocking_send(buf).is_err() {
                    return Ok(sent);
                }
            }
        });
        let mut written = 0u64;
        let mut held: Option<Vec<u8>> = None;
        while let Some(chunk) = rx.recv().await {
            let pending = held.as_ref().map_or(0, Vec::len) as u64;
            if written + pending + chunk.len() as u64 > rdb_len {
                return Err(ep.error(
                    ErrorKind::Protocol,
                    format!(
                        "the backup's RDB is longer than the {rdb_len} bytes its manifest says"
                    ),
                ));
            }
            if let Some(previous) = held.replace(chunk) {
                stream.write_all(&previous).await.map_err(|e| {
                    ep.error(
                        ErrorKind::Closed,
                        format!(
                            "the target closed the sync after {written} of {rdb_len} bytes: {e}"
                        ),
                    )
                })?;
                written += previous.len() as u64;
                sent.store(written, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let produced = producer.await;
        // The source's own check speaks first: a damaged object usually
        // also breaks the decompressor, and its sha256 says why.
        verified.await.map_err(|m| {
            ep.error(
                ErrorKind::Protocol,
                format!("{m}; the last bytes were held back, so the target kept its data"),
            )
        })?;
        let produced = produced
            .map_err(|e| {
                ep.error(
                    ErrorKind::Protocol,
                    format!("the decompressor stopped: {e}"),
                )
            })?
            .map_err(|e| ep.error(ErrorKind::Protocol, format!("reading the backup: {e}")))?;
        let last = held.unwrap_or_default();
        if produced != rdb_len || written + last.len() as u64 != rdb_len {
            return Err(ep.error(
                ErrorKind::Protocol,
                format!(
                    "the backup holds {produced} RDB bytes, the manifest says {rdb_len}; \
                     the target never got a complete payload"
                ),
            ));
        }
        stream
            .write_all(&last)
            .await
            .map_err(|e| ep.error(ErrorKind::Closed, format!("finishing the sync: {e}")))?;
        stream
            .flush()
            .await
            .map_err(|e| ep.error(ErrorKind::Closed, e.to_string()))?;
        Ok(stream)
    }
}

impl FakeMaster {
    /// Plain TCP, or TLS when the target's first byte opens a TLS
    /// handshake (`tls-replication yes`).
    async fn handshake(&self, stream: TcpStream) -> Result<Box<dyn Transport>, ReplError> {
        let ep = &self.ep;
        let mut first = [0u8; 1];
        let t = Duration::from_secs(30);
        let n = tokio::time::timeout(t, stream.peek(&mut first))
            .await
            .map_err(|_| ep.timeout_error("the target's replica handshake", t))?
            .map_err(|e| ep.error(ErrorKind::Closed, format!("reading the target: {e}")))?;
        if n == 0 || first[0] != 0x16 {
            return Ok(Box::new(stream));
        }
        match ep.tls.as_ref().and_then(|t| t.handoff.clone()) {
            Some(config) => super::tls::accept(ep, config, stream, t).await,
            None => Err(ep.error(
                ErrorKind::Refused,
                format!(
                    "the target speaks TLS to its master (tls-replication yes), and redback has no certificate \
                     for that: set `{}.handoff_cert_file` and `handoff_key_file`, or restore with --mode restore",
                    ep.tls.as_ref().map_or("tls", |t| t.key.as_str())
                ),
            )),
        }
    }
}

/// Reads one command (RESP array or inline) from the replica.
async fn read_command(
    io: &mut BufReader<Box<dyn Transport>>,
    ep: &Endpoint,
) -> Result<Vec<Vec<u8>>, ReplError> {
    let t = Duration::from_secs(30);
    let r = tokio::time::timeout(t, async {
        let line = resp::read_line(io).await?;
        if let Some(n) = line.strip_prefix('*') {
            let n: usize = n
                .parse()
                .map_err(|_| resp::RespError::Protocol(format!("`{line}`")))?;
            let mut args = Vec::with_capacity(n.min(16));
            for _ in 0..n {
                let len_line = resp::read_line(io).await?;
                let len: usize = len_line
                    .strip_prefix('$')
                    .and_then(|l| l.parse().ok())
                    .filter(|l| *l <= 64 << 10)
                    .ok_or_else(|| resp::RespError::Protocol(format!("`{len_line}`")))?;
                let mut a = vec![0; len + 2];
                io.read_exact(&mut a).await?;
                a.truncate(len);
                args.push(a);
            }
            Ok(args)
        } else {
            Ok(line
                .split_whitespace()
                .map(|w| w.as_bytes().to_vec())
                .collect())
        }
    })
    .await;
    match r {
        Err(_) => Err(ep.timeout_error("the target's replica handshake", t)),
        Ok(Err(e)) => Err(ep.resp_error("the target's replica handshake", e)),
        Ok(Ok(a)) => Ok(a),
    }
}

/// Keeps reading (and dropping) what the replica sends (`REPLCONF ACK`)
/// so its writes never block, until the connection closes.
pub fn drain(stream: Box<dyn Transport>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut s = stream;
        let mut buf = [0u8; 1024];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
}

/// A fresh 40-hex-digit replication id, as a real master would make.
fn random_replid() -> String {
    use std::hash::{BuildHasher, Hasher};
    let state = std::collections::hash_map::RandomState::new();
    (0..3)
        .map(|i| {
            let mut h = state.build_hasher();
            h.write_u32(i);
            format!("{:016x}", h.finish())
        })
        .collect::<String>()[..40]
        .to_string()
}
