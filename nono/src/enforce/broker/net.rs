//! Network notifications: `connect`, `sendto` with an address, `sendmsg`
//! and `sendmmsg`. The broker reads the arguments once (address, data,
//! control messages), decides what the profile allows (pathname Unix
//! sockets by inode, UDP and ICMP destinations), and a confined worker
//! performs the call on a duplicate of the command's socket, so Landlock
//! still rules TCP ports and scoping (see `confined`).
//!
//! A Unix socket path is resolved once, to a descriptor of the socket's
//! inode; the worker connects (or sends) to `/proc/self/fd/N`, which names
//! that inode and nothing else, so a swapped path cannot redirect it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::fs::MetadataExt as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::caller::{Caller, Errno, open_path};
use super::notif::{Listener, Notif, Reply};
use super::own::OwnListeners;
use super::plan::BrokerPlan;
use super::{AuditNote, Handled};
use crate::event::{NetAddr, Op, Proto};

/// Largest address a socket call accepts (`sizeof(struct sockaddr_storage)`).
const MAX_ADDR: usize = 128;
/// Largest message the broker copies (more fails with EMSGSIZE).
const MAX_SEND: usize = 16 << 20;
/// Largest control buffer copied.
const MAX_CONTROL: usize = 64 << 10;
/// `UIO_MAXIOV`.
const MAX_IOV: usize = 1024;

fn last_errno() -> Errno {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

/// The syscalls this module answers.
pub const SYSCALLS: &[i64] = &[libc::SYS_connect, libc::SYS_sendto, libc::SYS_sendmsg, libc::SYS_sendmmsg, libc::SYS_listen];

/// One message to send, with everything copied out of the caller.
#[derive(Debug)]
pub(super) struct Msg {
    name: Option<Vec<u8>>,
    data: Vec<u8>,
    control: Vec<u8>,
    /// Descriptors the message carries or names (kept open until it is sent).
    keep: Vec<OwnedFd>,
}

/// What a confined worker performs.
#[derive(Debug)]
pub(super) enum NetOp {
    Connect {
        addr: Vec<u8>,
        _keep: Option<OwnedFd>,
    },
    /// `own`: where to remember the socket once it listens (TCP over IP).
    Listen {
        backlog: i32,
        own: Option<Arc<OwnListeners>>,
    },
    Send {
        msgs: Vec<Msg>,
        flags: i32,
        multi: bool,
        lens_at: Vec<u64>,
    },
}

/// A decided network call, to run on a confined worker.
#[derive(Debug)]
pub(super) struct Work {
    pub id: u64,
    pub sock: OwnedFd,
    pub op: NetOp,
    /// A connect to the sandbox's own listener on a port the profile does
    /// not list (see `own`): performed outside the Landlock domain, whose
    /// port rules would refuse it.
    pub outside_domain: bool,
}

/// Decides a network notification: either an immediate answer, or work
/// for a confined worker. `None`: not a network call.
pub(super) fn handle(
    n: &Notif,
    caller: &mut Caller,
    plan: &BrokerPlan,
    own: &Arc<OwnListeners>,
) -> Option<Result<Work, Handled>> {
    let a = n.args;
    let r = match i64::from(n.nr) {
        libc::SYS_connect => connect(n, caller, plan, own, a[0] as i32, a[1], a[2] as usize),
        libc::SYS_sendto => sendto(n, caller, plan, a),
        libc::SYS_sendmsg => sendmsg(n, caller, plan, a[0] as i32, a[1], a[2] as i32, false, 1),
        libc::SYS_sendmmsg => sendmsg(n, caller, plan, a[0] as i32, a[1], a[3] as i32, true, (a[2] as u32 as usize).min(MAX_IOV)),
        libc::SYS_listen => listen(n, caller, plan, own, a[0] as i32, a[1] as i32),
        _ => return None,
    };
    Some(r)
}

/// Family, type and protocol of a socket.
struct Kind {
    domain: i32,
    ty: i32,
    proto: i32,
}

fn sockopt(fd: &OwnedFd, opt: i32) -> Result<i32, Errno> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: valid descriptor, output buffer of the advertised size.
    let r = unsafe { libc::getsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, opt, (&raw mut v).cast(), &raw mut len) };
    if r != 0 { Err(last_errno()) } else { Ok(v) }
}

