//! What `nono learn` prints after the command has exited: per-run status
//! and losses, what the profile needed beyond files (notes), sensitive
//! paths grouped by the secret they belong to, warnings, and with
//! `--explain` every generalisation and every anticipated right.
//!
//! Everything goes to stderr (stdout belongs to `--format json`), and only
//! after the command has exited: while it runs, the terminal is the agent's.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use super::common::shell_words;
use crate::event::display_safe;
use crate::learn::{Class, Learned, SensitiveHit};
use crate::record::Backend;
use crate::record::session::{ChildStatus, Outcome};

/// One recorded run, as the summary needs it.
pub struct RunSummary<'a> {
    pub session: i64,
    pub outcome: &'a Outcome,
    pub stored: u64,
    pub lost: u64,
}

pub fn describe_status(status: ChildStatus) -> String {
    match status {
        ChildStatus::Exited(c) => format!("exited with {c}"),
        ChildStatus::Signaled(s) => format!("killed by signal {s}"),
    }
}

/// The per-run lines: status, duration, events, losses, leftovers.
pub fn print_run(run: &RunSummary<'_>, backend: Backend) {
    let outcome = run.outcome;
    eprintln!(
        "nono: session {} ({backend}): {} after {:.1?}, {} events recorded",
        run.session,
        describe_status(outcome.status),
        outcome.duration,
        run.stored
    );
    if run.lost > 0 {
        eprintln!(
            "nono: WARNING: {} events were lost ({} ring-buffer drops, {} unreadable paths, {} truncated paths, {} pending-table \
overflows, {} tree-table overflows, {} undecodable, {} unstored).",
            run.lost,
            outcome.counters.ringbuf_drops,
            outcome.counters.path_failures,
            outcome.counters.path_truncations,
            outcome.counters.pending_full,
            outcome.counters.traced_full,
            outcome.decode_errors,
            run.lost.saturating_sub(outcome.counters.lost() + outcome.decode_errors),
        );
        eprintln!("nono: WARNING: the profile may be incomplete; re-run `nono learn`, or merge sessions with --from.");
    }
    if outcome.still_running > 0 {
        eprintln!(
            "nono: note: {} process(es) of the tree were still running when the command exited; their later actions were not \
recorded.",
            outcome.still_running
        );
    }
}

/// Sensitive accesses grouped by the entry of the sensitive list they hit:
/// one line per secret with a count and two examples (the full list under
/// `--explain`), then one hint per sensitive root that held the user's own
/// tools (a pyenv under /root), since no profile can run those. Changes to
/// persistence files (which run code outside the sandbox) are one grouped
/// warning; lookups of sensitive paths that do not exist are one note.
pub fn report_learned(learned: &Learned, explain: bool) {
    let mut secrets: BTreeMap<&str, Vec<&SensitiveHit>> = BTreeMap::new();
    let mut persistence: BTreeMap<&str, Vec<&SensitiveHit>> = BTreeMap::new();
    let mut missing: Vec<&SensitiveHit> = Vec::new();
    for hit in &learned.sensitive {
        if hit.missing {
            missing.push(hit);
        } else if hit.class == Class::Persistence {
            persistence.entry(hit.matched.as_str()).or_default().push(hit);
        } else {
            secrets.entry(hit.matched.as_str()).or_default().push(hit);
        }
    }
    for (matched, hits) in &secrets {
        let (examples, more, comms) = summary(hits);
        let why = hits.first().map(|h| h.why.as_str()).unwrap_or_default();
        eprintln!(
            "nono: SENSITIVE: {} ({} path(s), used by {comms}: {examples}{more}) NOT granted: {}. Grant with --allow-sensitive {}",
            display_safe(matched),
            hits.len(),
            display_safe(why),
            display_safe(matched)
        );
        if explain && hits.len() > 2 {
            for h in hits {
                eprintln!("nono: explain: sensitive {}: {}", display_safe(&h.path), display_safe(&h.why));
            }
        }
        if let Some(hint) = tools_hint(matched, hits) {
            eprintln!("nono: {hint}");
        }
    }
    if !persistence.is_empty() {
        eprintln!(
            "nono: PERSISTENCE: NOT granted: the command changed (or tried to) {} file(s) that run code outside the \
sandbox; they stay readable, never writable. Grant one with --allow-sensitive PATH if you mean it:",
            persistence.len()
        );
        for (matched, hits) in &persistence {
            let mut comms: Vec<&str> = hits.iter().flat_map(|h| h.comms.iter().map(String::as_str)).collect();
            comms.sort_unstable();
            comms.dedup();
            let ops: std::collections::BTreeSet<String> =
                hits.iter().flat_map(|h| h.ops.iter().map(ToString::to_string)).collect();
            // The paths involved besides the file itself (its lock, a temp, a directory).
            let others: Vec<String> =
                hits.iter().filter(|h| h.path != **matched).take(3).map(|h| display_safe(&h.path).into_owned()).collect();
            let others = if others.is_empty() { String::new() } else { format!(", via {}", others.join(", ")) };
            let why = hits.first().map(|h| h.why.as_str()).unwrap_or_default();
            eprintln!(
                "nono:   {}: {} (by {}: {}{others})",
                display_safe(matched),
                display_safe(why),
                display_safe(&comms.join(",")),
                ops.into_iter().collect::<Vec<_>>().join(", "),
            );
        }
    }
    if !missing.is_empty() {
        let shown: Vec<String> = missing.iter().take(4).map(|h| display_safe(&h.path).into_owned()).collect();
        let more = if missing.len() > 4 { format!(", and {} more", missing.len() - 4) } else { String::new() };
        eprintln!(
            "nono: note: looked for {} sensitive path(s) that do not exist (nothing was read, nothing is granted): {}{more}",
            missing.len(),
            shown.join(", ")
        );
    }
    for n in &learned.notes {
        eprintln!("nono: note: {}", display_safe(n));
    }
    for w in &learned.warnings {
        eprintln!("nono: warning: {}", display_safe(w));
    }
    if explain {
        for x in &learned.explanations {
            let from = x.from.iter().map(|f| display_safe(f).into_owned()).collect::<Vec<_>>().join(", ");
            let from = if from.is_empty() { String::new() } else { format!(": {from}") };
            eprintln!("nono: explain: {} <- {} path(s) ({}){from}", display_safe(&x.rule_path), x.paths, x.reason);
        }
        for r in learned.rules.iter().filter(|r| !r.anticipated.is_empty()) {
            let rights: Vec<&str> = r.anticipated.iter().map(|x| x.name()).collect();
            eprintln!(
                "nono: explain: {} has anticipated rights no run used: {} (learn with --no-anticipate to leave them out)",
                display_safe(&r.path),
                rights.join(", ")
            );
        }
    }
}

