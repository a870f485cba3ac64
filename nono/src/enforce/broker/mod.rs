//! The broker: `nono run`'s supervisor answering seccomp user
//! notifications for what Landlock cannot express (issue 14).
//!
//! - **Atomic saves beside secrets**: `filesystem.brokered` rules let the
//!   supervisor create, write, rename and remove a few named entries of a
//!   directory that cannot be granted as a whole (`$HOME`, which holds
//!   `~/.ssh` and `~/.bashrc`), performing each operation itself.
//! - **Metadata**: `chmod`, `chown`, timestamps and xattrs have no Landlock
//!   right; the broker allows them beneath write grants only (by default).
//! - **Unix sockets and datagrams**: pathname Unix sockets (below Landlock
//!   ABI 9) and UDP/ICMP destinations (below ABI 10) are checked against
//!   `network.unix_connect`, `network.udp` and `network.icmp`.
//!
//! Reads never notify. Everything else is answered CONTINUE (Landlock
//! decides) or performed by the broker on its own descriptors (never by
//! letting the kernel re-read the caller's memory after the broker looked).
//!
//! # Threads
//! - The **notifier** (unconfined, the user's identity) receives each
//!   notification, reads the caller's arguments once, decides, performs
//!   filesystem operations and answers them.
//! - The **confined** thread and its workers (the user's identity and the
//!   command's own Landlock domain, see `confined`) perform network calls.
//!
//! # Threat model
//! The command is hostile and may race the broker from other threads or
//! processes sharing its memory or descriptors. Each decision is made on
//! data the broker copied and on objects it holds (`pidfd_getfd`
//! duplicates, `O_PATH` descriptors compared by inode); each notification
//! is checked to still be pending (`SECCOMP_IOCTL_NOTIF_ID_VALID`) before
//! the broker acts on what it read. If the supervisor dies, the filter's
//! notifications fail with ENOSYS (closed, not open) and the command is
//! killed with it.

mod caller;
pub mod confined;
mod fs;
mod metadata;
mod net;
mod notif;
mod own;
pub mod plan;
pub mod refusals;
pub mod rules;

use std::os::fd::{AsRawFd as _, OwnedFd};
use std::sync::Arc;

use crate::event::{Access, DenyBy, Event, NetAddr, Op, Outcome};

pub use confined::{Confined, become_user};
pub use notif::{Listener, Notif, Reply};
pub use plan::BrokerPlan;