fn kind(fd: &OwnedFd) -> Result<Kind, Errno> {
    Ok(Kind { domain: sockopt(fd, libc::SO_DOMAIN)?, ty: sockopt(fd, libc::SO_TYPE)?, proto: sockopt(fd, libc::SO_PROTOCOL)? })
}

impl Kind {
    fn proto(&self) -> Proto {
        NetAddr { family: self.domain as u16, addr: None, port: 0, sock_type: self.ty as u16, protocol: self.proto as u16 }
            .proto()
    }
}

/// The IP destination in a sockaddr, `None` for `AF_UNSPEC` (a UDP
/// disconnect) or anything that is not IP.
fn ip_dest(addr: &[u8]) -> Option<SocketAddr> {
    let family = i32::from(u16::from_ne_bytes([*addr.first()?, *addr.get(1)?]));
    let port = u16::from_be_bytes([*addr.get(2)?, *addr.get(3)?]);
    match family {
        libc::AF_INET => {
            let b: [u8; 4] = addr.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(b)), port))
        }
        libc::AF_INET6 => {
            let b: [u8; 16] = addr.get(8..24)?.try_into().ok()?;
            // A v4-mapped address on a dual-stack socket is the v4 host.
            Some(SocketAddr::new(Ipv6Addr::from(b).to_canonical(), port))
        }
        _ => None,
    }
}

/// The IP address a socket is bound to (`None` for one that is not IP).
pub(super) fn local_addr(sock: &OwnedFd) -> Result<Option<SocketAddr>, Errno> {
    // SAFETY: sockaddr_storage is plain data; getsockname fills it.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: our descriptor and a buffer of the advertised size.
    if unsafe { libc::getsockname(sock.as_raw_fd(), (&raw mut ss).cast(), &raw mut len) } != 0 {
        return Err(last_errno());
    }
    // SAFETY: `ss` holds `len` bytes of a sockaddr.
    let bytes = unsafe { std::slice::from_raw_parts((&raw const ss).cast::<u8>(), len as usize) };
    Ok(ip_dest(bytes))
}

/// What a destination address of the caller becomes: the bytes the
/// worker passes to the kernel (rewritten for pathname Unix sockets), and
/// the descriptor that keeps the socket inode named.
struct Dest {
    addr: Vec<u8>,
    keep: Option<OwnedFd>,
}

/// Checks one destination against the profile. `Err` answers the call.
fn dest(
    caller: &mut Caller,
    plan: &BrokerPlan,
    k: &Kind,
    addr: Vec<u8>,
) -> Result<Dest, (Errno, bool, Option<String>, Option<NetAddr>)> {
    let family = addr.get(..2).map_or(0, |f| i32::from(u16::from_ne_bytes([f[0], f[1]])));
    let mut net = NetAddr { family: family as u16, addr: None, port: 0, sock_type: k.ty as u16, protocol: k.proto as u16 };
    if family == libc::AF_UNIX && addr.len() > 2 {
        let sun = &addr[2..];
        if sun[0] == 0 {
            // Abstract: Landlock's scoping rules it, on the worker.
            return Ok(Dest { addr, keep: None });
        }
        let end = sun.iter().position(|&b| b == 0).unwrap_or(sun.len());
        let path = &sun[..end];
        let shown = Some(crate::event::escape_bytes(path));
        return match unix_target(caller, plan, path) {
            Ok(fd) => {
                let rewritten = sockaddr_un(&format!("/proc/self/fd/{}", fd.as_raw_fd()));
                Ok(Dest { addr: rewritten, keep: Some(fd) })
            }
            Err((e, refused)) => Err((e, refused, shown, Some(net))),
        };
    }
    if let Some(to) = ip_dest(&addr) {
        net.addr = Some(to.ip());
        net.port = to.port();
        let proto = k.proto();
        if matches!(proto, Proto::Udp | Proto::Icmp) && !plan.datagram_allowed(proto, to) {
            return Err((libc::EACCES, true, None, Some(net)));
        }
    }
    Ok(Dest { addr, keep: None })
}

