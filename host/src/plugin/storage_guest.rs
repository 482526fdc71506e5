//! A storage plugin instance pool adapted to the `Storage` trait.
//!
//! Each call checks an instance out of the pool (or makes and configures a
//! new one), runs under the sandbox limits, and checks it back in unless it
//! trapped, hit a limit or timed out: such an instance is dropped, never
//! reused. An upload or download keeps its instance until it ends, because
//! its resource handle lives in that instance.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use wasmtime::Store;
use wasmtime::component::ResourceAny;

use super::LoadedPlugin;
use super::http_grants::{Grants, HttpGate};
use super::sandbox::{Limits, StoreState, Tripped, new_store};
use crate::crypt::KeyRing;
use crate::storage::{
    Download, ErrorKind, MAX_KEY_BYTES, Network, ObjectMeta, Page, Result, Storage, StorageError,
    Upload,
};

pub(super) mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/storage",
        world: "redback:storage/storage-backend",
        exports: { default: async },
    });
}

use bindings::redback::storage::types as wit;

/// Idle instances kept per storage; more are made on demand and dropped
/// when they come back to a full pool.
const MAX_IDLE: usize = 4;
/// Longest presigned URL accepted from a plugin.
const MAX_URL_BYTES: usize = 16 << 10;

struct GuestInstance {
    store: Store<StoreState>,
    api: bindings::StorageBackend,
    /// Set when the instance trapped or was cut off: never reuse it.
    poisoned: bool,
}

struct Inner {
    name: String,
    plugin: Arc<LoadedPlugin>,
    settings: Vec<(String, String)>,
    preopen: Option<PathBuf>,
    grants: Option<Arc<Grants>>,
    limits: Limits,
    idle: Mutex<Vec<GuestInstance>>,
}

/// A configured storage served by a Wasm plugin.
pub struct WasmStorage {
    inner: Arc<Inner>,
    /// The `encryption` ring of the storage's config: the plugin only
    /// moves bytes, the data path encrypts with it.
    key_ring: Option<Arc<KeyRing>>,
}

/// Runs one export call under the limits: resets the CPU budget, applies the
/// wall-clock timeout, and turns traps, limits and WIT errors into
/// `StorageError`s. A macro because the call borrows the store and the
/// bindings of the same instance for the length of an `.await`.
macro_rules! guest_call {
    ($inner:expr, $inst:expr, $op:expr, |$store:ident, $api:ident| $call:expr) => {{
        let inst: &mut GuestInstance = $inst;
        inst.store.data_mut().start_call();
        inst.store.set_epoch_deadline(1);
        // A caller that drops this future mid-call (a deadline of the retry
        // layer) leaves the instance in the middle of a guest call: it
        // stays marked poisoned, so it is never called again.
        let was_poisoned = std::mem::replace(&mut inst.poisoned, true);
        let outcome = {
            let $store = &mut inst.store;
            let $api = inst.api.redback_storage_backend();
            tokio::time::timeout($inner.limits.call_timeout, $call).await
        };
        inst.poisoned = was_poisoned;
        $inner.settle(inst, $op, outcome)
    }};
}

impl Inner {
    fn error(&self, kind: ErrorKind, message: String) -> StorageError {
        StorageError {
            storage: self.name.clone(),
            plugin: self.plugin.manifest.name.clone(),
            kind,
            message,
        }
    }

