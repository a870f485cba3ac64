//! The confined side of the broker: a thread that takes the sandboxed
//! user's identity and the command's Landlock domain, forks the command
//! (which therefore lives in the very same domain), and then runs, on
//! worker threads it spawns (they inherit its identity and domain), the
//! network operations the broker performs on the command's behalf.
//!
//! Why: a connect or send that seccomp notified cannot be let through
//! (`CONTINUE`) safely, because another thread of the command can swap the
//! address or the descriptor after the broker looked (a Unix socket path
//! for a TCP address, a UDP socket for a connected TCP one). So the broker
//! performs it, with the arguments it read, on its own duplicate of the
//! command's socket. Performed here, Landlock's TCP port rules and scoping
//! (abstract Unix sockets) apply exactly as they would to the command, and
//! peers see the user's credentials.
//!
//! # Threat model
//! These threads are the command's: same user, same Landlock domain, no
//! seccomp filter. The command cannot attach to them (the supervisor makes
//! its process non-dumpable once the command is forked, and Landlock
//! forbids ptrace outside the domain for the rest), and killing them only
//! stops the command's own network (the command dies with the supervisor).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// A unit of work for a confined worker.
pub type Job = Box<dyn FnOnce() + Send>;

/// Most worker threads: every one blocked means as many of the command's
/// threads are blocked in a connect or a full send buffer.
const MAX_WORKERS: usize = 256;

/// Handle to the confined thread.
#[derive(Clone)]
pub struct Confined {
    tx: mpsc::Sender<Job>,
}

impl Confined {
    /// Queues `job` on a confined worker. `false`: the confined side is gone.
    pub fn submit(&self, job: Job) -> bool {
        self.tx.send(job).is_ok()
    }
}

/// Starts the confined thread: it runs `enter` (take the identity, apply
/// the Landlock domain; an error ends the thread), then `fork` (start the
/// command) and sends `fork`'s result back, then serves jobs until every
/// [`Confined`] handle is dropped. The thread must outlive the command:
/// the command's parent-death signal fires when the thread that forked it
/// exits.
pub fn start<E, F, T, R>(enter: E, fork: F) -> std::io::Result<(Confined, std::thread::JoinHandle<()>, mpsc::Receiver<R>)>
where
    E: FnOnce() -> Result<T, String> + Send + 'static,
    F: FnOnce(Result<T, String>) -> R + Send + 'static,
    R: Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Job>();
    let (res_tx, res_rx) = mpsc::channel::<R>();
    let handle = std::thread::Builder::new().name("nono-confined".into()).spawn(move || {
        let entered = enter();
        let ok = entered.is_ok();
        let _ = res_tx.send(fork(entered));
        if !ok {
            return;
        }
        serve(&rx);
    })?;
    Ok((Confined { tx }, handle, res_rx))
}

/// Hands jobs to a pool of workers that inherit this thread's identity
/// and domain, growing it while every worker is busy.
fn serve(rx: &mpsc::Receiver<Job>) {
    let (work_tx, work_rx) = mpsc::channel::<Job>();
    let work_rx = Arc::new(Mutex::new(work_rx));
    let idle = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    while let Ok(job) = rx.recv() {
        if idle.load(Ordering::Acquire) == 0 && workers.len() < MAX_WORKERS {
            let (rx, idle) = (Arc::clone(&work_rx), Arc::clone(&idle));
            if let Ok(h) = std::thread::Builder::new().name("nono-net".into()).spawn(move || worker(&rx, &idle)) {
                workers.push(h);
            }
        }
        if work_tx.send(job).is_err() {
            break;
        }
    }
    drop(work_tx);
    for w in workers {
        let _ = w.join();
    }
}

fn worker(rx: &Mutex<mpsc::Receiver<Job>>, idle: &AtomicUsize) {
    loop {
        idle.fetch_add(1, Ordering::AcqRel);
        let job = match rx.lock() {
            Ok(guard) => guard.recv(),
            Err(_) => return,
        };
        idle.fetch_sub(1, Ordering::AcqRel);
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

/// Makes the calling thread the user `(uid, gid, groups)`: these syscalls
/// act on the calling thread only (the C library's wrappers would change
/// every thread of nono, including the one that keeps root for the
/// recorder). Called while still root; afterwards the thread has no
/// capabilities left.
pub fn become_user(uid: u32, gid: u32, groups: &[u32]) -> std::io::Result<()> {
    // SAFETY: raw credential syscalls with valid arguments; `groups`
    // outlives the call.
    unsafe {
        if libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::syscall(libc::SYS_setresgid, gid, gid, gid) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::syscall(libc::SYS_setresuid, uid, uid, uid) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_on_workers_that_inherit_the_confined_thread() {
        let (confined, handle, res) = start(|| Ok(()), |r: Result<(), String>| r.is_ok()).expect("start");
        assert!(res.recv().expect("fork result"));
        // SAFETY: gettid has no preconditions.
        let me = unsafe { libc::gettid() };
        let (tx, rx) = mpsc::channel();
        for _ in 0..8 {
            let tx = tx.clone();
            // SAFETY: as above.
            assert!(confined.submit(Box::new(move || tx.send(unsafe { libc::gettid() }).expect("send"))));
        }
        let tids: Vec<i32> = (0..8).map(|_| rx.recv().expect("job ran")).collect();
        assert!(tids.iter().all(|t| *t != me));
        drop(confined);
        handle.join().expect("confined thread ends when its handles are gone");
    }
}
