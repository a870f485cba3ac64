//! Decoding ring-buffer records into [`Event`]s: header validation, path
//! field assembly (reversing the kernel's leaf-first components, joining a
//! relative user string to its base directory, lexical normalisation) and
//! per-process context (which executable each pid runs).
//!
//! Pure: no I/O. Malformed records are errors, never panics.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use nono_common::{EventHeader, flag, path::RAW_TAG};

use crate::event::{Access, DnsArg, Event, NetAddr, Op, Outcome, escape_bytes as escape};

/// Why a record could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {0} bytes is shorter than the {size}-byte header", size = EventHeader::SIZE)]
    Short(usize),
    #[error("record declares {declared} bytes of paths but carries {actual}")]
    PathLength { declared: usize, actual: usize },
    #[error("record has unknown operation code {0}")]
    UnknownOp(u16),
}

/// Decodes records, remembering which executable each process runs.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Added to the kernel's boot-time stamps to get Unix time.
    boot_to_unix_ns: i64,
    exe_by_pid: HashMap<u32, String>,
}

impl Decoder {
    #[must_use]
    pub fn new(boot_to_unix_ns: i64) -> Decoder {
        Decoder { boot_to_unix_ns, exe_by_pid: HashMap::new() }
    }

    /// Seeds the executable of a process started outside the trace.
    pub fn set_exe(&mut self, pid: u32, exe: String) {
        self.exe_by_pid.insert(pid, exe);
    }

    pub fn decode(&mut self, record: &[u8]) -> Result<Event, DecodeError> {
        if record.len() < EventHeader::SIZE {
            return Err(DecodeError::Short(record.len()));
        }
        // SAFETY: the length was checked; EventHeader is plain integers
        // (any bit pattern is valid) and read_unaligned tolerates the ring
        // buffer's 8-byte record alignment.
        let h: EventHeader = unsafe { std::ptr::read_unaligned(record.as_ptr().cast::<EventHeader>()) };
        let data = &record[EventHeader::SIZE..];
        let (l1, l2) = (usize::from(h.path_len), usize::from(h.path2_len));
        if l1 + l2 > data.len() {
            return Err(DecodeError::PathLength { declared: l1 + l2, actual: data.len() });
        }
        let op = Op::from_code(h.op).ok_or(DecodeError::UnknownOp(h.op))?;
        let mut incomplete =
            h.flags & (flag::PATH_FAILED | flag::PATH2_FAILED | flag::PATH_TRUNCATED | flag::PATH2_TRUNCATED) != 0;
        let mut dns_arg = None;
        let (mut path, mut path2) = if op == Op::Dns {
            // The field is the message's bytes, parsed here (`record::dns`).
            let dns = dns_fields(&h, &data[..l1]);
            // A capture cut at its limit is normal: the question comes first.
            incomplete = dns.0.is_none();
            dns_arg = Some(dns.2);
            (dns.0, dns.1)
        } else {
            paths(&h, op, &data[..l1], &data[l1..l1 + l2])
        };
        if op != Op::Dns && h.flags & flag::DETACHED != 0 {
            path = path.map(|p| format!("<detached>{p}"));
        }
        if op == Op::Exec && path2 == path {
            // The exec named the executable itself (not a script).
            path2 = None;
        }
        let created = h.flags & flag::CREATED != 0;
        let directory = h.flags & flag::DIRECTORY != 0;
        let mut access = match op {
            Op::Open => Access::from_open_flags(h.arg, created, directory),
            Op::Create => Access { create: true, ..Access::default() },
            _ => Access::default(),
        };
        if op == Op::Exec || (op == Op::Open && h.flags & flag::EXEC_OPEN != 0) {
            access.exec = true;
        }
        let net = (h.net_family != 0).then(|| NetAddr {
            family: h.net_family,
            // socket(2) has a kind but no address.
            addr: if op == Op::Socket { None } else { ip_of(h.net_family, &h.net_addr) },
            port: h.net_port,
            sock_type: h.sock_type,
            protocol: h.sock_proto,
        });
        // Fork and exit carry a pid or code, not an errno.
        let outcome = if matches!(op, Op::Fork | Op::Exit) { Outcome::Ok } else { Outcome::from_ret(i64::from(h.result)) };
        match op {
            Op::Exec if outcome == Outcome::Ok => {
                if let Some(p) = &path {
                    self.exe_by_pid.insert(h.pid, p.clone());
                }
            }
            Op::Fork => {
                if let Some(exe) = self.exe_by_pid.get(&h.pid).cloned() {
                    self.exe_by_pid.insert(h.arg as u32, exe);
                }
            }
            _ => {}
        }
        let exe = self.exe_by_pid.get(&h.pid).cloned();
        if op == Op::Exit {
            self.exe_by_pid.remove(&h.pid);
        }
        Ok(Event {
            time_ns: (h.boot_ns as i64).saturating_add(self.boot_to_unix_ns),
            pid: h.pid,
            tid: h.tid,
            ppid: h.ppid,
            uid: h.uid,
            comm: comm(&h.comm),
            exe,
            op,
            path,
            path2,
            access,
            arg: dns_arg.map_or(h.arg, DnsArg::pack),
            file_type: h.mode & libc::S_IFMT,
            outcome,
            net,
            incomplete,
        })
    }
}

