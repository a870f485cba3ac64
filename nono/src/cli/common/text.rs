//! Small text helpers every output format shares: CSV quoting, JSON
//! writing, and a session's exit as shown in tables.
//!
//! Every string nono prints may come from the audited agent (file names,
//! process names, command lines) and is hostile: no output format may let
//! it reach the reader's terminal as control characters. Tables show them
//! through `display_safe`; CSV fields go through it too (an ESC becomes the
//! text `\u{1b}`); JSON writes them as `\uXXXX` escapes, which decode back
//! to the same string, including DEL, the C1 controls and the bidi
//! overrides that `serde_json` would otherwise write raw.

use std::io::Write;

use serde::Serialize;

use crate::event::display_safe;
use crate::store::Session;

/// A session's exit: its code, `signal N`, or `-` while unknown.
pub fn exit_text(s: &Session) -> String {
    match (s.exit_code, s.signal) {
        (Some(c), _) => c.to_string(),
        (None, Some(sig)) => format!("signal {sig}"),
        (None, None) => "-".to_owned(),
    }
}

/// A CSV field (RFC 4180), control characters shown escaped.
pub fn csv_field(s: &str) -> String {
    let s = display_safe(s);
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.into_owned() }
}

pub fn csv_line(fields: &[String]) -> String {
    fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(",")
}

/// Characters JSON output escapes beyond what `serde_json` does (it
/// escapes C0, `"` and `\` already).
fn json_unsafe(c: char) -> bool {
    matches!(c, '\u{7f}'..='\u{9f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

/// A `serde_json` formatter that also escapes [`json_unsafe`] characters.
struct Safe<F>(F);

macro_rules! delegate {
    ($($name:ident),*) => {$(
        fn $name<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
            self.0.$name(w)
        }
    )*};
}

impl<F: serde_json::ser::Formatter> serde_json::ser::Formatter for Safe<F> {
    delegate!(begin_array, end_array, end_array_value, begin_object, end_object, begin_object_value, end_object_value);

    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        self.0.begin_array_value(w, first)
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        self.0.begin_object_key(w, first)
    }

    fn write_string_fragment<W: ?Sized + Write>(&mut self, w: &mut W, fragment: &str) -> std::io::Result<()> {
        if !fragment.chars().any(json_unsafe) {
            return w.write_all(fragment.as_bytes());
        }
        let mut buf = [0u16; 2];
        for c in fragment.chars() {
            if json_unsafe(c) {
                for unit in c.encode_utf16(&mut buf) {
                    write!(w, "\\u{unit:04x}")?;
                }
            } else {
                let mut b = [0u8; 4];
                w.write_all(c.encode_utf8(&mut b).as_bytes())?;
            }
        }
        Ok(())
    }
}

fn to_json<T: Serialize + ?Sized, F: serde_json::ser::Formatter>(value: &T, f: F) -> anyhow::Result<String> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, Safe(f));
    value.serialize(&mut ser).map_err(|e| anyhow::anyhow!("encoding JSON: {e}"))?;
    // The formatter writes only what serde_json would, plus ASCII escapes.
    String::from_utf8(out).map_err(|e| anyhow::anyhow!("encoding JSON: {e}"))
}

/// Pretty JSON with every control character escaped.
pub fn json_pretty<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<String> {
    to_json(value, serde_json::ser::PrettyFormatter::new())
}

/// One line of JSON (JSON lines, OCSF) with every control character escaped.
pub fn json_line<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<String> {
    to_json(value, serde_json::ser::CompactFormatter)
}

/// The program a command line really runs: past wrappers (`env`,
/// `timeout`, `nice`, `ionice`, `stdbuf`, `nohup`, `setsid`, `time`,
/// `xargs`, `sudo`, `exec`, `command`) and their options, and into
/// `sh -c SCRIPT` (the script's first command), as a file name. What a
/// profile is named after, and what `--command` matches.
#[must_use]
pub fn program_name<S: AsRef<str>>(argv: &[S]) -> Option<String> {
    let words: Vec<String> = argv.iter().map(|s| s.as_ref().to_owned()).collect();
    program_in(&words, 0)
}

/// Whether a stored command line is `needle`'s: its program (see
/// [`program_name`]) is `needle` (or `needle`'s file name), or, for a
/// needle with a space or a slash, the command line contains it.
#[must_use]
pub fn command_matches<S: AsRef<str>>(argv: &[S], needle: &str) -> bool {
    if program_name(argv).is_some_and(|p| p == needle || p == base(needle)) {
        return true;
    }
    needle.contains([' ', '/']) && argv.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(" ").contains(needle)
}

/// Builtins a script runs before its real program (`cd src && make`).
const SHELL_BUILTINS: &[&str] = &[
    "cd", "export", "set", "unset", "source", ".", ":", "true", "umask", "ulimit", "trap", "shift", "alias", "readonly", "local",
];

