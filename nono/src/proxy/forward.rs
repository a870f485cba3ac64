//! Plain HTTP through `HTTP_PROXY`: `GET http://host[:port]/path`. Each
//! request is checked on its own (one client connection may name several
//! hosts) and sent over a fresh upstream connection, its body streamed.
//! Phantom tokens are never swapped here: a real secret does not travel
//! in clear text, and only the credential endpoint injects.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::event::{Kind, Outcome};
use super::limits::Activity;
use super::listener::{Body, Conn, text, unreachable};
use super::policy::{self, Refusal};

pub async fn forward(req: Request<Incoming>, conn: Conn) -> Response<Body> {
    let uri = req.uri().clone();
    let Some(authority) = uri.authority().map(|a| a.as_str().to_owned()) else {
        return text(StatusCode::BAD_REQUEST, "no host in the URL");
    };
    if uri.scheme_str() != Some("http") {
        let why = format!("{} URLs go through CONNECT, not a forwarded request", uri.scheme_str().unwrap_or("?"));
        conn.report(Kind::Forward, authority, 0, Outcome::Refused(Refusal::BadRequest(why.clone())), None);
        return text(StatusCode::BAD_REQUEST, &why);
    }
    let (host, port) = match policy::split_authority(&authority, Some(80)) {
        Ok(hp) => hp,
        Err(e) => {
            conn.report(Kind::Forward, authority, 0, Outcome::Refused(Refusal::BadName(e.to_string())), None);
            return text(StatusCode::BAD_REQUEST, &e.to_string());
        }
    };
    let (stream, addr) = match conn.open(&host, port, true).await {
        Ok(x) => x,
        Err(why) => return unreachable(&conn, Kind::Forward, &host, port, why, None),
    };
    conn.report(Kind::Forward, host.to_string(), port, Outcome::Allowed(addr), None);
    let (mut parts, body) = req.into_parts();
    parts.uri = match uri.path_and_query() {
        Some(pq) => pq.as_str().parse().unwrap_or_else(|_| hyper::Uri::from_static("/")),
        None => hyper::Uri::from_static("/"),
    };
    strip_hop_by_hop(&mut parts.headers);
    if let Ok(v) = HeaderValue::from_str(&authority) {
        parts.headers.insert(header::HOST, v);
    }
    send(Request::from_parts(parts, body), Activity::new(stream, conn.clock.clone()), &host.to_string(), port).await
}

/// Sends `req` over `io` (HTTP/1.1) and streams the answer back.
pub async fn send<S>(req: Request<Incoming>, io: S, host: &str, port: u16) -> Response<Body>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = match hyper::client::conn::http1::handshake(TokioIo::new(io)).await {
        Ok(x) => x,
        Err(e) => return text(StatusCode::BAD_GATEWAY, &format!("{host}:{port}: {e}")),
    };
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            log::debug!("nono proxy: upstream connection: {e}");
        }
    });
    match sender.send_request(req).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, body.boxed())
        }
        Err(e) => text(StatusCode::BAD_GATEWAY, &format!("{host}:{port}: {e}")),
    }
}

/// Removes the headers that describe one hop, not the message: those
/// RFC 9110 lists and those the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in [
        header::CONNECTION,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(n);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}
