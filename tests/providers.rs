//! The provider components (JD-, Alibaba- and Tencent-style), loaded from
//! target/plugins through the real plugin host: every row of the semantics
//! table in ARCHITECTURE.md, and every policy change each console allows
//! (normalised) or refuses (with the provider's sentence).

mod common;

use std::sync::{Arc, OnceLock};

use common::*;
use redback::plugin::{Kind, LoadedPlugin, PluginHost, PluginSet};
use redback::provider::{BackupKind, Policy, Provider, RestoreMode, TimeOfDay, Weekday};
use redback::storage::Network;

use RestoreMode::{Clone, InPlace, Keys};
use Weekday::*;

const EVERY_DAY: [Weekday; 7] = [
    Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday,
];

/// The plugin folder of each provider style, as build-plugins.sh lays it out.
const PROVIDERS: [&str; 3] = ["provider-jd", "provider-alibaba", "provider-tencent"];

/// `target/plugins` loaded once: compiling the storage components beside
/// the providers is the slow part, and loading is what every test shares.
fn plugin_set() -> &'static (PluginHost, PluginSet) {
    static SET: OnceLock<(PluginHost, PluginSet)> = OnceLock::new();
    SET.get_or_init(|| {
        let dir = built_plugin("storage-local")
            .parent()
            .unwrap()
            .to_path_buf();
        let host = PluginHost::new(None).unwrap();
        let set = host.load_dir(&dir, &no_overrides()).unwrap();
        (host, set)
    })
}

fn loaded(name: &str) -> &'static Arc<LoadedPlugin> {
    let (_, set) = plugin_set();
    set.loaded.get(name).unwrap_or_else(|| {
        panic!(
            "{}",
            set.why_missing(name, std::path::Path::new("target/plugins"))
        )
    })
}

async fn open(name: &str) -> Arc<dyn Provider> {
    let (host, _) = plugin_set();
    host.open_provider(loaded(name), None)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e:#}"))
}

const fn at(hour: u8, minute: u8) -> TimeOfDay {
    TimeOfDay { hour, minute }
}

/// One row of the semantics table per field, for one provider.
struct Semantics {
    plugin: &'static str,
    name: &'static str,
    weekdays: &'static [Weekday],
    window: (TimeOfDay, TimeOfDay),
    /// (weekdays, window, retention) a user may change.
    changeable: (bool, bool, bool),
    min_weekdays: u32,
    default_retention_days: u32,
    retention_range: (u32, u32),
    links: &'static [(Network, u32, &'static str)],
    restore_modes: &'static [RestoreMode],
    recommended_restore: Option<RestoreMode>,
    password_confirms: &'static [RestoreMode],
    backup_from_replica: bool,
    archive_retention_days: Option<u32>,
    /// running, backing up, recovering by backup, recovering by key,
    /// cloning, automatic backup, manual backup, manual backup text.
    labels: [&'static str; 8],
}

const TABLE: [Semantics; 3] = [
    Semantics {
        plugin: "provider-jd",
        name: "jd",
        weekdays: &EVERY_DAY,
        window: (at(3, 0), at(4, 0)),
        changeable: (true, true, false),
        min_weekdays: 1,
        default_retention_days: 7,
        retention_range: (7, 7),
        links: &[
            (Network::Internal, 3600, "intranet (same region)"),
            (Network::Public, 3600, "public network"),
        ],
        restore_modes: &[InPlace],
        recommended_restore: None,
        password_confirms: &[],
        backup_from_replica: false,
        archive_retention_days: None,
        labels: [
            "Running",
            "Backing Up",
            "Recovering Data",
            "Recovering Keys",
            "Cloning",
            "Automatic Backup",
            "Manual Backup",
            "name",
        ],
    },
    Semantics {
        plugin: "provider-alibaba",
        name: "alibaba",
        weekdays: &EVERY_DAY,
        window: (at(3, 0), at(4, 0)),
        changeable: (true, true, false),
        min_weekdays: 1,
        default_retention_days: 7,
        retention_range: (7, 7),
        links: &[
            (Network::Internal, 3600, "internal network (same region)"),
            (Network::Public, 3600, "public network"),
        ],
        restore_modes: &[InPlace, Clone],
        recommended_restore: Some(Clone),
        password_confirms: &[],
        backup_from_replica: true,
        archive_retention_days: Some(7),
        labels: [
            "Running",
            "Backing Up",
            "Recovering Data",
            "Recovering Keys",
            "Cloning Instance",
            "Automatic Backup",
            "Manual Backup",
            "name",
        ],
    },
    Semantics {
        plugin: "provider-tencent",
        name: "tencent",
        weekdays: &EVERY_DAY,
        window: (at(2, 0), at(8, 0)),
        changeable: (false, true, true),
        min_weekdays: 7,
        default_retention_days: 7,
        retention_range: (1, 730),
        links: &[
            (
                Network::Internal,
                43200,
                "private network address (same region)",
            ),
            (Network::Public, 43200, "public network address"),
        ],
        restore_modes: &[InPlace, Keys, Clone],
        recommended_restore: None,
        password_confirms: &[InPlace, Keys],
        backup_from_replica: true,
        archive_retention_days: None,
        labels: [
            "Running",
            "Backing Up",
            "Recovering Backup by Backup ID",
            "Recovering Backup by Key",
            "Cloning Instance",
            "Auto Backup",
            "Manual Backup",
            "remark",
        ],
    },
];

