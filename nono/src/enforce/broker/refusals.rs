//! What the supervisor refused, counted for the end of a plain `nono run`
//! (issue 22 §7), so a refused access does not show only as the program's
//! own "Permission denied".
//!
//! The supervisor sees two kinds: the broker's own refusals (a brokered
//! name that does not match, a Unix socket or UDP destination not listed,
//! a metadata change outside the write grants), and the seccomp baseline's
//! (a netlink socket, `TIOCSTI`, `io_uring`, ...), which notify the
//! supervisor instead of failing in the kernel whenever the broker runs:
//! denied calls are rare, so the round trip costs nothing measurable.
//! Landlock's refusals (files, TCP ports) happen in the kernel, which tells
//! only its audit log (root); they are not counted here.
//!
//! Memory is bounded: at most [`MAX_KINDS`] distinct descriptions are kept,
//! the rest only counted.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::event::{DenyBy, Event, Facility, Op, display_safe, family_name};

/// Most distinct refusals remembered.
pub const MAX_KINDS: usize = 64;

/// Refusals by description.
#[derive(Debug, Default)]
pub struct Refusals(Mutex<Tally>);

#[derive(Debug, Default)]
struct Tally {
    kinds: BTreeMap<(String, &'static str), u64>,
    total: u64,
}

/// One line of the summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    pub what: String,
    pub by: &'static str,
    pub count: u64,
}

impl Refusals {
    /// Counts a refusal described by `what`.
    pub fn add(&self, what: String, by: DenyBy) {
        let Ok(mut t) = self.0.lock() else { return };
        t.total += 1;
        let key = (what, by.name());
        if let Some(n) = t.kinds.get_mut(&key) {
            *n += 1;
        } else if t.kinds.len() < MAX_KINDS {
            t.kinds.insert(key, 1);
        }
    }

    /// Every refusal counted, most frequent first, and the total (which
    /// includes those past [`MAX_KINDS`]).
    #[must_use]
    pub fn summary(&self) -> (Vec<Refused>, u64) {
        let Ok(t) = self.0.lock() else { return (Vec::new(), 0) };
        let mut v: Vec<Refused> = t.kinds.iter().map(|((what, by), n)| Refused { what: what.clone(), by, count: *n }).collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.what.cmp(&b.what)));
        (v, t.total)
    }
}

/// A short description of a refused call, from its audit event: what it
/// was and on what, with control characters escaped.
#[must_use]
pub fn describe(e: &Event) -> String {
    let on = |p: &Option<String>| p.as_deref().map(|p| format!(" {}", display_safe(p))).unwrap_or_default();
    let text = match e.op {
        Op::Socket => {
            let n = e.net.as_ref();
            let family = n.map_or_else(|| "?".to_owned(), |n| family_name(i32::from(n.family)));
            format!("socket {family} (type {}, protocol {})", n.map_or(0, |n| n.sock_type), n.map_or(0, |n| n.protocol))
        }
        Op::Connect | Op::Send | Op::Bind => match (&e.net, &e.path) {
            (Some(n), _) if n.addr.is_some() => {
                format!("{} {}:{}", e.op, n.addr.map(|a| a.to_string()).unwrap_or_default(), n.port)
            }
            (_, p) => format!("{}{}", e.op, on(p)),
        },
        Op::Ioctl => {
            let name = match e.arg as libc::c_ulong {
                libc::TIOCSTI => "TIOCSTI".to_owned(),
                libc::TIOCLINUX => "TIOCLINUX".to_owned(),
                other => format!("{other:#x}"),
            };
            format!("ioctl {name}{}", on(&e.path))
        }
        Op::Syscall => Facility::syscall_name(e.arg as i64).map_or_else(|| format!("syscall {}", e.arg), str::to_owned),
        Op::Rename => format!("rename{} ->{}", on(&e.path), on(&e.path2)),
        _ => format!("{}{}", e.op, on(&e.path)),
    };
    format!("{text} by {}", display_safe(&e.comm))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_by_kind_and_bounded() {
        let r = Refusals::default();
        for i in 0..(MAX_KINDS + 10) {
            r.add(format!("kind {i}"), DenyBy::Broker);
        }
        r.add("kind 0".to_owned(), DenyBy::Broker);
        let (v, total) = r.summary();
        assert_eq!(total, MAX_KINDS as u64 + 11);
        assert_eq!(v.len(), MAX_KINDS);
        assert_eq!(v[0], Refused { what: "kind 0".to_owned(), by: "broker", count: 2 });
    }
}
