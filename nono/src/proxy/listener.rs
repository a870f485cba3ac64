//! The listener: accepts client connections up to the connection limit,
//! serves each with hyper's HTTP/1 server (bounded head size, head
//! timeout, idle timeout), and dispatches each request:
//! `CONNECT` -> [`super::tunnel`], an absolute `http://` URL ->
//! [`super::forward`], anything else (a client that was given the proxy
//! as a base URL) -> [`super::reverse`].
//!
//! Also the one place where a destination is checked and reached
//! ([`Shared::open`]): policy, then resolution with the address check,
//! then a connect to exactly the checked addresses.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::credential::Loaded;
use super::event::{Kind, Outcome, ProxyEvent, Sink};
use super::limits::{Activity, Clock, Limits, idle};
use super::policy::{DomainPolicy, Host, Refusal};
use super::resolve::{ResolveError, Resolver};

/// Response bodies: streamed from upstream, or a short message.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// Everything the connection tasks share.
pub struct Shared {
    pub policy: DomainPolicy,
    pub resolver: Resolver,
    pub limits: Limits,
    pub credentials: Arc<Vec<Loaded>>,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub sink: Sink,
    /// The proxy's own address (never a destination).
    pub own: SocketAddr,
    pub conns: Arc<Semaphore>,
}

/// One client connection's context, handed to every request on it.
#[derive(Clone)]
pub struct Conn {
    pub shared: Arc<Shared>,
    pub peer: SocketAddr,
    pub clock: Clock,
    /// Held until the connection and any tunnel it became are closed.
    pub permit: Arc<OwnedSemaphorePermit>,
}

/// A destination could not be used.
pub enum Unreachable {
    Refused(Refusal),
    Failed(String),
}

impl Conn {
    pub fn report(&self, kind: Kind, host: String, port: u16, outcome: Outcome, credential: Option<String>) {
        (self.shared.sink)(ProxyEvent { time: SystemTime::now(), peer: self.peer, kind, host, port, outcome, credential });
    }

    /// Checks `host:port` against the policy (`None`: the caller already
    /// decided, as for a credential's own upstream), resolves it and
    /// connects to the first checked address that answers.
    pub async fn open(&self, host: &Host, port: u16, policy: bool) -> Result<(TcpStream, SocketAddr), Unreachable> {
        let shared = &self.shared;
        let private = if policy { shared.policy.check(host, port).map_err(Unreachable::Refused)?.private } else { false };
        let resolved = shared.resolver.resolve(host, port, private).await.map_err(|e| match e {
            ResolveError::Refused(r) => Unreachable::Refused(r),
            ResolveError::Failed(f) => Unreachable::Failed(f),
        })?;
        if resolved.addrs.iter().any(|a| self.is_self(*a)) {
            return Err(Unreachable::Refused(Refusal::Itself));
        }
        let mut last = String::from("no address");
        for addr in &resolved.addrs {
            match tokio::time::timeout(shared.limits.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    return Ok((s, *addr));
                }
                Ok(Err(e)) => last = format!("connect to {addr}: {e}"),
                Err(_) => last = format!("connect to {addr}: no answer within {:?}", shared.limits.connect_timeout),
            }
        }
        Err(Unreachable::Failed(last))
    }

    /// Whether `addr` is the proxy's own listener (by any loopback or
    /// unspecified spelling).
    pub fn is_self(&self, addr: SocketAddr) -> bool {
        let own = self.shared.own;
        addr == own || (addr.port() == own.port() && (addr.ip().is_loopback() || addr.ip().is_unspecified()))
    }
}

/// A short plain-text answer.
pub fn text(status: StatusCode, msg: &str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(format!("nono proxy: {msg}\n"))).map_err(|never| match never {}).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// The answer for a destination that could not be used (and its event).
pub fn unreachable(conn: &Conn, kind: Kind, host: &Host, port: u16, why: Unreachable, cred: Option<String>) -> Response<Body> {
    match why {
        Unreachable::Refused(r) => {
            let msg = format!("{host}:{port} refused: {r}");
            conn.report(kind, host.to_string(), port, Outcome::Refused(r), cred);
            text(StatusCode::FORBIDDEN, &msg)
        }
        Unreachable::Failed(f) => {
            let msg = format!("{host}:{port}: {f}");
            conn.report(kind, host.to_string(), port, Outcome::Failed(f), cred);
            text(StatusCode::BAD_GATEWAY, &msg)
        }
    }
}

/// Accepts until `stop` turns true.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: wait for connections to close
                // rather than spin.
                log::warn!("nono proxy: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        if let Ok(permit) = Arc::clone(&shared.conns).try_acquire_owned() {
            let conn = Conn { shared: Arc::clone(&shared), peer, clock: Clock::new(), permit: Arc::new(permit) };
            tokio::spawn(connection(stream, conn));
        } else {
            (shared.sink)(ProxyEvent {
                time: SystemTime::now(),
                peer,
                kind: Kind::Connect,
                host: String::new(),
                port: 0,
                outcome: Outcome::Refused(Refusal::ConnectionLimit(shared.limits.max_connections)),
                credential: None,
            });
            tokio::spawn(reject(stream));
        }
    }
}

/// Answers a connection over the limit with 503 and closes it.
async fn reject(mut stream: TcpStream) {
    let msg = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), stream.write_all(msg)).await;
}

async fn connection(stream: TcpStream, conn: Conn) {
    let limits: &Limits = &conn.shared.limits;
    let idle_limit = limits.idle_timeout;
    let clock = conn.clock.clone();
    let io = TokioIo::new(Activity::new(stream, clock.clone()));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_headers(limits.max_headers)
        .keep_alive(true);
    let c = conn.clone();
    let svc = service_fn(move |req| {
        let c = c.clone();
        async move { Ok::<_, Infallible>(dispatch(req, c).await) }
    });
    let served = builder.serve_connection(io, svc).with_upgrades();
    tokio::select! {
        r = served => if let Err(e) = r { log::debug!("nono proxy: connection from {}: {e}", conn.peer) },
        () = idle(clock, idle_limit) => log::debug!("nono proxy: connection from {} idle, closed", conn.peer),
    }
}

async fn dispatch(req: Request<Incoming>, conn: Conn) -> Response<Body> {
    if req.method() == Method::CONNECT {
        return super::tunnel::connect(req, conn).await;
    }
    match req.uri().authority() {
        // A base URL that also went through HTTP_PROXY names the proxy
        // itself: treat it like a direct request.
        Some(a) if !names_self(&conn, a.as_str()) => super::forward::forward(req, conn).await,
        _ => super::reverse::reverse(req, conn).await,
    }
}

fn names_self(conn: &Conn, authority: &str) -> bool {
    match super::policy::split_authority(authority, Some(80)) {
        Ok((Host::Ip(ip), port)) => conn.is_self(SocketAddr::new(ip, port)),
        Ok((Host::Name(n), port)) => n == "localhost" && port == conn.shared.own.port(),
        Err(_) => false,
    }
}
