//! `nono profile`: list, show, validate and compare profiles. A name is
//! looked up like `nono run --profile` does: a path, then the user's
//! profiles directory (`~/.config/nono/profiles`, where `nono learn`
//! writes; the invoking user's under sudo), then the built-ins.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::common::Format;
use crate::profile::rights::FsRight;
use crate::profile::{self, BUILTINS, Resolved, Vars};

#[derive(Debug, clap::Subcommand)]
pub enum ProfileCommand {
    /// List the user's profiles and the built-ins.
    List,
    /// Show a profile resolved: extends folded in, variables expanded.
    Show {
        /// A JSON file, a name in ~/.config/nono/profiles, or a built-in.
        profile: String,
        #[arg(long, default_value = "table")]
        format: Format,
    },
    /// Check a profile: parse, resolve extends, expand variables.
    Validate {
        /// Built-in names or JSON files.
        #[arg(required = true)]
        profiles: Vec<String>,
    },
    /// What B grants that A does not, and what it takes away (for review).
    Diff {
        a: String,
        b: String,
        #[arg(long, default_value = "table")]
        format: Format,
    },
    /// Add to a profile the smallest rights that would have allowed what a
    /// sandboxed run (`nono run --audit`) was denied.
    Amend(crate::cli::amend::AmendArgs),
    /// Write a self-contained HTML page of a profile's rules, with their
    /// reasons; `--against SESSION` marks the rules that session never used.
    Report(crate::cli::report::ProfileReportArgs),
}

pub fn run(cmd: ProfileCommand) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let vars = match crate::record::spawn::Identity::from_sudo()? {
        Some(id) => Vars::for_home(cwd, &id.home),
        None => Vars::from_env(cwd),
    };
    match cmd {
        ProfileCommand::List => {
            for (name, path) in profile::user::list(&vars) {
                let what = match profile::read_file(&path) {
                    Ok(p) => p.meta.description.unwrap_or_default(),
                    Err(e) => format!("(unreadable: {e})"),
                };
                println!("{name:<16} {what} [{}]", path.display());
            }
            for (name, text) in BUILTINS {
                let p = profile::Profile::parse(text, name)?;
                println!("{name:<16} {} [built-in]", p.meta.description.unwrap_or_default());
            }
        }
        ProfileCommand::Validate { profiles } => {
            let mut bad = 0;
            for spec in &profiles {
                match profile::load(spec, &vars) {
                    Ok(r) => println!("{spec}: ok ({} grants, chain: {})", r.grants.len(), r.chain.join(" -> ")),
                    Err(e) => {
                        bad += 1;
                        eprintln!("{spec}: {e}");
                    }
                }
            }
            return Ok(if bad == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) });
        }
        ProfileCommand::Show { profile: spec, format } => {
            let r = profile::load(&spec, &vars)?;
            let table = grant_table(&r);
            if format == Format::Json {
                let rows: Vec<_> = table
                    .iter()
                    .map(|((path, file), rights)| serde_json::json!({"path": path, "file": file, "access": rights}))
                    .collect();
                let doc = serde_json::json!({"chain": r.chain, "filesystem": rows, "network": r.network});
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                println!("profile {} (chain: {})", r.profile.display_name(), r.chain.join(" -> "));
                for ((path, file), rights) in &table {
                    println!("  {}{path}  {}", if *file { "file " } else { "" }, names(rights));
                }
                println!("  network: {}", describe_net(&r));
            }
        }
        ProfileCommand::Diff { a, b, format } => {
            let ra = profile::load(&a, &vars)?;
            let rb = profile::load(&b, &vars)?;
            if format == Format::Json {
                let rows = diff_rows(&ra, &rb);
                let doc = serde_json::json!({
                    "filesystem": rows.iter().map(|((p, f), add, rem)| serde_json::json!({"path": p, "file": f, "granted": add, "removed": rem})).collect::<Vec<_>>(),
                    "network": {"a": describe_net(&ra), "b": describe_net(&rb)},
                    "sandbox": {"a": describe_sandbox(&ra), "b": describe_sandbox(&rb)},
                });
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                println!("{}", diff_text(&ra, &rb));
            }
        }
        ProfileCommand::Amend(args) => return crate::cli::amend::run(&args),
        ProfileCommand::Report(args) => return crate::cli::report::profile(&args, &vars),
    }
    Ok(ExitCode::SUCCESS)
}

type DiffRow = ((String, bool), BTreeSet<FsRight>, BTreeSet<FsRight>);

