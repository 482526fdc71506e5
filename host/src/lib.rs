//! redback: backs up and restores Redis; storage backends and provider
//! semantics are WebAssembly components.
//!
//! The code map and invariants are in ARCHITECTURE.md at the repository root.
//! Only `plugin` knows about wasmtime; the rest sees the `storage::Storage`
//! and `provider::Provider` traits.
//!
//! The default feature `daemon` holds the modules marked with it and the
//! crates only they use (wasmtime, SQLite, axum, clap, ...). The rest must
//! build without it: the fuzz targets in fuzz/ build it that way.

#[cfg(feature = "daemon")]
pub mod api;
pub mod backup;
#[cfg(feature = "daemon")]
pub mod catalog;
#[cfg(feature = "daemon")]
pub mod cli;
pub mod config;
pub mod crash_point;
pub mod crypt;
#[cfg(feature = "daemon")]
pub mod daemon;
pub mod data_runtime;
#[cfg(feature = "daemon")]
pub mod links;
#[cfg(feature = "daemon")]
pub mod metrics;
pub mod pipe;
#[cfg(feature = "daemon")]
pub mod plugin;
pub mod provider;
pub mod rdb;
pub mod replication;
pub mod restore;
#[cfg(feature = "daemon")]
pub mod schedule;
pub mod storage;
#[cfg(feature = "daemon")]
pub mod tasks;
