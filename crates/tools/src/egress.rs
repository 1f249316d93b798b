//! The egress policy of outbound HTTP from tools (design §10): which URLs and addresses a
//! tool may reach. It refuses non-HTTP schemes, hosts on `tools.http.deny`, the cloud
//! metadata addresses (always), and — unless `tools.http.allow_private` or the host is on
//! `tools.http.allow` — loopback, private, link-local, shared (CGNAT), unspecified,
//! multicast and reserved addresses.
//!
//! Names are checked on the addresses they *resolve to*, inside the HTTP client's resolver
//! ([`GuardedResolver`]): the client connects only to addresses that passed, so a DNS answer
//! that changes between a check and the connection (rebinding) cannot slip through. Literal
//! addresses never reach a resolver, so [`EgressPolicy::check_url`] checks them, for the
//! first URL and every redirect.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use coworker_core::config::HttpFetchConfig;
use coworker_core::coworker::glob_matches;
use futures::future::BoxFuture;

/// Addresses refused even with `allow_private` or an `allow` entry: cloud instance
/// metadata services, which hand out credentials. AWS/GCP/Azure/OpenStack
/// (169.254.169.254), AWS over IPv6 (fd00:ec2::254), AWS ECS task credentials
/// (169.254.170.2), Alibaba Cloud (100.100.100.200).
pub const METADATA_ADDRESSES: &[IpAddr] = &[
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
    IpAddr::V4(Ipv4Addr::new(169, 254, 170, 2)),
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
];

/// Why a URL or address may not be reached. Displays as `refused: …`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused: {0}")]
pub struct EgressRefusal(pub String);

/// What kind of address an IP is, for the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// Routable on the internet.
    Public,
    /// A cloud metadata address ([`METADATA_ADDRESSES`]).
    Metadata,
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 0.0.0.0, ::.
    Unspecified,
    /// 10/8, 172.16/12, 192.168/16, fc00::/7.
    Private,
    /// 169.254/16, fe80::/10.
    LinkLocal,
    /// 100.64/10, carrier-grade NAT.
    Shared,
    /// Multicast, broadcast, 0/8, 240/4 and other ranges no web server lives on.
    Reserved,
}

impl AddressClass {
    fn describe(self) -> &'static str {
        match self {
            AddressClass::Public => "a public address",
            AddressClass::Metadata => "a cloud metadata address",
            AddressClass::Loopback => "a loopback address",
            AddressClass::Unspecified => "the unspecified address",
            AddressClass::Private => "a private address",
            AddressClass::LinkLocal => "a link-local address",
            AddressClass::Shared => "a shared (carrier-grade NAT) address",
            AddressClass::Reserved => "a reserved or multicast address",
        }
    }
}

/// Classifies an address. IPv4 embedded in IPv6 (mapped `::ffff:a.b.c.d`, NAT64
/// `64:ff9b::/96`, 6to4 `2002::/16`) is classified as the IPv4 address it carries.
pub fn classify(ip: IpAddr) -> AddressClass {
    if METADATA_ADDRESSES.contains(&ip) {
        return AddressClass::Metadata;
    }
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                let class = classify(IpAddr::V4(v4));
                return class;
            }
            let segments = v6.segments();
            if v6.is_loopback() {
                AddressClass::Loopback
            } else if v6.is_unspecified() {
                AddressClass::Unspecified
            } else if segments[0] & 0xfe00 == 0xfc00 {
                AddressClass::Private
            } else if segments[0] & 0xffc0 == 0xfe80 {
                AddressClass::LinkLocal
            } else if v6.is_multicast() || segments[..6] == [0; 6] {
                // ::/96 (IPv4-compatible, deprecated) carries no routable destination.
                AddressClass::Reserved
            } else {
                AddressClass::Public
            }
        }
    }
}

