//! The conformance kit: a suite any storage must pass before it keeps
//! backups (`redback plugin check`). It drives the `Storage` trait only, so
//! it checks a plugin exactly as the backup engine will use it.
//!
//! Everything it writes lives under one fresh prefix and is deleted at the
//! end, so it can run against a bucket that holds real backups.
//!
//! One file past 800 lines on purpose: the checks are short functions over
//! the same few helpers, and read in order they are the contract's list.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::{ErrorKind, MAX_KEY_BYTES, Network, Storage, StorageError};

const MIB: usize = 1 << 20;
/// The upload chunk size the backup engine uses.
const CHUNK: usize = MIB;
const CHECK_TIMEOUT: Duration = Duration::from_secs(600);
/// What `delete-removes-unfinished-upload` writes before it deletes the
/// key: more than a part of any bundled object-store plugin (parts are 5
/// to 64 MiB), so a multipart upload has really started on the service,
/// as it had for an upload cut off by a crash.
const UNFINISHED_BYTES: usize = 64 * MIB;

/// The outcome of one check.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckResult {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
    pub millis: u64,
}

/// The outcome of the whole suite.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub storage: String,
    pub plugin: String,
    pub prefix: String,
    pub results: Vec<CheckResult>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.results.iter().all(|r| r.passed)
    }

    pub fn failed(&self) -> Vec<&'static str> {
        self.results
            .iter()
            .filter(|r| !r.passed)
            .map(|r| r.name)
            .collect()
    }

    /// A plain-text table, one row a check.
    pub fn table(&self) -> String {
        let w = self
            .results
            .iter()
            .map(|r| r.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let mut out = format!(
            "conformance of storage '{}' (plugin '{}'), under prefix {}\n",
            self.storage, self.plugin, self.prefix
        );
        let _ = writeln!(
            out,
            "{:<w$}  {:<6}  {:>8}  DETAIL",
            "CHECK", "RESULT", "TIME"
        );
        for r in &self.results {
            let _ = writeln!(
                out,
                "{:<w$}  {:<6}  {:>6}ms  {}",
                r.name,
                if r.passed { "pass" } else { "FAIL" },
                r.millis,
                r.detail
            );
        }
        let failed = self.failed();
        let _ = if failed.is_empty() {
            writeln!(out, "{} checks passed", self.results.len())
        } else {
            writeln!(
                out,
                "{} of {} checks FAILED: {}",
                failed.len(),
                self.results.len(),
                failed.join(", ")
            )
        };
        out
    }
}

type Outcome = Result<String, String>;

/// Runs every check against `storage` under a fresh prefix.
pub async fn run(storage: &dyn Storage) -> Report {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let prefix = format!("redback-check/{nanos:x}-{}", std::process::id());
    let s = Suite {
        storage,
        prefix: prefix.clone(),
    };
    let mut results = Vec::new();
    macro_rules! check {
        ($name:literal, $body:expr) => {{
            let started = Instant::now();
            let outcome = match tokio::time::timeout(CHECK_TIMEOUT, $body).await {
                Ok(o) => o,
                Err(_) => Err(format!(
                    "did not finish within {} s",
                    CHECK_TIMEOUT.as_secs()
                )),
            };
            let (passed, detail) = match outcome {
                Ok(d) => (true, d),
                Err(d) => (false, d),
            };
            results.push(CheckResult {
                name: $name,
                passed,
                detail,
                millis: started.elapsed().as_millis() as u64,
            });
        }};
    }
    check!("round-trip-0B", s.round_trip("rt/zero", 0));
    check!("round-trip-1B", s.round_trip("rt/one", 1));
    check!(
        "round-trip-1MiB+1",
        s.round_trip("rt/mib-plus-one", MIB + 1)
    );
    check!("round-trip-64MiB", s.round_trip("rt/sixty-four", 64 * MIB));
    check!("ranged-download", s.ranged_download());
    check!("overwrite-replaces", s.overwrite());
    check!("unfinished-upload-invisible", s.unfinished_invisible());
    check!("aborted-upload-invisible", s.aborted_invisible());
    check!("dropped-upload-invisible", s.dropped_invisible());
    check!("not-found-errors", s.not_found());
    check!("delete", s.delete());
    check!(
        "delete-removes-unfinished-upload",
        s.delete_removes_unfinished()
    );
    check!("list-pagination-1001", s.list_pagination());
    check!("list-prefix", s.list_prefix());
    check!("list-cursor-stable", s.list_cursor_stable());
    check!("concurrent-uploads", s.concurrent_uploads());
    check!("invalid-keys-refused", s.invalid_keys());
    check!("presign-get", s.presign());
    if let Err(e) = s.cleanup().await {
        results.push(CheckResult {
            name: "cleanup",
            passed: false,
            detail: e,
            millis: 0,
        });
    }
    Report {
        storage: storage.name().to_string(),
        plugin: storage.plugin().to_string(),
        prefix,
        results,
    }
}

