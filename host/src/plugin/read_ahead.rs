//! Read-ahead for the response bodies a plugin receives over `wasi:http`.
//!
//! hyper hands a response body over one network read at a time, and its
//! connection reads the next piece only once the previous one was taken.
//! Through `wasi:http` that is a round trip between the guest's read, the
//! body and the connection task per piece of a few dozen KiB, which held a
//! download through storage-s3 to about 0.7x of a native client. Here a
//! task pulls the body ahead of the guest, joins what has already arrived
//! into pieces of up to [`PIECE`], and keeps at most [`AHEAD`] of them
//! queued: the connection keeps reading while the guest works, and memory
//! per download stays bounded (about `PIECE * (AHEAD + 1)`).
//!
//! When the sender is the slower side, every read would take the one
//! segment that just arrived and cost a wake-up of the connection, this
//! task and the guest each. A small piece therefore makes the task pause
//! for [`PAUSE`] before the next read, so the socket gathers a larger one:
//! at most a millisecond of latency, and about half the CPU of a download
//! from a slow server (measured with `make bench-s3`).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

/// The most bytes joined into one piece.
pub const PIECE: usize = 1 << 20;
/// How many pieces may wait for the guest.
pub const AHEAD: usize = 4;
/// A piece below this size means the sender is the slower side ...
const SMALL: usize = 256 << 10;
/// ... and reading pauses this long before taking the next one.
const PAUSE: Duration = Duration::from_millis(1);

type Item = Result<Frame<Bytes>, HttpError>;

/// A body that a background task reads ahead of its consumer.
pub struct ReadAhead {
    rx: mpsc::Receiver<Item>,
    task: tokio::task::JoinHandle<()>,
    hint: SizeHint,
    done: bool,
}

impl ReadAhead {
    /// Starts reading `body` ahead. Needs a tokio runtime.
    pub fn new<B>(body: B) -> ReadAhead
    where
        B: Body<Data = Bytes, Error = HttpError> + Send + Unpin + 'static,
    {
        let hint = body.size_hint();
        let done = body.is_end_stream();
        let (tx, rx) = mpsc::channel(AHEAD);
        let task = tokio::spawn(pump(body, tx));
        ReadAhead {
            rx,
            task,
            hint,
            done,
        }
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        // The guest dropped the body: stop reading, which closes the
        // connection instead of draining the rest of the response.
        self.task.abort();
    }
}

/// Reads `body` to its end, sending data joined into pieces and trailers
/// or an error as they come.
async fn pump<B>(mut body: B, tx: mpsc::Sender<Item>)
where
    B: Body<Data = Bytes, Error = HttpError> + Unpin,
{
    loop {
        let Some(first) = body.frame().await else {
            return;
        };
        let first = match first {
            Ok(frame) => frame,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        let data = match first.into_data() {
            Ok(data) => data,
            Err(trailers) => {
                let _ = tx.send(Ok(trailers)).await;
                continue;
            }
        };
        // Join what the connection already holds, without waiting for more.
        let mut piece: Option<BytesMut> = None;
        let mut held = None;
        while piece.as_ref().map_or(data.len(), BytesMut::len) < PIECE {
            match body.frame().now_or_never() {
                Some(Some(Ok(frame))) => match frame.into_data() {
                    Ok(more) => piece
                        .get_or_insert_with(|| {
                            let mut b = BytesMut::with_capacity(PIECE.max(data.len()));
                            b.extend_from_slice(&data);
                            b
                        })
                        .extend_from_slice(&more),
                    Err(trailers) => {
                        held = Some(Ok(trailers));
                        break;
                    }
                },
                Some(Some(Err(e))) => {
                    held = Some(Err(e));
                    break;
                }
                Some(None) | None => break,
            }
        }
        let data = piece.map_or(data, BytesMut::freeze);
        let small = data.len() < SMALL;
        if tx.send(Ok(Frame::data(data))).await.is_err() {
            return;
        }
        if small && held.is_none() && !body.is_end_stream() {
            // The sender is slower than we read: let the socket fill a
            // little, so the next read takes more than one segment.
            tokio::time::sleep(PAUSE).await;
        }
        if let Some(item) = held {
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                return;
            }
        }
    }
}

impl Body for ReadAhead {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let polled = self.rx.poll_recv(cx);
        if let Poll::Ready(None) = polled {
            self.done = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

/// Wraps a response body for a plugin.
pub fn wrap<B>(body: B) -> WasiBody
where
    B: Body<Data = Bytes, Error = HttpError> + Send + Unpin + 'static,
{
    ReadAhead::new(body).boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    fn body_of(frames: Vec<Item>) -> WasiBody {
        StreamBody::new(futures::stream::iter(frames)).boxed_unsync()
    }

    #[tokio::test]
    async fn joins_ready_data_and_keeps_order_and_trailers() {
        let mut frames: Vec<Item> = (0..300u32)
            .map(|i| Ok(Frame::data(Bytes::from(vec![(i % 251) as u8; 10_000]))))
            .collect();
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-done", "yes".parse().unwrap());
        frames.push(Ok(Frame::trailers(trailers)));
        let mut body = wrap(body_of(frames));
        let mut data = Vec::new();
        let mut pieces = 0;
        let mut got_trailers = None;
        while let Some(frame) = body.frame().await {
            match frame.unwrap().into_data() {
                Ok(d) => {
                    assert!(d.len() <= PIECE + 10_000, "piece of {} bytes", d.len());
                    pieces += 1;
                    data.extend_from_slice(&d);
                }
                Err(t) => got_trailers = Some(t.into_trailers().unwrap()),
            }
        }
        let expect: Vec<u8> = (0..300u32)
            .flat_map(|i| vec![(i % 251) as u8; 10_000])
            .collect();
        assert_eq!(data, expect);
        assert!(pieces <= 4, "3 MB of ready data came in {pieces} pieces");
        assert_eq!(got_trailers.unwrap()["x-done"], "yes");
    }

    #[tokio::test]
    async fn an_error_ends_the_body_after_the_data_before_it() {
        let frames: Vec<Item> = vec![
            Ok(Frame::data(Bytes::from_static(b"abc"))),
            Err(HttpError::ConnectionReadTimeout),
            Ok(Frame::data(Bytes::from_static(b"never"))),
        ];
        let mut body = wrap(body_of(frames));
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "abc");
        assert!(body.frame().await.unwrap().is_err());
        assert!(body.frame().await.is_none());
    }
}
