//! The command's tree ends with nono (issue 21 §5): a `kill -9` of nono, or
//! the command's own exit, leaves nothing of the tree running.
//!
//! nono's child is not the command but a *guardian*: nono's own code,
//! forked like the command used to be (it waits at the gate, takes the
//! user's identity, applies the sandbox), which then forks the command and
//! stays behind it until it exits. Two ways, chosen by [`Containment`]:
//!
//! - **A pid namespace** (`CLONE_NEWPID`; with `CLONE_NEWUSER` as well when
//!   the forking thread is not root, which needs unprivileged user
//!   namespaces). The guardian is the namespace's init and dies with nono
//!   (`PR_SET_PDEATHSIG` = SIGKILL); when init dies, the kernel kills every
//!   process of the namespace, and nothing in it can leave, kill or stop
//!   its init. The user namespace maps only the user's own uid and gid
//!   (files of other owners show as `nobody`), and capabilities held in it
//!   are lost at the command's `execve` (its uid is not 0 there); the
//!   guardian drops its own. `/proc` stays the host's: `/proc/self` is
//!   right, but a pid from `getpid()` names another process in `/proc`.
//! - **A subreaper** (no namespace): the guardian is a child subreaper,
//!   so every orphan of the tree becomes its child, and its death signal is
//!   SIGTERM, which it handles: when nono is gone (its parent changed), it
//!   kills its children, reaps them and repeats until none is left. It
//!   lists them from `/proc/GUARDIAN/task/GUARDIAN/children`, opened by nono
//!   (outside the sandbox) and passed with the gate byte, since the
//!   sandbox may not grant `/proc`. nono itself is a subreaper too, and
//!   kills what it inherits if the guardian dies first. Under `nono run`
//!   the command is put in a nested Landlock domain that scopes signals
//!   (ABI 6), so it cannot kill or stop its guardian. The gap: below ABI 6,
//!   under `nono learn` (nothing is confined) and with
//!   `sandbox.signal_outside`, the command (same user) may kill or stop the
//!   guardian; if nono is then killed (SIGKILL) as well, what is left survives.
//!
//! Signals nono forwards reach the guardian, which forwards them to the
//! command unless the terminal sent them (the command got those itself).
//! The command's wait status goes back to nono on a pipe, so nono reports
//! the command's exit, not the guardian's.
//!
//! Everything run in the guardian and the command before `execve` is
//! async-signal-safe: raw system calls on memory prepared before the fork.

use std::io;
use std::os::fd::{AsRawFd as _, BorrowedFd};

/// How the command's tree is made to end with nono.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Containment {
    /// A pid namespace whose init is the guardian.
    PidNamespace,
    /// The guardian is a subreaper that kills the tree when nono dies.
    Subreaper,
}

impl Containment {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Containment::PidNamespace => "pid-namespace",
            Containment::Subreaper => "subreaper",
        }
    }
}

/// Signals the guardian waits for: those nono forwards, and SIGCHLD.
pub(crate) const FORWARDED: [i32; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// The guardian's signal mask: [`FORWARDED`] and SIGCHLD, blocked and
/// taken with `sigwaitinfo` (for a namespace's init, a blocked signal is
/// queued even without a handler).
pub(crate) fn guardian_mask() -> libc::sigset_t {
    // SAFETY: sigset operations on a local, zeroed set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut set);
        for s in FORWARDED {
            libc::sigaddset(&raw mut set, s);
        }
        libc::sigaddset(&raw mut set, libc::SIGCHLD);
        set
    }
}

fn errno() -> i32 {
    // SAFETY: reading this thread's errno.
    unsafe { *libc::__errno_location() }
}

/// Forks with a raw `clone` (no `atfork` handlers: safe after a raw clone
/// from a multi-threaded process, where glibc's `fork` could block on a
/// lock another thread held). `flags` beyond SIGCHLD create namespaces.
/// Returns what `fork` returns.
pub(crate) fn raw_fork(flags: libc::c_ulong) -> libc::pid_t {
    // SAFETY: clone without CLONE_VM and with a null stack behaves like
    // fork: the child continues on a copy of this stack.
    unsafe {
        libc::syscall(libc::SYS_clone, flags | libc::SIGCHLD as libc::c_ulong, 0usize, 0usize, 0usize, 0usize) as libc::pid_t
    }
}