/// Resolves a pathname Unix socket the caller names and checks it is one
/// the profile lists (same inode). `Err((errno, refused_by_policy))`.
fn unix_target(caller: &mut Caller, plan: &BrokerPlan, path: &[u8]) -> Result<OwnedFd, (Errno, bool)> {
    let target = if path.starts_with(b"/") {
        let p = std::str::from_utf8(path).map_err(|_| (libc::ENOENT, false))?;
        open_path(&self_to_pid(caller, p), 0).map_err(|e| (e, false))?
    } else {
        let base = caller.base(libc::AT_FDCWD).map_err(|e| (e, false))?;
        let c = std::ffi::CString::new(path).map_err(|_| (libc::EINVAL, false))?;
        // SAFETY: valid dirfd and C string; a non-negative result is ours.
        let fd = unsafe { libc::openat(base.as_raw_fd(), c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err((last_errno(), false));
        }
        // SAFETY: fresh descriptor.
        unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }
    };
    let st = std::fs::metadata(format!("/proc/self/fd/{}", target.as_raw_fd())).map_err(|_| (libc::ENOENT, false))?;
    if st.mode() & libc::S_IFMT != libc::S_IFSOCK {
        return Err((libc::ECONNREFUSED, false));
    }
    let allowed =
        plan.unix_connect.iter().any(|p| std::fs::metadata(p).is_ok_and(|m| m.dev() == st.dev() && m.ino() == st.ino()));
    if allowed { Ok(target) } else { Err((libc::EACCES, true)) }
}

fn self_to_pid(caller: &Caller, p: &str) -> String {
    let tgid = caller.tgid().unwrap_or(caller.tid);
    for prefix in ["/proc/self", "/proc/thread-self"] {
        if let Some(rest) = p.strip_prefix(prefix)
            && (rest.is_empty() || rest.starts_with('/'))
        {
            return format!("/proc/{tgid}{rest}");
        }
    }
    p.to_owned()
}

fn sockaddr_un(path: &str) -> Vec<u8> {
    let mut v = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
    v.extend_from_slice(path.as_bytes());
    v.push(0);
    v
}

fn refused(op: Op, errno: Errno, refused_by_policy: bool, path: Option<String>, net: Option<NetAddr>, nr: i32) -> Handled {
    let note = AuditNote { op, path, path2: None, arg: nr as u64, net };
    if refused_by_policy { Handled::refused(errno, note) } else { Handled::reply_noted(Reply::Error(errno), note) }
}

