//! Who refused an access during a sandboxed run (`nono run --audit`).
//!
//! The kernel returns the same EACCES whether Landlock, file permissions
//! or another LSM refused, so an errno alone is not a denial. In order:
//! 1. **the supervisor's own decisions**: the seccomp baseline's denials
//!    and the broker's refusals, which it logged as it answered them;
//! 2. **Landlock's audit records** (ABI 7, with `--kernel-audit`): the
//!    kernel says exactly what it blocked;
//! 3. **computed**: the access needed a right the enforced plan did not
//!    grant (the same mapping `nono audit check` uses), *and* file
//!    permissions would have allowed it (the kernel checks those first, so
//!    otherwise the refusal was theirs).
//!
//! Anything else stays an error with its errno: a mode-000 file in a
//! granted directory, another user's `/proc/N/environ`.

use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::event::{DenyBy, Event, Op, Proto};
use crate::learn::{Grants, rights_for_event};
use crate::profile::rights::FsRight;
use crate::record::kaudit::LandlockDenial;

use super::dac::{R, W, X, mode_allows};
use super::sensitive::Who;

/// A refusal the supervisor answered itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub tid: u32,
    pub op: Op,
    pub errno: i32,
    pub by: DenyBy,
    pub time_ns: i64,
}

/// Where the supervisor logs its refusals for attribution.
pub type DecisionLog = Arc<Mutex<Vec<Decision>>>;

/// How close in time a record must be to an event to be its cause.
const WINDOW_NS: i64 = 3_000_000_000;

/// Everything attribution knows about one run.
pub struct Attributor {
    pub grants: Grants,
    pub who: Who,
    pub landlock: Vec<LandlockDenial>,
    pub decisions: Vec<Decision>,
}

impl Attributor {
    /// How the sandbox refused `e`, if it did.
    #[must_use]
    pub fn classify(&self, e: &Event) -> Option<DenyBy> {
        let errno = e.outcome.errno();
        if let Some(d) = self
            .decisions
            .iter()
            .find(|d| d.tid == e.tid && d.op == e.op && d.errno == errno && (d.time_ns - e.time_ns).abs() < WINDOW_NS)
        {
            return Some(d.by);
        }
        if self.landlock.iter().any(|d| landlock_matches(d, e)) {
            return Some(DenyBy::LandlockAudit);
        }
        (self.needs_ungranted(e) && self.permissions_allow(e)).then_some(DenyBy::Computed)
    }

    /// The access needed something the plan did not grant.
    fn needs_ungranted(&self, e: &Event) -> bool {
        if matches!(e.op, Op::Connect | Op::Bind) {
            let Some(net) = &e.net else { return false };
            if !matches!(net.proto(), Proto::Tcp | Proto::Unknown) || net.addr.is_none() {
                return false;
            }
            let ports = if e.op == Op::Connect { &self.grants.connect_ports } else { &self.grants.bind_ports };
            return self.grants.block_net || ports.as_ref().is_some_and(|p| !p.contains(&net.port));
        }
        rights_for_event(&crate::event::Event { outcome: crate::event::Outcome::Ok, ..e.clone() }).iter().any(
            |(path, rights, _)| {
                let have = self.grants.granted(path);
                rights.iter().any(|r| self.grants.handled.contains(r) && !have.contains(r))
            },
        )
    }

    /// File permissions (checked by the kernel before Landlock) would have
    /// allowed every right the access needed.
    fn permissions_allow(&self, e: &Event) -> bool {
        if matches!(e.op, Op::Connect | Op::Bind) {
            return true;
        }
        rights_for_event(&crate::event::Event { outcome: crate::event::Outcome::Ok, ..e.clone() })
            .iter()
            .all(|(path, rights, _)| rights.iter().all(|r| dac_allows(&self.who, path, *r)))
    }
}

