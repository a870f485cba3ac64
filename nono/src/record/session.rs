//! One recording session: start the command gated, trace it, drain the ring
//! buffer into batches for the store, forward signals, and wait for the
//! command to finish. Returns the child's status and the loss counters.
//!
//! Memory stays bounded whatever the event rate: batches go through a
//! bounded channel, so a slow store makes the reader wait, the ring buffer
//! fills, and the kernel counts the drops (reported, never hidden).

use std::os::fd::{FromRawFd as _, OwnedFd};
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc::Sender;

use super::RecordError;
use super::decode::Decoder;
use super::loader::{KernelCounters, Recorder};
use super::spawn::{self, Command};
use crate::event::Event;

/// Events per batch sent to the store.
const BATCH: usize = 4096;
/// How often partial batches are flushed and progress is refreshed.
const TICK: Duration = Duration::from_millis(100);
/// Signals nono forwards to the command.
const FORWARDED: [Signal; 4] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGQUIT];

/// How the command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum ChildStatus {
    Exited(i32),
    Signaled(i32),
}

impl ChildStatus {
    /// The shell convention: the exit code, or 128 + signal.
    #[must_use]
    pub fn exit_code(self) -> u8 {
        match self {
            ChildStatus::Exited(c) => c as u8,
            ChildStatus::Signaled(s) => (128 + s) as u8,
        }
    }
}

use super::progress::Display;
pub use super::progress::Progress;

/// What a session produced.
#[derive(Debug)]
pub struct Outcome {
    pub status: ChildStatus,
    pub pid: u32,
    pub counters: KernelCounters,
    /// Records decoded and handed to the store.
    pub events: u64,
    /// Records that could not be decoded (counted as lost).
    pub decode_errors: u64,
    /// Records read after the store failed (counted as lost).
    pub unstored: u64,
    /// Processes of the tree still running when the command exited.
    pub still_running: usize,
    pub duration: Duration,
    /// The first store error, if the store failed mid-session.
    pub store_error: Option<String>,
}

impl Outcome {
    #[must_use]
    pub fn lost(&self) -> u64 {
        self.counters.lost() + self.decode_errors + self.unstored
    }
}

/// Blocks the forwarded signals in this thread and returns a signalfd for
/// them. Call it first thing, before any thread exists: threads inherit the
/// mask, so no helper thread can ever receive (and die of) a SIGINT.
pub fn block_signals() -> Result<SignalFd, RecordError> {
    let mut mask = SigSet::empty();
    for s in FORWARDED {
        mask.add(s);
    }
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)
        .map_err(|e| RecordError::Sys { call: "pthread_sigmask", source: e.into() })?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| RecordError::Sys { call: "signalfd", source: e.into() })
}

