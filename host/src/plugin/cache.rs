//! Compiled components, cached on disk keyed by engine and component hash,
//! so a restart loads a plugin in well under a millisecond instead of
//! compiling it again (50–90 ms per component, FACTS.md).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

/// Where a component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// Compiled now (no cache, or nothing cached yet).
    Compiled,
    /// Deserialized from the cache.
    Cache,
}

/// The cache folder for this engine: a different wasmtime version or engine
/// configuration gets a different folder, so stale artifacts are never read.
fn engine_dir(root: &Path, engine: &Engine) -> PathBuf {
    let mut h = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    root.join(format!("wasmtime-{:016x}", h.finish()))
}

/// The component for `wasm` (whose sha256 is `sha256`, already verified),
/// from the cache when it has it.
pub(super) fn load(
    engine: &Engine,
    wasm: &[u8],
    sha256: &str,
    cache_root: Option<&Path>,
) -> anyhow::Result<(Component, Source)> {
    let Some(root) = cache_root else {
        return Ok((Component::from_binary(engine, wasm)?, Source::Compiled));
    };
    let dir = engine_dir(root, engine);
    let path = dir.join(format!("{sha256}.cwasm"));
    if path.exists() {
        // SAFETY: the file was written by `Component::serialize` of this
        // engine configuration (the folder is keyed by it) into the daemon's
        // own state directory, which only the daemon writes (mode 0700).
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(c) => return Ok((c, Source::Cache)),
            Err(e) => tracing::warn!(
                "ignoring unreadable compiled plugin {}: {e:#}",
                path.display()
            ),
        }
    }
    let component = Component::from_binary(engine, wasm)?;
    if let Err(e) = store(&dir, &path, &component) {
        tracing::warn!(
            "cannot cache the compiled plugin at {}: {e:#}",
            path.display()
        );
    }
    Ok((component, Source::Compiled))
}

fn store(dir: &Path, path: &Path, component: &Component) -> anyhow::Result<()> {
    create_private_dir(dir)?;
    let bytes = component.serialize()?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}
