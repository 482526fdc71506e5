//! RESP2 framing: writing commands, reading replies, with limits on what a
//! peer may make us allocate.

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Longest status or error line accepted (a `+FULLRESYNC` line is ~60 bytes).
const MAX_LINE: usize = 64 << 10;
/// Largest bulk string accepted in a reply (`proto-max-bulk-len` default).
pub const MAX_BULK: usize = 512 << 20;
/// Most elements accepted in one array reply.
const MAX_ARRAY: usize = 16 << 20;

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text, for status, bulk and integer replies.
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Status(s) => Some(s.clone()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            Reply::Integer(i) => Some(i.to_string()),
            _ => None,
        }
    }
}

/// What went wrong at the framing level.
#[derive(Debug, thiserror::Error)]
pub enum RespError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the connection was closed")]
    Closed,
    #[error("unexpected reply: {0}")]
    Protocol(String),
}

/// Encodes one command as a RESP array of bulk strings.
pub fn encode(args: &[&[u8]], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

pub async fn write_command<W: AsyncWrite + Unpin>(
    w: &mut W,
    args: &[&[u8]],
) -> Result<(), RespError> {
    let mut buf = Vec::new();
    encode(args, &mut buf);
    w.write_all(&buf).await?;
    w.flush().await?;
    Ok(())
}

/// Reads one line without its CRLF (or bare LF).
pub async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<String, RespError> {
    let mut line = Vec::new();
    let n = (&mut *r)
        .take(MAX_LINE as u64 + 2)
        .read_until(b'\n', &mut line)
        .await?;
    if n == 0 {
        return Err(RespError::Closed);
    }
    if line.last() != Some(&b'\n') {
        return Err(RespError::Protocol(format!(
            "a line longer than {MAX_LINE} bytes"
        )));
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

fn parse_int(s: &str) -> Result<i64, RespError> {
    s.parse()
        .map_err(|_| RespError::Protocol(format!("`{s}` is not an integer")))
}

/// Reads one reply.
pub async fn read_reply<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<Reply, RespError> {
    // Arrays nest; an explicit stack keeps the future small and recursion out.
    enum Frame {
        Array { items: Vec<Reply>, want: usize },
    }
    let mut stack: Vec<Frame> = Vec::new();
    loop {
        let line = read_line(r).await?;
        let (tag, rest) = line.split_at(line.len().min(1));
        let mut value = match tag {
            "+" => Reply::Status(rest.to_string()),
            "-" => Reply::Error(rest.to_string()),
            ":" => Reply::Integer(parse_int(rest)?),
            "$" => {
                let len = parse_int(rest)?;
                if len < 0 {
                    Reply::Bulk(None)
                } else if len as usize > MAX_BULK {
                    return Err(RespError::Protocol(format!("a bulk string of {len} bytes")));
                } else {
                    let mut data = vec![0; len as usize + 2];
                    r.read_exact(&mut data).await.map_err(|e| match e.kind() {
                        std::io::ErrorKind::UnexpectedEof => RespError::Closed,
                        _ => RespError::Io(e),
                    })?;
                    data.truncate(len as usize);
                    Reply::Bulk(Some(data))
                }
            }
            "*" => {
                let len = parse_int(rest)?;
                if len < 0 {
                    Reply::Array(None)
                } else if len as usize > MAX_ARRAY {
                    return Err(RespError::Protocol(format!("an array of {len} elements")));
                } else if len == 0 {
                    Reply::Array(Some(Vec::new()))
                } else {
                    stack.push(Frame::Array {
                        items: Vec::with_capacity((len as usize).min(1024)),
                        want: len as usize,
                    });
                    continue;
                }
            }
            _ => {
                return Err(RespError::Protocol(format!(
                    "`{}`",
                    line.chars().take(80).collect::<String>()
                )));
            }
        };
        loop {
            match stack.last_mut() {
                None => return Ok(value),
                Some(Frame::Array { items, want }) => {
                    items.push(value);
                    if items.len() < *want {
                        break;
                    }
                    let Some(Frame::Array { items, .. }) = stack.pop() else {
                        unreachable!()
                    };
                    value = Reply::Array(Some(items));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> Result<Reply, RespError> {
        let mut r = tokio::io::BufReader::new(bytes);
        read_reply(&mut r).await
    }

    #[tokio::test]
    async fn replies_of_every_kind() {
        assert_eq!(parse(b"+OK\r\n").await.unwrap(), Reply::Status("OK".into()));
        assert_eq!(
            parse(b"-ERR no\r\n").await.unwrap(),
            Reply::Error("ERR no".into())
        );
        assert_eq!(parse(b":-5\r\n").await.unwrap(), Reply::Integer(-5));
        assert_eq!(
            parse(b"$3\r\na\0b\r\n").await.unwrap(),
            Reply::Bulk(Some(b"a\0b".to_vec()))
        );
        assert_eq!(parse(b"$-1\r\n").await.unwrap(), Reply::Bulk(None));
        assert_eq!(
            parse(b"*2\r\n*1\r\n:1\r\n$1\r\nx\r\n").await.unwrap(),
            Reply::Array(Some(vec![
                Reply::Array(Some(vec![Reply::Integer(1)])),
                Reply::Bulk(Some(b"x".to_vec()))
            ]))
        );
    }

    #[tokio::test]
    async fn hostile_replies_are_refused() {
        assert!(matches!(
            parse(b"$99999999999\r\n").await,
            Err(RespError::Protocol(_))
        ));
        assert!(matches!(
            parse(b"*99999999999\r\n").await,
            Err(RespError::Protocol(_))
        ));
        assert!(matches!(parse(b"$5\r\nab").await, Err(RespError::Closed)));
        assert!(matches!(
            parse(b"?x\r\n").await,
            Err(RespError::Protocol(_))
        ));
        assert!(matches!(parse(b"").await, Err(RespError::Closed)));
    }
}