/// Puts the calling process in a nested Landlock domain that only scopes
/// signals: it can no longer signal its guardian (in the parent domain).
/// Best effort: below Landlock ABI 6 the kernel refuses the ruleset, and
/// nothing changes. Async-signal-safe.
pub(crate) fn scope_signals() {
    /// `struct landlock_ruleset_attr` of ABI 6.
    #[repr(C)]
    struct Attr {
        handled_access_fs: u64,
        handled_access_net: u64,
        scoped: u64,
    }
    const LANDLOCK_SCOPE_SIGNAL: u64 = 1 << 1;
    let attr = Attr { handled_access_fs: 0, handled_access_net: 0, scoped: LANDLOCK_SCOPE_SIGNAL };
    // SAFETY: the documented ruleset call on a local struct, then
    // restrict_self on the descriptor it returned, then close.
    unsafe {
        let fd = libc::syscall(libc::SYS_landlock_create_ruleset, &raw const attr, std::mem::size_of::<Attr>(), 0u32);
        if fd < 0 {
            return;
        }
        libc::syscall(libc::SYS_landlock_restrict_self, fd as libc::c_int, 0u32);
        libc::close(fd as libc::c_int);
    }
}

/// The parent's half of the gate: one byte, with `fd` attached
/// (`SCM_RIGHTS`) when given.
pub(crate) fn send_gate(gate: BorrowedFd<'_>, fd: Option<BorrowedFd<'_>>) -> io::Result<()> {
    let mut byte = [1u8];
    let mut iov = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
    // Room for one descriptor, aligned for cmsghdr.
    let mut cbuf = [0u64; 4];
    // SAFETY: msghdr is plain data; the pointers set below outlive sendmsg.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    if let Some(fd) = fd {
        // SAFETY: CMSG macros on a buffer of CMSG_SPACE(4) bytes or more.
        unsafe {
            msg.msg_control = cbuf.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(4) as usize;
            let c = libc::CMSG_FIRSTHDR(&raw const msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(4) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<i32>(), fd.as_raw_fd());
        }
    }
    loop {
        // SAFETY: a valid msghdr on our socket.
        let n = unsafe { libc::sendmsg(gate.as_raw_fd(), &raw const msg, libc::MSG_NOSIGNAL) };
        if n == 1 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// The child's half: waits for the byte. `Ok(Some(fd))` when a descriptor
/// came with it, `Err(0)` when the parent closed the gate (it is gone),
/// else `Err(errno)`. Async-signal-safe.
pub(crate) fn recv_gate(gate: libc::c_int) -> Result<Option<libc::c_int>, i32> {
    let mut byte = [0u8];
    let mut iov = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
    let mut cbuf = [0u64; 4];
    loop {
        // SAFETY: msghdr on the stack, pointing at stack buffers.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cbuf);
        // SAFETY: as above.
        let n = unsafe { libc::recvmsg(gate, &raw mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n == 0 {
            return Err(0);
        }
        if n < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            return Err(errno());
        }
        // SAFETY: the kernel filled msg_control; CMSG_FIRSTHDR checks its length.
        let fd = unsafe {
            let c = libc::CMSG_FIRSTHDR(&raw const msg);
            if !c.is_null() && (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                Some(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<i32>()))
            } else {
                None
            }
        };
        return Ok(fd);
    }
}

/// Maps `uid` and `gid` to themselves in `pid`'s new user namespace (the
/// only mapping an unprivileged writer may make; root could map more, but
/// the command needs no other id).
pub(crate) fn write_id_maps(pid: libc::pid_t, uid: u32, gid: u32) -> io::Result<()> {
    let w = |file: &str, text: String| {
        std::fs::write(format!("/proc/{pid}/{file}"), text)
            .map_err(|e| io::Error::new(e.kind(), format!("/proc/{pid}/{file}: {e}")))
    };
    w("uid_map", format!("{uid} {uid} 1\n"))?;
    // Unprivileged writers must give up setgroups(2) before mapping a gid.
    w("setgroups", "deny\n".to_owned())?;
    w("gid_map", format!("{gid} {gid} 1\n"))
}

/// Opens the guardian's list of children for the guardian to read (it is
/// nono's own process, outside the sandbox). `None` without
/// `CONFIG_PROC_CHILDREN`.
pub(crate) fn children_file(pid: libc::pid_t) -> Option<std::fs::File> {
    std::fs::File::open(format!("/proc/{pid}/task/{pid}/children")).ok()
}

/// The guardian's state after the fork of the command.
pub(crate) struct Guardian {
    pub command: libc::pid_t,
    pub containment: Containment,
    /// The guardian's parent before the gate (nono), to tell its death
    /// (subreaper mode; init's parent reads as 0).
    pub parent: libc::pid_t,
    /// `/proc/SELF/task/SELF/children`, from nono.
    pub children: Option<libc::c_int>,
    /// Where the command's wait status goes.
    pub status: libc::c_int,
}

impl Guardian {
    /// Waits for the command, forwarding signals, then ends the tree and
    /// reports the command's status. Never returns.
    ///
    /// # Safety
    /// Only in the guardian, after its fork; async-signal-safe.
    pub(crate) unsafe fn run(&self) -> ! {
        let mask = guardian_mask();
        let mut status: Option<i32> = None;
        // SAFETY (whole body): raw syscalls on local memory.
        unsafe {
            loop {
                if status.is_some() {
                    break;
                }
                let mut info: libc::siginfo_t = std::mem::zeroed();
                let sig = libc::sigwaitinfo(&raw const mask, &raw mut info);
                if sig < 0 {
                    continue;
                }
                if sig == libc::SIGCHLD {
                    status = self.reap(false).or(status);
                    continue;
                }
                if self.parent_gone() {
                    self.end_tree();
                    libc::_exit(125);
                }
                // The terminal's own signals reached the command directly
                // (same process group); forward only those sent to us.
                if info.si_code != libc::SI_KERNEL {
                    libc::kill(self.command, sig);
                }
            }
            if self.containment == Containment::Subreaper {
                self.end_tree();
            }
            // Else: our exit ends the namespace, and the kernel kills the rest.
            if let Some(s) = status {
                let b = s.to_ne_bytes();
                libc::write(self.status, b.as_ptr().cast(), b.len());
            }
            libc::_exit(0);
        }
    }

    /// Whether nono is gone (subreaper mode: our parent changed).
    fn parent_gone(&self) -> bool {
        // SAFETY: getppid has no preconditions.
        self.containment == Containment::Subreaper && unsafe { libc::getppid() } != self.parent
    }

    /// Reaps every child that has ended; the command's status when it is
    /// one of them. `block`: wait for at least one.
    fn reap(&self, block: bool) -> Option<i32> {
        let mut found = None;
        let mut flags = if block { 0 } else { libc::WNOHANG };
        loop {
            let mut st = 0;
            // SAFETY: waitpid into a local.
            let r = unsafe { libc::waitpid(-1, &raw mut st, flags) };
            if r <= 0 {
                if r < 0 && errno() == libc::EINTR {
                    continue;
                }
                return found;
            }
            if r == self.command {
                found = Some(st);
            }
            flags = libc::WNOHANG;
        }
    }

    /// Kills every child (the command's orphans come to us) until none is
    /// left. Without the list of children, only the command is killed: the
    /// rest becomes nono's (also a subreaper), which ends it.
    fn end_tree(&self) {
        // SAFETY: kill of our own child.
        unsafe { libc::kill(self.command, libc::SIGKILL) };
        let Some(list) = self.children else {
            let _ = self.reap(false);
            return;
        };
        loop {
            let listed = kill_listed(list);
            let mut st = 0;
            // SAFETY: waitpid into a local; blocks until a child ends.
            let r = unsafe { libc::waitpid(-1, &raw mut st, 0) };
            if r < 0 && errno() == libc::ECHILD {
                return;
            }
            if r < 0 && errno() != libc::EINTR && listed == 0 {
                return;
            }
        }
    }
}

/// Reads a `children` file from the start and SIGKILLs every pid in it.
/// Returns how many were listed. Async-signal-safe.
fn kill_listed(fd: libc::c_int) -> usize {
    let mut count = 0;
    let mut buf = [0u8; 1024];
    let mut pid: i64 = 0;
    let mut in_number = false;
    // SAFETY: lseek/read on our descriptor into a local buffer; kill.
    unsafe {
        if libc::lseek(fd, 0, libc::SEEK_SET) < 0 {
            return 0;
        }
        loop {
            let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
            if n <= 0 {
                break;
            }
            for &b in &buf[..n as usize] {
                if b.is_ascii_digit() {
                    pid = pid * 10 + i64::from(b - b'0');
                    in_number = true;
                } else if in_number {
                    libc::kill(pid as libc::pid_t, libc::SIGKILL);
                    count += 1;
                    pid = 0;
                    in_number = false;
                }
            }
        }
        if in_number {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
            count += 1;
        }
    }
    count
}

/// The command's status from the guardian, if it sent one.
pub(crate) fn read_status(fd: BorrowedFd<'_>) -> Option<i32> {
    let mut b = [0u8; 4];
    // SAFETY: a non-blocking read into a local buffer (the guardian has
    // exited: its end is closed).
    let n = unsafe { libc::read(fd.as_raw_fd(), b.as_mut_ptr().cast(), 4) };
    (n == 4).then(|| i32::from_ne_bytes(b))
}

/// nono's side of the subreaper: after its guardian is gone, kills and
/// reaps any process of the tree that came to nono (the guardian died
/// first). Only for nono's own process, which forks nothing else.
pub fn end_inherited_tree() {
    for _ in 0..10_000 {
        let pids = own_children();
        if pids.is_empty() {
            return;
        }
        for p in &pids {
            // SAFETY: kill and waitpid of our own children.
            unsafe { libc::kill(*p, libc::SIGKILL) };
        }
        for p in &pids {
            let mut st = 0;
            // SAFETY: as above.
            unsafe { libc::waitpid(*p, &raw mut st, 0) };
        }
    }
}

/// nono's children, from every thread's list.
fn own_children() -> Vec<libc::pid_t> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return out };
    for t in tasks.flatten() {
        let Ok(text) = std::fs::read_to_string(t.path().join("children")) else { continue };
        out.extend(text.split_whitespace().filter_map(|p| p.parse::<libc::pid_t>().ok()));
    }
    out
}

