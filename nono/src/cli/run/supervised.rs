//! Starting the command of `nono run` under the broker (issue 14).
//!
//! ```text
//! main thread          confined thread (user, Landlock domain)      command
//! build plan, ruleset ─> take the user's identity, restrict_self
//!                        fork ──────────────────────────────────────> waits at the gate
//! non-dumpable, notifier <─ Gated
//! release the gate ─────────────────────────────────────────────────> install seccomp
//! notifier <──────────────── listener number on a pipe ──────────────  (NEW_LISTENER)
//! notifier: pidfd_getfd, ack ───────────────────────────────────────> exec
//! ```
//!
//! The command is forked by the confined thread, so it lives in the very
//! Landlock domain in which the broker's workers perform its network calls
//! (see `enforce::broker::confined`). The supervisor makes itself
//! non-dumpable once the command is forked, so nothing in the sandbox can
//! attach to the confined threads.

use std::os::fd::{AsRawFd as _, OwnedFd};
use std::sync::Arc;

use anyhow::{Context as _, anyhow};

use crate::enforce::Prepared;
use crate::enforce::broker::{self, Broker, BrokerHandle, BrokerPlan, Confined, DenyHook, Source};
use crate::record::spawn;

/// A command started under the broker, waiting at its gate.
pub struct Supervised {
    gated: Option<spawn::Gated>,
    broker: Option<BrokerHandle>,
    confined: Option<Confined>,
    confined_thread: Option<std::thread::JoinHandle<()>>,
}

impl Supervised {
    /// The command, at its gate.
    pub fn take_gated(&mut self) -> Option<spawn::Gated> {
        self.gated.take()
    }

    /// After the command has exited: stop the notifier and the confined
    /// workers.
    pub fn finish(mut self) {
        if let Some(b) = self.broker.take() {
            b.stop();
        }
        drop(self.confined.take());
        if let Some(t) = self.confined_thread.take() {
            let _ = t.join();
        }
    }
}

fn pipe() -> anyhow::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| anyhow!("pipe2: {e}"))
}

/// Forks `cmd` from a confined thread that carries the sandbox, and starts
/// the notifier that will serve it once released.
pub fn start(
    mut prepared: Prepared,
    plan: BrokerPlan,
    mut cmd: spawn::Command,
    audit: Option<broker::Audit>,
    deny: Option<Box<DenyHook>>,
    refusals: Arc<broker::refusals::Refusals>,
) -> anyhow::Result<Supervised> {
    let identity = cmd.identity.clone().filter(|_| nix::unistd::geteuid().is_root());
    let (hand_r, hand_w) = pipe()?;
    let (ack_r, ack_w) = pipe()?;
    cmd.creds_ready = true;
    let ids = identity.as_ref().map(|i| (i.uid, i.gid, i.groups.clone()));
    let enter_ids = ids.clone();
    let (confined, confined_thread, forked) = broker::confined::start(
        move || {
            if let Some((uid, gid, groups)) = &enter_ids {
                broker::become_user(*uid, *gid, groups).map_err(|e| format!("taking the user's identity: {e}"))?;
            }
            prepared.restrict_current_thread().map_err(|e| e.to_string())?;
            Ok(prepared)
        },
        move |entered: Result<Prepared, String>| -> Result<spawn::Gated, String> {
            let prepared = entered?;
            let program = prepared.program();
            let (hw, ar) = (hand_w.as_raw_fd(), ack_r.as_raw_fd());
            let mut hook = || -> Result<(), i32> {
                // Async-signal-safe from here to exec: raw syscalls only.
                let listener = program.install().map_err(|_| libc::EPERM)?;
                let Some(listener) = listener else { return Ok(()) };
                let num = listener.as_raw_fd().to_ne_bytes();
                // SAFETY: writing 4 bytes from the stack to our pipe.
                if unsafe { libc::write(hw, num.as_ptr().cast(), 4) } != 4 {
                    return Err(libc::EPIPE);
                }
                let mut b = 0u8;
                // SAFETY: reading one byte into the stack.
                if unsafe { libc::read(ar, (&raw mut b).cast(), 1) } != 1 {
                    // No acknowledgement: the supervisor could not take the
                    // listener, and nothing may run unbrokered.
                    return Err(libc::EPERM);
                }
                // The guardian forks the command next and never execs:
                // close it, so the command never holds its own listener.
                drop(listener);
                Ok(())
            };
            let gated = spawn::fork_gated_with(&cmd, Some(&mut hook)).map_err(|e| e.to_string());
            drop((hand_w, ack_r));
            gated
        },
    )
    .context("starting the confined thread")?;
    let gated = forked
        .recv()
        .map_err(|_| anyhow!("the confined thread ended before forking the command"))?
        .map_err(|e| anyhow!("starting the sandboxed command: {e}"))?;
    // From now on nothing may attach to nono (the confined threads are in
    // the command's domain, with its identity).
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    let broker =
        Broker { plan: Arc::new(plan), confined: confined.clone(), own_listeners: Arc::default(), audit, deny, refusals }
            .start(Source::Handover { pipe: hand_r, ack: ack_w, child: gated.pid.as_raw() }, ids)
            .context("starting the broker")?;
    Ok(Supervised { gated: Some(gated), broker: Some(broker), confined: Some(confined), confined_thread: Some(confined_thread) })
}
