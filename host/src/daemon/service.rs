//! What the daemon does for its instances, whoever asks (the REST API, the
//! scheduler, the sweeper): backups, restores, clones, archive copies,
//! retention, download links, policies; each as a task of the task center,
//! recorded in the catalog.
//!
//! Owns: the provider's rules at the door (a request the provider forbids
//! is refused with its sentence), the catalog kept in step with storage,
//! and the clean-up after a crash. Must not: speak HTTP (`api/`) or decide
//! when automatic backups run (`schedule/`).

mod downloads;
mod restore;
mod sweep;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::backup::{self, Kind, Manifest, Stamp};
use crate::catalog::{BackupQuery, BackupRecord, BackupStatus, Catalog, TaskKind};
use crate::config::{Config, InstanceConfig};
use crate::crash_point::{self, CrashPoint};
use crate::links::LinkKey;
use crate::provider::{Policy, Provider, RestoreMode};
use crate::schedule::Clock;
use crate::storage::{Network, Storage};
use crate::tasks::{Activity, NewTask, Task, TaskCenter};

/// Why a request was not carried out; the API maps each to a status code.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    NotFound(String),
    /// The provider forbids it; the text is the provider's sentence.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unavailable(String),
    /// The stored backup is not what its manifest says (sha256, RDB,
    /// CRC-64 or counts): retrying will not help.
    #[error("{0}")]
    Damaged(String),
    #[error("{0}")]
    Internal(String),
}

impl From<backup::VerifyError> for ServiceError {
    fn from(e: backup::VerifyError) -> Self {
        match e {
            backup::VerifyError::Mismatch { .. } => ServiceError::Damaged(e.to_string()),
            backup::VerifyError::NotFound { .. } => ServiceError::NotFound(e.to_string()),
            backup::VerifyError::Encryption(
                crate::crypt::CryptError::Authentication { .. }
                | crate::crypt::CryptError::Format { .. },
            ) => ServiceError::Damaged(e.to_string()),
            // A missing or wrong key: the backup reads once the key ring
            // has its key (a config change and a reload).
            other => ServiceError::Unavailable(other.to_string()),
        }
    }
}

impl From<crate::catalog::CatalogError> for ServiceError {
    fn from(e: crate::catalog::CatalogError) -> Self {
        ServiceError::Internal(e.to_string())
    }
}

impl From<crate::tasks::StartError> for ServiceError {
    fn from(e: crate::tasks::StartError) -> Self {
        match e {
            crate::tasks::StartError::Busy { .. } => ServiceError::Conflict(e.to_string()),
            crate::tasks::StartError::Catalog(c) => c.into(),
        }
    }
}

/// An instance as the daemon runs it.
pub struct Managed {
    pub config: InstanceConfig,
    pub provider: Option<Arc<dyn Provider>>,
    pub tz: jiff::tz::TimeZone,
    /// The policy in force (provider-validated); `None` without a provider.
    pub policy: RwLock<Option<Policy>>,
}

/// What a restore request asks for. Its `Debug` leaves the passwords out.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// `in-place`, `keys` or `clone`.
    pub mode: RestoreMode,
    /// For `keys`: `k1;k2;user:*`.
    pub keys: Option<String>,
    pub db: Option<u64>,
    /// For `clone`: an empty Redis to restore into...
    pub target: Option<String>,
    /// ...or a new local redis-server on this port and data directory.
    pub spawn_port: Option<u16>,
    pub spawn_dir: Option<std::path::PathBuf>,
    /// The instance password, when the provider asks for it as confirmation.
    pub password: Option<String>,
    /// For a clone into `target`: that server's password (the instance's
    /// credentials are never sent to another address).
    pub target_password: Option<String>,
    /// Keys: keep existing keys instead of replacing them.
    #[serde(default)]
    pub no_replace: bool,
}

