//! `nono audit`: list sessions, show one (`sessions`), query events,
//! summarise a session, replay one against a profile (`check`).
//!
//! Arguments are validated by clap without touching the system; the
//! resolve step (database path, times relative to now) happens in [`run`].
//! Every subcommand takes `--db` and `--format table|json|csv`. JSON output
//! is one document with stable field names. Recorded names are hostile:
//! every format escapes their control characters (`common::text`).

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::bail;
use serde::Serialize;
use serde_json::json;

mod check;
mod domains;
mod sessions;

use sessions::{print_sessions, print_show, session_json, state_text};

use crate::cli::common::source::SourceArgs as Common;
use crate::cli::common::text::{command_matches, csv_line};
use crate::event::{DenyBy, Event, Op, display_safe};
use crate::store::{EventRow, Query, ResultClass, Session, Summary, errno_name};

pub use crate::cli::common::Format;

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// List recorded sessions (oldest first).
    Sessions(SessionsArgs),
    /// Show one session's metadata and loss counters.
    Show {
        /// Session id, or `last`.
        session: String,
        #[command(flatten)]
        common: Common,
    },
    /// Find events.
    Query(QueryArgs),
    /// Summarise a session: operations, top paths, processes, errors.
    Summary {
        /// Session id, or `last`.
        session: String,
        /// How many top paths and errors to list.
        #[arg(long, default_value_t = 20)]
        top: usize,
        #[command(flatten)]
        common: Common,
    },
    /// Replay a session against a profile: every recorded access the
    /// profile would deny, with the rule that would be needed.
    Check {
        /// Profile: a built-in name or a JSON file.
        #[arg(long)]
        profile: String,
        /// Session id, or `last`.
        #[arg(long)]
        session: String,
        #[command(flatten)]
        common: Common,
    },
    /// Write a self-contained HTML report of a session: the access tree,
    /// the process tree and a timeline.
    Report(super::report::AuditReportArgs),
    /// Copy finished sessions to a fleet database (postgres://...).
    Push(super::push::PushArgs),
    /// Write a session's events (or every session's) for a SIEM.
    Export(super::export::ExportArgs),
    /// Sign a session's hash-chain root with an SSH key.
    Seal(super::seal::SealArgs),
    /// Recompute sessions' hash chains: name the first edited, deleted, inserted or moved event.
    Verify(super::seal::VerifyArgs),
}

/// `nono audit sessions` filters; all given filters must hold.
#[derive(Debug, clap::Args)]
pub struct SessionsArgs {
    /// Only sessions of this program (the real one, past wrappers such as
    /// `sh -c`, `env` or `timeout`); a text with a space or a slash
    /// matches anywhere in the command line.
    #[arg(long, value_name = "NAME")]
    pub command: Option<String>,
    /// Only sessions started at or after T: RFC 3339 or a duration ago (30s, 10m, 2h, 3d, 1w).
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Only the newest N (still listed oldest first).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub common: Common,
}

/// `nono audit query` filters; all given filters must hold.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// Only this session (an id, or `last`).
    #[arg(long)]
    pub session: Option<String>,
    /// Path glob: `*` and `?` within a component, `**` across, `[...]` classes.
    #[arg(long, value_name = "GLOB")]
    pub path: Option<String>,
    /// Operation (open, exec, unlink, rmdir, mkdir, rename, link, symlink,
    /// truncate, mknod, connect, bind, fork, exit, ioctl, create).
    #[arg(long)]
    pub op: Option<Op>,
    /// Process id.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Process name (comm), exactly.
    #[arg(long)]
    pub comm: Option<String>,
    /// ok, denied or error.
    #[arg(long)]
    pub result: Option<ResultClass>,
    /// Only denials attributed this way: landlock-audit, computed, seccomp,
    /// broker, or unattributed (stored before attribution existed).
    #[arg(long, value_name = "METHOD", value_parser = parse_method)]
    pub denied_by: Option<DenyBy>,
    /// Events at or after T: RFC 3339 (2026-11-23T08:00:00Z) or a duration ago (30s, 10m, 2h, 3d, 1w).
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// Events before T (same forms as --since).
    #[arg(long, value_name = "T")]
    pub until: Option<String>,
    /// At most N events.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// The network proxy's decisions for these domains instead of events:
    /// a name, `*.example.com` (its subdomains) or `*` (all).
    #[arg(long, value_name = "GLOB")]
    pub domain: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

