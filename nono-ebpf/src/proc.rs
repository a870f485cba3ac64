//! Process-tree tracking shared by both backends: a child joins the traced
//! set when a traced process forks it, execs are reported with the new
//! executable's canonical path and the name the exec was given, and a
//! process leaves the set when its thread-group leader exits.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_task},
    programs::BtfTracePointContext,
};
use nono_common::{EventBuf, PATH_MAX, flag, op, stat};

use crate::emit::{Slot, TRACED, bump, traced_tgid};
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

/// `sched_process_exec(p, old_pid, bprm)`: the path of the executable now
/// running (`mm->exe_file`, canonical) as the first field, and the file
/// the exec named (`bprm->filename`) as the second: for `./s.sh` that is
/// the script, while the first field is its `#!` interpreter. Userspace
/// drops the second when it equals the first.
#[inline(always)]
pub fn exec(ctx: &BtfTracePointContext) -> u32 {
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
    let len1 = kread::field_len(slot.buf);
    kread::begin(slot.buf, Field::Second);
    let bprm: *const u8 = ctx.arg(2);
    exec_name(slot.buf, task, kread::ptr(bprm, off!(bprm_filename)));
    let len2 = kread::field_len(slot.buf);
    slot.send_paths(len1, len2);
    0
}

/// `/dev/fd/`: how the kernel names a file an `execveat` reached through a
/// descriptor (`/dev/fd/N` for `AT_EMPTY_PATH`, `/dev/fd/N/name` for a
/// name relative to directory fd N).
const DEV_FD: &[u8; 8] = b"/dev/fd/";

/// Writes the name an exec was given as the second field: absolute as
/// given, relative joined to the cwd (unchanged by the exec), `/dev/fd/N`
/// resolved through descriptor N, which is still open at this point unless
/// it was close-on-exec (then the field stays empty and the miss is counted).
#[inline(always)]
fn exec_name(buf: *mut EventBuf, task: *const u8, name: *const u8) {
    if !kread::raw_kernel_path(buf, Field::Second, name) {
        let (mnt, dentry) = kread::base_dir(task, i64::from(kread::AT_FDCWD));
        kread::walk_dentry(buf, Field::Second, mnt, dentry);
        return;
    }
    if kread::get_flags(buf) & u32::from(flag::PATH2_FAILED | flag::PATH2_TRUNCATED) != 0 {
        return;
    }
    // SAFETY: the second field starts at PATH_MAX; the raw string follows
    // its tag, and the window stays inside the field.
    let text = unsafe { core::slice::from_raw_parts((*buf).data.as_ptr().add(PATH_MAX + 1), 24) };
    if text[..8] != DEV_FD[..] {
        return;
    }
    let mut fd: i64 = 0;
    let mut rest = 0;
    for i in 8..20 {
        let c = text[i];
        if c.is_ascii_digit() {
            fd = fd * 10 + i64::from(c - b'0');
        } else {
            rest = i;
            break;
        }
    }
    let after = text.get(rest).copied().unwrap_or(1);
    if rest <= 8 || (after != 0 && after != b'/') {
        // Not a descriptor name after all: keep the string as it is.
        return;
    }
    let file = kread::file_of_fd(task, fd);
    kread::begin(buf, Field::Second);
    if file.is_null() {
        bump(stat::EXEC_NAME_UNRESOLVED);
        return;
    }
    let (mnt, dentry) = kread::file_path(file);
    if after == b'/' {
        // A name relative to the directory open as fd N.
        if kread::raw_kernel_path(buf, Field::Second, name.wrapping_add(rest + 1)) {
            return;
        }
    }
    kread::walk_dentry(buf, Field::Second, mnt, dentry);
}

/// `sched_process_exit` (per thread): when the group leader exits, report
/// it and drop the process from the set.
#[inline(always)]
pub fn exit(_ctx: &BtfTracePointContext) -> u32 {
    let Some(tgid) = traced_tgid() else { return 0 };
    let tid = bpf_get_current_pid_tgid() as u32;
    if tid != tgid {
        return 0;
    }
    let _ = TRACED.remove(&tgid);
    let Some(mut slot) = Slot::acquire() else { return 0 };
    slot.header(op::EXIT, tgid);
    slot.send(0);
    0
}
