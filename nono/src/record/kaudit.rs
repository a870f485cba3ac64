//! Landlock's own denial records, read from the kernel's audit subsystem
//! (Landlock ABI 7): the exact way to know the sandbox refused an access.
//!
//! nono listens as a multicast reader (`AUDIT_NLGRP_READLOG`, which needs
//! `CAP_AUDIT_READ`), so it never takes the audit daemon's place. If audit
//! is off, records exist only if audit is switched on; that is a system
//! change, so nono does it only when asked (`run --audit --kernel-audit`)
//! and puts the previous state back when the run ends ([`KernelAudit`]'s
//! drop). A nono killed with SIGKILL cannot restore it; `auditctl -e 0`
//! does.
//!
//! Records are matched to recorded events by the syscall's serial: a
//! `LANDLOCK_ACCESS` record (1423) names what was blocked and the path;
//! the `SYSCALL` record (1300) of the same serial names the process.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::time::Duration;

const NETLINK_AUDIT: i32 = 9;
const AUDIT_GET: u16 = 1000;
const AUDIT_SET: u16 = 1001;
const AUDIT_SYSCALL: u16 = 1300;
/// `AUDIT_LANDLOCK_ACCESS` (Linux 6.15).
pub const AUDIT_LANDLOCK_ACCESS: u16 = 1423;
const AUDIT_NLGRP_READLOG: u32 = 1;
const AUDIT_STATUS_ENABLED: u32 = 1;

/// `struct audit_status` (the fields up to `backlog`, which every kernel
/// since 2.6 has).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct AuditStatus {
    mask: u32,
    enabled: u32,
    failure: u32,
    pid: u32,
    rate_limit: u32,
    backlog_limit: u32,
    lost: u32,
    backlog: u32,
}

/// One Landlock denial, as the kernel logged it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LandlockDenial {
    /// `audit(SECONDS.MILLIS:SERIAL)` of the record.
    pub serial: u64,
    pub time_ms: u64,
    /// What blocked it: `fs.read_file`, `net.connect_tcp`, `scope.signal`, ...
    pub blockers: Vec<String>,
    /// The object's path, when the record has one.
    pub path: Option<String>,
    /// The process, from the syscall record of the same serial.
    pub pid: Option<u32>,
}

/// A subscription to the kernel's audit log, and audit switched on for the
/// run if it was off and the caller asked.
pub struct KernelAudit {
    sock: OwnedFd,
    control: OwnedFd,
    /// The `enabled` value to put back on drop, if nono changed it.
    restore: Option<u32>,
    pending: HashMap<u64, LandlockDenial>,
    pids: HashMap<u64, u32>,
}

fn err(call: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{call}: {e}"))
}

fn netlink(groups: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket call; a non-negative result is ours.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, NETLINK_AUDIT) };
    if fd < 0 {
        return Err(err("socket(AF_NETLINK, NETLINK_AUDIT)"));
    }
    // SAFETY: fresh descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_nl is plain data.
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as u16;
    sa.nl_groups = groups;
    // SAFETY: valid descriptor and address of the advertised size.
    let r = unsafe {
        libc::bind(fd.as_raw_fd(), (&raw const sa).cast(), std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t)
    };
    if r != 0 {
        return Err(err(if groups == 0 {
            "bind(NETLINK_AUDIT)"
        } else {
            "joining the audit log multicast group (needs CAP_AUDIT_READ)"
        }));
    }
    Ok(fd)
}

/// Sends one request and returns the first reply of type `want`.
fn request(fd: &OwnedFd, ty: u16, payload: &[u8], want: Option<u16>) -> io::Result<Vec<u8>> {
    let hdr_len = std::mem::size_of::<libc::nlmsghdr>();
    let mut msg = vec![0u8; hdr_len + payload.len()];
    let hdr = libc::nlmsghdr {
        nlmsg_len: msg.len() as u32,
        nlmsg_type: ty,
        nlmsg_flags: (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16,
        nlmsg_seq: 1,
        nlmsg_pid: 0,
    };
    // SAFETY: nlmsghdr is plain data of hdr_len bytes.
    msg[..hdr_len].copy_from_slice(unsafe { std::slice::from_raw_parts((&raw const hdr).cast::<u8>(), hdr_len) });
    msg[hdr_len..].copy_from_slice(payload);
    // SAFETY: sending our buffer.
    if unsafe { libc::send(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) } < 0 {
        return Err(err("send to NETLINK_AUDIT"));
    }
    let mut buf = vec![0u8; 8192];
    for _ in 0..8 {
        // SAFETY: receiving into our buffer.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(err("recv from NETLINK_AUDIT"));
        }
        for (t, body) in messages(&buf[..n as usize]) {
            if t == libc::NLMSG_ERROR as u16 {
                let code = body.get(..4).map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                if code != 0 {
                    return Err(io::Error::from_raw_os_error(-code));
                }
                if want.is_none() {
                    return Ok(Vec::new());
                }
            } else if Some(t) == want {
                return Ok(body.to_vec());
            }
        }
    }
    Err(io::Error::other("no answer from the audit subsystem"))
}

