//! The plugin host: the only part of redback that knows about wasmtime.
//!
//! Owns: reading a plugin directory (`plugin.toml` + component per folder),
//! checking kind, WIT version and sha256, the compiled-component cache, the
//! sandbox each instance runs in, and the adapters from WIT bindings to the
//! plain traits the rest of the host uses (`storage::Storage`,
//! `provider::Provider`). Must not: decide anything about backups; leak a
//! wasmtime type through its public API.
//!
//! Invariants: a plugin instance that trapped, hit a limit or timed out is
//! dropped and never called again; a plugin gets no env, no sockets, at most
//! one preopened directory (only if its plugin.toml asks and its storage
//! names one) and HTTP only to hosts its config grants.

mod cache;
mod http_connect;
mod http_grants;
pub mod manifest;
mod provider_guest;
mod read_ahead;
mod sandbox;
mod storage_guest;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config as EngineConfig, Engine};

pub use cache::Source;
pub use http_grants::Grants;
pub use manifest::{Kind, Manifest};
pub use sandbox::Limits;

use crate::config::{PluginOverrides, StorageConfig};
use crate::provider::Provider;
use crate::storage::{ErrorKind, Storage, StorageError};
use sandbox::{EpochTicker, GUEST_ROOT, StoreState};

/// Why a plugin could not be loaded; the message names the file and the fix.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(pub String);

/// A plugin that passed every check and is compiled.
pub struct LoadedPlugin {
    pub manifest: Manifest,
    /// Where the compiled code came from, and how long loading took.
    pub source: Source,
    pub load_time: Duration,
    engine: Engine,
    storage_pre: Option<storage_guest::bindings::StorageBackendPre<StoreState>>,
    provider_pre: Option<provider_guest::bindings::ProviderAdapterPre<StoreState>>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("manifest", &self.manifest)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// A plugin folder that was refused, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Refused {
    pub folder: PathBuf,
    /// The name in plugin.toml, when it could be read.
    pub name: Option<String>,
    pub error: String,
}

/// The result of loading a plugin directory: what loaded, what was refused.
#[derive(Debug, Default)]
pub struct PluginSet {
    pub loaded: BTreeMap<String, Arc<LoadedPlugin>>,
    pub refused: Vec<Refused>,
}

impl PluginSet {
    /// The refusal of the plugin named `name` in its plugin.toml, if any.
    pub fn refused_named(&self, name: &str) -> Option<&Refused> {
        self.refused
            .iter()
            .find(|r| r.name.as_deref() == Some(name))
    }

    /// Why no plugin named `name` is loaded, for an error message.
    pub fn why_missing(&self, name: &str, dir: &Path) -> String {
        match self.refused_named(name) {
            Some(r) => format!("plugin `{name}` was refused: {}", r.error),
            None => format!(
                "no plugin named `{name}` in {}; loaded: {}",
                dir.display(),
                crate::config::join_or_none(self.loaded.keys())
            ),
        }
    }
}

/// The wasmtime engine, linker and epoch ticker shared by every plugin.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<StoreState>,
    cache_dir: Option<PathBuf>,
    _ticker: EpochTicker,
}

impl PluginHost {
    /// A host whose compiled components are cached under `cache_dir`
    /// (`None`: compile at every load).
    pub fn new(cache_dir: Option<PathBuf>) -> anyhow::Result<PluginHost> {
        let mut cfg = EngineConfig::new();
        cfg.epoch_interruption(true);
        // Plugins are synchronous components; without the concurrency
        // machinery an export call costs ~120 ns instead of ~380 ns (FACTS.md).
        cfg.concurrency_support(false);
        let engine = Engine::new(&cfg).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let ticker = EpochTicker::start(engine.clone());
        Ok(PluginHost {
            engine,
            linker,
            cache_dir,
            _ticker: ticker,
        })
    }