fn classify_v4(v4: Ipv4Addr) -> AddressClass {
    let [a, b, ..] = v4.octets();
    if v4.is_loopback() {
        AddressClass::Loopback
    } else if v4.is_unspecified() {
        AddressClass::Unspecified
    } else if v4.is_private() {
        AddressClass::Private
    } else if v4.is_link_local() {
        AddressClass::LinkLocal
    } else if a == 100 && (64..128).contains(&b) {
        AddressClass::Shared
    } else if a == 0 || a >= 224 || v4.is_broadcast() {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let from = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(from(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return Some(from(s[1], s[2]));
    }
    None
}

/// The egress policy of `tools.http`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EgressPolicy {
    allow: Vec<String>,
    deny: Vec<String>,
    allow_private: bool,
}

impl EgressPolicy {
    /// The policy a configuration describes. Host globs match case-insensitively.
    pub fn from_config(config: &HttpFetchConfig) -> Self {
        let normalise = |globs: &[String]| globs.iter().map(|g| normalise_host(g)).collect();
        EgressPolicy {
            allow: normalise(&config.allow),
            deny: normalise(&config.deny),
            allow_private: config.allow_private,
        }
    }

    /// Checks a URL before any connection: its scheme, its host against the deny list, and
    /// a literal address against the address rules. Host names are checked again on what
    /// they resolve to, at connect time ([`GuardedResolver`]).
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), EgressRefusal> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(EgressRefusal(format!(
                "only http and https URLs can be fetched, not {}:",
                url.scheme()
            )));
        }
        let Some(host) = url.host_str() else {
            return Err(EgressRefusal(format!("{url} has no host")));
        };
        // The URL parser has already turned every IPv4 spelling (decimal, hex, short) into
        // dotted form, and IPv6 into brackets.
        let name = normalise_host(host);
        self.check_host(&name)?;
        match name.parse::<IpAddr>() {
            Ok(ip) => self.check_address(&name, ip),
            Err(_) => Ok(()),
        }
    }

    /// Refuses a host on the deny list.
    pub fn check_host(&self, host: &str) -> Result<(), EgressRefusal> {
        let host = normalise_host(host);
        match self.deny.iter().find(|glob| glob_matches(glob, &host)) {
            Some(glob) => Err(EgressRefusal(format!(
                "host {host} matches {glob:?} in tools.http.deny"
            ))),
            None => Ok(()),
        }
    }

    /// Checks one address `host` is (or resolved to).
    pub fn check_address(&self, host: &str, ip: IpAddr) -> Result<(), EgressRefusal> {
        let class = classify(ip);
        let subject = if host == ip.to_string() {
            format!("{ip} is")
        } else {
            format!("{host} resolves to {ip},")
        };
        match class {
            AddressClass::Public => Ok(()),
            AddressClass::Metadata => Err(EgressRefusal(format!(
                "{subject} a cloud metadata address, which is never allowed"
            ))),
            _ if self.allow_private => Ok(()),
            _ if self.host_allowed(host) => Ok(()),
            _ => Err(EgressRefusal(format!(
                "{subject} {} (tools.http.allow_private = false; add the host to tools.http.allow to permit it)",
                class.describe()
            ))),
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        let host = normalise_host(host);
        self.allow.iter().any(|glob| glob_matches(glob, &host))
    }
}

