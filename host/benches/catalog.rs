//! Catalog benchmark: 10,000 backups of one instance (one an hour, about
//! 14 months) in an on-disk catalog.
//!
//! - listing them by a time range (1 day, 30 days, all), the median of
//!   repeated runs, against two references measured in the same run on the
//!   same file: `SELECT count(*)` over the same range (the index walk alone,
//!   no row read), and the same rows and columns read by plain rusqlite from
//!   a full-table scan (`NOT INDEXED`, then sorted), which is what the query would cost
//!   without the (instance, started_at, id) index;
//! - inserting the 10,000: one `record_manifest` call (one durable
//!   transaction) each, and one `rebuild` (a single transaction).
//!
//! Run with `cargo bench -p redback --bench catalog`; `REDBACK_BENCH_BACKUPS`
//! sets the number of backups (default 10,000).

use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use redback::backup::manifest::{DataObject, MANIFEST_VERSION, Source};
use redback::backup::{Kind, Manifest};
use redback::catalog::{BackupQuery, Catalog};
use redback::config::Compression;

const INSTANCE: &str = "orders";
/// The first backup's start: 2026-01-01T02:00:00Z.
const FIRST_SECS: i64 = 1_767_232_800;
const HOUR_SECS: i64 = 3600;

fn manifest(i: i64) -> Manifest {
    let started = Timestamp::from_second(FIRST_SECS + i * HOUR_SECS).unwrap();
    let id = format!("{}-{i:05}", started.strftime("%Y%m%dT%H%M%SZ"));
    Manifest {
        format: "redback-manifest".into(),
        version: MANIFEST_VERSION,
        id: id.clone(),
        instance: INSTANCE.into(),
        kind: if i % 10 == 0 {
            Kind::Manual
        } else {
            Kind::Automatic
        },
        name: (i % 10 == 0).then(|| format!("before release {i}")),
        started_at: started.to_string(),
        finished_at: (started + SignedDuration::from_secs(42)).to_string(),
        source: Source {
            address: "10.0.0.7:6379".into(),
            role: "replica".into(),
            redis_version: "7.0.15".into(),
            rdb_version: 10,
            replication_id: Some("8f3c".repeat(10)),
            replication_offset: Some(i * 1_000_000),
            fallback_reason: None,
        },
        data: DataObject {
            key: format!("redback/{INSTANCE}/{id}/dump.rdb.zst"),
            stored_bytes: 200_000_000 + i as u64,
            raw_bytes: 580_000_000,
            compression: Compression::Zstd { level: 3 },
            sha256: format!("{i:064x}"),
            rdb_crc64: format!("{i:016x}"),
            encryption: None,
        },
        stats: serde_json::json!({
            "keys": 3_290_000, "expires": 297_000,
            "types": {"string": 3_000_000, "hash": 100_000, "list": 90_000, "set": 50_000, "zset": 50_000},
        }),
        provider: None,
        retention_until: Some((started + SignedDuration::from_hours(24 * 30)).to_string()),
    }
}

