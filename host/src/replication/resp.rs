//! RESP2 framing: writing commands, reading replies, with limits on what a
//! peer may make us allocate.

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Longest status or error line accepted (a `+FULLRESYNC` line is ~60 bytes).
const MAX_LINE: usize = 64 << 10;
/// Largest bulk string accepted in a reply (`proto-max-bulk-len` default).
pub const MAX_BULK: usize = 512 << 20;
/// Most of a bulk string's announced length reserved before its bytes arrive.
const BULK_RESERVE: usize = 64 << 10;
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
        // By char, not by byte: the line may start with any character.
        let mut chars = line.chars();
        let tag = chars.next();
        let rest = chars.as_str();
        let mut value = match tag {
            Some('+') => Reply::Status(rest.to_string()),
            Some('-') => Reply::Error(rest.to_string()),
            Some(':') => Reply::Integer(parse_int(rest)?),
            Some('$') => {
                let len = parse_int(rest)?;
                if len < 0 {
                    Reply::Bulk(None)
                } else if len as usize > MAX_BULK {
                    return Err(RespError::Protocol(format!("a bulk string of {len} bytes")));
                } else {
                    // Grown as bytes arrive: a peer announcing 500 MB and
                    // sending ten bytes must not make us allocate 500 MB.
                    let want = len as usize + 2;
                    let mut data = Vec::with_capacity(want.min(BULK_RESERVE));
                    (&mut *r).take(want as u64).read_to_end(&mut data).await?;
                    if data.len() < want {
                        return Err(RespError::Closed);
                    }
                    data.truncate(len as usize);
                    Reply::Bulk(Some(data))
                }
            }
            Some('*') => {
                let len = parse_int(rest)?;
                if len < 0 {
                    Reply::Array(None)
                } else if len as usize > MAX_ARRAY {
                    return Err(RespError::Protocol(format!("an array of {len} elements")));
                } else if len == 0 {
                    Reply::Array(Some(Vec::new()))
                } else {
                    stack.push(Frame::Array {
                        // Grown as elements arrive: nested arrays that each
                        // announce many elements would otherwise reserve
                        // ~32 KiB per 6-byte line.
                        items: Vec::new(),
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

    /// Found by the `resp` fuzz target: a line starting with a byte that is
    /// not ASCII (read as U+FFFD, three bytes) was split at byte 1, inside
    /// that character, which panicked.
    #[tokio::test]
    async fn a_reply_starting_with_a_non_ascii_byte_is_refused_not_a_panic() {
        let input =
            include_bytes!("../../../fuzz/regressions/resp/reply-starting-with-a-non-ascii-byte");
        assert!(matches!(parse(input).await, Err(RespError::Protocol(_))));
        assert!(matches!(
            parse("é\r\n".as_bytes()).await,
            Err(RespError::Protocol(_))
        ));
    }

    /// Found by the `resp` fuzz target: `$4240024` allocated the announced
    /// 4 MB before reading any of it (and `$536870912` 512 MiB), so a peer
    /// could make us allocate far more than it sent. The fuzz target's heap
    /// budget, replaying this input, holds the bound; here, the reply is cut
    /// short and said so.
    #[tokio::test]
    async fn a_bulk_length_is_not_allocated_before_its_bytes_arrive() {
        let input =
            include_bytes!("../../../fuzz/regressions/resp/bulk-length-allocated-before-reading");
        assert!(matches!(parse(input).await, Err(RespError::Closed)));
        let mut big = b"$536870912\r\n".to_vec();
        big.extend_from_slice(&[b'x'; 100]);
        assert!(matches!(parse(&big).await, Err(RespError::Closed)));
    }

    /// Found while writing the `resp` fuzz target (the fuzzer's budget
    /// catches it on this input, but did not reach it by itself in a
    /// short run): 200 nested `*9999` lines, 1,200 bytes, reserved 1,024
    /// elements each, 6.5 MB, ~5,000 times what was read.
    #[tokio::test]
    async fn nested_arrays_are_not_reserved_before_their_elements_arrive() {
        let input = include_bytes!(
            "../../../fuzz/regressions/resp/nested-arrays-reserved-before-their-elements"
        );
        assert!(matches!(parse(input).await, Err(RespError::Closed)));
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
