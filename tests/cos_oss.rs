//! storage-cos and storage-oss against loopback emulators of Tencent COS
//! and Alibaba OSS (tests/emulators/objstore.py), which check every
//! request's signature, header or presigned URL, with the vendor's
//! official SDK signing code: the conformance kit (`redback plugin
//! check`) and a backup and restore of a live Redis, multipart uploads and
//! ranges, `delete` aborting the unfinished uploads of its key, presigned
//! links before and after they expire, a wrong secret, and settings errors
//! that name the setting and the fix.

mod common;

use std::sync::Arc;

use common::emulator::{Emulator, SECRET_KEY, Vendor};
use common::redis::RedisServer;
use common::*;
use redback::plugin::PluginHost;
use redback::storage::{ErrorKind, Network, Storage};

const VENDORS: [Vendor; 2] = [Vendor::Cos, Vendor::Oss];

fn logs() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
}

async fn storage(e: &Emulator, secret: &str) -> Arc<dyn Storage> {
    logs();
    let host = PluginHost::new(None).unwrap();
    let plugin = load(&host, e.plugin());
    let secret_file = secret_file(e.dir.path(), secret);
    let settings = e.settings(&secret_file);
    let settings: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let cfg = storage_config(e.vendor.name(), e.plugin(), &settings, e.dir.path());
    open(&host, &plugin, &cfg, None)
        .await
        .unwrap_or_else(|err| panic!("{err}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_uploads_and_presigned_links_that_expire() {
    for vendor in VENDORS {
        let e = Emulator::start(vendor);
        let s = storage(&e, SECRET_KEY).await;
        // Parts of 1 MiB: 4.5 MiB is four full parts and a short last one.
        let data = noise(11, (9 << 20) / 2);
        let key = "big/object with spaces+plus.bin";
        put(s.as_ref(), key, &data).await.unwrap();
        let meta = s.stat(key).await.unwrap();
        assert_eq!(meta.size_bytes, data.len() as u64, "{vendor:?}");
        assert!(
            meta.etag.as_deref().is_some_and(|t| t.ends_with("-5\"")),
            "{vendor:?}: a multipart object of 5 parts, not {:?}",
            meta.etag
        );
        assert!(get(s.as_ref(), key).await.unwrap() == data, "{vendor:?}");
        // A range from the middle, and one past the end.
        let mut d = s.open_download(key, 1 << 20, Some(10)).await.unwrap();
        assert_eq!(
            d.read(1 << 20).await.unwrap(),
            &data[1 << 20..(1 << 20) + 10]
        );
        let mut d = s
            .open_download(key, data.len() as u64 + 5, None)
            .await
            .unwrap_or_else(|err| panic!("{vendor:?}: {err}\n{}", e.log()));
        assert!(d.read(100).await.unwrap().is_empty(), "{vendor:?}");

        for network in [Network::Internal, Network::Public] {
            let url = s
                .presign_get(key, 2, network)
                .await
                .unwrap()
                .expect("presigned links");
            let (status, body) = http_get(&url);
            assert_eq!(
                status,
                200,
                "{vendor:?} {url}: {}",
                String::from_utf8_lossy(&body)
            );
            assert!(body == data, "{vendor:?}: the link serves the object");
        }
        let url = s
            .presign_get(key, 2, Network::Public)
            .await
            .unwrap()
            .unwrap();
        let encoded = "big/object%20with%20spaces%2Bplus.bin";
        assert!(url.contains(encoded), "{url}");
        let (status, _) = http_get(&url.replace(encoded, "big/other.bin"));
        assert_eq!(status, 403, "{vendor:?}: a link is for its own key only");
        std::thread::sleep(std::time::Duration::from_millis(3_100));
        let (status, body) = http_get(&url);
        assert_eq!(status, 403, "{vendor:?}: an expired link stops working");
        assert!(
            String::from_utf8_lossy(&body).contains("expired"),
            "{vendor:?}: {}",
            String::from_utf8_lossy(&body)
        );
        let err = s
            .presign_get("big/missing.bin", 60, Network::Internal)
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound, "{vendor:?}: {err}");
    }
}

/// What a crash leaves behind: multipart uploads of a key that nobody will
/// finish. `delete` of the key aborts every one of them, through several
/// pages of ListMultipartUploads, and no upload of another key, not even
/// of a longer key the key is a prefix of.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_aborts_the_unfinished_uploads_of_its_key_only() {
    for vendor in VENDORS {
        // Two uploads a page: the plugin must page with both markers.
        let e = Emulator::start_with(vendor, &["--max-uploads", "2"]);
        let s = storage(&e, SECRET_KEY).await;
        let key = "redback/app/20261121T020000Z-cut/dump.rdb.zst";
        let longer = format!("{key}.sha256");
        let other = "redback/app/20261121T020000Z-other/dump.rdb.zst";
        // Parts of 1 MiB: a full part goes out at the start of the next
        // write (so a write that fails takes none of its chunk), so after a
        // second write each upload exists on the service, as it did when
        // its process was killed.
        let data = noise(5, (1 << 20) + 1);
        let mut open = Vec::new();
        for k in [key, key, key, key, key, &longer, other] {
            let mut up = s.start_upload(k).await.unwrap();
            up.write(&data).await.unwrap();
            up.write(b"+").await.unwrap();
            open.push((k, up));
        }
        let before = e.unfinished_uploads();
        assert_eq!(before.len(), 7, "{vendor:?}: {before:?}");

        s.delete(key).await.unwrap();
        let left: Vec<String> = e.unfinished_uploads().into_iter().map(|(k, _)| k).collect();
        assert_eq!(left, [longer.as_str(), other], "{vendor:?}");
        // The emulator logs a request after answering it, so the last
        // abort can reach the log after `delete` returned: wait for the
        // five aborts to be logged (they took effect: `left` above).
        let aborts = |log: &str| {
            log.lines()
                .filter(|l| l.starts_with("DELETE /redback/") && l.contains("uploadId 204"))
                .count()
        };
        let mut log = e.log();
        for _ in 0..200 {
            if aborts(&log) >= 5 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
            log = e.log();
        }
        // Six uploads start with the key, two a page: three pages, the
        // later two asked for with the markers of the one before.
        let pages: Vec<&str> = log
            .lines()
            .filter(|l| l.starts_with("GET /?") && l.contains("uploads"))
            .collect();
        assert_eq!(pages.len(), 3, "{vendor:?}: {log}");
        // The emulator logs a request after answering it, from the thread
        // that served it, so the next page can be logged first: count.
        let with_markers = pages
            .iter()
            .filter(|l| l.contains("key-marker") && l.contains("upload-id-marker"))
            .count();
        assert!(
            pages.iter().all(|l| l.ends_with(" 200")) && with_markers == 2,
            "{vendor:?}: {pages:?}"
        );
        assert_eq!(aborts(&log), 5, "{vendor:?}: {log}");
        // Deleting again finds nothing to abort.
        s.delete(key).await.unwrap();

        // The uploads of the key can no longer finish; the others can.
        for (k, up) in open {
            let finished = up.finish().await;
            if k == key {
                let err = finished.unwrap_err();
                assert_eq!(err.kind, ErrorKind::NotFound, "{vendor:?}: {err}");
            } else {
                finished.unwrap_or_else(|err| panic!("{vendor:?} {k}: {err}"));
            }
        }
        let err = s.stat(key).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound, "{vendor:?}: {err}");
        for k in [longer.as_str(), other] {
            assert_eq!(s.stat(k).await.unwrap().size_bytes, data.len() as u64 + 1);
        }
        assert!(e.unfinished_uploads().is_empty(), "{vendor:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_access_denied() {
    for vendor in VENDORS {
        let e = Emulator::start(vendor);
        let s = storage(&e, "not-the-secret").await;
        let err = s.stat("anything").await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::AccessDenied, "{vendor:?}: {err}");
        let err = put(s.as_ref(), "k", b"v").await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::AccessDenied, "{vendor:?}: {err}");
        let text = err.to_string();
        assert!(text.contains("SignatureDoesNotMatch"), "{text}");
        assert!(
            !text.contains("not-the-secret") && !text.contains(SECRET_KEY),
            "{text}"
        );
        assert!(
            !e.log().contains("not-the-secret") && !e.log().contains(SECRET_KEY),
            "the emulator's log holds no secret"
        );
    }
}