fn manifest_key(m: &Manifest) -> String {
    format!("redback/{}/{}/manifest.json", m.instance, m.id)
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

/// Median of `runs` timings of `f`, after one warm-up call; also returns
/// what the last call gave.
fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut out = f();
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        out = f();
        times.push(start.elapsed());
    }
    (median(times), out)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let count: i64 = std::env::var("REDBACK_BENCH_BACKUPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.db");
    let manifests: Vec<Manifest> = (0..count).map(manifest).collect();

    // Inserts: one durable transaction per backup, then one for all.
    let cat = Catalog::open(&path).unwrap();
    let start = Instant::now();
    for m in &manifests {
        cat.record_manifest("s3", m, &manifest_key(m)).unwrap();
    }
    let insert_each = start.elapsed();
    let start = Instant::now();
    let report = cat
        .rebuild(
            manifests
                .iter()
                .map(|m| ("s3".to_string(), manifest_key(m), m.clone())),
        )
        .unwrap();
    let insert_rebuild = start.elapsed();
    assert_eq!(report.inserted, count as usize);
    drop(cat);

    // Queries on the reopened file, against references on a second
    // connection to the same file.
    let cat = Catalog::open(&path).unwrap();
    let raw = rusqlite::Connection::open(&path).unwrap();
    let last = Timestamp::from_second(FIRST_SECS + count * HOUR_SECS).unwrap();
    let sync: i64 = raw
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    let ranges = [("1 day", 1), ("30 days", 30), ("all", 0)];
    let runs_for = |rows: usize| if rows > 1000 { 21 } else { 101 };

    println!();
    println!(
        "catalog benchmark: {count} backups of one instance, one an hour, on-disk SQLite (WAL), file {:.1} MB",
        std::fs::metadata(&path).unwrap().len() as f64 / 1e6
    );
    println!(
        "{:<30} {:>7} {:>12} {:>12} {:>14} {:>10}",
        "list by time range (median)", "rows", "catalog", "count(*)", "scan, no index", "vs scan"
    );
    for (name, days) in ranges {
        let (from, to) = if days == 0 {
            (Timestamp::from_second(FIRST_SECS).unwrap(), last)
        } else {
            // The range ends at the newest backup, as a UI asks.
            (last - SignedDuration::from_hours(24 * days), last)
        };
        let q = BackupQuery {
            instance: Some(INSTANCE.into()),
            from: Some(from),
            to: Some(to),
            ..BackupQuery::default()
        };
        let rows = cat.list_backups(&q).unwrap().len();
        let runs = runs_for(rows);
        let (catalog, listed) = time(runs, || cat.list_backups(&q).unwrap());
        assert_eq!(listed.len(), rows);
        let (from_ms, to_ms) = (from.as_millisecond(), to.as_millisecond());
        let mut count_stmt = raw
            .prepare(
                "SELECT count(*) FROM backups WHERE instance = ?1 AND started_at >= ?2 AND started_at < ?3",
            )
            .unwrap();
        let (counted, n) = time(runs, || {
            count_stmt
                .query_row(rusqlite::params![INSTANCE, from_ms, to_ms], |r| {
                    r.get::<_, i64>(0)
                })
                .unwrap()
        });
        assert_eq!(n as usize, rows);
        let mut scan_stmt = raw
            .prepare(
                "SELECT id, instance, storage, kind, name, started_at, finished_at, status, \
                 stored_bytes, raw_bytes, source_address, source_role, redis_version, \
                 rdb_version, data_key, manifest_key, sha256, retention_until, \
                 archive_storage, archived_at, manifest FROM backups NOT INDEXED \
                 WHERE instance = ?1 AND started_at >= ?2 AND started_at < ?3 \
                 ORDER BY started_at DESC, id DESC",
            )
            .unwrap();
        let (scanned, n) = time(runs, || {
            let mut rows = scan_stmt
                .query(rusqlite::params![INSTANCE, from_ms, to_ms])
                .unwrap();
            let mut n = 0usize;
            while let Some(r) = rows.next().unwrap() {
                // Every column, as the catalog reads them.
                let row: Vec<rusqlite::types::Value> = (0..21).map(|i| r.get(i).unwrap()).collect();
                std::hint::black_box(row);
                n += 1;
            }
            n
        });
        assert_eq!(n, rows);
        println!(
            "{:<30} {:>7} {:>10.3}ms {:>10.3}ms {:>12.3}ms {:>9.2}x",
            format!("{name} ({runs} runs)"),
            rows,
            ms(catalog),
            ms(counted),
            ms(scanned),
            ms(catalog) / ms(scanned)
        );
    }
    println!(
        "{:<30} {:>7} {:>10.0}ms   ({:.0} µs a backup, PRAGMA synchronous = {sync})",
        "insert, record_manifest each",
        count,
        ms(insert_each),
        insert_each.as_secs_f64() * 1e6 / count as f64
    );
    println!(
        "{:<30} {:>7} {:>10.0}ms   (one transaction, replacing the {count} above)",
        "insert, one rebuild",
        count,
        ms(insert_rebuild)
    );
}
