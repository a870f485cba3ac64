//! `nono audit check --profile P --session S`: the replay check. Variables
//! are expanded with the session's own context (its `$HOME`, `$CWD`,
//! `$TMPDIR`, ...), so a session is checked where it ran; the decisions
//! are `nono run`'s own (`enforce::replay`), on this kernel, with the
//! broker when this kernel gives `nono run` one.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::common::Format;
use crate::cli::common::context::{nameservers, session_context};
use crate::cli::common::source::Source;
use crate::cli::common::text::csv_line;
use crate::enforce::replay::{self, Replay};
use crate::enforce::sensitive::Who;
use crate::event::display_safe;
use crate::profile::{self, Vars};
use crate::store::Session;

/// Checks `session` of `store` (a local file or the fleet: the session's
/// own context travels with it) against profile `spec`.
pub fn run(store: &mut Source, session: &Session, spec: &str, format: Format) -> anyhow::Result<ExitCode> {
    let vars = session_vars(session);
    let resolved = profile::load(spec, &vars)?;
    let abi = crate::enforce::kernel_abi();
    let broker = crate::kernel::seccomp_notify().is_ok();
    let mut replay = Replay::new(&resolved, abi, broker, nameservers(Path::new("/etc/resolv.conf")))?;
    // Two passes over the stored session (the tree first: scoping and the
    // broker's own-listener exception depend on all of it), never all of
    // it in memory.
    let mut events = 0u64;
    store.events(session.id, |e| {
        events += 1;
        replay.observe(&e);
    })?;
    let mut acc = replay::Aggregate::default();
    store.events(session.id, |e| {
        let refused = replay.decide(&e);
        acc.add(&e, refused);
    })?;
    let denials = acc.finish();
    // Names the session reached through nono's proxy (issue 23), against
    // the profile's domain rules, as the proxy would decide them.
    let rows = store.domains(session.id)?;
    let domains = crate::learn::domains::check(&rows, resolved.network.allow_domains.as_deref());
    let skipped = &replay.plan().skipped;
    // `nono run` refuses a plan that exposes a sensitive path before
    // anything runs: then every access would be refused.
    let ctx = session_context(session, &[]);
    let refused: Vec<String> = crate::enforce::sensitive::exposures(replay.plan(), &ctx, &session_user(session))
        .iter()
        .map(ToString::to_string)
        .collect();
    match format {
        Format::Json => println!(
            "{}",
            crate::cli::common::text::json_pretty(&serde_json::json!({
                "session": session.id,
                "profile": spec,
                "landlock_abi": abi,
                "broker": replay.has_broker(),
                "skipped_rules": skipped,
                "run_refuses": refused,
                "denials": denials,
                "domains": domains,
            }))?
        ),
        Format::Csv => {
            println!("op,path,by,missing,count,comm,pid,needed_rule");
            for d in &denials {
                let missing: Vec<_> = d.missing.iter().map(|r| r.name()).collect();
                println!(
                    "{}",
                    csv_line(&[
                        d.op.to_string(),
                        d.path.clone(),
                        d.by.name().to_owned(),
                        missing.join(" "),
                        d.count.to_string(),
                        d.comm.clone(),
                        d.pid.to_string(),
                        d.needed_rule.clone(),
                    ])
                );
            }
            for d in &domains {
                println!(
                    "{}",
                    csv_line(&[
                        "domain".to_owned(),
                        format!("{}:{}", d.domain, d.port),
                        "proxy".to_owned(),
                        d.why.clone(),
                        d.count.to_string(),
                        String::new(),
                        String::new(),
                        "network.allow_domains".to_owned(),
                    ])
                );
            }
        }
        Format::Table => {
            for s in skipped {
                eprintln!("nono: note: rule skipped (as `nono run` would): {}", display_safe(s));
            }
            if !replay.has_broker() {
                eprintln!(
                    "nono: note: no seccomp user notification here, so `nono run` would have no broker: brokered rules do not apply, and UDP destinations, Unix connects and metadata changes are not restricted"
                );
            }
            for r in &refused {
                println!("nono run would refuse to start under this profile: {}", display_safe(r));
            }
            if denials.is_empty() {
                println!("session {}: the profile allows every one of its {events} recorded accesses", session.id);
            } else {
                println!("session {}: {} access(es) the profile would deny:", session.id, denials.len());
                // Recorded names are shown escaped: they cannot fake lines.
                for d in &denials {
                    println!(
                        "  {:<8} {}  x{}  ({} pid {}, {})\n           needs: {}",
                        d.op.to_string(),
                        display_safe(&d.path),
                        d.count,
                        display_safe(&d.comm),
                        d.pid,
                        d.by.name(),
                        display_safe(&d.needed_rule)
                    );
                }
            }
            for d in &domains {
                println!(
                    "  domain   {}:{}  x{}  the proxy would refuse it: {}",
                    display_safe(&d.domain),
                    d.port,
                    d.count,
                    display_safe(&d.why)
                );
            }
        }
    }
    if format == Format::Csv {
        for r in &refused {
            eprintln!("nono: nono run would refuse to start under this profile: {}", display_safe(r));
        }
    }
    Ok(if denials.is_empty() && refused.is_empty() && domains.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The user the session's command ran as (the exposure check depends on
/// their file permissions).
fn session_user(session: &Session) -> Who {
    let uid = nix::unistd::Uid::from_raw(session.info.uid);
    match nix::unistd::User::from_uid(uid).ok().flatten() {
        Some(u) => {
            let groups = std::ffi::CString::new(u.name.as_bytes())
                .ok()
                .and_then(|name| nix::unistd::getgrouplist(&name, u.gid).ok())
                .map(|g| g.into_iter().map(nix::unistd::Gid::as_raw).collect())
                .unwrap_or_default();
            Who { uid: session.info.uid, gid: u.gid.as_raw(), groups, is_self: nix::unistd::geteuid() == uid }
        }
        None => Who { uid: session.info.uid, gid: session.info.uid, groups: Vec::new(), is_self: false },
    }
}

/// The profile variables where `session` ran (its stored context).
pub fn session_vars(session: &Session) -> Vars {
    let ctx = session_context(session, &[]);
    let mut vars = Vars::for_home(ctx.cwd.clone(), &ctx.home);
    vars.tmpdir = ctx.tmpdir;
    vars.xdg_config_home = ctx.xdg_config_home;
    vars.xdg_cache_home = ctx.xdg_cache_home;
    vars
}
