//! Benchmark for `cargo xtask bench` (section 10): HTTPS requests through
//! nono's proxy against the same requests sent directly, both on
//! loopback to a fake upstream under a test CA, interleaved in rounds so
//! both modes see the same machine. Prints a Markdown table.
//!
//! Modes, each `N` requests (default 1,000):
//! - a new connection per request (TCP, TLS handshake, one GET), direct
//!   vs through a CONNECT tunnel: latency (median, p99) and throughput
//!   with 8 clients at once;
//! - one kept-alive connection for all requests, direct vs one tunnel;
//! - the credential endpoint: plain HTTP to the proxy, which injects the
//!   key and opens HTTPS upstream, vs HTTPS directly with the key.
//!
//! Usage: `bench_proxy [N]`.

#[path = "../../tests/support/fake_api.rs"]
mod fake_api;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_api::{Pki, Upstream, connect, https_request, request};
use nono::proxy::{self, CredentialSpec, Override, ProxyConfig, Rule, Source};

const CLIENTS: usize = 8;
const ROUNDS: usize = 10;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Direct,
    Proxy,
}

struct Ctx {
    pki: Pki,
    up: Upstream,
    proxy: proxy::ProxyHandle,
    phantom: String,
}

/// One request on a new connection; its latency.
async fn fresh(ctx: &Ctx, mode: Mode) -> Duration {
    let t = Instant::now();
    let stream = match mode {
        Mode::Direct => tokio::net::TcpStream::connect(ctx.up.addr).await.expect("connect"),
        Mode::Proxy => {
            let (code, s) = connect(ctx.proxy.addr(), &format!("api.example.com:{}", ctx.up.addr.port())).await;
            assert_eq!(code, 200, "CONNECT refused");
            s
        }
    };
    let _ = stream.set_nodelay(true);
    let (status, _) =
        https_request(stream, Arc::clone(&ctx.pki.client), "api.example.com", request("GET", "/", "api.example.com", &[], ""))
            .await
            .expect("request");
    assert_eq!(status, 200);
    t.elapsed()
}

/// `n` requests on new connections, `clients` at a time: latencies and wall time.
async fn fresh_batch(ctx: &Arc<Ctx>, mode: Mode, n: usize, clients: usize) -> (Vec<Duration>, Duration) {
    let t = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let ctx = Arc::clone(ctx);
        let share = n / clients + usize::from(c < n % clients);
        tasks.push(tokio::spawn(async move {
            let mut v = Vec::with_capacity(share);
            for _ in 0..share {
                v.push(fresh(&ctx, mode).await);
            }
            v
        }));
    }
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await.expect("client"));
    }
    (all, t.elapsed())
}

/// `n` requests on one kept-alive connection: wall time.
async fn kept_alive(ctx: &Ctx, mode: Mode, n: usize) -> Duration {
    use http_body_util::BodyExt as _;
    let t = Instant::now();
    let stream = match mode {
        Mode::Direct => tokio::net::TcpStream::connect(ctx.up.addr).await.expect("connect"),
        Mode::Proxy => connect(ctx.proxy.addr(), &format!("api.example.com:{}", ctx.up.addr.port())).await.1,
    };
    let name = rustls::pki_types::ServerName::try_from("api.example.com").expect("name");
    let tls = tokio_rustls::TlsConnector::from(Arc::clone(&ctx.pki.client)).connect(name, stream).await.expect("TLS");
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await.expect("handshake");
    tokio::spawn(conn);
    for _ in 0..n {
        send.ready().await.expect("connection ready");
        let resp = send.send_request(request("GET", "/", "api.example.com", &[], "")).await.expect("request");
        let _ = resp.into_body().collect().await.expect("body");
    }
    t.elapsed()
}

