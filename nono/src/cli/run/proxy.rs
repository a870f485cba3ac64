//! `nono run` with `network.allow_domains` (issue 23): starts nono's
//! proxy before the sandbox is built (Landlock needs its port), confines
//! the plan and the broker to it, gives the command its environment
//! (proxy variables, a phantom for each credential, the credential
//! endpoint as each base URL; never a real secret), records every
//! decision in the audit store under `--audit`, and prints the refused
//! domains when the command is done.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use anyhow::{Context as _, bail};

use crate::enforce::Plan;
use crate::enforce::proxy::{ProxyMode, domain_row};
use crate::profile::Resolved;
use crate::profile::network::From;
use crate::proxy::{self, CredentialSpec, Outcome, ProxyConfig, ProxyEvent, ProxyHandle, Source};
use crate::record::spawn::{self, Identity};
use crate::store::Store;

/// Rows buffered for the audit writer before the proxy drops them (and
/// counts the loss) rather than block its threads.
const AUDIT_QUEUE: usize = 65_536;

/// Options of `nono run` for the proxy.
#[derive(Debug, Default, clap::Args)]
pub struct ProxyArgs {
    /// Resolve HOST (for PORT only, when given) to ADDR in nono's proxy,
    /// like curl's --resolve: HOST[:PORT]=ADDR[:PORT]. The operator's
    /// word: the address is not checked against private ranges. For tests
    /// and split-horizon setups.
    #[arg(long = "resolve", value_name = "HOST[:PORT]=ADDR[:PORT]")]
    pub resolve: Vec<String>,
    /// Also trust this CA (PEM) for credential upstreams, besides the
    /// system store.
    #[arg(long = "upstream-ca", value_name = "FILE")]
    pub upstream_ca: Vec<PathBuf>,
}

#[derive(Default)]
struct Tally {
    /// `(host:port, reason)` -> count, refused only.
    refused: BTreeMap<(String, String), u64>,
    allowed: u64,
    /// Rows the audit writer could not take.
    lost: u64,
}

/// The proxy of one run.
pub struct RunProxy {
    handle: ProxyHandle,
    tally: Arc<Mutex<Tally>>,
    audit: Arc<Mutex<Option<mpsc::SyncSender<ProxyEvent>>>>,
    writer: Option<std::thread::JoinHandle<Result<u64, String>>>,
    /// `(variable, value)` the command gets.
    env: Vec<(String, String)>,
    /// Variables the command must not get (secret sources).
    scrub: Vec<String>,
}

/// Starts the proxy when the profile lists `network.allow_domains`, and
/// confines `plan` to it. `notify`: whether the broker can run.
pub fn start(
    resolved: &mut Resolved,
    plan: &mut Plan,
    identity: Option<&Identity>,
    notify: &Result<(), String>,
    args: &ProxyArgs,
) -> anyhow::Result<Option<RunProxy>> {
    let Some(domains) = resolved.network.allow_domains.clone() else {
        if !resolved.network.credentials.is_empty() {
            bail!("network.credentials needs network.allow_domains (even []): credentials are injected by nono's proxy");
        }
        return Ok(None);
    };
    if plan.block_net {
        bail!("network.allow_domains and a blocked network (network.block or --block-net) contradict each other");
    }
    let mode = ProxyMode::detect(crate::enforce::kernel_abi(), notify, crate::enforce::is_wsl2(Path::new("/")));
    if let Some(warning) = mode.decide(resolved.security.wsl2_proxy_policy).map_err(anyhow::Error::msg)? {
        eprintln!("nono: {warning}");
    }
    let home = identity.map_or_else(|| std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default(), |i| i.home.clone());
    let mut allow = Vec::new();
    for d in &domains {
        allow.push(d.rule().map_err(anyhow::Error::msg)?);
    }
    let mut credentials = Vec::new();
    let mut scrub = Vec::new();
    for c in &resolved.network.credentials {
        let source = match c.source().map_err(anyhow::Error::msg)? {
            From::Keyring(desc) => {
                if resolved.sandbox.allow.contains(&crate::event::Facility::Keyring) {
                    bail!(
                        "credential {}: from the keyring, but sandbox.allow lists keyring: the command could read the key itself",
                        c.name
                    );
                }
                Source::Keyring(desc)
            }
            From::File(p) => {
                let path = match p.strip_prefix("~/") {
                    Some(rest) => home.join(rest),
                    None => PathBuf::from(&p),
                };
                if let Some(rule) = plan
                    .fs
                    .iter()
                    .find(|r| r.rights.contains(&crate::profile::rights::FsRight::ReadFile) && path.starts_with(&r.path))
                {
                    bail!(
                        "credential {}: the key file {} is readable in the sandbox (grant on {} from {}): move it out of the grants",
                        c.name,
                        path.display(),
                        rule.path.display(),
                        rule.origins.join(", ")
                    );
                }
                Source::File(path)
            }
            From::Env(var) => {
                scrub.push(var.clone());
                let value = std::env::var_os(&var).map(|v| zeroize::Zeroizing::new(v.as_bytes().to_vec()));
                Source::Env { var, value }
            }
        };
        credentials.push(CredentialSpec {
            name: c.name.clone(),
            domain: c.domain.clone(),
            port: c.port.unwrap_or(443),
            header: http::HeaderName::from_bytes(c.header.as_bytes()).context("credential header")?,
            source,
        });
    }
    let mut overrides = Vec::new();
    for r in &args.resolve {
        overrides.push(proxy::Override::parse(r)?);
    }
    let config = ProxyConfig { allow, credentials, overrides, extra_ca: args.upstream_ca.clone(), ..ProxyConfig::default() };
    let tally: Arc<Mutex<Tally>> = Arc::default();
    let audit: Arc<Mutex<Option<mpsc::SyncSender<ProxyEvent>>>> = Arc::default();
    let (t, a) = (Arc::clone(&tally), Arc::clone(&audit));
    let sink: proxy::Sink = Arc::new(move |ev: ProxyEvent| {
        if let Ok(mut t) = t.lock() {
            match &ev.outcome {
                Outcome::Refused(why) => {
                    *t.refused.entry((format!("{}:{}", shown(&ev.host), ev.port), why.to_string())).or_default() += 1;
                }
                _ => t.allowed += 1,
            }
            if let Ok(a) = a.lock()
                && let Some(tx) = a.as_ref()
                && tx.try_send(ev).is_err()
            {
                t.lost += 1;
            }
        }
    });
    // The secrets live in this process from now on. It is made
    // non-dumpable once the command is forked (a child forked from a
    // non-dumpable parent could not hand the broker its listener):
    // `supervised::start` does it, and `run_command` without a broker.
    let on_start = crate::enforce::proxy::user_identity(identity).map_err(anyhow::Error::msg)?;
    let handle = proxy::start(config, sink, on_start).context("starting nono's network proxy")?;
    for note in crate::enforce::proxy::confine_plan(plan, handle.addr(), &mut resolved.network.udp) {
        eprintln!("nono: note: {note}");
    }
    let mut env = handle.proxy_env();
    for c in &resolved.network.credentials {
        let phantom = handle.phantom(&c.name).context("a credential without its phantom")?;
        env.push((c.env.clone(), phantom.to_owned()));
        if let Some(b) = &c.base_url_env {
            env.push((b.clone(), handle.base_url()));
        }
    }
    Ok(Some(RunProxy { handle, tally, audit, writer: None, env, scrub }))
}