pub fn run(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Sessions(args) => {
            let since = args.since.as_deref().map(|t| parse_time(t, jiff::Timestamp::now())).transpose()?;
            let mut store = crate::cli::common::source::open(&args.common)?;
            let mut listed = store.listed()?;
            listed.retain(|l| {
                since.is_none_or(|t| l.session.started_ns >= t)
                    && args.command.as_deref().is_none_or(|c| command_matches(&l.session.info.command, c))
            });
            if let Some(n) = args.limit {
                listed.drain(..listed.len().saturating_sub(n));
            }
            print_sessions(&listed, args.common.format)?;
        }
        AuditCommand::Show { session, common } => {
            let mut store = crate::cli::common::source::open(&common)?;
            let s = store.session(&session)?;
            let enforced = store.enforced_profile(s.id)?;
            let host = store.host_of(s.id)?;
            print_show(&s, &host, enforced.as_ref(), common.format)?;
            // The rollback snapshot of a `run --audit --rollback` session (issue 24).
            if common.format == Format::Table
                && crate::cli::common::source::fleet_url(common.db.as_deref()).is_none()
                && let Ok(db) = crate::cli::common::db_path(common.db.as_deref(), crate::invoker::Identity::from_sudo()?.as_ref())
                && let Some(id) = crate::cli::common::rollback::snapshot_of_session(&db, s.id)
            {
                println!("{:<17} {id} (nono rollback diff {id}; undo: nono rollback restore {id})", "snapshot:");
            }
        }
        AuditCommand::Query(args) => {
            if let Some(d) = &args.domain {
                return domains::query(&args, d);
            }
            let mut store = crate::cli::common::source::open(&args.common)?;
            let now = jiff::Timestamp::now();
            let session = match &args.session {
                Some(s) => Some(store.session(s)?.id),
                None => None,
            };
            let q = Query {
                session,
                path_glob: args.path.clone(),
                op: args.op,
                pid: args.pid,
                comm: args.comm.clone(),
                result: args.result,
                denied_by: args.denied_by,
                since_ns: args.since.as_deref().map(|t| parse_time(t, now)).transpose()?,
                until_ns: args.until.as_deref().map(|t| parse_time(t, now)).transpose()?,
                limit: args.limit,
            };
            print_events(&store.query(&q)?, args.common.format)?;
        }
        AuditCommand::Summary { session, top, common } => {
            let mut store = crate::cli::common::source::open(&common)?;
            let session = store.session(&session)?;
            let summary = store.summary(session.id, top)?;
            print_summary(&session, &summary, common.format)?;
        }
        AuditCommand::Check { profile, session, common } => {
            let mut store = crate::cli::common::source::open(&common)?;
            let session = store.session(&session)?;
            return check::run(&mut store, &session, &profile, common.format);
        }
        AuditCommand::Report(args) => return super::report::audit(&args),
        AuditCommand::Push(args) => return super::push::run(&args),
        AuditCommand::Export(args) => return super::export::run(&args),
        AuditCommand::Seal(args) => return super::seal::seal(&args),
        AuditCommand::Verify(args) => return super::seal::verify(&args),
    }
    Ok(ExitCode::SUCCESS)
}

/// A denial attribution method by its name.
fn parse_method(s: &str) -> Result<DenyBy, String> {
    DenyBy::ALL
        .into_iter()
        .find(|d| d.name() == s)
        .ok_or_else(|| format!("unknown attribution method {s:?}; expected one of: {}", DenyBy::ALL.map(DenyBy::name).join(", ")))
}

