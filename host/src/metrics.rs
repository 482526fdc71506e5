//! Prometheus metrics, in the text exposition format 0.0.4, written by hand
//! (a few families do not need a metrics crate).
//!
//! Owns: the in-process counters and the backup-duration histogram (the
//! task center records every task that ends), the gauges read at scrape
//! time (tasks running, the catalog's backups and each instance's last
//! success), and the text Prometheus reads. Must not: derive a counter from
//! catalog rows (the sweeper removes backups, and a counter must never go
//! down; counters start at zero with the process, which Prometheus
//! handles), or run and end tasks (`tasks/` does).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use crate::backup::Kind;
use crate::catalog::{BackupQuery, BackupStatus, Catalog, CatalogError, TaskKind};

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the backup-duration buckets, seconds: 1 s to 6 h.
pub const BACKUP_SECONDS_BUCKETS: [f64; 14] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 10800.0,
    21600.0,
];

/// The `kind` label of a backup that failed before the catalog recorded
/// it, so that its kind is not known.
pub const UNKNOWN_KIND: &str = "unknown";

/// A task that ended, as the metrics see it.
#[derive(Debug, Clone)]
pub struct Ended<'a> {
    pub kind: TaskKind,
    pub instance: Option<&'a str>,
    pub succeeded: bool,
    /// From start to end.
    pub seconds: f64,
    /// A backup task's backup as the catalog holds it; `None` when the
    /// backup failed before it was recorded.
    pub backup: Option<BackupOutcome>,
}

/// What a backup task left in the catalog.
#[derive(Debug, Clone, Copy)]
pub struct BackupOutcome {
    pub kind: Kind,
    /// The stored (compressed) object's size; 0 unless it succeeded.
    pub stored_bytes: u64,
}

/// The daemon's counters; one per process, kept by the task center.
pub struct Metrics {
    /// instance, kind, result.
    backups: Counter<3>,
    /// instance.
    backup_stored_bytes: Counter<1>,
    /// instance.
    backup_seconds: Histogram<1>,
    /// kind, result.
    tasks: Counter<2>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            backups: Counter::new(),
            backup_stored_bytes: Counter::new(),
            backup_seconds: Histogram::new(&BACKUP_SECONDS_BUCKETS),
            tasks: Counter::new(),
        }
    }

    /// Counts a task that ended; a backup also counts in the backup
    /// families (bytes and duration only when it succeeded).
    pub fn record(&self, ended: &Ended<'_>) {
        let result = if ended.succeeded {
            "succeeded"
        } else {
            "failed"
        };
        self.tasks.add([ended.kind.as_str(), result], 1);
        if ended.kind != TaskKind::Backup {
            return;
        }
        let instance = ended.instance.unwrap_or_default();
        let kind = ended.backup.map_or(UNKNOWN_KIND, |b| kind_word(b.kind));
        self.backups.add([instance, kind, result], 1);
        if ended.succeeded {
            let bytes = ended.backup.map_or(0, |b| b.stored_bytes);
            self.backup_stored_bytes.add([instance], bytes);
            self.backup_seconds.observe([instance], ended.seconds);
        }
    }

    /// The exposition text: the counters, and `gauges` read just now.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = Text::default();
        out.family(
            "redback_backups_total",
            "Backups that ended since the daemon started, by instance, kind (automatic, manual; unknown when it failed before the catalog recorded it) and result (succeeded, failed).",
            "counter",
        );
        self.backups.write(
            &mut out,
            "redback_backups_total",
            ["instance", "kind", "result"],
        );
        out.family(
            "redback_backup_stored_bytes_total",
            "Bytes stored (the compressed objects) by backups that succeeded since the daemon started.",
            "counter",
        );
        self.backup_stored_bytes
            .write(&mut out, "redback_backup_stored_bytes_total", ["instance"]);
        out.family(
            "redback_backup_duration_seconds",
            "How long backups that succeeded took, in seconds.",
            "histogram",
        );
        self.backup_seconds
            .write(&mut out, "redback_backup_duration_seconds", ["instance"]);
        out.family(
            "redback_backup_last_success_timestamp_seconds",
            "When the newest complete backup in the catalog finished, unix seconds; absent for an instance without one.",
            "gauge",
        );
        for (instance, secs) in &gauges.last_success_secs {
            out.sample(
                "redback_backup_last_success_timestamp_seconds",
                &[("instance", instance)],
                secs,
            );
        }
        out.family(
            "redback_catalog_backups",
            "Backups the catalog holds, by instance and status (complete, running, failed; deleted: removed from storage, the row kept).",
            "gauge",
        );
        for ((instance, status), n) in &gauges.catalog_backups {
            out.sample(
                "redback_catalog_backups",
                &[("instance", instance), ("status", status)],
                n,
            );
        }
        out.family(
            "redback_tasks_total",
            "Tasks that ended since the daemon started, by kind (backup, restore, clone, archive, sweep, download) and result (succeeded, failed).",
            "counter",
        );
        self.tasks
            .write(&mut out, "redback_tasks_total", ["kind", "result"]);
        out.family(
            "redback_tasks_running",
            "Tasks running now, by kind.",
            "gauge",
        );
        for kind in TaskKind::ALL {
            let n = gauges.running.iter().filter(|k| *k == kind).count();
            out.sample("redback_tasks_running", &[("kind", kind.as_str())], n);
        }
        out.0
    }
}