/// Two examples, "and N more", and who used them.
fn summary(hits: &[&SensitiveHit]) -> (String, String, String) {
    let mut comms: Vec<&str> = hits.iter().flat_map(|h| h.comms.iter().map(String::as_str)).collect();
    comms.sort_unstable();
    comms.dedup();
    let examples: Vec<String> = hits.iter().take(2).map(|h| display_safe(&h.path).into_owned()).collect();
    let more = if hits.len() > 2 { format!(", and {} more", hits.len() - 2) } else { String::new() };
    (examples.join(", "), more, display_safe(&comms.join(",")).into_owned())
}

/// The learning user's tools live under a sensitive root when an exec (or
/// an interpreter's library read) landed there: say once that the profile
/// cannot run them, and how to fix it.
fn tools_hint(matched: &str, hits: &[&SensitiveHit]) -> Option<String> {
    let exec = hits
        .iter()
        .any(|h| h.ops.contains(&crate::event::Op::Exec) || h.rights.contains(&crate::profile::rights::FsRight::Execute));
    if !exec {
        return None;
    }
    Some(format!(
        "hint: the command runs programs installed under {} (sensitive), which the profile cannot grant: install them \
outside it (a system package, /usr/local, /opt) for the sandboxed user, or grant the install's own directory, e.g. \
--allow-sensitive {}",
        display_safe(matched),
        display_safe(hits.first().map(|h| tool_root(&h.path, matched)).as_deref().unwrap_or(matched))
    ))
}

/// A likely install root for a tool at `path` under `matched`: the first
/// component below it (`/root/.pyenv` for `/root/.pyenv/versions/...`).
fn tool_root(path: &str, matched: &str) -> String {
    let rest = path.strip_prefix(matched).unwrap_or_default().trim_start_matches('/');
    match rest.split('/').next().filter(|c| !c.is_empty()) {
        Some(first) => format!("{}/{first}", matched.trim_end_matches('/')),
        None => matched.to_owned(),
    }
}

/// The last lines: the profile, and how to enforce it.
pub fn print_profile_line(learned: &Learned, output: &Path, command: &[OsString]) {
    let udp = learned.udp.as_ref().map_or(0, |u| u.to.len() + usize::from(u.dns));
    eprintln!(
        "nono: profile: {} rules, {} connect port(s), {} listen port(s), {udp} UDP destination(s), {} Unix socket(s) -> {}",
        learned.rules.len(),
        learned.connect_ports.len(),
        learned.bind_ports.len(),
        learned.unix_connect.len(),
        display_safe(&output.display().to_string())
    );
    eprintln!(
        "nono: enforce it with: nono run --profile {} -- {}",
        display_safe(&shell_words(&[output.as_os_str().to_owned()])),
        display_safe(&shell_words(command))
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_roots_are_the_first_component_below_the_secret() {
        assert_eq!(tool_root("/root/.pyenv/versions/3.11/bin/python3", "/root"), "/root/.pyenv");
        assert_eq!(tool_root("/root", "/root"), "/root");
    }

    #[test]
    fn shell_words_quote_what_a_shell_would_split() {
        let argv: Vec<OsString> = ["sh", "-c", "echo 'hi'"].map(OsString::from).to_vec();
        assert_eq!(shell_words(&argv), r"sh -c 'echo '\''hi'\'''");
    }
}
