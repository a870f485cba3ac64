//! `nono learn` learns host names (issue 23): a recording proxy lets
//! everything through (the learning run is not confined) and reports each
//! destination by name; the command gets `HTTPS_PROXY` and friends. After
//! each run the names go to the session's `domain_events`, and synthesis
//! turns them into `network.allow_domains` (`learn::domains`).
//!
//! A tool that ignores the proxy variables resolves names itself and
//! connects directly: the recorder captures its DNS questions and answers,
//! and [`store_dns`] turns them, joined with the connects that follow
//! (`learn::dns`), into the session's `dns` rows, which synthesis reads
//! like the proxy's.

use std::sync::{Arc, Mutex};

use anyhow::Context as _;

use crate::proxy::{self, ProxyConfig, ProxyEvent, ProxyHandle};
use crate::record::spawn::{self, Identity};
use crate::store::Store;

/// Most decisions kept per run before the rest are only counted.
const MAX_ROWS: usize = 1_000_000;

#[derive(Default)]
struct Buffer {
    rows: Vec<ProxyEvent>,
    dropped: u64,
}

/// The recording proxy of one `nono learn`.
pub struct LearnProxy {
    handle: ProxyHandle,
    buffer: Arc<Mutex<Buffer>>,
}

/// Sets `network.allow_domains` from the names `sessions` reached through
/// a recording proxy (left alone when they reached none).
pub fn add_domains(profile: &mut crate::profile::Profile, store: &Store, sessions: &[i64]) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for s in sessions {
        rows.extend(store.domains(&crate::store::DomainQuery { session: Some(*s), ..Default::default() })?);
    }
    let entries = crate::learn::domains::allow_domains(&rows);
    if !entries.is_empty() {
        profile.network.allow_domains = Some(entries);
    }
    Ok(())
}

/// Stores `session`'s DNS rows (its recorded questions, and the connects
/// joined to their answers), read back from the stored events. Returns how
/// many rows were stored.
pub fn store_dns(store: &Store, session: i64) -> anyhow::Result<usize> {
    let mut join = crate::learn::dns::DnsJoin::new(session);
    store.events(session, |e| {
        join.add(&e);
        Ok(())
    })?;
    let rows = join.finish();
    for chunk in rows.chunks(4096) {
        store.append_domains(chunk).context("storing the names the command resolved")?;
    }
    Ok(rows.len())
}

impl LearnProxy {
    /// Starts it (its threads as the user under sudo). `None` when nono
    /// runs as root without sudo: the proxy never runs as root, so names
    /// are not learned then (said once).
    pub fn start(identity: Option<&Identity>, resolve: &[String]) -> anyhow::Result<Option<LearnProxy>> {
        if identity.is_none() && nix::unistd::geteuid().is_root() {
            eprintln!(
                "nono: note: host names are not learned when nono runs as root without sudo (the recording proxy never runs as root)"
            );
            return Ok(None);
        }
        let overrides = resolve.iter().map(|r| proxy::Override::parse(r)).collect::<Result<Vec<_>, _>>()?;
        let buffer: Arc<Mutex<Buffer>> = Arc::default();
        let b = Arc::clone(&buffer);
        let sink: proxy::Sink = Arc::new(move |ev| {
            if let Ok(mut b) = b.lock() {
                if b.rows.len() < MAX_ROWS {
                    b.rows.push(ev);
                } else {
                    b.dropped += 1;
                }
            }
        });
        let on_start = crate::enforce::proxy::user_identity(identity).map_err(anyhow::Error::msg)?;
        let config = ProxyConfig { learning: true, overrides, ..ProxyConfig::default() };
        let handle = proxy::start(config, sink, on_start).context("starting nono's recording proxy")?;
        Ok(Some(LearnProxy { handle, buffer }))
    }

    /// The proxy variables in the command's environment.
    pub fn set_env(&self, cmd: &mut spawn::Command) {
        let env = self.handle.proxy_env();
        cmd.env.retain(|(k, _)| !env.iter().any(|(n, _)| k.to_string_lossy() == n.as_str()));
        for (k, v) in env {
            cmd.env.push((k.into(), v.into()));
        }
    }

    /// The proxy's port (its connects are not a learned port).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.handle.addr().port()
    }

    /// Writes `network.allow_domains` from what `sessions`' proxy let
    /// through (left out when nothing went through it), and takes the
    /// proxy's own port out of the learned TCP ports.
    pub fn apply(&self, profile: &mut crate::profile::Profile, store: &Store, sessions: &[i64]) -> anyhow::Result<()> {
        if let Some(ports) = &mut profile.network.open_port {
            ports.remove(&self.port());
        }
        add_domains(profile, store, sessions)
    }

    /// Moves what the proxy saw so far into `session`.
    pub fn store_into(&self, store: &Store, session: i64) -> anyhow::Result<()> {
        let (rows, dropped) = match self.buffer.lock() {
            Ok(mut b) => (std::mem::take(&mut b.rows), std::mem::take(&mut b.dropped)),
            Err(_) => anyhow::bail!("the recording proxy's buffer is poisoned"),
        };
        if dropped > 0 {
            eprintln!("nono: warning: {dropped} proxy decision(s) beyond {MAX_ROWS} were not stored");
        }
        let rows: Vec<_> = rows.iter().map(|e| crate::enforce::proxy::domain_row(session, e)).collect();
        for chunk in rows.chunks(4096) {
            store.append_domains(chunk).context("storing the names the proxy saw")?;
        }
        Ok(())
    }
}