#[test]
fn a_backup_and_restore_go_through_cos_and_oss() {
    let source = RedisServer::start(&[]);
    source.fill_mixed();
    let before = source.digest();
    for vendor in VENDORS {
        let e = Emulator::start(vendor);
        let tmp = tempfile::tempdir().unwrap();
        let secret = secret_file(e.dir.path(), SECRET_KEY);
        let mut storage = format!("[storage.remote]\nplugin = \"{}\"\n", e.plugin());
        for (k, v) in e.settings(&secret) {
            storage.push_str(&format!("{k} = \"{v}\"\n"));
        }
        let config = tmp.path().join("redback.toml");
        std::fs::write(
            &config,
            format!(
                "[daemon]\nplugin_dir = \"{}\"\nstate_dir = \"state\"\n\n{storage}\n\
                 [instance.app]\naddress = \"{}\"\nstorage = \"remote\"\n",
                repo_root().join("target/plugins").display(),
                source.addr(),
            ),
        )
        .unwrap();
        let c = config.to_str().unwrap();
        // The conformance kit, as an operator runs it; every request it
        // makes is signed and checked by the vendor's SDK code.
        let (code, out, err) = redback(&["plugin", "check", "--config", c, "--storage", "remote"]);
        assert_eq!(
            code,
            0,
            "{vendor:?}: {out}\n{err}\nemulator log:\n{}",
            e.log()
        );
        assert!(out.contains("checks passed"), "{out}");
        assert!(!e.log().contains("SignatureDoesNotMatch"), "{}", e.log());
        backup_verify_restore(c, &before);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_name_the_setting_and_the_fix() {
    logs();
    let host = PluginHost::new(None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path(), SECRET_KEY);
    let secret = secret.to_str().unwrap();
    // (plugin, settings, what the error must say)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a [&'a str]);
    let cases: [Case; 5] = [
        (
            "storage-cos",
            vec![
                ("endpoint", "https://cos.ap-guangzhou.myqcloud.com"),
                ("bucket", "backups"),
                ("secret_id", "AKID"),
                ("secret_key_file", secret),
            ],
            &["`bucket`", "<name>-<APPID>"],
        ),
        (
            "storage-cos",
            vec![
                ("bucket", "backups-1250000000"),
                ("secret_id", "AKID"),
                ("secret_key_file", secret),
            ],
            &[
                "`endpoint` is missing",
                "https://cos.ap-guangzhou.myqcloud.com",
            ],
        ),
        (
            "storage-oss",
            vec![
                ("endpoint", "https://oss-cn-hangzhou.aliyuncs.com"),
                ("bucket", "backups"),
                ("region", "oss-cn-hangzhou"),
                ("access_key_id", "LTAI"),
                ("access_key_secret_file", secret),
            ],
            &["`region`", "region = \"cn-hangzhou\""],
        ),
        (
            "storage-oss",
            vec![
                ("endpoint", "https://oss-cn-hangzhou.aliyuncs.com"),
                ("bucket", "backups"),
                ("region", "cn-hangzhou"),
                ("access_key_id", "LTAI"),
            ],
            &["`access_key_secret` is missing", "access_key_secret_env"],
        ),
        (
            "storage-oss",
            vec![
                ("endpoint", "https://oss-cn-hangzhou.aliyuncs.com"),
                ("bucket", "backups"),
                ("region", "cn-hangzhou"),
                ("access_key_id", "LTAI"),
                ("access_key_secret_file", secret),
                ("part_size_mb", "8"),
            ],
            &["unknown setting `part_size_mb`", "part_size_mib"],
        ),
    ];
    for (plugin, settings, expect) in cases {
        let loaded = load(&host, plugin);
        let cfg = storage_config("remote", plugin, &settings, dir.path());
        let err = match open(&host, &loaded, &cfg, None).await {
            Ok(_) => panic!("{plugin} accepted {settings:?}"),
            Err(e) => e,
        };
        assert_eq!(err.kind, ErrorKind::InvalidConfig, "{err}");
        let text = err.to_string();
        for e in expect {
            assert!(text.contains(e), "{plugin}: `{e}` not in: {text}");
        }
        assert!(!text.contains(SECRET_KEY), "{text}");
    }
}
