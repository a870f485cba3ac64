//! nono's eBPF programs. Entry points are thin: each calls one handler in
//! `sys` (syscall tracepoints), `proc` (process tree) or `lsm` (BPF LSM)
//! and always lets the operation proceed: recording never denies.
#![no_std]
#![no_main]

mod emit;
mod kread;
mod lsm;
mod proc;
mod sys;

use aya_ebpf::{
    macros::{btf_tracepoint, lsm, tracepoint},
    programs::{BtfTracePointContext, LsmContext, TracePointContext},
};

/// One `sys_enter_X`/`sys_exit_X` program pair per traced syscall. Program
/// names equal tracepoint names; userspace attaches each under `syscalls/`.
macro_rules! syscall_pair {
    ($($enter:ident / $exit:ident => $nr:expr;)*) => {$(
        #[tracepoint]
        pub fn $enter(ctx: TracePointContext) -> u32 {
            sys::enter(&ctx, $nr)
        }
        #[tracepoint]
        pub fn $exit(ctx: TracePointContext) -> u32 {
            sys::exit(&ctx, $nr)
        }
    )*};
}

syscall_pair! {
    sys_enter_open / sys_exit_open => sys::nr::OPEN;
    sys_enter_openat / sys_exit_openat => sys::nr::OPENAT;
    sys_enter_openat2 / sys_exit_openat2 => sys::nr::OPENAT2;
    sys_enter_creat / sys_exit_creat => sys::nr::CREAT;
    sys_enter_execve / sys_exit_execve => sys::nr::EXECVE;
    sys_enter_execveat / sys_exit_execveat => sys::nr::EXECVEAT;
    sys_enter_unlink / sys_exit_unlink => sys::nr::UNLINK;
    sys_enter_unlinkat / sys_exit_unlinkat => sys::nr::UNLINKAT;
    sys_enter_rmdir / sys_exit_rmdir => sys::nr::RMDIR;
    sys_enter_rename / sys_exit_rename => sys::nr::RENAME;
    sys_enter_renameat / sys_exit_renameat => sys::nr::RENAMEAT;
    sys_enter_renameat2 / sys_exit_renameat2 => sys::nr::RENAMEAT2;
    sys_enter_mkdir / sys_exit_mkdir => sys::nr::MKDIR;
    sys_enter_mkdirat / sys_exit_mkdirat => sys::nr::MKDIRAT;
    sys_enter_link / sys_exit_link => sys::nr::LINK;
    sys_enter_linkat / sys_exit_linkat => sys::nr::LINKAT;
    sys_enter_symlink / sys_exit_symlink => sys::nr::SYMLINK;
    sys_enter_symlinkat / sys_exit_symlinkat => sys::nr::SYMLINKAT;
    sys_enter_truncate / sys_exit_truncate => sys::nr::TRUNCATE;
    sys_enter_ftruncate / sys_exit_ftruncate => sys::nr::FTRUNCATE;
    sys_enter_mknod / sys_exit_mknod => sys::nr::MKNOD;
    sys_enter_mknodat / sys_exit_mknodat => sys::nr::MKNODAT;
    sys_enter_connect / sys_exit_connect => sys::nr::CONNECT;
    sys_enter_bind / sys_exit_bind => sys::nr::BIND;
}

/// Loaded but not attached: the tail-call target of every `sys_exit_*`.
#[tracepoint]
pub fn sys_exit_common(ctx: TracePointContext) -> u32 {
    sys::exit_common(&ctx)
}

#[btf_tracepoint(function = "sched_process_fork")]
pub fn sched_process_fork(ctx: BtfTracePointContext) -> u32 {
    proc::fork(&ctx)
}

#[tracepoint]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    proc::exec(&ctx)
}

#[tracepoint]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
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
    lsm_socket_connect => "socket_connect" => lsm::socket_connect;
    lsm_socket_bind => "socket_bind" => lsm::socket_bind;
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
