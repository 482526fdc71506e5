//! provider-tencent: backups the way the TencentDB for Redis console does
//! them (its "Backup and Restoration" documents):
//!
//! - a backup every day: "All options are selected for Backup Schedule by
//!   default and cannot be modified";
//! - "by default ... every day between 02:00 and 08:00"; the start time
//!   is set in "Auto-Backup Settings";
//! - retention is 7 days by default and can be changed;
//! - backups are read from a replica, "to avoid impact on the business
//!   caused by overloading on the master";
//! - a manual backup carries a remark ("edit the remarks");
//! - the private network and public download addresses "are valid for 12
//!   hours"; the private one works only in the instance's region;
//! - restores: the whole instance or chosen keys (";"-separated), both
//!   after typing the instance password, or a clone into a new instance.
//!
//! Only the descriptor lives here; validation and the object prefix are
//! provider-kit's, driven by it.

use provider_kit::{
    Adapter, Changeable, DayRange, Descriptor, EVERY_DAY, Labels, Network, Policy, RestoreMode,
    Semantics, at, link,
};

/// Retention a new instance gets, in days.
const DEFAULT_RETENTION_DAYS: u32 = 7;
/// Retention a user may choose. The documents name no limit (longer
/// retention is granted by ticket). At least 1 day: a backup kept 0 days
/// would be swept as soon as it is made. At most 730 days (two years):
/// enough for a yearly audit with a year to spare, while a slip such as
/// 7000 is refused instead of keeping backups for decades.
const RETENTION_RANGE: DayRange = DayRange { min: 1, max: 730 };
/// "valid for 12 hours".
const LINK_TTL_SECS: u32 = 12 * 3600;

struct Tencent;

impl Semantics for Tencent {
    fn descriptor() -> Descriptor {
        Descriptor {
            name: "tencent".into(),
            display_name: "TencentDB for Redis style".into(),
            default_policy: Policy {
                weekdays: EVERY_DAY.to_vec(),
                window_start: at(2, 0),
                window_end: at(8, 0),
                retention_days: DEFAULT_RETENTION_DAYS,
            },
            changeable: Changeable::WINDOW | Changeable::RETENTION,
            // The days are fixed at all seven.
            min_weekdays: 7,
            retention_range: RETENTION_RANGE,
            download_links: vec![
                link(
                    Network::Internal,
                    LINK_TTL_SECS,
                    "private network address (same region)",
                ),
                link(Network::Public, LINK_TTL_SECS, "public network address"),
            ],
            restore_modes: vec![RestoreMode::InPlace, RestoreMode::Keys, RestoreMode::Clone],
            recommended_restore: None,
            // "enter the password for the instance" before recovering the
            // instance or a specified key.
            password_confirms: vec![RestoreMode::InPlace, RestoreMode::Keys],
            backup_from_replica: true,
            archive: None,
            labels: Labels {
                running: "Running".into(),
                backing_up: "Backing Up".into(),
                recovering_by_backup: "Recovering Backup by Backup ID".into(),
                recovering_by_key: "Recovering Backup by Key".into(),
                cloning: "Cloning Instance".into(),
                automatic_backup: "Auto Backup".into(),
                manual_backup: "Manual Backup".into(),
                manual_backup_text: "remark".into(),
            },
        }
    }
}

type Component = Adapter<Tencent>;

provider_kit::bindings::export!(Component with_types_in provider_kit::bindings);