/// Why the broker could not run.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("{call} failed")]
    Sys {
        call: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// What the audit trail records of a call the broker answered.
#[derive(Clone, Debug)]
pub struct AuditNote {
    pub op: Op,
    pub path: Option<String>,
    pub path2: Option<String>,
    pub arg: u64,
    pub net: Option<NetAddr>,
}

impl AuditNote {
    /// The same note for an open that created its file.
    fn created(self) -> AuditNote {
        self
    }
}

/// How a notification was answered by a handler.
pub(crate) enum Answer {
    Reply(Reply),
    /// Install this descriptor in the caller and return its number.
    Fd(OwnedFd, bool),
    /// The caller is gone (interrupted or killed): nothing to answer.
    Gone,
}

/// A handler's result: the answer, whether the broker refused it by
/// policy (a sandbox denial), and what to record.
pub(crate) struct Handled {
    pub answer: Answer,
    pub refused: bool,
    pub note: Option<AuditNote>,
}

impl Handled {
    fn cont() -> Handled {
        Handled { answer: Answer::Reply(Reply::Continue), refused: false, note: None }
    }
    fn gone() -> Handled {
        Handled { answer: Answer::Gone, refused: false, note: None }
    }
    fn reply(r: Reply) -> Handled {
        Handled { answer: Answer::Reply(r), refused: false, note: None }
    }
    fn reply_noted(r: Reply, note: AuditNote) -> Handled {
        Handled { answer: Answer::Reply(r), refused: false, note: Some(note) }
    }
    fn refused(errno: i32, note: AuditNote) -> Handled {
        Handled { answer: Answer::Reply(Reply::Error(errno)), refused: true, note: Some(note) }
    }
    fn fd(fd: OwnedFd, cloexec: bool, note: AuditNote) -> Handled {
        Handled { answer: Answer::Fd(fd, cloexec), refused: false, note: Some(note) }
    }
}

/// A notification the baseline filter raised to be denied and recorded
/// (`nono run --audit`): the errno to answer and the event to store.
pub type DenyHook = dyn Fn(&Notif) -> Option<(i32, Event)> + Send + Sync;

/// Where the broker's audit events go (`nono run --audit`): the store
/// writer's channel, shared with the recorder.
pub type AuditSink = tokio::sync::mpsc::Sender<Vec<Event>>;

/// Everything the notifier needs.
pub struct Broker {
    pub plan: Arc<BrokerPlan>,
    pub confined: Confined,
    /// The sandbox's TCP listeners, learned from its `listen` calls.
    pub own_listeners: Arc<own::OwnListeners>,
    pub audit: Option<Audit>,
    /// Decides notifications that the seccomp baseline raised only to be
    /// denied (and recorded, under `--audit`).
    pub deny: Option<Box<DenyHook>>,
    /// Every refusal, counted for the end of the run.
    pub refusals: Arc<refusals::Refusals>,
}

/// What the broker tells `run --audit`. The recorder sees the command's
/// own syscalls, including those the broker answered (their exit
/// tracepoint fires with the answer), so the broker adds events only for
/// what the recorder cannot see, and logs its refusals so attribution can
/// mark the recorder's events as its denials.
pub struct Audit {
    pub sink: AuditSink,
    pub decisions: crate::enforce::attribute::DecisionLog,
    /// The recorder takes filesystem successes from LSM hooks (which do not
    /// fire for the broker's own operations): the broker records those.
    pub record_performed_fs: bool,
}

/// Syscalls the recorder records from their exit whatever the answer
/// (`nono-ebpf`'s dispatcher): a denial of one of them is its event
/// already, and needs only attribution. Metadata changes are among them,
/// in both recorder modes.
fn seen_by_recorder(nr: i64) -> bool {
    if metadata::SYSCALLS.contains(&nr) {
        return true;
    }
    matches!(
        nr,
        libc::SYS_socket
            | libc::SYS_socketpair
            | libc::SYS_connect
            | libc::SYS_bind
            | libc::SYS_sendto
            | libc::SYS_sendmsg
            | libc::SYS_sendmmsg
            | libc::SYS_kill
            | libc::SYS_tkill
            | libc::SYS_tgkill
            | libc::SYS_pidfd_send_signal
            | libc::SYS_io_uring_setup
            | libc::SYS_add_key
            | libc::SYS_request_key
            | libc::SYS_keyctl
            | libc::SYS_shmget
            | libc::SYS_shmat
            | libc::SYS_semget
            | libc::SYS_msgget
            | libc::SYS_mq_open
            | libc::SYS_open
            | libc::SYS_openat
            | libc::SYS_openat2
            | libc::SYS_creat
            | libc::SYS_mkdir
            | libc::SYS_mkdirat
            | libc::SYS_unlink
            | libc::SYS_unlinkat
            | libc::SYS_rmdir
            | libc::SYS_rename
            | libc::SYS_renameat
            | libc::SYS_renameat2
    )
}

/// Where the notifier gets the filter's listener.
pub enum Source {
    Ready(Listener),
    /// The command's process installs the filter just before exec, writes
    /// the listener's descriptor number on `pipe` and waits for a byte on
    /// `ack`: the notifier duplicates it (`pidfd_getfd`) in between.
    Handover {
        pipe: OwnedFd,
        ack: OwnedFd,
        child: i32,
    },
}

/// The running notifier.
pub struct BrokerHandle {
    stop: OwnedFd,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BrokerHandle {
    /// Stops the notifier (after the command is gone) and waits for it.
    pub fn stop(mut self) {
        self.signal_stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    fn signal_stop(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writing 8 bytes to our eventfd.
        unsafe { libc::write(self.stop.as_raw_fd(), one.as_ptr().cast(), 8) };
    }
}

impl Drop for BrokerHandle {
    fn drop(&mut self) {
        self.signal_stop();
    }
}

/// Takes the listener the command's process hands over.
fn take_listener(source: Source) -> Result<Listener, BrokerError> {
    let (pipe, ack, child) = match source {
        Source::Ready(l) => return Ok(l),
        Source::Handover { pipe, ack, child } => (pipe, ack, child),
    };
    let sys = |call: &'static str| move |source| BrokerError::Sys { call, source };
    let mut num = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        // SAFETY: reading into our buffer.
        let n = unsafe { libc::read(pipe.as_raw_fd(), num[got..].as_mut_ptr().cast(), 4 - got) };
        if n == 0 {
            return Err(sys("reading the seccomp listener from the command")(std::io::Error::from(
                std::io::ErrorKind::UnexpectedEof,
            )));
        }
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(sys("reading the seccomp listener from the command")(e));
        }
        got += n as usize;
    }
    let theirs = i32::from_ne_bytes(num);
    // SAFETY: plain syscalls; non-negative results are descriptors we own.
    let fd = unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, child, 0u32);
        if pidfd < 0 {
            return Err(sys("pidfd_open")(std::io::Error::last_os_error()));
        }
        let pidfd = <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(pidfd as i32);
        let fd = libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), theirs, 0u32);
        if fd < 0 {
            return Err(sys("pidfd_getfd (the seccomp listener)")(std::io::Error::last_os_error()));
        }
        <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32)
    };
    // SAFETY: one byte to the command, which then closes its copy at exec.
    if unsafe { libc::write(ack.as_raw_fd(), [1u8].as_ptr().cast(), 1) } != 1 {
        return Err(sys("acknowledging the seccomp listener")(std::io::Error::last_os_error()));
    }
    Ok(Listener::new(fd))
}

