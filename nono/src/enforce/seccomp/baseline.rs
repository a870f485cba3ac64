//! The baseline filter of `nono run` and `nono wrap`: always on, whatever
//! the profile. It closes what Landlock cannot see (issue 12):
//! - terminal injection: `ioctl(TIOCSTI)` and `ioctl(TIOCLINUX)` -> `EPERM`
//!   (the command would otherwise type into the user's shell);
//! - socket families other than Unix, IPv4, IPv6 and `network.families`
//!   (netlink, vsock, packet, ...) -> `EACCES`;
//! - IPv4/IPv6 datagrams: UDP only with `network.udp`, ICMP echo sockets
//!   only with `network.icmp`; raw sockets unless both are present;
//! - while TCP ports are restricted: every IPv4/IPv6 socket but plain TCP,
//!   UDP and ICMP (MPTCP, SCTP, `SOCK_SEQPACKET`, ...) -> `EACCES`, since
//!   Landlock's port hooks only see TCP `connect`/`bind`;
//! - while TCP connect is restricted: `sendto`/`sendmsg`/`sendmmsg` with
//!   `MSG_FASTOPEN` -> `EACCES` (TCP Fast Open connects without `connect`);
//! - `io_uring`, keyrings, `SysV` IPC and POSIX message queues -> `EPERM`
//!   unless `sandbox.allow` lists the facility;
//! - `--block-net`: every socket family but Unix -> `EACCES`, and `io_uring`.
//!
//! Not covered here: where a UDP socket may send (that needs the
//! supervisor), pathname Unix socket connects, and what `io_uring` does once
//! a profile allows it (its socket and send operations bypass these rules).

use std::collections::BTreeSet;

use super::{Action, Arg, Rule};
use crate::event::Facility;

/// What the baseline needs to know, taken from the plan.
#[expect(clippy::struct_excessive_bools, reason = "independent policy switches, each from one profile key")]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// `network.open_port` is present: TCP connect is restricted.
    pub connect_restricted: bool,
    /// `network.listen_port` is present: TCP bind is restricted.
    pub bind_restricted: bool,
    /// `network.udp` is present.
    pub udp: bool,
    /// `network.icmp` is present.
    pub icmp: bool,
    /// Socket families allowed beyond Unix, IPv4 and IPv6 (`AF_*`).
    pub families: BTreeSet<i32>,
    /// `--block-net` or `network.block`.
    pub block_net: bool,
    /// Facilities `sandbox.allow` lists.
    pub facilities: BTreeSet<Facility>,
}

const EPERM: u16 = libc::EPERM as u16;
const EACCES: u16 = libc::EACCES as u16;
/// `MSG_FASTOPEN`.
const MSG_FASTOPEN: u64 = 0x2000_0000;
/// The socket type without `SOCK_NONBLOCK`/`SOCK_CLOEXEC`.
const SOCK_TYPE_MASK: u64 = 0xf;
const IPPROTO_UDPLITE: u64 = 136;

/// The rules, in order (first match wins).
#[must_use]
pub fn rules(p: &Policy) -> Vec<Rule> {
    let mut out = Vec::new();
    let deny = Action::Deny;
    for (cmd, name) in [(libc::TIOCSTI, "ioctl TIOCSTI (terminal input injection)"), (libc::TIOCLINUX, "ioctl TIOCLINUX")] {
        out.push(Rule::new(libc::SYS_ioctl, vec![Arg::int_eq(1, cmd)], deny(EPERM), name));
    }
    for nr in [libc::SYS_socket, libc::SYS_socketpair] {
        socket_rules(p, nr, &mut out);
    }
    if p.connect_restricted || p.block_net {
        for (nr, flags_arg, name) in [
            (libc::SYS_sendto, 3, "sendto MSG_FASTOPEN"),
            (libc::SYS_sendmsg, 2, "sendmsg MSG_FASTOPEN"),
            (libc::SYS_sendmmsg, 3, "sendmmsg MSG_FASTOPEN"),
        ] {
            out.push(Rule::new(nr, vec![Arg::int_masked(flags_arg, MSG_FASTOPEN, MSG_FASTOPEN)], deny(EACCES), name));
        }
    }
    for f in Facility::ALL {
        let why = if !p.facilities.contains(&f) {
            "not in sandbox.allow"
        } else if p.block_net && f == Facility::IoUring {
            // io_uring opens and connects sockets without the socket syscall.
            "--block-net"
        } else {
            continue;
        };
        for nr in f.syscalls() {
            out.push(Rule::new(*nr, vec![], deny(EPERM), format!("{} ({why})", f.name())));
        }
    }
    out
}

