//! The replica handshake and the RDB payload, read the way `redis-cli --rdb`
//! does: `REPLCONF capa eof`, `REPLCONF rdb-only 1` (7.0+), `PSYNC ? -1`
//! (or `SYNC` on servers without PSYNC), then `$<len>` + bytes (disk-based)
//! or `$EOF:<mark>` + bytes + mark (diskless).

use tokio::io::{AsyncBufReadExt, AsyncReadExt};

use super::conn::Connection;
use super::resp::{self, Reply};
use super::{Endpoint, ErrorKind, ReplError};

const EOF_MARK_LEN: usize = 40;
/// Bytes the kernel queues before it wakes the payload reader; see
/// [`RdbStream::read_some`].
const BATCH: usize = 256 << 10;
/// How long a batched read waits for `BATCH` bytes before it takes what has
/// arrived: at 70 MB/s a batch fills in under 4 ms.
const BATCH_WAIT: std::time::Duration = std::time::Duration::from_millis(10);

/// How the payload is framed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Framing {
    /// Disk-based: the length was announced.
    Sized { len: u64 },
    /// Diskless: the payload ends with the 40-byte mark.
    EofMark,
}

/// What the handshake established.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SyncInfo {
    /// From `+FULLRESYNC`; `None` after a plain `SYNC`.
    pub replid: Option<String>,
    pub offset: Option<i64>,
    pub framing: Framing,
    /// Whether the server accepted `REPLCONF rdb-only` (it then closes
    /// after the payload instead of streaming commands).
    pub rdb_only: bool,
    /// Whether `PSYNC` was used (else `SYNC`).
    pub psync: bool,
}

/// The RDB payload as it arrives.
pub struct RdbStream {
    conn: Connection,
    framing: Framing,
    /// Bytes handed out so far.
    delivered: u64,
    /// Diskless: bytes read but not yet handed out; the last 40 are held
    /// back until more arrive, because they may be the mark. As in Redis's
    /// own replica, the payload has ended when the bytes received so far
    /// end with the mark: a master sends nothing after it until the
    /// replica acknowledges (which we never do), so the mark is never
    /// followed by other bytes, and scanning every byte for it would cost
    /// CPU for nothing (hex-heavy data gives a substring search many false
    /// starts).
    tail: Vec<u8>,
    mark: Vec<u8>,
    /// Diskless: the mark was found; `tail` holds only payload bytes.
    mark_seen: bool,
    done: bool,
    /// Whether the server closes the connection after the payload.
    rdb_only: bool,
    /// Whether reads currently wait for `BATCH` bytes (SO_RCVLOWAT).
    batched: bool,
}