fn connect(
    n: &Notif,
    caller: &mut Caller,
    plan: &BrokerPlan,
    own: &OwnListeners,
    fd: i32,
    addr: u64,
    len: usize,
) -> Result<Work, Handled> {
    if len > MAX_ADDR {
        return Err(Handled::reply(Reply::Error(libc::EINVAL)));
    }
    let addr = caller.read(addr, len).map_err(|e| Handled::reply(Reply::Error(e)))?;
    let sock = caller.getfd(fd).map_err(|e| Handled::reply(Reply::Error(e)))?;
    let k = kind(&sock).map_err(|e| Handled::reply(Reply::Error(e)))?;
    match dest(caller, plan, &k, addr) {
        Ok(d) => {
            // Only plain TCP (not MPTCP or SCTP, which the baseline refuses).
            let outside_domain = k.proto() == Proto::Tcp
                && plan
                    .connect_ports
                    .as_ref()
                    .is_some_and(|ports| ip_dest(&d.addr).is_some_and(|to| !ports.contains(&to.port()) && own.owns(to)));
            if let (Some(proxy), Some(to), Proto::Tcp) = (plan.proxy_only, ip_dest(&d.addr), k.proto())
                && !outside_domain
                && !crate::enforce::proxy::connect_allowed(proxy, to)
            {
                let net = NetAddr {
                    family: if to.is_ipv4() { libc::AF_INET as u16 } else { libc::AF_INET6 as u16 },
                    addr: Some(to.ip()),
                    port: to.port(),
                    sock_type: k.ty as u16,
                    protocol: k.proto as u16,
                };
                return Err(refused(Op::Connect, libc::EACCES, true, None, Some(net), n.nr));
            }
            Ok(Work { id: n.id, sock, op: NetOp::Connect { addr: d.addr, _keep: d.keep }, outside_domain })
        }
        Err((e, by_policy, path, net)) => Err(refused(Op::Connect, e, by_policy, path, net, n.nr)),
    }
}

/// `listen` on a TCP socket nobody bound picks an ephemeral port itself,
/// and Landlock's bind rule never sees it: with `listen_port` restricted
/// that is refused. Otherwise the worker listens on the broker's duplicate
/// (the caller cannot swap an unbound socket in after the check).
fn listen(
    n: &Notif,
    caller: &mut Caller,
    plan: &BrokerPlan,
    own: &Arc<OwnListeners>,
    fd: i32,
    backlog: i32,
) -> Result<Work, Handled> {
    let err = |e: Errno| Handled::reply(Reply::Error(e));
    let sock = caller.getfd(fd).map_err(err)?;
    let k = kind(&sock).map_err(err)?;
    // Restricted, and without port 0 (which lets the kernel pick).
    if matches!(k.domain, libc::AF_INET | libc::AF_INET6)
        && plan.listen_ports.as_ref().is_some_and(|p| !p.contains(&0))
        && local_addr(&sock).map_err(err)?.is_some_and(|a| a.port() == 0)
    {
        let note = AuditNote { op: Op::Bind, path: None, path2: None, arg: 0, net: None };
        return Err(Handled::refused(libc::EACCES, note));
    }
    let own = (k.proto() == Proto::Tcp).then(|| Arc::clone(own));
    Ok(Work { id: n.id, sock, op: NetOp::Listen { backlog, own }, outside_domain: false })
}

fn sendto(n: &Notif, caller: &mut Caller, plan: &BrokerPlan, a: [u64; 6]) -> Result<Work, Handled> {
    let (fd, buf, len, flags, addr, alen) = (a[0] as i32, a[1], a[2] as usize, a[3] as i32, a[4], a[5] as usize);
    if alen > MAX_ADDR {
        return Err(Handled::reply(Reply::Error(libc::EINVAL)));
    }
    if len > MAX_SEND {
        return Err(Handled::reply(Reply::Error(libc::EMSGSIZE)));
    }
    let name = if addr == 0 { None } else { Some(caller.read(addr, alen).map_err(|e| Handled::reply(Reply::Error(e)))?) };
    let data = caller.read(buf, len).map_err(|e| Handled::reply(Reply::Error(e)))?;
    let sock = caller.getfd(fd).map_err(|e| Handled::reply(Reply::Error(e)))?;
    let k = kind(&sock).map_err(|e| Handled::reply(Reply::Error(e)))?;
    let msg = Msg { name: None, data, control: Vec::new(), keep: Vec::new() };
    finish_send(n, caller, plan, sock, &k, vec![(msg, name)], flags, false, Vec::new())
}

