//! A fault-injecting storage: a wrapper around any storage that fails,
//! stalls or damages chosen calls, driven by a small plan. In the spirit of
//! redb's crash-consistency backend, it proves that no failure of a storage
//! leaves a backup that looks good when it is not, and that transient
//! failures are ridden out. Plugin authors can run their own component
//! under it; our tests put it between the real storage-local plugin and
//! the host's retry layer (`resilient`).
//!
//! Owns: the plan (`Fault` rules: which operation, which keys, which calls,
//! what happens) and counting what fired. Must not: keep or change stored
//! bytes itself (a damaged download is damaged on the way out; the object
//! in the backend stays as it was) or know what the objects mean.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use std::time::Duration;
//! # use redback::storage::Storage;
//! use redback::storage::faults::{Fault, FaultStorage, Op};
//! # fn demo(inner: Arc<dyn Storage>) {
//! let faulty = FaultStorage::new(
//!     inner,
//!     vec![
//!         // The third write of any upload fails for good.
//!         Fault::on(Op::Write).nth(3).fail_permanently(),
//!         // The first two `stat` calls are transient failures.
//!         Fault::on(Op::Stat).first(2).fail_transiently(),
//!         // Every finish of a manifest stalls for a minute.
//!         Fault::on(Op::Finish).keys_ending("manifest.json").stall(Duration::from_secs(60)),
//!         // Every download returns the object cut after 1,000 bytes.
//!         Fault::on(Op::OpenDownload).truncate_at(1000),
//!     ],
//! );
//! # }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{
    Download, ErrorKind, Network, ObjectMeta, Page, Result, Storage, StorageError, Upload,
};

/// A storage operation a fault can hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    StartUpload,
    /// `write` of an upload, counted over all uploads of matching keys.
    Write,
    /// `finish` of an upload.
    Finish,
    Abort,
    /// Opening a download; `truncate_at` and `flip_byte_at` faults hang on
    /// this operation and damage every read of the downloads they hit.
    OpenDownload,
    /// `read` of a download, counted over all downloads of matching keys.
    Read,
    Stat,
    List,
    Delete,
    PresignGet,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::StartUpload => "start-upload",
            Op::Write => "upload.write",
            Op::Finish => "upload.finish",
            Op::Abort => "upload.abort",
            Op::OpenDownload => "open-download",
            Op::Read => "download.read",
            Op::Stat => "stat",
            Op::List => "list",
            Op::Delete => "delete",
            Op::PresignGet => "presign-get",
        }
    }
}

/// What happens to a call a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The call fails with this kind, without reaching the inner storage.
    Fail(ErrorKind),
    /// The call runs, then fails anyway with this kind: a lost answer, or
    /// a plugin that breaks the contract by keeping a chunk whose `write`
    /// it reported as failed.
    FailAfter(ErrorKind),
    /// The call waits this long, then runs.
    Stall(Duration),
    /// (`OpenDownload`) the download ends at this byte of the object.
    TruncateAt(u64),
    /// (`OpenDownload`) the byte at this offset of the object comes out
    /// with its bits inverted.
    FlipByteAt(u64),
}

/// Which of the matching calls a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calls {
    /// Only the n-th (1-based).
    Nth(u64),
    /// The first k.
    First(u64),
    /// All of them.
    Every,
}

impl Calls {
    fn hits(self, n: u64) -> bool {
        match self {
            Calls::Nth(k) => n == k,
            Calls::First(k) => n <= k,
            Calls::Every => true,
        }
    }
}

/// One rule of a plan: every call of `op` on a key ending with
/// `key_suffix` (any key if `None`) is counted; those `calls` selects get
/// `effect`. Build with `Fault::on(op)`, then the selectors, then one
/// effect.
#[derive(Debug)]
pub struct Fault {
    pub op: Op,
    pub key_suffix: Option<String>,
    pub calls: Calls,
    pub effect: Effect,
    seen: AtomicU64,
    fired: AtomicU64,
}

impl Fault {
    /// A rule for `op`, every call, failing permanently until told
    /// otherwise.
    pub fn on(op: Op) -> Fault {
        Fault {
            op,
            key_suffix: None,
            calls: Calls::Every,
            effect: Effect::Fail(ErrorKind::Other),
            seen: AtomicU64::new(0),
            fired: AtomicU64::new(0),
        }
    }