fn pidfd(pid: nix::unistd::Pid) -> Result<OwnedFd, RecordError> {
    // SAFETY: plain syscall; on success it returns a new fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), libc::PIDFD_NONBLOCK) };
    if fd < 0 {
        return Err(RecordError::Sys { call: "pidfd_open", source: std::io::Error::last_os_error() });
    }
    // SAFETY: fd is a fresh descriptor returned by the kernel.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Registers an owned descriptor with the runtime.
fn register<T: std::os::fd::AsRawFd>(inner: T) -> std::io::Result<AsyncFd<T>> {
    // SAFETY: the AsyncFd takes ownership of `inner`, so the descriptor
    // stays open for as long as it is registered.
    unsafe { AsyncFd::register(inner) }.map_err(|e| e.into_parts().1)
}

/// Offset from `CLOCK_BOOTTIME` (the kernel's stamps) to Unix time.
fn boot_to_unix_ns() -> i64 {
    let ns = |clock| nix::time::clock_gettime(clock).map_or(0, |t| t.tv_sec() * 1_000_000_000 + t.tv_nsec());
    ns(nix::time::ClockId::CLOCK_REALTIME) - ns(nix::time::ClockId::CLOCK_BOOTTIME)
}

/// Runs `command` under `recorder`, sending event batches to `sink`.
///
/// `sigfd` comes from [`block_signals`]. The command is forked from here;
/// the child only makes async-signal-safe calls, so other threads may exist.
pub fn run(
    recorder: &mut dyn Recorder,
    command: &Command,
    progress: Progress,
    sink: Sender<Vec<Event>>,
    sigfd: SignalFd,
) -> Result<Outcome, RecordError> {
    let gated = spawn::fork_gated(command)?;
    run_gated(recorder, gated, progress, sink, sigfd)
}

/// [`run`] for a child forked earlier with [`spawn::fork_gated_with`]
/// (still waiting at its gate).
pub fn run_gated(
    recorder: &mut dyn Recorder,
    mut gated: spawn::Gated,
    progress: Progress,
    sink: Sender<Vec<Event>>,
    sigfd: SignalFd,
) -> Result<Outcome, RecordError> {
    let started = Instant::now();
    let child = gated.pid;
    if let Err(e) = recorder.trace(child.as_raw() as u32) {
        drop(gated);
        let _ = nix::sys::wait::waitpid(child, None);
        return Err(e);
    }
    let ring = recorder.take_events()?;
    // Before the command runs: the title is nono's only until then.
    let mut display = Display::new(progress, started);
    if let Err(e) = gated.release() {
        let _ = nix::sys::wait::waitpid(child, None);
        return Err(e.into());
    }
    let pidfd = pidfd(child)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| RecordError::Sys { call: "creating the async runtime", source })?;
    let mut state = Loop {
        decoder: Decoder::new(boot_to_unix_ns()),
        batch: Vec::with_capacity(BATCH),
        events: 0,
        decode_errors: 0,
        unstored: 0,
        store_error: None,
        sink,
    };
    let status = rt.block_on(state.run(recorder, ring, pidfd, sigfd, child, &mut display))?;
    // The guardian's status stands for the command's (see `guardian`).
    let status = child_status(gated.command_status(status)).unwrap_or(ChildStatus::Exited(125));
    // Before any summary: the line cleared, the terminal's title restored.
    display.finish();
    let counters = recorder.counters()?;
    Ok(Outcome {
        status,
        pid: child.as_raw() as u32,
        counters,
        events: state.events,
        decode_errors: state.decode_errors,
        unstored: state.unstored,
        still_running: recorder.traced_count(),
        duration: started.elapsed(),
        store_error: state.store_error,
    })
}

struct Loop {
    decoder: Decoder,
    batch: Vec<Event>,
    events: u64,
    decode_errors: u64,
    unstored: u64,
    store_error: Option<String>,
    sink: Sender<Vec<Event>>,
}

