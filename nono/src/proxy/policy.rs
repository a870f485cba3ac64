//! Which destinations the proxy lets through: host names (exact or
//! `*.suffix`), IP literals and ports, and which resolved addresses are
//! too close to home (loopback, private, link-local, ...) to reach unless
//! the rule says so.
//!
//! Names are compared after normalisation (ASCII lowercase, one trailing
//! dot removed). A name that is not a plain DNS name (non-ASCII, empty
//! labels, characters outside `[a-z0-9_-]`, over 253 bytes) is refused,
//! never guessed at; so is a name that `getaddrinfo` would read as a
//! number (`2130706433`, `0x7f.1`), which is an IP literal in disguise.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Ports a rule without a port allows: HTTPS through CONNECT and plain
/// HTTP through the forward path.
pub const DEFAULT_PORTS: [u16; 2] = [80, 443];

/// A destination host as the client named it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Host {
    /// A normalised DNS name.
    Name(String),
    /// An IP literal (`1.2.3.4`, `[::1]`).
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// Why a host string is not acceptable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("empty host name")]
    Empty,
    #[error("host name longer than 253 bytes")]
    TooLong,
    #[error("host name {0:?} is not ASCII (use its punycode form)")]
    NotAscii(String),
    #[error("host name {0:?} has an empty or over-long label")]
    BadLabel(String),
    #[error("host name {name:?} has a character outside [a-z0-9-_.]: {ch:?}")]
    BadChar { name: String, ch: char },
    #[error("{0:?} is an IP address written as a name")]
    NumericName(String),
    #[error("bad port in {0:?}")]
    BadPort(String),
    #[error("bad wildcard {0:?}: only a leading `*.` is allowed, on at least two labels")]
    BadWildcard(String),
}

/// Parses a host as a client or a profile writes it: a DNS name or an
/// IP literal (IPv6 in brackets or bare).
pub fn parse_host(s: &str) -> Result<Host, NameError> {
    let inner = s.strip_prefix('[').and_then(|r| r.strip_suffix(']'));
    if let Some(v6) = inner {
        return v6.parse::<Ipv6Addr>().map(|ip| Host::Ip(IpAddr::V6(ip))).map_err(|_| NameError::BadLabel(s.to_owned()));
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(Host::Ip(ip));
    }
    normalise_name(s).map(Host::Name)
}

/// Lowercases and checks a DNS name; removes one trailing dot.
pub fn normalise_name(s: &str) -> Result<String, NameError> {
    if !s.is_ascii() {
        return Err(NameError::NotAscii(s.to_owned()));
    }
    let lower = s.to_ascii_lowercase();
    let name = lower.strip_suffix('.').unwrap_or(&lower);
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > 253 {
        return Err(NameError::TooLong);
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(NameError::BadLabel(s.to_owned()));
        }
        if let Some(ch) = label.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
            return Err(NameError::BadChar { name: s.to_owned(), ch });
        }
    }
    // The WHATWG URL rule: a host whose last label is a number is an IPv4
    // address (inet_aton accepts `127.1`, `0x7f.0.0.1`, `2130706433`).
    let last = name.rsplit('.').next().unwrap_or(name);
    let numeric = last.bytes().all(|b| b.is_ascii_digit())
        || (last.len() > 2 && last.starts_with("0x") && last[2..].bytes().all(|b| b.is_ascii_hexdigit()));
    if numeric {
        return Err(NameError::NumericName(s.to_owned()));
    }
    Ok(name.to_owned())
}

/// Splits `host:port` (`[v6]:port`; the port may be left out when
/// `default` is given).
pub fn split_authority(s: &str, default: Option<u16>) -> Result<(Host, u16), NameError> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest.split_once(']').ok_or_else(|| NameError::BadLabel(s.to_owned()))?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(NameError::BadPort(s.to_owned())),
        };
        (format!("[{v6}]"), port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h.to_owned(), Some(p)),
            Some(_) => return Err(NameError::BadPort(s.to_owned())),
            None => (s.to_owned(), None),
        }
    };
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| NameError::BadPort(s.to_owned()))?,
        None => default.ok_or_else(|| NameError::BadPort(s.to_owned()))?,
    };
    Ok((parse_host(&host)?, port))
}

/// What a rule matches.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pattern {
    /// Exactly this name.
    Exact(String),
    /// Any name ending in `.SUFFIX` (one or more labels before it), not
    /// `SUFFIX` itself.
    Subdomains(String),
    /// Exactly this address, named as a literal.
    Ip(IpAddr),
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Exact(n) => f.write_str(n),
            Pattern::Subdomains(s) => write!(f, "*.{s}"),
            Pattern::Ip(ip) => write!(f, "{}", Host::Ip(*ip)),
        }
    }
}

impl Pattern {
    /// Parses `name`, `*.suffix` or an IP literal.
    pub fn parse(s: &str) -> Result<Pattern, NameError> {
        if let Some(suffix) = s.strip_prefix("*.") {
            let suffix = normalise_name(suffix)?;
            // `*.com` would allow a whole top-level domain.
            if !suffix.contains('.') {
                return Err(NameError::BadWildcard(s.to_owned()));
            }
            return Ok(Pattern::Subdomains(suffix));
        }
        if s.contains('*') {
            return Err(NameError::BadWildcard(s.to_owned()));
        }
        Ok(match parse_host(s)? {
            Host::Name(n) => Pattern::Exact(n),
            Host::Ip(ip) => Pattern::Ip(ip),
        })
    }