    /// Only calls on keys ending with `suffix` (`"manifest.json"`).
    pub fn keys_ending(mut self, suffix: &str) -> Fault {
        self.key_suffix = Some(suffix.to_string());
        self
    }

    /// Only the n-th matching call (1-based).
    pub fn nth(mut self, n: u64) -> Fault {
        self.calls = Calls::Nth(n);
        self
    }

    /// The first k matching calls.
    pub fn first(mut self, k: u64) -> Fault {
        self.calls = Calls::First(k);
        self
    }

    /// Fails with `Other`: not retried.
    pub fn fail_permanently(self) -> Fault {
        self.fail(ErrorKind::Other)
    }

    /// Fails with `Unavailable`: the contract's transient kind.
    pub fn fail_transiently(self) -> Fault {
        self.fail(ErrorKind::Unavailable)
    }

    pub fn fail(mut self, kind: ErrorKind) -> Fault {
        self.effect = Effect::Fail(kind);
        self
    }

    /// Lets the call run, then fails it with `kind`.
    pub fn fail_after_running(mut self, kind: ErrorKind) -> Fault {
        self.effect = Effect::FailAfter(kind);
        self
    }

    /// Waits `d` before the call runs (past a deadline: a stalled backend).
    pub fn stall(mut self, d: Duration) -> Fault {
        self.effect = Effect::Stall(d);
        self
    }

    /// Downloads end at byte `n` of the object (use with `OpenDownload`).
    pub fn truncate_at(mut self, n: u64) -> Fault {
        self.effect = Effect::TruncateAt(n);
        self
    }

    /// The byte at offset `n` of the object is inverted (use with
    /// `OpenDownload`).
    pub fn flip_byte_at(mut self, n: u64) -> Fault {
        self.effect = Effect::FlipByteAt(n);
        self
    }

    /// How many calls this rule hit so far.
    pub fn fired(&self) -> u64 {
        self.fired.load(Ordering::Relaxed)
    }
}

/// The wrapper. Calls no rule hits pass through unchanged.
pub struct FaultStorage {
    inner: Arc<dyn Storage>,
    plan: Arc<Vec<Fault>>,
}

impl FaultStorage {
    pub fn new(inner: Arc<dyn Storage>, plan: Vec<Fault>) -> Arc<FaultStorage> {
        Arc::new(FaultStorage {
            inner,
            plan: Arc::new(plan),
        })
    }

    /// How many calls the plan's rules hit so far, in all.
    pub fn fired(&self) -> u64 {
        self.plan.iter().map(Fault::fired).sum()
    }

    /// The rules, with their counts.
    pub fn plan(&self) -> &[Fault] {
        &self.plan
    }
}

/// What the plan says about one call: the first rule that hits it wins;
/// every matching rule counts the call.
struct Plan<'a> {
    plan: &'a [Fault],
    storage: &'a dyn Storage,
}

impl Plan<'_> {
    fn strike(&self, op: Op, key: &str) -> Option<Effect> {
        let mut effect = None;
        for f in self.plan.iter().filter(|f| f.op == op) {
            if f.key_suffix.as_deref().is_some_and(|s| !key.ends_with(s)) {
                continue;
            }
            let n = f.seen.fetch_add(1, Ordering::Relaxed) + 1;
            if effect.is_none() && f.calls.hits(n) {
                f.fired.fetch_add(1, Ordering::Relaxed);
                effect = Some(f.effect);
            }
        }
        effect
    }

    fn injected(&self, op: Op, key: &str, kind: ErrorKind) -> StorageError {
        StorageError {
            storage: self.storage.name().to_string(),
            plugin: self.storage.plugin().to_string(),
            kind,
            message: format!("injected fault: `{}` of {key} failed", op.name()),
        }
    }

    /// Applies a fail or stall effect before the call; returns the effects
    /// that act after it (`FailAfter`, download damage).
    async fn before(&self, op: Op, key: &str) -> Result<Option<Effect>> {
        match self.strike(op, key) {
            Some(Effect::Fail(kind)) => Err(self.injected(op, key, kind)),
            Some(Effect::Stall(d)) => {
                tokio::time::sleep(d).await;
                Ok(None)
            }
            other => Ok(other),
        }
    }

    /// Runs `call` under the plan's effect for (`op`, `key`).
    async fn run<T>(&self, op: Op, key: &str, call: impl Future<Output = Result<T>>) -> Result<T> {
        let after = self.before(op, key).await?;
        let r = call.await;
        match after {
            Some(Effect::FailAfter(kind)) => r.and(Err(self.injected(op, key, kind))),
            _ => r,
        }
    }
}

