//! The outbound HTTP allow-list of a plugin instance, enforced in the
//! `wasi:http` send-request hook.
//!
//! A request passes only if its host and port match a grant from the config
//! (`allow_hosts` and the storage's endpoint settings). When the host is a
//! name, it is resolved here and every address it resolves to must be a
//! public one or be granted itself (an IP or CIDR grant), so a granted name
//! cannot be pointed at loopback, link-local or private addresses. The
//! request then goes to exactly the addresses checked (`http_connect`),
//! never to a second resolution of the name.
//!
//! Must not: connect anywhere itself (`http_connect` does, to the addresses
//! this module hands it).

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use http::uri::Scheme;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// One parsed grant.
#[derive(Debug, Clone, PartialEq, Eq)]
enum GrantHost {
    Name(String),
    Net(IpAddr, u8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Grant {
    host: GrantHost,
    /// `None` grants every port.
    port: Option<u16>,
}

/// The allow-list of one storage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    entries: Vec<Grant>,
}

impl Grants {
    /// Parses grants: `host`, `host:port`, `1.2.3.4`, `1.2.3.4:9000`,
    /// `[::1]:9000`, `10.0.0.0/8`, or a URL (`https://s3.example.com`, whose
    /// port defaults to the scheme's).
    pub fn parse(items: &[String]) -> Result<Grants, String> {
        let entries = items
            .iter()
            .map(|s| parse_grant(s))
            .collect::<Result<_, _>>()?;
        Ok(Grants { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn allows_name(&self, host: &str, port: u16) -> bool {
        self.entries.iter().any(|g| {
            matches!(&g.host, GrantHost::Name(n) if n.eq_ignore_ascii_case(host))
                && g.port.is_none_or(|p| p == port)
        })
    }

    /// Whether the address is granted by an IP or CIDR grant (any port when
    /// `port` is `None`).
    fn allows_ip(&self, ip: IpAddr, port: Option<u16>) -> bool {
        self.entries.iter().any(|g| match g.host {
            GrantHost::Net(net, bits) => {
                in_net(ip, net, bits) && (port.is_none() || g.port.is_none() || g.port == port)
            }
            GrantHost::Name(_) => false,
        })
    }
}

fn parse_grant(text: &str) -> Result<Grant, String> {
    let bad = |why: &str| format!("`{text}` is not a host grant: {why}");
    let (rest, default_port) = if let Some(r) = text.strip_prefix("https://") {
        (r, Some(443))
    } else if let Some(r) = text.strip_prefix("http://") {
        (r, Some(80))
    } else if text.contains("://") {
        return Err(bad("only http:// and https:// URLs are granted"));
    } else {
        (text, None)
    };
    // A URL's path is dropped; outside a URL a `/` introduces a CIDR length.
    let authority = if default_port.is_some() {
        rest.split(['/', '?', '#']).next().unwrap_or("")
    } else {
        rest
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(bad("write a host, host:port, IP, CIDR or URL"));
    }
    if let Some((net, bits)) = authority.split_once('/') {
        let ip: IpAddr = net
            .parse()
            .map_err(|_| bad("the network part is not an IP"))?;
        let bits: u8 = bits
            .parse()
            .map_err(|_| bad("the prefix length is not a number"))?;
        if bits > if ip.is_ipv4() { 32 } else { 128 } {
            return Err(bad("the prefix length is too long"));
        }
        return Ok(Grant {
            host: GrantHost::Net(ip, bits),
            port: None,
        });
    }
    let (host, port) = split_host_port(authority).ok_or_else(|| bad("the port is not a number"))?;
    let port = port.or(default_port);
    let host = match host.parse::<IpAddr>() {
        Ok(ip) => GrantHost::Net(ip, if ip.is_ipv4() { 32 } else { 128 }),
        Err(_)
            if !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') =>
        {
            GrantHost::Name(host.trim_end_matches('.').to_ascii_lowercase())
        }
        Err(_) => return Err(bad("the host name has characters a host name cannot have")),
    };
    Ok(Grant { host, port })
}

/// Splits `host[:port]`, `[v6][:port]` or a bare IPv6 address.
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(p) => Some((host, Some(p.parse().ok()?))),
            None if after.is_empty() => Some((host, None)),
            None => None,
        };
    }
    if s.matches(':').count() > 1 {
        return Some((s, None));
    }
    match s.split_once(':') {
        Some((h, p)) => Some((h, Some(p.parse().ok()?))),
        None => Some((s, None)),
    }
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V4(_)) => a
            .to_ipv4_mapped()
            .is_some_and(|v4| in_net(IpAddr::V4(v4), net, bits)),
        _ => false,
    }
}