/// Makes nono a child subreaper (orphans of the tree come to it).
pub(crate) fn become_subreaper() {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
}

/// Which containment `nono run` gets here, and why (for `setup
/// --check-only`): forks a child into a new pid namespace the way `run`
/// would, with a user namespace as an ordinary user does (as root, from a
/// child that first becomes `nobody`, since that is what users get).
#[must_use]
pub fn probe() -> (Containment, String) {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let user = try_pid_namespace(true);
    let children = children_file(std::process::id() as libc::pid_t).is_some();
    let fallback = if children {
        "PR_SET_PDEATHSIG plus a subreaper guardian"
    } else {
        "PR_SET_PDEATHSIG plus a subreaper guardian, without /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN): what the command leaves behind survives a SIGKILL of nono"
    };
    let user_text = match &user {
        Ok(()) => "a pid namespace in an unprivileged user namespace".to_owned(),
        Err(e) => format!(
            "{fallback}: unprivileged user namespaces are refused here ({e}; see user.max_user_namespaces, kernel.unprivileged_userns_clone, AppArmor's userns restriction)"
        ),
    };
    if root {
        return match try_pid_namespace(false) {
            Ok(()) => (Containment::PidNamespace, format!("root (sudo nono run): a pid namespace; ordinary users: {user_text}")),
            Err(e) => (Containment::Subreaper, format!("{fallback}: no pid namespace even as root ({e})")),
        };
    }
    let c = if user.is_ok() { Containment::PidNamespace } else { Containment::Subreaper };
    (c, user_text)
}

