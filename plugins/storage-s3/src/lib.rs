//! storage-s3: backup objects in an S3 bucket, on AWS or any S3-compatible
//! service, through `wasi:http` with SigV4 signatures.
//!
//! The storage contract on an object store is written once in
//! `objstore::store`; this crate brings what is S3's own: the settings,
//! path-style or virtual-hosted addressing, SigV4 signing, and listing
//! with ListObjectsV2.

use objstore::bindings::redback::storage::types::Error;
use objstore::sigv4::{self, Credentials, Signer, UNSIGNED_PAYLOAD};
use objstore::store::backend::{Backend, Plugin};
use objstore::store::settings::{Addressing, Settings, check_bucket};
use objstore::store::{Client, Dialect, Endpoint, Outgoing};

/// S3's smallest part (all but the last).
const MIN_PART_MIB: u64 = 5;

struct S3 {
    credentials: Credentials,
    region: String,
}

impl S3 {
    fn signer<'a>(&'a self, amz_date: &'a str) -> Signer<'a> {
        Signer {
            credentials: &self.credentials,
            region: &self.region,
            service: "s3",
            amz_date,
        }
    }
}

impl Dialect for S3 {
    fn sign(&self, req: &mut Outgoing, now: u64) {
        let amz_date = sigv4::amz_date(now);
        req.headers.push(("x-amz-date".into(), amz_date.clone()));
        req.headers
            .push(("x-amz-content-sha256".into(), UNSIGNED_PAYLOAD.into()));
        // `host` is signed too; wasi:http sends it from the authority.
        let mut signed = req.headers.clone();
        signed.push(("host".into(), req.endpoint.authority.clone()));
        let auth = self.signer(&amz_date).authorization(&sigv4::Request {
            method: req.method,
            canonical_uri: req.path,
            query: req.query,
            headers: &signed,
            payload_hash: UNSIGNED_PAYLOAD,
        });
        req.headers.push(("authorization".into(), auth));
    }

    fn presign_get(&self, endpoint: &Endpoint, key: &str, ttl: u32, now: u64) -> String {
        let amz_date = sigv4::amz_date(now);
        self.signer(&amz_date)
            .presign("GET", &endpoint.path(key), &endpoint.authority, ttl, &[])
    }

    fn credentials_hint(&self) -> &'static str {
        "access_key_id and the secret access key"
    }
}

struct StorageS3;

impl Plugin for StorageS3 {
    const NAME: &'static str = "storage-s3";

    fn configure(s: &mut Settings) -> Result<Client, Error> {
        let bucket = s.required("bucket", "name the bucket backups go to")?;
        check_bucket(&bucket, 1..=63, true)?;
        let endpoints = s.endpoints(
            "https://s3.us-east-1.amazonaws.com",
            &bucket,
            Addressing::Path,
        )?;
        let region = s.take("region").unwrap_or_else(|| "us-east-1".into());
        let access_key = s.required("access_key_id", "set the access key ID of the credentials")?;
        let secret_key = s.secret("secret_access_key")?;
        Ok(Client {
            endpoints,
            part_size: s.part_size(MIN_PART_MIB)?,
            dialect: Box::new(S3 {
                credentials: Credentials {
                    access_key,
                    secret_key,
                },
                region,
            }),
        })
    }
}

type Component = Backend<StorageS3>;

objstore::bindings::export!(Component with_types_in objstore::bindings);
