//! DNS capture at `sys_exit` (issue 23): the messages a traced task sends
//! to, or reads from, port 53 on a UDP or TCP socket, copied verbatim (the
//! first `dns::CAPTURE` bytes) into an [`op::DNS`] record. The kernel only
//! decides *whether* a message is DNS (its peer's port) and copies bytes;
//! it never parses them: a hostile payload reaches userspace as data.
//!
//! Calls watched: `sendto`, `sendmsg`, `sendmmsg` (first [`MMSG_SEEN`]
//! messages), `write`, `writev`, `recvfrom`, `recvmsg` and `read`. The
//! peer is the address the call names for a datagram socket that names
//! one, else the connected peer from `struct sock` (`skc_dport`,
//! `skc_daddr`), which is also what glibc's resolver uses: `connect`, then
//! `sendmmsg`/`send`, `recvfrom`; over TCP `writev` and `read`.
//!
//! Cost: `read`/`write` of a process outside the traced tree pay the one
//! map lookup every recorded syscall pays; inside the tree, a descriptor
//! that is not an inet socket costs about five kernel reads.

use core::ffi::c_void;

use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_user, generated};
use nono_common::{Pending, dns, flag, op, stat, sysno as nr};

use crate::emit::{HANDOFF, Handoff, Slot, bump};
use crate::kread::{self, off};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const SOCK_STREAM: u16 = 1;
const SOCK_DGRAM: u16 = 2;
const S_IFMT: u16 = 0o170_000;
const S_IFSOCK: u16 = 0o140_000;
/// `sizeof(struct mmsghdr)` on `x86_64`; `msg_len` sits at 56.
const MMSGHDR_LEN: u64 = 64;
/// Messages of one `sendmmsg` inspected (glibc sends A and AAAA together).
const MMSG_SEEN: u64 = 2;

/// `sendto(fd, buf, len, flags, addr, addrlen)` and
/// `sendmsg(fd, msg, flags)`, after their address record.
#[inline(always)]
pub fn sent(sys: u32, p: &Pending, ret: i64, tgid: u32) {
    if ret <= 0 {
        return;
    }
    let fd = i64::from(p.args[0] as i32);
    if sys == nr::SENDTO {
        capture(tgid, fd, dns::SENT, p.args[1], ret as u64, p.args[4]);
    } else {
        let (name, buf, len) = msghdr(p.args[1]);
        capture(tgid, fd, dns::SENT, buf, min(ret as u64, len), name);
    }
}

/// `sendmmsg(fd, msgvec, vlen, flags)`: the first [`MMSG_SEEN`] messages
/// sent, each with its own `msg_len`.
#[inline(always)]
pub fn sendmmsg(p: &Pending, ret: i64, tgid: u32) {
    let fd = i64::from(p.args[0] as i32);
    for i in 0..MMSG_SEEN {
        if ret <= i as i64 {
            break;
        }
        let hdr = p.args[1] + i * MMSGHDR_LEN;
        // SAFETY: bpf_probe_read_user validates the user pointer.
        let Ok(sent) = (unsafe { bpf_probe_read_user((hdr + 56) as *const u32) }) else { continue };
        let (name, buf, len) = msghdr(hdr);
        capture(tgid, fd, dns::SENT, buf, min(u64::from(sent), len), name);
    }
}

/// `read`, `write`, `writev`, `recvfrom`, `recvmsg`.
#[inline(always)]
pub fn io(sys: u32, p: &Pending, ret: i64, tgid: u32) {
    if ret <= 0 {
        return;
    }
    let fd = i64::from(p.args[0] as i32);
    let n = ret as u64;
    match sys {
        nr::WRITE => capture(tgid, fd, dns::SENT, p.args[1], n, 0),
        nr::READ => capture(tgid, fd, dns::RECEIVED, p.args[1], n, 0),
        nr::RECVFROM => capture(tgid, fd, dns::RECEIVED, p.args[1], n, p.args[4]),
        nr::WRITEV => {
            let (buf, len) = first_iov(p.args[1], p.args[2]);
            capture(tgid, fd, dns::SENT, buf, min(n, len), 0);
        }
        _ => {
            // recvmsg: the kernel filled msg_name (the sender) at exit.
            let (name, buf, len) = msghdr(p.args[1]);
            capture(tgid, fd, dns::RECEIVED, buf, min(n, len), name);
        }
    }
}

#[inline(always)]
fn min(a: u64, b: u64) -> u64 {
    if a < b { a } else { b }
}

/// `(msg_name, first buffer, its length)` of a user `struct msghdr`.
#[inline(always)]
fn msghdr(hdr: u64) -> (u64, u64, u64) {
    // SAFETY: bpf_probe_read_user validates the user pointer.
    let Ok(head) = (unsafe { bpf_probe_read_user(hdr as *const [u64; 4]) }) else { return (0, 0, 0) };
    let (buf, len) = first_iov(head[2], head[3]);
    (head[0], buf, len)
}

/// The buffer worth capturing of an iovec array: the first, or the
/// second when the first is a TCP message's 2-byte length on its own
/// (glibc's `writev`).
#[inline(always)]
fn first_iov(iov: u64, count: u64) -> (u64, u64) {
    if count == 0 {
        return (0, 0);
    }
    // SAFETY: bpf_probe_read_user validates the user pointer.
    let Ok(v) = (unsafe { bpf_probe_read_user(iov as *const [u64; 2]) }) else { return (0, 0) };
    if v[1] == 2 && count >= 2 {
        // SAFETY: as above.
        if let Ok(w) = unsafe { bpf_probe_read_user((iov + 16) as *const [u64; 2]) } {
            return (w[0], w[1]);
        }
    }
    (v[0], v[1])
}