/// Runs the handshake on a fresh connection and returns the payload stream.
pub async fn start_sync(ep: &Endpoint) -> Result<(SyncInfo, RdbStream), ReplError> {
    let mut conn = Connection::open(ep).await?;
    // Tell the server we can take a diskless (EOF-marked) payload.
    conn.command(&[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"])
        .await?;
    // 7.0+: the server sends only the RDB and closes; older ones say -ERR.
    let rdb_only = match conn.raw(&[b"REPLCONF", b"rdb-only", b"1"]).await? {
        Reply::Status(_) => true,
        Reply::Error(e) if e.starts_with("NOAUTH") || e.starts_with("NOPERM") => {
            return Err(super::server_error(ep, "REPLCONF", &e));
        }
        _ => false,
    };
    let (psync, replid, offset) = psync_or_sync(&mut conn).await?;
    let (framing, mark) = read_payload_header(&mut conn).await?;
    let info = SyncInfo {
        replid,
        offset,
        framing: framing.clone(),
        rdb_only,
        psync,
    };
    Ok((
        info,
        RdbStream {
            conn,
            framing,
            delivered: 0,
            tail: Vec::new(),
            mark,
            mark_seen: false,
            done: false,
            rdb_only,
            batched: false,
        }
        .batch_reads(),
    ))
}

/// Skips the `\n` keep-alives a master sends while it prepares, resetting
/// the silence timer on each, and returns the first real line.
async fn next_line(conn: &mut Connection, doing: &str) -> Result<String, ReplError> {
    let t = conn.ep.read_timeout;
    loop {
        let ep = &conn.ep;
        let byte = tokio::time::timeout(t, conn.io.fill_buf())
            .await
            .map_err(|_| ep.timeout_error(doing, t))?
            .map_err(|e| ep.resp_error(doing, e.into()))?
            .first()
            .copied();
        match byte {
            None => return Err(conn.ep.resp_error(doing, resp::RespError::Closed)),
            Some(b'\n') => conn.io.consume(1),
            Some(_) => {
                return tokio::time::timeout(t, resp::read_line(&mut conn.io))
                    .await
                    .map_err(|_| conn.ep.timeout_error(doing, t))?
                    .map_err(|e| conn.ep.resp_error(doing, e));
            }
        }
    }
}

async fn psync_or_sync(
    conn: &mut Connection,
) -> Result<(bool, Option<String>, Option<i64>), ReplError> {
    resp::write_command(conn.io.get_mut(), &[b"PSYNC", b"?", b"-1"])
        .await
        .map_err(|e| conn.ep.resp_error("PSYNC", e))?;
    let line = next_line(conn, "PSYNC").await?;
    if let Some(rest) = line.strip_prefix("+FULLRESYNC") {
        let mut parts = rest.split_whitespace();
        let replid = parts.next().map(str::to_string);
        let offset = parts.next().and_then(|o| o.parse().ok());
        return Ok((true, replid, offset));
    }
    if let Some(e) = line.strip_prefix('-') {
        if e.starts_with("ERR unknown command") {
            // A server older than 2.8 knows only SYNC, which answers with the
            // payload header directly.
            resp::write_command(conn.io.get_mut(), &[b"SYNC"])
                .await
                .map_err(|e| conn.ep.resp_error("SYNC", e))?;
            return Ok((false, None, None));
        }
        return Err(super::server_error(&conn.ep, "PSYNC", e));
    }
    Err(conn.ep.error(
        ErrorKind::Protocol,
        format!("unexpected answer to PSYNC: `{line}`"),
    ))
}

/// Reads `$<len>` or `$EOF:<mark>`; returns the framing and the mark.
async fn read_payload_header(conn: &mut Connection) -> Result<(Framing, Vec<u8>), ReplError> {
    let line = next_line(conn, "waiting for the RDB").await?;
    if let Some(e) = line.strip_prefix('-') {
        return Err(super::server_error(&conn.ep, "SYNC", e));
    }
    let Some(rest) = line.strip_prefix('$') else {
        return Err(conn.ep.error(
            ErrorKind::Protocol,
            format!("expected the RDB payload header, got `{line}`"),
        ));
    };
    if let Some(mark) = rest.strip_prefix("EOF:") {
        if mark.len() != EOF_MARK_LEN {
            return Err(conn.ep.error(
                ErrorKind::Protocol,
                format!("an EOF mark of {} bytes, not 40", mark.len()),
            ));
        }
        return Ok((Framing::EofMark, mark.as_bytes().to_vec()));
    }
    let len: u64 = rest.parse().map_err(|_| {
        conn.ep
            .error(ErrorKind::Protocol, format!("bad payload length `{rest}`"))
    })?;
    Ok((Framing::Sized { len }, Vec::new()))
}

impl RdbStream {
    /// Reads the next bytes of the RDB into `buf`; `Ok(0)` at the end,
    /// after the framing confirmed it (announced length reached, or the
    /// EOF mark seen).
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ReplError> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        let t = self.conn.ep.read_timeout;
        match self.framing {
            Framing::Sized { len } => {
                let left = len - self.delivered;
                if left == 0 {
                    self.done = true;
                    return Ok(0);
                }
                let want = buf.len().min(left.min(usize::MAX as u64) as usize);
                if self.batched && left < BATCH as u64 {
                    // The last bytes may be fewer than a batch.
                    self.unbatch();
                }
                let n = tokio::time::timeout(t, self.read_some(&mut buf[..want]))
                    .await
                    .map_err(|_| self.conn.ep.timeout_error("the RDB transfer", t))?
                    .map_err(|e| self.conn.ep.resp_error("the RDB transfer", e.into()))?;
                if n == 0 {
                    return Err(self.conn.ep.error(
                        ErrorKind::Closed,
                        format!(
                            "the server closed the connection after {} of the {len} announced RDB bytes; the source may have restarted: retry",
                            self.delivered
                        ),
                    ));
                }
                self.delivered += n as u64;
                Ok(n)
            }
            Framing::EofMark => loop {
                if self.mark_seen {
                    if self.tail.is_empty() {
                        self.done = true;
                        return Ok(0);
                    }
                    return Ok(self.give(buf, self.tail.len()));
                }
                let safe = self.tail.len().saturating_sub(EOF_MARK_LEN);
                if safe > 0 {
                    return Ok(self.give(buf, safe));
                }
                if buf.len() >= 4 * EOF_MARK_LEN {
                    if let Some(n) = self.read_into(buf).await? {
                        return Ok(n);
                    }
                    continue;
                }
                if self.batched {
                    // Small reads are for tests and odd callers: keep them
                    // simple rather than fast.
                    self.unbatch();
                }
                let ep = &self.conn.ep;
                let data = tokio::time::timeout(t, self.conn.io.fill_buf())
                    .await
                    .map_err(|_| ep.timeout_error("the RDB transfer", t))?
                    .map_err(|e| ep.resp_error("the RDB transfer", e.into()))?;
                if data.is_empty() {
                    return Err(self.closed_before_mark(self.tail.len()));
                }
                let n = data.len();
                self.tail.extend_from_slice(data);
                self.conn.io.consume(n);
                if self.tail.ends_with(&self.mark) {
                    self.tail.truncate(self.tail.len() - EOF_MARK_LEN);
                    self.mark_seen = true;
                }
            },
        }
    }

    fn closed_before_mark(&self, held: usize) -> ReplError {
        self.conn.ep.error(
            ErrorKind::Closed,
            format!(
                "the server closed the connection after {} RDB bytes without the end-of-payload mark; \
                 the transfer is incomplete: retry",
                self.delivered + held as u64
            ),
        )
    }

    /// Diskless, with a large `buf` and at most the held-back bytes in
    /// `tail`: reads straight into `buf` after them, saving two copies of
    /// every byte. `Some(n)` when `n > 0` bytes are ready in `buf`, `None`
    /// when everything read is held back (or the mark came first).
    async fn read_into(&mut self, buf: &mut [u8]) -> Result<Option<usize>, ReplError> {
        let held = self.tail.len();
        buf[..held].copy_from_slice(&self.tail);
        let t = self.conn.ep.read_timeout;
        let n = tokio::time::timeout(t, self.read_some(&mut buf[held..]))
            .await
            .map_err(|_| self.conn.ep.timeout_error("the RDB transfer", t))?
            .map_err(|e| self.conn.ep.resp_error("the RDB transfer", e.into()))?;
        if n == 0 {
            return Err(self.closed_before_mark(held));
        }
        let total = held + n;
        self.tail.clear();
        let ready = if buf[..total].ends_with(&self.mark) {
            self.mark_seen = true;
            total - EOF_MARK_LEN
        } else {
            let keep = total.saturating_sub(EOF_MARK_LEN);
            self.tail.extend_from_slice(&buf[keep..total]);
            keep
        };
        self.delivered += ready as u64;
        Ok((ready > 0).then_some(ready))
    }

    /// Turns on batched wake-ups for a payload whose end the kernel will
    /// see: a diskless payload from a server that closes after it
    /// (`rdb-only`), or a sized one longer than a batch.
    fn batch_reads(mut self) -> Self {
        let ends_visibly = match self.framing {
            Framing::EofMark => self.rdb_only,
            Framing::Sized { len } => len > BATCH as u64,
        };
        if ends_visibly {
            self.conn.set_recv_lowat(BATCH);
            self.batched = true;
        }
        self
    }

    fn unbatch(&mut self) {
        self.conn.set_recv_lowat(1);
        self.batched = false;
    }

    /// One read from the connection. The server writes the payload in
    /// ~16 KiB pieces; woken for each, the reader would switch threads
    /// ~100,000 times for a 600 MB RDB, CPU taken from the fork producing
    /// it. Batched, it wakes once per `BATCH`. When a batch does not fill
    /// within `BATCH_WAIT` (a slow server, or the payload's last bytes),
    /// this read takes what has arrived and the next one batches again.
    async fn read_some(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.batched {
            return self.conn.io.read(buf).await;
        }
        if let Ok(r) = tokio::time::timeout(BATCH_WAIT, self.conn.io.read(buf)).await {
            return r;
        }
        self.conn.set_recv_lowat(1);
        let r = self.conn.io.read(buf).await;
        self.conn.set_recv_lowat(BATCH);
        r
    }

    /// Moves up to `max` bytes of `tail` into `buf`.
    fn give(&mut self, buf: &mut [u8], max: usize) -> usize {
        let n = max.min(buf.len());
        buf[..n].copy_from_slice(&self.tail[..n]);
        self.tail.drain(..n);
        self.delivered += n as u64;
        n
    }

    /// Bytes handed out so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }
}