impl std::fmt::Debug for RestoreRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoreRequest")
            .field("mode", &self.mode)
            .field("keys", &self.keys)
            .field("db", &self.db)
            .field("target", &self.target)
            .field("spawn_port", &self.spawn_port)
            .field("spawn_dir", &self.spawn_dir)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field(
                "target_password",
                &self.target_password.as_ref().map(|_| "***"),
            )
            .field("no_replace", &self.no_replace)
            .finish()
    }
}

/// The longest name or remark a manual backup may carry.
pub const MAX_BACKUP_NAME_CHARS: usize = 256;

/// Whether `dir` is absolute and made of plain names only: no `.` or `..`
/// part (which would let a request climb out of the folder it names) and
/// no NUL.
fn plain_absolute(dir: &std::path::Path) -> bool {
    use std::path::Component;
    dir.is_absolute()
        && !dir.as_os_str().as_encoded_bytes().contains(&0)
        && dir
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

/// A download link handed out.
#[derive(Debug, Clone, Serialize)]
pub struct Link {
    pub url: String,
    pub network: Network,
    pub expires_at: String,
    /// How the provider words this kind of link.
    pub label: Option<String>,
    /// `storage` (presigned by the storage) or `daemon` (served here).
    pub served_by: &'static str,
}

pub struct Service {
    /// The scheduler, told when a policy changes.
    pub scheduler: tokio::sync::Mutex<Option<crate::schedule::SchedulerHandle>>,
    /// What the config and the plugin directory gave at the last (re)load.
    /// A reload swaps it whole; work in progress keeps the storages and
    /// instances it started with.
    live: RwLock<Arc<Live>>,
    /// Runs the plugins; outlives every reload.
    pub host: Arc<crate::plugin::PluginHost>,
    /// One reload at a time.
    pub(crate) reloading: tokio::sync::Mutex<()>,
    /// Sweeps and catalog clean-ups take turns: a clean-up that saw a
    /// backup half-swept would otherwise mend what the sweep is deleting.
    pub(crate) maintenance: tokio::sync::Mutex<()>,
    pub catalog: Arc<Catalog>,
    pub tasks: Arc<TaskCenter>,
    pub clock: Arc<dyn Clock>,
    pub links: LinkKey,
}

/// The config, plugins, storages and instances in force.
pub struct Live {
    pub config: Config,
    pub plugins: crate::plugin::PluginSet,
    pub storages: BTreeMap<String, Arc<dyn Storage>>,
    /// Storages that did not open, with the reason.
    pub storage_errors: BTreeMap<String, String>,
    pub instances: BTreeMap<String, Arc<Managed>>,
}

impl Service {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        live: Live,
        host: Arc<crate::plugin::PluginHost>,
        catalog: Arc<Catalog>,
        tasks: Arc<TaskCenter>,
        clock: Arc<dyn Clock>,
        links: LinkKey,
    ) -> Service {
        Service {
            scheduler: tokio::sync::Mutex::new(None),
            live: RwLock::new(Arc::new(live)),
            host,
            reloading: tokio::sync::Mutex::new(()),
            maintenance: tokio::sync::Mutex::new(()),
            catalog,
            tasks,
            clock,
            links,
        }
    }

    /// The config, plugins, storages and instances in force now.
    pub fn live(&self) -> Arc<Live> {
        self.live.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn swap_live(&self, live: Live) {
        *self.live.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(live);
    }

    pub fn instance(&self, name: &str) -> Result<Arc<Managed>, ServiceError> {
        let live = self.live();
        live.instances.get(name).cloned().ok_or_else(|| {
            ServiceError::NotFound(format!(
                "no instance '{name}'; configured: {}",
                crate::config::join_or_none(live.instances.keys())
            ))
        })
    }

    pub(crate) fn storage(&self, name: &str) -> Result<Arc<dyn Storage>, ServiceError> {
        let live = self.live();
        if !live.config.storages.contains_key(name) {
            return Err(ServiceError::NotFound(format!(
                "no storage '{name}' in the config"
            )));
        }
        live.storages.get(name).cloned().ok_or_else(|| {
            ServiceError::Unavailable(format!("storage '{name}' is not open; see /health for why"))
        })
    }

    pub fn backup_record(&self, id: &str) -> Result<BackupRecord, ServiceError> {
        self.catalog
            .get_backup(id)?
            .filter(|b| b.status == BackupStatus::Complete)
            .ok_or_else(|| ServiceError::NotFound(format!("no complete backup '{id}'")))
    }

    fn manifest_of(&self, b: &BackupRecord) -> Result<Manifest, ServiceError> {
        match b.manifest() {
            Some(Ok(m)) => Ok(m),
            Some(Err(e)) => Err(ServiceError::Internal(format!(
                "backup {}: the catalog's copy of the manifest is unreadable ({e}); run `redback catalog rebuild`",
                b.id
            ))),
            None => Err(ServiceError::Internal(format!(
                "backup {}: the catalog holds no manifest for it; run `redback catalog rebuild`",
                b.id
            ))),
        }
    }

    /// Starts a backup task and returns its id; the backup runs on.
    pub fn backup_now(
        self: &Arc<Self>,
        instance: &str,
        text: Option<String>,
    ) -> Result<String, ServiceError> {
        let m = self.instance(instance)?;
        if let Some(t) = &text
            && (t.chars().count() > MAX_BACKUP_NAME_CHARS || t.chars().any(char::is_control))
        {
            return Err(ServiceError::BadRequest(format!(
                "the backup's name or remark must be at most {MAX_BACKUP_NAME_CHARS} characters \
                 without control characters (NUL, newlines, escapes)"
            )));
        }
        let task = self.start_backup_task(&m, Kind::Manual)?;
        let id = task.id.clone();
        let this = self.clone();
        tokio::spawn(async move {
            let _ = this.run_backup(&m, Kind::Manual, text, task).await;
        });
        Ok(id)
    }

    fn start_backup_task(&self, m: &Managed, kind: Kind) -> Result<Task, ServiceError> {
        self.storage(&m.config.storage)?;
        Ok(self.tasks.start(NewTask {
            kind: TaskKind::Backup,
            instance: Some(&m.config.name),
            backup_id: None,
            activity: Some(|task, _| Activity::BackingUp { task }),
            detail: serde_json::json!({ "kind": kind }),
        })?)
    }

    /// Takes a backup in `task` and records it; what the scheduler awaits.
    pub async fn run_backup(
        &self,
        m: &Managed,
        kind: Kind,
        text: Option<String>,
        task: Task,
    ) -> Result<Manifest, String> {
        let storage = match self.storage(&m.config.storage) {
            Ok(s) => s,
            Err(e) => {
                task.fail(e.to_string(), None);
                return Err(e.to_string());
            }
        };
        let started = self.clock.now();
        let retention_days = m
            .policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|p| p.retention_days);
        let stamp = Stamp {
            id: backup::new_backup_id(started),
            started,
            provider: m.config.provider.clone(),
            retention_until: retention_days.and_then(|d| {
                started
                    .checked_add(jiff::SignedDuration::from_hours(24 * d as i64))
                    .ok()
            }),
        };
        let (data_key, manifest_key) = backup::object_keys(&m.config, &stamp.id);
        // Recorded before the first byte, so a crash can be cleaned up.
        let pending = BackupRecord {
            id: stamp.id.clone(),
            instance: m.config.name.clone(),
            storage: m.config.storage.clone(),
            kind,
            name: text.clone(),
            started_at: started,
            finished_at: None,
            status: BackupStatus::Running,
            stored_bytes: 0,
            raw_bytes: 0,
            source_address: None,
            source_role: None,
            redis_version: None,
            rdb_version: None,
            data_key: Some(data_key),
            manifest_key: Some(manifest_key.clone()),
            sha256: None,
            retention_until: stamp.retention_until,
            archived: None,
            manifest_json: None,
        };
        if let Err(e) = self
            .catalog
            .upsert_backup(&pending)
            .and_then(|()| self.catalog.set_task_backup_id(&task.id, &stamp.id))
        {
            task.fail(e.to_string(), None);
            return Err(e.to_string());
        }
        let request = backup::Request { kind, name: text };
        let progress = Arc::new(backup::Progress::default());
        let p = progress.clone();
        task.progress.follow(move || (p.raw_bytes.load(Relaxed), 0));
        // A provider that takes backups from a replica (Alibaba, Tencent)
        // makes the replica the preferred source whatever the config says.
        let mut source = m.config.clone();
        if m.provider
            .as_ref()
            .is_some_and(|p| p.descriptor().backup_from_replica)
        {
            source.prefer_replica = true;
        }
        let result =
            backup::run_stamped(&source, storage, &request, stamp.clone(), progress.clone()).await;
        match result {
            Ok(manifest) => {
                crash_point::reached(CrashPoint::BackupManifestStored);
                task.progress
                    .bytes_total
                    .store(manifest.data.raw_bytes, Relaxed);
                if let Err(e) =
                    self.catalog
                        .record_manifest(&m.config.storage, &manifest, &manifest_key)
                {
                    task.fail(
                        format!("the backup is stored but the catalog failed: {e}"),
                        None,
                    );
                    return Err(e.to_string());
                }
                task.succeed(Some(
                    serde_json::json!({ "kind": kind, "backup_id": manifest.id }),
                ));
                if let Some(archive) = &m.config.archive_storage {
                    let _ = self.archive(m, &manifest, archive).await;
                }
                Ok(manifest)
            }
            Err(e) => {
                let _ = self
                    .catalog
                    .set_backup_status(&stamp.id, BackupStatus::Failed);
                let msg = e.to_string();
                task.fail(
                    msg.clone(),
                    Some(serde_json::json!({ "kind": kind, "backup_id": stamp.id })),
                );
                Err(msg)
            }
        }
    }

    /// Copies a complete backup to the archive storage: data, then manifest.
    async fn archive(&self, m: &Managed, manifest: &Manifest, archive: &str) -> Result<(), String> {
        let task = match self.tasks.start(NewTask {
            kind: TaskKind::Archive,
            instance: Some(&m.config.name),
            backup_id: Some(&manifest.id),
            activity: None,
            detail: serde_json::json!({ "archive_storage": archive }),
        }) {
            Ok(t) => t,
            Err(e) => return Err(e.to_string()),
        };
        let r = async {
            let from = self.storage(&m.config.storage).map_err(|e| e.to_string())?;
            let to = self.storage(archive).map_err(|e| e.to_string())?;
            let (_, manifest_key) = backup::object_keys(&m.config, &manifest.id);
            archive_readable(manifest, from.as_ref(), to.as_ref())?;
            copy_object(from.as_ref(), to.as_ref(), &manifest.data.key, &task).await?;
            crash_point::reached(CrashPoint::ArchiveDataCopied);
            copy_object(from.as_ref(), to.as_ref(), &manifest_key, &task).await?;
            crash_point::reached(CrashPoint::ArchiveManifestCopied);
            self.catalog
                .set_archived(&manifest.id, archive, self.clock.now())
                .map_err(|e| e.to_string())
        }
        .await;
        match &r {
            Ok(()) => task.succeed(None),
            Err(e) => task.fail(e.clone(), None),
        }
        r
    }

    /// Reads backup `id` whole: sha256 of the stored object, decompression,
    /// a full parse with the RDB's CRC-64, and the manifest's counts.
    pub async fn verify(&self, id: &str) -> Result<backup::Verified, ServiceError> {
        let b = self.backup_record(id)?;
        let m = self.manifest_of(&b)?;
        Ok(backup::verify(self.storage(&b.storage)?, &m).await?)
    }

    /// Keys per db and type, the biggest keys, and keys matching `pattern`.
    pub async fn inspect(
        &self,
        id: &str,
        pattern: Option<&str>,
        top: usize,
    ) -> Result<backup::Inspection, ServiceError> {
        let b = self.backup_record(id)?;
        let m = self.manifest_of(&b)?;
        Ok(backup::inspect(self.storage(&b.storage)?, &m, pattern, top).await?)
    }

    /// Runs the storage conformance kit against a configured storage.
    pub async fn check_storage(
        &self,
        name: &str,
    ) -> Result<crate::storage::conformance::Report, ServiceError> {
        let s = self.storage(name)?;
        Ok(crate::storage::conformance::run(s.as_ref()).await)
    }

    /// Backups of `instance` in the catalog.
    pub fn list_backups(&self, q: &BackupQuery) -> Result<Vec<BackupRecord>, ServiceError> {
        Ok(self.catalog.list_backups(q)?)
    }

    /// At start-up: tasks a crash cut off are marked failed, and the
    /// objects of backups that never completed are removed. A backup whose
    /// manifest did make it to storage is complete after all and is kept.
    /// A cut-off sweep is finished and a cut-off archive copy is kept if
    /// its manifest landed, else removed. Returns whether a stop had cut
    /// anything off.
    pub async fn recover(&self) -> Result<bool, ServiceError> {
        let interrupted = self.catalog.interrupted_tasks()?;
        for t in &interrupted {
            self.catalog.mark_interrupted(
                &t.id,
                crate::catalog::INTERRUPTED_MESSAGE,
                self.clock.now(),
            )?;
            tracing::warn!(task = %t.id, "marked failed: the daemon stopped while it ran");
        }
        let running = self.catalog.list_backups(&BackupQuery {
            status: Some(BackupStatus::Running),
            ..Default::default()
        })?;
        let cut_off = !running.is_empty();
        for b in running {
            let Ok(storage) = self.storage(&b.storage) else {
                continue;
            };
            let manifest_key = b.manifest_key.clone().unwrap_or_default();
            match backup::read_all(storage.as_ref(), &manifest_key, 1 << 20).await {
                Ok(bytes) => match Manifest::from_json(&bytes) {
                    Ok(manifest) => {
                        self.catalog
                            .record_manifest(&b.storage, &manifest, &manifest_key)?;
                        continue;
                    }
                    // A manifest that does not parse is not a backup; its
                    // objects go like a cut-off one's.
                    Err(e) => {
                        tracing::warn!(backup = %b.id, "its manifest does not parse: {e}");
                        let _ = storage.delete(&manifest_key).await;
                    }
                },
                Err(e) if e.kind == crate::storage::ErrorKind::NotFound => {}
                // Not knowing whether the manifest landed: touch nothing,
                // look again at the next start.
                Err(e) => {
                    tracing::error!(backup = %b.id, "cannot tell whether it completed, left for the next start: {e}");
                    continue;
                }
            }
            if let Some(k) = &b.data_key {
                let _ = storage.delete(k).await;
            }
            self.catalog
                .set_backup_status(&b.id, BackupStatus::Failed)?;
            tracing::warn!(backup = %b.id, "removed the objects of a backup cut off by a stop");
        }
        // Sweeps and archive copies the stop cut off (see `recovery.rs`).
        self.finish_interrupted(&interrupted).await?;
        Ok(!interrupted.is_empty() || cut_off)
    }

    /// Sets an instance's policy through the provider; stored in the
    /// catalog so it outlives a restart.
    pub async fn set_policy(
        &self,
        instance: &str,
        requested: Policy,
    ) -> Result<Policy, ServiceError> {
        let m = self.instance(instance)?;
        let p = m.provider.as_ref().ok_or_else(|| {
            ServiceError::BadRequest(format!(
                "instance '{instance}' has no provider, so no automatic backups; set `provider` in its config"
            ))
        })?;
        let accepted = match p.validate_policy(&requested).await {
            Ok(Ok(a)) => a,
            Ok(Err(sentence)) => return Err(ServiceError::Forbidden(sentence)),
            Err(e) => return Err(ServiceError::Internal(format!("{e:#}"))),
        };
        let v =
            serde_json::to_value(&accepted).map_err(|e| ServiceError::Internal(e.to_string()))?;
        self.catalog.set_policy(instance, &v)?;
        *m.policy.write().unwrap_or_else(|p| p.into_inner()) = Some(accepted.clone());
        Ok(accepted)
    }

    /// Hands the scheduler the current plans after a policy change.
    pub async fn policies_changed(&self) {
        if let Some(h) = self.scheduler.lock().await.as_ref()
            && let Err(e) = h.replace_plans(self.plans()).await
        {
            tracing::error!("the scheduler did not take the new policy: {e}");
        }
    }

    /// The scheduler's plans: every instance with a provider and a policy.
    pub fn plans(&self) -> Vec<crate::schedule::Plan> {
        self.live()
            .instances
            .values()
            .filter_map(|m| {
                let policy = m.policy.read().unwrap_or_else(|p| p.into_inner()).clone()?;
                Some(crate::schedule::Plan {
                    instance: m.config.name.clone(),
                    storage: m.config.storage.clone(),
                    policy,
                    tz: m.tz.clone(),
                })
            })
            .collect()
    }
}

