//! provider-jd: backups the way JD Cloud's Redis console does them
//! (its "Backup Recovery" document):
//!
//! - a backup every day of the week by default; the user may change the
//!   days ("with a minimum of once a week") and the start time;
//! - retention is 7 days, "unchangeable";
//! - a manual backup ("Backup Now") is given a name;
//! - a download link is "an intelligent resolution address" valid for one
//!   hour, for the intranet (virtual machine and database in the same
//!   region) or the public network;
//! - "Data Recovery" restores the original instance after one confirmation:
//!   no password, no clone, no key restore;
//! - the document says nothing of replicas or archiving: backups are read
//!   from the master, nothing is archived.
//!
//! Only the descriptor lives here; validation and the object prefix are
//! provider-kit's, driven by it.

use provider_kit::{
    Adapter, Changeable, DayRange, Descriptor, EVERY_DAY, Labels, Network, Policy, RestoreMode,
    Semantics, at, link,
};

/// Retention, in days: fixed by the console.
const RETENTION_DAYS: u32 = 7;
/// The download link's lifetime: "a valid duration of 1 hour".
const LINK_TTL_SECS: u32 = 3600;

struct Jd;

impl Semantics for Jd {
    fn descriptor() -> Descriptor {
        Descriptor {
            name: "jd".into(),
            display_name: "JD Cloud Redis style".into(),
            default_policy: Policy {
                weekdays: EVERY_DAY.to_vec(),
                // The document names no default time. One hour at 03:00,
                // the quietest hour of most workloads, is a slot the user
                // can move; an hour is the slot size such consoles offer.
                window_start: at(3, 0),
                window_end: at(4, 0),
                retention_days: RETENTION_DAYS,
            },
            changeable: Changeable::WEEKDAYS | Changeable::WINDOW,
            min_weekdays: 1,
            retention_range: DayRange {
                min: RETENTION_DAYS,
                max: RETENTION_DAYS,
            },
            download_links: vec![
                link(Network::Internal, LINK_TTL_SECS, "intranet (same region)"),
                link(Network::Public, LINK_TTL_SECS, "public network"),
            ],
            restore_modes: vec![RestoreMode::InPlace],
            recommended_restore: None,
            password_confirms: vec![],
            backup_from_replica: false,
            archive: None,
            labels: Labels {
                running: "Running".into(),
                backing_up: "Backing Up".into(),
                // The console's button is "Data Recovery".
                recovering_by_backup: "Recovering Data".into(),
                // JD offers neither; the labels exist for completeness.
                recovering_by_key: "Recovering Keys".into(),
                cloning: "Cloning".into(),
                automatic_backup: "Automatic Backup".into(),
                manual_backup: "Manual Backup".into(),
                // "enter the manual backup name in the popup".
                manual_backup_text: "name".into(),
            },
        }
    }
}

type Component = Adapter<Jd>;

provider_kit::bindings::export!(Component with_types_in provider_kit::bindings);
