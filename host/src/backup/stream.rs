//! A stored backup as a stream of RDB bytes: the download runs as a task
//! that hashes what it reads (the stored bytes, ciphertext when encrypted);
//! the decrypted and decompressed bytes come out of a blocking `Read` for
//! the parser thread.

use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::backup::Manifest;
use crate::config::Compression;
use crate::crypt::CryptError;
use crate::pipe::ChannelReader;
use crate::storage::{Storage, StorageError};

/// The download task's result: bytes read and their sha256.
pub type Downloaded = Result<(u64, String), StorageError>;

/// Whether the storage's key ring can read backup `m`: a plaintext backup
/// always; an encrypted one if the ring holds its key id. Checked before
/// anything is downloaded, so the error names the missing key.
pub fn readable(storage: &dyn Storage, m: &Manifest) -> Result<(), CryptError> {
    let Some(e) = &m.data.encryption else {
        return Ok(());
    };
    match storage.key_ring() {
        Some(ring) if ring.has(&e.key_id) => Ok(()),
        Some(_) => Err(CryptError::MissingKey {
            backup: m.id.clone(),
            key_id: e.key_id.clone(),
            storage: storage.name().into(),
        }),
        None => Err(CryptError::NoKeyRing {
            backup: m.id.clone(),
            key_id: e.key_id.clone(),
            storage: storage.name().into(),
        }),
    }
}

/// Starts downloading the data object of `m`; returns the task and the
/// reader of decompressed RDB bytes (for a blocking thread).
pub fn open(
    storage: Arc<dyn Storage>,
    m: &Manifest,
) -> (JoinHandle<Downloaded>, Box<dyn Read + Send>) {
    let (task, reader) = open_stored(storage, m);
    let reader: Box<dyn Read + Send> = match m.data.compression {
        Compression::Zstd { .. } => match zstd::stream::read::Decoder::new(reader) {
            Ok(d) => Box::new(d),
            Err(e) => Box::new(FailingReader(Some(e))),
        },
        Compression::None => reader,
    };
    (task, reader)
}

/// Starts downloading the data object of `m`; returns the task and the
/// reader of the stored bytes decrypted (still compressed). A frame's
/// bytes come out only once it authenticated; a failure is a
/// `CryptError` inside the reader's `io::Error`.
pub fn open_stored(
    storage: Arc<dyn Storage>,
    m: &Manifest,
) -> (JoinHandle<Downloaded>, Box<dyn Read + Send>) {
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    let key = m.data.key.clone();
    let ring = storage.key_ring();
    let checked = readable(storage.as_ref(), m);
    let task = tokio::spawn(async move { read_hashed(storage.as_ref(), &key, Some(&tx)).await });
    let reader = ChannelReader::new(rx);
    let opened = match (&m.data.encryption, ring) {
        (None, _) => Ok(Box::new(reader) as Box<dyn Read + Send>),
        (Some(e), Some(ring)) => ring
            .opener(&m.id, e, reader)
            .map(|o| Box::new(o) as Box<dyn Read + Send>),
        (Some(_), None) => Err(checked.expect_err("an encrypted backup without a ring")),
    };
    let reader = opened.unwrap_or_else(|e| Box::new(FailingReader(Some(std::io::Error::other(e)))));
    (task, reader)
}

/// Reads the object `key` from its start, 1 MiB at a time, handing each
/// piece to `to` (until it stops listening, where the read stops too);
/// returns the bytes read and their sha256.
pub(crate) async fn read_hashed(
    storage: &dyn Storage,
    key: &str,
    to: Option<&mpsc::Sender<Bytes>>,
) -> Downloaded {
    let mut d = storage.open_download(key, 0, None).await?;
    let mut sha = Sha256::new();
    let mut n = 0u64;
    loop {
        let b = d.read(1 << 20).await?;
        if b.is_empty() {
            break;
        }
        n += b.len() as u64;
        sha.update(&b);
        if let Some(to) = to
            && to.send(Bytes::from(b)).await.is_err()
        {
            break;
        }
    }
    Ok((n, hex::encode(sha.finalize())))
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
