//! `nono profile`: list, show, validate and compare profiles. A name is
//! looked up like `nono run --profile` does: a path, then the user's
//! profiles directory (`~/.config/nono/profiles`, where `nono learn`
//! writes; the invoking user's under sudo), then the built-ins.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::common::Format;
use crate::cli::common::describe::{describe_net, describe_sandbox, diff_rows, diff_text, grant_table, names};
use crate::cli::common::text::{csv_line, json_pretty};
use crate::event::display_safe;
use crate::profile::{self, BUILTINS, Resolved, Vars};

#[derive(Debug, clap::Subcommand)]
pub enum ProfileCommand {
    /// List the user's profiles and the built-ins.
    List,
    /// Show a profile resolved: extends folded in, variables expanded.
    Show {
        /// A JSON file, a name in ~/.config/nono/profiles, a built-in, or
        /// `builtin:NAME` (the built-in even when a profile of yours has its name).
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
    /// Exits 0 when they grant the same, 1 when they differ (as diff(1)).
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
    /// Sign a profile with an SSH key (rewritten in canonical form first); writes P.sig.
    Sign(crate::cli::trust::SignArgs),
    /// Check a profile's signature, and those of everything it extends, against the trust policy.
    Verify(crate::cli::trust::VerifyArgs),
    /// Show the trust policy in force and where it came from.
    Trust(crate::cli::trust::TrustArgs),
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
            let mine: Vec<String> = profile::user::list(&vars).into_iter().map(|(n, _)| n).collect();
            for (name, text) in BUILTINS {
                let p = profile::Profile::parse(text, name)?;
                let shadowed = if mine.iter().any(|m| m == name) {
                    format!(", shadowed by yours: reach it as builtin:{name}")
                } else {
                    String::new()
                };
                println!("{name:<16} {} [built-in{shadowed}]", p.meta.description.unwrap_or_default());
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
            show(&r, format)?;
        }
        ProfileCommand::Diff { a, b, format } => {
            let ra = profile::load(&a, &vars)?;
            let rb = profile::load(&b, &vars)?;
            let rows = diff_rows(&ra, &rb);
            let (na, nb) = (describe_net(&ra), describe_net(&rb));
            let (sa, sb) = (describe_sandbox(&ra), describe_sandbox(&rb));
            let differ = !rows.is_empty() || na != nb || sa != sb;
            match format {
                Format::Json => {
                    let doc = serde_json::json!({
                        "differ": differ,
                        "filesystem": rows.iter().map(|((p, f), add, rem)| serde_json::json!({"path": p, "file": f, "granted": add, "removed": rem})).collect::<Vec<_>>(),
                        "network": {"a": na, "b": nb},
                        "sandbox": {"a": sa, "b": sb},
                    });
                    println!("{}", json_pretty(&doc)?);
                }
                Format::Csv => {
                    println!("what,path,file,granted,removed");
                    for ((path, file), add, rem) in &rows {
                        println!("{}", csv_line(&["filesystem".into(), path.clone(), file.to_string(), names(add), names(rem)]));
                    }
                    if na != nb {
                        println!("{}", csv_line(&["network".into(), String::new(), String::new(), nb, na]));
                    }
                    if sa != sb {
                        println!("{}", csv_line(&["sandbox".into(), String::new(), String::new(), sb, sa]));
                    }
                }
                Format::Table => println!("{}", diff_text(&ra, &rb)),
            }
            // As diff(1): 0 when the same, 1 when they differ.
            return Ok(if differ { ExitCode::from(1) } else { ExitCode::SUCCESS });
        }
        ProfileCommand::Amend(args) => return crate::cli::amend::run(&args),
        ProfileCommand::Report(args) => return crate::cli::report::profile(&args, &vars),
        ProfileCommand::Sign(args) => return crate::cli::trust::sign(&args, &vars),
        ProfileCommand::Verify(args) => return crate::cli::trust::verify(&args, &vars),
        ProfileCommand::Trust(args) => return crate::cli::trust::trust(&args, &vars),
    }
    Ok(ExitCode::SUCCESS)
}

/// The reason a grant was made: the rule's own (`workdir`, `system-tree`,
/// ...), else the profile it was inherited from.
fn grant_reason(r: &Resolved, g: &profile::Grant) -> String {
    let top = r.chain.last().map_or("", String::as_str);
    r.profile
        .filesystem
        .rules
        .iter()
        .find(|x| x.path == g.spelled && x.file == g.file)
        .and_then(|x| x.reason.clone())
        .unwrap_or_else(|| if g.origin == top { String::new() } else { format!("from {}", g.origin) })
}