fn landlock_matches(d: &LandlockDenial, e: &Event) -> bool {
    let near = ((d.time_ms as i64) * 1_000_000 - e.time_ns).abs() < WINDOW_NS;
    if !near || d.pid.is_some_and(|p| p != e.pid) {
        return false;
    }
    if d.blockers.iter().any(|b| b.starts_with("net.")) {
        return matches!(e.op, Op::Connect | Op::Bind);
    }
    match &d.path {
        Some(p) => e.path.as_deref() == Some(p) || e.path2.as_deref() == Some(p),
        // A record without a path (scopes): the same process at the same time.
        None => d.pid.is_some(),
    }
}

/// Whether file permissions let `who` use `right` on `path` (for a
/// directory right, on the directory), exactly as the kernel checks them:
/// search on every ancestor, then the mode bits of the owner, group or
/// others class (no owner shortcut: the owner of a mode-000 file is
/// refused too). Unknown (gone, or an ACL) counts as allowed: the
/// refusal is then not put on file permissions.
fn dac_allows(who: &Who, path: &Path, right: FsRight) -> bool {
    if who.uid == 0 {
        return true;
    }
    let mode = match right {
        FsRight::ReadFile | FsRight::ReadDir => R,
        FsRight::Execute => X,
        FsRight::WriteFile | FsRight::Truncate => W,
        FsRight::IoctlDev => 0,
        // Entries of a directory: write and search on it.
        _ => W | X,
    };
    let search = path.ancestors().skip(1).all(|a| bits_allow(who, a, X));
    search && (mode == 0 || bits_allow(who, path, mode))
}

fn bits_allow(who: &Who, path: &Path, mode: u32) -> bool {
    std::fs::metadata(path).map_or(true, |meta| mode_allows(who, &meta, path, mode))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Access, Outcome};
    use crate::learn::Grant;
    use std::os::unix::fs::PermissionsExt as _;

    fn open(path: &Path, pid: u32) -> Event {
        Event {
            time_ns: 1_000_000_000,
            pid,
            tid: pid,
            ppid: 1,
            uid: 1000,
            comm: "cat".into(),
            exe: None,
            op: Op::Open,
            path: Some(path.display().to_string()),
            path2: None,
            access: Access { read: true, ..Access::default() },
            arg: 0,
            file_type: libc::S_IFREG,
            outcome: Outcome::Error(libc::EACCES),
            net: None,
            incomplete: false,
        }
    }

    #[test]
    fn only_what_the_plan_refused_and_permissions_allowed_is_a_denial() {
        let d = tempfile::tempdir().expect("tmp");
        let granted = d.path().join("granted");
        std::fs::create_dir(&granted).expect("dir");
        let locked = granted.join("locked");
        std::fs::write(&locked, "x").expect("file");
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).expect("chmod");
        let secret = d.path().join("secret");
        std::fs::write(&secret, "x").expect("file");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let grants = Grants {
            fs: vec![Grant { path: granted.clone(), rights: FsRight::read_set(), file: false }],
            handled: FsRight::ALL.into_iter().collect(),
            ..Grants::default()
        };
        // A stranger to these files: mode bits decide.
        let a = Attributor {
            grants,
            who: Who { uid: 4242, gid: 4242, groups: vec![], is_self: false },
            landlock: vec![],
            decisions: vec![],
        };
        assert_eq!(a.classify(&open(&locked, 7)), None, "mode 000 in a granted directory: file permissions, not the sandbox");
        assert_eq!(a.classify(&open(&secret, 7)), Some(DenyBy::Computed), "readable, not granted: the sandbox");
        // A record from Landlock itself wins; the supervisor's log first.
        let mut a = a;
        a.landlock.push(LandlockDenial {
            serial: 1,
            time_ms: 1000,
            blockers: vec!["fs.read_file".into()],
            path: Some(locked.display().to_string()),
            pid: Some(7),
        });
        assert_eq!(a.classify(&open(&locked, 7)), Some(DenyBy::LandlockAudit));
        a.decisions.push(Decision { tid: 7, op: Op::Open, errno: libc::EACCES, by: DenyBy::Broker, time_ns: 1_000_000_000 });
        assert_eq!(a.classify(&open(&locked, 7)), Some(DenyBy::Broker));
    }
}
