//! The host's retry layer over any storage: what the WIT contract promises
//! when it says `unavailable` is transient and "the host retries".
//!
//! Owns: retries with bounded exponential backoff of transient
//! (`Unavailable`) failures of the idempotent calls (`stat`, `list`,
//! `delete`, `presign_get`, `start_upload`, `open_download`), of an upload's
//! `write` (the contract says a failed `write` took none of the chunk, so
//! the same chunk is sent again), of a download's `read` (resumed by
//! reopening the object at the offset reached), and a deadline on every
//! call so a stalled storage ends with an error naming the storage and the
//! setting to change (`call_timeout_secs` under `[storage.NAME]`).
//!
//! Must not: retry `finish` (completing an object is not idempotent on
//! every backend; a failed `finish` fails the backup, which the scheduler
//! retries whole) or `abort`; retry anything but `Unavailable` (a timed-out
//! call may still be running in the backend); know what the bytes are.
//!
//! The daemon and every one-shot command wrap each storage they open in
//! this layer (`daemon::Daemon::open_storage`, `start`, `reload`).

use std::sync::Arc;
use std::time::Duration;

use super::{
    Download, ErrorKind, Network, ObjectMeta, Page, Result, Storage, StorageError, Upload,
};
use crate::config::StorageConfig;

/// How hard the layer tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Transient failures tried again, per call (0: never).
    pub retries: u32,
    /// Wait before the first retry; doubled for each next one.
    pub first_backoff: Duration,
    /// Longest wait between two attempts.
    pub max_backoff: Duration,
    /// Deadline of one attempt of one call.
    pub call_timeout: Duration,
}

/// Default `retries`: with the default backoff, about 6 s of waiting in
/// all, enough for a throttled service or a connection pool to recover.
pub const DEFAULT_RETRIES: u32 = 5;
/// Default `call_timeout_secs`: longer than a plugin's own default
/// wall-clock limit (300 s), so for Wasm plugins the sandbox speaks first
/// and this deadline catches what runs outside any sandbox.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(600);

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: DEFAULT_RETRIES,
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            call_timeout: DEFAULT_CALL_TIMEOUT,
        }
    }
}

impl RetryPolicy {
    /// The policy of a configured storage: its `retries` and
    /// `call_timeout_secs`, the defaults for what it leaves unset.
    pub fn for_storage(cfg: &StorageConfig) -> RetryPolicy {
        let d = RetryPolicy::default();
        RetryPolicy {
            retries: cfg.retries.unwrap_or(d.retries),
            call_timeout: cfg.call_timeout.unwrap_or(d.call_timeout),
            ..d
        }
    }

    fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(16)).unwrap_or(u32::MAX);
        self.first_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// A storage whose calls are retried and bounded in time.
pub struct Resilient {
    inner: Arc<dyn Storage>,
    policy: RetryPolicy,
}

impl Resilient {
    /// Wraps `inner`.
    pub fn wrap(inner: Arc<dyn Storage>, policy: RetryPolicy) -> Arc<dyn Storage> {
        Arc::new(Resilient { inner, policy })
    }

    /// Wraps `inner` with the policy of its config.
    pub fn for_config(inner: Arc<dyn Storage>, cfg: &StorageConfig) -> Arc<dyn Storage> {
        Self::wrap(inner, RetryPolicy::for_storage(cfg))
    }
}

/// What a retried call needs to name itself in errors and logs.
#[derive(Clone)]
struct Names {
    storage: String,
    plugin: String,
    policy: RetryPolicy,
}

impl Names {
    fn of(s: &dyn Storage, policy: RetryPolicy) -> Names {
        Names {
            storage: s.name().to_string(),
            plugin: s.plugin().to_string(),
            policy,
        }
    }

    /// One attempt under the deadline.
    async fn bounded<T>(
        &self,
        op: &str,
        what: &str,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let t = self.policy.call_timeout;
        match tokio::time::timeout(t, call).await {
            Ok(r) => r,
            Err(_) => Err(StorageError {
                storage: self.storage.clone(),
                plugin: self.plugin.clone(),
                kind: ErrorKind::TimedOut,
                message: format!(
                    "`{op}` of {what} did not answer within {} s; raise `call_timeout_secs` \
                     under [storage.{}] if the backend is just slow",
                    t.as_secs_f64(),
                    self.storage
                ),
            }),
        }
    }

    /// Decides after a failed attempt: `Ok(())` after waiting for the next
    /// one, or the error to give up with.
    async fn next_attempt(
        &self,
        op: &str,
        what: &str,
        retry: &mut u32,
        e: StorageError,
    ) -> Result<()> {
        if !e.is_transient() {
            return Err(e);
        }
        if *retry >= self.policy.retries {
            let mut e = e;
            if self.policy.retries > 0 {
                e.message.push_str(&format!(
                    " (gave up after {} attempts; raise `retries` under [storage.{}] if the \
                     backend needs longer to recover)",
                    self.policy.retries + 1,
                    self.storage
                ));
            }
            return Err(e);
        }
        let wait = self.policy.backoff(*retry);
        *retry += 1;
        tracing::warn!(
            storage = %self.storage,
            op,
            object = what,
            attempt = *retry + 1,
            "transient failure, trying again in {} ms: {e}",
            wait.as_millis()
        );
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// Runs `call` until it succeeds, fails for good, or runs out of
    /// retries.
    async fn retrying<T, F, Fut>(&self, op: &str, what: &str, mut call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut retry = 0;
        loop {
            match self.bounded(op, what, call()).await {
                Ok(v) => return Ok(v),
                Err(e) => self.next_attempt(op, what, &mut retry, e).await?,
            }
        }
    }
}

#[async_trait::async_trait]
impl Storage for Resilient {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn plugin(&self) -> &str {
        self.inner.plugin()
    }