#[expect(clippy::too_many_arguments, reason = "the decoded arguments of one send")]
fn finish_send(
    n: &Notif,
    caller: &mut Caller,
    plan: &BrokerPlan,
    sock: OwnedFd,
    k: &Kind,
    msgs: Vec<(Msg, Option<Vec<u8>>)>,
    flags: i32,
    multi: bool,
    lens_at: Vec<u64>,
) -> Result<Work, Handled> {
    let mut out = Vec::with_capacity(msgs.len());
    for (mut msg, name) in msgs {
        if let Some(name) = name {
            match dest(caller, plan, k, name) {
                Ok(d) => {
                    msg.name = Some(d.addr);
                    msg.keep.extend(d.keep);
                }
                Err((e, by_policy, path, net)) => return Err(refused(Op::Send, e, by_policy, path, net, n.nr)),
            }
        }
        out.push(msg);
    }
    Ok(Work { id: n.id, sock, op: NetOp::Send { msgs: out, flags, multi, lens_at }, outside_domain: false })
}

#[expect(clippy::too_many_arguments, reason = "the decoded arguments of one send")]
fn sendmsg(
    n: &Notif,
    caller: &mut Caller,
    plan: &BrokerPlan,
    fd: i32,
    at: u64,
    flags: i32,
    multi: bool,
    count: usize,
) -> Result<Work, Handled> {
    let err = |e: Errno| Handled::reply(Reply::Error(e));
    let sock = caller.getfd(fd).map_err(err)?;
    let k = kind(&sock).map_err(err)?;
    // `struct mmsghdr` is a msghdr followed by the length sent (padded to 8).
    let stride = if multi { std::mem::size_of::<libc::mmsghdr>() } else { std::mem::size_of::<libc::msghdr>() };
    let mut msgs = Vec::with_capacity(count);
    let mut lens_at = Vec::new();
    let mut total = 0usize;
    for i in 0..count {
        let base = at + (i * stride) as u64;
        let h: libc::msghdr = caller.read_struct(base).map_err(err)?;
        if multi {
            lens_at.push(base + std::mem::size_of::<libc::msghdr>() as u64);
        }
        let name = if h.msg_name.is_null() || h.msg_namelen == 0 {
            None
        } else {
            if h.msg_namelen as usize > MAX_ADDR {
                return Err(err(libc::EINVAL));
            }
            Some(caller.read(h.msg_name as u64, h.msg_namelen as usize).map_err(err)?)
        };
        if h.msg_iovlen > MAX_IOV {
            return Err(err(libc::EMSGSIZE));
        }
        let iovs: Vec<libc::iovec> = (0..h.msg_iovlen)
            .map(|j| caller.read_struct::<libc::iovec>(h.msg_iov as u64 + (j * std::mem::size_of::<libc::iovec>()) as u64))
            .collect::<Result<_, _>>()
            .map_err(err)?;
        let mut data = Vec::new();
        for v in iovs {
            total += v.iov_len;
            if total > MAX_SEND {
                return Err(err(libc::EMSGSIZE));
            }
            data.extend(caller.read(v.iov_base as u64, v.iov_len).map_err(err)?);
        }
        if h.msg_controllen > MAX_CONTROL {
            return Err(err(libc::ENOBUFS));
        }
        let control = if h.msg_control.is_null() {
            Vec::new()
        } else {
            caller.read(h.msg_control as u64, h.msg_controllen).map_err(err)?
        };
        let mut msg = Msg { name: None, data, control, keep: Vec::new() };
        if k.domain == libc::AF_UNIX && !msg.control.is_empty() {
            translate_control(caller, &mut msg).map_err(err)?;
        }
        msgs.push((msg, name));
    }
    finish_send(n, caller, plan, sock, &k, msgs, flags, multi, lens_at)
}

