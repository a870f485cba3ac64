//! The refusal `nono run` prints when a profile would expose sensitive
//! paths: one paragraph per grant, the paths that exist first. When the
//! grants at fault are the workdir's (`$CWD`) and the workdir is not the
//! project the profile was learned in (it holds the user's home, say), the
//! message says that first: listing fifty dotfiles would bury the fix.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::Exposure;

/// Where `$CWD` points now, and the grants spelled with it.
#[derive(Clone, Debug, Default)]
pub struct CwdMoved {
    pub cwd: PathBuf,
    /// The expanded paths of grants the profile spells `$CWD...`.
    pub grants: Vec<PathBuf>,
    /// The user's home, to name it when `$CWD` is it or holds it.
    pub home: Option<PathBuf>,
}

/// How many paths each grant's paragraph shows.
const SHOWN: usize = 4;

/// The whole refusal. `root`: the command would run as root.
#[must_use]
pub fn refusal(exposed: &[Exposure], root: bool, cwd: Option<&CwdMoved>) -> String {
    let total = distinct(exposed.iter().map(|e| e.secret.as_path()));
    let (moved, rest): (Vec<&Exposure>, Vec<&Exposure>) =
        exposed.iter().partition(|e| cwd.is_some_and(|c| c.grants.contains(&e.grant)));
    let mut msg = String::new();
    if let (Some(c), false) = (cwd, moved.is_empty()) {
        let home = c.home.as_deref().filter(|h| h.starts_with(&c.cwd));
        let what = match home {
            Some(h) if *h == c.cwd => " (your home directory)",
            Some(_) => " (it holds your home directory)",
            None => "",
        };
        let n = distinct(moved.iter().map(|e| e.secret.as_path()));
        let _ = write!(
            msg,
            "refusing to run: `$CWD` is now {}{what}: the profile's grant on `$CWD` would expose {n} sensitive path(s) here. \
Run it from the project directory it was made for, or pass --allow-sensitive PATH for each path it may expose.",
            c.cwd.display()
        );
        paragraphs(&mut msg, &moved);
    }
    if !rest.is_empty() {
        if !msg.is_empty() {
            msg.push('\n');
        }
        let _ = write!(
            msg,
            "refusing to run: {} sensitive path(s) would be exposed:",
            distinct(rest.iter().map(|e| e.secret.as_path()))
        );
        paragraphs(&mut msg, &rest);
    }
    if msg.is_empty() {
        let _ = write!(msg, "refusing to run: {total} sensitive path(s) would be exposed");
    }
    msg.push_str(
        "\n  narrow the grant, or pass --allow-sensitive PATH for each path it may expose (a directory allows all beneath it)",
    );
    if root {
        msg.push_str("\n  (the command would run as root, which can read and write every file: run nono as the user, or as `sudo nono run`, which drops to SUDO_UID)");
    }
    msg
}

fn distinct<'a>(paths: impl Iterator<Item = &'a Path>) -> usize {
    let mut v: Vec<&Path> = paths.collect();
    v.sort_unstable();
    v.dedup();
    v.len()
}

/// One paragraph per grant: what it covers (the first few in full).
fn paragraphs(msg: &mut String, exposed: &[&Exposure]) {
    let mut grants: Vec<(&Path, &[String])> = Vec::new();
    for e in exposed {
        if !grants.iter().any(|(g, _)| *g == e.grant.as_path()) {
            grants.push((&e.grant, &e.origins));
        }
    }
    for (grant, origins) in grants {
        // What exists comes first: creating a missing rc file matters, but
        // reading an existing key matters more.
        let mut mine: Vec<&&Exposure> = exposed.iter().filter(|e| e.grant == grant).collect();
        mine.sort_by_key(|e| e.how == "create");
        let _ = write!(msg, "\n  the grant on {} (from {}) covers:", grant.display(), origins.join(", "));
        for e in mine.iter().take(SHOWN) {
            let _ = write!(msg, "\n    - {} ({}): the sandboxed user could {} it", e.secret.display(), e.why, e.how);
        }
        if mine.len() > SHOWN {
            let _ = write!(msg, "\n    - and {} more", mine.len() - SHOWN);
        }
    }
}
