//! The sandbox's own TCP servers: a command that listens on port 0 and
//! then connects to the port the kernel picked (test servers, local
//! language or MCP servers) needs a port no profile can name in advance,
//! and Landlock's rules are fixed once the command starts. The broker sees
//! every `listen` of the sandbox, so it remembers those sockets, and a
//! loopback connect to a port outside the profile goes through when every
//! listening socket that could take the connection is one of them: the
//! peer is then the sandbox itself, which it could reach by a pipe anyway.
//!
//! Sockets are known by inode (unique while the socket is open), and the
//! check reads the kernel's socket tables at connect time, so a port the
//! sandbox has closed, or shares with a listener outside it
//! (`SO_REUSEPORT`, a more specific address), is refused as before.
//!
//! What remains: a process outside that joins the port (`SO_REUSEPORT`,
//! same user) between the check and the connect could take the
//! connection. Such a process can as well connect *in* to the sandbox's
//! listener, which no Landlock rule restricts, so this opens no channel
//! that collusion from outside did not have already.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `TCP_LISTEN` in the `st` column of `/proc/net/tcp`.
const LISTEN: &str = "0A";

/// Most connects to the sandbox's own listeners in flight at once: each
/// has a thread, and a blocking connect to a full backlog waits.
const MAX_IN_FLIGHT: usize = 64;
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Runs `job` (a connect to an own listener) on a new thread, which has
/// the calling thread's identity and no Landlock domain. `false` when
/// [`MAX_IN_FLIGHT`] are running or no thread could be started.
pub(super) fn spawn_outside_domain(job: impl FnOnce() + Send + 'static) -> bool {
    if IN_FLIGHT.fetch_add(1, Ordering::SeqCst) >= MAX_IN_FLIGHT {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
        return false;
    }
    let spawned = std::thread::Builder::new().name("nono-own-connect".into()).spawn(move || {
        job();
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    });
    if spawned.is_err() {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
    spawned.is_ok()
}

/// Listening sockets of the sandbox, as `(port, inode)`.
#[derive(Debug, Default)]
pub struct OwnListeners(Mutex<HashSet<(u16, u64)>>);

impl OwnListeners {
    /// Remembers `sock` (an IP socket the sandbox listens on, or is about
    /// to) if it has a port.
    pub(super) fn add(&self, sock: &OwnedFd) {
        let Some(port) = super::net::local_addr(sock).ok().flatten().map(|a| a.port()).filter(|p| *p != 0) else { return };
        let Ok(meta) = std::fs::metadata(format!("/proc/self/fd/{}", sock.as_raw_fd())) else { return };
        let ino = std::os::unix::fs::MetadataExt::ino(&meta);
        if let Ok(mut set) = self.0.lock() {
            set.insert((port, ino));
        }
    }

    /// Whether a TCP connect to `to` can only reach the sandbox's own
    /// listeners: `to` is loopback, and every socket listening where it
    /// could accept the connection (there is at least one) is the
    /// sandbox's.
    pub(super) fn owns(&self, to: SocketAddr) -> bool {
        let to = as_loopback(to);
        if !to.ip().is_loopback() {
            return false;
        }
        let mine: HashSet<u64> = match self.0.lock() {
            Ok(set) => set.iter().filter(|(p, _)| *p == to.port()).map(|(_, ino)| *ino).collect(),
            Err(_) => return false,
        };
        if mine.is_empty() {
            return false;
        }
        let v4 = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        let v6 = std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
        let mut reachable = reachable_listeners(&v4, to);
        reachable.extend(reachable_listeners(&v6, to));
        !reachable.is_empty() && reachable.iter().all(|ino| mine.contains(ino))
    }
}

/// Where a connect to `to` goes, as the kernel routes it: a connect to
/// the unspecified address (`0.0.0.0`, `::`) reaches this host's loopback
/// (`127.0.0.1`, `::1`), and an IPv4-mapped IPv6 address is the IPv4 one.
fn as_loopback(to: SocketAddr) -> SocketAddr {
    let ip = match to.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        ip @ IpAddr::V4(_) => ip,
    };
    SocketAddr::new(ip, to.port())
}