/// RFC 3339, or a duration before `now`: `<N><unit>` with unit s, m, h, d
/// or w (an optional trailing " ago" is accepted).
fn parse_time(s: &str, now: jiff::Timestamp) -> anyhow::Result<i64> {
    let bad =
        || format!("bad time {s:?}: expected RFC 3339 (like 2026-11-23T08:00:00Z) or a duration ago (like 30s, 10m, 2h, 3d, 1w)");
    let t = s.trim();
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Ok(ts.as_nanosecond() as i64);
    }
    let rel = t.strip_suffix("ago").map_or(t, str::trim_end);
    let split = rel.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| anyhow::anyhow!(bad()))?;
    let (num, unit) = rel.split_at(split);
    let n: i64 = num.parse().map_err(|_| anyhow::anyhow!(bad()))?;
    let secs = match unit {
        "s" | "sec" | "secs" => 1,
        "m" | "min" | "mins" => 60,
        "h" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        "w" | "week" | "weeks" => 604_800,
        _ => bail!(bad()),
    };
    let back = n.checked_mul(secs).and_then(|s| s.checked_mul(1_000_000_000)).ok_or_else(|| anyhow::anyhow!(bad()))?;
    Ok((now.as_nanosecond() as i64).saturating_sub(back))
}

/// Local wall-clock time, to the second.
fn local_time(ns: i64) -> String {
    match jiff::Timestamp::from_nanosecond(i128::from(ns)) {
        Ok(ts) => ts.to_zoned(jiff::tz::TimeZone::system()).strftime("%Y-%m-%d %H:%M:%S").to_string(),
        Err(_) => ns.to_string(),
    }
}

/// RFC 3339 in UTC with nanoseconds (JSON and CSV).
fn rfc3339(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns)).map_or_else(|_| ns.to_string(), |t| t.to_string())
}

#[expect(clippy::cast_precision_loss, reason = "a duration for people to read")]
fn human_duration(ns: i64) -> String {
    let ms = ns / 1_000_000;
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    }
}