fn default_policy(s: &Semantics) -> Policy {
    Policy {
        weekdays: s.weekdays.to_vec(),
        window_start: s.window.0,
        window_end: s.window.1,
        retention_days: s.default_retention_days,
    }
}

#[test]
fn the_provider_folders_load_as_providers_that_ask_for_nothing() {
    let (_, set) = plugin_set();
    for plugin in PROVIDERS {
        assert!(
            set.refused_named(plugin).is_none(),
            "{:?}",
            set.refused_named(plugin)
        );
        let m = &loaded(plugin).manifest;
        assert_eq!(m.kind, Kind::Provider, "{plugin}");
        assert_eq!(m.implements, "redback:provider@0.1.0", "{plugin}");
        assert!(
            !m.capabilities.filesystem && !m.capabilities.http,
            "{plugin}: {:?}",
            m.capabilities
        );
    }
}

#[tokio::test]
async fn every_row_of_the_semantics_table() {
    for s in &TABLE {
        let p = open(s.plugin).await;
        let d = p.descriptor();
        let row = |what: &str| format!("{}: {what}", s.plugin);
        assert_eq!(d.name, s.name, "{}", row("name"));
        assert!(!d.display_name.is_empty(), "{}", row("display name"));
        assert_eq!(
            d.default_policy,
            default_policy(s),
            "{}",
            row("default schedule")
        );
        let c = &d.changeable;
        assert_eq!(
            (c.weekdays, c.window, c.retention),
            s.changeable,
            "{}",
            row("what a user may change")
        );
        assert_eq!(
            d.min_weekdays,
            s.min_weekdays,
            "{}",
            row("minimum weekdays")
        );
        assert_eq!(
            (d.retention_min_days, d.retention_max_days),
            s.retention_range,
            "{}",
            row("retention range")
        );
        let links: Vec<(Network, u32, &str)> = d
            .download_links
            .iter()
            .map(|l| (l.network, l.ttl_secs, l.label.as_str()))
            .collect();
        assert_eq!(links, s.links, "{}", row("download links"));
        assert_eq!(d.restore_modes, s.restore_modes, "{}", row("restore modes"));
        assert_eq!(
            d.recommended_restore,
            s.recommended_restore,
            "{}",
            row("recommended restore")
        );
        assert_eq!(
            d.password_confirms,
            s.password_confirms,
            "{}",
            row("password confirmations")
        );
        assert_eq!(
            d.backup_from_replica,
            s.backup_from_replica,
            "{}",
            row("backup from replica")
        );
        assert_eq!(
            d.archive_retention_days,
            s.archive_retention_days,
            "{}",
            row("archive")
        );
        let l = &d.labels;
        let labels = [
            &l.running,
            &l.backing_up,
            &l.recovering_by_backup,
            &l.recovering_by_key,
            &l.cloning,
            &l.automatic_backup,
            &l.manual_backup,
            &l.manual_backup_text,
        ];
        assert_eq!(labels, s.labels, "{}", row("labels"));
    }
}

#[tokio::test]
async fn descriptors_are_consistent_with_their_own_rules() {
    for s in &TABLE {
        let d = open(s.plugin).await.descriptor().clone();
        let fixed_retention = d.retention_min_days == d.retention_max_days;
        assert_eq!(
            fixed_retention, !d.changeable.retention,
            "{}: a retention range of one value is a fixed retention",
            s.plugin
        );
        assert!(
            (d.retention_min_days..=d.retention_max_days)
                .contains(&d.default_policy.retention_days),
            "{}: the default retention is outside the range",
            s.plugin
        );
        assert!(
            d.default_policy.weekdays.len() >= d.min_weekdays as usize,
            "{}",
            s.plugin
        );
        if let Some(r) = d.recommended_restore {
            assert!(d.restore_modes.contains(&r), "{}", s.plugin);
        }
        for m in &d.password_confirms {
            assert!(d.restore_modes.contains(m), "{}", s.plugin);
        }
        for network in [Network::Internal, Network::Public] {
            let n = d.download_links.iter().filter(|l| l.network == network);
            assert_eq!(n.count(), 1, "{}: one link per network", s.plugin);
        }
    }
}

