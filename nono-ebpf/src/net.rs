//! Socket syscalls at `sys_exit`: `socket`/`socketpair` (the kind of
//! socket), `connect`/`bind` and datagram sends to an explicit address
//! (`sendto`, `sendmsg`, `sendmmsg`), each with the type and protocol of
//! the socket behind the descriptor, read from the kernel's `struct sock`,
//! so a UDP connect to port 53 is never mistaken for TCP.
//!
//! Unix addresses: a pathname is the raw user string plus the caller's cwd
//! (like any relative path); an abstract name (`sun_path[0] == 0`) is the
//! name's exact bytes, flagged [`flag::ABSTRACT`].

use core::ffi::c_void;

use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_user, generated::bpf_probe_read_user_str};
use nono_common::{EventBuf, PATH_MAX, Pending, flag, op, path::RAW_TAG, stat, sysno as nr};

use crate::emit::{HANDOFF, Handoff, Slot, bump_by};
use crate::kread::{self, AT_FDCWD, Field};

const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
/// `sizeof(struct sockaddr_un)`.
const SOCKADDR_UN_LEN: u64 = 110;
/// `sizeof(struct mmsghdr)` on x86_64 (a 56-byte `msghdr` and a length).
const MMSGHDR_LEN: u64 = 64;
/// Messages of one `sendmmsg` whose destinations are recorded; the rest
/// are counted in `stat::SENDMMSG_SKIPPED`. (glibc's resolver sends its A
/// and AAAA queries to one server in one call: two messages.)
const SENDMMSG_SEEN: u64 = 4;

/// `socket(2)` and `socketpair(2)`: family, type (without the
/// `SOCK_NONBLOCK`/`SOCK_CLOEXEC` flags) and protocol; `arg` keeps the
/// raw type argument.
#[inline(always)]
pub fn socket(p: &Pending, ret: i64, tgid: u32) {
    let Some(mut slot) = Slot::acquire() else { return };
    let h = slot.header(op::SOCKET, tgid);
    h.result = if ret < 0 { ret as i32 } else { 0 };
    h.arg = p.args[1];
    h.net_family = p.args[0] as u16;
    h.sock_type = (p.args[1] & 0xf) as u16;
    h.sock_proto = p.args[2] as u16;
    slot.send(0);
}

/// `connect`, `bind`, `sendto`, `sendmsg`: one address each.
#[inline(always)]
pub fn exit(sys: u32, p: &Pending, ret: i64, tgid: u32) {
    let mut hand = Handoff { ret, tgid, fd1: i64::from(p.args[0] as i32), ..Handoff::EMPTY };
    match sys {
        nr::CONNECT => {
            hand.op = op::CONNECT;
            (hand.ptr1, hand.ptr2) = (p.args[1], p.args[2]);
        }
        nr::BIND => {
            hand.op = op::BIND;
            (hand.ptr1, hand.ptr2) = (p.args[1], p.args[2]);
        }
        nr::SENDTO => {
            hand.op = op::SEND;
            hand.arg = p.args[3];
            (hand.ptr1, hand.ptr2) = (p.args[4], p.args[5]);
        }
        _ => {
            // sendmsg(fd, msg, flags): the name is in the user's msghdr;
            // without one (a connected socket, the hot case) nothing is sent.
            hand.op = op::SEND;
            hand.arg = p.args[2];
            (hand.ptr1, hand.ptr2) = msg_name(p.args[1]);
        }
    }
    if hand.ptr1 == 0 {
        // No address (a connected send): nothing new to record.
        return;
    }
    send_addr(hand);
}

/// `sendmmsg(fd, msgvec, vlen, flags)`: one record per message with a
/// name, for the first [`SENDMMSG_SEEN`] messages (those sent, or the
/// first one when the call failed).
#[inline(always)]
pub fn sendmmsg(p: &Pending, ret: i64, tgid: u32) {
    let vlen = p.args[2] & 0xffff;
    let tried = if ret > 0 { ret as u64 } else { vlen.min(1) };
    if tried > SENDMMSG_SEEN {
        bump_by(stat::SENDMMSG_SKIPPED, tried - SENDMMSG_SEEN);
    }
    for i in 0..SENDMMSG_SEEN {
        if i >= tried {
            break;
        }
        let (name, len) = msg_name(p.args[1] + i * MMSGHDR_LEN);
        if name == 0 {
            continue;
        }
        let result = if ret > 0 { 0 } else { ret };
        let hand = Handoff {
            ret: result,
            tgid,
            op: op::SEND,
            fd1: i64::from(p.args[0] as i32),
            arg: p.args[3],
            ptr1: name,
            ptr2: len,
            ..Handoff::EMPTY
        };
        send_addr(hand);
    }
}

/// `(msg_name, msg_namelen)` of a user `struct msghdr`.
#[inline(always)]
fn msg_name(msghdr: u64) -> (u64, u64) {
    // SAFETY: bpf_probe_read_user validates the user pointer.
    let Ok(head) = (unsafe { bpf_probe_read_user(msghdr as *const [u64; 2]) }) else { return (0, 0) };
    (head[0], head[1] & 0xffff_ffff)
}

/// Hands the address over and records it (one verified copy of the
/// decoding, whichever syscall).
#[inline(always)]
fn send_addr(hand: Handoff) {
    let Some(slot) = HANDOFF.get_ptr_mut(0) else { return };
    // SAFETY: this CPU's slot; read back just below, on the same CPU.
    unsafe { core::ptr::write_volatile(slot, hand) };
    record_addr();
}