fn shown(host: &str) -> &str {
    if host.is_empty() { "(no host)" } else { host }
}

impl RunProxy {
    /// The broker's part: connects only to the proxy.
    pub fn confine_broker(&self, broker: &mut crate::enforce::broker::BrokerPlan) {
        // `network.udp` was already adjusted in `start` (no DNS).
        broker.proxy_only = Some(self.handle.addr());
    }

    /// Puts the proxy's variables in the command's environment, and takes
    /// out every variable that holds (or was the source of) a secret.
    pub fn set_env(&self, cmd: &mut spawn::Command) {
        let ours: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        cmd.env.retain(|(k, v)| {
            let k = k.to_string_lossy();
            if ours.contains(&k.as_ref()) || self.scrub.iter().any(|s| *s == k) {
                return false;
            }
            if let Some(name) = self.handle.secret_in(v.as_bytes()) {
                eprintln!("nono: note: {k} is not passed to the command: it holds credential {name}'s secret");
                return false;
            }
            true
        });
        for (k, v) in &self.env {
            cmd.env.push((OsString::from(k), OsString::from(v)));
        }
    }

    /// Under `--audit`: from now on every decision is written to session
    /// `session` of the database at `db`, by a thread of its own.
    pub fn record_into(&mut self, db: &Path, session: i64) -> anyhow::Result<()> {
        let store = Store::open_existing(db).context("opening the audit database for the proxy's records")?;
        let (tx, rx) = mpsc::sync_channel::<ProxyEvent>(AUDIT_QUEUE);
        let writer = std::thread::Builder::new()
            .name("nono-proxy-audit".into())
            .spawn(move || -> Result<u64, String> {
                let mut stored = 0u64;
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![domain_row(session, &first)];
                    while batch.len() < 512
                        && let Ok(more) = rx.try_recv()
                    {
                        batch.push(domain_row(session, &more));
                    }
                    store.append_domains(&batch).map_err(|e| format!("{e:#}"))?;
                    stored += batch.len() as u64;
                }
                Ok(stored)
            })
            .context("starting the proxy's audit writer")?;
        if let Ok(mut a) = self.audit.lock() {
            *a = Some(tx);
        }
        self.writer = Some(writer);
        Ok(())
    }

    /// Stops the proxy (after the command is done), flushes the audit
    /// rows and prints what was refused.
    pub fn finish(self) -> anyhow::Result<()> {
        let RunProxy { handle, tally, audit, writer, .. } = self;
        handle.stop();
        if let Ok(mut a) = audit.lock() {
            a.take();
        }
        if let Some(w) = writer {
            match w.join() {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => eprintln!("nono: warning: the proxy's audit records were not all stored: {e}"),
                Err(_) => eprintln!("nono: warning: the proxy's audit writer failed"),
            }
        }
        let t = tally.lock().map_err(|_| anyhow::anyhow!("proxy tally poisoned"))?;
        if t.lost > 0 {
            eprintln!("nono: warning: {} proxy decision(s) were not stored in the audit database (queue full)", t.lost);
        }
        if !t.refused.is_empty() {
            let total: u64 = t.refused.values().sum();
            eprintln!("nono: the proxy refused {total} connection(s) ({} let through):", t.allowed);
            for ((dest, why), n) in t.refused.iter().take(20) {
                eprintln!("nono:   {dest} ({n}x): {why}");
            }
            if t.refused.len() > 20 {
                eprintln!("nono:   and {} more destination(s)", t.refused.len() - 20);
            }
            eprintln!("nono:   (to allow a name, add it to network.allow_domains)");
        }
        Ok(())
    }
}