/// Inodes of the listening sockets in one `/proc/net/tcp` or `tcp6`
/// table that a connect to `to` could reach: the same address or a
/// wildcard of the same family, and, for an IPv4 `to`, an IPv6 wildcard
/// or v4-mapped listener (dual-stack unless `IPV6_V6ONLY`, which this
/// cannot see: counted, to err on refusing).
fn reachable_listeners(table: &str, to: SocketAddr) -> Vec<u64> {
    let mut out = Vec::new();
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else { continue };
        if *state != LISTEN {
            continue;
        }
        let Some((ip, port)) = parse_local(local) else { continue };
        if port != to.port() {
            continue;
        }
        let reaches = match (to.ip(), ip) {
            (IpAddr::V4(want), IpAddr::V4(have)) => have == want || have.is_unspecified(),
            (IpAddr::V4(want), IpAddr::V6(have)) => have.is_unspecified() || have.to_ipv4_mapped() == Some(want),
            (IpAddr::V6(want), IpAddr::V6(have)) => have == want || have.is_unspecified(),
            (IpAddr::V6(_), IpAddr::V4(_)) => false,
        };
        if reaches && let Ok(ino) = inode.parse() {
            out.push(ino);
        }
    }
    out
}

/// `0100007F:1F90` (IPv4) or 32 hex digits and a port (IPv6): the address
/// is printed as native-endian 32-bit words of the network-order bytes.
fn parse_local(text: &str) -> Option<(IpAddr, u16)> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let mut bytes = Vec::with_capacity(16);
    for i in (0..addr.len()).step_by(8) {
        let word = u32::from_str_radix(addr.get(i..i + 8)?, 16).ok()?;
        bytes.extend_from_slice(&word.to_ne_bytes());
    }
    let ip = match bytes.len() {
        4 => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
        16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => return None,
    };
    Some((ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:A1B2 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111 1 0000000000000000 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1 0000000000000000 100 0 0 10 0
   2: 0100007F:A1B2 0100007F:C000 01 00000000:00000000 00:00000000 00000000  1000        0 333 1 0000000000000000 20 4 30 10 -1
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:A1B2 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 444 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 555 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn the_kernel_tables_parse_into_addresses_and_ports() {
        assert_eq!(parse_local("0100007F:A1B2"), Some((IpAddr::V4(Ipv4Addr::LOCALHOST), 0xA1B2)));
        assert_eq!(parse_local("00000000000000000000000001000000:0016"), Some((IpAddr::V6(Ipv6Addr::LOCALHOST), 22)));
        assert_eq!(parse_local("junk"), None);
        assert_eq!(parse_local("0100007F:zz"), None);
    }

    #[test]
    fn the_unspecified_address_is_loopback_as_the_kernel_routes_it() {
        let to = |s: &str| s.parse::<SocketAddr>().expect("addr");
        assert_eq!(as_loopback(to("0.0.0.0:80")), to("127.0.0.1:80"));
        assert_eq!(as_loopback(to("[::]:80")), to("[::1]:80"));
        assert_eq!(as_loopback(to("[::ffff:127.0.0.1]:80")), to("127.0.0.1:80"));
        assert_eq!(as_loopback(to("[::ffff:0.0.0.0]:80")), to("127.0.0.1:80"));
        assert_eq!(as_loopback(to("10.0.0.1:80")), to("10.0.0.1:80"));
        assert_eq!(reachable_listeners(TCP, as_loopback(to("0.0.0.0:41394"))), [111]);
        assert_eq!(reachable_listeners(TCP6, as_loopback(to("[::]:41394"))), [444]);
    }

    #[test]
    fn only_listeners_that_could_take_the_connection_count() {
        let to = |s: &str| s.parse::<SocketAddr>().expect("addr");
        // The established socket on the same port (333) is not a listener.
        assert_eq!(reachable_listeners(TCP, to("127.0.0.1:41394")), [111]);
        assert_eq!(reachable_listeners(TCP6, to("[::1]:41394")), [444]);
        assert!(reachable_listeners(TCP6, to("127.0.0.1:41394")).is_empty(), "::1 does not take IPv4");
        // Wildcards take loopback connections of their family, and an IPv6
        // wildcard may take IPv4 ones too.
        assert_eq!(reachable_listeners(TCP, to("127.0.0.1:22")), [222]);
        assert_eq!(reachable_listeners(TCP6, to("127.0.0.1:22")), [555]);
        assert!(reachable_listeners(TCP, to("127.0.0.1:23")).is_empty());
    }
}
