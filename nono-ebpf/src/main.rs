//! nono's eBPF programs. Entry points are thin: each calls one handler in
//! `sys` (the syscall dispatcher), `proc` (process tree) or `lsm` (BPF LSM)
//! and always lets the operation proceed: recording never denies.
//!
//! Every tracepoint program is a BTF (raw) tracepoint: no tracefs, no
//! per-syscall programs (one on `sys_exit` dispatches on the number), and a
//! detach that does not wait for an RCU grace period the way a perf-event
//! tracepoint does.
#![no_std]
#![no_main]

mod dns;
mod emit;
mod fs;
mod kread;
mod lsm;
mod net;
mod proc;
mod sys;

use aya_ebpf::{
    macros::{btf_tracepoint, lsm},
    programs::{BtfTracePointContext, LsmContext},
};

#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit(ctx: BtfTracePointContext) -> u32 {
    sys::exit(&ctx)
}

#[btf_tracepoint(function = "sched_process_fork")]
pub fn sched_process_fork(ctx: BtfTracePointContext) -> u32 {
    proc::fork(&ctx)
}

#[btf_tracepoint(function = "sched_process_exec")]
pub fn sched_process_exec(ctx: BtfTracePointContext) -> u32 {
    proc::exec(&ctx)
}

#[btf_tracepoint(function = "sched_process_exit")]
pub fn sched_process_exit(ctx: BtfTracePointContext) -> u32 {
    proc::exit(&ctx)
}

/// LSM hooks: `lsm_<hook>` attaches to `<hook>`.
macro_rules! lsm_hook {
    ($($name:ident => $hook:literal => $body:expr;)*) => {$(
        #[lsm(hook = $hook)]
        pub fn $name(ctx: LsmContext) -> i32 {
            let _ = $body(&ctx);
            0
        }
    )*};
}

lsm_hook! {
    lsm_file_open => "file_open" => lsm::file_open;
    lsm_path_unlink => "path_unlink" => lsm::path_unlink;
    lsm_path_rmdir => "path_rmdir" => lsm::path_rmdir;
    lsm_path_mkdir => "path_mkdir" => lsm::path_mkdir;
    lsm_path_mknod => "path_mknod" => lsm::path_mknod;
    lsm_path_symlink => "path_symlink" => lsm::path_symlink;
    lsm_path_link => "path_link" => lsm::path_link;
    lsm_path_rename => "path_rename" => lsm::path_rename;
    lsm_path_truncate => "path_truncate" => lsm::path_truncate;
    lsm_file_ioctl => "file_ioctl" => lsm::file_ioctl;
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // SAFETY: the verifier rejects any program with a reachable panic path,
    // so this is never executed.
    unsafe { core::hint::unreachable_unchecked() }
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
