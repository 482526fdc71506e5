//! `plugin.toml`: what a plugin folder says about itself, parsed then
//! validated; every refusal names the file and the fix.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// WIT packages this host implements, by plugin kind.
pub const STORAGE_WIT: &str = "redback:storage@0.1.0";
pub const PROVIDER_WIT: &str = "redback:provider@0.1.0";

/// Memory a plugin gets when its plugin.toml does not say.
pub const DEFAULT_MEMORY_MIB: u32 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Storage,
    Provider,
}

impl Kind {
    /// The WIT package@version this host supports for the kind.
    pub fn supported_wit(self) -> &'static str {
        match self {
            Kind::Storage => STORAGE_WIT,
            Kind::Provider => PROVIDER_WIT,
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Storage => "storage",
            Kind::Provider => "provider",
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: String,
    kind: Kind,
    implements: String,
    component: String,
    sha256: Option<String>,
    description: Option<String>,
    #[serde(default)]
    capabilities: RawCapabilities,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCapabilities {
    #[serde(default)]
    filesystem: bool,
    #[serde(default)]
    http: bool,
    memory_mib: Option<u32>,
}

/// What a plugin may use, as its plugin.toml asks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Capabilities {
    /// One preopened directory at `/data`.
    pub filesystem: bool,
    /// Outbound `wasi:http` to granted hosts.
    pub http: bool,
    pub memory_mib: u32,
}

/// A validated plugin.toml.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Manifest {
    pub name: String,
    pub kind: Kind,
    pub implements: String,
    /// Absolute path of the component file.
    pub component_path: PathBuf,
    pub sha256: String,
    pub description: String,
    pub capabilities: Capabilities,
}

/// Why a plugin folder was refused.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ManifestError {
    pub file: PathBuf,
    pub message: String,
}

impl Manifest {
    /// Reads `<dir>/plugin.toml`.
    pub fn load(dir: &Path) -> Result<Manifest, ManifestError> {
        let file = dir.join("plugin.toml");
        let err = |message: String| ManifestError {
            file: file.clone(),
            message,
        };
        let text = std::fs::read_to_string(&file).map_err(|e| {
            err(format!(
                "cannot read it ({e}); every plugin folder needs a plugin.toml (see examples/storage-plugin-template/README.md)"
            ))
        })?;
        let raw: RawManifest = toml::from_str(&text).map_err(|e| {
            err(format!(
                "malformed: {}; fix the file (see examples/storage-plugin-template/README.md for every field)",
                e.to_string().trim_end()
            ))
        })?;
        if !valid_name(&raw.name) {
            return Err(err(format!(
                "`name = \"{}\"`: use 1 to 64 of a-z, 0-9 and `-`",
                raw.name
            )));
        }
        let supported = raw.kind.supported_wit();
        if raw.implements != supported {
            let (package, _) = supported.split_once('@').unwrap_or((supported, ""));
            let fix = if raw.implements.starts_with(package) {
                format!(
                    "rebuild the plugin against wit/{} of this redback",
                    raw.kind
                )
            } else {
                format!("a {} plugin must implement {supported}", raw.kind)
            };
            return Err(err(format!(
                "`implements = \"{}\"` is not supported: this redback supports {supported}; {fix}",
                raw.implements
            )));
        }
        if raw.component.contains('/')
            || raw.component.contains('\\')
            || raw.component.starts_with('.')
        {
            return Err(err(format!(
                "`component = \"{}\"` must be a file name in the plugin folder, not a path",
                raw.component
            )));
        }
        let sha256 = match raw.sha256 {
            Some(s) if crate::config::is_sha256_hex(&s) => s,
            Some(_) => {
                return Err(err(
                    "`sha256` must be 64 lowercase hex digits: the output of `sha256sum` on the component".into(),
                ));
            }
            None => {
                return Err(err(format!(
                    "`sha256` is missing; add `sha256 = \"<hex>\"` with the output of `sha256sum {}`",
                    raw.component
                )));
            }
        };
        let memory_mib = raw.capabilities.memory_mib.unwrap_or(DEFAULT_MEMORY_MIB);
        if !(1..=4096).contains(&memory_mib) {
            return Err(err(format!(
                "`capabilities.memory_mib = {memory_mib}` is out of range; use 1 to 4096"
            )));
        }
        if raw.kind == Kind::Provider && (raw.capabilities.filesystem || raw.capabilities.http) {
            return Err(err(
                "provider plugins get no filesystem and no network; remove them from [capabilities]".into(),
            ));
        }
        Ok(Manifest {
            name: raw.name,
            kind: raw.kind,
            implements: raw.implements,
            component_path: dir.join(&raw.component),
            sha256,
            description: raw.description.unwrap_or_default(),
            capabilities: Capabilities {
                filesystem: raw.capabilities.filesystem,
                http: raw.capabilities.http,
                memory_mib,
            },
        })
    }
}

fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'))
}
