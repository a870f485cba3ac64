//! `nono audit sessions` and `nono audit show`: sessions listed and one
//! session shown, with the profile a `run` session enforced as stored.

use serde_json::json;

use super::{Format, human_duration, local_time, print_json, print_table, rfc3339};
use crate::cli::common::shell_words;
use crate::cli::common::source::{HostView, Listed};
use crate::cli::common::text::{csv_line, exit_text};
use crate::event::display_safe;
use crate::store::{EnforcedProfile, Session, SessionState};

pub(super) fn session_json(s: &Session) -> serde_json::Value {
    json!({
        "id": s.id,
        "state": s.state,
        "command": s.info.command,
        "cwd": s.info.cwd,
        "uid": s.info.uid,
        "user": s.info.user,
        "backend": s.info.backend,
        "kernel": s.info.kernel,
        "nono_version": s.info.nono_version,
        "recorder_pid": s.recorder_pid,
        "started": rfc3339(s.started_ns),
        "started_ns": s.started_ns,
        "ended": s.ended_ns.map(rfc3339),
        "ended_ns": s.ended_ns,
        "duration_ms": s.ended_ns.map(|e| (e - s.started_ns) / 1_000_000),
        "exit_code": s.exit_code,
        "signal": s.signal,
        "events": s.events,
        "lost": s.lost(),
        "complete": s.state == SessionState::Complete,
        "counters": s.counters,
        "profile_path": s.profile_path,
        "kind": s.info.kind,
        "context": s.info.context.as_deref().map(|c| serde_json::from_str::<serde_json::Value>(c).unwrap_or_else(|_| json!(c))),
        "enforced_profile": s.info.profile,
        "recorder_gone": s.recorder_gone(),
        "note": s.note,
    })
}

/// The state, and whether a running session's recorder is gone.
pub(super) fn state_text(s: &Session) -> String {
    if s.recorder_gone() { "running (recorder gone)".to_owned() } else { s.state.as_str().to_owned() }
}

const SESSION_HEADER: [&str; 12] =
    ["ID", "KIND", "STATE", "START", "DURATION", "BACKEND", "HOST", "EVENTS", "DENIED", "LOST", "EXIT", "COMMAND"];

pub(super) fn print_sessions(listed: &[Listed], format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => print_json(
            &listed
                .iter()
                .map(|l| {
                    let mut j = session_json(&l.session);
                    j["host"] = json!(l.host.label);
                    j["host_name"] = json!(l.host.name);
                    j["host_id"] = json!(l.host.id);
                    j["denials"] = json!(l.denials);
                    j
                })
                .collect::<Vec<_>>(),
        ),
        Format::Csv => {
            println!("id,kind,state,started,duration_ms,backend,host,events,denials,lost,exit_code,signal,command");
            for Listed { session: s, host, denials } in listed {
                println!(
                    "{}",
                    csv_line(&[
                        s.id.to_string(),
                        s.info.kind.as_str().to_owned(),
                        s.state.as_str().to_owned(),
                        rfc3339(s.started_ns),
                        s.ended_ns.map(|e| ((e - s.started_ns) / 1_000_000).to_string()).unwrap_or_default(),
                        s.info.backend.clone(),
                        host.label.clone(),
                        s.events.to_string(),
                        denials.to_string(),
                        s.lost().to_string(),
                        s.exit_code.map(|c| c.to_string()).unwrap_or_default(),
                        s.signal.map(|c| c.to_string()).unwrap_or_default(),
                        shell_words(&s.info.command),
                    ])
                );
            }
            Ok(())
        }
        Format::Table => {
            if listed.is_empty() {
                eprintln!("nono: no sessions match; record one with `nono learn`");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = listed
                .iter()
                .map(|Listed { session: s, host, denials }| {
                    vec![
                        s.id.to_string(),
                        s.info.kind.as_str().to_owned(),
                        state_text(s),
                        local_time(s.started_ns),
                        s.ended_ns.map_or_else(|| "-".to_owned(), |e| human_duration(e - s.started_ns)),
                        s.info.backend.clone(),
                        host.label.clone(),
                        s.events.to_string(),
                        denials.to_string(),
                        s.lost().to_string(),
                        exit_text(s),
                        shell_words(&s.info.command),
                    ]
                })
                .collect();
            print_table(&SESSION_HEADER, &rows);
            Ok(())
        }
    }
}

