//! A stored backup as a stream of RDB bytes: the download runs as a task
//! that hashes what it reads; the decompressed bytes come out of a blocking
//! `Read` for the parser thread.

use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::backup::Manifest;
use crate::config::Compression;
use crate::pipe::ChannelReader;
use crate::storage::{Storage, StorageError};

/// The download task's result: bytes read and their sha256.
pub type Downloaded = Result<(u64, String), StorageError>;

/// Starts downloading the data object of `m`; returns the task and the
/// reader of decompressed RDB bytes (for a blocking thread).
pub fn open(
    storage: Arc<dyn Storage>,
    m: &Manifest,
) -> (JoinHandle<Downloaded>, Box<dyn Read + Send>) {
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    let key = m.data.key.clone();
    let task = tokio::spawn(async move {
        let mut d = storage.open_download(&key, 0, None).await?;
        let mut sha = Sha256::new();
        let mut n = 0u64;
        loop {
            let b = d.read(1 << 20).await?;
            if b.is_empty() {
                break;
            }
            n += b.len() as u64;
            sha.update(&b);
            if tx.send(Bytes::from(b)).await.is_err() {
                break;
            }
        }
        Ok((n, hex::encode(sha.finalize())))
    });
    let reader = ChannelReader::new(rx);
    let reader: Box<dyn Read + Send> = match m.data.compression {
        Compression::Zstd { .. } => match zstd::stream::read::Decoder::new(reader) {
            Ok(d) => Box::new(d),
            Err(e) => Box::new(FailingReader(Some(e))),
        },
        Compression::None => Box::new(reader),
    };
    (task, reader)
}

/// A reader that fails at once (a decoder that could not start).
struct FailingReader(Option<std::io::Error>);

impl Read for FailingReader {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(self
            .0
            .take()
            .unwrap_or_else(|| std::io::Error::other("the decoder failed")))
    }
}
