//! nono's network proxy: the sandbox's only way out when a profile lists
//! `network.allow_domains`, and the holder of the credentials the
//! sandbox uses without seeing (issue 23).
//!
//! The proxy owns its listener, its threads and the secrets; it knows
//! nothing of profiles, Landlock or the store (it imports no other nono
//! module): the caller turns a profile into a [`ProxyConfig`], confines
//! the command so it can reach only [`ProxyHandle::addr`], and records the
//! [`ProxyEvent`]s it is handed. [`policy`] is pure, and `profile` and
//! `learn` use it so a profile, the learner and the proxy read a name the
//! same way.
//!
//! ```text
//! sandbox ── CONNECT api.example.com:443 ──> listener ─ policy ─ resolve ─ check ─> upstream (TLS end to end)
//!         ── GET http://host/ ────────────> listener ─ (same) ─────────────────────> upstream (plain HTTP)
//!         ── POST /v1/messages ──────────> credential endpoint: phantom -> secret ──> https://domain (verified TLS)
//!            x-api-key: nono-phantom-…
//! ```
//!
//! - [`policy`]: names, wildcards, ports; which addresses are internal.
//! - [`resolve`]: operator overrides (`--resolve`), system lookup, the
//!   address check; connects go to exactly the checked addresses.
//! - [`listener`]: accept loop, connection limit, hyper's HTTP/1 server,
//!   dispatch; [`tunnel`] (CONNECT), [`forward`] (plain HTTP),
//!   [`reverse`] (the credential endpoint).
//! - [`credential`]: secret sources (kernel keyring, a 0600 file, the
//!   invoking environment), phantoms, the swap.
//! - [`tls`]: the upstream TLS client; [`limits`]: bounds and idle
//!   timeouts; [`event`]: what is reported.
//!
//! # Credentials: the mechanism and its trust model
//! The sandbox's `ANTHROPIC_API_KEY` (say) holds a random per-run phantom
//! and `ANTHROPIC_BASE_URL` points at `http://127.0.0.1:PORT`. The client
//! sends its requests there in clear text over loopback; the proxy finds
//! the credential by its phantom, puts the real secret in that header
//! only, and sends the request on over HTTPS to the credential's own
//! domain, verifying the certificate against the system store. So:
//! - the real secret never enters the sandbox: not its environment, not
//!   its files, not its memory; it lives in nono's supervisor, which the
//!   sandbox cannot read (another process, made non-dumpable, outside the
//!   sandbox's Landlock domain, which forbids ptrace and `/proc/PID/mem`);
//! - the secret goes only to the credential's domain: the upstream is
//!   fixed by the credential, never taken from the request, and a
//!   phantom is never swapped on a tunnel or a plain-HTTP request;
//! - what the sandbox can still do is *use* the credential against that
//!   domain while it runs (that is what it is for), and any local
//!   process that learns the phantom can too, for this run only;
//! - a client that ignores the base URL and tunnels to the domain sends
//!   the phantom, which the upstream rejects: it fails, closed.
//!
//! TLS interception (a per-run CA, leaf certificates minted per host) was
//! not chosen: it would make every tunnel readable by nono and needs the
//! CA trusted by every runtime inside; the base URL does the job for the
//! agents that matter (Claude Code, the `OpenAI` SDKs) with none of that.
//!
//! # Threat model
//! The sandbox is hostile and may send anything to the listener. It must
//! not reach anything but allowed destinations: names are normalised and
//! checked before resolution; IP literals, `localhost` and names that
//! resolve to internal addresses are refused unless a rule says so; the
//! proxy connects only to the addresses it checked; its own address is
//! never a destination. It must not exhaust the proxy: connections are
//! limited, request heads bounded in size and time, idle connections and
//! tunnels closed, bodies streamed. The proxy runs on its own threads in
//! the supervisor, with the invoking user's identity when nono runs
//! under sudo (`on_start`), and dies with it.

pub mod credential;
pub mod event;
mod forward;
pub mod limits;
mod listener;
pub mod policy;
pub mod resolve;
mod reverse;
pub mod tls;
mod tunnel;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};

pub use credential::{CredentialSpec, Source};
pub use event::{Kind, Outcome, ProxyEvent, Sink};
pub use limits::Limits;
pub use policy::{DomainPolicy, Refusal, Rule};
pub use resolve::Override;

/// What the proxy is to do.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Where to listen (`127.0.0.1:0`: a free loopback port).
    pub listen: SocketAddr,
    pub allow: Vec<Rule>,
    pub credentials: Vec<CredentialSpec>,
    /// Name overrides (`--resolve`).
    pub overrides: Vec<Override>,
    /// CA files trusted for credential upstreams besides the system's.
    pub extra_ca: Vec<PathBuf>,
    pub limits: Limits,
    /// Learning: let everything through and report it (`allow` unused).
    pub learning: bool,
}