/// Deterministic bytes: a 64-bit xorshift stream seeded by `seed`, so a
/// dropped, repeated or shifted chunk changes the hash.
fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15 ^ offset.wrapping_mul(0xA24B_AED4_963E_E407);
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
}

fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    fill(seed, 0, &mut v);
    v
}

fn show(e: &StorageError) -> String {
    format!("{}: {}", e.kind, e.message)
}

fn expect_kind<T>(r: Result<T, StorageError>, kind: ErrorKind, what: &str) -> Result<(), String> {
    match r {
        Err(e) if e.kind == kind => Ok(()),
        Err(e) => Err(format!(
            "{what}: expected the `{kind}` error, got {}",
            show(&e)
        )),
        Ok(_) => Err(format!(
            "{what}: expected the `{kind}` error, but it succeeded"
        )),
    }
}

struct Suite<'a> {
    storage: &'a dyn Storage,
    prefix: String,
}

impl Suite<'_> {
    fn key(&self, rel: &str) -> String {
        format!("{}/{rel}", self.prefix)
    }

    async fn put(&self, key: &str, bytes: &[u8]) -> Result<super::ObjectMeta, String> {
        let mut up = self
            .storage
            .start_upload(key)
            .await
            .map_err(|e| format!("start-upload {key}: {}", show(&e)))?;
        for c in bytes.chunks(CHUNK) {
            up.write(c)
                .await
                .map_err(|e| format!("write {key}: {}", show(&e)))?;
        }
        up.finish()
            .await
            .map_err(|e| format!("finish {key}: {}", show(&e)))
    }

    async fn get(&self, key: &str, offset: u64, length: Option<u64>) -> Result<Vec<u8>, String> {
        let mut d = self
            .storage
            .open_download(key, offset, length)
            .await
            .map_err(|e| format!("open-download {key}: {}", show(&e)))?;
        let mut out = Vec::new();
        loop {
            let b = d
                .read(CHUNK as u32)
                .await
                .map_err(|e| format!("read {key}: {}", show(&e)))?;
            if b.is_empty() {
                return Ok(out);
            }
            out.extend_from_slice(&b);
        }
    }

    /// Every key under `prefix`, page by page, checking order on the way.
    async fn list_all(&self, prefix: &str, page_size: u32) -> Result<(Vec<String>, usize), String> {
        let mut keys = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = self
                .storage
                .list(prefix, cursor.as_deref(), page_size)
                .await
                .map_err(|e| format!("list {prefix}: {}", show(&e)))?;
            pages += 1;
            if page.objects.len() > page_size as usize {
                return Err(format!(
                    "a page held {} objects, more than the {page_size} asked for",
                    page.objects.len()
                ));
            }
            keys.extend(page.objects.into_iter().map(|o| o.key));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
            if pages > 100_000 {
                return Err("list never returned a last page".into());
            }
        }
        Ok((keys, pages))
    }

    async fn round_trip(&self, rel: &str, len: usize) -> Outcome {
        let key = self.key(rel);
        let seed = len as u64 + 1;
        let mut up = self
            .storage
            .start_upload(&key)
            .await
            .map_err(|e| format!("start-upload: {}", show(&e)))?;
        let mut sent = Sha256::new();
        let mut buf = vec![0u8; CHUNK.min(len.max(1))];
        let mut offset = 0usize;
        while offset < len {
            let n = CHUNK.min(len - offset);
            fill(seed, offset as u64, &mut buf[..n]);
            sent.update(&buf[..n]);
            up.write(&buf[..n])
                .await
                .map_err(|e| format!("write at {offset}: {}", show(&e)))?;
            offset += n;
        }
        let meta = up
            .finish()
            .await
            .map_err(|e| format!("finish: {}", show(&e)))?;
        if meta.size_bytes != len as u64 || meta.key != key {
            return Err(format!(
                "finish returned key {} size {}, expected {key} size {len}",
                meta.key, meta.size_bytes
            ));
        }
        let stat = self
            .storage
            .stat(&key)
            .await
            .map_err(|e| format!("stat: {}", show(&e)))?;
        if stat.size_bytes != len as u64 {
            return Err(format!(
                "stat says {} bytes, {len} were written",
                stat.size_bytes
            ));
        }
        let mut d = self
            .storage
            .open_download(&key, 0, None)
            .await
            .map_err(|e| format!("open-download: {}", show(&e)))?;
        let mut got = Sha256::new();
        let mut total = 0usize;
        loop {
            let b = d
                .read(CHUNK as u32)
                .await
                .map_err(|e| format!("read at {total}: {}", show(&e)))?;
            if b.is_empty() {
                break;
            }
            total += b.len();
            got.update(&b);
        }
        if total != len {
            return Err(format!("downloaded {total} bytes, {len} were written"));
        }
        if sent.finalize() != got.finalize() {
            return Err("downloaded bytes differ from the uploaded ones".into());
        }
        Ok(format!("{len} bytes up and down, sha256 equal"))
    }

    async fn ranged_download(&self) -> Outcome {
        let key = self.key("ranged/object");
        let body = data(7, MIB + 1);
        self.put(&key, &body).await?;
        let cases: [(u64, Option<u64>); 5] = [
            (0, Some(10)),
            (1000, None),
            (MIB as u64, Some(100)),
            (MIB as u64 + 1, None),
            (MIB as u64 + 50, Some(10)),
        ];
        for (offset, length) in cases {
            let got = self.get(&key, offset, length).await?;
            let start = (offset as usize).min(body.len());
            let end = length.map_or(body.len(), |l| (start + l as usize).min(body.len()));
            if got != body[start..end] {
                return Err(format!(
                    "offset {offset} length {length:?}: got {} bytes, not the expected {}",
                    got.len(),
                    end - start
                ));
            }
        }
        let mut d = self
            .storage
            .open_download(&key, 0, None)
            .await
            .map_err(|e| show(&e))?;
        let b = d.read(1000).await.map_err(|e| show(&e))?;
        if b.is_empty() || b.len() > 1000 || b[..] != body[..b.len()] {
            return Err(format!("read(1000) returned {} bytes", b.len()));
        }
        Ok("5 ranges and a bounded read match".into())
    }

    async fn overwrite(&self) -> Outcome {
        let key = self.key("overwrite/object");
        self.put(&key, &data(1, 5000)).await?;
        let second = data(2, 3000);
        self.put(&key, &second).await?;
        let got = self.get(&key, 0, None).await?;
        if got != second {
            return Err(format!(
                "after the second upload the object has {} bytes, not the second upload's 3000",
                got.len()
            ));
        }
        Ok("second upload replaced the first".into())
    }

    /// Checks that `key` is visible nowhere: stat, list, download.
    async fn invisible(&self, key: &str, when: &str) -> Result<(), String> {
        expect_kind(
            self.storage.stat(key).await,
            ErrorKind::NotFound,
            &format!("stat {when}"),
        )?;
        expect_kind(
            self.storage.open_download(key, 0, None).await.map(|_| ()),
            ErrorKind::NotFound,
            &format!("open-download {when}"),
        )?;
        let parent = &key[..key.rfind('/').unwrap_or(0)];
        let (keys, _) = self.list_all(parent, 1000).await?;
        if keys.iter().any(|k| k == key) {
            return Err(format!("list shows the object {when}"));
        }
        Ok(())
    }

    async fn unfinished_invisible(&self) -> Outcome {
        let key = self.key("atomic/unfinished");
        let mut up = self
            .storage
            .start_upload(&key)
            .await
            .map_err(|e| show(&e))?;
        up.write(&data(3, 4096)).await.map_err(|e| show(&e))?;
        self.invisible(&key, "before finish").await?;
        let meta = up.finish().await.map_err(|e| show(&e))?;
        if self
            .storage
            .stat(&key)
            .await
            .map_err(|e| format!("stat after finish: {}", show(&e)))?
            != meta
        {
            return Err("stat after finish differs from what finish returned".into());
        }
        Ok("invisible to stat, list and download until finish".into())
    }

    async fn aborted_invisible(&self) -> Outcome {
        let key = self.key("atomic/aborted");
        let mut up = self
            .storage
            .start_upload(&key)
            .await
            .map_err(|e| show(&e))?;
        up.write(&data(4, 4096)).await.map_err(|e| show(&e))?;
        up.abort()
            .await
            .map_err(|e| format!("abort: {}", show(&e)))?;
        self.invisible(&key, "after abort").await?;
        Ok("aborted upload left nothing visible".into())
    }

    async fn dropped_invisible(&self) -> Outcome {
        let key = self.key("atomic/dropped");
        let mut up = self
            .storage
            .start_upload(&key)
            .await
            .map_err(|e| show(&e))?;
        up.write(&data(5, 4096)).await.map_err(|e| show(&e))?;
        drop(up);
        // The abort of a dropped upload runs in the background.
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.invisible(&key, "after the upload was dropped").await?;
        self.put(&key, b"later").await?;
        if self.get(&key, 0, None).await? != b"later" {
            return Err("a later upload to the same key did not round-trip".into());
        }
        Ok("dropped upload left nothing visible; the key is reusable".into())
    }

    async fn not_found(&self) -> Outcome {
        let key = self.key("missing/object");
        expect_kind(self.storage.stat(&key).await, ErrorKind::NotFound, "stat")?;
        expect_kind(
            self.storage.open_download(&key, 0, None).await.map(|_| ()),
            ErrorKind::NotFound,
            "open-download",
        )?;
        expect_kind(
            self.storage.presign_get(&key, 60, Network::Public).await,
            ErrorKind::NotFound,
            "presign-get",
        )?;
        let page = self
            .storage
            .list(&self.key("missing/"), None, 10)
            .await
            .map_err(|e| show(&e))?;
        if !page.objects.is_empty() || page.next_cursor.is_some() {
            return Err("list of an empty prefix is not one empty last page".into());
        }
        Ok("stat, open-download, presign-get say not-found; empty list".into())
    }

    async fn delete(&self) -> Outcome {
        let key = self.key("delete/object");
        self.put(&key, b"x").await?;
        self.storage
            .delete(&key)
            .await
            .map_err(|e| format!("delete: {}", show(&e)))?;
        expect_kind(
            self.storage.stat(&key).await,
            ErrorKind::NotFound,
            "stat after delete",
        )?;
        self.storage.delete(&key).await.map_err(|e| {
            format!(
                "deleting it again (a missing key) must succeed: {}",
                show(&e)
            )
        })?;
        self.storage
            .delete(&self.key("delete/never-existed"))
            .await
            .map_err(|e| format!("delete of a missing key must succeed: {}", show(&e)))?;
        Ok("delete removes; delete of a missing key succeeds".into())
    }

    /// A process killed mid-upload leaves its unfinished upload behind (a
    /// partial file, a multipart upload), and the host, at restart,
    /// deletes the key and expects nothing of it to remain. The kit cannot
    /// kill a plugin, so it keeps an upload open instead: once the key is
    /// deleted, that upload's data must be gone, so `finish` fails, and the
    /// key stays absent.
    async fn delete_removes_unfinished(&self) -> Outcome {
        let key = self.key("delete/unfinished");
        let mut up = self
            .storage
            .start_upload(&key)
            .await
            .map_err(|e| format!("start-upload: {}", show(&e)))?;
        let mut buf = vec![0u8; CHUNK];
        for offset in (0..UNFINISHED_BYTES).step_by(CHUNK) {
            fill(9, offset as u64, &mut buf);
            up.write(&buf)
                .await
                .map_err(|e| format!("write at {offset}: {}", show(&e)))?;
        }
        self.storage.delete(&key).await.map_err(|e| {
            format!(
                "delete while an upload of the key is unfinished: {}",
                show(&e)
            )
        })?;
        let refused = match up.finish().await {
            Ok(meta) => {
                return Err(format!(
                    "finish after the delete stored the object ({} bytes): the \
                     unfinished upload outlived the delete of its key, as one \
                     a crash cut off would",
                    meta.size_bytes
                ));
            }
            Err(e) => e,
        };
        self.invisible(&key, "after the delete and the failed finish")
            .await?;
        Ok(format!(
            "delete took the open {} MiB upload of the key: finish then failed \
             (`{}`), nothing visible",
            UNFINISHED_BYTES / MIB,
            refused.kind
        ))
    }

    fn nested_key(&self, i: usize) -> String {
        // Nested prefixes of different depths, and names that sort differently
        // from their directory order (`-` sorts before `/`).
        match i % 4 {
            0 => self.key(&format!("many/a/{i:04}")),
            1 => self.key(&format!("many/a-b/{i:04}")),
            2 => self.key(&format!("many/b/c/d/{i:04}")),
            _ => self.key(&format!("many/{i:04}")),
        }
    }

    async fn list_pagination(&self) -> Outcome {
        let mut expected = BTreeSet::new();
        for i in 0..1001 {
            let key = self.nested_key(i);
            self.put(&key, &[i as u8]).await?;
            expected.insert(key);
        }
        let prefix = self.key("many/");
        for page_size in [100u32, 1000] {
            let (keys, pages) = self.list_all(&prefix, page_size).await?;
            let mut sorted = keys.clone();
            sorted.sort();
            if keys != sorted {
                return Err(format!(
                    "pages of {page_size}: keys are not in ascending byte order"
                ));
            }
            let got: BTreeSet<String> = keys.iter().cloned().collect();
            if got.len() != keys.len() {
                return Err(format!(
                    "pages of {page_size}: {} keys returned twice",
                    keys.len() - got.len()
                ));
            }
            if got != expected {
                let missing = expected.difference(&got).count();
                let extra = got.difference(&expected).count();
                return Err(format!(
                    "pages of {page_size}: {missing} keys missing, {extra} unexpected"
                ));
            }
            if page_size == 100 && pages < 11 {
                return Err(format!("1,001 keys came in {pages} pages of at most 100"));
            }
        }
        Ok("1,001 keys in 4 nested prefixes, pages of 100 and 1,000: all once, in order".into())
    }

    async fn list_prefix(&self) -> Outcome {
        // Relies on the objects of list-pagination.
        let sub = self.key("many/b/");
        let (keys, _) = self.list_all(&sub, 1000).await?;
        let expected = (0..1001).filter(|i| i % 4 == 2).count();
        if keys.len() != expected || !keys.iter().all(|k| k.starts_with(&sub)) {
            return Err(format!(
                "prefix many/b/: {} keys, expected {expected}",
                keys.len()
            ));
        }
        let mid = self.key("many/a");
        let (keys, _) = self.list_all(&mid, 1000).await?;
        let expected = (0..1001).filter(|i| i % 4 < 2).count();
        if keys.len() != expected {
            return Err(format!(
                "mid-segment prefix many/a: {} keys, expected {expected} (many/a/… and many/a-b/…)",
                keys.len()
            ));
        }
        Ok("directory and mid-segment prefixes select exactly their keys".into())
    }

    async fn list_cursor_stable(&self) -> Outcome {
        let prefix = self.key("many/");
        let first = self
            .storage
            .list(&prefix, None, 300)
            .await
            .map_err(|e| show(&e))?;
        let cursor = first
            .next_cursor
            .clone()
            .ok_or("300 of 1,001 keys came as a last page")?;
        // Change the listing between pages: delete a key already returned and
        // one not yet returned, add one before and one after the cursor.
        let seen_gone = first.objects[10].key.clone();
        let (all, _) = self.list_all(&prefix, 1000).await?;
        let unseen_gone = all[700].clone();
        self.storage
            .delete(&seen_gone)
            .await
            .map_err(|e| show(&e))?;
        self.storage
            .delete(&unseen_gone)
            .await
            .map_err(|e| show(&e))?;
        self.put(&self.key("many/0000-added-before"), b"x").await?;
        self.put(&self.key("many/zzzz-added-after"), b"x").await?;
        let mut keys: Vec<String> = first.objects.into_iter().map(|o| o.key).collect();
        let mut cursor = Some(cursor);
        while let Some(c) = cursor {
            let page = self
                .storage
                .list(&prefix, Some(&c), 300)
                .await
                .map_err(|e| show(&e))?;
            keys.extend(page.objects.into_iter().map(|o| o.key));
            cursor = page.next_cursor;
        }
        let set: BTreeSet<&String> = keys.iter().collect();
        if set.len() != keys.len() {
            return Err("a key came twice across pages".into());
        }
        let stable: Vec<&String> = all
            .iter()
            .filter(|k| **k != seen_gone && **k != unseen_gone)
            .collect();
        if let Some(k) = stable.iter().find(|k| !set.contains(**k)) {
            return Err(format!(
                "key {k}, present during the whole listing, was skipped"
            ));
        }
        Ok("no stable key skipped or repeated while keys came and went".into())
    }

    async fn concurrent_uploads(&self) -> Outcome {
        let uploads = (0..8u64).map(|i| async move {
            let key = self.key(&format!("concurrent/{i}"));
            let body = data(100 + i, 4 * MIB + i as usize);
            self.put(&key, &body).await?;
            Ok::<_, String>((key, body))
        });
        let done = futures::future::join_all(uploads).await;
        for r in done {
            let (key, body) = r?;
            if self.get(&key, 0, None).await? != body {
                return Err(format!("{key} did not round-trip"));
            }
        }
        Ok("8 uploads of 4 MiB at once, each intact".into())
    }

    async fn invalid_keys(&self) -> Outcome {
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        let bad = [
            "",
            "/absolute",
            "a/../b",
            "..",
            "a//b",
            "a\0b",
            "a\\b",
            "./a",
            "a/.",
            &long,
        ];
        for key in bad {
            let shown = if key.len() > 40 {
                format!("{}…", &key[..20])
            } else {
                format!("{key:?}")
            };
            let s = self.storage;
            expect_kind(
                s.start_upload(key).await.map(|_| ()),
                ErrorKind::InvalidKey,
                &format!("start-upload {shown}"),
            )?;
            expect_kind(
                s.stat(key).await,
                ErrorKind::InvalidKey,
                &format!("stat {shown}"),
            )?;
            expect_kind(
                s.open_download(key, 0, None).await.map(|_| ()),
                ErrorKind::InvalidKey,
                &format!("open-download {shown}"),
            )?;
            expect_kind(
                s.delete(key).await,
                ErrorKind::InvalidKey,
                &format!("delete {shown}"),
            )?;
            expect_kind(
                s.presign_get(key, 60, Network::Public).await,
                ErrorKind::InvalidKey,
                &format!("presign-get {shown}"),
            )?;
        }
        // The longest valid key must work. Its segments stay within the
        // 255 bytes a file name may have, as the WIT promises.
        let mut rest = String::new();
        while self.prefix.len() + 1 + rest.len() < MAX_KEY_BYTES {
            let room = MAX_KEY_BYTES - self.prefix.len() - 1 - rest.len();
            if !rest.is_empty() {
                rest.push('/');
            }
            rest.push_str(&"k".repeat(room.saturating_sub(1).clamp(1, 200)));
        }
        let ok = self.key(&rest);
        if ok.len() != MAX_KEY_BYTES {
            return Err(format!(
                "built a key of {} bytes, not {MAX_KEY_BYTES}",
                ok.len()
            ));
        }
        self.put(&ok, b"x").await?;
        self.storage.delete(&ok).await.map_err(|e| show(&e))?;
        Ok(format!(
            "{} bad keys refused by 5 calls each; a {MAX_KEY_BYTES}-byte key works",
            bad.len()
        ))
    }

    async fn presign(&self) -> Outcome {
        let key = self.key("presign/object");
        self.put(&key, b"x").await?;
        let mut shown = Vec::new();
        for net in [Network::Internal, Network::Public] {
            match self
                .storage
                .presign_get(&key, 60, net)
                .await
                .map_err(|e| show(&e))?
            {
                None => shown.push(format!("{net:?}: none (host serves downloads)")),
                Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                    shown.push(format!("{net:?}: URL"))
                }
                Some(u) => return Err(format!("{net:?}: `{u}` is not an http(s) URL")),
            }
        }
        Ok(shown.join("; "))
    }

    async fn cleanup(&self) -> Result<(), String> {
        let (keys, _) = self.list_all(&format!("{}/", self.prefix), 1000).await?;
        for k in keys {
            self.storage
                .delete(&k)
                .await
                .map_err(|e| format!("cleanup delete {k}: {}", show(&e)))?;
        }
        Ok(())
    }
}