/// `(type, body)` of each netlink message in a datagram.
fn messages(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let hdr = std::mem::size_of::<libc::nlmsghdr>();
    let mut out = Vec::new();
    while buf.len() >= hdr {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        let ty = u16::from_ne_bytes([buf[4], buf[5]]);
        if len < hdr || len > buf.len() {
            break;
        }
        out.push((ty, &buf[hdr..len]));
        let next = (len + 3) & !3;
        buf = &buf[next.min(buf.len())..];
    }
    out
}

fn status(control: &OwnedFd) -> io::Result<AuditStatus> {
    let body = request(control, AUDIT_GET, &[], Some(AUDIT_GET))?;
    let mut s = AuditStatus::default();
    let n = body.len().min(std::mem::size_of::<AuditStatus>());
    // SAFETY: AuditStatus is plain u32s; we copy at most its size.
    unsafe { std::ptr::copy_nonoverlapping(body.as_ptr(), (&raw mut s).cast::<u8>(), n) };
    Ok(s)
}

fn set_enabled(control: &OwnedFd, enabled: u32) -> io::Result<()> {
    let s = AuditStatus { mask: AUDIT_STATUS_ENABLED, enabled, ..AuditStatus::default() };
    // SAFETY: AuditStatus is plain data.
    let bytes = unsafe { std::slice::from_raw_parts((&raw const s).cast::<u8>(), std::mem::size_of::<AuditStatus>()) };
    request(control, AUDIT_SET, bytes, None).map(drop)
}

impl KernelAudit {
    /// Subscribes to the audit log. With `enable`, switches audit on if it
    /// is off (and back off on drop). Errors say what is missing.
    pub fn open(enable: bool) -> io::Result<KernelAudit> {
        let control = netlink(0)?;
        let st = status(&control)?;
        let mut restore = None;
        if st.enabled == 0 {
            if !enable {
                return Err(io::Error::other(
                    "kernel audit is off; pass --kernel-audit to switch it on for this run (it is switched back off after)",
                ));
            }
            set_enabled(&control, 1)?;
            restore = Some(st.enabled);
        }
        let sock = match netlink(AUDIT_NLGRP_READLOG) {
            Ok(s) => s,
            Err(e) => {
                if let Some(prev) = restore {
                    let _ = set_enabled(&control, prev);
                }
                return Err(e);
            }
        };
        Ok(KernelAudit { sock, control, restore, pending: HashMap::new(), pids: HashMap::new() })
    }

