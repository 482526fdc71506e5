//! A RESP2 connection to one Redis server: connect (plain TCP or TLS),
//! AUTH, commands.

use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::net::TcpStream;

use super::resp::{self, Reply};
use super::{Endpoint, ErrorKind, ReplError, server_error};

/// The byte stream under a connection: plain TCP, or TLS over it.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

/// An open, authenticated connection.
pub struct Connection {
    pub(super) ep: Endpoint,
    pub(super) io: BufReader<Box<dyn Transport>>,
    /// Commands queued for a pipelined send.
    pending: Vec<u8>,
    /// Our end of the connection: an address the server can reach us on.
    local_addr: Option<std::net::SocketAddr>,
    /// The TCP socket under the transport, for socket options; it lives as
    /// long as `io` does.
    fd: std::os::fd::RawFd,
    /// Whether the server answered anything yet: a failure before the
    /// first answer is often the wrong port kind (TLS or plain).
    answered: bool,
}

impl Connection {
    /// Connects and authenticates.
    pub async fn open(ep: &Endpoint) -> Result<Connection, ReplError> {
        let tcp = tokio::time::timeout(ep.connect_timeout, TcpStream::connect(&ep.addr))
            .await
            .map_err(|_| {
                ep.error(
                    ErrorKind::Connect,
                    format!(
                        "no connection within {} s; check `address` and that nothing blocks the port",
                        ep.connect_timeout.as_secs()
                    ),
                )
            })?
            .map_err(|e| {
                ep.error(ErrorKind::Connect, format!("cannot connect: {e}; check `address` and that redis-server runs"))
            })?;
        let _ = tcp.set_nodelay(true);
        let local_addr = tcp.local_addr().ok();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&tcp);
        // SO_RCVLOWAT stays on the TCP socket under TLS: the kernel still
        // wakes the reader once per batch of (encrypted) bytes.
        let transport: Box<dyn Transport> = match &ep.tls {
            Some(tls) => super::tls::connect(ep, tls, tcp).await?,
            None => Box::new(tcp),
        };
        let mut conn = Connection {
            ep: ep.clone(),
            io: BufReader::with_capacity(256 << 10, transport),
            pending: Vec::new(),
            local_addr,
            fd,
            answered: false,
        };
        if let Some(password) = &ep.password {
            let pw = password.expose().as_bytes();
            let reply = match &ep.username {
                Some(user) => conn.raw(&[b"AUTH", user.as_bytes(), pw]).await?,
                None => conn.raw(&[b"AUTH", pw]).await?,
            };
            if let Reply::Error(e) = reply {
                return Err(server_error(ep, "AUTH", &e));
            }
        } else if ep.tls.is_some() {
            // Under TLS 1.3 a server that wants a client certificate says
            // so only after our side of the handshake finished: one PING
            // brings its refusal here, where it names the fix. Any answer
            // (NOAUTH included) means the session was accepted.
            conn.raw(&[b"PING"]).await?;
        }
        Ok(conn)
    }

    /// Asks the kernel to wake a reader only once `bytes` are queued (or the
    /// peer closed): a bulk transfer then costs a wake-up per `bytes`
    /// instead of one per segment the server wrote. Best effort: where the
    /// option is not supported, reads wake as usual.
    pub(super) fn set_recv_lowat(&self, bytes: usize) {
        let value = bytes.min(i32::MAX as usize) as libc::c_int;
        // SAFETY: `fd` is the socket owned by `self.io`, open for as long as
        // `self` lives; the option value is a c_int as SO_RCVLOWAT expects.
        let r = unsafe {
            libc::setsockopt(
                self.fd,
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            tracing::debug!("SO_RCVLOWAT not set: {}", std::io::Error::last_os_error());
        }
    }

    /// Our address as the server sees the connection come from.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.local_addr
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.ep
    }

    /// Sends a command and reads its reply, error replies included.
    pub async fn raw(&mut self, args: &[&[u8]]) -> Result<Reply, ReplError> {
        let doing = String::from_utf8_lossy(args.first().copied().unwrap_or(b"")).to_uppercase();
        let t = self.ep.read_timeout;
        let r = tokio::time::timeout(t, async {
            resp::write_command(self.io.get_mut(), args).await?;
            resp::read_reply(&mut self.io).await
        })
        .await;
        match r {
            Err(_) => Err(self.ep.timeout_error(&doing, t)),
            Ok(Err(e)) => Err(self.first_answer_hint(self.ep.resp_error(&doing, e))),
            Ok(Ok(reply)) => {
                self.answered = true;
                Ok(reply)
            }
        }
    }

    /// Adds the likely cause to a connection that failed before the
    /// server answered anything: a TLS port spoken to in plain text, or a
    /// server that wants a client certificate and hung up on us.
    fn first_answer_hint(&self, mut e: ReplError) -> ReplError {
        if self.answered || !matches!(e.kind, ErrorKind::Closed | ErrorKind::Protocol) {
            return e;
        }
        match &self.ep.tls {
            None => e.message.push_str(
                "; if this port is the server's tls-port, the server speaks TLS: configure TLS for it \
                 (the instance's `tls` table, or `target_tls` for a target)",
            ),
            Some(tls) if !tls.has_client_cert() => e.message.push_str(&format!(
                "; if the server requires client certificates (tls-auth-clients), set `{0}.cert_file` and `{0}.key_file`",
                tls.key
            )),
            Some(_) => {}
        }
        e
    }

    /// Sends a command; an error reply becomes a `ReplError` with the fix.
    pub async fn command(&mut self, args: &[&[u8]]) -> Result<Reply, ReplError> {
        let reply = self.raw(args).await?;
        match reply {
            Reply::Error(e) => {
                let doing =
                    String::from_utf8_lossy(args.first().copied().unwrap_or(b"")).to_uppercase();
                Err(server_error(&self.ep, &doing, &e))
            }
            r => Ok(r),
        }
    }

    /// Queues a command without waiting for its reply (pipelining); see
    /// `flush` and `read_reply`.
    pub fn queue(&mut self, args: &[&[u8]]) {
        resp::encode(args, &mut self.pending);
    }

    /// Bytes queued and not yet sent.
    pub fn queued_bytes(&self) -> usize {
        self.pending.len()
    }

    /// Sends the queued commands.
    pub async fn flush(&mut self) -> Result<(), ReplError> {
        use tokio::io::AsyncWriteExt;
        let t = self.ep.read_timeout;
        let buf = std::mem::take(&mut self.pending);
        let r = tokio::time::timeout(t, async {
            let w = self.io.get_mut();
            w.write_all(&buf).await?;
            w.flush().await
        })
        .await;
        let mut buf = buf;
        buf.clear();
        self.pending = buf;
        match r {
            Err(_) => Err(self.ep.timeout_error("sending commands", t)),
            Ok(Err(e)) => Err(self.ep.resp_error("sending commands", e.into())),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Reads the reply to the oldest command sent and not yet answered.
    pub async fn read_reply(&mut self) -> Result<Reply, ReplError> {
        let t = self.ep.read_timeout;
        match tokio::time::timeout(t, resp::read_reply(&mut self.io)).await {
            Err(_) => Err(self.ep.timeout_error("waiting for replies", t)),
            Ok(Err(e)) => Err(self.ep.resp_error("waiting for replies", e)),
            Ok(Ok(r)) => Ok(r),
        }
    }

    /// `INFO section` as key/value pairs.
    pub async fn info(&mut self, section: &str) -> Result<Vec<(String, String)>, ReplError> {
        let reply = self.command(&[b"INFO", section.as_bytes()]).await?;
        let text = reply.text().unwrap_or_default();
        Ok(text
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect())
    }
}