/// What is read when Prometheus scrapes rather than counted as it happens.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gauges {
    /// The kind of every task running now.
    pub running: Vec<TaskKind>,
    /// Per instance, when its newest complete backup finished.
    pub last_success_secs: BTreeMap<String, i64>,
    /// Rows of the backups table by instance and status (the catalog's
    /// word for it).
    pub catalog_backups: BTreeMap<(String, &'static str), u64>,
}

impl Gauges {
    /// Reads the catalog's gauges: every status of each of `instances`
    /// and of any other instance the catalog still holds backups of (zero
    /// when it has none). One query, newest first, so an instance's first
    /// complete row is what [`Catalog::newest_complete`] answers.
    pub fn read(
        catalog: &Catalog,
        instances: impl IntoIterator<Item = impl Into<String>>,
        running: Vec<TaskKind>,
    ) -> Result<Gauges, CatalogError> {
        let rows = catalog.list_backups(&BackupQuery::default())?;
        let mut g = Gauges {
            running,
            ..Gauges::default()
        };
        let named = instances.into_iter().map(Into::into);
        for instance in named.chain(rows.iter().map(|b| b.instance.clone())) {
            for status in BackupStatus::ALL {
                g.catalog_backups
                    .entry((instance.clone(), status.as_str()))
                    .or_default();
            }
        }
        for b in rows {
            if b.status == BackupStatus::Complete && !g.last_success_secs.contains_key(&b.instance)
            {
                let finished = b.finished_at.unwrap_or(b.started_at);
                g.last_success_secs
                    .insert(b.instance.clone(), finished.as_second());
            }
            *g.catalog_backups
                .entry((b.instance, b.status.as_str()))
                .or_default() += 1;
        }
        Ok(g)
    }
}

fn kind_word(k: Kind) -> &'static str {
    match k {
        Kind::Automatic => "automatic",
        Kind::Manual => "manual",
    }
}

/// Counts by label values (`N` labels), in label order.
struct Counter<const N: usize> {
    values: Mutex<BTreeMap<[String; N], u64>>,
}

impl<const N: usize> Counter<N> {
    fn new() -> Self {
        Counter {
            values: Mutex::new(BTreeMap::new()),
        }
    }

    fn add(&self, labels: [&str; N], by: u64) {
        let mut values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        let v = values.entry(labels.map(str::to_string)).or_default();
        *v = v.saturating_add(by);
    }

    fn write(&self, out: &mut Text, name: &str, label_names: [&str; N]) {
        let values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        for (labels, v) in values.iter() {
            out.sample(name, &zip(label_names, labels), v);
        }
    }
}

/// Observations by label values, in fixed buckets.
struct Histogram<const N: usize> {
    bounds: &'static [f64],
    series: Mutex<BTreeMap<[String; N], Series>>,
}

/// One label set's observations: per bucket (not cumulative; those above
/// the last bound are only in `count`), their sum and how many.
#[derive(Default)]
struct Series {
    in_bucket: Vec<u64>,
    sum: f64,
    count: u64,
}