/// `n` Messages API calls: direct HTTPS with the key, or plain HTTP to
/// the credential endpoint with the phantom (kept alive on the client
/// side; the proxy opens a TLS connection upstream per request).
async fn credential(ctx: &Ctx, mode: Mode, n: usize) -> Vec<Duration> {
    use http_body_util::BodyExt as _;
    let body = r#"{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#;
    let mut lat = Vec::with_capacity(n);
    match mode {
        Mode::Direct => {
            for _ in 0..n {
                let t = Instant::now();
                let s = tokio::net::TcpStream::connect(ctx.up.addr).await.expect("connect");
                let _ = s.set_nodelay(true);
                let r = request("POST", "/v1/messages", "api.example.com", &[("x-api-key", "sk-real")], body);
                let (status, _) = https_request(s, Arc::clone(&ctx.pki.client), "api.example.com", r).await.expect("request");
                assert_eq!(status, 200);
                lat.push(t.elapsed());
            }
        }
        Mode::Proxy => {
            let s = tokio::net::TcpStream::connect(ctx.proxy.addr()).await.expect("connect");
            let _ = s.set_nodelay(true);
            let (mut send, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(s)).await.expect("handshake");
            tokio::spawn(conn);
            let host = ctx.proxy.addr().to_string();
            for _ in 0..n {
                let t = Instant::now();
                let r = request("POST", "/v1/messages", &host, &[("x-api-key", &ctx.phantom)], body);
                send.ready().await.expect("connection ready");
                let resp = send.send_request(r).await.expect("request");
                assert_eq!(resp.status(), 200);
                let _ = resp.into_body().collect().await.expect("body");
                lat.push(t.elapsed());
            }
        }
    }
    lat
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    #[expect(clippy::cast_precision_loss, clippy::cast_sign_loss, reason = "an index into a short sorted list")]
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn ratio(a: Duration, b: Duration) -> String {
    format!("{:.2}x", a.as_secs_f64() / b.as_secs_f64())
}

#[expect(clippy::cast_precision_loss, reason = "rates for people to read")]
fn rate(n: usize, d: Duration) -> String {
    format!("{:.0}/s", n as f64 / d.as_secs_f64())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args().nth(1).map_or(Ok(1000), |s| s.parse())?;
    let per_round = (n / ROUNDS).max(1);
    let pki = Pki::new(&["api.example.com"]);
    let up = Upstream::start(Some(&pki));
    let dir = tempfile::tempdir()?;
    let ca = dir.path().join("ca.pem");
    pki.write_ca(&ca);
    let port = up.addr.port();
    let sink: proxy::Sink = Arc::new(|_| {});
    let handle = proxy::start(
        ProxyConfig {
            allow: vec![Rule::parse(&format!("api.example.com:{port}"))?],
            overrides: vec![Override::parse(&format!("api.example.com={}", up.addr))?],
            credentials: vec![CredentialSpec {
                name: "bench".into(),
                domain: "api.example.com".into(),
                port: 443,
                header: http::HeaderName::from_static("x-api-key"),
                source: Source::Env { var: "K".into(), value: Some(zeroize::Zeroizing::new(b"sk-real".to_vec())) },
            }],
            extra_ca: vec![ca],
            ..ProxyConfig::default()
        },
        sink,
        None,
    )?;
    let phantom = handle.phantom("bench").ok_or("no phantom")?.to_owned();
    let ctx = Arc::new(Ctx { pki, up, proxy: handle, phantom });
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        // Warm both paths (TLS session setup, page faults).
        let _ = fresh_batch(&ctx, Mode::Direct, 20, 1).await;
        let _ = fresh_batch(&ctx, Mode::Proxy, 20, 1).await;
        let mut serial = [Vec::new(), Vec::new()];
        let mut parallel = [Duration::ZERO; 2];
        let mut kept = [Duration::ZERO; 2];
        let mut cred = [Vec::new(), Vec::new()];
        for _ in 0..ROUNDS {
            for (i, mode) in [Mode::Direct, Mode::Proxy].into_iter().enumerate() {
                serial[i].extend(fresh_batch(&ctx, mode, per_round, 1).await.0);
                parallel[i] += fresh_batch(&ctx, mode, per_round, CLIENTS).await.1;
                kept[i] += kept_alive(&ctx, mode, per_round).await;
                cred[i].extend(credential(&ctx, mode, per_round).await);
            }
        }
        let total = per_round * ROUNDS;
        let (d50, d99) = (pct(&mut serial[0], 0.5), pct(&mut serial[0], 0.99));
        let (p50, p99) = (pct(&mut serial[1], 0.5), pct(&mut serial[1], 0.99));
        let (c50, c99) = (pct(&mut cred[0], 0.5), pct(&mut cred[0], 0.99));
        let (r50, r99) = (pct(&mut cred[1], 0.5), pct(&mut cred[1], 0.99));
        println!("| measure ({total} HTTPS requests each, loopback) | direct | through the proxy | ratio |");
        println!("|---|---|---|---|");
        println!("| latency, new connection per request: median | {d50:.2?} | {p50:.2?} | {} |", ratio(p50, d50));
        println!("| latency, new connection per request: p99 | {d99:.2?} | {p99:.2?} | {} |", ratio(p99, d99));
        println!(
            "| throughput, new connection per request, {CLIENTS} clients | {} | {} | {} |",
            rate(total, parallel[0]),
            rate(total, parallel[1]),
            ratio(parallel[0], parallel[1])
        );
        println!(
            "| throughput, one kept-alive connection (a tunnel) | {} | {} | {} |",
            rate(total, kept[0]),
            rate(total, kept[1]),
            ratio(kept[0], kept[1])
        );
        println!(
            "| credential endpoint (phantom swapped, new TLS upstream per request) vs direct HTTPS with the key: median | {c50:.2?} | {r50:.2?} | {} |",
            ratio(r50, c50)
        );
        println!("| credential endpoint: p99 | {c99:.2?} | {r99:.2?} | {} |", ratio(r99, c99));
        println!();
        println!(
            "Latency ratios are proxy / direct (above 1: slower through the proxy); throughput ratios are proxy rate / direct rate (below 1: fewer requests per second)."
        );
    });
    Ok(())
}
