//! Maps shared by every program, the traced-process check, per-CPU scratch
//! slots, loss counters and the ring-buffer output.
//!
//! Losses are never silent: every failure to record increments a `STATS`
//! counter that userspace reads at the end of the session.

use aya_ebpf::helpers::generated::bpf_get_current_comm;
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_task, bpf_get_current_uid_gid, bpf_ktime_get_boot_ns},
    macros::map,
    maps::{HashMap, PerCpuArray, RingBuf},
};
use nono_common::{COMM_LEN, EventBuf, EventHeader, RecorderConfig, flag, stat};

use crate::kread::{self, off};

/// Records for userspace. Userspace may resize it before load.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(4 << 20, 0);

/// Thread-group ids of the traced process tree.
#[map]
pub static TRACED: HashMap<u32, u32> = HashMap::with_max_entries(65536, 0);

/// What the syscall-specific part of `sys_exit` hands to the one generic
/// path-resolving part, through map memory: read back with volatile loads,
/// the values are unknown to the verifier, so every syscall's branch
/// converges into one state and the heavy code is verified once. Per CPU:
/// a tracepoint handler runs to completion on its CPU.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Handoff {
    pub ret: i64,
    pub arg: u64,
    pub fd1: i64,
    pub ptr1: u64,
    pub fd2: i64,
    pub ptr2: u64,
    pub tgid: u32,
    pub mode: u32,
    /// Operand kinds (`fs::K_*`).
    pub k1: u32,
    pub k2: u32,
    pub op: u16,
    pub _pad: [u16; 3],
}

impl Handoff {
    pub const EMPTY: Handoff =
        Handoff { ret: 0, arg: 0, fd1: 0, ptr1: 0, fd2: 0, ptr2: 0, tgid: 0, mode: 0, k1: 0, k2: 0, op: 0, _pad: [0; 3] };
}

#[map]
pub static HANDOFF: PerCpuArray<Handoff> = PerCpuArray::with_max_entries(1, 0);

/// Two scratch records per CPU: a handler preempted mid-record keeps its
/// slot busy and a second handler on the same CPU takes the other.
#[map]
static SCRATCH: PerCpuArray<EventBuf> = PerCpuArray::with_max_entries(2, 0);

/// Loss and volume counters, indexed by `nono_common::stat`.
#[map]
static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stat::COUNT, 0);

#[unsafe(no_mangle)]
static CONFIG: RecorderConfig = RecorderConfig { mode: 0, _pad: 0 };

/// The recorder mode (`nono_common::mode`).
#[inline(always)]
pub fn mode() -> u32 {
    // SAFETY: CONFIG is a static; the volatile read defeats constant folding
    // of the value userspace patches into .rodata.
    unsafe { core::ptr::read_volatile(&raw const CONFIG.mode) }
}

#[inline(always)]
pub fn bump(counter: u32) {
    bump_by(counter, 1);
}

#[inline(always)]
pub fn bump_by(counter: u32, n: u64) {
    if let Some(p) = STATS.get_ptr_mut(counter) {
        // SAFETY: per-CPU slot; only this CPU writes it and readers tolerate
        // a torn read of a monotonically growing counter.
        unsafe { *p += n };
    }
}

/// Thread-group id of the current task when it belongs to the traced tree.
#[inline(always)]
pub fn traced_tgid() -> Option<u32> {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: the value is only tested for presence.
    unsafe { TRACED.get(&tgid) }.map(|_| tgid)
}

/// `BPF_RB_NO_WAKEUP` / `BPF_RB_FORCE_WAKEUP` (`uapi/linux/bpf.h`).
const RB_NO_WAKEUP: u64 = 1;
const RB_FORCE_WAKEUP: u64 = 2;
/// `BPF_RB_AVAIL_DATA` / `BPF_RB_RING_SIZE`.
const RB_AVAIL_DATA: u64 = 0;
const RB_RING_SIZE: u64 = 1;

/// Wake the reader only once the ring is an eighth full; it also drains on
/// its own every 100 ms and at the end. The kernel's default wakes it for
/// nearly every record while it keeps up, and each wakeup costs the traced
/// process an interrupt and the reader a context switch.
#[inline(always)]
fn wakeup_flag() -> u64 {
    if EVENTS.query(RB_AVAIL_DATA) >= EVENTS.query(RB_RING_SIZE) / 8 { RB_FORCE_WAKEUP } else { RB_NO_WAKEUP }
}