fn base(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

fn program_in(words: &[String], depth: usize) -> Option<String> {
    let mut i = 0;
    while let Some(w) = words.get(i) {
        let name = base(w);
        // Options of each wrapper that take a separate value.
        let valued: &[&str] = match name {
            "env" => &["-u", "--unset", "-C", "--chdir", "-S", "--split-string"],
            "timeout" => &["-s", "--signal", "-k", "--kill-after"],
            "nice" => &["-n", "--adjustment"],
            "ionice" => &["-c", "--class", "-n", "--classdata", "-p", "-P", "-u"],
            "stdbuf" => &["-i", "-o", "-e", "--input", "--output", "--error"],
            "xargs" => {
                &["-a", "-d", "-E", "-I", "-L", "-n", "-P", "-s", "--arg-file", "--delimiter", "--max-args", "--max-procs"]
            }
            "sudo" => &["-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U"],
            "nohup" | "setsid" | "time" | "exec" | "command" => &[],
            "sh" | "bash" | "dash" | "zsh" | "ksh" | "ash" | "busybox" if depth < 4 => {
                // `sh -c SCRIPT`: the script's first command that is not
                // a shell builtin; `sh FILE`: the script file.
                let mut j = i + 1;
                while let Some(opt) = words.get(j).filter(|o| o.starts_with('-')) {
                    if opt.trim_start_matches('-').contains('c') && !opt.starts_with("--") {
                        for cmd in words.get(j + 1)?.split(|c: char| ";&|\n".contains(c)) {
                            let toks: Vec<String> = cmd
                                .split(|c: char| c.is_whitespace() || "()<>`{}".contains(c))
                                .map(|t| t.trim_matches(|c| c == '\'' || c == '"'))
                                .filter(|t| !t.is_empty())
                                .map(str::to_owned)
                                .collect();
                            if toks.iter().find(|t| !t.contains('=')).is_some_and(|t| SHELL_BUILTINS.contains(&t.as_str())) {
                                continue;
                            }
                            if let Some(p) = program_in(&toks, depth + 1) {
                                return Some(p);
                            }
                        }
                        return Some(name.to_owned());
                    }
                    j += 1;
                }
                return Some(words.get(j).map_or(name, |script| base(script)).to_owned());
            }
            _ if name.contains('=') && i > 0 => {
                i += 1;
                continue;
            }
            _ if name.contains('=') && !w.contains('/') => {
                // `VAR=value cmd` at the start of a script.
                i += 1;
                continue;
            }
            _ => return Some(name.to_owned()).filter(|n| !n.is_empty()),
        };
        i += 1;
        let mut duration_pending = name == "timeout";
        while let Some(opt) = words.get(i) {
            if opt == "--" {
                i += 1;
                break;
            }
            if opt.starts_with('-') && opt.len() > 1 {
                let takes = valued.iter().any(|v| v == opt);
                i += if takes { 2 } else { 1 };
                continue;
            }
            if name == "env" && opt.contains('=') {
                i += 1;
                continue;
            }
            if duration_pending {
                duration_pending = false;
                i += 1;
                continue;
            }
            break;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_only_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn no_format_lets_a_control_character_through() {
        let hostile = "a\u{1b}]52;c;x\u{7}b\u{9b}c\u{202e}d\ne";
        let csv = csv_field(hostile);
        let json = json_pretty(&serde_json::json!({"name": hostile})).expect("json");
        let line = json_line(&serde_json::json!([hostile])).expect("json");
        for out in [&csv, &json, &line] {
            assert!(!out.chars().any(|c| c.is_control() && c != '\n' && c != ' '), "{out:?}");
            assert!(!out.contains('\u{202e}'), "{out:?}");
        }
        assert!(!csv.contains('\n'), "{csv:?}");
        // JSON keeps the data: it decodes back to the same string.
        let back: serde_json::Value = serde_json::from_str(&json).expect("parse");
        assert_eq!(back["name"], hostile);
        let back: serde_json::Value = serde_json::from_str(&line).expect("parse");
        assert_eq!(back[0], hostile);
    }

    #[test]
    fn a_profile_is_named_after_the_program_past_its_wrappers() {
        let name = |argv: &[&str]| program_name(argv).unwrap_or_default();
        assert_eq!(name(&["/usr/bin/claude", "-p", "hi"]), "claude");
        assert_eq!(name(&["timeout", "-s", "KILL", "30", "claude"]), "claude");
        assert_eq!(name(&["timeout", "30s", "./agent.sh"]), "agent.sh");
        assert_eq!(name(&["env", "-i", "A=b", "PATH=/usr/bin", "codex", "exec"]), "codex");
        assert_eq!(name(&["nice", "-n", "5", "stdbuf", "-oL", "make"]), "make");
        assert_eq!(name(&["sh", "-c", "FOO=1 exec node server.js"]), "node");
        assert_eq!(name(&["bash", "-lc", "cd src && cargo build"]), "cargo");
        assert_eq!(name(&["sh", "./run.sh"]), "run.sh");
        assert_eq!(name(&["sh", "-c", "true"]), "sh");
        assert_eq!(name(&["xargs", "-n", "1", "grep"]), "grep");
        assert_eq!(name(&["nohup", "setsid", "-w", "aider"]), "aider");
        assert_eq!(name(&["env"]), "");
    }
}