/// Whether the archive storage `to` can keep backup `m` of storage
/// `from` as is. Copies are byte for byte (ciphertext stays ciphertext),
/// so an encrypted backup needs its key id in `to`'s key ring, and a
/// plaintext backup is not copied into a storage that encrypts at rest.
fn archive_readable(m: &Manifest, from: &dyn Storage, to: &dyn Storage) -> Result<(), String> {
    match (&m.data.encryption, to.key_ring()) {
        (Some(_), _) => backup::stream::readable(to, m).map_err(|e| {
            format!(
                "archive storage '{}' could not read the copy: {e}",
                to.name()
            )
        }),
        (None, Some(_)) => Err(format!(
            "storage '{}' encrypts at rest, but backup {} in storage '{}' is not encrypted, and a copy would be plaintext there; add an `encryption` table to [storage.{}] too",
            to.name(),
            m.id,
            from.name(),
            from.name()
        )),
        (None, None) => Ok(()),
    }
}

/// The automatic backups the scheduler starts.
pub struct ScheduledBackups(pub Arc<Service>);

#[async_trait::async_trait]
impl crate::schedule::Runner for ScheduledBackups {
    async fn run(
        &self,
        window: &crate::schedule::Window,
        attempt: u32,
        delayed: bool,
    ) -> Result<(), String> {
        let m = self
            .0
            .instance(&window.instance)
            .map_err(|e| e.to_string())?
            .clone();
        let task = self
            .0
            .start_backup_task(&m, Kind::Automatic)
            .map_err(|e| e.to_string())?;
        tracing::info!(instance = %m.config.name, window = %window.id, attempt, delayed, "automatic backup");
        self.0
            .run_backup(&m, Kind::Automatic, None, task)
            .await
            .map(|_| ())
    }
}

/// A body of bytes for the API.
pub type ByteStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send>>;

fn stream_of(
    mut rx: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Streams `key` from one storage into another.
async fn copy_object(
    from: &dyn Storage,
    to: &dyn Storage,
    key: &str,
    task: &Task,
) -> Result<(), String> {
    let mut d = from
        .open_download(key, 0, None)
        .await
        .map_err(|e| e.to_string())?;
    let mut up = to.start_upload(key).await.map_err(|e| e.to_string())?;
    loop {
        let chunk = d.read(1 << 20).await.map_err(|e| e.to_string())?;
        if chunk.is_empty() {
            break;
        }
        task.progress
            .bytes_done
            .fetch_add(chunk.len() as u64, Relaxed);
        up.write(&chunk).await.map_err(|e| e.to_string())?;
        crash_point::reached(CrashPoint::ArchiveCopying);
    }
    up.finish().await.map(|_| ()).map_err(|e| e.to_string())
}

pub fn mode_word(m: RestoreMode) -> &'static str {
    match m {
        RestoreMode::InPlace => "in-place",
        RestoreMode::Keys => "keys",
        RestoreMode::Clone => "clone",
    }
}
