//! objstore: what the object-storage plugins (S3, COS, OSS) share, so that
//! nothing is copied between them.
//!
//! - `uri`: percent-encoding as the signature schemes define it;
//! - `sigv4`: AWS Signature Version 4, header and presigned-query forms;
//! - `keys`: the storage contract's key rules (storage-local uses them too);
//! - `time`: the timestamps services send;
//! - `xml`: reading the small XML documents the services answer with;
//! - `uploads`: reading a ListMultipartUploads page;
//! - `cos`, `ossv4`: Tencent COS and Alibaba OSS V4 signatures;
//! - `http`: blocking HTTP/1.1 requests over `wasi:http`, with
//!   streamed response bodies, and the retry loop with backoff;
//! - `store`: the storage contract on an object store, written once: a
//!   plugin adds a `Dialect` (signing and a few service differences) and
//!   the reading of its settings.
//!
//! The pure modules are tested natively (`cargo test -p objstore`) against
//! the vendors' published worked examples.

pub mod cos;
pub mod hash;
pub mod keys;
pub mod ossv4;
pub mod sigv4;
pub mod time;
pub mod uploads;
pub mod uri;
pub mod xml;

#[cfg(feature = "store")]
pub mod http;
#[cfg(feature = "store")]
pub mod store;

/// The bindings of the storage contract (`wit/storage`), shared by the
/// plugins: each exports its backend with
/// `objstore::bindings::export!(Component with_types_in objstore::bindings)`.
#[cfg(feature = "store")]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/storage",
        world: "redback:storage/storage-backend",
        pub_export_macro: true,
        default_bindings_module: "objstore::bindings",
    });
}
