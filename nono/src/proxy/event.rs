//! What the proxy reports: one [`ProxyEvent`] per decision (a tunnel
//! opened or refused, a request forwarded or refused, a credential
//! injected), handed to the caller's sink as it happens. The proxy keeps
//! no log of its own; `nono run` puts them in the audit store.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use super::policy::Refusal;

/// How the client reached the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `CONNECT host:port` (a tunnel, usually TLS end to end).
    Connect,
    /// `GET http://host/...` through `HTTP_PROXY` (plain HTTP).
    Forward,
    /// A request to the credential endpoint (a `*_BASE_URL`).
    Credential,
}

impl Kind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Connect => "connect",
            Kind::Forward => "http",
            Kind::Credential => "credential",
        }
    }
}

/// What became of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Let through, to this upstream address.
    Allowed(SocketAddr),
    /// Refused by policy (a sandbox denial).
    Refused(Refusal),
    /// Allowed, but the upstream could not be reached (resolution,
    /// connect or TLS failed); not a denial.
    Failed(String),
}

/// One decision of the proxy.
#[derive(Clone, Debug)]
pub struct ProxyEvent {
    pub time: SystemTime,
    /// The client's end of its connection to the proxy.
    pub peer: SocketAddr,
    pub kind: Kind,
    /// The destination as named (normalised), or what the client sent
    /// when it could not be parsed; empty when it named none.
    pub host: String,
    pub port: u16,
    pub outcome: Outcome,
    /// The credential injected (or whose phantom was wrong).
    pub credential: Option<String>,
}

impl ProxyEvent {
    #[must_use]
    pub fn refused(&self) -> bool {
        matches!(self.outcome, Outcome::Refused(_))
    }
}

/// Where events go. Called on the proxy's threads: keep it quick (send
/// into a channel).
pub type Sink = Arc<dyn Fn(ProxyEvent) + Send + Sync>;