impl Broker {
    /// Starts the notifier thread: it takes the listener (while nono may
    /// still be root: duplicating another process's descriptor needs
    /// ptrace rights), then the user's identity when `identity` is given
    /// (nono runs as root under sudo), then answers notifications until
    /// stopped or until every process of the sandbox is gone.
    pub fn start(self, source: Source, identity: Option<(u32, u32, Vec<u32>)>) -> Result<BrokerHandle, BrokerError> {
        // SAFETY: eventfd returns a new descriptor we own.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if efd < 0 {
            return Err(BrokerError::Sys { call: "eventfd", source: std::io::Error::last_os_error() });
        }
        // SAFETY: fresh descriptor.
        let stop = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(efd) };
        let stop_raw = stop.as_raw_fd();
        let thread = std::thread::Builder::new()
            .name("nono-broker".into())
            .spawn(move || {
                let listener = match take_listener(source) {
                    Ok(l) => Arc::new(l),
                    Err(e) => {
                        // The command never received its ack and exits
                        // (its gate closes): nothing runs unbrokered.
                        log::error!("broker: {e}");
                        return;
                    }
                };
                if let Some((uid, gid, groups)) = identity
                    && let Err(e) = become_user(uid, gid, &groups)
                {
                    log::error!("broker: taking the user's identity failed: {e}; answering nothing (calls fail closed)");
                    return;
                }
                // The notifier creates files with the caller's umask, applied
                // by hand: a private fs struct, umask 0.
                // SAFETY: unshare(CLONE_FS) affects only this thread.
                unsafe {
                    libc::unshare(libc::CLONE_FS);
                    libc::umask(0);
                }
                self.serve(&listener, stop_raw);
            })
            .map_err(|source| BrokerError::Sys { call: "spawning the broker thread", source })?;
        Ok(BrokerHandle { stop, thread: Some(thread) })
    }

    fn serve(self, listener: &Arc<Listener>, stop: i32) {
        loop {
            let mut fds = [
                libc::pollfd { fd: listener.fd().as_raw_fd(), events: libc::POLLIN, revents: 0 },
                libc::pollfd { fd: stop, events: libc::POLLIN, revents: 0 },
            ];
            // SAFETY: two pollfds.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
            if r < 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                log::error!("broker: poll failed: {}", std::io::Error::last_os_error());
                return;
            }
            if fds[1].revents != 0 {
                return;
            }
            if fds[0].revents & libc::POLLIN == 0 {
                // POLLHUP: every process of the sandbox is gone.
                if fds[0].revents != 0 {
                    return;
                }
                continue;
            }
            match listener.recv() {
                Ok(Some(n)) => self.dispatch(listener, &n),
                Ok(None) => {}
                Err(e) => {
                    log::error!("broker: {e}");
                    return;
                }
            }
        }
    }

    fn dispatch(&self, listener: &Arc<Listener>, n: &Notif) {
        if let Some(deny) = &self.deny
            && let Some((errno, event)) = deny(n)
        {
            let _ = listener.reply(n.id, Reply::Error(errno));
            self.refusals.add(refusals::describe(&event), DenyBy::Seccomp);
            self.log(n.pid, event.op, errno, DenyBy::Seccomp);
            if !seen_by_recorder(i64::from(n.nr)) {
                self.record(vec![event]);
            }
            return;
        }
        let mut caller = caller::Caller::new(n);
        let valid = || listener.valid(n.id);
        if let Some(h) = fs::handle(n, &mut caller, &self.plan, &valid) {
            self.answer(listener, n, h);
            return;
        }
        match net::handle(n, &mut caller, &self.plan, &self.own_listeners) {
            Some(Ok(work)) => {
                let worker_listener = Arc::clone(listener);
                let tid = n.pid as i32;
                // The recorder sees the command's connect or send return
                // with the broker's answer: nothing to add here.
                let outside_domain = work.outside_domain;
                let job = move || {
                    let _ = net::perform(&work, &worker_listener, tid);
                };
                let submitted = if outside_domain {
                    // This thread's identity (the user's, under sudo),
                    // without the command's Landlock domain.
                    own::spawn_outside_domain(job)
                } else {
                    self.confined.submit(Box::new(job))
                };
                if !submitted {
                    let _ = listener.reply(n.id, Reply::Error(libc::EIO));
                }
            }
            Some(Err(h)) => self.answer(listener, n, h),
            // Not ours (a rule we do not know): the kernel decides.
            None => {
                let _ = listener.reply(n.id, Reply::Continue);
            }
        }
    }

    fn answer(&self, listener: &Listener, n: &Notif, h: Handled) {
        let tid = n.pid as i32;
        let reply = match h.answer {
            Answer::Gone => return,
            Answer::Reply(r) => {
                let _ = listener.reply(n.id, r);
                r
            }
            Answer::Fd(fd, cloexec) => {
                use std::os::fd::AsFd as _;
                match listener.reply_fd(n.id, fd.as_fd(), cloexec) {
                    Ok(Some(num)) => Reply::Value(i64::from(num)),
                    Ok(None) => return,
                    Err(e) => {
                        log::error!("broker: {e}");
                        let _ = listener.reply(n.id, Reply::Error(libc::EIO));
                        Reply::Error(libc::EIO)
                    }
                }
            }
        };
        let Some(note) = &h.note else { return };
        if let Reply::Error(errno) = reply
            && h.refused
        {
            self.refusals.add(refusals::describe(&event_of(tid, note, reply, true, None)), DenyBy::Broker);
            self.log(n.pid, note.op, errno, DenyBy::Broker);
        }
        let performed_fs = matches!(reply, Reply::Value(_)) && note.op.is_filesystem() && note.op != Op::Metadata;
        let record_fs = self.audit.as_ref().is_some_and(|a| a.record_performed_fs);
        // `listen` is not recorded by the recorder at all; metadata changes
        // are (from the syscall's exit, not from hooks), so the broker
        // performing one needs no event of its own.
        if !seen_by_recorder(i64::from(n.nr)) || (performed_fs && record_fs) {
            let created = matches!(reply, Reply::Value(_)) && note.op == Op::Open;
            self.record(vec![event_of(tid, note, reply, h.refused, created.then_some(n.args))]);
        }
    }

    fn log(&self, tid: u32, op: Op, errno: i32, by: DenyBy) {
        if let Some(a) = &self.audit
            && let Ok(mut d) = a.decisions.lock()
        {
            d.push(crate::enforce::attribute::Decision {
                tid,
                op,
                errno,
                by,
                time_ns: jiff::Timestamp::now().as_nanosecond() as i64,
            });
        }
    }

    fn record(&self, events: Vec<Event>) {
        if let Some(Audit { sink, .. }) = &self.audit {
            // A full channel drops the event rather than stall the command;
            // the writer's own counters do not see it, so say so.
            if sink.try_send(events).is_err() {
                log::warn!("broker: an audit event was dropped (the store is behind)");
            }
        }
    }
}

