//! Loading the recorder for the commands that record (`learn`, `run
//! --audit`): the backend choice, the fallback from BPF LSM to tracepoints
//! and the message an unprivileged user gets.

use crate::record::{self, Backend, BackendChoice, Recorder};

/// Loads the requested backend; `auto` tries BPF LSM (a real load is the
/// only reliable probe: some kernels list `bpf` among the LSMs and still
/// refuse the programs) and falls back to tracepoints, saying why.
///
/// The one step of a recording that needs root's files (tracefs is
/// root's alone): it runs with root's filesystem identity even under
/// sudo, where the rest of nono acts as the user.
pub fn load_recorder(
    choice: BackendChoice,
    offsets: &nono_common::KernelOffsets,
    ring_bytes: u32,
) -> anyhow::Result<(Box<dyn Recorder>, Option<String>)> {
    crate::invoker::as_root(|| load_as_root(choice, offsets, ring_bytes))
        .map_err(|e| anyhow::Error::from(e).context("taking root's filesystem identity to load the recorder"))?
}

fn load_as_root(
    choice: BackendChoice,
    offsets: &nono_common::KernelOffsets,
    ring_bytes: u32,
) -> anyhow::Result<(Box<dyn Recorder>, Option<String>)> {
    let load = |b: Backend| {
        record::load(b, offsets, ring_bytes).map_err(|e| {
            let e = anyhow::Error::from(e).context(format!("loading the {b} recorder"));
            if refused_for_privilege(&e) { e.context(NEEDS_PRIVILEGE) } else { e }
        })
    };
    match choice {
        BackendChoice::Lsm => Ok((load(Backend::Lsm)?, None)),
        BackendChoice::Tracepoint => Ok((load(Backend::Tracepoint)?, None)),
        BackendChoice::Auto => {
            let lsm_listed =
                std::fs::read_to_string("/sys/kernel/security/lsm").is_ok_and(|l| l.trim().split(',').any(|m| m == "bpf"));
            if !lsm_listed {
                let why = "BPF LSM is not active (no `bpf` in /sys/kernel/security/lsm)".to_owned();
                return Ok((load(Backend::Tracepoint)?, Some(why)));
            }
            match record::load(Backend::Lsm, offsets, ring_bytes) {
                Ok(r) => Ok((r, None)),
                Err(e) => {
                    let why = format!(
                        "BPF LSM programs are refused here: {}",
                        anyhow::Error::from(e).chain().last().map(ToString::to_string).unwrap_or_default()
                    );
                    Ok((load(Backend::Tracepoint)?, Some(why)))
                }
            }
        }
    }
}

/// What an unprivileged user is told when the kernel refuses the recorder.
const NEEDS_PRIVILEGE: &str = "recording needs root (or CAP_BPF, CAP_PERFMON and CAP_SYS_RESOURCE): \
     run it as `sudo nono ...`; nono drops the command itself to your user";

/// Whether loading failed because this process may not create BPF maps or
/// programs (EPERM) and it is not root: the usual unprivileged mistake.
fn refused_for_privilege(e: &anyhow::Error) -> bool {
    !nix::unistd::geteuid().is_root()
        && e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>().is_some_and(|io| io.raw_os_error() == Some(libc::EPERM))
                || c.to_string().contains("Operation not permitted")
        })
}
