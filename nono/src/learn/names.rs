//! Names that change from run to run: which ones, and how a learned rule
//! spells them.
//!
//! Two rules, for two uses:
//! - [`volatile_kind`]: a path component that will differ on the next run
//!   (a traced pid, `tmp.XXXXXX`, a version, a hash, a random token). The
//!   learner moves a rule up past it, so it is deliberately strict: a
//!   wrong "volatile" widens a rule to the parent directory.
//! - [`temp_pattern`]: the name of a temp sibling of a file saved
//!   atomically (created in this run and renamed over the target, or
//!   created and removed beside it). One session shows one random name;
//!   the pattern must match the next run's. Here the context already says
//!   "temp file", so random-looking tokens are recognised more broadly,
//!   and the result is only ever a name glob in one directory, checked
//!   against the sensitive list by the caller.

use std::collections::HashSet;

/// Why a name is expected to differ on the next run, if it is.
pub(crate) fn volatile_kind(name: &str, pids: &HashSet<u32>) -> Option<&'static str> {
    if has_traced_pid(name, pids) {
        return Some("process id");
    }
    if is_temp_name(name) {
        return Some("random temp-file name");
    }
    if has_version(name) {
        return Some("version number");
    }
    for tok in name.split(['.', '-', '_', '+', '@', ',', '~', '#']) {
        if is_hash(tok) {
            return Some("hash");
        }
        if is_random(tok) {
            return Some("random suffix");
        }
    }
    None
}

/// A maximal digit run (3+ digits, so `python3` never matches) that is a
/// pid or tid seen in this recording.
fn has_traced_pid(name: &str, pids: &HashSet<u32>) -> bool {
    name.split(|c: char| !c.is_ascii_digit())
        .filter(|run| run.len() >= 3)
        .any(|run| run.parse::<u32>().is_ok_and(|n| pids.contains(&n)))
}

/// `tmp.XXXXXX` (mktemp), `.tmpAbc123` (Rust tempfile), `tmpk2j3_x9a`
/// (Python): `tmp`, an optional separator, then 6+ word characters.
fn is_temp_name(name: &str) -> bool {
    let s = name.strip_prefix('.').unwrap_or(name);
    let Some(rest) = s.strip_prefix("tmp") else {
        return false;
    };
    let rest = rest.strip_prefix(['.', '-', '_']).unwrap_or(rest);
    let seg = rest.split('.').next().unwrap_or_default();
    seg.len() >= 6 && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `1.2`, `3.11`, `v18.17.0` anywhere in the name.
fn has_version(name: &str) -> bool {
    name.as_bytes().windows(3).any(|w| w[0].is_ascii_digit() && w[1] == b'.' && w[2].is_ascii_digit())
}

/// Eight or more hex digits in one case, at least one a digit (plain words
/// like `deadbeef` aside), which also catches timestamps.
fn is_hash(tok: &str) -> bool {
    tok.len() >= 8
        && tok.bytes().any(|b| b.is_ascii_digit())
        && (tok.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            || tok.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)))
}

/// Eight or more letters and digits that alternate at least three times
/// (`k2j3x9ab`), unlike names such as `ubuntu2204` or `sha256sums`.
fn is_random(tok: &str) -> bool {
    if tok.len() < 8 || !tok.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return false;
    }
    let b = tok.as_bytes();
    b.windows(2).filter(|w| w[0].is_ascii_digit() != w[1].is_ascii_digit()).count() >= 3
}

/// Separators between the tokens of a temp name. `_` is not one: Python's
/// `tempfile` draws it as a random character (`k2j3_x9a`).
const SEPARATORS: [char; 5] = ['.', '-', '+', '~', '#'];

/// The glob for the temp sibling `name` of `target` (see the module docs):
/// `target` stays literal wherever it appears in `name`; elsewhere each
/// token (split at `.`, `-`, `+`, `~`, `#`) that [`is_random_token`] or
/// that is a uuid becomes `*`, a `tmp` prefix stays (`tmpk2j3_x9a` ->
/// `tmp*`), and runs of `*` and separators collapse to one `*`.
///
/// `.claude.json.tmp.4242.1732912345678` -> `.claude.json.tmp.*`,
/// `.gitconfig.tmp.dzfyfv8h` -> `.gitconfig.tmp.*`,
/// `settings.json.bak` -> `settings.json.bak`.
#[must_use]
pub(crate) fn temp_pattern(name: &str, target: &str, pids: &HashSet<u32>) -> String {
    let (before, after) = match name.find(target).filter(|_| !target.is_empty()) {
        Some(i) => (&name[..i], Some(&name[i + target.len()..])),
        None => (name, None),
    };
    let mut out = generalise_tokens(before, pids);
    if let Some(after) = after {
        out.push_str(target);
        out.push_str(&generalise_tokens(after, pids));
    }
    collapse_stars(&out)
}