/// Prints rows as aligned columns; the last column is not padded. Every
/// cell is shown through [`display_safe`]: a recorded name cannot fake rows
/// or reorder the line with control characters or bidi overrides.
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(|f| display_safe(f).into_owned()).collect()).collect();
    let rows = &rows;
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, f) in widths.iter_mut().zip(r) {
            *w = (*w).max(f.chars().count());
        }
    }
    let line = |fields: Vec<&str>| {
        let mut out = String::new();
        let last = fields.len().saturating_sub(1);
        for (i, f) in fields.iter().enumerate() {
            if i == last {
                out.push_str(f);
            } else {
                let _ = write!(out, "{f:<w$}  ", w = widths[i]);
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    println!("{}", crate::cli::common::text::json_pretty(value)?);
    Ok(())
}

fn event_json(r: &EventRow) -> serde_json::Value {
    let e = &r.event;
    json!({
        "id": r.id,
        "session": r.session,
        "time": rfc3339(e.time_ns),
        "time_ns": e.time_ns,
        "pid": e.pid,
        "tid": e.tid,
        "ppid": e.ppid,
        "uid": e.uid,
        "comm": e.comm,
        "exe": e.exe,
        "op": e.op.name(),
        "path": e.path,
        "path2": e.path2,
        "access": e.access.label(),
        "arg": e.arg,
        "file_type": e.file_type,
        "result": e.outcome.class(),
        "denied_by": e.outcome.denied_by().map(DenyBy::name),
        "errno": e.outcome.errno(),
        "errno_name": errno_text(e),
        "net": e.net.as_ref().map(|n| json!({"family": n.family, "addr": n.addr.map(|a| a.to_string()), "port": n.port})),
        "sock_type": e.net.as_ref().map(|n| n.sock_type),
        "sock_proto": e.net.as_ref().map(|n| n.protocol),
        "incomplete": e.incomplete,
    })
}

fn errno_text(e: &Event) -> Option<String> {
    match e.outcome.errno() {
        0 => None,
        n => Some(errno_name(n)),
    }
}

fn target_text(e: &Event) -> String {
    let mut t = e.path.clone().unwrap_or_default();
    if let Some(p2) = &e.path2 {
        let _ = write!(t, " -> {p2}");
    }
    if let Some(n) = &e.net {
        let endpoint = match n.addr {
            Some(std::net::IpAddr::V6(a)) => format!("[{a}]:{}", n.port),
            Some(a) => format!("{a}:{}", n.port),
            None => format!("family {}", n.family),
        };
        if t.is_empty() {
            t = endpoint;
        } else if n.addr.is_some() {
            let _ = write!(t, " ({endpoint})");
        }
    }
    if e.incomplete {
        t.push_str(" [incomplete]");
    }
    t
}

fn print_events(rows: &[EventRow], format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => print_json(&rows.iter().map(event_json).collect::<Vec<_>>()),
        Format::Csv => {
            println!(
                "id,session,time,pid,tid,ppid,uid,comm,exe,op,path,path2,access,arg,file_type,result,errno,errno_name,net_family,net_addr,net_port,incomplete,denied_by"
            );
            for r in rows {
                let e = &r.event;
                println!(
                    "{}",
                    csv_line(&[
                        r.id.to_string(),
                        r.session.to_string(),
                        rfc3339(e.time_ns),
                        e.pid.to_string(),
                        e.tid.to_string(),
                        e.ppid.to_string(),
                        e.uid.to_string(),
                        e.comm.clone(),
                        e.exe.clone().unwrap_or_default(),
                        e.op.name().to_owned(),
                        e.path.clone().unwrap_or_default(),
                        e.path2.clone().unwrap_or_default(),
                        e.access.label(),
                        e.arg.to_string(),
                        e.file_type.to_string(),
                        e.outcome.class().to_owned(),
                        e.outcome.errno().to_string(),
                        errno_text(e).unwrap_or_default(),
                        e.net.as_ref().map(|n| n.family.to_string()).unwrap_or_default(),
                        e.net.as_ref().and_then(|n| n.addr).map(|a| a.to_string()).unwrap_or_default(),
                        e.net.as_ref().map(|n| n.port.to_string()).unwrap_or_default(),
                        e.incomplete.to_string(),
                        e.outcome.denied_by().map(|d| d.name().to_owned()).unwrap_or_default(),
                    ])
                );
            }
            Ok(())
        }
        Format::Table => {
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    let e = &r.event;
                    let mut result = match errno_text(e) {
                        Some(name) => format!("{} {name}", e.outcome.class()),
                        None => e.outcome.class().to_owned(),
                    };
                    if let Some(by) = e.outcome.denied_by() {
                        let _ = write!(result, " ({by})");
                    }
                    vec![
                        r.session.to_string(),
                        local_time(e.time_ns),
                        e.pid.to_string(),
                        e.comm.clone(),
                        e.op.name().to_owned(),
                        e.access.label(),
                        result,
                        target_text(e),
                    ]
                })
                .collect();
            print_table(&["SESSION", "TIME", "PID", "COMM", "OP", "ACCESS", "RESULT", "PATH"], &table);
            eprintln!("nono: {} event(s)", rows.len());
            Ok(())
        }
    }
}