    #[must_use]
    pub fn matches(&self, host: &Host) -> bool {
        match (self, host) {
            (Pattern::Exact(p), Host::Name(n)) => p == n,
            (Pattern::Subdomains(s), Host::Name(n)) => {
                n.len() > s.len() + 1 && n.ends_with(s.as_str()) && n.as_bytes()[n.len() - s.len() - 1] == b'.'
            }
            (Pattern::Ip(p), Host::Ip(ip)) => p == ip,
            _ => false,
        }
    }
}

/// One allow rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub pattern: Pattern,
    /// Ports it allows; `None`: [`DEFAULT_PORTS`].
    pub ports: Option<BTreeSet<u16>>,
    /// Whether the name may resolve to a loopback, private or link-local
    /// address (implied for IP literals and `localhost`, which name one).
    pub private: bool,
}

impl Rule {
    /// Parses `PATTERN` or `PATTERN:PORT` (`[v6]:PORT`; a bare IPv6
    /// address has no port).
    pub fn parse(s: &str) -> Result<Rule, NameError> {
        let bad_port = || NameError::BadPort(s.to_owned());
        let (pat, port) = if let Some(rest) = s.strip_prefix('[') {
            let (_, after) = rest.split_once(']').ok_or_else(|| NameError::BadLabel(s.to_owned()))?;
            match after.strip_prefix(':') {
                Some(p) => (&s[..s.len() - p.len() - 1], Some(p)),
                None if after.is_empty() => (s, None),
                None => return Err(bad_port()),
            }
        } else if s.matches(':').count() == 1 {
            let (h, p) = s.split_once(':').ok_or_else(bad_port)?;
            (h, Some(p))
        } else {
            (s, None)
        };
        let port = port.map(|p| p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad_port)).transpose()?;
        let pattern = Pattern::parse(pat)?;
        let private = matches!(pattern, Pattern::Ip(_)) || matches!(&pattern, Pattern::Exact(n) if n == "localhost");
        Ok(Rule { pattern, ports: port.map(|p| BTreeSet::from([p])), private })
    }

    #[must_use]
    pub fn allows_port(&self, port: u16) -> bool {
        self.ports.as_ref().map_or(DEFAULT_PORTS.contains(&port), |p| p.contains(&port))
    }
}

/// Why a destination is refused before any address is looked at.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not in network.allow_domains")]
    NotAllowed,
    #[error("port {0} is not allowed for this domain")]
    Port(u16),
    #[error("an IP address, not a name (list it in network.allow_domains to allow it)")]
    IpLiteral,
    #[error("localhost (list it in network.allow_domains to allow it)")]
    Localhost,
    #[error("resolves to {0}, a loopback, private or link-local address (mark the rule private to allow it)")]
    PrivateAddress(IpAddr),
    #[error("bad host name: {0}")]
    BadName(String),
    #[error("the proxy itself")]
    Itself,
    #[error("{0} connections are open; the limit is reached")]
    ConnectionLimit(usize),
    #[error("no credential's phantom token in the request")]
    BadToken,
    #[error("bad request: {0}")]
    BadRequest(String),
}

/// The allow list.
#[derive(Clone, Debug, Default)]
pub struct DomainPolicy {
    rules: Vec<Rule>,
    /// Learning: every destination passes (and is reported), internal
    /// addresses included; the command is not confined then anyway.
    allow_all: bool,
}

/// What [`DomainPolicy::check`] answers while learning.
static ANY: Rule = Rule { pattern: Pattern::Exact(String::new()), ports: None, private: true };

impl DomainPolicy {
    #[must_use]
    pub fn new(rules: Vec<Rule>) -> DomainPolicy {
        DomainPolicy { rules, allow_all: false }
    }

    /// The learning policy: everything passes.
    #[must_use]
    pub fn allow_all() -> DomainPolicy {
        DomainPolicy { rules: Vec::new(), allow_all: true }
    }

    #[must_use]
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rule that lets `host:port` through, or why none does. An exact
    /// rule wins over a wildcard (its `private` mark is the one that
    /// counts).
    pub fn check(&self, host: &Host, port: u16) -> Result<&Rule, Refusal> {
        if self.allow_all {
            return Ok(&ANY);
        }
        let mut matching: Vec<&Rule> = self.rules.iter().filter(|r| r.pattern.matches(host)).collect();
        matching.sort_by_key(|r| !matches!(r.pattern, Pattern::Exact(_) | Pattern::Ip(_)));
        if let Some(rule) = matching.iter().find(|r| r.allows_port(port)) {
            return Ok(rule);
        }
        if !matching.is_empty() {
            return Err(Refusal::Port(port));
        }
        Err(match host {
            Host::Ip(_) => Refusal::IpLiteral,
            Host::Name(n) if n == "localhost" || n.ends_with(".localhost") => Refusal::Localhost,
            Host::Name(_) => Refusal::NotAllowed,
        })
    }
}