/// Hands one message over to [`record`] (one verified copy, whichever
/// call): `ptr1` the bytes, `ret` their count, `ptr2` the user address
/// the call names (0: the connected peer), `arg` the direction.
#[inline(always)]
fn capture(tgid: u32, fd: i64, dir: u64, buf: u64, len: u64, addr: u64) {
    // Shorter than a DNS header: not a message (a TCP length on its own).
    if buf == 0 || len < 12 {
        return;
    }
    let Some(slot) = HANDOFF.get_ptr_mut(0) else { return };
    let hand = Handoff { ret: len as i64, tgid, arg: dir, fd1: fd, ptr1: buf, ptr2: addr, ..Handoff::EMPTY };
    // SAFETY: this CPU's slot; read back just below, on the same CPU.
    unsafe { core::ptr::write_volatile(slot, hand) };
    record();
}

/// Records the handed-over message when its socket is an inet UDP or TCP
/// socket whose peer is port 53.
#[inline(never)]
fn record() {
    let Some(hand) = HANDOFF.get_ptr(0) else { return };
    // SAFETY: this CPU's slot, written just before the call.
    let hand = unsafe { core::ptr::read_volatile(hand) };
    // SAFETY: returns the current task pointer; only read through probe helpers.
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let file = kread::file_of_fd(task, hand.fd1);
    let inode = kread::ptr(file, off!(file_inode));
    if kread::read::<u16>(inode, off!(inode_mode)).unwrap_or(0) & S_IFMT != S_IFSOCK {
        return;
    }
    let sk = kread::ptr(kread::ptr(file, off!(file_private_data)), off!(socket_sk));
    let family = kread::read::<u16>(sk, off!(sock_family)).unwrap_or(0);
    let kind = kread::read::<u16>(sk, off!(sk_type)).unwrap_or(0);
    if (family != AF_INET && family != AF_INET6) || (kind != SOCK_STREAM && kind != SOCK_DGRAM) {
        return;
    }
    let mut addr = [0u8; 16];
    let (peer_family, port) = if kind == SOCK_DGRAM && hand.ptr2 != 0 {
        // SAFETY: bpf_probe_read_user validates the user pointer.
        let Ok(raw) = (unsafe { bpf_probe_read_user(hand.ptr2 as *const [u8; 8]) }) else { return };
        let fam = u16::from_ne_bytes([raw[0], raw[1]]);
        let port = u16::from_be_bytes([raw[2], raw[3]]);
        if port != dns::PORT {
            return;
        }
        if fam == AF_INET {
            addr[..4].copy_from_slice(&raw[4..8]);
        } else if fam == AF_INET6 {
            // SAFETY: as above; sockaddr_in6 holds the address at offset 8.
            if let Ok(a) = unsafe { bpf_probe_read_user((hand.ptr2 + 8) as *const [u8; 16]) } {
                addr = a;
            }
        }
        (fam, port)
    } else {
        let port = u16::from_be(kread::read::<u16>(sk, off!(sk_dport)).unwrap_or(0));
        if port != dns::PORT {
            return;
        }
        if family == AF_INET {
            if let Some(a) = kread::read::<[u8; 4]>(sk, off!(sk_daddr)) {
                addr[..4].copy_from_slice(&a);
            }
        } else if off!(sk_v6_daddr) != 0
            && let Some(a) = kread::read::<[u8; 16]>(sk, off!(sk_v6_daddr))
        {
            addr = a;
        }
        (family, port)
    };
    let proto = kread::read::<u16>(sk, off!(sk_protocol)).unwrap_or(0);
    let Some(mut slot) = Slot::acquire() else { return };
    slot.header(op::DNS, hand.tgid);
    // SAFETY: the slot is owned by this handler.
    let h = unsafe { &mut (*slot.buf).hdr };
    h.arg = hand.arg;
    h.net_family = peer_family;
    h.net_port = port;
    h.net_addr = addr;
    h.sock_type = kind;
    h.sock_proto = proto;
    let total = hand.ret as u64;
    let mut n = total;
    if total > dns::CAPTURE as u64 {
        h.flags |= flag::PATH_TRUNCATED;
        n = dns::CAPTURE as u64;
    }
    // Through map memory and back, then masked right before the call: a
    // bound the verifier sees in the size register itself (6.1's verifier
    // loses a bound checked on another copy of a spilled value).
    // SAFETY: the slot is owned by this handler.
    unsafe { core::ptr::write_volatile(&raw mut (*slot.buf).walk_pos, n as u32) };
    // SAFETY: as above.
    let size = unsafe { core::ptr::read_volatile(&raw const (*slot.buf).walk_pos) } & (2 * dns::CAPTURE as u32 - 1);
    // SAFETY: size < 2 * CAPTURE, well inside the slot's first path area
    // (which starts at the data field); the helper validates the user pointer.
    let rc = unsafe {
        generated::bpf_probe_read_user((*slot.buf).data.as_mut_ptr().cast::<c_void>(), size, hand.ptr1 as *const c_void)
    };
    let len = if rc == 0 {
        size as usize
    } else {
        h.flags |= flag::PATH_FAILED;
        bump(stat::PATH_FAILURES);
        0
    };
    h.path_len = len as u16;
    slot.send(len);
}
