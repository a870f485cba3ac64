//! Which syscalls notify the broker. They come after the baseline's rules
//! in the filter (first match wins, so a baseline denial is never turned
//! into a notification), and only what the plan needs is notified: plain
//! opens and reads never are.

use crate::enforce::seccomp::{Action, Arg, Cmp, Rule, Width};
use crate::profile::MetadataPolicy;

use super::plan::BrokerPlan;
use super::{metadata, net};

/// The notify rules for `plan`.
#[must_use]
pub fn rules(plan: &BrokerPlan) -> Vec<Rule> {
    let mut out = Vec::new();
    let notify = |nr: i64, args: Vec<Arg>, name: &str| Rule::new(nr, args, Action::Notify, format!("broker: {name}"));
    if plan.needs_fs_notifications() {
        let creat = libc::O_CREAT as u64;
        out.push(notify(libc::SYS_open, vec![Arg::int_masked(1, creat, creat)], "open with O_CREAT"));
        out.push(notify(libc::SYS_openat, vec![Arg::int_masked(2, creat, creat)], "openat with O_CREAT"));
        for (nr, name) in [
            (libc::SYS_creat, "creat"),
            // The flags are in a struct: every openat2.
            (libc::SYS_openat2, "openat2"),
            (libc::SYS_mkdir, "mkdir"),
            (libc::SYS_mkdirat, "mkdirat"),
            (libc::SYS_unlink, "unlink"),
            (libc::SYS_unlinkat, "unlinkat"),
            (libc::SYS_rmdir, "rmdir"),
            (libc::SYS_rename, "rename"),
            (libc::SYS_renameat, "renameat"),
            (libc::SYS_renameat2, "renameat2"),
        ] {
            out.push(notify(nr, vec![], name));
        }
    }
    if plan.metadata != MetadataPolicy::Any {
        for nr in metadata::SYSCALLS {
            out.push(notify(*nr, vec![], "metadata change"));
        }
    }
    // Landlock restricts truncate(2) from ABI 3: below, the broker decides
    // it (a file beneath a write grant), else any file the user may write
    // could be emptied, `~/.bashrc` included. ftruncate(2) needs a
    // descriptor open for writing, which Landlock checked at the open.
    if crate::enforce::kernel_abi() < 3 {
        out.push(notify(libc::SYS_truncate, vec![], "truncate (Landlock ABI below 3)"));
    }
    for nr in net::SYSCALLS {
        // A send without an address goes where the socket is connected
        // (checked at connect): only `sendto` with an address notifies.
        let args = if *nr == libc::SYS_sendto { vec![Arg { index: 4, width: Width::Long, cmp: Cmp::Ne(0) }] } else { vec![] };
        out.push(notify(*nr, args, "network"));
    }
    out
}