/// Whether `ip` is an address the public internet does not route to
/// this host's peers: loopback, RFC 1918 and other private or shared
/// ranges, link-local (cloud metadata at 169.254.169.254), multicast,
/// documentation and reserved ranges, and IPv6's equivalents (IPv4-mapped
/// and -compatible addresses are judged by their IPv4 part).
#[must_use]
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal_v4(v4);
            }
            let s = v6.segments();
            // ::/96 IPv4-compatible (deprecated), including :: and ::1.
            if s[..6].iter().all(|x| *x == 0) {
                return true;
            }
            // NAT64 (64:ff9b::/96) maps onto IPv4: judge the embedded address.
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6].iter().all(|x| *x == 0) {
                let o = v6.octets();
                return is_internal_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
            }
            (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] & 0xff00) == 0xff00 // multicast
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x2001 && s[1] < 0x0200) // IETF protocol assignments (Teredo, ...)
                || s[0] == 0x2002 // 6to4 embeds an IPv4 address
        }
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || o[0] == 0 // "this network"
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared address space 100.64/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18/15
        || o[0] >= 240 // reserved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> Rule {
        Rule::parse(s).expect(s)
    }

    fn host(s: &str) -> Host {
        parse_host(s).expect(s)
    }

    #[test]
    fn names_are_normalised_and_odd_ones_refused() {
        assert_eq!(host("API.Anthropic.COM."), Host::Name("api.anthropic.com".into()));
        assert_eq!(host("[::1]"), Host::Ip("::1".parse().expect("ip")));
        assert_eq!(host("10.0.0.1"), Host::Ip("10.0.0.1".parse().expect("ip")));
        for bad in ["", ".", "a..b", "ex ample.com", "exämple.com", "a/b", "2130706433", "127.1", "0x7f.1", "x.0x10"] {
            assert!(parse_host(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(parse_host(&"a.".repeat(130)).is_err());
        // A label may start with a digit; only an all-numeric last label is an address.
        assert!(parse_host("1password.com").is_ok());
        assert!(parse_host("x.1a").is_ok());
    }

    #[test]
    fn authority_splits_host_and_port() {
        assert_eq!(split_authority("example.com:443", None).expect("ok"), (host("example.com"), 443));
        assert_eq!(split_authority("[::1]:8080", None).expect("ok"), (host("[::1]"), 8080));
        assert_eq!(split_authority("example.com", Some(80)).expect("ok"), (host("example.com"), 80));
        for bad in ["example.com", "example.com:0", "example.com:x", "::1:443", "[::1]x", "example.com:99999"] {
            assert!(split_authority(bad, None).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn wildcards_match_subdomains_only() {
        let p = Pattern::parse("*.example.com").expect("pattern");
        assert!(p.matches(&host("a.example.com")));
        assert!(p.matches(&host("a.b.example.com")));
        assert!(!p.matches(&host("example.com")));
        assert!(!p.matches(&host("badexample.com")));
        assert!(!p.matches(&host("example.com.evil.net")));
        for bad in ["*.com", "a.*.com", "*example.com", "*"] {
            assert!(Pattern::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn rules_carry_ports_and_private_marks() {
        let r = rule("example.com:8443");
        assert!(r.allows_port(8443) && !r.allows_port(443));
        let r = rule("example.com");
        assert!(r.allows_port(443) && r.allows_port(80) && !r.allows_port(22));
        assert!(rule("localhost:3000").private);
        assert!(rule("[::1]:3000").private);
        assert!(rule("10.1.2.3").private);
        assert!(!rule("*.example.com").private);
        assert_eq!(rule("[::1]").pattern, Pattern::Ip("::1".parse().expect("ip")));
        assert!(Rule::parse("example.com:0").is_err());
    }

    #[test]
    fn policy_names_why_it_refuses() {
        let p = DomainPolicy::new(vec![rule("api.example.com"), rule("*.cdn.example.com:8443")]);
        assert!(p.check(&host("api.example.com"), 443).is_ok());
        assert_eq!(p.check(&host("api.example.com"), 22), Err(Refusal::Port(22)));
        assert!(p.check(&host("x.cdn.example.com"), 8443).is_ok());
        assert_eq!(p.check(&host("evil.example.com"), 443), Err(Refusal::NotAllowed));
        assert_eq!(p.check(&host("1.2.3.4"), 443), Err(Refusal::IpLiteral));
        assert_eq!(p.check(&host("localhost"), 443), Err(Refusal::Localhost));
        assert_eq!(p.check(&host("a.localhost"), 443), Err(Refusal::Localhost));
    }

    #[test]
    fn internal_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2002::1",
        ] {
            assert!(is_internal(ip.parse().expect(ip)), "{ip} is internal");
        }
        for ip in ["1.1.1.1", "160.79.104.10", "2606:4700::1111", "::ffff:1.1.1.1", "64:ff9b::101:101"] {
            assert!(!is_internal(ip.parse().expect(ip)), "{ip} is public");
        }
    }
}