/// A scratch slot owned until [`Slot::release`].
pub struct Slot {
    pub buf: *mut EventBuf,
}

impl Slot {
    #[inline(always)]
    pub fn acquire() -> Option<Slot> {
        for i in 0..2u32 {
            let Some(buf) = SCRATCH.get_ptr_mut(i) else { continue };
            // SAFETY: buf points at this CPU's slot i.
            unsafe {
                if (*buf).busy == 0 {
                    (*buf).busy = 1;
                    return Some(Slot { buf });
                }
            }
        }
        bump(stat::SCRATCH_BUSY);
        None
    }

    /// Fills the header fields common to every record.
    #[inline(always)]
    pub fn header(&mut self, op: u16, pid: u32) -> &mut EventHeader {
        let pid_tgid = bpf_get_current_pid_tgid();
        // SAFETY: returns the current task pointer; only read through probe helpers.
        let task = unsafe { bpf_get_current_task() } as *const u8;
        let parent = kread::ptr(task, off!(task_real_parent));
        // SAFETY: self.buf is a valid scratch slot owned by this handler.
        let h = unsafe { &mut (*self.buf).hdr };
        // SAFETY: plain helper call with no arguments.
        h.boot_ns = unsafe { bpf_ktime_get_boot_ns() };
        h.arg = 0;
        h.pid = pid;
        h.tid = pid_tgid as u32;
        h.ppid = kread::read::<u32>(parent, off!(task_tgid)).unwrap_or(0);
        h.uid = bpf_get_current_uid_gid() as u32;
        // `op` and then zeros up to `comm` (flags, result, mode, the path
        // lengths, the socket fields, net_addr), as five aligned 8-byte
        // stores. Field by field, LLVM zeroes the unaligned run with a call
        // to a byte-at-a-time memset loop: hundreds of instructions a record.
        const _: () = assert!(core::mem::offset_of!(EventHeader, op) == 32);
        const _: () = assert!(core::mem::offset_of!(EventHeader, comm) == 72);
        // SAFETY: offsets 32..72 of the header, 8-byte aligned (the slot is
        // a map value, the header is its first member), all plain integers.
        unsafe {
            let words = (&raw mut h.op).cast::<u64>();
            core::ptr::write_volatile(words, u64::from(op));
            for i in 1..5 {
                core::ptr::write_volatile(words.add(i), 0);
            }
        }
        // Straight into the header: through a stack array it costs two
        // memsets and a byte-wise copy.
        // SAFETY: the helper writes at most COMM_LEN bytes, NUL-terminated,
        // into the header's comm field.
        unsafe { bpf_get_current_comm((&raw mut h.comm).cast(), COMM_LEN as u32) };
        kread::begin(self.buf, kread::Field::First);
        h
    }

    /// Sends header + `len` bytes of path data, then frees the slot.
    #[inline(always)]
    pub fn send(self, data_len: usize) {
        let total = EventHeader::SIZE + data_len;
        if total <= core::mem::size_of::<EventBuf>() {
            // SAFETY: total is bounded by the slot's size just above.
            let bytes = unsafe { core::slice::from_raw_parts(self.buf as *const u8, total) };
            if EVENTS.output::<[u8]>(bytes, wakeup_flag()).is_ok() {
                bump(stat::EVENTS_SENT);
            } else {
                bump(stat::RINGBUF_DROPS);
            }
        }
        self.release();
    }

    /// Finishes a record with one or two path fields written by the walks:
    /// compacts the second field, copies the walk flags into the header,
    /// counts failures and truncations, and sends.
    #[inline(always)]
    pub fn send_paths(self, len1: usize, len2: usize) {
        let len2 = kread::compact(self.buf, len1, len2);
        let bits = kread::get_flags(self.buf);
        // SAFETY: the slot is owned by this handler.
        let h = unsafe { &mut (*self.buf).hdr };
        h.flags |= bits as u16;
        h.path_len = len1 as u16;
        h.path2_len = len2 as u16;
        if bits & u32::from(flag::PATH_FAILED | flag::PATH2_FAILED) != 0 {
            bump(stat::PATH_FAILURES);
        }
        if bits & u32::from(flag::PATH_TRUNCATED | flag::PATH2_TRUNCATED) != 0 {
            bump(stat::PATH_TRUNCATIONS);
        }
        self.send(len1 + len2);
    }

    #[inline(always)]
    pub fn release(self) {
        // SAFETY: we own the slot.
        unsafe { (*self.buf).busy = 0 };
    }
}
