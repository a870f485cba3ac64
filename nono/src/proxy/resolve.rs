//! Where an allowed name goes: the operator's overrides (`--resolve`,
//! like curl's), else the system resolver; then the address check.
//!
//! The proxy connects to exactly the addresses it checked, never
//! re-resolving the name (a DNS answer that changes between the check
//! and the connect cannot slip a private address in). Overrides are the
//! operator's word, not the sandbox's: their addresses are not checked
//! against the internal ranges (tests point names at loopback this way).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::policy::{self, Host, Refusal};

/// One `--resolve HOST[:PORT]=ADDR[:PORT]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Override {
    pub host: Host,
    /// Only for this port; `None`: every port.
    pub port: Option<u16>,
    pub ip: IpAddr,
    /// Connect to this port instead of the requested one.
    pub to_port: Option<u16>,
    /// Check the address like a DNS answer (a stand-in for a resolver
    /// in tests) instead of trusting it as the operator's pin.
    pub checked: bool,
}

/// Why an override cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("--resolve {spec:?}: {why} (expected HOST[:PORT]=ADDR[:PORT], e.g. api.example.com:443=127.0.0.1:8443)")]
pub struct OverrideError {
    spec: String,
    why: String,
}

impl Override {
    pub fn parse(spec: &str) -> Result<Override, OverrideError> {
        let err = |why: &str| OverrideError { spec: spec.to_owned(), why: why.to_owned() };
        let (from, to) = spec.split_once('=').ok_or_else(|| err("no `=`"))?;
        let (host, port) = match policy::split_authority(from, None) {
            Ok((h, p)) => (h, Some(p)),
            Err(_) => (policy::parse_host(from).map_err(|e| err(&e.to_string()))?, None),
        };
        let (ip, to_port) = match to.parse::<SocketAddr>() {
            Ok(sa) => (sa.ip(), Some(sa.port())),
            Err(_) => (
                to.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .map_err(|_| err("ADDR is not an IP address"))?,
                None,
            ),
        };
        if to_port == Some(0) {
            return Err(err("port 0"));
        }
        Ok(Override { host, port, ip, to_port, checked: false })
    }
}

/// Addresses for a destination, checked.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub addrs: Vec<SocketAddr>,
    /// From an override (not checked against internal ranges).
    pub pinned: bool,
}

/// Why no address can be used.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Refused(Refusal),
    #[error("cannot resolve: {0}")]
    Failed(String),
}

/// The proxy's resolver.
#[derive(Clone, Debug, Default)]
pub struct Resolver {
    pub overrides: Vec<Override>,
    pub timeout: Duration,
}

impl Resolver {
    /// Looks `host:port` up and checks every answer: any internal
    /// address refuses the whole name unless `private` (the rule allows
    /// it) or the answer came from an override.
    pub async fn resolve(&self, host: &Host, port: u16, private: bool) -> Result<Resolved, ResolveError> {
        let matching: Vec<&Override> =
            self.overrides.iter().filter(|o| &o.host == host && o.port.is_none_or(|p| p == port)).collect();
        let overridden: Vec<SocketAddr> = matching.iter().map(|o| SocketAddr::new(o.ip, o.to_port.unwrap_or(port))).collect();
        if !matching.is_empty() && matching.iter().all(|o| !o.checked) {
            return Ok(Resolved { addrs: overridden, pinned: true });
        }
        let addrs: Vec<SocketAddr> = match host {
            _ if !overridden.is_empty() => overridden,
            Host::Ip(ip) => vec![SocketAddr::new(*ip, port)],
            Host::Name(name) => {
                let lookup = tokio::net::lookup_host((name.as_str(), port));
                match tokio::time::timeout(self.timeout, lookup).await {
                    Err(_) => return Err(ResolveError::Failed(format!("no answer within {:?}", self.timeout))),
                    Ok(Err(e)) => return Err(ResolveError::Failed(e.to_string())),
                    Ok(Ok(it)) => it.collect(),
                }
            }
        };
        if addrs.is_empty() {
            return Err(ResolveError::Failed("no address".to_owned()));
        }
        if !private && let Some(bad) = addrs.iter().find(|a| policy::is_internal(a.ip())) {
            return Err(ResolveError::Refused(Refusal::PrivateAddress(bad.ip())));
        }
        Ok(Resolved { addrs, pinned: false })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_parse_like_curls() {
        let o = Override::parse("api.example.com:443=127.0.0.1:8443").expect("ok");
        assert_eq!(o.port, Some(443));
        assert_eq!(o.to_port, Some(8443));
        let o = Override::parse("API.example.com=::1").expect("ok");
        assert_eq!(o.host, Host::Name("api.example.com".into()));
        assert_eq!(o.port, None);
        assert_eq!(o.ip, "::1".parse::<IpAddr>().expect("ip"));
        let o = Override::parse("x.example.com=[::1]:9").expect("ok");
        assert_eq!(o.to_port, Some(9));
        for bad in ["x.example.com", "x.example.com=host", "=1.2.3.4", "x.example.com=1.2.3.4:0"] {
            assert!(Override::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn internal_answers_are_refused_unless_allowed_or_pinned() {
        let r = Resolver {
            overrides: vec![Override::parse("pinned.example=127.0.0.1:9999").expect("ok")],
            timeout: Duration::from_secs(5),
        };
        let loopback = Host::Ip("127.0.0.1".parse().expect("ip"));
        assert!(matches!(r.resolve(&loopback, 443, false).await, Err(ResolveError::Refused(Refusal::PrivateAddress(_)))));
        assert!(r.resolve(&loopback, 443, true).await.is_ok());
        let pinned = r.resolve(&Host::Name("pinned.example".into()), 443, false).await.expect("pinned");
        assert!(pinned.pinned);
        assert_eq!(pinned.addrs, vec!["127.0.0.1:9999".parse::<SocketAddr>().expect("addr")]);
        // `localhost` goes through the system resolver, which answers loopback.
        assert!(matches!(
            r.resolve(&Host::Name("localhost".into()), 80, false).await,
            Err(ResolveError::Refused(Refusal::PrivateAddress(_)))
        ));
    }
}