fn socket_rules(p: &Policy, nr: i64, out: &mut Vec<Rule>) {
    let deny = Action::Deny(EACCES);
    let family = |f: i32| Arg::int_eq(0, f as u64);
    if p.block_net {
        out.push(Rule::new(nr, vec![Arg::int_ne(0, libc::AF_UNIX as u64)], deny, "socket: --block-net allows Unix sockets only"));
        return;
    }
    let mut allowed: BTreeSet<i32> = [libc::AF_UNIX, libc::AF_INET, libc::AF_INET6].into();
    allowed.extend(&p.families);
    let not_allowed = allowed.iter().map(|f| Arg::int_ne(0, *f as u64)).collect();
    out.push(Rule::new(nr, not_allowed, deny, "socket family not allowed (network.families)"));

    let tcp_restricted = p.connect_restricted || p.bind_restricted;
    let ty = |t: i32| Arg::int_masked(1, SOCK_TYPE_MASK, t as u64);
    let proto = |x: u64| Arg::int_eq(2, x);
    for (fam, icmp) in [(libc::AF_INET, libc::IPPROTO_ICMP as u64), (libc::AF_INET6, libc::IPPROTO_ICMPV6 as u64)] {
        if tcp_restricted {
            for x in [0, libc::IPPROTO_TCP as u64] {
                out.push(Rule::new(nr, vec![family(fam), ty(libc::SOCK_STREAM), proto(x)], Action::Allow, "plain TCP"));
            }
        }
        let icmp_action = if p.icmp { Action::Allow } else { deny };
        out.push(Rule::new(
            nr,
            vec![family(fam), ty(libc::SOCK_DGRAM), proto(icmp)],
            icmp_action,
            "ICMP echo socket (network.icmp)",
        ));
        if p.udp {
            if tcp_restricted {
                for x in [0, libc::IPPROTO_UDP as u64, IPPROTO_UDPLITE] {
                    out.push(Rule::new(
                        nr,
                        vec![family(fam), ty(libc::SOCK_DGRAM), proto(x)],
                        Action::Allow,
                        "UDP (network.udp)",
                    ));
                }
            }
        } else {
            // Any datagram protocol, not only 0 and IPPROTO_UDP: UDP-Lite
            // sends datagrams anywhere too.
            out.push(Rule::new(nr, vec![family(fam), ty(libc::SOCK_DGRAM)], deny, "UDP (network.udp is absent)"));
        }
        if !(p.udp && p.icmp) {
            out.push(Rule::new(nr, vec![family(fam), ty(libc::SOCK_RAW)], deny, "raw IP socket"));
        }
        if tcp_restricted {
            // MPTCP (IPPROTO_MPTCP), SCTP, SOCK_SEQPACKET, DCCP, ...: the
            // TCP port rules do not see them.
            out.push(Rule::new(
                nr,
                vec![family(fam)],
                deny,
                "IP socket other than plain TCP, UDP or ICMP while TCP ports are restricted",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enforce::seccomp::Filter;

    fn filter(p: &Policy) -> Filter {
        Filter::new(rules(p)).expect("valid rules")
    }

    fn socket(f: &Filter, family: i32, ty: i32, proto: u64) -> Action {
        f.decide(libc::SYS_socket, &[family as u64, ty as u64, proto, 0, 0, 0])
    }

    const DENY: Action = Action::Deny(EACCES);
    const IPPROTO_MPTCP: u64 = 262;

    #[test]
    fn terminal_injection_is_denied_whatever_the_upper_bits() {
        let f = filter(&Policy::default());
        for cmd in [libc::TIOCSTI, libc::TIOCLINUX, libc::TIOCSTI | 0xdead_beef_0000_0000] {
            assert_eq!(f.decide(libc::SYS_ioctl, &[0, cmd, 0, 0, 0, 0]), Action::Deny(EPERM), "{cmd:#x}");
        }
        assert_eq!(f.decide(libc::SYS_ioctl, &[0, libc::TIOCGWINSZ, 0, 0, 0, 0]), Action::Allow);
    }

    #[test]
    fn a_profile_without_network_keys_allows_tcp_and_denies_udp_and_other_families() {
        let f = filter(&Policy::default());
        assert_eq!(socket(&f, libc::AF_INET, libc::SOCK_STREAM, 0), Action::Allow);
        assert_eq!(socket(&f, libc::AF_INET6, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0), Action::Allow);
        assert_eq!(socket(&f, libc::AF_INET, libc::SOCK_STREAM, IPPROTO_MPTCP), Action::Allow, "TCP is unrestricted");
        assert_eq!(socket(&f, libc::AF_UNIX, libc::SOCK_DGRAM, 0), Action::Allow);
        assert_eq!(socket(&f, libc::AF_INET, libc::SOCK_DGRAM, 0), DENY);
        assert_eq!(socket(&f, libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK, 17), DENY);
        assert_eq!(socket(&f, libc::AF_INET, libc::SOCK_DGRAM, IPPROTO_UDPLITE), DENY);
        assert_eq!(socket(&f, libc::AF_INET, libc::SOCK_DGRAM, 1), DENY, "ICMP");
        assert_eq!(socket(&f, libc::AF_INET, libc::SOCK_RAW, 1), DENY);
        for fam in [libc::AF_NETLINK, libc::AF_VSOCK, libc::AF_PACKET, libc::AF_ALG, 0x7fff] {
            assert_eq!(socket(&f, fam, libc::SOCK_DGRAM, 0), DENY, "family {fam}");
        }
        // The family is an int: upper garbage must not dodge the rule.
        let garbage = libc::AF_NETLINK as u64 | (1 << 40);
        assert_eq!(f.decide(libc::SYS_socket, &[garbage, libc::SOCK_RAW as u64, 0, 0, 0, 0]), DENY);
        assert_eq!(f.decide(libc::SYS_sendto, &[3, 0, 0, MSG_FASTOPEN, 0, 0]), Action::Allow, "connect is unrestricted");
    }

    #[test]
    fn restricted_ports_leave_only_plain_tcp_udp_and_icmp() {
        let p = Policy { connect_restricted: true, udp: true, icmp: true, ..Policy::default() };
        let f = filter(&p);
        assert_eq!(socket(&f, libc::AF_INET, libc::SOCK_STREAM, 0), Action::Allow);
        assert_eq!(socket(&f, libc::AF_INET6, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 6), Action::Allow);
        assert_eq!(socket(&f, libc::AF_INET, libc::SOCK_DGRAM, 17), Action::Allow);
        assert_eq!(socket(&f, libc::AF_INET6, libc::SOCK_DGRAM, 58), Action::Allow, "ICMPv6");
        assert_eq!(socket(&f, libc::AF_INET, libc::SOCK_STREAM, IPPROTO_MPTCP), DENY);
        assert_eq!(socket(&f, libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, IPPROTO_MPTCP | (7 << 32)), DENY);
        assert_eq!(socket(&f, libc::AF_INET, libc::SOCK_SEQPACKET, 132), DENY, "SCTP");
        assert_eq!(socket(&f, libc::AF_INET, libc::SOCK_STREAM, 132), DENY, "SCTP stream");
        assert_eq!(socket(&f, libc::AF_INET6, libc::SOCK_DCCP, 33), DENY);
        assert_eq!(socket(&f, libc::AF_INET, libc::SOCK_RAW, 6), DENY, "raw: not plain TCP, UDP or ICMP");
        for (nr, arg) in [(libc::SYS_sendto, 3), (libc::SYS_sendmsg, 2), (libc::SYS_sendmmsg, 3)] {
            let mut args = [3, 0, 0, 0, 0, 0];
            args[arg] = MSG_FASTOPEN | libc::MSG_NOSIGNAL as u64;
            assert_eq!(f.decide(nr, &args), DENY, "{nr}");
            args[arg] = libc::MSG_NOSIGNAL as u64;
            assert_eq!(f.decide(nr, &args), Action::Allow, "{nr}");
        }
    }

    #[test]
    fn listed_families_and_facilities_are_allowed() {
        let p = Policy { families: [libc::AF_NETLINK].into(), facilities: [Facility::SysvIpc].into(), ..Policy::default() };
        let f = filter(&p);
        assert_eq!(socket(&f, libc::AF_NETLINK, libc::SOCK_RAW, 0), Action::Allow);
        assert_eq!(socket(&f, libc::AF_VSOCK, libc::SOCK_STREAM, 0), DENY);
        assert_eq!(f.decide(libc::SYS_shmget, &[0; 6]), Action::Allow);
        for nr in [libc::SYS_keyctl, libc::SYS_add_key, libc::SYS_io_uring_setup, libc::SYS_io_uring_enter, libc::SYS_mq_open] {
            assert_eq!(f.decide(nr, &[0; 6]), Action::Deny(EPERM), "{nr}");
        }
    }

    #[test]
    fn block_net_allows_unix_sockets_only_and_no_io_uring() {
        let p = Policy { block_net: true, facilities: [Facility::IoUring].into(), ..Policy::default() };
        let f = filter(&p);
        assert_eq!(socket(&f, libc::AF_UNIX, libc::SOCK_STREAM, 0), Action::Allow);
        assert_eq!(socket(&f, libc::AF_INET, libc::SOCK_STREAM, 0), DENY);
        assert_eq!(f.decide(libc::SYS_socketpair, &[libc::AF_INET as u64, 1, 0, 0, 0, 0]), DENY);
        assert_eq!(f.decide(libc::SYS_io_uring_setup, &[0; 6]), Action::Deny(EPERM));
    }
}