    /// Turns the outcome of a guest call into the caller's result.
    fn settle<T>(
        &self,
        inst: &mut GuestInstance,
        op: &str,
        outcome: std::result::Result<
            wasmtime::Result<std::result::Result<T, wit::Error>>,
            tokio::time::error::Elapsed,
        >,
    ) -> Result<T> {
        let denial = inst.store.data().gate.take_denial();
        match outcome {
            Err(_) => {
                inst.poisoned = true;
                Err(self.error(
                    ErrorKind::LimitExceeded,
                    format!(
                        "`{op}` did not finish within the wall-clock timeout of {} s per call; \
                         the instance was stopped (raise `call_timeout_secs` under [plugins.{}] \
                         if the backend is just slow)",
                        self.limits.call_timeout.as_secs_f64(),
                        self.plugin.manifest.name
                    ),
                ))
            }
            Ok(Err(trap)) => {
                inst.poisoned = true;
                let plugin = &self.plugin.manifest.name;
                Err(match inst.store.data().tripped.clone() {
                    Some(Tripped::Memory { asked_bytes }) => self.error(
                        ErrorKind::LimitExceeded,
                        format!(
                            "`{op}` exceeded the memory limit of {} MiB (it asked for {} MiB); \
                             the instance was stopped (raise `memory_mib` under [plugins.{plugin}] \
                             if the plugin really needs more)",
                            self.limits.memory_bytes >> 20,
                            asked_bytes.div_ceil(1 << 20)
                        ),
                    ),
                    Some(Tripped::Cpu) => self.error(
                        ErrorKind::LimitExceeded,
                        format!(
                            "`{op}` used more than its CPU budget of {} ms per call; the instance \
                             was stopped (raise `cpu_ms_per_call` under [plugins.{plugin}] if the \
                             plugin is slow rather than stuck)",
                            self.limits.cpu_per_call.as_millis()
                        ),
                    ),
                    None => self.error(
                        ErrorKind::PluginFault,
                        format!("`{op}` trapped; the instance was stopped: {trap:#}"),
                    ),
                })
            }
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(e))) => {
                let (kind, mut message) = match e {
                    wit::Error::NotFound(m) => (ErrorKind::NotFound, m),
                    wit::Error::AccessDenied(m) => (ErrorKind::AccessDenied, m),
                    wit::Error::InvalidConfig(m) => (ErrorKind::InvalidConfig, m),
                    wit::Error::InvalidKey(m) => (ErrorKind::InvalidKey, m),
                    wit::Error::Unavailable(m) => (ErrorKind::Unavailable, m),
                    wit::Error::Other(m) => (ErrorKind::Other, m),
                };
                if let Some(d) = denial {
                    message.push_str(&format!(" (the host refused outbound HTTP: {d})"));
                }
                Err(self.error(kind, message))
            }
        }
    }

    /// A ready instance: an idle one, or a new one, configured.
    async fn checkout(&self) -> Result<GuestInstance> {
        if let Some(inst) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(inst);
        }
        let manifest = &self.plugin.manifest;
        let gate = HttpGate::new(&manifest.name, self.grants.clone());
        let mut store = new_store(
            &self.plugin.engine,
            &manifest.name,
            &self.limits,
            self.preopen.as_deref(),
            gate,
        )
        .map_err(|e| {
            self.error(
                ErrorKind::PluginFault,
                format!("cannot set up the sandbox: {e:#}"),
            )
        })?;
        let pre = self.plugin.storage_pre.as_ref().ok_or_else(|| {
            self.error(
                ErrorKind::PluginFault,
                format!("is a {} plugin, not a storage plugin", manifest.kind),
            )
        })?;
        store.data_mut().start_call();
        let api = tokio::time::timeout(self.limits.call_timeout, pre.instantiate_async(&mut store))
            .await
            .map_err(|_| self.error(ErrorKind::LimitExceeded, "instantiation timed out".into()))?
            .map_err(|e| {
                self.error(ErrorKind::PluginFault, format!("cannot instantiate: {e:#}"))
            })?;
        let mut inst = GuestInstance {
            store,
            api,
            poisoned: false,
        };
        let settings = &self.settings;
        guest_call!(self, &mut inst, "configure", |store, api| api
            .call_configure(store, settings))?;
        Ok(inst)
    }

    fn checkin(&self, inst: GuestInstance) {
        if inst.poisoned {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(inst);
        }
    }

    /// Refuses a key that breaks the contract's key rules before any plugin
    /// sees it: whatever a plugin does with `..` or a leading `/`, the host
    /// never asks for such a key.
    fn refuse_bad_key(&self, op: &str, key: &str) -> Result<()> {
        match crate::storage::key_problem(key) {
            Some(why) => Err(self.error(
                ErrorKind::InvalidKey,
                format!(
                    "`{op}` of key {key:?} refused: the key {why}; keys are `/`-separated \
                     non-empty segments, none `.` or `..`, without `\\` or NUL"
                ),
            )),
            None => Ok(()),
        }
    }

    fn check_key(&self, op: &str, returned: &str) -> Result<()> {
        if returned.len() > MAX_KEY_BYTES {
            return Err(self.error(
                ErrorKind::LimitExceeded,
                format!(
                    "`{op}` returned a key of {} bytes, over the limit of {MAX_KEY_BYTES}",
                    returned.len()
                ),
            ));
        }
        Ok(())
    }
}

fn meta(m: wit::ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        key: m.key,
        size_bytes: m.size_bytes,
        modified_unix_ms: m.modified_unix_ms,
        etag: m.etag,
    }
}

impl WasmStorage {
    /// Makes the storage and one configured instance, so a bad setting is
    /// reported now rather than at the first backup.
    pub(super) async fn open(
        name: &str,
        plugin: Arc<LoadedPlugin>,
        settings: Vec<(String, String)>,
        preopen: Option<PathBuf>,
        grants: Option<Arc<Grants>>,
        limits: Limits,
        key_ring: Option<Arc<KeyRing>>,
    ) -> Result<WasmStorage> {
        let inner = Arc::new(Inner {
            name: name.to_string(),
            plugin,
            settings,
            preopen,
            grants,
            limits,
            idle: Mutex::new(Vec::new()),
        });
        let inst = inner.checkout().await?;
        inner.checkin(inst);
        Ok(WasmStorage { inner, key_ring })
    }
}