/// Lower-case, without brackets or a trailing dot: the form globs are matched against.
fn normalise_host(host: &str) -> String {
    host.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// Looks host names up. The node uses [`SystemResolver`]; tests inject their own answers.
pub trait HostResolver: Send + Sync {
    /// The addresses `host` resolves to.
    fn lookup(&self, host: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>>;
}

/// The operating system's resolver (`getaddrinfo`, on a blocking thread).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl HostResolver for SystemResolver {
    fn lookup(&self, host: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>> {
        let host = host.to_owned();
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// The HTTP client's resolver: resolves with an inner [`HostResolver`], then keeps only
/// the addresses the policy allows; if none remain, the connection fails with the
/// refusal (found in the error's source chain as an [`EgressRefusal`]).
pub struct GuardedResolver {
    policy: Arc<EgressPolicy>,
    inner: Arc<dyn HostResolver>,
}

impl GuardedResolver {
    /// Guards `inner` with `policy`.
    pub fn new(policy: Arc<EgressPolicy>, inner: Arc<dyn HostResolver>) -> Self {
        GuardedResolver { policy, inner }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        let lookup = self.inner.lookup(&host);
        Box::pin(async move {
            policy.check_host(&host)?;
            let addresses = lookup.await.map_err(|e| -> Box<dyn std::error::Error + Send + Sync> {
                Box::new(io::Error::new(e.kind(), format!("cannot resolve {host}: {e}")))
            })?;
            let mut first_refusal = None;
            let mut allowed = Vec::new();
            for ip in addresses {
                match policy.check_address(&host, ip) {
                    Ok(()) => allowed.push(SocketAddr::new(ip, 0)),
                    Err(refusal) => {
                        first_refusal.get_or_insert(refusal);
                    }
                }
            }
            if allowed.is_empty() {
                let refusal = first_refusal.unwrap_or_else(|| EgressRefusal(format!("{host} resolves to no address")));
                return Err(Box::new(refusal) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// A client builder whose every connection passes `policy`: names resolve through a
/// [`GuardedResolver`] over `resolver`, and no proxy is used (a proxy would resolve names
/// itself, out of the policy's sight). Literal addresses are not resolved, so callers check
/// each URL with [`EgressPolicy::check_url`] before sending, and decide on redirects.
pub fn guarded_client_builder(policy: Arc<EgressPolicy>, resolver: Arc<dyn HostResolver>) -> reqwest::ClientBuilder {
    // reqwest is built without a TLS crypto provider of its own; the node installs ring at
    // start, and this makes the client usable where nothing has yet.
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver::new(policy, resolver)))
}

/// The [`EgressRefusal`] somewhere in `error`'s source chain, if any.
pub fn find_refusal(error: &(dyn std::error::Error + 'static)) -> Option<EgressRefusal> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(refusal) = e.downcast_ref::<EgressRefusal>() {
            return Some(refusal.clone());
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn addresses_are_classified() {
        for (address, class) in [
            ("8.8.8.8", AddressClass::Public),
            ("2606:4700::1111", AddressClass::Public),
            ("127.0.0.1", AddressClass::Loopback),
            ("127.255.0.9", AddressClass::Loopback),
            ("::1", AddressClass::Loopback),
            ("0.0.0.0", AddressClass::Unspecified),
            ("::", AddressClass::Unspecified),
            ("10.0.0.1", AddressClass::Private),
            ("172.16.5.4", AddressClass::Private),
            ("172.32.0.1", AddressClass::Public),
            ("192.168.1.1", AddressClass::Private),
            ("fc00::1", AddressClass::Private),
            ("fd12::1", AddressClass::Private),
            ("169.254.1.1", AddressClass::LinkLocal),
            ("fe80::1", AddressClass::LinkLocal),
            ("100.64.0.1", AddressClass::Shared),
            ("100.127.255.255", AddressClass::Shared),
            ("100.128.0.1", AddressClass::Public),
            ("169.254.169.254", AddressClass::Metadata),
            ("fd00:ec2::254", AddressClass::Metadata),
            ("::ffff:127.0.0.1", AddressClass::Loopback),
            ("::ffff:169.254.169.254", AddressClass::Metadata),
            ("64:ff9b::a00:1", AddressClass::Private),
            ("2002:a9fe:a9fe::1", AddressClass::Metadata),
            ("224.0.0.1", AddressClass::Reserved),
            ("255.255.255.255", AddressClass::Reserved),
            ("::0.0.0.2", AddressClass::Reserved),
        ] {
            assert_eq!(classify(ip(address)), class, "{address}");
        }
    }

    #[test]
    fn policy_refuses_private_unless_allowed_and_metadata_always() {
        let strict = EgressPolicy::from_config(&HttpFetchConfig::default());
        assert_eq!(
            strict
                .check_address("10.0.0.1", ip("10.0.0.1"))
                .unwrap_err()
                .to_string(),
            "refused: 10.0.0.1 is a private address (tools.http.allow_private = false; \
             add the host to tools.http.allow to permit it)"
        );
        assert!(
            strict
                .check_address("intranet.example", ip("192.168.0.2"))
                .unwrap_err()
                .to_string()
                .starts_with("refused: intranet.example resolves to 192.168.0.2, a private address")
        );
        assert!(strict.check_address("example.com", ip("93.184.216.34")).is_ok());

        let open = EgressPolicy::from_config(&HttpFetchConfig {
            allow_private: true,
            ..HttpFetchConfig::default()
        });
        assert!(open.check_address("10.0.0.1", ip("10.0.0.1")).is_ok());
        assert_eq!(
            open.check_address("169.254.169.254", ip("169.254.169.254"))
                .unwrap_err()
                .to_string(),
            "refused: 169.254.169.254 is a cloud metadata address, which is never allowed"
        );

        let listed = EgressPolicy::from_config(&HttpFetchConfig {
            allow: vec!["*.Internal.example".into(), "127.0.0.1".into()],
            deny: vec!["*.bad.example".into()],
            ..HttpFetchConfig::default()
        });
        assert!(listed.check_address("wiki.internal.example", ip("10.1.1.1")).is_ok());
        assert!(listed.check_address("127.0.0.1", ip("127.0.0.1")).is_ok());
        assert!(listed.check_address("other.example", ip("10.1.1.1")).is_err());
        assert!(
            listed
                .check_address("wiki.internal.example", ip("fd00:ec2::254"))
                .is_err()
        );
        assert_eq!(
            listed.check_host("x.BAD.example.").unwrap_err().to_string(),
            "refused: host x.bad.example matches \"*.bad.example\" in tools.http.deny"
        );
    }

    #[test]
    fn urls_are_checked_before_connecting() {
        let strict = EgressPolicy::default();
        let check = |url: &str| strict.check_url(&reqwest::Url::parse(url).unwrap());
        assert!(check("https://example.com/a").is_ok());
        assert!(
            check("file:///etc/passwd")
                .unwrap_err()
                .to_string()
                .contains("only http and https")
        );
        assert!(
            check("http://127.0.0.1:8080/")
                .unwrap_err()
                .to_string()
                .contains("loopback")
        );
        assert!(check("http://[::1]/").unwrap_err().to_string().contains("loopback"));
        assert!(
            check("http://[::ffff:10.0.0.1]/")
                .unwrap_err()
                .to_string()
                .contains("private")
        );
        // Decimal and hex forms of an IPv4 address are parsed as the address they are.
        assert!(
            check("http://2852039166/")
                .unwrap_err()
                .to_string()
                .contains("metadata")
        );
        assert!(check("http://0x7f.1/").unwrap_err().to_string().contains("loopback"));
    }
}
