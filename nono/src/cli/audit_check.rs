//! `nono audit check --profile P --session S`: the replay check. Variables
//! are expanded with the session's own workdir (and this user's home), so
//! a session recorded elsewhere is checked where it ran.

use std::path::PathBuf;
use std::process::ExitCode;

use super::audit::csv_line;
use crate::cli::common::Format;
use crate::event::display_safe;
use crate::learn::{self, Grant, Grants};
use crate::profile::rights::FsRight;
use crate::profile::{self, Vars};
use crate::store::{Session, Store};

pub fn run(store: &Store, session: &Session, spec: &str, format: Format) -> anyhow::Result<ExitCode> {
    let vars = Vars::from_env(PathBuf::from(&session.info.cwd));
    let resolved = profile::load(spec, &vars)?;
    let net = &resolved.network;
    let grants = Grants {
        fs: resolved.grants.iter().map(|g| Grant { path: g.path.clone(), rights: g.rights.clone(), file: g.file }).collect(),
        handled: FsRight::ALL.into_iter().collect(),
        connect_ports: if net.block { Some(std::collections::BTreeSet::default()) } else { net.open_port.clone() },
        bind_ports: if net.block { Some(std::collections::BTreeSet::default()) } else { net.listen_port.clone() },
        block_net: net.block,
    };
    let mut events = Vec::new();
    store.events(session.id, |e| {
        events.push(e);
        Ok(())
    })?;
    let denials = learn::check(&events, &grants);
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"session": session.id, "profile": spec, "denials": denials}))?
        ),
        Format::Csv => {
            println!("op,path,missing,count,comm,pid,needed_rule");
            for d in &denials {
                let missing: Vec<_> = d.missing.iter().map(|r| r.name()).collect();
                println!(
                    "{}",
                    csv_line(&[
                        d.op.to_string(),
                        d.path.clone(),
                        missing.join(" "),
                        d.count.to_string(),
                        d.comm.clone(),
                        d.pid.to_string(),
                        d.needed_rule.clone(),
                    ])
                );
            }
        }
        Format::Table => {
            if denials.is_empty() {
                println!("session {}: the profile allows every one of its {} recorded accesses", session.id, events.len());
            } else {
                println!("session {}: {} access(es) the profile would deny:", session.id, denials.len());
                // Recorded names are shown escaped: they cannot fake lines.
                for d in &denials {
                    println!(
                        "  {:<8} {}  x{}  ({} pid {})\n           needs: {}",
                        d.op.to_string(),
                        display_safe(&d.path),
                        d.count,
                        display_safe(&d.comm),
                        d.pid,
                        display_safe(&d.needed_rule)
                    );
                }
            }
        }
    }
    Ok(if denials.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
