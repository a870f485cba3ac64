//! The last screen of `nono run --audit`: the sandbox's denials, grouped
//! by directory and right (or by what the network or kernel call was), and
//! the exact command that proposes the smallest amendment.

use std::collections::BTreeMap;
use std::path::Path;

use crate::event::{DenyBy, Event, Op, Outcome, display_safe, family_name};
use crate::learn::rights_for_event;
use crate::store::{Query, ResultClass, Store};

/// Most groups shown (the rest are counted).
const MAX_GROUPS: usize = 12;

#[derive(Default)]
struct Group {
    count: u64,
    example: String,
    methods: Vec<DenyBy>,
}

/// What one denial is about, for grouping: `(subject, what was missing)`.
fn key(e: &Event) -> (String, String) {
    match e.op {
        Op::Connect | Op::Bind | Op::Send => {
            let n = e.net.as_ref();
            let proto = n.map_or("?", |n| n.proto().name());
            let dest = match (n.and_then(|n| n.addr), e.path.as_deref()) {
                (Some(a), _) => format!("{a}:{}", n.map_or(0, |n| n.port)),
                (None, Some(p)) => p.to_owned(),
                (None, None) => "?".to_owned(),
            };
            (format!("network {} {proto} {dest}", e.op), String::new())
        }
        Op::Socket => {
            let family = e.net.as_ref().map_or_else(|| "?".to_owned(), |n| family_name(i32::from(n.family)));
            (format!("socket {family}"), String::new())
        }
        Op::Syscall | Op::Ioctl | Op::Signal | Op::Metadata if e.path.is_none() => (format!("{}", e.op), String::new()),
        _ => {
            let needs = rights_for_event(&Event { outcome: Outcome::Ok, ..e.clone() });
            match needs.first() {
                Some((path, rights, file)) => {
                    let dir = if *file { path.parent().unwrap_or(Path::new("/")) } else { path.as_path() };
                    let names: Vec<&str> = rights.iter().map(|r| r.name()).collect();
                    (crate::event::escape_path(dir), names.join(","))
                }
                None => (e.path.clone().unwrap_or_default(), e.op.to_string()),
            }
        }
    }
}

/// Prints the denials of session `id` and how to amend `profile`.
pub fn print(store: &Store, id: i64, profile: Option<&str>) -> anyhow::Result<()> {
    let rows = store.query(&Query { session: Some(id), result: Some(ResultClass::Denied), ..Query::default() })?;
    let mut groups: BTreeMap<(String, String), Group> = BTreeMap::new();
    for row in &rows {
        let e = &row.event;
        let g = groups.entry(key(e)).or_default();
        g.count += 1;
        if g.example.is_empty() {
            g.example = format!("{} {} by {}", e.op, e.path.as_deref().unwrap_or(""), e.comm);
        }
        if let Some(by) = e.outcome.denied_by()
            && !g.methods.contains(&by)
        {
            g.methods.push(by);
        }
    }
    eprintln!("nono: the sandbox denied ({} access(es) in {} group(s)):", rows.len(), groups.len());
    for ((subject, rights), g) in groups.iter().take(MAX_GROUPS) {
        let what = if rights.is_empty() { String::new() } else { format!(" needs {rights}") };
        let by: Vec<&str> = g.methods.iter().map(|m| m.name()).collect();
        eprintln!("nono:   {}{what}: {}x (e.g. {}) [{}]", display_safe(subject), g.count, display_safe(&g.example), by.join(","));
    }
    if groups.len() > MAX_GROUPS {
        eprintln!("nono:   ... and {} more group(s): nono audit query --session {id} --result denied", groups.len() - MAX_GROUPS);
    }
    match profile {
        Some(p) => eprintln!("nono: to allow what it needs: nono profile amend {} --session {id}", shell_word(p)),
        None => eprintln!("nono: no profile was given; learn one with `nono learn`, then amend it with --session {id}"),
    }
    Ok(())
}

fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@".contains(c)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