/// Why an address is not public, if it is not.
fn special_address(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => {
            if a.is_loopback() {
                Some("a loopback address")
            } else if a.is_link_local() {
                Some("a link-local address")
            } else if a.is_private() || (a.octets()[0] == 100 && a.octets()[1] & 0xc0 == 64) {
                Some("a private address")
            } else if a.is_unspecified() || a.is_broadcast() || a.is_multicast() {
                Some("not a unicast address")
            } else {
                None
            }
        }
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return special_address(IpAddr::V4(v4));
            }
            if a.is_loopback() {
                Some("a loopback address")
            } else if a.is_unicast_link_local() {
                Some("a link-local address")
            } else if a.is_unique_local() {
                Some("a private address")
            } else if a.is_unspecified() || a.is_multicast() {
                Some("not a unicast address")
            } else {
                None
            }
        }
    }
}

/// Where a checked request may go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// An IP literal, granted by an IP or CIDR grant.
    Addr(SocketAddr),
    /// A granted name, whose addresses are still to be resolved and vetted.
    Name(String, u16),
}

/// Resolves a name and port to socket addresses: the system resolver, or in
/// unit tests, answers chosen by the test (the seam that lets a test hand
/// back link-local addresses no loopback DNS would give).
pub type Resolver = Arc<dyn Fn(String, u16) -> Resolving + Send + Sync>;

/// A resolution under way.
pub type Resolving = Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send>>;

fn system_resolver() -> Resolver {
    Arc::new(|name: String, port: u16| -> Resolving {
        Box::pin(async move {
            Ok(tokio::net::lookup_host((name.as_str(), port))
                .await?
                .collect())
        })
    })
}

/// Every address a granted name resolved to must be public or granted by
/// IP/CIDR; one that is not refuses the whole request (a resolver may
/// answer differently each time, so no answer is trusted in part). Returns
/// the addresses to connect to, or why not.
fn vet_resolved(grants: &Grants, name: &str, addrs: &[SocketAddr]) -> Result<(), String> {
    if addrs.is_empty() {
        return Err(format!("{name} resolves to no address"));
    }
    for addr in addrs {
        let ip = addr.ip();
        if let Some(what) = special_address(ip)
            && !grants.allows_ip(ip, None)
        {
            return Err(format!(
                "{name} resolves to {ip}, {what}, which is not granted; grant the address \
                 (e.g. allow_hosts = [\"{ip}\"]) if the plugin should reach it"
            ));
        }
    }
    Ok(())
}

/// The `wasi:http` hooks of one plugin instance.
#[derive(Clone)]
pub struct HttpGate {
    plugin: Arc<str>,
    /// `None` when the plugin did not ask for HTTP: everything is refused.
    grants: Option<Arc<Grants>>,
    resolver: Resolver,
    /// The last refusal, for the error the caller sees.
    denial: Arc<Mutex<Option<String>>>,
}

impl HttpGate {
    pub fn new(plugin: &str, grants: Option<Arc<Grants>>) -> HttpGate {
        HttpGate {
            plugin: plugin.into(),
            grants,
            resolver: system_resolver(),
            denial: Arc::default(),
        }
    }

    /// The addresses a checked target may be connected to: an IP literal
    /// as it is, a name resolved once and vetted.
    async fn addresses(&self, target: Target) -> Result<Vec<SocketAddr>, HttpError> {
        let (name, port) = match target {
            Target::Addr(addr) => return Ok(vec![addr]),
            Target::Name(name, port) => (name, port),
        };
        let addrs = (self.resolver)(name.clone(), port)
            .await
            .map_err(|_| HttpError::DestinationNotFound)?;
        let grants = self.grants.clone().unwrap_or_default();
        vet_resolved(&grants, &name, &addrs).map_err(|why| self.deny(why))?;
        Ok(addrs)
    }