/// A change to the provider's default policy, what the provider should
/// answer, and why.
struct Case {
    what: &'static str,
    change: fn(&mut Policy),
    /// `Ok(normalise)`: accepted, and the answer is the changed policy with
    /// `normalise` applied; `Err(sentence)`: refused with that sentence.
    want: Result<fn(&mut Policy), &'static str>,
}

const UNCHANGED: fn(&mut Policy) = |_| {};

/// What every provider answers alike: the window is changeable everywhere.
const EVERY_PROVIDER: &[Case] = &[
    Case {
        what: "the default policy",
        change: |_| {},
        want: Ok(UNCHANGED),
    },
    Case {
        what: "a window over midnight",
        change: |p| (p.window_start, p.window_end) = (at(22, 30), at(1, 15)),
        want: Ok(UNCHANGED),
    },
    Case {
        what: "a window of a whole day (end equal to start)",
        change: |p| (p.window_start, p.window_end) = (at(5, 0), at(5, 0)),
        want: Ok(UNCHANGED),
    },
    Case {
        what: "the last minute of the day",
        change: |p| (p.window_start, p.window_end) = (at(23, 59), at(0, 0)),
        want: Ok(UNCHANGED),
    },
    Case {
        what: "a start hour of 24",
        change: |p| p.window_start = at(24, 0),
        want: Err("The backup window's start hour is 24, but hours run from 0 to 23."),
    },
    Case {
        what: "an end hour of 99",
        change: |p| p.window_end = at(99, 0),
        want: Err("The backup window's end hour is 99, but hours run from 0 to 23."),
    },
    Case {
        what: "a start minute of 60",
        change: |p| p.window_start = at(1, 60),
        want: Err("The backup window's start minute is 60, but minutes run from 0 to 59."),
    },
    Case {
        what: "an end minute of 255",
        change: |p| p.window_end = at(4, 255),
        want: Err("The backup window's end minute is 255, but minutes run from 0 to 59."),
    },
    Case {
        what: "a bad time and a bad retention: the time is reported",
        change: |p| (p.window_start, p.retention_days) = (at(25, 0), 0),
        want: Err("The backup window's start hour is 25, but hours run from 0 to 23."),
    },
];

/// JD and Alibaba: days changeable (at least one), retention fixed at 7.
const DAYS_CHANGEABLE_RETENTION_FIXED: &[Case] = &[
    Case {
        what: "days out of order and repeated",
        change: |p| p.weekdays = vec![Sunday, Wednesday, Monday, Wednesday, Sunday],
        want: Ok(|p| p.weekdays = vec![Monday, Wednesday, Sunday]),
    },
    Case {
        what: "one day a week",
        change: |p| p.weekdays = vec![Saturday],
        want: Ok(UNCHANGED),
    },
    Case {
        what: "one day given twice",
        change: |p| p.weekdays = vec![Tuesday, Tuesday],
        want: Ok(|p| p.weekdays = vec![Tuesday]),
    },
    Case {
        what: "no day",
        change: |p| p.weekdays.clear(),
        want: Err("Backups must run on at least one day a week."),
    },
    Case {
        what: "a longer retention",
        change: |p| p.retention_days = 8,
        want: Err("Backup retention is fixed at 7 days and cannot be changed."),
    },
    Case {
        what: "a shorter retention",
        change: |p| p.retention_days = 1,
        want: Err("Backup retention is fixed at 7 days and cannot be changed."),
    },
    Case {
        what: "no retention",
        change: |p| p.retention_days = 0,
        want: Err("Backup retention is fixed at 7 days and cannot be changed."),
    },
];

/// Tencent: every day, fixed; retention 1 to 730 days.
const TENCENT: &[Case] = &[
    Case {
        what: "every day, out of order and repeated",
        change: |p| {
            p.weekdays = vec![
                Sunday, Saturday, Friday, Thursday, Wednesday, Tuesday, Monday, Monday,
            ]
        },
        want: Ok(|p| p.weekdays = EVERY_DAY.to_vec()),
    },
    Case {
        what: "one day less",
        change: |p| p.weekdays = EVERY_DAY[..6].to_vec(),
        want: Err("The backup days cannot be changed: a backup runs every day."),
    },
    Case {
        what: "one day a week",
        change: |p| p.weekdays = vec![Monday],
        want: Err("The backup days cannot be changed: a backup runs every day."),
    },
    Case {
        what: "no day",
        change: |p| p.weekdays.clear(),
        want: Err("The backup days cannot be changed: a backup runs every day."),
    },
    Case {
        what: "an hour's window of the console",
        change: |p| (p.window_start, p.window_end) = (at(23, 0), at(0, 0)),
        want: Ok(UNCHANGED),
    },
    Case {
        what: "the shortest retention",
        change: |p| p.retention_days = 1,
        want: Ok(UNCHANGED),
    },
    Case {
        what: "a month's retention",
        change: |p| p.retention_days = 30,
        want: Ok(UNCHANGED),
    },
    Case {
        what: "the longest retention",
        change: |p| p.retention_days = 730,
        want: Ok(UNCHANGED),
    },
    Case {
        what: "no retention",
        change: |p| p.retention_days = 0,
        want: Err("Backup retention must be between 1 and 730 days."),
    },
    Case {
        what: "a retention past the range",
        change: |p| p.retention_days = 731,
        want: Err("Backup retention must be between 1 and 730 days."),
    },
    Case {
        what: "a typo of a retention",
        change: |p| p.retention_days = u32::MAX,
        want: Err("Backup retention must be between 1 and 730 days."),
    },
];