/// Each random token of `part` replaced by `*` (separators kept).
fn generalise_tokens(part: &str, pids: &HashSet<u32>) -> String {
    let tokens = split_tokens(part);
    let uuid = uuid_tokens(&tokens);
    let mut out = String::new();
    for (i, (tok, sep)) in tokens.iter().enumerate() {
        let tmp_random = tok.strip_prefix("tmp").is_some_and(|r| is_random_token(r.trim_start_matches('_'), pids));
        if tmp_random && !uuid[i] {
            out.push_str("tmp*");
        } else if uuid[i] || is_random_token(tok, pids) {
            out.push('*');
        } else {
            out.push_str(tok);
        }
        if let Some(c) = sep {
            out.push(*c);
        }
    }
    out
}

/// `(token, separator after it)`.
fn split_tokens(s: &str) -> Vec<(&str, Option<char>)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if SEPARATORS.contains(&c) {
            out.push((&s[start..i], Some(c)));
            start = i + c.len_utf8();
        }
    }
    out.push((&s[start..], None));
    out
}

/// Which tokens form a uuid (8-4-4-4-12 hex digits joined by `-`).
fn uuid_tokens(tokens: &[(&str, Option<char>)]) -> Vec<bool> {
    let mut out = vec![false; tokens.len()];
    let hex = |t: &str, n: usize| t.len() == n && t.bytes().all(|b| b.is_ascii_hexdigit());
    for i in 0..tokens.len().saturating_sub(4) {
        let w = &tokens[i..i + 5];
        let shape = [8, 4, 4, 4, 12].iter().zip(w).all(|(n, (t, _))| hex(t, *n));
        let dashes = w[..4].iter().all(|(_, s)| *s == Some('-'));
        if shape && dashes {
            out[i..i + 5].fill(true);
        }
    }
    out
}

/// `*` followed by separators and `*` again says no more than `*`.
fn collapse_stars(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending = String::new();
    for c in s.chars() {
        if c == '*' {
            if out.ends_with('*') {
                pending.clear();
                continue;
            }
            out.push_str(&pending);
            pending.clear();
            out.push('*');
        } else if out.ends_with('*') && SEPARATORS.contains(&c) {
            pending.push(c);
        } else {
            out.push_str(&pending);
            pending.clear();
            out.push(c);
        }
    }
    out.push_str(&pending);
    out
}

/// A token of a temp name that a random source made (the context is a
/// temp sibling, see the module docs):
/// - 3 or more digits (a pid, a time, a counter), or a traced pid inside;
/// - 6 or more letters, digits and `_` that mix letters and digits
///   (mkstemp's `XXXXXX`, base36, hex, Python's `k2j3_x9a`), except a word
///   with a short number at one end (`python3`, `utf8`, `x86_64`);
/// - 6 or more letters in mixed case that change case at least 3 times
///   after the first letter (mkstemp's `qWeRtY`; not `JavaScript`);
/// - 6 or more letters of one case with a run of 5 consonants (base36
///   without a digit, `dzfyfvqh`; not `settings`, `backup`).
#[must_use]
pub(crate) fn is_random_token(tok: &str, pids: &HashSet<u32>) -> bool {
    let b = tok.as_bytes();
    if b.is_empty() {
        return false;
    }
    if b.iter().all(u8::is_ascii_digit) {
        return b.len() >= 3;
    }
    if has_traced_pid(tok, pids) {
        return true;
    }
    if b.len() < 6 || !b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_') {
        return false;
    }
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    let letters = b.iter().filter(|c| c.is_ascii_alphabetic()).count();
    if digits > 0 && letters > 0 {
        return !word_with_number(tok);
    }
    if digits > 0 || b.contains(&b'_') {
        return false;
    }
    let changes = b[1..].windows(2).filter(|w| w[0].is_ascii_uppercase() != w[1].is_ascii_uppercase()).count();
    if changes >= 3 {
        return true;
    }
    let vowel = |c: &u8| matches!(c.to_ascii_lowercase(), b'a' | b'e' | b'i' | b'o' | b'u');
    let mut run = 0;
    for c in b {
        run = if vowel(c) { 0 } else { run + 1 };
        if run >= 5 {
            return true;
        }
    }
    false
}