/// Rewrites a Unix socket's control messages for the broker's side: the
/// descriptors passed with `SCM_RIGHTS` are the caller's numbers, so each
/// is duplicated here; `SCM_CREDENTIALS` must name the caller itself and
/// is rewritten to the broker's pid (the kernel checks it against the
/// sender), with the user's ids.
fn translate_control(caller: &mut Caller, msg: &mut Msg) -> Result<(), Errno> {
    let hdr = std::mem::size_of::<libc::cmsghdr>();
    let mut out = Vec::with_capacity(msg.control.len());
    let mut at = 0;
    let align = |x: usize| (x + 7) & !7;
    while at + hdr <= msg.control.len() {
        // SAFETY: at least `hdr` bytes remain; cmsghdr is plain data.
        let c: libc::cmsghdr = unsafe { std::ptr::read_unaligned(msg.control[at..].as_ptr().cast()) };
        let len = c.cmsg_len;
        if len < hdr || at + len > msg.control.len() {
            return Err(libc::EINVAL);
        }
        let payload = &msg.control[at + hdr..at + len];
        let mut body = payload.to_vec();
        if c.cmsg_level == libc::SOL_SOCKET && c.cmsg_type == libc::SCM_RIGHTS {
            body.clear();
            for chunk in payload.chunks_exact(4) {
                let theirs = i32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                let ours = caller.getfd(theirs)?;
                body.extend_from_slice(&ours.as_raw_fd().to_ne_bytes());
                msg.keep.push(ours);
            }
        } else if c.cmsg_level == libc::SOL_SOCKET && c.cmsg_type == libc::SCM_CREDENTIALS {
            if payload.len() < std::mem::size_of::<libc::ucred>() {
                return Err(libc::EINVAL);
            }
            // SAFETY: the payload holds a ucred (length checked).
            let mut cred: libc::ucred = unsafe { std::ptr::read_unaligned(payload.as_ptr().cast()) };
            // SAFETY: plain id queries.
            let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
            if Some(cred.pid) != caller.tgid() || cred.uid != uid || cred.gid != gid {
                return Err(libc::EPERM);
            }
            cred.pid = std::process::id() as i32;
            // SAFETY: ucred is plain data.
            body = unsafe { std::slice::from_raw_parts((&raw const cred).cast::<u8>(), std::mem::size_of::<libc::ucred>()) }
                .to_vec();
        }
        let mut h = c;
        h.cmsg_len = hdr + body.len();
        // SAFETY: cmsghdr is plain data.
        out.extend_from_slice(unsafe { std::slice::from_raw_parts((&raw const h).cast::<u8>(), hdr) });
        out.extend_from_slice(&body);
        out.resize(align(out.len()), 0);
        at += align(len);
    }
    msg.control = out;
    Ok(())
}

/// Runs decided work on a confined worker, answers the caller, and returns
/// the answer (for the audit trail).
pub(super) fn perform(work: &Work, listener: &Arc<Listener>, caller_tid: i32) -> Option<Reply> {
    if !listener.valid(work.id) {
        return None;
    }
    let reply = match &work.op {
        NetOp::Connect { addr, .. } => {
            // SAFETY: our duplicate of the caller's socket; `addr` holds
            // `addr.len()` bytes of a sockaddr.
            let r = unsafe { libc::connect(work.sock.as_raw_fd(), addr.as_ptr().cast(), addr.len() as libc::socklen_t) };
            if r == 0 { Reply::Value(0) } else { Reply::Error(last_errno()) }
        }
        NetOp::Send { msgs, flags, multi, lens_at } => send_all(work, msgs, *flags, *multi, lens_at, listener, caller_tid),
        NetOp::Listen { backlog, own } => {
            // SAFETY: our duplicate of the caller's socket.
            let r = unsafe { libc::listen(work.sock.as_raw_fd(), *backlog) };
            if r == 0 {
                // Its port is final now, even when the kernel picked it.
                if let Some(own) = own {
                    own.add(&work.sock);
                }
                Reply::Value(0)
            } else {
                Reply::Error(last_errno())
            }
        }
    };
    let _ = listener.reply(work.id, reply);
    Some(reply)
}