#[async_trait::async_trait]
impl Storage for FaultStorage {
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
        let inner = self
            .gate()
            .run(Op::StartUpload, key, self.inner.start_upload(key))
            .await?;
        Ok(Box::new(FaultUpload {
            storage: self.inner.clone(),
            plan: self.plan.clone(),
            key: key.to_string(),
            inner,
        }))
    }

    async fn open_download(
        &self,
        key: &str,
        offset: u64,
        length: Option<u64>,
    ) -> Result<Box<dyn Download>> {
        let damage = self.gate().before(Op::OpenDownload, key).await?;
        let inner = self.inner.open_download(key, offset, length).await?;
        Ok(Box::new(FaultDownload {
            storage: self.inner.clone(),
            plan: self.plan.clone(),
            key: key.to_string(),
            at: offset,
            damage,
            inner,
        }))
    }

    async fn stat(&self, key: &str) -> Result<ObjectMeta> {
        self.gate().run(Op::Stat, key, self.inner.stat(key)).await
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>, max_keys: u32) -> Result<Page> {
        self.gate()
            .run(Op::List, prefix, self.inner.list(prefix, cursor, max_keys))
            .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.gate()
            .run(Op::Delete, key, self.inner.delete(key))
            .await
    }

    async fn presign_get(
        &self,
        key: &str,
        ttl_secs: u32,
        network: Network,
    ) -> Result<Option<String>> {
        self.gate()
            .run(
                Op::PresignGet,
                key,
                self.inner.presign_get(key, ttl_secs, network),
            )
            .await
    }
}

impl FaultStorage {
    fn gate(&self) -> Plan<'_> {
        Plan {
            plan: &self.plan,
            storage: self.inner.as_ref(),
        }
    }
}

struct FaultUpload {
    storage: Arc<dyn Storage>,
    plan: Arc<Vec<Fault>>,
    key: String,
    inner: Box<dyn Upload>,
}

#[async_trait::async_trait]
impl Upload for FaultUpload {
    async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        let gate = Plan {
            plan: &self.plan,
            storage: self.storage.as_ref(),
        };
        gate.run(Op::Write, &self.key, self.inner.write(chunk))
            .await
    }

    async fn finish(self: Box<Self>) -> Result<ObjectMeta> {
        let this = *self;
        let gate = Plan {
            plan: &this.plan,
            storage: this.storage.as_ref(),
        };
        gate.run(Op::Finish, &this.key, this.inner.finish()).await
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        let this = *self;
        let gate = Plan {
            plan: &this.plan,
            storage: this.storage.as_ref(),
        };
        gate.run(Op::Abort, &this.key, this.inner.abort()).await
    }

    fn resent_chunks(&self) -> u64 {
        self.inner.resent_chunks()
    }
}

struct FaultDownload {
    storage: Arc<dyn Storage>,
    plan: Arc<Vec<Fault>>,
    key: String,
    /// Offset in the object of the next byte to hand out.
    at: u64,
    damage: Option<Effect>,
    inner: Box<dyn Download>,
}

#[async_trait::async_trait]
impl Download for FaultDownload {
    async fn read(&mut self, max_bytes: u32) -> Result<Vec<u8>> {
        let plan = Plan {
            plan: &self.plan,
            storage: self.storage.as_ref(),
        };
        plan.before(Op::Read, &self.key).await?;
        let max_bytes = match self.damage {
            Some(Effect::TruncateAt(end)) => {
                let left = end.saturating_sub(self.at);
                if left == 0 {
                    return Ok(Vec::new());
                }
                max_bytes.min(left.min(u32::MAX as u64) as u32)
            }
            _ => max_bytes,
        };
        let mut bytes = self.inner.read(max_bytes).await?;
        if let Some(Effect::FlipByteAt(n)) = self.damage
            && (self.at..self.at + bytes.len() as u64).contains(&n)
        {
            bytes[(n - self.at) as usize] ^= 0xff;
        }
        self.at += bytes.len() as u64;
        Ok(bytes)
    }
}