/// A word with a number of one or two digits at one end, the parts joined
/// by `_` or not: `python3`, `utf8`, `x86_64`, `ubuntu22`, `3d_models`.
fn word_with_number(tok: &str) -> bool {
    let parts: Vec<&str> = tok.split('_').filter(|p| !p.is_empty()).collect();
    parts.iter().all(|p| {
        let b = p.as_bytes();
        if b.iter().all(u8::is_ascii_digit) {
            return true;
        }
        let lead = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let trail = b.iter().rev().take_while(|c| c.is_ascii_digit()).count();
        let letters = b.iter().filter(|c| c.is_ascii_alphabetic()).count();
        let core = &b[lead..b.len() - trail];
        // Letters with at most two digits at one end.
        (core.iter().all(u8::is_ascii_alphabetic) && letters > 0 && lead + trail <= 2 && (lead == 0 || trail == 0))
            || (p.len() <= 3 && lead == 0 && trail > 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pids() -> HashSet<u32> {
        HashSet::from([4242])
    }

    /// Names real programs give their temp files, each with the pattern
    /// the next run's name must match.
    #[test]
    fn real_temp_names_become_patterns() {
        let cases = [
            // Claude Code: `<file>.tmp.<pid>.<ms>`.
            (".claude.json.tmp.4242.1732912345678", ".claude.json", ".claude.json.tmp.*"),
            (".claude.json.tmp.999.1732912345678", ".claude.json", ".claude.json.tmp.*"),
            // The git-style name with a base36 suffix.
            (".gitconfig.tmp.dzfyfv8h", ".gitconfig", ".gitconfig.tmp.*"),
            // node write-file-atomic: `<file>.<murmurhex>`.
            ("package.json.3135672431", "package.json", "package.json.*"),
            ("package.json.a1b2c3d4", "package.json", "package.json.*"),
            // npm's own config writes, mkstemp(3) XXXXXX, glib's g_file_set_contents.
            ("settings.ini.ABC1X2", "settings.ini", "settings.ini.*"),
            ("settings.ini.qWeRtY", "settings.ini", "settings.ini.*"),
            ("config.json.dzfyfvqh", "config.json", "config.json.*"),
            // Python tempfile (prefix, 8 of [a-z0-9_], suffix).
            (".cfg.k2j3_x9a.tmp", ".cfg", ".cfg.*.tmp"),
            ("tmpk2j3_x9a", "app.json", "tmp*"),
            // Rust tempfile (`.tmp` + 6 alphanumerics).
            (".tmpAbC123", "app.json", ".tmp*"),
            // vim's swap and backup names carry no randomness.
            (".app.json.swp", "app.json", ".app.json.swp"),
            ("app.json~", "app.json", "app.json~"),
            // A uuid.
            ("state.json.0f8e6c1a-3b2d-4e5f-9a8b-7c6d5e4f3a2b", "state.json", "state.json.*"),
            // Go's os.CreateTemp: random digits.
            ("config.json.123456789", "config.json", "config.json.*"),
        ];
        for (name, target, want) in cases {
            assert_eq!(temp_pattern(name, target, &pids()), want, "{name}");
        }
    }

    #[test]
    fn words_and_versions_stay_literal() {
        for (name, target) in [
            ("config.json.bak", "config.json"),
            ("config.json.backup", "config.json"),
            ("config.json.old", "config.json"),
            ("config.json.settings", "config.json"),
            ("config.json.1", "config.json"),
            ("config.json.1.2.3", "config.json"),
            ("config.json.v18", "config.json"),
            ("config.json.python3", "config.json"),
            ("config.json.x86_64", "config.json"),
            ("config.json.utf8", "config.json"),
            ("config.json.JavaScript", "config.json"),
            ("config.json.lock", "config.json"),
            ("config.json.new", "config.json"),
        ] {
            assert_eq!(temp_pattern(name, target, &pids()), name, "{name}");
        }
    }
}