#[async_trait::async_trait]
impl Storage for WasmStorage {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn plugin(&self) -> &str {
        &self.inner.plugin.manifest.name
    }

    fn key_ring(&self) -> Option<Arc<KeyRing>> {
        self.key_ring.clone()
    }

    async fn start_upload(&self, key: &str) -> Result<Box<dyn Upload>> {
        let inner = &self.inner;
        inner.refuse_bad_key("start-upload", key)?;
        let mut inst = inner.checkout().await?;
        let handle = guest_call!(inner, &mut inst, "start-upload", |store, api| api
            .call_start_upload(store, key));
        match handle {
            Ok(handle) => Ok(Box::new(WasmUpload {
                inner: inner.clone(),
                inst: Some(inst),
                handle,
            })),
            Err(e) => {
                inner.checkin(inst);
                Err(e)
            }
        }
    }

    async fn open_download(
        &self,
        key: &str,
        offset: u64,
        length: Option<u64>,
    ) -> Result<Box<dyn Download>> {
        let inner = &self.inner;
        inner.refuse_bad_key("open-download", key)?;
        let mut inst = inner.checkout().await?;
        let handle = guest_call!(inner, &mut inst, "open-download", |store, api| api
            .call_open_download(store, key, offset, length));
        match handle {
            Ok(handle) => Ok(Box::new(WasmDownload {
                inner: inner.clone(),
                inst: Some(inst),
                handle,
            })),
            Err(e) => {
                inner.checkin(inst);
                Err(e)
            }
        }
    }

    async fn stat(&self, key: &str) -> Result<ObjectMeta> {
        let inner = &self.inner;
        inner.refuse_bad_key("stat", key)?;
        let mut inst = inner.checkout().await?;
        let r = guest_call!(inner, &mut inst, "stat", |store, api| api
            .call_stat(store, key));
        inner.checkin(inst);
        let m = r?;
        inner.check_key("stat", &m.key)?;
        Ok(meta(m))
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>, max_keys: u32) -> Result<Page> {
        let inner = &self.inner;
        let max_keys = max_keys.clamp(1, crate::storage::MAX_LIST_KEYS);
        let mut inst = inner.checkout().await?;
        let cursor_owned = cursor.map(str::to_string);
        let r = guest_call!(inner, &mut inst, "list", |store, api| api.call_list(
            store,
            prefix,
            cursor_owned.as_deref(),
            max_keys
        ));
        inner.checkin(inst);
        let page = r?;
        if page.objects.len() > max_keys as usize {
            return Err(inner.error(
                ErrorKind::LimitExceeded,
                format!(
                    "`list` returned {} objects for a page of at most {max_keys}",
                    page.objects.len()
                ),
            ));
        }
        let mut last: Option<&str> = cursor;
        for o in &page.objects {
            inner.check_key("list", &o.key)?;
            if !o.key.starts_with(prefix) || last.is_some_and(|l| o.key.as_str() <= l) {
                return Err(inner.error(
                    ErrorKind::PluginFault,
                    format!(
                        "`list` broke the contract: key `{}` is outside prefix `{prefix}`, out of order or not after the cursor",
                        o.key
                    ),
                ));
            }
            last = Some(&o.key);
        }
        if let Some(c) = &page.next_cursor {
            inner.check_key("list", c)?;
        }
        Ok(Page {
            objects: page.objects.into_iter().map(meta).collect(),
            next_cursor: page.next_cursor,
        })
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let inner = &self.inner;
        inner.refuse_bad_key("delete", key)?;
        let mut inst = inner.checkout().await?;
        let r = guest_call!(inner, &mut inst, "delete", |store, api| api
            .call_delete(store, key));
        inner.checkin(inst);
        r
    }

    async fn presign_get(
        &self,
        key: &str,
        ttl_secs: u32,
        network: Network,
    ) -> Result<Option<String>> {
        let inner = &self.inner;
        inner.refuse_bad_key("presign-get", key)?;
        let network = match network {
            Network::Internal => wit::Network::Internal,
            Network::Public => wit::Network::Public,
        };
        let mut inst = inner.checkout().await?;
        let r = guest_call!(inner, &mut inst, "presign-get", |store, api| api
            .call_presign_get(store, key, ttl_secs, network));
        inner.checkin(inst);
        let url = r?;
        if let Some(u) = &url
            && (u.len() > MAX_URL_BYTES || !(u.starts_with("https://") || u.starts_with("http://")))
        {
            return Err(inner.error(
                    ErrorKind::PluginFault,
                    format!("`presign-get` returned something that is not an http(s) URL of at most {MAX_URL_BYTES} bytes"),
                ));
        }
        Ok(url)
    }
}