impl Default for ProxyConfig {
    fn default() -> ProxyConfig {
        ProxyConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            allow: Vec::new(),
            credentials: Vec::new(),
            overrides: Vec::new(),
            extra_ca: Vec::new(),
            limits: Limits::default(),
            learning: false,
        }
    }
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("the proxy could not take the user's identity")]
    Identity(#[source] std::io::Error),
    #[error(transparent)]
    Credential(#[from] credential::CredentialError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("{call} failed")]
    Sys {
        call: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the proxy thread ended before it was ready")]
    Thread,
}

/// Runs before anything else on the proxy's thread (take the user's
/// identity); every thread the proxy starts inherits what it sets.
pub type OnStart = Box<dyn FnOnce() -> std::io::Result<()> + Send>;

/// A running proxy. Dropping it stops it.
pub struct ProxyHandle {
    addr: SocketAddr,
    /// `(credential name, phantom)`.
    phantoms: Vec<(String, String)>,
    /// The loaded credentials (for [`ProxyHandle::secret_in`]).
    credentials: Arc<Vec<credential::Loaded>>,
    stop: Option<watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProxyHandle {
    /// The listener's address (what the sandbox may connect to).
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The phantom standing in for credential `name` in this run.
    #[must_use]
    pub fn phantom(&self, name: &str) -> Option<&str> {
        self.phantoms.iter().find(|(n, _)| n == name).map(|(_, p)| p.as_str())
    }

    /// The proxy variables for the sandbox's environment: `HTTPS_PROXY`
    /// and friends in both cases, `NO_PROXY` for loopback (the sandbox's
    /// own servers, and the credential endpoint, are reached directly),
    /// and `NODE_USE_ENV_PROXY` (Node's built-in fetch reads the proxy
    /// variables only with it).
    #[must_use]
    pub fn proxy_env(&self) -> Vec<(String, String)> {
        let url = self.base_url();
        let mut env = Vec::new();
        for var in ["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"] {
            env.push((var.to_owned(), url.clone()));
            env.push((var.to_ascii_lowercase(), url.clone()));
        }
        let no_proxy = "localhost,127.0.0.1,::1".to_owned();
        env.push(("NO_PROXY".to_owned(), no_proxy.clone()));
        env.push(("no_proxy".to_owned(), no_proxy));
        env.push(("NODE_USE_ENV_PROXY".to_owned(), "1".to_owned()));
        env
    }

    /// The credential whose real secret occurs in `value` (an environment
    /// value about to be handed to the sandbox), if any. Secrets shorter
    /// than 8 bytes are not looked for (they would match by chance).
    #[must_use]
    pub fn secret_in(&self, value: &[u8]) -> Option<&str> {
        self.credentials
            .iter()
            .find(|c| c.secret.len() >= 8 && value.windows(c.secret.len()).any(|w| w == c.secret.as_slice()))
            .map(|c| c.spec.name.as_str())
    }

    /// `http://127.0.0.1:PORT`: the proxy URL, and the base URL of every
    /// credential.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, closes every connection and tunnel, wipes the
    /// secrets, and waits for the proxy's threads.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Starts the proxy on its own thread: runs `on_start`, loads the
/// credentials, binds the listener, and returns once it accepts.
pub fn start(config: ProxyConfig, sink: Sink, on_start: Option<OnStart>) -> Result<ProxyHandle, ProxyError> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let thread = std::thread::Builder::new()
        .name("nono-proxy".into())
        .spawn(move || {
            let (rt, listener, shared) = match setup(config, sink, on_start) {
                Ok(x) => x,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let phantoms = shared.credentials.iter().map(|c| (c.spec.name.clone(), c.phantom.clone())).collect();
            let _ = ready_tx.send(Ok((shared.own, phantoms, Arc::clone(&shared.credentials))));
            rt.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => listener::serve(l, Arc::new(shared), stop_rx).await,
                    Err(e) => log::error!("nono proxy: listener: {e}"),
                }
            });
            // Tunnels still open are cancelled; a lookup stuck in
            // getaddrinfo is not waited for.
            rt.shutdown_timeout(Duration::from_millis(200));
        })
        .map_err(|source| ProxyError::Sys { call: "spawning the proxy thread", source })?;
    let (addr, phantoms, credentials) = match ready_rx.recv() {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            let _ = thread.join();
            return Err(e);
        }
        Err(_) => {
            let _ = thread.join();
            return Err(ProxyError::Thread);
        }
    };
    Ok(ProxyHandle { addr, phantoms, credentials, stop: Some(stop_tx), thread: Some(thread) })
}

fn setup(
    config: ProxyConfig,
    sink: Sink,
    on_start: Option<OnStart>,
) -> Result<(tokio::runtime::Runtime, std::net::TcpListener, listener::Shared), ProxyError> {
    if let Some(f) = on_start {
        f().map_err(ProxyError::Identity)?;
    }
    let credentials = config.credentials.into_iter().map(credential::load).collect::<Result<Vec<_>, _>>()?;
    let tls = if credentials.is_empty() { None } else { Some(tls::client_config(&config.extra_ca)?) };
    let listener = std::net::TcpListener::bind(config.listen)
        .map_err(|source| ProxyError::Sys { call: "binding the proxy's listener", source })?;
    listener.set_nonblocking(true).map_err(|source| ProxyError::Sys { call: "fcntl(O_NONBLOCK)", source })?;
    let own = listener.local_addr().map_err(|source| ProxyError::Sys { call: "getsockname", source })?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .thread_name("nono-proxy-io")
        .enable_all()
        .build()
        .map_err(|source| ProxyError::Sys { call: "starting the proxy's runtime", source })?;
    let limits = config.limits;
    let shared = listener::Shared {
        policy: if config.learning { DomainPolicy::allow_all() } else { DomainPolicy::new(config.allow) },
        resolver: resolve::Resolver { overrides: config.overrides, timeout: limits.resolve_timeout },
        conns: Arc::new(Semaphore::new(limits.max_connections)),
        limits,
        credentials: Arc::new(credentials),
        tls,
        sink,
        own,
    };
    Ok((rt, listener, shared))
}

#[cfg(test)]
mod tests;