/// An audit event for a call the broker answered.
fn event_of(tid: i32, note: &AuditNote, reply: Reply, refused: bool, open_args: Option<[u64; 6]>) -> Event {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).unwrap_or_default();
    let field =
        |k: &str| status.lines().find_map(|l| l.strip_prefix(k)).and_then(|v| v.split_whitespace().next()?.parse::<u32>().ok());
    let outcome = match reply {
        Reply::Continue | Reply::Value(_) => Outcome::Ok,
        Reply::Error(e) if refused => Outcome::Denied { errno: e, by: DenyBy::Broker },
        Reply::Error(e) => Outcome::Error(e),
    };
    let access = match (note.op, open_args) {
        (Op::Open, Some(_)) => Access::from_open_flags(note.arg, true, false),
        (Op::Open, None) => Access::from_open_flags(note.arg, false, false),
        _ => Access::default(),
    };
    Event {
        time_ns: jiff::Timestamp::now().as_nanosecond() as i64,
        pid: field("Tgid:").unwrap_or(tid as u32),
        tid: tid as u32,
        ppid: field("PPid:").unwrap_or(0),
        uid: field("Uid:").unwrap_or(0),
        comm: std::fs::read_to_string(format!("/proc/{tid}/comm")).unwrap_or_default().trim_end().to_owned(),
        exe: std::fs::read_link(format!("/proc/{tid}/exe")).ok().map(|p| crate::event::escape_path(&p)),
        op: note.op,
        path: note.path.clone(),
        path2: note.path2.clone(),
        access,
        arg: note.arg,
        file_type: 0,
        outcome,
        net: note.net.clone(),
        incomplete: false,
    }
}

