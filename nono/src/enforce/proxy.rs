//! Proxy-only networking (issue 23): how a profile with
//! `network.allow_domains` is confined to nono's proxy on this kernel,
//! and the plan changes that do it.
//!
//! Landlock filters TCP by port, not by host, so it alone cannot say
//! "only 127.0.0.1:PORT": a remote server listening on the proxy's port
//! number would be reachable too. The broker (seccomp user notification
//! on `connect`) checks the address itself: every TCP connect must go to
//! the proxy's exact address (or to one of the sandbox's own loopback
//! listeners, as without the proxy). Landlock's port rule (ABI 4) stays
//! on as a second wall. UDP (DNS included) and every other socket path
//! stay closed by the seccomp baseline unless the profile lists them;
//! `network.udp.dns` is dropped, since names are the proxy's to resolve.
//!
//! Without seccomp user notification (WSL2, whose init holds it; kernels
//! before 5.9; `nono wrap`) nothing can hold the command to the proxy's
//! address, and `security.wsl2_proxy_policy` decides: `error` (default)
//! refuses to run, `insecure_proxy` runs with the proxy set in the
//! environment and Landlock's port rule only, loudly.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use crate::profile::Wsl2ProxyPolicy;

/// How proxy-only networking is enforced here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProxyMode {
    /// The broker checks each connect's address; Landlock (ABI >= 4)
    /// also restricts the port.
    BrokerAndLandlock { abi: i32 },
    /// The broker alone (Landlock below ABI 4 has no TCP rules).
    Broker { abi: i32 },
    /// Not enforceable: no seccomp user notification (`why`).
    Unenforceable { why: String, wsl2: bool },
}

impl ProxyMode {
    /// The mode for a kernel with Landlock `abi` and the result of the
    /// seccomp user-notification probe.
    #[must_use]
    pub fn detect(abi: i32, notify: &Result<(), String>, wsl2: bool) -> ProxyMode {
        match notify {
            Ok(()) if abi >= 4 => ProxyMode::BrokerAndLandlock { abi },
            Ok(()) => ProxyMode::Broker { abi },
            Err(why) => ProxyMode::Unenforceable { why: why.clone(), wsl2 },
        }
    }

    #[must_use]
    pub fn enforced(&self) -> bool {
        !matches!(self, ProxyMode::Unenforceable { .. })
    }

    /// One line for `nono setup` and warnings.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            ProxyMode::BrokerAndLandlock { abi } => format!(
                "proxy-only: the broker allows TCP connects only to nono's proxy address, and Landlock ABI {abi} only to its port"
            ),
            ProxyMode::Broker { abi } => format!(
                "proxy-only: the broker allows TCP connects only to nono's proxy address (Landlock ABI {abi} has no TCP rules)"
            ),
            ProxyMode::Unenforceable { why, wsl2 } => format!(
                "not enforceable{}: no seccomp user notification ({why}); profiles with network.allow_domains are refused unless security.wsl2_proxy_policy = \"insecure_proxy\"",
                if *wsl2 { " on WSL2" } else { "" }
            ),
        }
    }

    /// Whether to run: `Ok(None)` enforced, `Ok(Some(warning))` run
    /// unenforced as the profile allows, `Err` refuse.
    pub fn decide(&self, policy: Wsl2ProxyPolicy) -> Result<Option<String>, String> {
        match (self, policy) {
            (ProxyMode::BrokerAndLandlock { .. } | ProxyMode::Broker { .. }, _) => Ok(None),
            (ProxyMode::Unenforceable { .. }, Wsl2ProxyPolicy::Error) => {
                Err(format!("this profile lists network.allow_domains, but proxy-only networking is {}", self.describe()))
            }
            (ProxyMode::Unenforceable { why, .. }, Wsl2ProxyPolicy::InsecureProxy) => Ok(Some(format!(
                "WARNING: proxy-only networking is NOT enforced here ({why}; security.wsl2_proxy_policy = \"insecure_proxy\"): the command is pointed at nono's proxy, but can connect anywhere on the proxy's port number and, below Landlock ABI 4, to any port"
            ))),
        }
    }
}

/// The plan changes for proxy-only networking: TCP connects to the
/// proxy's port only (Landlock), DNS dropped from the UDP grant. Returns
/// what was dropped, for a note.
pub fn confine_plan(plan: &mut super::Plan, proxy: SocketAddr, udp: &mut Option<crate::profile::Udp>) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(ports) = &plan.connect_ports
        && ports.iter().any(|p| *p != proxy.port())
    {
        notes.push(format!(
            "network.open_port {ports:?} is superseded by network.allow_domains: TCP connects go to nono's proxy only"
        ));
    }
    plan.connect_ports = Some(BTreeSet::from([proxy.port()]));
    if let Some(u) = udp
        && u.dns
    {
        notes.push("network.udp.dns is dropped: with network.allow_domains, nono's proxy resolves names".to_owned());
        u.dns = false;
        if u.to.is_empty() {
            *udp = None;
        }
    }
    plan.udp = udp.is_some();
    notes
}

