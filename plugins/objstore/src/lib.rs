//! objstore: what the object-storage plugins (S3, COS, OSS) share, so that
//! nothing is copied between them.
//!
//! - `uri`: percent-encoding as the signature schemes define it;
//! - `sigv4`: AWS Signature Version 4, header and presigned-query forms;
//! - `keys`: the storage contract's key rules (storage-local uses them too);
//! - `time`: the timestamps services send;
//! - `xml`: reading the small XML documents the services answer with;
//! - `http`: blocking HTTP/1.1 requests over `wasi:http`, with
//!   streamed response bodies, and the retry loop with backoff.
//!
//! The pure modules are tested natively (`cargo test -p objstore`) against
//! the vendors' published worked examples.

pub mod cos;
pub mod hash;
pub mod keys;
pub mod ossv4;
pub mod sigv4;
pub mod time;
pub mod uri;
pub mod xml;

pub mod http;