/// The audit event of a syscall nono's seccomp baseline refused (under
/// `run --audit` the baseline's denials notify the supervisor, which
/// answers with the rule's errno and records this).
#[must_use]
pub fn seccomp_denial(n: &Notif, errno: i32) -> Event {
    let a = n.args;
    let tid = n.pid as i32;
    let (op, arg, net, path) = match i64::from(n.nr) {
        libc::SYS_socket | libc::SYS_socketpair => {
            let net = NetAddr { family: a[0] as u16, addr: None, port: 0, sock_type: (a[1] & 0xf) as u16, protocol: a[2] as u16 };
            (Op::Socket, a[1] & 0xffff_ffff, Some(net), None)
        }
        libc::SYS_ioctl => {
            let path = std::fs::read_link(format!("/proc/{tid}/fd/{}", a[0] as i32)).ok().map(|p| crate::event::escape_path(&p));
            (Op::Ioctl, a[1] & 0xffff_ffff, None, path)
        }
        libc::SYS_sendto | libc::SYS_sendmmsg => (Op::Send, a[3] & 0xffff_ffff, None, None),
        libc::SYS_sendmsg => (Op::Send, a[2] & 0xffff_ffff, None, None),
        nr => (Op::Syscall, nr as u64, None, None),
    };
    let note = AuditNote { op, path, path2: None, arg, net };
    let mut e = event_of(tid, &note, Reply::Error(errno), true, None);
    e.outcome = Outcome::Denied { errno, by: DenyBy::Seccomp };
    e
}