impl Loop {
    async fn run(
        &mut self,
        recorder: &dyn Recorder,
        ring: aya::maps::RingBuf<aya::maps::MapData>,
        pidfd: OwnedFd,
        sigfd: SignalFd,
        child: nix::unistd::Pid,
        display: &mut Display,
    ) -> Result<nix::sys::wait::WaitStatus, RecordError> {
        let io = |call| move |source| RecordError::Sys { call, source };
        let mut ring = register(ring).map_err(io("registering the ring buffer"))?;
        let pidfd = register(pidfd).map_err(io("registering the pidfd"))?;
        let sigfd = register(sigfd).map_err(io("registering the signalfd"))?;
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                guard = ring.readable_mut() => {
                    let mut guard = guard.map_err(io("polling the ring buffer"))?;
                    self.drain(guard.get_inner_mut()).await;
                    guard.clear_ready();
                }
                _ = pidfd.readable() => break,
                guard = sigfd.readable() => {
                    let mut guard = guard.map_err(io("polling the signalfd"))?;
                    while let Ok(Some(info)) = guard.get_inner().read_signal() {
                        // A signal from the terminal already reached the
                        // command (same process group); forward only the
                        // ones sent to nono itself, e.g. by kill(1).
                        if info.ssi_code != libc::SI_KERNEL {
                            if let Ok(sig) = Signal::try_from(info.ssi_signo as i32) {
                                let _ = nix::sys::signal::kill(child, sig);
                            }
                        }
                    }
                    guard.clear_ready();
                }
                _ = tick.tick() => {
                    // The kernel wakes the reader only when the ring fills
                    // up (see nono-ebpf's `wakeup_flag`): drain on the tick.
                    self.drain(ring.get_mut()).await;
                    self.flush().await;
                    let lost = recorder.counters().map(|c| c.lost()).unwrap_or(0) + self.decode_errors + self.unstored;
                    display.update(self.events + self.batch.len() as u64, lost);
                }
            }
        }
        // The command has exited: everything it did is already in the ring.
        self.drain(ring.get_mut()).await;
        self.flush().await;
        wait_exit(child)
    }

    async fn drain(&mut self, ring: &mut aya::maps::RingBuf<aya::maps::MapData>) {
        while let Some(item) = ring.next() {
            match self.decoder.decode(&item) {
                Ok(event) => self.batch.push(event),
                Err(e) => {
                    self.decode_errors += 1;
                    if self.decode_errors <= 3 {
                        log::warn!("undecodable record: {e}");
                    }
                }
            }
            drop(item);
            if self.batch.len() >= BATCH {
                self.flush().await;
            }
        }
    }

    async fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        let n = batch.len() as u64;
        if self.store_error.is_some() {
            self.unstored += n;
            return;
        }
        if self.sink.send(batch).await.is_err() {
            self.store_error = Some("the store writer stopped".into());
            self.unstored += n;
        } else {
            self.events += n;
        }
    }
}

/// Supervises a gated child without recording (`nono run`): releases it,
/// forwards signals sent to nono, and returns how it ended.
#[expect(clippy::needless_pass_by_value, reason = "the gated child is this function's: released, reaped, then dropped")]
pub fn supervise(mut gated: spawn::Gated, sigfd: SignalFd) -> Result<ChildStatus, RecordError> {
    use std::os::fd::AsFd as _;
    let child = gated.pid;
    if let Err(e) = gated.release() {
        let _ = nix::sys::wait::waitpid(child, None);
        return Err(e.into());
    }
    let pidfd = pidfd(child)?;
    loop {
        let mut fds = [
            nix::poll::PollFd::new(pidfd.as_fd(), nix::poll::PollFlags::POLLIN),
            nix::poll::PollFd::new(sigfd.as_fd(), nix::poll::PollFlags::POLLIN),
        ];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(RecordError::Sys { call: "poll", source: e.into() }),
        }
        if fds[0].revents().is_some_and(|r| !r.is_empty()) {
            break;
        }
        while let Ok(Some(info)) = sigfd.read_signal() {
            // As in `run`: terminal signals already reached the command.
            if info.ssi_code != libc::SI_KERNEL {
                if let Ok(sig) = Signal::try_from(info.ssi_signo as i32) {
                    let _ = nix::sys::signal::kill(child, sig);
                }
            }
        }
    }
    Ok(child_status(gated.command_status(wait_exit(child)?)).unwrap_or(ChildStatus::Exited(125)))
}

/// Waits until `child` has exited or was killed.
fn wait_exit(child: nix::unistd::Pid) -> Result<nix::sys::wait::WaitStatus, RecordError> {
    loop {
        match nix::sys::wait::waitpid(child, None) {
            Ok(s @ (nix::sys::wait::WaitStatus::Exited(..) | nix::sys::wait::WaitStatus::Signaled(..))) => return Ok(s),
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(RecordError::Sys { call: "waitpid", source: e.into() }),
        }
    }
}

fn child_status(s: nix::sys::wait::WaitStatus) -> Option<ChildStatus> {
    match s {
        nix::sys::wait::WaitStatus::Exited(_, code) => Some(ChildStatus::Exited(code)),
        nix::sys::wait::WaitStatus::Signaled(_, sig, _) => Some(ChildStatus::Signaled(sig as i32)),
        _ => None,
    }
}
