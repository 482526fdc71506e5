//! The storage seen by the rest of the host: plain Rust traits over whatever
//! keeps backup objects, plus the conformance kit every storage must pass.
//!
//! Owns: the `Storage` / `Upload` / `Download` traits, their error type and
//! the key rules. Must not know about wasmtime: `plugin/` adapts components
//! to these traits, and everything else (backup, restore, the API) only sees
//! `Arc<dyn Storage>`.

pub mod conformance;
pub mod faults;
pub mod resilient;

use std::fmt;

/// Longest key a storage must accept, in bytes (WIT `redback:storage`).
pub const MAX_KEY_BYTES: usize = 1024;
/// Most bytes the host asks a download for in one `read`.
pub const MAX_READ_BYTES: u32 = 8 << 20;
/// Most keys the host asks for in one `list` page.
pub const MAX_LIST_KEYS: u32 = 1000;

/// What went wrong, in the terms of the WIT `error` variant plus the cases
/// where the host stopped the plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    AccessDenied,
    InvalidConfig,
    InvalidKey,
    /// Transient; worth retrying.
    Unavailable,
    Other,
    /// The sandbox stopped the plugin: memory, CPU budget, wall timeout, or a
    /// reply over the size limits. The message names the limit.
    LimitExceeded,
    /// The plugin broke the contract (trapped, replied out of spec) or the
    /// host could not run it.
    PluginFault,
    /// The call did not answer within the storage's `call_timeout_secs`
    /// (the host's retry layer, `resilient`). The message names the setting.
    TimedOut,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::AccessDenied => "access denied",
            ErrorKind::InvalidConfig => "invalid config",
            ErrorKind::InvalidKey => "invalid key",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Other => "failed",
            ErrorKind::LimitExceeded => "stopped by the sandbox",
            ErrorKind::PluginFault => "plugin fault",
            ErrorKind::TimedOut => "timed out",
        })
    }
}

/// An error from a storage, naming the storage and the plugin behind it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("storage '{storage}' (plugin '{plugin}'): {kind}: {message}")]
pub struct StorageError {
    pub storage: String,
    pub plugin: String,
    pub kind: ErrorKind,
    pub message: String,
}

impl StorageError {
    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Unavailable
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// A complete stored object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ObjectMeta {
    pub key: String,
    pub size_bytes: u64,
    pub modified_unix_ms: u64,
    pub etag: Option<String>,
}

/// One page of a listing; `next_cursor` is `None` on the last page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub objects: Vec<ObjectMeta>,
    pub next_cursor: Option<String>,
}

/// Network of the person asking for a download link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    Internal,
    Public,
}

/// A place that keeps backup objects. See `wit/storage/storage.wit` for the
/// contract each method follows; this trait mirrors it.
#[async_trait::async_trait]
pub trait Storage: Send + Sync {
    /// The storage's name in the config.
    fn name(&self) -> &str;
    /// The plugin serving it.
    fn plugin(&self) -> &str;
    /// The key ring of the storage's `encryption` table: backups written
    /// here are encrypted with its current key, and read with any of its
    /// keys. A storage that wraps another must forward it, or backups
    /// through the wrapper would be written in plaintext: so it has no
    /// default, and every wrapper says what it does.
    fn key_ring(&self) -> Option<std::sync::Arc<crate::crypt::KeyRing>>;
    async fn start_upload(&self, key: &str) -> Result<Box<dyn Upload>>;
    async fn open_download(
        &self,
        key: &str,
        offset: u64,
        length: Option<u64>,
    ) -> Result<Box<dyn Download>>;
    async fn stat(&self, key: &str) -> Result<ObjectMeta>;
    async fn list(&self, prefix: &str, cursor: Option<&str>, max_keys: u32) -> Result<Page>;
    async fn delete(&self, key: &str) -> Result<()>;
    async fn presign_get(
        &self,
        key: &str,
        ttl_secs: u32,
        network: Network,
    ) -> Result<Option<String>>;
}

/// An object being written; invisible until `finish`. Dropping it without
/// `finish` aborts it.
///
/// A `write` that fails with `Unavailable` took none of the chunk and the
/// upload stays usable: the caller may send the same chunk again (the WIT
/// contract asks plugins for exactly this; `resilient` does it).
#[async_trait::async_trait]
pub trait Upload: Send {
    async fn write(&mut self, chunk: &[u8]) -> Result<()>;
    async fn finish(self: Box<Self>) -> Result<ObjectMeta>;
    async fn abort(self: Box<Self>) -> Result<()>;
    /// Chunks sent again after a transient failure of `write`. A caller
    /// that sees more than 0 reads the finished object back before it
    /// trusts it, in case the storage did not honour the contract above.
    fn resent_chunks(&self) -> u64 {
        0
    }
}

/// An object being read; `read` returns an empty vector at the end.
#[async_trait::async_trait]
pub trait Download: Send {
    async fn read(&mut self, max_bytes: u32) -> Result<Vec<u8>>;
}

/// Why a key breaks the key rules of the WIT contract, if it does.
pub fn key_problem(key: &str) -> Option<&'static str> {
    if key.is_empty() {
        return Some("is empty");
    }
    if key.len() > MAX_KEY_BYTES {
        return Some("is longer than 1024 bytes");
    }
    if key.starts_with('/') {
        return Some("starts with `/`");
    }
    if key.contains('\0') {
        return Some("contains a NUL byte");
    }
    if key.contains('\\') {
        return Some("contains `\\`");
    }
    for segment in key.split('/') {
        match segment {
            "" => return Some("has an empty segment"),
            "." | ".." => return Some("has a `.` or `..` segment"),
            _ => {}
        }
    }
    None
}
