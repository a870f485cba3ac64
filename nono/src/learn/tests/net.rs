//! Specification: what crosses the process boundary besides files
//! (sockets by kind, signals, kernel facilities) and how it lands in the
//! profile. Same context as the parent module.

use std::net::{IpAddr, SocketAddr};

use super::*;
use crate::event::{Facility, NetAddr};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// A network event on a socket of `ty`/`proto` to `addr:port`.
fn sock(op: Op, family: i32, ty: i32, proto: i32, addr: Option<&str>, port: u16) -> Ev {
    let mut e = ev(op, "");
    e.0.path = None;
    e.0.net = Some(NetAddr { family: family as u16, addr: addr.map(ip), port, sock_type: ty as u16, protocol: proto as u16 });
    e
}

fn udp(op: Op, addr: &str, port: u16) -> Ev {
    sock(op, libc::AF_INET, libc::SOCK_DGRAM, 0, Some(addr), port)
}

fn unix(op: Op, path: &str) -> Ev {
    let mut e = sock(op, libc::AF_UNIX, libc::SOCK_STREAM, 0, None, 0);
    e.0.path = Some(path.into());
    e
}

#[test]
fn a_udp_connect_to_port_53_is_dns_not_a_tcp_port() {
    // The regression of issue 12: glibc connects its UDP socket to the
    // nameserver; that was learned as `open_port: [53]`.
    let l = learn(vec![
        sock(Op::Socket, libc::AF_INET, libc::SOCK_DGRAM, 0, None, 0),
        udp(Op::Connect, "127.0.0.53", 53),
        sock(Op::Connect, libc::AF_INET, libc::SOCK_STREAM, 0, Some("93.184.216.34"), 443),
    ]);
    assert_eq!(l.connect_ports, [443].into(), "TCP only");
    let u = l.udp.as_ref().expect("udp used");
    assert!(u.dns, "a nameserver of resolv.conf on port 53 is DNS");
    assert!(u.to.is_empty(), "{:?}", u.to);
}

#[test]
fn udp_destinations_are_kept_exactly_and_odd_port_53_is_warned() {
    let l = learn(vec![udp(Op::Send, "192.0.2.7", 123), udp(Op::Connect, "198.51.100.1", 53)]);
    let u = l.udp.as_ref().expect("udp used");
    assert!(!u.dns);
    let want: std::collections::BTreeSet<SocketAddr> =
        ["192.0.2.7:123".parse().expect("a"), "198.51.100.1:53".parse().expect("a")].into();
    assert_eq!(u.to, want);
    assert!(l.warnings.iter().any(|w| w.contains("198.51.100.1") && w.contains("not a nameserver")), "{:?}", l.warnings);
}

#[test]
fn a_udp_socket_alone_still_needs_udp_and_no_udp_means_none() {
    let l = learn(vec![sock(Op::Socket, libc::AF_INET6, libc::SOCK_DGRAM, libc::IPPROTO_UDP, None, 0)]);
    assert_eq!(l.udp, Some(crate::profile::Udp::default()));
    let l = learn(vec![sock(Op::Socket, libc::AF_INET, libc::SOCK_STREAM, 0, None, 0)]);
    assert_eq!(l.udp, None, "a TCP socket needs no UDP");
    assert_eq!(l.icmp, None);
}

#[test]
fn ping_sockets_keep_their_destinations() {
    let l = learn(vec![
        sock(Op::Socket, libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_ICMP, None, 0),
        sock(Op::Send, libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_ICMP, Some("192.0.2.9"), 0),
    ]);
    assert_eq!(l.icmp, Some([ip("192.0.2.9")].into()));
    assert_eq!(l.udp, None);
}

#[test]
fn unix_socket_connects_become_unix_connect_spelled_with_variables() {
    let l = learn(vec![
        unix(Op::Connect, "/run/nscd/socket"),
        unix(Op::Connect, "/home/u/proj/.devserver.sock"),
        // Nothing listening: the path exists and the connect passed.
        unix(Op::Connect, "/tmp/app.sock").err(libc::ECONNREFUSED),
        // Missing: fails before any check, needs nothing.
        unix(Op::Connect, "/run/missing.sock").err(libc::ENOENT),
    ]);
    let got: Vec<&str> = l.unix_connect.iter().map(String::as_str).collect();
    assert_eq!(got, ["$CWD/.devserver.sock", "$TMPDIR/app.sock", "/run/nscd/socket"]);
}

#[test]
fn agent_and_container_sockets_are_sensitive_to_connect_to() {
    let l = learn(vec![
        unix(Op::Connect, "/tmp/ssh-AbC123/agent.77"),
        unix(Op::Connect, "/run/user/1000/bus"),
        unix(Op::Connect, "/var/run/docker.sock"),
        // A file in the same temp dir is granted as usual: the ssh-agent
        // socket does not make $TMPDIR sensitive as a directory.
        ev(Op::Open, "/tmp/out.txt").write().create(),
    ]);
    assert!(l.unix_connect.is_empty(), "{:?}", l.unix_connect);
    for p in ["/tmp/ssh-AbC123/agent.77", "/run/user/1000/bus", "/var/run/docker.sock"] {
        assert!(l.sensitive.iter().any(|h| h.path == p), "{p} not reported: {:?}", l.sensitive);
    }
    assert_eq!(paths(&l), ["$TMPDIR"]);
}

