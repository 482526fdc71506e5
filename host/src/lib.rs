//! redback: backs up and restores Redis; storage backends and provider
//! semantics are WebAssembly components.
//!
//! The code map and invariants are in ARCHITECTURE.md at the repository root.
//! Only `plugin` knows about wasmtime; the rest sees the `storage::Storage`
//! and `provider::Provider` traits.

pub mod api;
pub mod backup;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod crypt;
pub mod daemon;
pub mod links;
pub mod metrics;
pub mod pipe;
pub mod plugin;
pub mod provider;
pub mod rdb;
pub mod replication;
pub mod restore;
pub mod schedule;
pub mod storage;
pub mod tasks;
