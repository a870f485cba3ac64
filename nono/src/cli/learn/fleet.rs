//! `nono learn --from ... --db postgres://...`: one profile from sessions
//! of many hosts. Each session is synthesised with the context it was
//! recorded in (its own $HOME, $CWD, ...), the results are merged, and
//! every rule says on how many hosts and in how many sessions it was seen;
//! `--min-hosts K` drops the rules fewer than K hosts needed.

use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;

use super::{LearnArgs, merged, profile_name, write_profile};
use crate::event::Event;
use crate::fleet::{Fleet, FleetUrl};
use crate::learn::{Synthesiser, merge_fleet};
use crate::profile::Provenance;

pub fn run(args: &LearnArgs, url: &str, output: &Path) -> anyhow::Result<ExitCode> {
    let mut fleet = Fleet::open(&FleetUrl::parse(url)?, args.host.clone())?;
    let sessions = if args.from.iter().any(|s| s == "all") {
        fleet.sessions()?
    } else {
        args.from.iter().map(|s| fleet.session(s)).collect::<Result<Vec<_>, _>>()?
    };
    if sessions.is_empty() {
        bail!(
            "the fleet database has no completely pushed session{}",
            args.host.as_ref().map_or(String::new(), |h| format!(" of host {h}"))
        );
    }
    let mut runs = Vec::with_capacity(sessions.len());
    let (mut lost, mut backends) = (0, Vec::new());
    for s in &sessions {
        let ctx = crate::cli::common::context::session_context(&s.session, &args.allow_sensitive);
        let mut synth = Synthesiser::new(&ctx);
        fleet.events(s.session.id, |e: Event| {
            synth.add(&e);
            Ok(())
        })?;
        lost += s.session.lost();
        if !backends.contains(&s.session.info.backend) {
            backends.push(s.session.info.backend.clone());
        }
        runs.push((s.host_id.clone(), synth.finish()));
    }
    let merge = merge_fleet(&runs, args.min_hosts.unwrap_or(1));
    let ids: Vec<i64> = sessions.iter().map(|s| s.session.id).collect();
    let provenance = Provenance {
        chain_roots: crate::trust::fleet_chain_roots(&mut fleet, &ids)?,
        sessions: ids,
        nono_version: env!("CARGO_PKG_VERSION").to_owned(),
        backend: backends.join(","),
        lost_events: lost,
        learned_at: jiff::Timestamp::now().to_string(),
    };
    let profile = merged(merge.learned.to_profile(&profile_name(args), provenance), args.merge.as_deref())?.to_json_pretty()?;
    write_profile(output, &profile)?;
    eprintln!("nono: profile from {} session(s) on {} host(s) written to {}", sessions.len(), merge.hosts, output.display());
    if !merge.dropped.is_empty() {
        eprintln!(
            "nono: {} rule(s) seen on fewer than {} host(s) left out: {}",
            merge.dropped.len(),
            args.min_hosts.unwrap_or(1),
            merge.dropped.join(", ")
        );
    }
    super::report::report_learned(&merge.learned, args.explain);
    Ok(ExitCode::SUCCESS)
}