/// Forks a child into a new pid namespace, from a grandchild that became
/// `nobody` first when `as_user` (so it needs a user namespace).
fn try_pid_namespace(as_user: bool) -> Result<(), String> {
    // SAFETY: the child makes raw syscalls and exits; the parent reaps it.
    unsafe {
        let pid = libc::fork();
        if pid < 0 {
            return Err(io::Error::last_os_error().to_string());
        }
        if pid == 0 {
            let euid = libc::geteuid();
            let mut flags = libc::CLONE_NEWPID as libc::c_ulong;
            if as_user || euid != 0 {
                flags |= libc::CLONE_NEWUSER as libc::c_ulong;
            }
            if as_user && euid == 0 {
                let nobody = 65534;
                if libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) != 0
                    || libc::syscall(libc::SYS_setresgid, nobody, nobody, nobody) != 0
                    || libc::syscall(libc::SYS_setresuid, nobody, nobody, nobody) != 0
                {
                    libc::_exit(200);
                }
            }
            let inner = raw_fork(flags);
            if inner == 0 {
                libc::_exit(0);
            }
            if inner < 0 {
                libc::_exit(errno().clamp(1, 199));
            }
            let mut st = 0;
            libc::waitpid(inner, &raw mut st, 0);
            libc::_exit(0);
        }
        let mut st = 0;
        libc::waitpid(pid, &raw mut st, 0);
        match libc::WIFEXITED(st).then(|| libc::WEXITSTATUS(st)) {
            Some(0) => Ok(()),
            Some(200) => Err("could not become nobody to probe".to_owned()),
            Some(e) => Err(io::Error::from_raw_os_error(e).to_string()),
            None => Err("the probe child was killed".to_owned()),
        }
    }
}