/// Per path: what B grants that A does not, and what A grants that B does not.
fn diff_rows(ra: &Resolved, rb: &Resolved) -> Vec<DiffRow> {
    let (ta, tb) = (grant_table(ra), grant_table(rb));
    let keys: BTreeSet<_> = ta.keys().chain(tb.keys()).cloned().collect();
    let mut rows = Vec::new();
    for k in keys {
        let empty = BTreeSet::new();
        let (x, y) = (ta.get(&k).unwrap_or(&empty), tb.get(&k).unwrap_or(&empty));
        let added: BTreeSet<FsRight> = y.difference(x).copied().collect();
        let removed: BTreeSet<FsRight> = x.difference(y).copied().collect();
        if !added.is_empty() || !removed.is_empty() {
            rows.push((k, added, removed));
        }
    }
    rows
}

/// `nono profile diff`'s text: `+ path: rights`, `- path: rights`,
/// `~ network: a -> b`, `~ sandbox: a -> b`.
pub(crate) fn diff_text(ra: &Resolved, rb: &Resolved) -> String {
    use std::fmt::Write as _;
    let rows = diff_rows(ra, rb);
    let mut out = String::new();
    for ((path, file), add, rem) in &rows {
        let kind = if *file { " (file)" } else { "" };
        let path = crate::event::display_safe(path);
        if !add.is_empty() {
            let _ = writeln!(out, "+ {path}{kind}: {}", names(add));
        }
        if !rem.is_empty() {
            let _ = writeln!(out, "- {path}{kind}: {}", names(rem));
        }
    }
    let (na, nb) = (describe_net(ra), describe_net(rb));
    if na != nb {
        let _ = writeln!(out, "~ network: {na}  ->  {nb}");
    }
    let (sa, sb) = (describe_sandbox(ra), describe_sandbox(rb));
    if sa != sb {
        let _ = writeln!(out, "~ sandbox: {sa}  ->  {sb}");
    }
    if out.is_empty() {
        out.push_str("no difference");
    }
    out.trim_end().to_owned()
}

/// `(path, file) -> rights`, over the whole chain.
fn grant_table(r: &Resolved) -> BTreeMap<(String, bool), BTreeSet<FsRight>> {
    let mut t: BTreeMap<(String, bool), BTreeSet<FsRight>> = BTreeMap::new();
    for g in &r.grants {
        t.entry((g.path.display().to_string(), g.file)).or_default().extend(g.rights.iter().copied());
    }
    t
}

fn names(rights: &BTreeSet<FsRight>) -> String {
    rights.iter().map(|r| r.name()).collect::<Vec<_>>().join(",")
}

pub(super) fn describe_net(r: &Resolved) -> String {
    if r.network.block {
        return "blocked".to_owned();
    }
    let ports = |p: &Option<BTreeSet<u16>>| match p {
        None => "any".to_owned(),
        Some(s) if s.is_empty() => "none".to_owned(),
        Some(s) => s.iter().map(u16::to_string).collect::<Vec<_>>().join(","),
    };
    let n = &r.network;
    let udp = match &n.udp {
        None => "none".to_owned(),
        Some(u) => {
            let mut v: Vec<String> = u.to.iter().map(ToString::to_string).collect();
            if u.dns {
                v.insert(0, "dns".to_owned());
            }
            if v.is_empty() { "sockets only".to_owned() } else { v.join(",") }
        }
    };
    let unix = r.unix_connect.as_ref().map_or(0, Vec::len);
    let mut s =
        format!("tcp connect {}, tcp bind {}, udp {udp}, unix sockets {unix}", ports(&n.open_port), ports(&n.listen_port));
    if let Some(i) = &n.icmp {
        s.push_str(&format!(", icmp {}", i.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")));
    }
    if !n.families.is_empty() {
        s.push_str(&format!(", families {}", n.families.join(",")));
    }
    s
}

fn describe_sandbox(r: &Resolved) -> String {
    let sb = &r.sandbox;
    let mut parts = Vec::new();
    if sb.signal_outside {
        parts.push("signal_outside".to_owned());
    }
    if sb.abstract_unix_outside {
        parts.push("abstract_unix_outside".to_owned());
    }
    parts.extend(sb.allow.iter().map(|f| f.name().to_owned()));
    parts.extend(r.brokered.iter().map(|b| format!("brokered {}/{}", b.spelled, b.names.join("|"))));
    if parts.is_empty() { "defaults".to_owned() } else { parts.join(", ") }
}
