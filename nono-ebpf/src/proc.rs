//! Process-tree tracking shared by both backends: a child joins the traced
//! set when a traced process forks it, execs are reported with the new
//! executable's canonical path, and a process leaves the set when its
//! thread-group leader exits.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_task},
    programs::{BtfTracePointContext, TracePointContext},
};
use nono_common::{op, stat};

use crate::emit::{PENDING, Slot, TRACED, bump, traced_tgid};
use crate::kread::{self, Field, off};

/// `sched_process_fork(parent, child)`: adopt new processes of the tree.
#[inline(always)]
pub fn fork(ctx: &BtfTracePointContext) -> u32 {
    let Some(tgid) = traced_tgid() else { return 0 };
    if !kread::offsets_valid() {
        return 0;
    }
    let child: *const u8 = ctx.arg(1);
    let child_pid = kread::read::<u32>(child, off!(task_pid)).unwrap_or(0);
    let child_tgid = kread::read::<u32>(child, off!(task_tgid)).unwrap_or(0);
    if child_pid == 0 || child_pid != child_tgid {
        // A new thread: it shares the traced thread group.
        return 0;
    }
    if TRACED.insert(&child_tgid, &1, 0).is_err() {
        bump(stat::TRACED_FULL);
    }
    let Some(mut slot) = Slot::acquire() else { return 0 };
    slot.header(op::FORK, tgid).arg = u64::from(child_tgid);
    slot.send(0);
    0
}

/// `sched_process_exec`: the path of the executable now running.
#[inline(always)]
pub fn exec(_ctx: &TracePointContext) -> u32 {
    let Some(tgid) = traced_tgid() else { return 0 };
    if !kread::offsets_valid() {
        return 0;
    }
    let Some(mut slot) = Slot::acquire() else { return 0 };
    slot.header(op::EXEC, tgid);
    // SAFETY: returns the current task pointer; only read through probe helpers.
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let mm = kread::ptr(task, off!(task_mm));
    let exe = kread::ptr(mm, off!(mm_exe_file));
    let (mnt, dentry) = kread::file_path(exe);
    kread::walk_dentry(slot.buf, Field::First, mnt, dentry);
    // SAFETY: the slot is owned by this handler.
    unsafe { (*slot.buf).hdr.mode = kread::dentry_mode(dentry) };
    let len = kread::field_len(slot.buf);
    slot.send_paths(len, 0);
    0
}

/// `sched_process_exit` (per thread): forget pending syscalls; when the
/// group leader exits, report it and drop the process from the set.
#[inline(always)]
pub fn exit(_ctx: &TracePointContext) -> u32 {
    let Some(tgid) = traced_tgid() else { return 0 };
    let tid = bpf_get_current_pid_tgid() as u32;
    let _ = PENDING.remove(&tid);
    if tid != tgid {
        return 0;
    }
    let _ = TRACED.remove(&tgid);
    let Some(mut slot) = Slot::acquire() else { return 0 };
    slot.header(op::EXIT, tgid);
    slot.send(0);
    0
}