/// The two path fields of a record that is not DNS.
fn paths(h: &EventHeader, op: Op, first: &[u8], second: &[u8]) -> (Option<String>, Option<String>) {
    let path = if h.flags & flag::ABSTRACT != 0 {
        // An abstract Unix name: `@` and exactly the name's bytes.
        first.strip_prefix(&[RAW_TAG]).map(|raw| format!("@{}", escape_abstract(raw)))
    } else {
        decode_path(first)
    };
    let path2 = if op == Op::Symlink {
        // A symlink's target is kept exactly as written.
        raw_segment(second).map(escape)
    } else {
        decode_path(second)
    };
    (path, path2)
}

/// An `op::DNS` record's `(name, answer addresses, arg)`: the name is
/// `None` when the message is not one nono accepts (see `record::dns`).
fn dns_fields(h: &EventHeader, payload: &[u8]) -> (Option<String>, Option<String>, DnsArg) {
    let answer = h.arg == nono_common::dns::RECEIVED;
    let tcp = i32::from(h.sock_type) == libc::SOCK_STREAM;
    let truncated = h.flags & flag::PATH_TRUNCATED != 0;
    match super::dns::parse(payload, tcp, truncated) {
        Ok(m) => {
            let addrs = (!m.addrs.is_empty()).then(|| m.addrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(","));
            (Some(m.name), addrs, DnsArg { answer, qtype: m.qtype, rcode: m.rcode })
        }
        Err(e) => {
            log::debug!("DNS message of pid {} not parsed: {e}", h.pid);
            (None, None, DnsArg { answer, qtype: 0, rcode: 0 })
        }
    }
}

fn comm(raw: &[u8; 16]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    escape(&raw[..end])
}

fn ip_of(family: u16, raw: &[u8; 16]) -> Option<IpAddr> {
    match i32::from(family) {
        libc::AF_INET => Some(IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))),
        libc::AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(*raw))),
        _ => None,
    }
}

/// An abstract socket name in the escaped text form; its NUL bytes (legal
/// in such a name) become `\x00`, so the text stays one C string and
/// [`crate::event::unescape_bytes`] still restores the exact bytes.
fn escape_abstract(raw: &[u8]) -> String {
    escape(raw).replace('\0', "\\x00")
}