#[test]
fn abstract_sockets_relax_the_scope_only_when_reaching_outside_the_tree() {
    let inside = learn(vec![unix(Op::Bind, "@app-ipc"), unix(Op::Connect, "@app-ipc")]);
    assert!(!inside.sandbox.abstract_unix_outside);
    let outside = learn(vec![unix(Op::Connect, "@/tmp/.X11-unix/X0")]);
    assert!(outside.sandbox.abstract_unix_outside);
    assert!(
        outside.notes.iter().any(|n| n.contains("@/tmp/.X11-unix/X0") && n.contains("abstract_unix_outside")),
        "{:?}",
        outside.notes
    );
}

#[test]
fn signals_relax_the_scope_only_for_targets_outside_the_tree() {
    let signal = |target: i32, sig: u64| {
        let mut e = ev(Op::Signal, "");
        e.0.path = None;
        e.0.arg = sig | (u64::from(target as u32) << 32);
        e
    };
    let mut fork = ev(Op::Fork, "");
    fork.0.path = None;
    fork.0.arg = 4242;
    let l = learn(vec![fork, signal(4242, 15), signal(0, 15), signal(-100, 2)]);
    assert!(!l.sandbox.signal_outside, "its own child and its own process group");
    let l = learn(vec![signal(31337, 0)]);
    assert!(l.sandbox.signal_outside, "a probe of an outside pid is a signal Landlock checks");
    assert!(l.notes.iter().any(|n| n.contains("31337")), "{:?}", l.notes);
    let l = learn(vec![signal(31337, 9).err(libc::EPERM)]);
    assert!(!l.sandbox.signal_outside, "a failed signal needs nothing");
}

#[test]
fn kernel_facilities_are_allowed_only_when_used() {
    let call = |nr: i64| {
        let mut e = ev(Op::Syscall, "");
        e.0.path = None;
        e.0.arg = nr as u64;
        e
    };
    let l = learn(vec![call(libc::SYS_io_uring_setup), call(libc::SYS_shmget).err(libc::ENOSYS)]);
    assert_eq!(l.sandbox.allow, [Facility::IoUring].into());
    assert!(l.notes.iter().any(|n| n.contains("io_uring_setup")), "{:?}", l.notes);
}

#[test]
fn extra_socket_families_are_named_and_mptcp_is_warned() {
    let l = learn(vec![
        sock(Op::Socket, libc::AF_NETLINK, libc::SOCK_RAW, 0, None, 0),
        sock(Op::Socket, libc::AF_INET, libc::SOCK_STREAM, 262, None, 0),
    ]);
    assert_eq!(l.families, ["netlink".to_owned()].into());
    assert!(l.warnings.iter().any(|w| w.contains("protocol 262")), "{:?}", l.warnings);
}

#[test]
fn the_learned_profile_carries_the_network_and_sandbox_sections() {
    let l = learn(vec![udp(Op::Connect, "127.0.0.53", 53), unix(Op::Connect, "/run/nscd/socket")]);
    let p = l.to_profile("t", crate::profile::Provenance::default());
    assert_eq!(p.network.udp.as_ref().map(|u| u.dns), Some(true));
    assert_eq!(p.network.unix_connect.as_deref(), Some(&["/run/nscd/socket".to_owned()][..]));
    let json = p.to_json_pretty().expect("json");
    let back = crate::profile::Profile::parse(&json, "t.json").expect("round trip");
    assert_eq!(back, p);
}

#[test]
fn a_connect_to_its_own_ephemeral_server_is_noted_not_granted() {
    let tcp = |op, addr, port| sock(op, libc::AF_INET, libc::SOCK_STREAM, libc::IPPROTO_TCP, Some(addr), port);
    // A test server on port 0, the client on whatever port it got: that
    // port is another one next run, so granting it only widens the profile.
    let l =
        learn(vec![tcp(Op::Bind, "127.0.0.1", 0), tcp(Op::Connect, "127.0.0.1", 41_234), tcp(Op::Connect, "127.0.0.1", 5432)]);
    assert_eq!(l.bind_ports, [0].into());
    assert_eq!(l.connect_ports, [5432].into(), "a fixed port stays");
    assert!(l.notes.iter().any(|w| w.contains("127.0.0.1:41234") && w.contains("its own server")), "{:?}", l.notes);
    // Without a bind to port 0 in the tree it is somebody else's server.
    let l = learn(vec![tcp(Op::Connect, "127.0.0.1", 41_234)]);
    assert_eq!(l.connect_ports, [41_234].into());
    // Nor is a remote host on a high port the tree's own server.
    let l = learn(vec![tcp(Op::Bind, "0.0.0.0", 0), tcp(Op::Connect, "192.0.2.9", 41_234)]);
    assert_eq!(l.connect_ports, [41_234].into());
}
