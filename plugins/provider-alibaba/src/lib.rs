//! provider-alibaba: backups the way the ApsaraDB for Redis console does
//! them (its "Backup and recovery" document):
//!
//! - "automatic backup cycles and times": a backup every day by default,
//!   the days and start time changeable;
//! - retention is 7 days and "cannot be modified";
//! - the RDB snapshot is taken "on slave nodes to protect the performance
//!   of your instance": backups are read from a replica;
//! - backups are archived to OSS and kept there 7 days, then deleted;
//! - "Recover Data" restores the original instance, or "Clone Instance"
//!   builds a new one, and the console suggests the clone "as the data
//!   recovery operation is highly risky";
//! - archived backups are downloaded by a link copied from the console.
//!
//! Only the descriptor lives here; validation and the object prefix are
//! provider-kit's, driven by it.

use provider_kit::{
    Adapter, ArchivePolicy, Changeable, DayRange, Descriptor, EVERY_DAY, Labels, Network, Policy,
    RestoreMode, Semantics, at, link,
};

/// Retention, in days: fixed by the console.
const RETENTION_DAYS: u32 = 7;
/// Days an archived copy is kept: "stores your backup archives on OSS for 7
/// days ... After 7 days, the files are automatically deleted."
const ARCHIVE_DAYS: u32 = 7;
/// The document gives no lifetime for the link "copied on the console". A
/// copied link works for whoever holds it, so it should not outlive the
/// download it was copied for: one hour is enough to start one (a presigned
/// link is checked when the download starts, not while it runs) and keeps a
/// link pasted into a ticket or chat from working for days.
const LINK_TTL_SECS: u32 = 3600;

struct Alibaba;

impl Semantics for Alibaba {
    fn descriptor() -> Descriptor {
        Descriptor {
            name: "alibaba".into(),
            display_name: "Alibaba ApsaraDB for Redis style".into(),
            default_policy: Policy {
                weekdays: EVERY_DAY.to_vec(),
                // The document names no default time. ApsaraDB's backup
                // times are one-hour slots on the hour; 03:00 to 04:00 is
                // the quietest hour of most workloads, and the user can
                // move it.
                window_start: at(3, 0),
                window_end: at(4, 0),
                retention_days: RETENTION_DAYS,
            },
            changeable: Changeable::WEEKDAYS | Changeable::WINDOW,
            // A schedule without a day would be no automatic backup at all;
            // the console's backup cycle needs at least one day.
            min_weekdays: 1,
            retention_range: DayRange {
                min: RETENTION_DAYS,
                max: RETENTION_DAYS,
            },
            download_links: vec![
                link(
                    Network::Internal,
                    LINK_TTL_SECS,
                    "internal network (same region)",
                ),
                link(Network::Public, LINK_TTL_SECS, "public network"),
            ],
            // In the order of the "Data Recovery" window: OK, or Clone Instance.
            restore_modes: vec![RestoreMode::InPlace, RestoreMode::Clone],
            recommended_restore: Some(RestoreMode::Clone),
            password_confirms: vec![],
            backup_from_replica: true,
            archive: Some(ArchivePolicy {
                retention_days: ARCHIVE_DAYS,
            }),
            labels: Labels {
                running: "Running".into(),
                backing_up: "Backing Up".into(),
                // The console's action is "Recover Data".
                recovering_by_backup: "Recovering Data".into(),
                // Alibaba offers no key restore; the label exists for completeness.
                recovering_by_key: "Recovering Keys".into(),
                cloning: "Cloning Instance".into(),
                automatic_backup: "Automatic Backup".into(),
                manual_backup: "Manual Backup".into(),
                // "Create Backup" asks for nothing; redback still lets the
                // user name the backup, as the backup's name.
                manual_backup_text: "name".into(),
            },
        }
    }
}

type Component = Adapter<Alibaba>;

provider_kit::bindings::export!(Component with_types_in provider_kit::bindings);