    /// Reads what has arrived (waiting up to `wait` for the first record)
    /// and returns the Landlock denials whose syscall record was seen, or
    /// all of them with `flush`.
    pub fn drain(&mut self, wait: Duration, flush: bool) -> Vec<LandlockDenial> {
        let mut buf = vec![0u8; 16384];
        let mut timeout = wait.as_millis() as i32;
        loop {
            let mut p = libc::pollfd { fd: self.sock.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one pollfd.
            if unsafe { libc::poll(&raw mut p, 1, timeout) } <= 0 {
                break;
            }
            timeout = 0;
            // SAFETY: receiving into our buffer.
            let n = unsafe { libc::recv(self.sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
            if n <= 0 {
                break;
            }
            for (ty, body) in messages(&buf[..n as usize]) {
                let text = String::from_utf8_lossy(body);
                self.take(ty, &text);
            }
        }
        let ready: Vec<u64> = self.pending.keys().copied().filter(|s| flush || self.pids.contains_key(s)).collect();
        let mut out: Vec<LandlockDenial> = ready
            .into_iter()
            .filter_map(|s| {
                let mut d = self.pending.remove(&s)?;
                d.pid = self.pids.get(&s).copied();
                Some(d)
            })
            .collect();
        out.sort_by_key(|d| d.serial);
        out
    }

    fn take(&mut self, ty: u16, text: &str) {
        let Some((time_ms, serial)) = stamp(text) else { return };
        match ty {
            AUDIT_LANDLOCK_ACCESS => {
                let blockers = field(text, "blockers").map(|b| b.split(',').map(str::to_owned).collect()).unwrap_or_default();
                let path = field(text, "path").map(|p| decode_untrusted(&p));
                self.pending.insert(serial, LandlockDenial { serial, time_ms, blockers, path, pid: None });
            }
            AUDIT_SYSCALL => {
                if let Some(pid) = field(text, "pid").and_then(|p| p.parse().ok()) {
                    self.pids.insert(serial, pid);
                }
            }
            _ => {}
        }
    }
}

impl Drop for KernelAudit {
    fn drop(&mut self) {
        if let Some(prev) = self.restore
            && let Err(e) = set_enabled(&self.control, prev)
        {
            eprintln!("nono: WARNING: could not switch kernel audit back off ({e}); run `auditctl -e {prev}`");
        }
    }
}

/// `(milliseconds, serial)` of `audit(1732912345.123:456): ...`.
fn stamp(text: &str) -> Option<(u64, u64)> {
    let rest = text.split("audit(").nth(1)?;
    let (inner, _) = rest.split_once(')')?;
    let (time, serial) = inner.split_once(':')?;
    let (secs, millis) = time.split_once('.')?;
    Some((secs.parse::<u64>().ok()? * 1000 + millis.parse::<u64>().ok()?, serial.parse().ok()?))
}

/// The value of `key=` in an audit record: quoted, or up to a space.
fn field(text: &str, key: &str) -> Option<String> {
    let needle = format!(" {key}=");
    let at = text.find(&needle)? + needle.len();
    let rest = &text[at..];
    if let Some(q) = rest.strip_prefix('"') {
        return q.split_once('"').map(|(v, _)| v.to_owned());
    }
    Some(rest.split(' ').next().unwrap_or_default().to_owned())
}

/// Audit writes a string with special bytes as bare hex; a normal one is
/// quoted (the quotes are already gone here).
fn decode_untrusted(v: &str) -> String {
    let is_hex = v.len() % 2 == 0 && !v.is_empty() && v.bytes().all(|b| b.is_ascii_hexdigit());
    if !is_hex {
        return v.to_owned();
    }
    let bytes: Option<Vec<u8>> = (0..v.len()).step_by(2).map(|i| u8::from_str_radix(&v[i..i + 2], 16).ok()).collect();
    bytes.map_or_else(|| v.to_owned(), |b| crate::event::escape_bytes(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landlock_records_are_parsed() {
        let text =
            r#"audit(1732912345.123:456): domain=195ba459b blockers=fs.read_file path="/home/u/.ssh/id_rsa" dev="vda" ino=1234"#;
        let mut a = KernelAudit {
            sock: netlink_placeholder(),
            control: netlink_placeholder(),
            restore: None,
            pending: HashMap::new(),
            pids: HashMap::new(),
        };
        a.take(AUDIT_LANDLOCK_ACCESS, text);
        a.take(AUDIT_SYSCALL, "audit(1732912345.123:456): arch=c000003e syscall=257 success=no exit=-13 pid=4242 uid=1000");
        let d = a.drain(Duration::ZERO, false);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].blockers, ["fs.read_file"]);
        assert_eq!(d[0].path.as_deref(), Some("/home/u/.ssh/id_rsa"));
        assert_eq!((d[0].pid, d[0].time_ms, d[0].serial), (Some(4242), 1_732_912_345_123, 456));
        assert_eq!(decode_untrusted("2F746D702F61206220"), "/tmp/a b ");
    }

    fn netlink_placeholder() -> OwnedFd {
        // SAFETY: eventfd returns a fresh descriptor we own; only used as a
        // stand-in that is closed on drop.
        unsafe { OwnedFd::from_raw_fd(libc::eventfd(0, libc::EFD_CLOEXEC)) }
    }
}