impl<const N: usize> Histogram<N> {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    fn observe(&self, labels: [&str; N], value: f64) {
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let s = series
            .entry(labels.map(str::to_string))
            .or_insert_with(|| Series {
                in_bucket: vec![0; self.bounds.len()],
                ..Series::default()
            });
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            s.in_bucket[i] += 1;
        }
        s.sum += value;
        s.count += 1;
    }

    fn write(&self, out: &mut Text, name: &str, label_names: [&str; N]) {
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = format!("{name}_bucket");
        let les: Vec<String> = self.bounds.iter().map(|b| float(*b)).collect();
        for (labels, s) in series.iter() {
            let mut pairs = zip(label_names, labels);
            let mut cumulative = 0;
            for (le, n) in les.iter().zip(&s.in_bucket) {
                cumulative += n;
                pairs.push(("le", le));
                out.sample(&bucket, &pairs, cumulative);
                pairs.pop();
            }
            pairs.push(("le", "+Inf"));
            out.sample(&bucket, &pairs, s.count);
            pairs.pop();
            out.sample(&format!("{name}_sum"), &pairs, float(s.sum));
            out.sample(&format!("{name}_count"), &pairs, s.count);
        }
    }
}

fn zip<'a, const N: usize>(
    names: [&'a str; N],
    values: &'a [String; N],
) -> Vec<(&'a str, &'a str)> {
    names
        .into_iter()
        .zip(values.iter().map(String::as_str))
        .collect()
}

/// A float as Prometheus writes it: no exponent, `+Inf`, `-Inf`, `NaN`.
fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        v.to_string()
    }
}

/// The exposition text being written.
#[derive(Default)]
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, help: &str, kind: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape_label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// A label value as the format quotes it: backslash, double quote and
/// line feed escaped.
fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// One sample of exposition text, read back by [`parse`].
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct Sample {
    pub name: String,
    /// Unescaped values.
    pub labels: Vec<(String, String)>,
    pub value: String,
}

#[cfg(test)]
impl Sample {
    /// `name{k=v,...} value` with the values unescaped, to compare in tests.
    pub fn line(&self) -> String {
        let l: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("{}{{{}}} {}", self.name, l.join(","), self.value)
    }

    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads exposition text back, for tests, checking as it goes that every
/// sample follows the `# HELP` and `# TYPE` of its family, that no family
/// is declared twice and that no series repeats.
#[cfg(test)]
pub(crate) fn parse(text: &str) -> Vec<Sample> {
    let mut declared: Vec<(String, String)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap().to_string();
            assert!(
                declared.iter().all(|(n, _)| *n != name),
                "{name} declared twice"
            );
            declared.push((name, String::new()));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            let last = declared.last_mut().expect("# TYPE before # HELP");
            assert_eq!(last.0, name, "# TYPE of another family than its # HELP");
            last.1 = kind.to_string();
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample is `series value`");
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), Vec::new()),
            Some((name, rest)) => (
                name.to_string(),
                parse_labels(rest.strip_suffix('}').expect("labels end with `}`")),
            ),
        };
        let (family, kind) = declared.last().expect("a sample before any # HELP");
        let base = match kind.as_str() {
            "histogram" => ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name),
            _ => &name,
        };
        assert_eq!(base, family, "sample {name} outside its family");
        assert!(seen.insert(series.to_string()), "{series} written twice");
        samples.push(Sample {
            name,
            labels,
            value: value.to_string(),
        });
    }
    samples
}

#[cfg(test)]
fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars();
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if name.is_empty() {
            return out;
        }
        assert_eq!(chars.next(), Some('"'), "label {name} is not quoted");
        let mut value = String::new();
        loop {
            match chars.next().expect("unterminated label value") {
                '"' => break,
                '\\' => match chars.next() {
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    Some('n') => value.push('\n'),
                    other => panic!("bad escape \\{other:?}"),
                },
                c => value.push(c),
            }
        }
        out.push((name, value));
        match chars.next() {
            None => return out,
            Some(',') => {}
            Some(c) => panic!("`{c}` after a label value"),
        }
    }
}

