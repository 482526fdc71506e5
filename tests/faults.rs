//! Storage faults end to end: the real storage-local plugin under the
//! fault-injecting wrapper (`storage::faults`), under the host's retry layer
//! (`storage::resilient`), as the daemon stacks them. No injected failure
//! leaves a manifest or any object of the backup; transient failures are
//! retried and the backup restores equal to its source; a damaged object
//! is refused by its sha256 before any restore mode touches the target.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::redis::RedisServer;
use common::*;
use redback::backup::{self, Kind, Manifest, Request};
use redback::config::{Config, InstanceConfig};
use redback::plugin::PluginHost;
use redback::replication::Endpoint;
use redback::restore::{self, KeyFilter, Options, Scope, handoff, spawn};
use redback::storage::faults::{Fault, FaultStorage, Op};
use redback::storage::resilient::{Resilient, RetryPolicy};
use redback::storage::{ErrorKind, Storage};

/// The retry layer as the daemon sets it up, with waits short enough for
/// a test: the deadline is what the stall faults run into.
const POLICY: RetryPolicy = RetryPolicy {
    retries: 3,
    first_backoff: Duration::from_millis(1),
    max_backoff: Duration::from_millis(10),
    call_timeout: Duration::from_secs(1),
};

/// A source with ~12 MB of incompressible values (three 4 MiB upload
/// pieces without compression) plus the mixed dataset, a config, and the
/// bare storage-local plugin under `dir/backups`.
struct Rig {
    tmp: tempfile::TempDir,
    source: RedisServer,
    config: Config,
    _host: PluginHost,
    plain: Arc<dyn Storage>,
}

impl Rig {
    async fn new() -> Rig {
        let source = RedisServer::start(&[]);
        source.fill_mixed();
        source.fill_noise("noise", 12, 1 << 20);
        let tmp = tempfile::tempdir().unwrap();
        let path = app_config(
            tmp.path(),
            &format!("address = \"{}\"\ncompression = \"none\"", source.addr()),
        );
        let config = Config::load(&path).unwrap();
        let host = PluginHost::new(None).unwrap();
        let plugin = load(&host, "storage-local");
        let cfg = config.storage("local").unwrap();
        let plain = open(&host, &plugin, cfg, None).await.unwrap();
        Rig {
            tmp,
            source,
            config,
            _host: host,
            plain,
        }
    }

    fn instance(&self) -> &InstanceConfig {
        self.config.instance("app").unwrap()
    }

    /// The plugin under `plan`, under the retry layer.
    fn faulty(&self, plan: Vec<Fault>) -> (Arc<FaultStorage>, Arc<dyn Storage>) {
        let faults = FaultStorage::new(self.plain.clone(), plan);
        let resilient = Resilient::wrap(faults.clone(), POLICY);
        (faults, resilient)
    }

    async fn backup(&self, storage: Arc<dyn Storage>) -> Result<Manifest, backup::BackupError> {
        let request = Request {
            kind: Kind::Manual,
            name: None,
        };
        backup::run(self.instance(), storage, &request, Default::default()).await
    }

