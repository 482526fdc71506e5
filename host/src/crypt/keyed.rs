//! A storage together with its key ring: every method goes to the storage
//! as is; `key_ring` answers the ring, so the data path finds the keys of
//! whatever storage it writes to or reads from.

use std::sync::Arc;

use super::KeyRing;
use crate::storage::{Download, Network, ObjectMeta, Page, Result, Storage, Upload};

/// `storage` with `ring` (or `storage` itself without one).
pub fn with_key_ring(storage: Arc<dyn Storage>, ring: Option<Arc<KeyRing>>) -> Arc<dyn Storage> {
    match ring {
        Some(ring) => Arc::new(Keyed {
            inner: storage,
            ring,
        }),
        None => storage,
    }
}

struct Keyed {
    inner: Arc<dyn Storage>,
    ring: Arc<KeyRing>,
}

#[async_trait::async_trait]
impl Storage for Keyed {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn plugin(&self) -> &str {
        self.inner.plugin()
    }
    fn key_ring(&self) -> Option<Arc<KeyRing>> {
        Some(self.ring.clone())
    }
    async fn start_upload(&self, key: &str) -> Result<Box<dyn Upload>> {
        self.inner.start_upload(key).await
    }
    async fn open_download(
        &self,
        key: &str,
        offset: u64,
        length: Option<u64>,
    ) -> Result<Box<dyn Download>> {
        self.inner.open_download(key, offset, length).await
    }
    async fn stat(&self, key: &str) -> Result<ObjectMeta> {
        self.inner.stat(key).await
    }
    async fn list(&self, prefix: &str, cursor: Option<&str>, max_keys: u32) -> Result<Page> {
        self.inner.list(prefix, cursor, max_keys).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key).await
    }
    async fn presign_get(
        &self,
        key: &str,
        ttl_secs: u32,
        network: Network,
    ) -> Result<Option<String>> {
        self.inner.presign_get(key, ttl_secs, network).await
    }
}
