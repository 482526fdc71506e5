//! Reading a storage's settings: every plugin takes the keys it knows, the
//! shared ones (endpoints, part size) are parsed here, and whatever is left
//! is refused by name with the list of keys the plugin accepts.

use crate::bindings::redback::storage::types::Error;

use super::Endpoint;

/// The largest part: a part is held in memory while it is sent, and the
/// plugins' memory grants assume at most this much.
pub const MAX_PART_MIB: u64 = 64;
/// The part size when the config names none.
pub const DEFAULT_PART_MIB: u64 = 16;

pub struct Settings {
    plugin: &'static str,
    items: Vec<(String, String)>,
    known: Vec<&'static str>,
}

pub fn invalid(m: String) -> Error {
    Error::InvalidConfig(m)
}

impl Settings {
    pub fn new(plugin: &'static str, items: Vec<(String, String)>) -> Settings {
        Settings {
            plugin,
            items,
            known: Vec::new(),
        }
    }

    /// The value of `key`, if set.
    pub fn take(&mut self, key: &'static str) -> Option<String> {
        self.known.push(key);
        let at = self.items.iter().position(|(k, _)| k == key)?;
        Some(self.items.swap_remove(at).1)
    }

    /// The value of `key`, or an error saying what to set.
    pub fn required(&mut self, key: &'static str, hint: &str) -> Result<String, Error> {
        self.take(key)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| invalid(format!("setting `{key}` is missing; {hint}")))
    }

    /// A secret the host resolved from `<key>_env` or `<key>_file`.
    pub fn secret(&mut self, key: &'static str) -> Result<String, Error> {
        let hint = format!("set {key}_env = \"VAR\" or {key}_file = \"path\"");
        self.required(key, &hint)
    }

    /// An endpoint URL: `https://host[:port]`, no path.
    pub fn endpoint(
        &mut self,
        key: &'static str,
        example: &str,
    ) -> Result<Option<Endpoint>, Error> {
        let Some(value) = self.take(key) else {
            return Ok(None);
        };
        let (https, rest) = match value.split_once("://") {
            Some(("https", rest)) => (true, rest),
            Some(("http", rest)) => (false, rest),
            _ => {
                return Err(invalid(format!(
                    "setting `{key}` is {value:?}; write the service URL, e.g. \"{example}\""
                )));
            }
        };
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') || authority.contains('@') {
            return Err(invalid(format!(
                "setting `{key}` is {value:?}; give only scheme, host and port (no path, no user)"
            )));
        }
        Ok(Some(Endpoint {
            https,
            authority: authority.to_string(),
            prefix: String::new(),
        }))
    }

    /// `part_size_mib` in bytes: from `min_mib` (the service's smallest
    /// part) to [`MAX_PART_MIB`].
    pub fn part_size(&mut self, min_mib: u64) -> Result<usize, Error> {
        let Some(value) = self.take("part_size_mib") else {
            return Ok((DEFAULT_PART_MIB << 20) as usize);
        };
        let mib = value
            .parse()
            .ok()
            .filter(|n| (min_mib..=MAX_PART_MIB).contains(n))
            .ok_or_else(|| {
                invalid(format!(
                    "setting `part_size_mib` is {value:?}; use a whole number from {min_mib} to {MAX_PART_MIB}"
                ))
            })?;
        Ok((mib << 20) as usize)
    }

    /// Refuses any setting no `take` asked for. The value is not echoed:
    /// it may be a resolved secret.
    pub fn finish(self) -> Result<(), Error> {
        match self.items.first() {
            None => Ok(()),
            Some((key, _)) => Err(invalid(format!(
                "unknown setting `{key}`; {} accepts {}",
                self.plugin,
                self.known.join(", ")
            ))),
        }
    }
}

/// How the bucket is addressed on an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// `bucket.host/key`: the services' own form.
    Virtual,
    /// `host/bucket/key` (S3).
    Path,
    /// `host/key`: the endpoint is the bucket's own address (a proxy, a
    /// custom domain, a test server).
    Endpoint,
}