    /// Every file under the storage root, partial uploads included.
    fn files(&self) -> Vec<String> {
        fn walk(dir: &Path, out: &mut Vec<String>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push(p.display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.tmp.path().join("backups"), &mut out);
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_injected_failure_leaves_a_manifest_or_any_object_of_the_backup() {
    let rig = Rig::new().await;
    let data = "dump.rdb";
    let manifest = "manifest.json";
    let cases: Vec<(&str, Fault, &str)> = vec![
        (
            "the second write of the data fails for good",
            Fault::on(Op::Write)
                .keys_ending(data)
                .nth(2)
                .fail_permanently(),
            "injected fault",
        ),
        (
            "writes of the data stay unavailable past every retry",
            Fault::on(Op::Write).keys_ending(data).fail_transiently(),
            "gave up after 4 attempts",
        ),
        (
            "finish of the data fails",
            Fault::on(Op::Finish).keys_ending(data).fail_permanently(),
            "injected fault",
        ),
        (
            "finish of the data fails after it made the object visible",
            Fault::on(Op::Finish)
                .keys_ending(data)
                .fail_after_running(ErrorKind::Other),
            "injected fault",
        ),
        (
            "a write of the data stalls past the deadline",
            Fault::on(Op::Write)
                .keys_ending(data)
                .nth(2)
                .stall(Duration::from_secs(60)),
            "raise `call_timeout_secs` under [storage.local]",
        ),
        (
            "finish of the data stalls past the deadline",
            Fault::on(Op::Finish)
                .keys_ending(data)
                .stall(Duration::from_secs(60)),
            "did not answer within 1 s",
        ),
        (
            "the manifest upload cannot start",
            Fault::on(Op::StartUpload)
                .keys_ending(manifest)
                .fail_permanently(),
            "injected fault",
        ),
        (
            "finish of the manifest fails after it made the object visible",
            Fault::on(Op::Finish)
                .keys_ending(manifest)
                .fail_after_running(ErrorKind::Other),
            "injected fault",
        ),
        (
            "finish of the manifest stalls past the deadline",
            Fault::on(Op::Finish)
                .keys_ending(manifest)
                .stall(Duration::from_secs(60)),
            "call_timeout_secs",
        ),
        (
            // A plugin that keeps the chunk of a `write` it reported as
            // failed breaks the contract; the resent chunk doubles it.
            "a plugin keeps a chunk it said it did not take",
            Fault::on(Op::Write)
                .keys_ending(data)
                .nth(2)
                .fail_after_running(ErrorKind::Unavailable),
            "so the backup was not kept",
        ),
    ];
    for (what, fault, says) in cases {
        let (faults, storage) = rig.faulty(vec![fault]);
        let e = rig
            .backup(storage.clone())
            .await
            .expect_err(what)
            .to_string();
        assert!(faults.fired() > 0, "{what}: the fault never fired");
        assert!(e.contains(says), "{what}: {e}");
        assert!(
            e.contains("storage 'local'"),
            "{what}: the error does not name the storage: {e}"
        );
        assert!(
            backup::list(rig.instance(), rig.plain.as_ref())
                .await
                .unwrap()
                .is_empty(),
            "{what}: a manifest was left"
        );
        // The dropped guest calls of a stall finish in the background.
        let mut left = rig.files();
        for _ in 0..100 {
            if left.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            left = rig.files();
        }
        assert!(left.is_empty(), "{what}: files left behind: {left:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_and_the_backup_restores_equal_to_its_source() {
    let rig = Rig::new().await;
    let plan = vec![
        Fault::on(Op::StartUpload).first(2).fail_transiently(),
        Fault::on(Op::Write)
            .keys_ending("dump.rdb")
            .first(2)
            .fail_transiently(),
        Fault::on(Op::Write)
            .keys_ending("manifest.json")
            .first(1)
            .fail_transiently(),
        // `finish` is not retried call by call; the manifest, written
        // whole, is written again.
        Fault::on(Op::Finish)
            .keys_ending("manifest.json")
            .first(1)
            .fail_transiently(),
        Fault::on(Op::List).first(2).fail_transiently(),
        Fault::on(Op::Stat).first(2).fail_transiently(),
        Fault::on(Op::OpenDownload).first(2).fail_transiently(),
        // Reads fail mid-object: resumed at the offset reached.
        Fault::on(Op::Read).nth(2).fail_transiently(),
        Fault::on(Op::Read).nth(5).fail_transiently(),
    ];
    let (faults, storage) = rig.faulty(plan);
    let m = rig.backup(storage.clone()).await.unwrap();
    let listed = backup::list(rig.instance(), storage.as_ref())
        .await
        .unwrap();
    assert_eq!(listed, vec![m.clone()]);
    let meta = storage.stat(&m.data.key).await.unwrap();
    assert_eq!(meta.size_bytes, m.data.stored_bytes);
    backup::verify(storage.clone(), &m).await.unwrap();

    let target = RedisServer::start(&[]);
    let report = restore::run(
        storage.clone(),
        &m,
        &Endpoint::new("target", &target.addr()),
        Options {
            scope: Scope::WholeInPlace,
            replace: true,
            best_effort: false,
        },
        Arc::new(restore::Progress::default()),
    )
    .await
    .unwrap();
    assert_eq!(report.keys_restored, 2000 + 14 + 300 + 12);
    assert_eq!(target.digest(), rig.source.digest());
    for f in faults.plan() {
        assert!(
            f.fired() > 0,
            "{:?} on {:?} never fired",
            f.op,
            f.key_suffix
        );
    }
}

/// One way of restoring a whole object, and whether it left the target
/// as it was.
async fn restore_in_mode(
    mode: &str,
    storage: Arc<dyn Storage>,
    m: &Manifest,
    target: &RedisServer,
) -> String {
    let ep = Endpoint::new("target", &target.addr());
    let progress = Arc::new(restore::Progress::default());
    let opts = |scope| Options {
        scope,
        replace: true,
        best_effort: false,
    };
    let e = match mode {
        "restore-pipeline" => restore::run(storage, m, &ep, opts(Scope::WholeInPlace), progress)
            .await
            .map(|_| ()),
        "keys" => {
            let filter = KeyFilter::parse("str:*;noise:*").unwrap();
            let scope = Scope::Keys { filter, db: None };
            restore::run(storage, m, &ep, opts(scope), progress)
                .await
                .map(|_| ())
        }
        "handoff" => handoff::run(storage, m, &ep, &Default::default(), progress)
            .await
            .map(|_| ()),
        "clone-into" => {
            let scope = Scope::CloneInto { force: true };
            restore::run(storage, m, &ep, opts(scope), progress)
                .await
                .map(|_| ())
        }
        "clone-spawn" => {
            let dir = target.data_dir().join("clone");
            let o = spawn::SpawnOptions {
                redis_server: "redis-server".into(),
                port: 1, // never reached: the backup must not verify
                dir: dir.clone(),
                bind: "127.0.0.1".into(),
            };
            let r = spawn::clone_to_new_server(storage, m, &o).await.map(|_| ());
            let left: Vec<_> = std::fs::read_dir(&dir)
                .map(|d| d.flatten().map(|e| e.file_name()).collect())
                .unwrap_or_default();
            assert!(left.is_empty(), "clone-spawn left {left:?}");
            r
        }
        _ => unreachable!(),
    };
    e.expect_err(mode).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_or_altered_object_is_refused_before_the_target_is_touched() {
    let rig = Rig::new().await;
    let good = Resilient::wrap(rig.plain.clone(), POLICY);
    let m = rig.backup(good).await.unwrap();
    let size = m.data.stored_bytes;
    let target = RedisServer::start(&[]);
    target.cli(&["SET", "sentinel", "still here"]);
    target.cli(&["SET", "str:1", "the target's own value"]);
    let digest = target.digest();
    for damage in ["truncated", "altered"] {
        for mode in [
            "restore-pipeline",
            "keys",
            "handoff",
            "clone-into",
            "clone-spawn",
        ] {
            let fault = match damage {
                "truncated" => Fault::on(Op::OpenDownload).truncate_at(size / 2),
                _ => Fault::on(Op::OpenDownload).flip_byte_at(size / 3),
            };
            let (faults, storage) = rig.faulty(vec![fault]);
            let e = restore_in_mode(mode, storage, &m, &target).await;
            assert!(faults.fired() > 0, "{damage} {mode}: never read");
            // A cut-short object is refused on its size, which the
            // manifest records beside the sha256, before the hash is compared.
            assert!(
                e.contains("sha256") || (damage == "truncated" && e.contains("the manifest says")),
                "{damage} {mode}: {e}"
            );
            assert_eq!(
                target.digest(),
                digest,
                "{damage} {mode}: the target was touched"
            );
            assert_eq!(target.cli(&["GET", "sentinel"]).trim(), "still here");
            assert!(
                target.cli(&["INFO", "replication"]).contains("role:master"),
                "{damage} {mode}: the target was left a replica"
            );
        }
    }
}