pub(super) fn print_show(s: &Session, host: &HostView, enforced: Option<&EnforcedProfile>, format: Format) -> anyhow::Result<()> {
    let c = &s.counters;
    let pairs: Vec<(&str, String)> = vec![
        ("id", s.id.to_string()),
        ("state", s.state.as_str().to_owned()),
        ("command", shell_words(&s.info.command)),
        ("cwd", s.info.cwd.clone()),
        ("user", format!("{} (uid {})", s.info.user, s.info.uid)),
        ("host", host.label.clone()),
        ("host_id", host.id.clone()),
        ("backend", s.info.backend.clone()),
        ("kernel", s.info.kernel.clone()),
        ("nono_version", s.info.nono_version.clone()),
        ("recorder_pid", s.recorder_pid.to_string()),
        ("started", local_time(s.started_ns)),
        ("ended", s.ended_ns.map_or_else(|| "-".to_owned(), local_time)),
        ("duration", s.ended_ns.map_or_else(|| "-".to_owned(), |e| human_duration(e - s.started_ns))),
        ("exit", exit_text(s)),
        ("events", s.events.to_string()),
        ("lost", s.lost().to_string()),
        ("ringbuf_drops", c.ringbuf_drops.to_string()),
        ("pending_full", c.pending_full.to_string()),
        ("traced_full", c.traced_full.to_string()),
        ("scratch_busy", c.scratch_busy.to_string()),
        ("decode_errors", c.decode_errors.to_string()),
        ("unstored", c.unstored.to_string()),
        ("path_failures", c.path_failures.to_string()),
        ("path_truncations", c.path_truncations.to_string()),
        ("kind", s.info.kind.as_str().to_owned()),
        ("enforced_profile", s.info.profile.clone().unwrap_or_else(|| "-".to_owned())),
        ("enforced_sha256", enforced.map_or_else(|| "-".to_owned(), |p| p.hash.clone())),
        ("learned_profile", s.profile_path.clone().unwrap_or_else(|| "-".to_owned())),
        ("context", s.info.context.clone().unwrap_or_else(|| "-".to_owned())),
        ("note", s.note.clone().unwrap_or_else(|| "-".to_owned())),
    ];
    match format {
        Format::Json => {
            let mut j = session_json(s);
            j["host"] = json!(host.label);
            j["host_name"] = json!(host.name);
            j["host_id"] = json!(host.id);
            // The profile as it was enforced: a later amend of the file
            // does not change it.
            j["enforced_sha256"] = json!(enforced.map(|p| &p.hash));
            j["enforced_resolved"] = enforced.map_or(serde_json::Value::Null, |p| {
                serde_json::from_str::<serde_json::Value>(&p.json).unwrap_or_else(|_| json!(p.json))
            });
            print_json(&j)
        }
        Format::Csv => {
            println!("field,value");
            for (k, v) in &pairs {
                println!("{}", csv_line(&[(*k).to_owned(), v.clone()]));
            }
            Ok(())
        }
        Format::Table => {
            for (k, v) in &pairs {
                println!("{:<17} {}", format!("{k}:"), display_safe(v));
            }
            match s.state {
                SessionState::Complete => {}
                SessionState::Running if s.recorder_gone() => println!(
                    "RUNNING, BUT THE RECORDER (pid {}) IS GONE: the session was cut short; the next `nono learn` or \
                     `nono run --audit` marks it incomplete",
                    s.recorder_pid
                ),
                SessionState::Running => println!("RUNNING: the recorder (pid {}) is still writing this session", s.recorder_pid),
                SessionState::Incomplete => println!(
                    "INCOMPLETE: {} events lost{}",
                    s.lost(),
                    display_safe(&s.note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default())
                ),
            }
            if c.path_failures + c.path_truncations > 0 {
                println!(
                    "NOTE: {} events have an unreadable or truncated path (stored, marked incomplete)",
                    c.path_failures + c.path_truncations
                );
            }
            if let Some(p) = enforced {
                print_enforced(p);
            }
            Ok(())
        }
    }
}

/// The rules a `run` session enforced, as stored when it started.
fn print_enforced(p: &EnforcedProfile) {
    let profile = match crate::profile::Profile::parse(&p.json, "the stored profile") {
        Ok(profile) => profile,
        Err(e) => {
            println!("\nENFORCED PROFILE: stored, but it does not parse: {}", display_safe(&e.to_string()));
            return;
        }
    };
    println!("\nENFORCED PROFILE (as stored when the session started; later edits of the file do not change it)");
    for r in &profile.filesystem.rules {
        let rights: Vec<&str> = r.access.iter().map(|x| x.name()).collect();
        let why = r.reason.as_deref().map(|w| format!("  ({w})")).unwrap_or_default();
        println!("  {}{}  {}{}", if r.file { "file " } else { "" }, display_safe(&r.path), rights.join(","), display_safe(&why));
    }
    for b in &profile.filesystem.brokered {
        let ops: Vec<String> = b.ops.iter().map(|o| format!("{o:?}").to_lowercase()).collect();
        println!("  brokered {}/{{{}}}  {}", display_safe(&b.dir), display_safe(&b.names.join(",")), ops.join(","));
    }
    let n = &profile.network;
    let ports = |p: &Option<std::collections::BTreeSet<u16>>| {
        p.as_ref().map_or_else(|| "any".to_owned(), |s| s.iter().map(u16::to_string).collect::<Vec<_>>().join(","))
    };
    println!(
        "  network: {}tcp connect {}, tcp bind {}, udp {}",
        if n.block { "blocked; " } else { "" },
        ports(&n.open_port),
        ports(&n.listen_port),
        n.udp.as_ref().map_or("none", |u| if u.dns { "dns and listed" } else { "listed" })
    );
}