/// The one helper the metrics' and task center's tests build catalog rows
/// with: a backup of `instance` started at `started_secs`, 30 seconds long,
/// 4096 bytes stored, without a manifest.
#[cfg(test)]
pub(crate) fn backup_row(
    instance: &str,
    id: &str,
    kind: Kind,
    started_secs: i64,
    status: BackupStatus,
) -> crate::catalog::BackupRecord {
    let at = |s| jiff::Timestamp::from_second(s).unwrap();
    crate::catalog::BackupRecord {
        id: id.into(),
        instance: instance.into(),
        storage: "local".into(),
        kind,
        name: None,
        started_at: at(started_secs),
        finished_at: Some(at(started_secs + 30)),
        status,
        stored_bytes: 4096,
        raw_bytes: 8192,
        source_address: None,
        source_role: None,
        redis_version: None,
        rdb_version: None,
        data_key: None,
        manifest_key: None,
        sha256: None,
        retention_until: None,
        archived: None,
        manifest_json: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(instance: &str, kind: Kind, ok: bool, secs: f64, bytes: u64) -> Ended<'_> {
        Ended {
            kind: TaskKind::Backup,
            instance: Some(instance),
            succeeded: ok,
            seconds: secs,
            backup: Some(BackupOutcome {
                kind,
                stored_bytes: bytes,
            }),
        }
    }

    /// Every sample's [`Sample::line`], in order.
    fn lines(text: &str) -> Vec<String> {
        parse(text).iter().map(Sample::line).collect()
    }

    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        let odd = "a\\b\"c\nd";
        let m = Metrics::new();
        m.record(&backup(odd, Kind::Manual, false, 1.0, 0));
        let text = m.render(&Gauges::default());
        assert!(
            text.contains(
                r#"redback_backups_total{instance="a\\b\"c\nd",kind="manual",result="failed"} 1"#
            ),
            "{text}"
        );
        let back = parse(&text);
        let sample = back
            .iter()
            .find(|s| s.name == "redback_backups_total")
            .unwrap();
        assert_eq!(sample.label("instance"), Some(odd));
        assert_eq!(escape_label("plain-name_1"), "plain-name_1");
    }

    #[test]
    fn help_text_escapes_backslash_and_newline_but_not_quotes() {
        let mut t = Text::default();
        t.family("x", "a \"b\" c\\d\ne", "gauge");
        assert_eq!(t.0, "# HELP x a \"b\" c\\\\d\\ne\n# TYPE x gauge\n");
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let m = Metrics::new();
        for secs in [0.5, 1.0, 4.0, 100.0, 100.0, 30000.0] {
            m.record(&backup("a", Kind::Automatic, true, secs, 0));
        }
        let text = m.render(&Gauges::default());
        let buckets: Vec<(String, String)> = parse(&text)
            .into_iter()
            .filter(|s| s.name == "redback_backup_duration_seconds_bucket")
            .map(|s| (s.label("le").unwrap().to_string(), s.value))
            .collect();
        let expected: Vec<(String, String)> = [
            ("1", "2"),
            ("5", "3"),
            ("15", "3"),
            ("30", "3"),
            ("60", "3"),
            ("120", "5"),
            ("300", "5"),
            ("600", "5"),
            ("1200", "5"),
            ("1800", "5"),
            ("3600", "5"),
            ("7200", "5"),
            ("10800", "5"),
            ("21600", "5"),
            ("+Inf", "6"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(buckets, expected);
        assert!(text.contains("redback_backup_duration_seconds_sum{instance=\"a\"} 30205.5\n"));
        assert!(text.contains("redback_backup_duration_seconds_count{instance=\"a\"} 6\n"));
    }

    #[test]
    fn a_known_sequence_of_outcomes_renders_exact_values() {
        let m = Metrics::new();
        m.record(&backup("a", Kind::Manual, true, 2.5, 700));
        m.record(&backup("a", Kind::Automatic, true, 10.0, 300));
        m.record(&backup("a", Kind::Automatic, false, 1.0, 0));
        m.record(&Ended {
            kind: TaskKind::Backup,
            instance: Some("b"),
            succeeded: false,
            seconds: 0.1,
            backup: None,
        });
        m.record(&Ended {
            kind: TaskKind::Restore,
            instance: Some("a"),
            succeeded: true,
            seconds: 5.0,
            backup: None,
        });
        let gauges = Gauges {
            running: vec![TaskKind::Clone, TaskKind::Clone, TaskKind::Sweep],
            last_success_secs: BTreeMap::from([("a".to_string(), 1_700_000_000)]),
            catalog_backups: BTreeMap::from([
                (("a".to_string(), "complete"), 2),
                (("a".to_string(), "failed"), 1),
            ]),
        };
        let got = lines(&m.render(&gauges));
        let mut expected: Vec<String> = [
            "redback_backups_total{instance=a,kind=automatic,result=failed} 1",
            "redback_backups_total{instance=a,kind=automatic,result=succeeded} 1",
            "redback_backups_total{instance=a,kind=manual,result=succeeded} 1",
            "redback_backups_total{instance=b,kind=unknown,result=failed} 1",
            "redback_backup_stored_bytes_total{instance=a} 1000",
        ]
        .map(String::from)
        .to_vec();
        for (le, n) in [("1", 0), ("5", 1), ("15", 2)] {
            expected.push(format!(
                "redback_backup_duration_seconds_bucket{{instance=a,le={le}}} {n}"
            ));
        }
        for le in &BACKUP_SECONDS_BUCKETS[3..] {
            expected.push(format!(
                "redback_backup_duration_seconds_bucket{{instance=a,le={le}}} 2"
            ));
        }
        expected.extend(
            [
                "redback_backup_duration_seconds_bucket{instance=a,le=+Inf} 2",
                "redback_backup_duration_seconds_sum{instance=a} 12.5",
                "redback_backup_duration_seconds_count{instance=a} 2",
                "redback_backup_last_success_timestamp_seconds{instance=a} 1700000000",
                "redback_catalog_backups{instance=a,status=complete} 2",
                "redback_catalog_backups{instance=a,status=failed} 1",
                "redback_tasks_total{kind=backup,result=failed} 2",
                "redback_tasks_total{kind=backup,result=succeeded} 2",
                "redback_tasks_total{kind=restore,result=succeeded} 1",
                "redback_tasks_running{kind=backup} 0",
                "redback_tasks_running{kind=restore} 0",
                "redback_tasks_running{kind=clone} 2",
                "redback_tasks_running{kind=archive} 0",
                "redback_tasks_running{kind=sweep} 1",
                "redback_tasks_running{kind=download} 0",
            ]
            .map(String::from),
        );
        assert_eq!(got, expected);
    }

    #[test]
    fn an_unused_daemon_declares_every_family() {
        let text = Metrics::new().render(&Gauges::default());
        let families: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .collect();
        assert_eq!(
            families,
            [
                "redback_backups_total counter",
                "redback_backup_stored_bytes_total counter",
                "redback_backup_duration_seconds histogram",
                "redback_backup_last_success_timestamp_seconds gauge",
                "redback_catalog_backups gauge",
                "redback_tasks_total counter",
                "redback_tasks_running gauge",
            ]
        );
        parse(&text);
    }

    #[test]
    fn gauges_read_the_catalog_at_scrape_time() {
        let catalog = Catalog::open_in_memory().unwrap();
        for r in [
            backup_row("a", "a1", Kind::Automatic, 1000, BackupStatus::Complete),
            backup_row("a", "a2", Kind::Manual, 2000, BackupStatus::Complete),
            backup_row("a", "a3", Kind::Automatic, 3000, BackupStatus::Failed),
            backup_row("a", "a0", Kind::Automatic, 500, BackupStatus::Deleted),
            backup_row("gone", "g1", Kind::Manual, 100, BackupStatus::Complete),
        ] {
            catalog.upsert_backup(&r).unwrap();
        }
        let g = Gauges::read(&catalog, ["a", "b"], vec![TaskKind::Backup]).unwrap();
        assert_eq!(g.running, [TaskKind::Backup]);
        assert_eq!(
            g.last_success_secs,
            BTreeMap::from([("a".to_string(), 2030), ("gone".to_string(), 130)])
        );
        let counts: Vec<(&str, &str, u64)> = g
            .catalog_backups
            .iter()
            .map(|((i, s), n)| (i.as_str(), *s, *n))
            .collect();
        assert_eq!(
            counts,
            [
                ("a", "complete", 2),
                ("a", "deleted", 1),
                ("a", "failed", 1),
                ("a", "running", 0),
                ("b", "complete", 0),
                ("b", "deleted", 0),
                ("b", "failed", 0),
                ("b", "running", 0),
                ("gone", "complete", 1),
                ("gone", "deleted", 0),
                ("gone", "failed", 0),
                ("gone", "running", 0),
            ]
        );
    }

    #[test]
    fn floats_are_written_as_prometheus_reads_them() {
        assert_eq!(float(21600.0), "21600");
        assert_eq!(float(0.25), "0.25");
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(float(f64::NAN), "NaN");
    }
}