/// The broker's check: may a TCP connect go to `to`? Only the proxy's
/// own address (`own`: one of the sandbox's own loopback listeners is
/// decided by the caller, as without the proxy).
#[must_use]
pub fn connect_allowed(proxy: SocketAddr, to: SocketAddr) -> bool {
    let ip = match to.ip() {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(to.ip(), std::net::IpAddr::V4),
        v4 @ std::net::IpAddr::V4(_) => v4,
    };
    ip == proxy.ip() && to.port() == proxy.port()
}

/// The proxy's threads take the command's user, never root's identity:
/// under sudo they become `identity`; as root without one, refused.
pub fn user_identity(identity: Option<&crate::record::spawn::Identity>) -> Result<Option<crate::proxy::OnStart>, String> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let Some(id) = identity else {
        return Err("nono's proxy never runs as root, and there is no user to run it as: run nono as the user, or with sudo (it takes SUDO_UID)".to_owned());
    };
    let (uid, gid, groups) = (id.uid, id.gid, id.groups.clone());
    Ok(Some(Box::new(move || super::broker::become_user(uid, gid, &groups))))
}

/// A proxy decision as an audit row of session `session`.
#[must_use]
pub fn domain_row(session: i64, ev: &crate::proxy::ProxyEvent) -> crate::store::DomainEvent {
    use crate::proxy::{Kind, Outcome};
    use crate::store::DomainSource;
    let (result, reason, addr) = match &ev.outcome {
        Outcome::Allowed(a) => (0, None, Some(a.to_string())),
        Outcome::Refused(r) => (1, Some(r.to_string()), None),
        Outcome::Failed(f) => (2, Some(f.clone()), None),
    };
    crate::store::DomainEvent {
        session_id: session,
        time_ns: ev.time.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
        source: match ev.kind {
            Kind::Connect => DomainSource::Connect,
            Kind::Forward => DomainSource::Http,
            Kind::Credential => DomainSource::Credential,
        },
        domain: ev.host.clone(),
        port: ev.port,
        result,
        reason,
        addr,
        credential: ev.credential.clone(),
        pid: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_follow_the_kernel_and_the_policy() {
        let ok: Result<(), String> = Ok(());
        let no: Result<(), String> = Err("EBUSY".into());
        assert_eq!(ProxyMode::detect(7, &ok, false), ProxyMode::BrokerAndLandlock { abi: 7 });
        assert_eq!(ProxyMode::detect(2, &ok, false), ProxyMode::Broker { abi: 2 });
        let wsl = ProxyMode::detect(3, &no, true);
        assert!(!wsl.enforced());
        assert!(wsl.decide(Wsl2ProxyPolicy::Error).is_err());
        assert!(wsl.decide(Wsl2ProxyPolicy::InsecureProxy).expect("runs").is_some_and(|w| w.contains("NOT enforced")));
        assert_eq!(ProxyMode::detect(7, &ok, false).decide(Wsl2ProxyPolicy::Error), Ok(None));
    }

    #[test]
    fn only_the_proxy_address_is_allowed() {
        let proxy: SocketAddr = "127.0.0.1:4000".parse().expect("addr");
        assert!(connect_allowed(proxy, proxy));
        assert!(connect_allowed(proxy, "[::ffff:127.0.0.1]:4000".parse().expect("addr")));
        for other in ["127.0.0.1:4001", "127.0.0.2:4000", "1.2.3.4:4000", "[::1]:4000"] {
            assert!(!connect_allowed(proxy, other.parse().expect("addr")), "{other}");
        }
    }

    #[test]
    fn the_plan_allows_only_the_proxy_port_and_no_dns() {
        let mut plan = super::super::Plan { connect_ports: Some(BTreeSet::from([443, 5432])), udp: true, ..Default::default() };
        let mut udp = Some(crate::profile::Udp { dns: true, to: BTreeSet::new() });
        let notes = confine_plan(&mut plan, "127.0.0.1:4000".parse().expect("addr"), &mut udp);
        assert_eq!(plan.connect_ports, Some(BTreeSet::from([4000])));
        assert_eq!(udp, None);
        assert!(!plan.udp);
        assert_eq!(notes.len(), 2);
    }
}
