//! `[storage.NAME.encryption]`: the storage's key ring.
//!
//! ```toml
//! [storage.vault.encryption]
//! key = "2026-11"                                   # encrypts new backups
//! keys.2026-11 = { env = "REDBACK_KEY_2026_11" }    # hex or base64
//! keys.2025-05 = { file = "keys/2025-05.key" }      # hex, base64 or 32 raw bytes
//! ```
//!
//! Every listed key decrypts (old keys stay for reading after a rotation).
//! Key material is never written in the config itself.

use std::path::Path;
use std::sync::Arc;

use crate::crypt::{KeyRing, is_key_id, parse_key_file, parse_key_text};

type KeyError = (String, String);

/// The key ring of storage `name` from its `encryption` value.
pub(super) fn validate(
    name: &str,
    value: &toml::Value,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<KeyRing>, KeyError> {
    let key = |field: &str| format!("storage.{name}.encryption{field}");
    let example = "write e.g. key = \"k1\" and keys.k1 = { env = \"REDBACK_KEY_K1\" }";
    let toml::Value::Table(t) = value else {
        return Err((key(""), format!("must be a table; {example}")));
    };
    if let Some(other) = t.keys().find(|k| !["key", "keys"].contains(&k.as_str())) {
        return Err((
            key(&format!(".{other}")),
            "unknown; an `encryption` table has `key` (the id of the key that encrypts) and `keys`"
                .into(),
        ));
    }
    let current = match t.get("key") {
        Some(toml::Value::String(s)) => s.clone(),
        Some(_) => return Err((key(".key"), "must be a key id, a string".into())),
        None => {
            return Err((
                key(".key"),
                format!("missing; name the key that encrypts new backups; {example}"),
            ));
        }
    };
    let Some(toml::Value::Table(keys)) = t.get("keys") else {
        return Err((
            key(".keys"),
            format!("missing or not a table; list the keys by id; {example}"),
        ));
    };
    let mut ring = Vec::new();
    for (id, spec) in keys {
        let here = |field: &str| key(&format!(".keys.{id}{field}"));
        if !is_key_id(id) {
            return Err((
                here(""),
                "key ids use A-Z, a-z, 0-9, `.`, `_` and `-` (1 to 64 characters)".into(),
            ));
        }
        let spec = match spec {
            toml::Value::Table(s) => s,
            _ => {
                return Err((
                    here(""),
                    "must be { env = \"VAR\" } or { file = \"path\" }; keys are never written in the config".into(),
                ));
            }
        };
        let (bytes, source) = match (spec.get("env"), spec.get("file"), spec.len()) {
            (Some(toml::Value::String(var)), None, 1) => {
                let text = env(var).ok_or_else(|| {
                    (
                        here(".env"),
                        format!(
                            "names environment variable `{var}`, which is not set; export it (64 hex digits or base64 of 32 bytes), or use `file`"
                        ),
                    )
                })?;
                let bytes =
                    parse_key_text(&text).map_err(|m| (here(".env"), format!("`{var}`: {m}")))?;
                (bytes, format!("env {var}"))
            }
            (None, Some(toml::Value::String(f)), 1) => {
                let file = base.join(f);
                let raw = std::fs::read(&file).map_err(|e| {
                    (
                        here(".file"),
                        format!(
                            "cannot read {}: {e}; point it at a readable key file",
                            file.display()
                        ),
                    )
                })?;
                let bytes = parse_key_file(&raw)
                    .map_err(|m| (here(".file"), format!("{}: {m}", file.display())))?;
                (bytes, format!("file {}", file.display()))
            }
            _ => {
                return Err((
                    here(""),
                    "must be exactly one of { env = \"VAR\" } or { file = \"path\" }".into(),
                ));
            }
        };
        ring.push((id.clone(), bytes, source));
    }
    KeyRing::new(name, &current, ring)
        .map(Arc::new)
        .map_err(|m| (key(".key"), m))
}
