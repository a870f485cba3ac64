//! Live probes: real syscalls with the smallest possible programs, so a
//! "yes" means the kernel really does it here.

use std::os::fd::{FromRawFd as _, OwnedFd};

use serde::{Deserialize, Serialize};

/// Probe results; `None` = not probed (fixture root), `Err` = why not.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probes {
    pub landlock_abi: Option<i32>,
    pub lsm_program: Option<Result<(), String>>,
    pub tracepoint_program: Option<Result<(), String>>,
    pub seccomp_notify: Option<Result<(), String>>,
    /// How `nono run` makes the command's tree end with it: `Ok` with a
    /// pid namespace, `Err` with the subreaper fallback (and why).
    #[serde(default)]
    pub containment: Option<Result<String, String>>,
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_TRACING: u32 = 26;
const BPF_PROG_TYPE_LSM: u32 = 29;
const BPF_TRACE_RAW_TP: u32 = 23;
const BPF_LSM_MAC: u32 = 27;

impl Probes {
    /// Runs every probe against the running kernel.
    #[must_use]
    pub fn run() -> Probes {
        Probes {
            landlock_abi: Some(crate::enforce::kernel_abi()),
            lsm_program: Some(lsm_program()),
            tracepoint_program: Some(tracepoint_program()),
            seccomp_notify: Some(seccomp_notify()),
            containment: Some(match crate::record::guardian::probe() {
                (crate::record::guardian::Containment::PidNamespace, why) => Ok(why),
                (crate::record::guardian::Containment::Subreaper, why) => Err(why),
            }),
        }
    }
}

fn errno_text(call: &str) -> String {
    let e = std::io::Error::last_os_error();
    let name = e.raw_os_error().map(crate::store::errno_name).unwrap_or_default();
    format!("{call} failed: {name} ({e})")
}

/// `r0 = 0; exit`.
const RETURN_ZERO: [u64; 2] = [0x0000_0000_0000_00b7, 0x0000_0000_0000_0095];

/// BPF_PROG_LOAD of `RETURN_ZERO` with the given type, attach type and BTF id.
fn load(prog_type: u32, attach_type: u32, attach_btf_id: u32) -> Result<OwnedFd, String> {
    let license = c"GPL";
    let mut attr = [0u8; 144];
    let put32 = |a: &mut [u8; 144], off: usize, v: u32| a[off..off + 4].copy_from_slice(&v.to_ne_bytes());
    let put64 = |a: &mut [u8; 144], off: usize, v: u64| a[off..off + 8].copy_from_slice(&v.to_ne_bytes());
    put32(&mut attr, 0, prog_type);
    put32(&mut attr, 4, RETURN_ZERO.len() as u32);
    put64(&mut attr, 8, RETURN_ZERO.as_ptr() as u64);
    put64(&mut attr, 16, license.as_ptr() as u64);
    put32(&mut attr, 68, attach_type);
    put32(&mut attr, 108, attach_btf_id);
    // SAFETY: attr is a valid bpf_attr prefix for BPF_PROG_LOAD; the
    // pointers it holds (instructions, license) outlive the call.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_LOAD, attr.as_ptr(), attr.len()) };
    if fd < 0 {
        return Err(errno_text("BPF_PROG_LOAD"));
    }
    // SAFETY: a new descriptor the kernel returned to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Whether a BPF LSM program loads and attaches here (the recorder asks
/// before loading its own, so a refusing kernel costs a millisecond).
pub(crate) fn lsm_program() -> Result<(), String> {
    let btf = crate::record::btf::Btf::from_file(std::path::Path::new("/sys/kernel/btf/vmlinux")).map_err(|e| e.to_string())?;
    let id = btf.func_id("bpf_lsm_file_open").ok_or("the kernel has no bpf_lsm_file_open (CONFIG_BPF_LSM off)")?;
    let prog =
        load(BPF_PROG_TYPE_LSM, BPF_LSM_MAC, id).map_err(|e| format!("{e}; this kernel refuses LSM/trampoline programs"))?;
    let mut attr = [0u8; 64];
    attr[0..4].copy_from_slice(&(std::os::fd::AsRawFd::as_raw_fd(&prog) as u32).to_ne_bytes());
    attr[8..12].copy_from_slice(&BPF_LSM_MAC.to_ne_bytes());
    // SAFETY: a valid bpf_attr prefix for BPF_LINK_CREATE (prog_fd, target 0, attach type).
    let link = unsafe { libc::syscall(libc::SYS_bpf, BPF_LINK_CREATE, attr.as_ptr(), attr.len()) };
    if link < 0 {
        return Err(errno_text("BPF_LINK_CREATE (attach)"));
    }
    // SAFETY: closing the link we just created detaches the program.
    unsafe { libc::close(link as i32) };
    Ok(())
}

/// The recorder's tracepoints are BTF tracepoints (`tp_btf`), its syscall
/// dispatcher on the raw `sys_exit` tracepoint: load the smallest such
/// program and attach it.
fn tracepoint_program() -> Result<(), String> {
    let btf = crate::record::btf::Btf::from_file(std::path::Path::new("/sys/kernel/btf/vmlinux")).map_err(|e| e.to_string())?;
    let id = btf.typedef_id("btf_trace_sys_exit").ok_or("the kernel's BTF has no btf_trace_sys_exit")?;
    let prog = load(BPF_PROG_TYPE_TRACING, BPF_TRACE_RAW_TP, id)?;
    let mut attr = [0u8; 16];
    // raw_tracepoint.name = NULL (the BTF id names it), .prog_fd
    attr[8..12].copy_from_slice(&(std::os::fd::AsRawFd::as_raw_fd(&prog) as u32).to_ne_bytes());
    // SAFETY: a valid bpf_attr prefix for BPF_RAW_TRACEPOINT_OPEN.
    let link = unsafe { libc::syscall(libc::SYS_bpf, BPF_RAW_TRACEPOINT_OPEN, attr.as_ptr(), attr.len()) };
    if link < 0 {
        return Err(errno_text("BPF_RAW_TRACEPOINT_OPEN (attach)"));
    }
    // SAFETY: closing the link we just created detaches the program.
    unsafe { libc::close(link as i32) };
    Ok(())
}

/// In a forked child: no_new_privs, then an allow-all filter with
/// `SECCOMP_FILTER_FLAG_NEW_LISTENER`; the child's exit code is the errno.
/// `nono run` asks this before it relies on its broker.
pub fn seccomp_notify() -> Result<(), String> {
    // SAFETY: the child only makes raw syscalls and _exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(errno_text("fork"));
    }
    if pid == 0 {
        // SAFETY (child): async-signal-safe syscalls on stack data only.
        unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                libc::_exit(100);
            }
            let allow = libc::sock_filter { code: 0x06, jt: 0, jf: 0, k: 0x7fff_0000 };
            let prog = libc::sock_fprog { len: 1, filter: (&raw const allow).cast_mut() };
            let r = libc::syscall(libc::SYS_seccomp, 1, 8, &raw const prog); // SET_MODE_FILTER, NEW_LISTENER
            libc::_exit(if r >= 0 { 0 } else { *libc::__errno_location() });
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &raw mut status, 0) };
    match libc::WEXITSTATUS(status) {
        0 if libc::WIFEXITED(status) => Ok(()),
        100 => Err("prctl(PR_SET_NO_NEW_PRIVS) failed".to_owned()),
        errno => Err(format!(
            "seccomp(SECCOMP_FILTER_FLAG_NEW_LISTENER) failed: {} ({})",
            crate::store::errno_name(errno),
            std::io::Error::from_raw_os_error(errno)
        )),
    }
}