/// Records the [`Handoff`]'s address (`ptr1`, length `ptr2`) on socket
/// `fd1`.
#[inline(never)]
fn record_addr() {
    let Some(hand) = HANDOFF.get_ptr(0) else { return };
    // SAFETY: this CPU's slot, written just before the call.
    let hand = unsafe { core::ptr::read_volatile(hand) };
    let Some(mut slot) = Slot::acquire() else { return };
    // SAFETY: returns the current task pointer; only read through probe helpers.
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let (sock_type, sock_proto, _) = kread::socket_kind(task, hand.fd1);
    let h = slot.header(hand.op, hand.tgid);
    h.result = if hand.ret < 0 { hand.ret as i32 } else { 0 };
    h.arg = hand.arg;
    h.sock_type = sock_type;
    h.sock_proto = sock_proto;
    let len = sockaddr(&mut slot, task, hand.ptr1 as *const u8, hand.ptr2);
    slot.send_paths(len, 0);
}

/// Decodes a user `struct sockaddr` of `addrlen` bytes into the header;
/// a Unix address goes into the first path field. Returns that field's
/// length.
#[inline(always)]
fn sockaddr(slot: &mut Slot, task: *const u8, addr: *const u8, addrlen: u64) -> usize {
    // SAFETY: user pointer validated by the helper.
    let Ok(raw) = (unsafe { bpf_probe_read_user(addr.cast::<[u8; 8]>()) }) else {
        kread::add_flags(slot.buf, u32::from(flag::PATH_FAILED));
        return 0;
    };
    let family = u16::from_ne_bytes([raw[0], raw[1]]);
    // SAFETY: the slot is owned by this handler.
    let h = unsafe { &mut (*slot.buf).hdr };
    h.net_family = family;
    match family {
        AF_INET => {
            h.net_port = u16::from_be_bytes([raw[2], raw[3]]);
            h.net_addr[..4].copy_from_slice(&raw[4..8]);
        }
        AF_INET6 => {
            h.net_port = u16::from_be_bytes([raw[2], raw[3]]);
            // SAFETY: as above; sockaddr_in6 holds the address at offset 8.
            if let Ok(a) = unsafe { bpf_probe_read_user(addr.wrapping_add(8).cast::<[u8; 16]>()) } {
                h.net_addr = a;
            }
        }
        AF_UNIX => return unix_path(slot.buf, task, addr, addrlen),
        _ => {}
    }
    0
}

/// The path of a `sockaddr_un` as the first field: an abstract name's
/// exact bytes, or a pathname (relative to the cwd when relative).
#[inline(always)]
fn unix_path(buf: *mut EventBuf, task: *const u8, addr: *const u8, addrlen: u64) -> usize {
    let len = if addrlen > SOCKADDR_UN_LEN { SOCKADDR_UN_LEN } else { addrlen };
    if len <= 2 {
        // Unnamed (an autobind): no address to record.
        return 0;
    }
    let path_len = (len - 2) as usize;
    // SAFETY: the first field is PATH_MAX long; a sun_path fits with room.
    let area = unsafe { core::slice::from_raw_parts_mut((*buf).data.as_mut_ptr(), 128) };
    area[0] = RAW_TAG;
    // SAFETY: user pointer validated by the helper.
    let Ok(first) = (unsafe { bpf_probe_read_user(addr.wrapping_add(2)) }) else {
        kread::add_flags(buf, u32::from(flag::PATH_FAILED));
        return 0;
    };
    let first: u8 = first;
    if first == 0 {
        // Abstract: the bytes after the NUL, exactly `path_len - 1` of them.
        let n = (path_len - 1) & 127;
        // SAFETY: n < 128 and the window starts at 1, inside the first field;
        // the helper validates the user pointer.
        let dst = unsafe { core::slice::from_raw_parts_mut(area.as_mut_ptr().add(1), n) };
        // SAFETY: as above.
        if unsafe { aya_ebpf::helpers::bpf_probe_read_user_buf(addr.wrapping_add(3), dst) }.is_err() {
            kread::add_flags(buf, u32::from(flag::PATH_FAILED));
            return 0;
        }
        // SAFETY: the slot is owned by this handler.
        unsafe { (*buf).hdr.flags |= flag::ABSTRACT };
        return 1 + n;
    }
    // A pathname: at most `path_len` bytes, NUL-terminated by the helper.
    let size = ((path_len & 127) + 1) as u32;
    // SAFETY: size <= 128 and the window [1, 129) lies inside the first field.
    let n = unsafe {
        bpf_probe_read_user_str(area.as_mut_ptr().add(1).cast::<c_void>(), size, addr.wrapping_add(2).cast::<c_void>())
    };
    if n <= 0 {
        kread::add_flags(buf, u32::from(flag::PATH_FAILED));
        return 0;
    }
    // The helper's count includes the NUL it wrote.
    let pos = (n as usize & 127) + 1;
    // SAFETY: the slot is owned by this handler.
    unsafe { core::ptr::write_volatile(&raw mut (*buf).walk_pos, pos as u32) };
    if first != b'/' {
        let (mnt, dentry) = kread::base_dir(task, i64::from(AT_FDCWD));
        kread::walk_dentry(buf, Field::First, mnt, dentry);
    }
    kread::field_len(buf).min(PATH_MAX)
}