/// An upload in progress; owns the instance holding its resource.
struct WasmUpload {
    inner: Arc<Inner>,
    inst: Option<GuestInstance>,
    handle: ResourceAny,
}

/// Drops the guest resource (running the guest's destructor) and returns
/// the instance to the pool.
async fn release(inner: &Inner, mut inst: GuestInstance, handle: ResourceAny) {
    if !inst.poisoned {
        inst.store.data_mut().start_call();
        inst.store.set_epoch_deadline(1);
        let dropped = tokio::time::timeout(
            inner.limits.call_timeout,
            handle.resource_drop_async(&mut inst.store),
        )
        .await;
        if !matches!(dropped, Ok(Ok(()))) {
            inst.poisoned = true;
        }
    }
    inner.checkin(inst);
}

impl WasmUpload {
    fn instance(&mut self, op: &str) -> Result<&mut GuestInstance> {
        match self.inst.as_mut() {
            Some(i) if !i.poisoned => Ok(i),
            _ => Err(self.inner.error(
                ErrorKind::PluginFault,
                format!("`{op}` on an upload whose instance was stopped by an earlier error"),
            )),
        }
    }
}

#[async_trait::async_trait]
impl Upload for WasmUpload {
    async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        let inner = self.inner.clone();
        let handle = self.handle;
        let inst = self.instance("write")?;
        guest_call!(inner, inst, "upload.write", |store, api| api
            .upload()
            .call_write(store, handle, chunk))
    }

    async fn finish(mut self: Box<Self>) -> Result<ObjectMeta> {
        let inner = self.inner.clone();
        let handle = self.handle;
        let inst = self.instance("finish")?;
        let r = guest_call!(inner, inst, "upload.finish", |store, api| api
            .upload()
            .call_finish(store, handle));
        let inst = self.inst.take().expect("instance checked above");
        release(&inner, inst, handle).await;
        let m = r?;
        inner.check_key("upload.finish", &m.key)?;
        Ok(meta(m))
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        let inner = self.inner.clone();
        let handle = self.handle;
        let inst = self.instance("abort")?;
        let r = guest_call!(inner, inst, "upload.abort", |store, api| api
            .upload()
            .call_abort(store, handle));
        let inst = self.inst.take().expect("instance checked above");
        release(&inner, inst, handle).await;
        r
    }
}

impl Drop for WasmUpload {
    /// An upload dropped without `finish` or `abort` is aborted in the
    /// background, so the plugin removes its partial object.
    fn drop(&mut self) {
        let Some(mut inst) = self.inst.take() else {
            return;
        };
        if inst.poisoned {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            // No runtime to run the guest: dropping the store frees the
            // instance; the plugin cleans stale partial objects itself.
            return;
        };
        let inner = self.inner.clone();
        let handle = self.handle;
        rt.spawn(async move {
            let r = guest_call!(inner, &mut inst, "upload.abort", |store, api| api
                .upload()
                .call_abort(store, handle));
            if let Err(e) = r {
                tracing::warn!("aborting a dropped upload: {e}");
            }
            release(&inner, inst, handle).await;
        });
    }
}

/// A download in progress; owns the instance holding its resource.
struct WasmDownload {
    inner: Arc<Inner>,
    inst: Option<GuestInstance>,
    handle: ResourceAny,
}

#[async_trait::async_trait]
impl Download for WasmDownload {
    async fn read(&mut self, max_bytes: u32) -> Result<Vec<u8>> {
        let inner = self.inner.clone();
        let handle = self.handle;
        // No instance: the download already reached its end.
        let Some(inst) = self.inst.as_mut() else {
            return Ok(Vec::new());
        };
        if inst.poisoned {
            return Err(inner.error(
                ErrorKind::PluginFault,
                "`read` on a download whose instance was stopped by an earlier error".into(),
            ));
        }
        let r = guest_call!(inner, inst, "download.read", |store, api| api
            .download()
            .call_read(store, handle, max_bytes));
        let bytes = r?;
        if bytes.len() > max_bytes as usize {
            if let Some(i) = self.inst.as_mut() {
                i.poisoned = true;
            }
            return Err(inner.error(
                ErrorKind::PluginFault,
                format!(
                    "`download.read` returned {} bytes for a read of at most {max_bytes}",
                    bytes.len()
                ),
            ));
        }
        if bytes.is_empty()
            && let Some(inst) = self.inst.take()
        {
            release(&inner, inst, handle).await;
        }
        Ok(bytes)
    }
}
