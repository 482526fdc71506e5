//! Provider semantics seen by the rest of the host: a plain trait over the
//! adapter a provider plugin exports (`wit/provider`).
//!
//! Owns: the `Provider` trait and its typed values. Must not know about
//! wasmtime (`plugin/` adapts components to this trait) and must not hold
//! provider rules itself: those live in the provider components.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

/// A wall-clock time in the instance's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeOfDay {
    pub hour: u8,
    pub minute: u8,
}

/// When automatic backups start and how long they are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub weekdays: Vec<Weekday>,
    pub window_start: TimeOfDay,
    pub window_end: TimeOfDay,
    pub retention_days: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestoreMode {
    InPlace,
    Keys,
    Clone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupKind {
    Automatic,
    Manual,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkLifetime {
    pub network: crate::storage::Network,
    pub ttl_secs: u32,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Labels {
    pub running: String,
    pub backing_up: String,
    pub recovering_by_backup: String,
    pub recovering_by_key: String,
    pub cloning: String,
    pub automatic_backup: String,
    pub manual_backup: String,
    pub manual_backup_text: String,
}

/// Which parts of a policy a user may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Changeable {
    pub weekdays: bool,
    pub window: bool,
    pub retention: bool,
}

/// Everything the host needs to behave like one provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Descriptor {
    pub name: String,
    pub display_name: String,
    pub default_policy: Policy,
    pub changeable: Changeable,
    pub min_weekdays: u32,
    pub retention_min_days: u32,
    pub retention_max_days: u32,
    pub download_links: Vec<LinkLifetime>,
    pub restore_modes: Vec<RestoreMode>,
    pub recommended_restore: Option<RestoreMode>,
    pub password_confirms: Vec<RestoreMode>,
    pub backup_from_replica: bool,
    pub archive_retention_days: Option<u32>,
    pub labels: Labels,
}

/// A provider adapter. Errors are the host failing to run the plugin; a
/// refused policy is the `Err(String)` inside `validate_policy`'s `Ok`.
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    /// Cached at open: describing never fails once the adapter is open.
    fn descriptor(&self) -> &Descriptor;
    async fn validate_policy(&self, requested: &Policy) -> anyhow::Result<Result<Policy, String>>;
    async fn object_prefix(
        &self,
        instance: &str,
        backup_id: &str,
        kind: BackupKind,
        started_unix_secs: i64,
    ) -> anyhow::Result<String>;
}
