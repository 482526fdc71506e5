//! The settings of one instance, checked once in `configure`.

use objstore::sigv4::Credentials;

use crate::redback::storage::types::Error;

/// S3's smallest part (all but the last).
const MIN_PART_MIB: u64 = 5;
/// Bounded by the plugin's memory grant: one part is held at a time.
const MAX_PART_MIB: u64 = 64;

/// Where one endpoint is and how to address it.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) https: bool,
    /// `host[:port]`.
    pub(crate) authority: String,
}

#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) endpoint: Endpoint,
    pub(crate) internal: Endpoint,
    pub(crate) public: Endpoint,
    pub(crate) bucket: String,
    pub(crate) region: String,
    pub(crate) credentials: Credentials,
    /// `https://host/bucket/key` instead of `https://bucket.host/key`.
    pub(crate) path_style: bool,
    pub(crate) part_size: usize,
}

const KNOWN: &str = "endpoint, internal_endpoint, public_endpoint, bucket, region, \
                     access_key_id, secret_access_key (as secret_access_key_env or _file), \
                     addressing, part_size_mib";

fn invalid(m: String) -> Error {
    Error::InvalidConfig(m)
}

fn parse_endpoint(key: &str, value: &str) -> Result<Endpoint, Error> {
    let (https, rest) = match value.split_once("://") {
        Some(("https", rest)) => (true, rest),
        Some(("http", rest)) => (false, rest),
        _ => {
            return Err(invalid(format!(
                "setting `{key}` is {value:?}; write the service URL, e.g. \"https://s3.us-east-1.amazonaws.com\""
            )));
        }
    };
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') || authority.contains('@') {
        return Err(invalid(format!(
            "setting `{key}` is {value:?}; give only scheme, host and port (no path, no user)"
        )));
    }
    Ok(Endpoint {
        https,
        authority: authority.to_string(),
    })
}

/// Whether the host of `authority` is an IP address or `localhost`, where
/// virtual-hosted names cannot resolve.
fn is_ip_or_localhost(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        return rest.contains(']');
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    host == "localhost" || host.parse::<std::net::Ipv4Addr>().is_ok()
}

pub(crate) fn parse(settings: Vec<(String, String)>) -> Result<Config, Error> {
    let mut endpoint = None;
    let mut internal = None;
    let mut public = None;
    let mut bucket = None;
    let mut region = "us-east-1".to_string();
    let mut access_key = None;
    let mut secret_key = None;
    let mut addressing = None;
    let mut part_mib = 16u64;
    for (key, value) in settings {
        match key.as_str() {
            "endpoint" => endpoint = Some(parse_endpoint(&key, &value)?),
            "internal_endpoint" => internal = Some(parse_endpoint(&key, &value)?),
            "public_endpoint" => public = Some(parse_endpoint(&key, &value)?),
            "bucket" => bucket = Some(value),
            "region" => region = value,
            "access_key_id" => access_key = Some(value),
            "secret_access_key" => secret_key = Some(value),
            "addressing" => {
                addressing = Some(match value.as_str() {
                    "path" => true,
                    "virtual" => false,
                    _ => {
                        return Err(invalid(format!(
                            "setting `addressing` is {value:?}; use \"path\" or \"virtual\""
                        )));
                    }
                })
            }
            "part_size_mib" => {
                part_mib = value
                    .parse()
                    .ok()
                    .filter(|n| (MIN_PART_MIB..=MAX_PART_MIB).contains(n))
                    .ok_or_else(|| {
                        invalid(format!(
                            "setting `part_size_mib` is {value:?}; use a whole number from {MIN_PART_MIB} to {MAX_PART_MIB}"
                        ))
                    })?;
            }
            // The value is not echoed: it may be a resolved secret.
            _ => {
                return Err(invalid(format!(
                    "unknown setting `{key}`; storage-s3 accepts {KNOWN}"
                )));
            }
        }
    }
    let missing = |k: &str, hint: &str| invalid(format!("setting `{k}` is missing; {hint}"));
    let endpoint = endpoint.ok_or_else(|| {
        missing(
            "endpoint",
            "set the service URL, e.g. endpoint = \"https://s3.us-east-1.amazonaws.com\"",
        )
    })?;
    let bucket = bucket.ok_or_else(|| missing("bucket", "name the bucket backups go to"))?;
    if bucket.is_empty()
        || bucket.len() > 63
        || !bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return Err(invalid(format!(
            "setting `bucket` is {bucket:?}; bucket names are 1 to 63 lower-case letters, digits, `-` and `.`"
        )));
    }
    let access_key = access_key
        .ok_or_else(|| missing("access_key_id", "set the access key ID of the credentials"))?;
    let secret_key = secret_key.ok_or_else(|| {
        missing(
            "secret_access_key",
            "set secret_access_key_env = \"VAR\" or secret_access_key_file = \"path\"",
        )
    })?;
    let path_style = addressing.unwrap_or_else(|| is_ip_or_localhost(&endpoint.authority));
    Ok(Config {
        internal: internal.unwrap_or_else(|| endpoint.clone()),
        public: public.unwrap_or_else(|| endpoint.clone()),
        endpoint,
        bucket,
        region,
        credentials: Credentials {
            access_key,
            secret_key,
        },
        path_style,
        part_size: (part_mib << 20) as usize,
    })
}