    fn key_ring(&self) -> Option<std::sync::Arc<crate::crypt::KeyRing>> {
        self.inner.key_ring()
    }

    async fn start_upload(&self, key: &str) -> Result<Box<dyn Upload>> {
        let names = Names::of(self.inner.as_ref(), self.policy);
        let upload = names
            .retrying("start-upload", key, || self.inner.start_upload(key))
            .await?;
        Ok(Box::new(ResilientUpload {
            names,
            key: key.to_string(),
            inner: upload,
            resent: 0,
        }))
    }

    async fn open_download(
        &self,
        key: &str,
        offset: u64,
        length: Option<u64>,
    ) -> Result<Box<dyn Download>> {
        let names = Names::of(self.inner.as_ref(), self.policy);
        let download = names
            .retrying("open-download", key, || {
                self.inner.open_download(key, offset, length)
            })
            .await?;
        Ok(Box::new(ResilientDownload {
            storage: self.inner.clone(),
            names,
            key: key.to_string(),
            offset,
            length,
            delivered: 0,
            inner: Some(download),
        }))
    }

    async fn stat(&self, key: &str) -> Result<ObjectMeta> {
        Names::of(self.inner.as_ref(), self.policy)
            .retrying("stat", key, || self.inner.stat(key))
            .await
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>, max_keys: u32) -> Result<Page> {
        let what = format!("prefix {prefix:?}");
        Names::of(self.inner.as_ref(), self.policy)
            .retrying("list", &what, || self.inner.list(prefix, cursor, max_keys))
            .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        Names::of(self.inner.as_ref(), self.policy)
            .retrying("delete", key, || self.inner.delete(key))
            .await
    }

    async fn presign_get(
        &self,
        key: &str,
        ttl_secs: u32,
        network: Network,
    ) -> Result<Option<String>> {
        Names::of(self.inner.as_ref(), self.policy)
            .retrying("presign-get", key, || {
                self.inner.presign_get(key, ttl_secs, network)
            })
            .await
    }
}

/// An upload whose writes are retried with the same chunk.
struct ResilientUpload {
    names: Names,
    key: String,
    inner: Box<dyn Upload>,
    resent: u64,
}

#[async_trait::async_trait]
impl Upload for ResilientUpload {
    async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        let mut retry = 0;
        loop {
            let attempt = self.inner.write(chunk);
            match self.names.bounded("upload.write", &self.key, attempt).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    self.names
                        .next_attempt("upload.write", &self.key, &mut retry, e)
                        .await?;
                    self.resent += 1;
                }
            }
        }
    }

    async fn finish(self: Box<Self>) -> Result<ObjectMeta> {
        let this = *self;
        let names = this.names;
        names
            .bounded("upload.finish", &this.key, this.inner.finish())
            .await
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        let this = *self;
        let names = this.names;
        names
            .bounded("upload.abort", &this.key, this.inner.abort())
            .await
    }

    fn resent_chunks(&self) -> u64 {
        self.resent + self.inner.resent_chunks()
    }
}

/// A download that reopens the object where it stopped after a transient
/// failure.
struct ResilientDownload {
    storage: Arc<dyn Storage>,
    names: Names,
    key: String,
    offset: u64,
    length: Option<u64>,
    /// Bytes handed to the caller so far.
    delivered: u64,
    /// `None` after a failed read: the next attempt reopens.
    inner: Option<Box<dyn Download>>,
}

impl ResilientDownload {
    /// One attempt: reopens after a failure, then reads.
    async fn attempt(&mut self, max_bytes: u32) -> Result<Vec<u8>> {
        if self.inner.is_none() {
            let at = self.offset + self.delivered;
            let rest = self.length.map(|l| l.saturating_sub(self.delivered));
            let reopened = self
                .names
                .bounded(
                    "open-download",
                    &self.key,
                    self.storage.open_download(&self.key, at, rest),
                )
                .await?;
            self.inner = Some(reopened);
        }
        let d = self.inner.as_mut().expect("opened above");
        self.names
            .bounded("download.read", &self.key, d.read(max_bytes))
            .await
    }
}

#[async_trait::async_trait]
impl Download for ResilientDownload {
    async fn read(&mut self, max_bytes: u32) -> Result<Vec<u8>> {
        let mut retry = 0;
        loop {
            match self.attempt(max_bytes).await {
                Ok(bytes) => {
                    self.delivered += bytes.len() as u64;
                    return Ok(bytes);
                }
                Err(e) => {
                    self.inner = None;
                    self.names
                        .next_attempt("download.read", &self.key, &mut retry, e)
                        .await?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let p = RetryPolicy {
            retries: 10,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            call_timeout: Duration::from_secs(1),
        };
        let waits: Vec<u128> = (0..6).map(|r| p.backoff(r).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.backoff(40), Duration::from_secs(1));
    }
}
