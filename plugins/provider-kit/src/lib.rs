//! provider-kit: what the provider components (JD-, Alibaba- and
//! Tencent-style) share, so that each of them is only its semantics.
//!
//! - `bindings`: the provider contract (`wit/provider`) with a public export
//!   macro;
//! - `policy`: `validate-policy`, driven entirely by the provider's
//!   descriptor (what may change, fewest weekdays, retention range), with
//!   refusals worded for a console user;
//! - `prefix`: the default `object-prefix`, `<instance>/<backup-id>`;
//! - `Adapter<S>`: the exported adapter; a provider implements `Semantics`
//!   (its descriptor) and exports
//!   `provider_kit::bindings::export!(Component with_types_in provider_kit::bindings)`
//!   with `type Component = provider_kit::Adapter<Its>`.
//!
//! Must not: touch the network, files or the clock (the world grants none,
//! and the host passes times in); hold any one provider's rules.

mod policy;
mod prefix;

use std::marker::PhantomData;

pub use policy::{validate_policy, weekday_name};
pub use prefix::default_object_prefix;

/// The bindings of the provider contract, shared by the providers.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/provider",
        world: "redback:provider/provider-adapter",
        pub_export_macro: true,
        default_bindings_module: "provider_kit::bindings",
        additional_derives: [PartialEq, Eq],
    });
}

pub use bindings::exports::redback::provider::adapter::Guest;
pub use bindings::redback::provider::types::{
    ArchivePolicy, BackupKind, Changeable, DayRange, Descriptor, Labels, LinkLifetime, Network,
    Policy, RestoreMode, TimeOfDay, Weekday,
};

/// Monday to Sunday: the schedule every provider starts with.
pub const EVERY_DAY: [Weekday; 7] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];

/// `hour:minute` as a WIT time of day.
pub const fn at(hour: u8, minute: u8) -> TimeOfDay {
    TimeOfDay { hour, minute }
}

/// A download link of `ttl_seconds` on `network`, worded as the console does.
pub fn link(network: Network, ttl_seconds: u32, label: &str) -> LinkLifetime {
    LinkLifetime {
        network,
        ttl_seconds,
        label: label.into(),
    }
}

/// One provider's semantics: everything but the descriptor has a default.
pub trait Semantics {
    /// What `describe` returns. Built on each call: calls are rare and the
    /// value is small, and it keeps the component free of global state.
    fn descriptor() -> Descriptor;

    /// Where backup `backup_id` of `instance` is kept; `<instance>/<backup-id>`
    /// unless a provider lays its backups out otherwise.
    fn object_prefix(
        instance: &str,
        backup_id: &str,
        _kind: BackupKind,
        _started_unix_secs: i64,
    ) -> String {
        default_object_prefix(instance, backup_id)
    }
}

/// The exported adapter of a provider with semantics `S`.
pub struct Adapter<S>(PhantomData<S>);

impl<S: Semantics> Guest for Adapter<S> {
    fn describe() -> Descriptor {
        S::descriptor()
    }

    fn validate_policy(requested: Policy) -> Result<Policy, String> {
        validate_policy(&S::descriptor(), requested)
    }

    fn object_prefix(
        instance: String,
        backup_id: String,
        kind: BackupKind,
        started_unix_secs: i64,
    ) -> String {
        S::object_prefix(&instance, &backup_id, kind, started_unix_secs)
    }
}
