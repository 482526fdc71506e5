//! storage-cos: backup objects in a Tencent Cloud COS bucket, through
//! `wasi:http` with COS's own request signature (`q-sign-algorithm=sha1`).
//!
//! The storage contract on an object store is written once in
//! `objstore::store`; this crate brings what is COS's own: the settings,
//! the signature (over the decoded path, every query parameter and every
//! header sent, `host` included), and marker-based listing (COS's
//! `GET Bucket`).

use objstore::bindings::redback::storage::types::Error;
use objstore::cos::{Request, Signer};
use objstore::sigv4::Credentials;
use objstore::store::backend::{Backend, Plugin};
use objstore::store::settings::{Addressing, Settings, check_bucket, invalid};
use objstore::store::{Client, Dialect, Endpoint, Outgoing};

/// COS's smallest part (all but the last).
const MIN_PART_MIB: u64 = 1;
/// How long a request signature stays valid: long enough for a slow part
/// to start, short enough that a captured header is soon useless.
const REQUEST_SIGNATURE_SECS: u64 = 15 * 60;
/// Clocks differ: a signature is valid from this long before now.
const CLOCK_SKEW_SECS: u64 = 60;

struct Cos {
    credentials: Credentials,
}

impl Cos {
    fn signer(&self, now: u64, valid_secs: u64) -> Signer<'_> {
        Signer {
            credentials: &self.credentials,
            start: now.saturating_sub(CLOCK_SKEW_SECS),
            end: now + valid_secs,
        }
    }
}

/// The path COS signs: the key decoded, after `/` (the bucket is in the
/// host name).
fn signed_path(key: &str) -> String {
    format!("/{key}")
}

impl Dialect for Cos {
    fn sign(&self, req: &mut Outgoing, now: u64) {
        let mut signed = req.headers.clone();
        signed.push(("host".into(), req.endpoint.authority.clone()));
        let auth = self
            .signer(now, REQUEST_SIGNATURE_SECS)
            .authorization(&Request {
                method: req.method,
                path: &signed_path(req.key),
                params: req.query,
                headers: &signed,
            });
        req.headers.push(("authorization".into(), auth));
    }

    fn presign_get(&self, endpoint: &Endpoint, key: &str, ttl: u32, now: u64) -> String {
        let headers = [("host".to_string(), endpoint.authority.clone())];
        self.signer(now, u64::from(ttl)).presign_query(&Request {
            method: "GET",
            path: &signed_path(key),
            params: &[],
            headers: &headers,
        })
    }

    fn list_query(&self, prefix: &str, after: Option<&str>, max: u32) -> Vec<(String, String)> {
        let mut q = vec![
            ("prefix".to_string(), prefix.to_string()),
            ("max-keys".to_string(), max.to_string()),
        ];
        // `marker`: list the keys after this one.
        if let Some(after) = after {
            q.push(("marker".into(), after.into()));
        }
        q
    }

    fn credentials_hint(&self) -> &'static str {
        "secret_id and the secret key"
    }
}

/// `<name>-<appid>`: COS bucket names end with the account's APPID.
fn check_cos_bucket(bucket: &str) -> Result<(), Error> {
    check_bucket(bucket, 1..=50, false)?;
    match bucket.rsplit_once('-') {
        Some((name, appid))
            if !name.is_empty()
                && !appid.is_empty()
                && appid.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Ok(())
        }
        _ => Err(invalid(format!(
            "setting `bucket` is {bucket:?}; COS bucket names are `<name>-<APPID>`, \
             e.g. \"backups-1250000000\""
        ))),
    }
}

struct StorageCos;

impl Plugin for StorageCos {
    const NAME: &'static str = "storage-cos";

    fn configure(s: &mut Settings) -> Result<Client, Error> {
        let bucket = s.required(
            "bucket",
            "name the bucket backups go to, with its APPID, e.g. bucket = \"backups-1250000000\"",
        )?;
        check_cos_bucket(&bucket)?;
        let endpoints = s.endpoints(
            "https://cos.ap-guangzhou.myqcloud.com",
            &bucket,
            Addressing::Endpoint,
        )?;
        let access_key = s.required("secret_id", "set the SecretId of the API key")?;
        let secret_key = s.secret("secret_key")?;
        Ok(Client {
            endpoints,
            part_size: s.part_size(MIN_PART_MIB)?,
            dialect: Box::new(Cos {
                credentials: Credentials {
                    access_key,
                    secret_key,
                },
            }),
        })
    }
}

type Component = Backend<StorageCos>;

objstore::bindings::export!(Component with_types_in objstore::bindings);