    /// The last refusal since the previous call, if any.
    pub fn take_denial(&self) -> Option<String> {
        self.denial.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn deny(&self, why: String) -> HttpError {
        tracing::warn!(plugin = %self.plugin, "outbound HTTP refused: {why}");
        *self.denial.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
        HttpError::HttpRequestDenied
    }

    /// Checks the request's host and port against the grants.
    fn check_target(&self, uri: &http::Uri) -> Result<Target, HttpError> {
        let Some(grants) = &self.grants else {
            return Err(self.deny(format!(
                "request to {uri}: the plugin's plugin.toml does not ask for `http = true`"
            )));
        };
        let host = uri
            .host()
            .unwrap_or("")
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme() == Some(&Scheme::HTTPS) {
                443
            } else {
                80
            });
        let fix =
            "add it to `allow_hosts` of the storage in the config if the plugin should reach it";
        if let Ok(ip) = host.parse::<IpAddr>() {
            if grants.allows_ip(ip, Some(port)) {
                return Ok(Target::Addr(SocketAddr::new(ip, port)));
            }
            return Err(self.deny(format!(
                "{host}:{port} is not in the plugin's allow-list; {fix}"
            )));
        }
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        if grants.allows_name(&name, port) {
            return Ok(Target::Name(name, port));
        }
        Err(self.deny(format!(
            "{host}:{port} is not in the plugin's allow-list; {fix}"
        )))
    }
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
)>;