fn send_all(work: &Work, msgs: &[Msg], flags: i32, multi: bool, lens_at: &[u64], listener: &Arc<Listener>, tid: i32) -> Reply {
    let mut sent = 0i64;
    for (i, m) in msgs.iter().enumerate() {
        match send_one(work, m, flags, listener) {
            Ok(n) => {
                if multi {
                    let caller = Caller::for_tid(tid);
                    if let Some(at) = lens_at.get(i) {
                        let _ = caller.write(*at, &(n as u32).to_ne_bytes());
                    }
                    sent += 1;
                } else {
                    return Reply::Value(n as i64);
                }
            }
            Err(e) if multi && sent > 0 => {
                let _ = e;
                break;
            }
            Err(e) => return Reply::Error(e),
        }
    }
    Reply::Value(sent)
}

/// One `sendmsg` on the broker's duplicate. A blocking socket whose buffer
/// is full is waited on here (polling, so an interrupted caller is noticed
/// and nothing is sent on its behalf afterwards), within its send timeout.
fn send_one(work: &Work, m: &Msg, flags: i32, listener: &Arc<Listener>) -> Result<usize, Errno> {
    let fd = work.sock.as_raw_fd();
    let mut iov = libc::iovec { iov_base: m.data.as_ptr().cast_mut().cast(), iov_len: m.data.len() };
    // SAFETY: msghdr is plain data; zeroed is its empty value.
    let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
    if let Some(name) = &m.name {
        h.msg_name = name.as_ptr().cast_mut().cast();
        h.msg_namelen = name.len() as u32;
    }
    h.msg_iov = &raw mut iov;
    h.msg_iovlen = 1;
    if !m.control.is_empty() {
        h.msg_control = m.control.as_ptr().cast_mut().cast();
        h.msg_controllen = m.control.len();
    }
    // SAFETY: plain fcntl query on our descriptor.
    let nonblocking = unsafe { libc::fcntl(fd, libc::F_GETFL) } & libc::O_NONBLOCK != 0 || flags & libc::MSG_DONTWAIT != 0;
    let timeout = send_timeout(fd);
    let started = Instant::now();
    loop {
        // SAFETY: `h` points at buffers that live until the call returns.
        let n = unsafe { libc::sendmsg(fd, &raw const h, flags | libc::MSG_DONTWAIT) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = last_errno();
        if e != libc::EAGAIN || nonblocking {
            return Err(e);
        }
        if timeout.is_some_and(|t| started.elapsed() >= t) {
            return Err(libc::EAGAIN);
        }
        let mut p = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
        // SAFETY: one pollfd.
        unsafe { libc::poll(&raw mut p, 1, 100) };
        if !listener.valid(work.id) {
            return Err(libc::EINTR);
        }
    }
}

fn send_timeout(fd: i32) -> Option<Duration> {
    // SAFETY: timeval is plain data; getsockopt fills it.
    let mut tv: libc::timeval = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
    // SAFETY: valid descriptor and output buffer.
    let r = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDTIMEO, (&raw mut tv).cast(), &raw mut len) };
    if r != 0 || (tv.tv_sec == 0 && tv.tv_usec == 0) {
        return None;
    }
    Some(Duration::new(tv.tv_sec as u64, (tv.tv_usec * 1000) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_destinations_are_read_from_sockaddrs() {
        let mut v4 = vec![0u8; 16];
        v4[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        v4[2..4].copy_from_slice(&53u16.to_be_bytes());
        v4[4..8].copy_from_slice(&[127, 0, 0, 53]);
        assert_eq!(ip_dest(&v4), Some("127.0.0.53:53".parse().expect("addr")));
        let mut v6 = vec![0u8; 28];
        v6[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
        v6[2..4].copy_from_slice(&123u16.to_be_bytes());
        v6[8..24].copy_from_slice(&"::ffff:192.0.2.1".parse::<Ipv6Addr>().expect("v6").octets());
        assert_eq!(ip_dest(&v6), Some("192.0.2.1:123".parse().expect("mapped v4")));
        let unspec = (libc::AF_UNSPEC as u16).to_ne_bytes();
        assert_eq!(ip_dest(&unspec), None);
    }
}