    /// Loads every plugin folder under `dir`. A folder that fails a check is
    /// refused and reported; the others load. Only an unreadable `dir` is an
    /// error.
    pub fn load_dir(
        &self,
        dir: &Path,
        overrides: &BTreeMap<String, PluginOverrides>,
    ) -> Result<PluginSet, LoadError> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            LoadError(format!(
                "cannot read the plugin directory {}: {e}; set `daemon.plugin_dir` in the config, \
                 or build the bundled plugins with scripts/build-plugins.sh",
                dir.display()
            ))
        })?;
        let mut folders: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        folders.sort();
        let mut set = PluginSet::default();
        for folder in folders {
            // The pin is keyed by name, which only plugin.toml knows: peek first.
            let name = Manifest::load(&folder).map(|m| m.name).ok();
            let pin = name
                .as_ref()
                .and_then(|n| overrides.get(n))
                .and_then(|o| o.sha256.as_deref());
            match self.load_plugin(&folder, pin) {
                Ok(p) if set.loaded.contains_key(&p.manifest.name) => set.refused.push(Refused {
                    error: format!(
                        "{}: another folder already has a plugin named `{}`; names must be unique",
                        folder.join("plugin.toml").display(),
                        p.manifest.name
                    ),
                    folder,
                    name,
                }),
                Ok(p) => {
                    tracing::info!(
                        plugin = %p.manifest.name,
                        kind = %p.manifest.kind,
                        wit = %p.manifest.implements,
                        source = ?p.source,
                        "plugin loaded in {:.1} ms",
                        p.load_time.as_secs_f64() * 1e3
                    );
                    set.loaded.insert(p.manifest.name.clone(), Arc::new(p));
                }
                Err(e) => {
                    tracing::error!("plugin refused: {e}");
                    set.refused.push(Refused {
                        folder,
                        name,
                        error: e.0,
                    });
                }
            }
        }
        for name in overrides.keys() {
            if !set.loaded.contains_key(name) && set.refused_named(name).is_none() {
                tracing::warn!(
                    "[plugins.{name}] in the config names no plugin in {}",
                    dir.display()
                );
            }
        }
        Ok(set)
    }

    /// Loads one plugin folder, applying the config's pin if any.
    pub fn load_plugin(&self, folder: &Path, pin: Option<&str>) -> Result<LoadedPlugin, LoadError> {
        let started = Instant::now();
        let manifest = Manifest::load(folder).map_err(|e| LoadError(e.to_string()))?;
        let toml_file = folder.join("plugin.toml");
        let wasm = std::fs::read(&manifest.component_path).map_err(|e| {
            LoadError(format!(
                "{}: cannot read the component {}: {e}; build the plugin and copy its .wasm next to plugin.toml",
                toml_file.display(),
                manifest.component_path.display()
            ))
        })?;
        let actual = hex::encode(Sha256::digest(&wasm));
        if actual != manifest.sha256 {
            return Err(LoadError(format!(
                "{}: the component {} has sha256 {actual}, but plugin.toml says {}; if you rebuilt \
                 the plugin, update `sha256` (sha256sum), otherwise the file was altered: replace it",
                toml_file.display(),
                manifest.component_path.display(),
                manifest.sha256
            )));
        }
        if let Some(pin) = pin
            && pin != actual
        {
            return Err(LoadError(format!(
                "{}: the component has sha256 {actual}, but the config pins [plugins.{}] sha256 = \"{pin}\"; \
                     update the pin if this plugin version is the one you want",
                toml_file.display(),
                manifest.name
            )));
        }
        let (component, source) =
            cache::load(&self.engine, &wasm, &actual, self.cache_dir.as_deref()).map_err(|e| {
                LoadError(format!(
                    "{}: {} is not a valid WebAssembly component: {e:#}; build it with \
                     `cargo build --target wasm32-wasip2 --release`",
                    toml_file.display(),
                    manifest.component_path.display()
                ))
            })?;
        self.check_imports(&component, &manifest, &toml_file)?;
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            LoadError(format!(
                "{}: the component needs imports this host does not give plugins: {e:#}",
                toml_file.display()
            ))
        })?;
        let wrong_world = |e: wasmtime::Error| {
            LoadError(format!(
                "{}: plugin.toml says it implements {}, but the component does not export that \
                 interface with the expected types ({e:#}); rebuild it against wit/{} of this redback",
                toml_file.display(),
                manifest.implements,
                manifest.kind
            ))
        };
        let (storage_pre, provider_pre) = match manifest.kind {
            Kind::Storage => (
                Some(storage_guest::bindings::StorageBackendPre::new(pre).map_err(wrong_world)?),
                None,
            ),
            Kind::Provider => (
                None,
                Some(provider_guest::bindings::ProviderAdapterPre::new(pre).map_err(wrong_world)?),
            ),
        };
        Ok(LoadedPlugin {
            manifest,
            source,
            load_time: started.elapsed(),
            engine: self.engine.clone(),
            storage_pre,
            provider_pre,
        })
    }

    /// Refuses a component that imports `wasi:http` when its plugin.toml
    /// does not ask for `http`, so the operator sees the mismatch at load
    /// time rather than as a refused request later.
    fn check_imports(
        &self,
        component: &Component,
        manifest: &Manifest,
        file: &Path,
    ) -> Result<(), LoadError> {
        if manifest.capabilities.http {
            return Ok(());
        }
        let ty = component.component_type();
        match ty
            .imports(&self.engine)
            .find(|(name, _)| name.starts_with("wasi:http/"))
        {
            Some((name, _)) => Err(LoadError(format!(
                "{}: the component imports {name}, but [capabilities] does not ask for `http = true`; \
                 add it if the plugin needs outbound HTTP",
                file.display()
            ))),
            None => Ok(()),
        }
    }

    /// Opens the storage `cfg` with its plugin: sandbox limits from the
    /// plugin's request and the config's overrides, the HTTP allow-list and
    /// preopened directory from the storage table, and one instance made and
    /// configured to check the settings.
    pub async fn open_storage(
        &self,
        plugin: &Arc<LoadedPlugin>,
        cfg: &StorageConfig,
        overrides: Option<&PluginOverrides>,
    ) -> Result<Arc<dyn Storage>, StorageError> {
        let manifest = &plugin.manifest;
        let err = |kind, message: String| StorageError {
            storage: cfg.name.clone(),
            plugin: manifest.name.clone(),
            kind,
            message,
        };
        if manifest.kind != Kind::Storage {
            return Err(err(
                ErrorKind::InvalidConfig,
                format!(
                    "is a {} plugin; `plugin` of a storage must name a storage plugin",
                    manifest.kind
                ),
            ));
        }
        let limits = limits_for(manifest, overrides);
        let mut settings: Vec<(String, String)> = cfg
            .settings
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_string()))
            .collect();
        let preopen = if manifest.capabilities.filesystem {
            let root = cfg.root.clone().ok_or_else(|| {
                err(
                    ErrorKind::InvalidConfig,
                    format!(
                        "the plugin keeps objects in a directory: set `root = \"/path\"` under [storage.{}]",
                        cfg.name
                    ),
                )
            })?;
            std::fs::create_dir_all(&root).map_err(|e| {
                err(
                    ErrorKind::InvalidConfig,
                    format!("cannot create `root` {}: {e}", root.display()),
                )
            })?;
            settings.push(("root".into(), GUEST_ROOT.into()));
            Some(root)
        } else {
            if cfg.root.is_some() {
                return Err(err(
                    ErrorKind::InvalidConfig,
                    "`root` is set, but the plugin does not ask for a filesystem; remove it".into(),
                ));
            }
            None
        };
        let grants = if manifest.capabilities.http {
            let g = Grants::parse(&cfg.allow_hosts)
                .map_err(|m| err(ErrorKind::InvalidConfig, format!("allow_hosts: {m}")))?;
            Some(Arc::new(g))
        } else {
            if !cfg.allow_hosts.is_empty() {
                tracing::warn!(
                    storage = %cfg.name,
                    "allow_hosts or an endpoint is set, but plugin {} does not ask for HTTP; it gets none",
                    manifest.name
                );
            }
            None
        };
        settings.sort();
        let storage = storage_guest::WasmStorage::open(
            &cfg.name,
            plugin.clone(),
            settings,
            preopen,
            grants,
            limits,
            cfg.encryption.clone(),
        )
        .await?;
        Ok(Arc::new(storage))
    }

    /// The provider adapter served by `plugin`.
    pub async fn open_provider(
        &self,
        plugin: &Arc<LoadedPlugin>,
        overrides: Option<&PluginOverrides>,
    ) -> anyhow::Result<Arc<dyn Provider>> {
        let limits = limits_for(&plugin.manifest, overrides);
        let p = provider_guest::WasmProvider::open(plugin.clone(), limits).await?;
        Ok(Arc::new(p))
    }
}

/// The limits for a plugin: its own memory request unless the config
/// overrides it, and the host defaults for time.
pub fn limits_for(manifest: &Manifest, overrides: Option<&PluginOverrides>) -> Limits {
    let d = Limits::default();
    let o = overrides.cloned().unwrap_or_default();
    Limits {
        memory_bytes: (o.memory_mib.unwrap_or(manifest.capabilities.memory_mib) as usize) << 20,
        cpu_per_call: o
            .cpu_ms_per_call
            .map(Duration::from_millis)
            .unwrap_or(d.cpu_per_call),
        call_timeout: o.call_timeout.unwrap_or(d.call_timeout),
    }
}