async fn check_cases(s: &Semantics, cases: &[&[Case]]) -> usize {
    let p = open(s.plugin).await;
    let mut n = 0;
    for case in cases.iter().copied().flatten() {
        let mut requested = default_policy(s);
        (case.change)(&mut requested);
        let want = case.want.map(|normalise| {
            let mut p = requested.clone();
            normalise(&mut p);
            p
        });
        let got = p
            .validate_policy(&requested)
            .await
            .unwrap_or_else(|e| panic!("{}: {}: {e:#}", s.plugin, case.what));
        assert_eq!(
            got,
            want.map_err(String::from),
            "{}: {}",
            s.plugin,
            case.what
        );
        n += 1;
    }
    n
}

#[tokio::test]
async fn jd_accepts_and_refuses_policy_changes() {
    let n = check_cases(
        &TABLE[0],
        &[EVERY_PROVIDER, DAYS_CHANGEABLE_RETENTION_FIXED],
    )
    .await;
    assert_eq!(
        n,
        EVERY_PROVIDER.len() + DAYS_CHANGEABLE_RETENTION_FIXED.len()
    );
}

#[tokio::test]
async fn alibaba_accepts_and_refuses_policy_changes() {
    let n = check_cases(
        &TABLE[1],
        &[EVERY_PROVIDER, DAYS_CHANGEABLE_RETENTION_FIXED],
    )
    .await;
    assert_eq!(
        n,
        EVERY_PROVIDER.len() + DAYS_CHANGEABLE_RETENTION_FIXED.len()
    );
}

#[tokio::test]
async fn tencent_accepts_and_refuses_policy_changes() {
    let n = check_cases(&TABLE[2], &[EVERY_PROVIDER, TENCENT]).await;
    assert_eq!(n, EVERY_PROVIDER.len() + TENCENT.len());
}

#[tokio::test]
async fn a_refusal_leaves_the_adapter_serving() {
    // A refused policy is an answer, not a failure: the same instance goes
    // on answering, and accepts the next good policy.
    for s in &TABLE {
        let p = open(s.plugin).await;
        let mut bad = default_policy(s);
        bad.window_end = at(24, 0);
        assert!(
            p.validate_policy(&bad).await.unwrap().is_err(),
            "{}",
            s.plugin
        );
        let good = default_policy(s);
        assert_eq!(p.validate_policy(&good).await.unwrap(), Ok(good.clone()));
    }
}

#[tokio::test]
async fn object_prefixes_are_the_instance_then_the_backup_id() {
    let cases = [
        // (instance, backup id, prefix)
        (
            "cache-1",
            "20240102T030405Z-1a2b",
            "cache-1/20240102T030405Z-1a2b",
        ),
        (
            "Orders_EU",
            "20991231T235959Z-ffff",
            "Orders_EU/20991231T235959Z-ffff",
        ),
        // Whatever the host passes, the answer is two safe segments.
        ("a b/../c", "id?x=1", "a_b_.._c/id_x_1"),
        ("..", ".", "__/_"),
        ("", "", "_/_"),
        ("naïve", "v1.2", "na_ve/v1.2"),
    ];
    for s in &TABLE {
        let p = open(s.plugin).await;
        for (instance, id, want) in cases {
            for kind in [BackupKind::Automatic, BackupKind::Manual] {
                for started in [0, 1_700_000_000, -1] {
                    let got = p
                        .object_prefix(instance, id, kind, started)
                        .await
                        .unwrap_or_else(|e| panic!("{}: {instance:?} {id:?}: {e:#}", s.plugin));
                    assert_eq!(got, want, "{}: {instance:?} {id:?} {kind:?}", s.plugin);
                }
            }
        }
        // Long parts are cut so that the prefix stays within the host's
        // 512 bytes.
        let long = p
            .object_prefix(&"i".repeat(300), &"b".repeat(300), BackupKind::Manual, 0)
            .await
            .unwrap();
        assert_eq!(
            long,
            format!("{}/{}", "i".repeat(255), "b".repeat(255)),
            "{}",
            s.plugin
        );
    }
}