/// A brokered rule's reason, else where it comes from.
fn brokered_reason(r: &Resolved, spelled: &str, origin: &str) -> String {
    r.profile
        .filesystem
        .brokered
        .iter()
        .find(|x| x.dir == spelled)
        .and_then(|x| x.reason.clone())
        .unwrap_or_else(|| format!("from {origin}"))
}

/// `nono profile show`: every grant (merged per path, with its reasons),
/// every brokered rule, the metadata policy, the network and the sandbox.
fn show(r: &Resolved, format: Format) -> anyhow::Result<()> {
    use std::collections::BTreeMap;
    let mut reasons: BTreeMap<(String, bool), Vec<String>> = BTreeMap::new();
    for g in &r.grants {
        let why = grant_reason(r, g);
        let slot = reasons.entry((g.path.display().to_string(), g.file)).or_default();
        if !why.is_empty() && !slot.contains(&why) {
            slot.push(why);
        }
    }
    let table = grant_table(r);
    let reason = |k: &(String, bool)| reasons.get(k).map(|v| v.join("; ")).unwrap_or_default();
    let ops = |set: &std::collections::BTreeSet<profile::BrokerOp>| {
        set.iter()
            .map(|o| serde_json::to_value(o).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default())
            .collect::<Vec<_>>()
    };
    let metadata = serde_json::to_value(r.metadata)?.as_str().unwrap_or_default().to_owned();
    match format {
        Format::Json => {
            let rows: Vec<_> = table
                .iter()
                .map(|(k, rights)| serde_json::json!({"path": k.0, "file": k.1, "access": rights, "reason": reason(k)}))
                .collect();
            let brokered: Vec<_> = r
                .brokered
                .iter()
                .map(|b| serde_json::json!({"dir": b.dir.display().to_string(), "names": b.names, "ops": ops(&b.ops), "reason": brokered_reason(r, &b.spelled, &b.origin)}))
                .collect();
            let doc = serde_json::json!({
                "chain": r.chain,
                "filesystem": rows,
                "brokered": brokered,
                "metadata": metadata,
                "network": r.network,
                "unix_connect": r.unix_connect,
                "sandbox": r.sandbox,
            });
            println!("{}", json_pretty(&doc)?);
        }
        Format::Csv => {
            println!("kind,path,file,access,reason");
            for (k, rights) in &table {
                println!("{}", csv_line(&["grant".into(), k.0.clone(), k.1.to_string(), names(rights), reason(k)]));
            }
            for b in &r.brokered {
                println!(
                    "{}",
                    csv_line(&[
                        "brokered".into(),
                        b.dir.join(b.names.join("|")).display().to_string(),
                        "false".into(),
                        ops(&b.ops).join(","),
                        brokered_reason(r, &b.spelled, &b.origin),
                    ])
                );
            }
            println!("{}", csv_line(&["metadata".into(), String::new(), String::new(), metadata, String::new()]));
            println!("{}", csv_line(&["network".into(), String::new(), String::new(), describe_net(r), String::new()]));
            println!("{}", csv_line(&["sandbox".into(), String::new(), String::new(), describe_sandbox(r), String::new()]));
        }
        Format::Table => {
            println!("profile {} (chain: {})", display_safe(&r.profile.display_name()), display_safe(&r.chain.join(" -> ")));
            for (k, rights) in &table {
                let why = reason(k);
                let why = if why.is_empty() { String::new() } else { format!("  ({why})") };
                println!("  {}{}  {}{}", if k.1 { "file " } else { "" }, display_safe(&k.0), names(rights), display_safe(&why));
            }
            for b in &r.brokered {
                println!(
                    "  brokered {}/{{{}}}  {}  ({})",
                    display_safe(&b.dir.display().to_string()),
                    display_safe(&b.names.join(",")),
                    ops(&b.ops).join(","),
                    display_safe(&brokered_reason(r, &b.spelled, &b.origin))
                );
            }
            println!("  metadata: {metadata}");
            println!("  network: {}", display_safe(&describe_net(r)));
            println!("  sandbox: {}", display_safe(&describe_sandbox(r)));
        }
    }
    Ok(())
}
