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
use crate::learn::{Learned, SensitiveHit};
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
/// tools (a pyenv under /root), since no profile can run those.
pub fn report_learned(learned: &Learned, explain: bool) {
    let mut groups: BTreeMap<&str, Vec<&SensitiveHit>> = BTreeMap::new();
    for hit in &learned.sensitive {
        groups.entry(hit.matched.as_str()).or_default().push(hit);
    }
    for (matched, hits) in &groups {
        let mut comms: Vec<&str> = hits.iter().flat_map(|h| h.comms.iter().map(String::as_str)).collect();
        comms.sort_unstable();
        comms.dedup();
        let examples: Vec<String> = hits.iter().take(2).map(|h| display_safe(&h.path).into_owned()).collect();
        let more = if hits.len() > 2 { format!(", and {} more", hits.len() - 2) } else { String::new() };
        let why = hits.first().map(|h| h.why.as_str()).unwrap_or_default();
        eprintln!(
            "nono: SENSITIVE: {} ({} path(s), used by {}: {}{more}) NOT granted: {}. Grant with --allow-sensitive {}",
            display_safe(matched),
            hits.len(),
            comms.join(","),
            examples.join(", "),
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
        output.display()
    );
    eprintln!(
        "nono: enforce it with: nono run --profile {} -- {}",
        shell_words(&[output.as_os_str().to_owned()]),
        shell_words(command)
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
