//! Bridges between async tasks and blocking threads: the backup and restore
//! data paths read from the network and storage in async tasks and parse,
//! compress or decompress on blocking threads, with bounded channels
//! between them for backpressure.

use std::io::Read;

use bytes::Bytes;
use tokio::sync::mpsc;

/// A blocking `Read` over chunks sent by an async task; ends when the
/// sender is dropped.
pub struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl ChannelReader {
    pub fn new(rx: mpsc::Receiver<Bytes>) -> ChannelReader {
        ChannelReader {
            rx,
            current: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.current = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}