impl WasiHttpHooks for HttpGate {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        drop(fut);
        let checked = self.check_target(request.uri());
        let gate = self.clone();
        Box::new(async move {
            let addrs = gate.addresses(checked?).await?;
            let (response, io) = super::http_connect::send_to(request, options, &addrs).await?;
            Ok((
                response.map(super::read_ahead::wrap),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(items: &[&str]) -> HttpGate {
        let items: Vec<String> = items.iter().map(|s| s.to_string()).collect();
        HttpGate::new("t", Some(Arc::new(Grants::parse(&items).unwrap())))
    }

    fn allowed(g: &HttpGate, uri: &str) -> bool {
        g.check_target(&uri.parse().unwrap()).is_ok()
    }

    #[test]
    fn grants_match_host_and_port() {
        let g = gate(&[
            "https://s3.example.com",
            "minio.local:9000",
            "127.0.0.1:9100",
            "10.1.0.0/16",
        ]);
        assert!(allowed(&g, "https://s3.example.com/bucket/key"));
        assert!(
            !allowed(&g, "http://s3.example.com/bucket/key"),
            "port 80 was not granted"
        );
        assert!(allowed(&g, "http://MINIO.local:9000/x"));
        assert!(!allowed(&g, "http://minio.local:9001/x"));
        assert!(allowed(&g, "http://127.0.0.1:9100/"));
        assert!(!allowed(&g, "http://127.0.0.1:9101/"));
        assert!(!allowed(&g, "http://127.0.0.2:9100/"));
        assert!(allowed(&g, "http://10.1.200.3:1234/"));
        assert!(!allowed(&g, "http://10.2.0.1/"));
        assert!(!allowed(&g, "http://evil.example.com/"));
        assert!(!allowed(&g, "http://[::1]:9100/"));
    }

    #[test]
    fn no_http_capability_refuses_everything() {
        let g = HttpGate::new("t", None);
        assert!(!allowed(&g, "http://127.0.0.1/"));
        assert!(g.take_denial().unwrap().contains("http = true"));
    }

    #[test]
    fn bad_grants_are_refused() {
        for bad in ["ftp://x", "a b", "10.0.0.0/40", "host:port", "user@host"] {
            assert!(Grants::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn special_addresses_are_named() {
        assert_eq!(
            special_address("127.0.0.1".parse().unwrap()),
            Some("a loopback address")
        );
        assert_eq!(
            special_address("169.254.169.254".parse().unwrap()),
            Some("a link-local address")
        );
        assert_eq!(
            special_address("192.168.1.1".parse().unwrap()),
            Some("a private address")
        );
        assert_eq!(
            special_address("::ffff:127.0.0.1".parse().unwrap()),
            Some("a loopback address")
        );
        assert_eq!(special_address("93.184.216.34".parse().unwrap()), None);
    }

    /// A gate whose resolver answers `answers` for every name.
    fn gate_resolving(items: &[&str], answers: &[&str]) -> HttpGate {
        let answers: Vec<IpAddr> = answers.iter().map(|a| a.parse().unwrap()).collect();
        let mut g = gate(items);
        g.resolver = Arc::new(move |_name: String, port: u16| -> Resolving {
            let addrs = answers
                .iter()
                .map(|ip| SocketAddr::new(*ip, port))
                .collect();
            Box::pin(async move { Ok(addrs) })
        });
        g
    }

    async fn addresses_of(g: &HttpGate, uri: &str) -> Result<Vec<SocketAddr>, String> {
        let denial = |_| g.take_denial().unwrap_or_else(|| "no reason given".into());
        let target = g.check_target(&uri.parse().unwrap()).map_err(denial)?;
        g.addresses(target).await.map_err(denial)
    }

    #[tokio::test]
    async fn a_granted_name_resolving_to_link_local_is_refused() {
        for answer in ["169.254.169.254", "fe80::1", "::ffff:169.254.169.254"] {
            let g = gate_resolving(&["https://s3.example.com"], &[answer]);
            let why = addresses_of(&g, "https://s3.example.com/b/k")
                .await
                .unwrap_err();
            assert!(
                why.contains("s3.example.com resolves to") && why.contains("a link-local address"),
                "{answer}: {why}"
            );
        }
    }

    #[tokio::test]
    async fn one_special_answer_among_public_ones_refuses_the_request() {
        let g = gate_resolving(&["https://s3.example.com"], &["93.184.216.34", "127.0.0.1"]);
        let why = addresses_of(&g, "https://s3.example.com/")
            .await
            .unwrap_err();
        assert!(why.contains("127.0.0.1, a loopback address"), "{why}");
        let g = gate_resolving(&["https://s3.example.com"], &[]);
        let why = addresses_of(&g, "https://s3.example.com/")
            .await
            .unwrap_err();
        assert!(why.contains("resolves to no address"), "{why}");
    }

    #[tokio::test]
    async fn the_addresses_vetted_are_the_ones_connected_to() {
        let g = gate_resolving(
            &["https://s3.example.com"],
            &["93.184.216.34", "2606:2800::1"],
        );
        assert_eq!(
            addresses_of(&g, "https://s3.example.com/").await.unwrap(),
            vec![
                "93.184.216.34:443".parse::<SocketAddr>().unwrap(),
                "[2606:2800::1]:443".parse().unwrap()
            ]
        );
        // A link-local answer passes once its network is granted by CIDR.
        let g = gate_resolving(
            &["metadata.internal:80", "169.254.0.0/16"],
            &["169.254.169.254"],
        );
        assert_eq!(
            addresses_of(&g, "http://metadata.internal/").await.unwrap(),
            vec!["169.254.169.254:80".parse::<SocketAddr>().unwrap()]
        );
        // An IP literal is connected to as written, never resolved.
        let g = gate_resolving(&["10.1.0.0/16"], &["203.0.113.9"]);
        assert_eq!(
            addresses_of(&g, "http://10.1.2.3:9000/").await.unwrap(),
            vec!["10.1.2.3:9000".parse::<SocketAddr>().unwrap()]
        );
    }

    #[test]
    fn odd_spellings_of_a_loopback_ip_match_no_name_grant() {
        let g = gate(&["localhost:9000", "s3.example.com"]);
        for uri in [
            "http://127.0.0.1:9000/",
            "http://2130706433:9000/",
            "http://127.1:9000/",
            "http://0x7f.0.0.1:9000/",
            "http://017700000001:9000/",
            "http://[::ffff:127.0.0.1]:9000/",
            "http://[::1]:9000/",
            "http://localhost.:9001/",
        ] {
            assert!(!allowed(&g, uri), "{uri}");
        }
    }
}