/// The raw user string of a field, if it has one.
fn raw_segment(field: &[u8]) -> Option<&[u8]> {
    let rest = field.strip_prefix(&[RAW_TAG])?;
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Assembles one path field into an absolute, normalised path.
///
/// Layout (see `nono_common::path`): an optional `RAW_TAG raw\0`, then the
/// base directory's components leaf-first, each NUL-terminated.
#[must_use]
pub fn decode_path(field: &[u8]) -> Option<String> {
    if field.is_empty() {
        return None;
    }
    let (raw, components) = match field.strip_prefix(&[RAW_TAG]) {
        Some(rest) => {
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            let next = (end + 1).min(rest.len());
            (Some(&rest[..end]), &rest[next..])
        }
        None => (None, field),
    };
    let mut base: Vec<&[u8]> = components.split(|&b| b == 0).filter(|c| !c.is_empty()).collect();
    base.reverse();
    let mut joined = Vec::with_capacity(field.len() + 1);
    match raw {
        Some(r) if r.first() == Some(&b'/') => joined.extend_from_slice(r),
        Some(r) => {
            for c in &base {
                joined.push(b'/');
                joined.extend_from_slice(c);
            }
            joined.push(b'/');
            joined.extend_from_slice(r);
        }
        None => {
            for c in &base {
                joined.push(b'/');
                joined.extend_from_slice(c);
            }
        }
    }
    Some(normalise(&joined))
}

/// Lexical normalisation: collapses `//`, `.` and `..` (never above `/`).
/// Symlinks are not resolved here; successful opens already carry the
/// kernel's canonical path.
#[must_use]
pub fn normalise(path: &[u8]) -> String {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    let mut out = Vec::with_capacity(path.len() + 1);
    for p in &parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    escape(&out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nono_common::op;

    fn components(leaf_first: &[&str]) -> Vec<u8> {
        let mut v = Vec::new();
        for c in leaf_first {
            v.extend_from_slice(c.as_bytes());
            v.push(0);
        }
        v
    }

    fn raw(s: &str, base_leaf_first: &[&str]) -> Vec<u8> {
        let mut v = vec![RAW_TAG];
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        v.extend(components(base_leaf_first));
        v
    }

    fn record(h: EventHeader, p1: &[u8], p2: &[u8]) -> Vec<u8> {
        let mut h = h;
        h.path_len = p1.len() as u16;
        h.path2_len = p2.len() as u16;
        // SAFETY: EventHeader is plain integers with no padding.
        let bytes = unsafe { std::slice::from_raw_parts((&raw const h).cast::<u8>(), EventHeader::SIZE) };
        let mut v = bytes.to_vec();
        v.extend_from_slice(p1);
        v.extend_from_slice(p2);
        v
    }

    fn header(op: u16) -> EventHeader {
        EventHeader {
            boot_ns: 1_000,
            arg: 0,
            pid: 10,
            tid: 11,
            ppid: 1,
            uid: 1000,
            op,
            flags: 0,
            result: 0,
            mode: 0,
            path_len: 0,
            path2_len: 0,
            net_family: 0,
            net_port: 0,
            sock_type: 0,
            sock_proto: 0,
            net_addr: [0; 16],
            comm: *b"cat\0\0\0\0\0\0\0\0\0\0\0\0\0",
        }
    }

    #[test]
    fn kernel_components_are_reversed_into_an_absolute_path() {
        assert_eq!(decode_path(&components(&["passwd", "etc"])).as_deref(), Some("/etc/passwd"));
        assert_eq!(decode_path(&components(&[])), None, "no field, no path");
        assert_eq!(decode_path(&[0]).as_deref(), Some("/"), "the root is one empty component");
    }

    #[test]
    fn relative_user_paths_join_their_base_directory() {
        assert_eq!(decode_path(&raw("b/c.txt", &["work", "tmp"])).as_deref(), Some("/tmp/work/b/c.txt"));
        assert_eq!(decode_path(&raw("../x", &["work", "tmp"])).as_deref(), Some("/tmp/x"));
        assert_eq!(decode_path(&raw("./x", &[])).as_deref(), Some("/x"));
    }

    #[test]
    fn absolute_user_paths_ignore_the_base_and_are_normalised() {
        assert_eq!(decode_path(&raw("/etc//./hosts", &["ignored"])).as_deref(), Some("/etc/hosts"));
        assert_eq!(decode_path(&raw("/../..", &[])).as_deref(), Some("/"));
    }

    #[test]
    fn invalid_utf8_is_escaped_not_lost() {
        assert_eq!(escape(b"a\xffb"), "a\\xffb");
        assert_eq!(decode_path(&components(&["a\\b", "w"])).as_deref(), Some("/w/a\\\\b"), "a real backslash is doubled");
    }

    #[test]
    fn open_record_decodes_flags_result_and_creation() {
        let mut h = header(op::OPEN);
        h.arg = (libc::O_WRONLY | libc::O_CREAT) as u64;
        h.flags = flag::CREATED;
        let rec = record(h, &components(&["out.txt", "work"]), &[]);
        let e = Decoder::new(5).decode(&rec).expect("decodes");
        assert_eq!(e.op, Op::Open);
        assert_eq!(e.path.as_deref(), Some("/work/out.txt"));
        assert!(e.access.write && e.access.create && !e.access.read);
        assert_eq!(e.outcome, Outcome::Ok);
        assert_eq!(e.time_ns, 1_005);
        assert_eq!(e.comm, "cat");
    }

    #[test]
    fn failed_open_carries_the_errno() {
        let mut h = header(op::OPEN);
        h.result = -libc::ENOENT;
        let rec = record(h, &raw("missing", &["work"]), &[]);
        let e = Decoder::default().decode(&rec).expect("decodes");
        assert_eq!(e.outcome, Outcome::Error(libc::ENOENT));
        assert_eq!(e.path.as_deref(), Some("/work/missing"));
    }

    #[test]
    fn rename_has_both_paths_and_symlink_keeps_its_target_verbatim() {
        let rec = record(header(op::RENAME), &raw("a", &["d1"]), &raw("/d2/b", &[]));
        let e = Decoder::default().decode(&rec).expect("decodes");
        assert_eq!((e.path.as_deref(), e.path2.as_deref()), (Some("/d1/a"), Some("/d2/b")));
        let rec = record(header(op::SYMLINK), &raw("link", &["d"]), &raw("../target", &[]));
        let e = Decoder::default().decode(&rec).expect("decodes");
        assert_eq!((e.path.as_deref(), e.path2.as_deref()), (Some("/d/link"), Some("../target")));
    }

    #[test]
    fn connect_decodes_address_and_port() {
        let mut h = header(op::CONNECT);
        h.net_family = libc::AF_INET as u16;
        h.net_port = 8080;
        h.net_addr[..4].copy_from_slice(&[127, 0, 0, 1]);
        let e = Decoder::default().decode(&record(h, &[], &[])).expect("decodes");
        let net = e.net.expect("net");
        assert_eq!((net.addr, net.port), (Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), 8080));
    }

    #[test]
    fn exec_and_fork_track_the_executable_per_process() {
        let mut d = Decoder::default();
        d.decode(&record(header(op::EXEC), &components(&["sh", "bin", "usr"]), &[])).expect("exec");
        let mut fork = header(op::FORK);
        fork.arg = 42;
        d.decode(&record(fork, &[], &[])).expect("fork");
        let mut child = header(op::OPEN);
        child.pid = 42;
        let e = d.decode(&record(child, &components(&["x"]), &[])).expect("open");
        assert_eq!(e.exe.as_deref(), Some("/usr/bin/sh"));
    }

    #[test]
    fn detached_objects_never_decode_as_root() {
        let mut h = header(op::OPEN);
        h.flags = flag::DETACHED;
        let e = Decoder::default().decode(&record(h, &components(&["pipe:[7]"]), &[])).expect("decodes");
        assert_eq!(e.path.as_deref(), Some("<detached>/pipe:[7]"));
    }

    #[test]
    fn an_abstract_unix_name_keeps_every_byte() {
        let mut h = header(op::CONNECT);
        h.net_family = libc::AF_UNIX as u16;
        h.sock_type = libc::SOCK_STREAM as u16;
        h.flags = flag::ABSTRACT;
        // The kernel sends the tag and exactly the name: no terminator, and
        // a NUL inside the name is part of it.
        let rec = record(h, &[RAW_TAG, b'b', b'u', b's', 0, b'x'], &[]);
        let e = Decoder::default().decode(&rec).expect("decodes");
        assert_eq!(e.path.as_deref(), Some("@bus\\x00x"));
        assert_eq!(crate::event::unescape_bytes(&e.path.expect("path")[1..]).expect("unescapes"), b"bus\0x");
        assert_eq!(e.net.map(|n| n.proto()), Some(crate::event::Proto::UnixStream));
    }

    #[test]
    fn an_exec_keeps_the_name_it_was_given_only_when_it_differs() {
        let mut d = Decoder::default();
        let script = d
            .decode(&record(header(op::EXEC), &components(&["dash", "bin", "usr"]), &raw("./s.sh", &["work"])))
            .expect("exec of a script");
        assert_eq!((script.path.as_deref(), script.path2.as_deref()), (Some("/usr/bin/dash"), Some("/work/s.sh")));
        assert!(script.access.exec);
        let plain =
            d.decode(&record(header(op::EXEC), &components(&["ls", "bin", "usr"]), &raw("/usr/bin/ls", &[]))).expect("exec");
        assert_eq!(plain.path2, None, "an exec that names its executable has no second path");
    }

    #[test]
    fn an_exec_open_grants_execute() {
        let mut h = header(op::OPEN);
        h.flags = flag::EXEC_OPEN | flag::FROM_LSM;
        let e = Decoder::default().decode(&record(h, &components(&["s.sh", "work"]), &[])).expect("decodes");
        assert!(e.access.exec && e.access.read, "{:?}", e.access);
        let e = Decoder::default().decode(&record(header(op::OPEN), &components(&["s.sh", "work"]), &[])).expect("decodes");
        assert!(!e.access.exec, "an ordinary open is not an exec");
    }

    #[test]
    fn socket_and_signal_records_decode() {
        let mut h = header(op::SOCKET);
        h.net_family = libc::AF_INET as u16;
        h.sock_type = libc::SOCK_DGRAM as u16;
        h.sock_proto = libc::IPPROTO_UDP as u16;
        h.arg = (libc::SOCK_DGRAM | libc::SOCK_NONBLOCK) as u64;
        let e = Decoder::default().decode(&record(h, &[], &[])).expect("socket");
        let net = e.net.expect("net");
        assert_eq!((net.proto(), net.addr, net.port), (crate::event::Proto::Udp, None, 0));
        let mut h = header(op::SIGNAL);
        h.arg = (libc::SIGTERM as u64) | (u64::from(4242u32) << 32);
        let e = Decoder::default().decode(&record(h, &[], &[])).expect("signal");
        assert_eq!(e.signal(), Some((libc::SIGTERM, 4242)));
        let mut h = header(op::SIGNAL);
        h.arg = u64::from((-7i32) as u32) << 32;
        assert_eq!(Decoder::default().decode(&record(h, &[], &[])).expect("group").signal(), Some((0, -7)));
    }

    #[test]
    fn malformed_records_are_errors() {
        let mut d = Decoder::default();
        assert_eq!(d.decode(&[0; 10]), Err(DecodeError::Short(10)));
        let mut rec = record(header(op::OPEN), b"abc", &[]);
        rec.truncate(rec.len() - 1);
        assert!(matches!(d.decode(&rec), Err(DecodeError::PathLength { .. })));
        assert_eq!(d.decode(&record(header(99), &[], &[])), Err(DecodeError::UnknownOp(99)));
    }
}
