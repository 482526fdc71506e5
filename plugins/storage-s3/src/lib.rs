//! storage-s3: backup objects in an S3 bucket, on AWS or any S3-compatible
//! service, through `wasi:http` with SigV4 signatures.
//!
//! This file owns the export glue and the small calls (stat, list, delete,
//! presign, downloads). Settings are in `config.rs`, request signing,
//! retries and error mapping in `client.rs`, uploads in `upload.rs`; what
//! the object-storage plugins share (signing, XML, HTTP) is the `objstore`
//! crate.

mod client;
mod config;
mod upload;

use std::cell::RefCell;
use std::rc::Rc;

use objstore::http::{self, Response};
use objstore::keys::{key_problem, prefix_problem, quoted};
use objstore::sigv4::{self, Signer};
use objstore::xml;

use client::Call;
use config::Config;
use exports::redback::storage::backend::{Download, Guest, GuestDownload, Network, Upload};
use redback::storage::types::{Error, ObjectMeta, Page};
use upload::S3Upload;

wit_bindgen::generate!({
    path: "../../wit/storage",
    world: "redback:storage/storage-backend",
});

struct StorageS3;

export!(StorageS3);

thread_local! {
    static CONFIG: RefCell<Option<Rc<Config>>> = const { RefCell::new(None) };
}

fn config() -> Result<Rc<Config>, Error> {
    CONFIG
        .with_borrow(|c| c.clone())
        .ok_or_else(|| Error::Other("storage-s3 was called before `configure` succeeded".into()))
}

fn check_key(key: &str) -> Result<(), Error> {
    key_problem(key).map_or(Ok(()), |p| Err(Error::InvalidKey(p)))
}

/// A download: the body of one ranged `GET`, read as the host asks.
pub(crate) struct S3Download {
    body: RefCell<Option<Response>>,
}

impl GuestDownload for S3Download {
    fn read(&self, max_bytes: u32) -> Result<Vec<u8>, Error> {
        let mut body = self.body.borrow_mut();
        let Some(r) = body.as_mut() else {
            return Ok(Vec::new());
        };
        let bytes = r.read(max_bytes as usize).map_err(|f| {
            Error::Unavailable(format!("reading an object from the bucket: {}", f.message))
        })?;
        if bytes.is_empty() {
            *body = None;
        }
        Ok(bytes)
    }
}

impl Guest for StorageS3 {
    type Upload = S3Upload;
    type Download = S3Download;

    fn configure(settings: Vec<(String, String)>) -> Result<(), Error> {
        let cfg = config::parse(settings)?;
        CONFIG.set(Some(Rc::new(cfg)));
        Ok(())
    }

    fn start_upload(key: String) -> Result<Upload, Error> {
        check_key(&key)?;
        Ok(Upload::new(S3Upload::start(config()?, key)))
    }

    fn open_download(key: String, offset: u64, length: Option<u64>) -> Result<Download, Error> {
        check_key(&key)?;
        let cfg = config()?;
        let empty = || {
            Download::new(S3Download {
                body: RefCell::new(None),
            })
        };
        if length == Some(0) {
            client::head(&cfg, &key)?;
            return Ok(empty());
        }
        let mut call = Call::new(format!("GET {}", quoted(&key)), "GET", &key);
        if offset > 0 || length.is_some() {
            let end = length.map_or(String::new(), |n| (offset + n - 1).to_string());
            call = call.header("range", format!("bytes={offset}-{end}"));
        }
        let r = call.expect(&cfg, &[200, 206, 416])?;
        if r.status == 416 {
            // The offset is at or past the end: an empty download.
            return Ok(empty());
        }
        Ok(Download::new(S3Download {
            body: RefCell::new(Some(r)),
        }))
    }

    fn stat(key: String) -> Result<ObjectMeta, Error> {
        check_key(&key)?;
        client::head(&*config()?, &key)
    }

    fn list(prefix: String, cursor: Option<String>, max_keys: u32) -> Result<Page, Error> {
        if let Some(p) = prefix_problem(&prefix) {
            return Err(Error::InvalidKey(p));
        }
        let cfg = config()?;
        let what = format!("listing {}", quoted(&prefix));
        let mut call = Call::new(what.clone(), "GET", "")
            .query("list-type", "2")
            .query("prefix", prefix.as_str())
            .query("max-keys", max_keys.clamp(1, 1000).to_string());
        // Start after the last key seen, not at a continuation token: the
        // contract's cursor survives inserts and deletes between pages.
        if let Some(c) = cursor {
            call = call.query("start-after", c);
        }
        let mut r = call.expect(&cfg, &[200])?;
        let body = r
            .read_all(16 << 20)
            .map_err(|f| Error::Unavailable(format!("{what}: {}", f.message)))?;
        let body = String::from_utf8_lossy(&body);
        let mut objects = Vec::new();
        for c in xml::elements(&body, "Contents") {
            let key = xml::text(c, "Key")
                .ok_or_else(|| Error::Other(format!("{what}: an entry without <Key>")))?;
            objects.push(ObjectMeta {
                size_bytes: xml::text(c, "Size")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
                modified_unix_ms: xml::text(c, "LastModified")
                    .and_then(|t| objstore::time::parse_iso8601(&t))
                    .unwrap_or(0),
                etag: xml::text(c, "ETag"),
                key,
            });
        }
        if objects.len() > max_keys as usize {
            return Err(Error::Other(format!(
                "{what}: the service returned {} objects for a page of {max_keys}",
                objects.len()
            )));
        }
        let truncated = xml::text(&body, "IsTruncated").as_deref() == Some("true");
        let next_cursor = match objects.last() {
            Some(last) if truncated => Some(last.key.clone()),
            _ => None,
        };
        Ok(Page {
            objects,
            next_cursor,
        })
    }

    fn delete(key: String) -> Result<(), Error> {
        check_key(&key)?;
        Call::new(format!("DELETE {}", quoted(&key)), "DELETE", &key)
            .expect(&*config()?, &[200, 204, 404])?;
        Ok(())
    }

    fn presign_get(
        key: String,
        ttl_seconds: u32,
        network: Network,
    ) -> Result<Option<String>, Error> {
        check_key(&key)?;
        let cfg = config()?;
        client::head(&cfg, &key)?;
        let ep = match network {
            Network::Internal => &cfg.internal,
            Network::Public => &cfg.public,
        };
        let (authority, path) = client::locate(&cfg, ep, &key);
        let amz_date = sigv4::amz_date(http::now_unix_secs());
        let signer = Signer {
            credentials: &cfg.credentials,
            region: &cfg.region,
            service: "s3",
            amz_date: &amz_date,
        };
        // S3 accepts at most 7 days.
        let ttl = ttl_seconds.clamp(1, 7 * 24 * 3600);
        let query = signer.presign("GET", &path, &authority, ttl, &[]);
        let scheme = if ep.https { "https" } else { "http" };
        Ok(Some(format!("{scheme}://{authority}{path}?{query}")))
    }
}
