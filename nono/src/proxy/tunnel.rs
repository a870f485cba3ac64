//! `CONNECT host:port`: the destination is checked and connected before
//! the client hears `200`, then bytes are relayed both ways until either
//! side closes or nothing moves for the idle limit. The proxy never sees
//! inside the tunnel (TLS stays end to end), so a phantom token sent
//! through one reaches the upstream unchanged, where it is worthless.

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::event::{Kind, Outcome};
use super::limits::{Activity, idle};
use super::listener::{Body, Conn, text, unreachable};
use super::policy::{self, Refusal};

pub async fn connect(req: Request<Incoming>, conn: Conn) -> Response<Body> {
    let Some(authority) = req.uri().authority().map(|a| a.as_str().to_owned()) else {
        let why = "CONNECT without host:port".to_owned();
        conn.report(Kind::Connect, String::new(), 0, Outcome::Refused(Refusal::BadRequest(why.clone())), None);
        return text(StatusCode::BAD_REQUEST, &why);
    };
    let (host, port) = match policy::split_authority(&authority, None) {
        Ok(hp) => hp,
        Err(e) => {
            conn.report(Kind::Connect, authority, 0, Outcome::Refused(Refusal::BadName(e.to_string())), None);
            return text(StatusCode::BAD_REQUEST, &e.to_string());
        }
    };
    let (upstream, addr) = match conn.open(&host, port, true).await {
        Ok(x) => x,
        Err(why) => return unreachable(&conn, Kind::Connect, &host, port, why, None),
    };
    conn.report(Kind::Connect, host.to_string(), port, Outcome::Allowed(addr), None);
    let clock = conn.clock.clone();
    let limit = conn.shared.limits.idle_timeout;
    let permit = conn.permit.clone();
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(e) => {
                log::debug!("nono proxy: CONNECT {host}:{port}: upgrade failed: {e}");
                return;
            }
        };
        let mut client = TokioIo::new(upgraded);
        let mut upstream = Activity::new(upstream, clock.clone());
        tokio::select! {
            r = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                if let Err(e) = r { log::debug!("nono proxy: tunnel to {host}:{port}: {e}") }
            }
            () = idle(clock, limit) => log::debug!("nono proxy: tunnel to {host}:{port} idle, closed"),
        }
        drop(permit);
    });
    Response::new(Body::default())
}
