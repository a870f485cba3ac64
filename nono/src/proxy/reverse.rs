//! The credential endpoint: a client given `http://127.0.0.1:PORT` as its
//! base URL (`ANTHROPIC_BASE_URL`) sends its requests here, in clear text
//! on loopback, with the phantom token where the key would be. The
//! request goes on over HTTPS to the credential's own domain, with the
//! phantom replaced by the real secret in that one header.
//!
//! The credential is chosen by the phantom itself (each credential's
//! header is compared, in constant time, with its phantom), so one port
//! serves every credential and the upstream is never the client's
//! choice. A request with no valid phantom is refused (401): the
//! endpoint is reachable by any local process, and the phantom, 256
//! random bits handed only to the sandbox, is what lets one use it.

use http::header::{self, HeaderValue};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use rustls::pki_types::ServerName;

use super::credential::{self, Loaded, Secret};
use super::event::{Kind, Outcome};
use super::forward::{send, strip_hop_by_hop};
use super::limits::Activity;
use super::listener::{Body, Conn, Unreachable, text, unreachable};
use super::policy::{Host, Refusal};

/// The credential whose phantom `req` carries, and the header value with
/// the secret in its place.
fn find<'a>(req: &Request<Incoming>, creds: &'a [Loaded]) -> Option<(&'a Loaded, Secret)> {
    creds.iter().find_map(|c| {
        req.headers()
            .get_all(&c.spec.header)
            .iter()
            .find_map(|v| credential::swap(v.as_bytes(), &c.phantom, &c.secret))
            .map(|real| (c, real))
    })
}

pub async fn reverse(req: Request<Incoming>, conn: Conn) -> Response<Body> {
    let shared = std::sync::Arc::clone(&conn.shared);
    let Some((cred, real)) = find(&req, &shared.credentials) else {
        conn.report(Kind::Credential, String::new(), 0, Outcome::Refused(Refusal::BadToken), None);
        return text(
            StatusCode::UNAUTHORIZED,
            "this is nono's credential endpoint: requests must carry a credential's phantom token in its header",
        );
    };
    let spec = &cred.spec;
    let name = Some(spec.name.clone());
    let host = Host::Name(spec.domain.clone());
    let port = spec.port;
    let (tcp, addr) = match conn.open(&host, port, false).await {
        Ok(x) => x,
        Err(why) => return unreachable(&conn, Kind::Credential, &host, port, why, name),
    };
    let Some(tls) = shared.tls.clone() else {
        return unreachable(&conn, Kind::Credential, &host, port, Unreachable::Failed("no TLS configuration".into()), name);
    };
    let server = match ServerName::try_from(spec.domain.clone()) {
        Ok(s) => s,
        Err(e) => return unreachable(&conn, Kind::Credential, &host, port, Unreachable::Failed(e.to_string()), name),
    };
    let connector = tokio_rustls::TlsConnector::from(tls);
    let tcp = Activity::new(tcp, conn.clock.clone());
    let stream = match tokio::time::timeout(shared.limits.tls_timeout, connector.connect(server, tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return unreachable(&conn, Kind::Credential, &host, port, Unreachable::Failed(format!("TLS: {e}")), name);
        }
        Err(_) => {
            let why = format!("TLS: no handshake within {:?}", shared.limits.tls_timeout);
            return unreachable(&conn, Kind::Credential, &host, port, Unreachable::Failed(why), name);
        }
    };
    conn.report(Kind::Credential, host.to_string(), port, Outcome::Allowed(addr), name);
    let (mut parts, body) = req.into_parts();
    parts.uri = match parts.uri.path_and_query() {
        Some(pq) => pq.as_str().parse().unwrap_or_else(|_| hyper::Uri::from_static("/")),
        None => hyper::Uri::from_static("/"),
    };
    strip_hop_by_hop(&mut parts.headers);
    let Ok(mut value) = HeaderValue::from_bytes(&real) else {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "the credential is not a valid header value");
    };
    drop(real);
    value.set_sensitive(true);
    parts.headers.insert(spec.header.clone(), value);
    let authority = if port == 443 { spec.domain.clone() } else { format!("{}:{port}", spec.domain) };
    if let Ok(v) = HeaderValue::from_str(&authority) {
        parts.headers.insert(header::HOST, v);
    }
    send(Request::from_parts(parts, body), stream, &spec.domain, port).await
}