fn print_summary(session: &Session, s: &Summary, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => print_json(&json!({
            "session": session_json(session),
            "events": s.events,
            "ok": s.ok,
            "denied": s.denied,
            "denied_by": s.denied_by,
            "errors": s.errors,
            "ops": s.ops,
            "top_paths": s.top_paths,
            "processes": s.processes,
            "top_errors": s.top_errors,
        })),
        Format::Csv => {
            println!("section,name,detail,count");
            for (name, n) in [("ok", s.ok), ("denied", s.denied), ("error", s.errors)] {
                println!("{}", csv_line(&["result".into(), name.into(), String::new(), n.to_string()]));
            }
            for m in &s.denied_by {
                println!("{}", csv_line(&["denied_by".into(), m.method.name().into(), String::new(), m.count.to_string()]));
            }
            for o in &s.ops {
                println!("{}", csv_line(&["op".into(), o.op.name().into(), String::new(), o.count.to_string()]));
            }
            for p in &s.top_paths {
                println!("{}", csv_line(&["path".into(), p.path.clone(), String::new(), p.count.to_string()]));
            }
            for p in &s.processes {
                println!(
                    "{}",
                    csv_line(&[
                        "process".into(),
                        p.pid.to_string(),
                        format!("{} {}", p.comm, p.exe.as_deref().unwrap_or("")).trim_end().to_owned(),
                        p.events.to_string()
                    ])
                );
            }
            for e in &s.top_errors {
                let method = e.denied_by.map(|d| format!(" {d}")).unwrap_or_default();
                println!(
                    "{}",
                    csv_line(&[
                        "error".into(),
                        e.path.clone().unwrap_or_default(),
                        format!("{} {} {}{method}", e.op.name(), e.result_text(), e.errno_name),
                        e.count.to_string(),
                    ])
                );
            }
            Ok(())
        }
        Format::Table => {
            println!(
                "session {}: {} events ({} ok, {} denied, {} errors), state {}{}",
                session.id,
                s.events,
                s.ok,
                s.denied,
                s.errors,
                state_text(session),
                if session.lost() > 0 { format!(", INCOMPLETE: {} events lost", session.lost()) } else { String::new() }
            );
            println!("\nOPERATIONS");
            print_table(
                &["OP", "COUNT"],
                &s.ops.iter().map(|o| vec![o.op.name().to_owned(), o.count.to_string()]).collect::<Vec<_>>(),
            );
            println!("\nTOP PATHS");
            print_table(
                &["COUNT", "PATH"],
                &s.top_paths.iter().map(|p| vec![p.count.to_string(), p.path.clone()]).collect::<Vec<_>>(),
            );
            println!("\nPROCESSES");
            print_table(
                &["PID", "PPID", "COMM", "EVENTS", "EXE"],
                &s.processes
                    .iter()
                    .map(|p| {
                        vec![
                            p.pid.to_string(),
                            p.ppid.to_string(),
                            p.comm.clone(),
                            p.events.to_string(),
                            p.exe.clone().unwrap_or_default(),
                        ]
                    })
                    .collect::<Vec<_>>(),
            );
            // Denials (the sandbox refused) and errors (anything else) are
            // different problems: a denial may need a rule, an error never does.
            let (denials, errors): (Vec<_>, Vec<_>) = s.top_errors.iter().partition(|e| e.result == ResultClass::Denied);
            println!("\nDENIALS");
            if denials.is_empty() {
                println!("(none)");
            } else {
                let by: Vec<String> = s.denied_by.iter().map(|m| format!("{} {}", m.count, m.method)).collect();
                println!("by method: {}", by.join(", "));
                print_table(
                    &["COUNT", "OP", "ERRNO", "METHOD", "PATH"],
                    &denials
                        .iter()
                        .map(|e| {
                            vec![
                                e.count.to_string(),
                                e.op.name().to_owned(),
                                e.errno_name.clone(),
                                e.denied_by.map(|d| d.name().to_owned()).unwrap_or_default(),
                                e.path.clone().unwrap_or_default(),
                            ]
                        })
                        .collect::<Vec<_>>(),
                );
            }
            println!("\nERRORS");
            if errors.is_empty() {
                println!("(none)");
            } else {
                print_table(
                    &["COUNT", "OP", "ERRNO", "PATH"],
                    &errors
                        .iter()
                        .map(|e| {
                            vec![
                                e.count.to_string(),
                                e.op.name().to_owned(),
                                e.errno_name.clone(),
                                e.path.clone().unwrap_or_default(),
                            ]
                        })
                        .collect::<Vec<_>>(),
                );
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_absolute_and_relative() {
        let now: jiff::Timestamp = "2026-11-23T08:00:00Z".parse().expect("now");
        let at = |s: &str| parse_time(s, now).expect(s);
        assert_eq!(at("2026-11-23T07:00:00Z"), at("1h"));
        assert_eq!(at("10m"), now.as_nanosecond() as i64 - 600_000_000_000);
        assert_eq!(at("2d ago"), at("48h"));
        assert_eq!(at("2026-11-23T09:00:00+01:00"), at("0s"));
        for bad in ["yesterday", "10", "5y", "", "m", "2026-13-01"] {
            let err = parse_time(bad, now).expect_err(bad).to_string();
            assert!(err.contains("bad time"), "{err}");
        }
    }
}