impl Addressing {
    /// `endpoint` addressing `bucket` this way.
    pub fn apply(self, endpoint: Endpoint, bucket: &str) -> Endpoint {
        match self {
            Addressing::Virtual => Endpoint {
                authority: format!("{bucket}.{}", endpoint.authority),
                ..endpoint
            },
            Addressing::Path => Endpoint {
                prefix: format!("/{bucket}"),
                ..endpoint
            },
            Addressing::Endpoint => endpoint,
        }
    }
}

/// Whether the host of `authority` is an IP address or `localhost`, where
/// a virtual-hosted name cannot resolve.
pub fn is_ip_or_localhost(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        return rest.contains(']');
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    host == "localhost" || host.parse::<std::net::Ipv4Addr>().is_ok()
}

/// A bucket's endpoints: where requests go, and where download links
/// point on each network.
pub struct Endpoints {
    pub endpoint: Endpoint,
    pub internal: Endpoint,
    pub public: Endpoint,
}

impl Settings {
    /// `endpoint` (required; `example` shows the form), `internal_endpoint`
    /// and `public_endpoint` (both default to `endpoint`), and
    /// `addressing`, applied to `bucket`; `other` is the service's
    /// alternative to virtual-hosted names (see [`Settings::addressing`]).
    pub fn endpoints(
        &mut self,
        example: &str,
        bucket: &str,
        other: Addressing,
    ) -> Result<Endpoints, Error> {
        let endpoint = self.endpoint("endpoint", example)?;
        let internal = self.endpoint("internal_endpoint", example)?;
        let public = self.endpoint("public_endpoint", example)?;
        let endpoint = endpoint.ok_or_else(|| {
            invalid(format!(
                "setting `endpoint` is missing; set the service URL, e.g. endpoint = \"{example}\" \
                 (the bucket is added to the host name)"
            ))
        })?;
        let addressing = self.addressing(&endpoint, other)?;
        let address = |ep: Endpoint| addressing.apply(ep, bucket);
        Ok(Endpoints {
            internal: address(internal.unwrap_or_else(|| endpoint.clone())),
            public: address(public.unwrap_or_else(|| endpoint.clone())),
            endpoint: address(endpoint),
        })
    }

    /// The `addressing` setting: `"virtual"` or `other` (`"path"` or
    /// `"endpoint"`), by default `other` for an IP address or
    /// `localhost` and `"virtual"` for a name.
    pub fn addressing(
        &mut self,
        endpoint: &Endpoint,
        other: Addressing,
    ) -> Result<Addressing, Error> {
        let other_name = match other {
            Addressing::Path => "path",
            _ => "endpoint",
        };
        match self.take("addressing") {
            None if is_ip_or_localhost(&endpoint.authority) => Ok(other),
            None => Ok(Addressing::Virtual),
            Some(v) if v == "virtual" => Ok(Addressing::Virtual),
            Some(v) if v == other_name => Ok(other),
            Some(v) => Err(invalid(format!(
                "setting `addressing` is {v:?}; use \"virtual\" or \"{other_name}\""
            ))),
        }
    }
}

/// Checks a bucket name: `lengths` characters of lower-case letters,
/// digits and `-` (and `.` when `dots`), not starting or ending with `-`.
pub fn check_bucket(
    bucket: &str,
    lengths: std::ops::RangeInclusive<usize>,
    dots: bool,
) -> Result<(), Error> {
    let ok = lengths.contains(&bucket.len())
        && bucket.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || (dots && b == b'.')
        })
        && !bucket.starts_with('-')
        && !bucket.ends_with('-');
    if ok {
        return Ok(());
    }
    let chars = if dots {
        "lower-case letters, digits, `-` and `.`"
    } else {
        "lower-case letters, digits and `-`"
    };
    Err(invalid(format!(
        "setting `bucket` is {bucket:?}; bucket names are {} to {} {chars}, \
         not starting or ending with `-`",
        lengths.start(),
        lengths.end()
    )))
}
