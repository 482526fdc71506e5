//! storage-oss: backup objects in an Alibaba Cloud OSS bucket, through
//! `wasi:http` with OSS signature version 4 (`OSS4-HMAC-SHA256`).
//!
//! The storage contract on an object store is written once in
//! `objstore::store`; this crate brings what is OSS's own: the settings,
//! the V4 signature (whose canonical URI always names the bucket), ranges
//! with `x-oss-range-behavior: standard`, and ListObjectsV2.

use objstore::bindings::redback::storage::types::Error;
use objstore::ossv4::{Request, Signer};
use objstore::sigv4::{Credentials, UNSIGNED_PAYLOAD};
use objstore::store::backend::{Backend, Plugin};
use objstore::store::settings::{Addressing, Settings, check_bucket, invalid};
use objstore::store::{Client, Dialect, Endpoint, Outgoing};
use objstore::time;

/// The smallest part size in whole MiB (OSS takes parts from 100 KiB).
const MIN_PART_MIB: u64 = 1;

struct Oss {
    credentials: Credentials,
    bucket: String,
    region: String,
}

impl Oss {
    fn signer<'a>(&'a self, date: &'a str) -> Signer<'a> {
        Signer {
            credentials: &self.credentials,
            region: &self.region,
            date,
        }
    }
}

impl Dialect for Oss {
    fn sign(&self, req: &mut Outgoing, now: u64) {
        let date = time::compact(now);
        req.headers.push(("x-oss-date".into(), date.clone()));
        req.headers
            .push(("x-oss-content-sha256".into(), UNSIGNED_PAYLOAD.into()));
        let auth = self.signer(&date).authorization(&Request {
            method: req.method,
            bucket: &self.bucket,
            key: req.key,
            query: req.query,
            headers: &req.headers,
            additional: &[],
        });
        req.headers.push(("authorization".into(), auth));
    }

    fn presign_get(&self, _endpoint: &Endpoint, key: &str, ttl: u32, now: u64) -> String {
        let date = time::compact(now);
        self.signer(&date).presign(
            &Request {
                method: "GET",
                bucket: &self.bucket,
                key,
                query: &[],
                headers: &[],
                additional: &[],
            },
            ttl,
        )
    }

    fn range_headers(&self) -> Vec<(String, String)> {
        // Without it OSS answers a range past the end with the whole
        // object (200) instead of 416.
        vec![("x-oss-range-behavior".into(), "standard".into())]
    }

    fn credentials_hint(&self) -> &'static str {
        "access_key_id and the access key secret"
    }
}

struct StorageOss;

impl Plugin for StorageOss {
    const NAME: &'static str = "storage-oss";

    fn configure(s: &mut Settings) -> Result<Client, Error> {
        let bucket = s.required("bucket", "name the bucket backups go to")?;
        check_bucket(&bucket, 3..=63, false)?;
        let endpoints = s.endpoints(
            "https://oss-cn-hangzhou.aliyuncs.com",
            &bucket,
            Addressing::Endpoint,
        )?;
        let region = s.required(
            "region",
            "set the bucket's region as the signature names it, e.g. region = \"cn-hangzhou\"",
        )?;
        if let Some(bare) = region.strip_prefix("oss-") {
            return Err(invalid(format!(
                "setting `region` is {region:?}; write it without `oss-`: region = \"{bare}\""
            )));
        }
        let access_key = s.required("access_key_id", "set the AccessKey ID")?;
        let secret_key = s.secret("access_key_secret")?;
        Ok(Client {
            endpoints,
            part_size: s.part_size(MIN_PART_MIB)?,
            dialect: Box::new(Oss {
                credentials: Credentials {
                    access_key,
                    secret_key,
                },
                bucket,
                region,
            }),
        })
    }
}

type Component = Backend<StorageOss>;

objstore::bindings::export!(Component with_types_in objstore::bindings);
