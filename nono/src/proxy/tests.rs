//! Loopback tests with real sockets and real TLS: a proxy on 127.0.0.1,
//! fake upstreams under a per-test CA (`tests/support/fake_api.rs`),
//! names pointed at them with overrides, as `--resolve` does.

#[path = "../../../tests/support/fake_api.rs"]
mod fake_api;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::*;
use fake_api::{Pki, Upstream, connect, http_request, https_request, request};

/// A proxy and the events it reported.
struct Harness {
    proxy: ProxyHandle,
    events: Arc<Mutex<Vec<ProxyEvent>>>,
}

impl Harness {
    fn start(config: ProxyConfig) -> Harness {
        let events: Arc<Mutex<Vec<ProxyEvent>>> = Arc::default();
        let e = Arc::clone(&events);
        let sink: Sink = Arc::new(move |ev| e.lock().expect("lock").push(ev));
        let proxy = start(config, sink, None).expect("proxy starts");
        Harness { proxy, events }
    }

    fn addr(&self) -> SocketAddr {
        self.proxy.addr()
    }

    /// The events so far, as `(host, outcome)`.
    fn events(&self) -> Vec<ProxyEvent> {
        self.events.lock().expect("lock").clone()
    }

    fn last(&self) -> ProxyEvent {
        // The event is sent before the answer, so it is there once the
        // client has read the answer.
        self.events().last().cloned().expect("an event")
    }
}

fn rules(list: &[&str]) -> Vec<Rule> {
    list.iter().map(|r| Rule::parse(r).expect("rule")).collect()
}

fn pin(spec: &str) -> Override {
    Override::parse(spec).expect("override")
}

fn tmp_ca(pki: &Pki) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("ca.pem");
    pki.write_ca(&p);
    (dir, p)
}

#[tokio::test]
async fn connect_reaches_allowed_names_only() {
    let pki = Pki::new(&["api.example.com", "other.example.com"]);
    let up = Upstream::start(Some(&pki));
    let to = up.addr;
    let h = Harness::start(ProxyConfig {
        allow: rules(&["api.example.com", "*.cdn.example.com"]),
        overrides: vec![
            pin(&format!("api.example.com={}", to.ip())),
            pin(&format!("other.example.com={}", to.ip())),
            pin(&format!("x.cdn.example.com={}", to.ip())),
        ],
        ..ProxyConfig::default()
    });
    // Allowed: a tunnel, TLS end to end against the test CA.
    // A rule without a port allows 80 and 443 only.
    let (code, _) = connect(h.addr(), &format!("api.example.com:{}", to.port())).await;
    assert_eq!(code, 403, "port {} is not a default port", to.port());
    assert_eq!(h.last().outcome, Outcome::Refused(Refusal::Port(to.port())));

    let h = Harness::start(ProxyConfig {
        allow: rules(&[&format!("api.example.com:{}", to.port()), &format!("*.cdn.example.com:{}", to.port())]),
        overrides: vec![pin(&format!("api.example.com={}", to.ip())), pin(&format!("x.cdn.example.com={}", to.ip()))],
        ..ProxyConfig::default()
    });
    let (code, s) = connect(h.addr(), &format!("API.Example.com.:{}", to.port())).await;
    assert_eq!(code, 200);
    let ev = h.last();
    assert_eq!((ev.kind, ev.host.as_str()), (Kind::Connect, "api.example.com"));
    assert_eq!(ev.outcome, Outcome::Allowed(to));
    let (status, body) =
        https_request(s, Arc::clone(&pki.client), "api.example.com", request("GET", "/hello", "api.example.com", &[], ""))
            .await
            .expect("request through the tunnel");
    assert_eq!((status, body.as_str()), (200, "ok"));
    // A wildcard covers a subdomain.
    let (code, _) = connect(h.addr(), &format!("x.cdn.example.com:{}", to.port())).await;
    assert_eq!(code, 200);

    // Refused: another name, an IP literal, localhost, a bad name.
    for (target, why) in [
        (format!("other.example.com:{}", to.port()), Refusal::NotAllowed),
        (format!("cdn.example.com:{}", to.port()), Refusal::NotAllowed),
        (format!("{to}"), Refusal::IpLiteral),
        (format!("[::1]:{}", to.port()), Refusal::IpLiteral),
        (format!("localhost:{}", to.port()), Refusal::Localhost),
    ] {
        let (code, _) = connect(h.addr(), &target).await;
        assert_eq!(code, 403, "{target}");
        let ev = h.last();
        assert_eq!(ev.outcome, Outcome::Refused(why), "{target}");
        assert!(ev.refused());
    }
    for target in ["2130706433:443", "ex%61mple.com:443", "example.com"] {
        let (code, _) = connect(h.addr(), target).await;
        assert!(code == 400 || code == 403, "{target}: {code}");
        assert!(h.last().refused(), "{target}");
    }
    // Every decision was reported, with its name.
    let events = h.events();
    assert!(events.iter().all(|e| e.kind == Kind::Connect));
    assert_eq!(events.iter().filter(|e| !e.refused()).count(), 2);
}

#[tokio::test]
async fn names_that_resolve_to_internal_addresses_are_refused_unless_marked() {
    let up = Upstream::start(None);
    let port = up.addr.port();
    // A stand-in resolver answering loopback for these names (checked,
    // unlike an operator's pin).
    let answer = |name: &str| Override { checked: true, ..pin(&format!("{name}=127.0.0.1")) };
    let h = Harness::start(ProxyConfig {
        allow: rules(&[&format!("rebind.example.com:{port}"), &format!("localhost:{port}")]),
        overrides: vec![answer("rebind.example.com")],
        ..ProxyConfig::default()
    });
    let (code, _) = connect(h.addr(), &format!("rebind.example.com:{port}")).await;
    assert_eq!(code, 403);
    assert!(matches!(h.last().outcome, Outcome::Refused(Refusal::PrivateAddress(ip)) if ip.is_loopback()));
    // `localhost` listed explicitly may be reached (the system resolver answers loopback).
    let (code, _) = connect(h.addr(), &format!("localhost:{port}")).await;
    assert_eq!(code, 200, "{:?}", h.last());
    // The proxy itself is never a destination, even when allowed.
    let every_port = Rule {
        pattern: policy::Pattern::Ip("127.0.0.1".parse().expect("ip")),
        ports: Some((1..=u16::MAX).collect()),
        private: true,
    };
    let h2 = Harness::start(ProxyConfig { allow: vec![every_port], ..ProxyConfig::default() });
    let (code, _) = connect(h2.addr(), &format!("127.0.0.1:{}", h2.addr().port())).await;
    assert_eq!(code, 403);
    assert_eq!(h2.last().outcome, Outcome::Refused(Refusal::Itself));
    let (code, _) = connect(h2.addr(), &format!("127.0.0.1:{port}")).await;
    assert_eq!(code, 200, "while another loopback port is allowed");
}

#[tokio::test]
async fn plain_http_is_forwarded_and_phantoms_are_not_swapped_there() {
    let pki = Pki::new(&["api.example.com"]);
    let api = Upstream::start(Some(&pki));
    let web = Upstream::start(None);
    let (_dir, ca) = tmp_ca(&pki);
    let h = Harness::start(ProxyConfig {
        allow: rules(&[&format!("web.example.com:{}", web.addr.port())]),
        overrides: vec![pin(&format!("web.example.com={}", web.addr.ip())), pin(&format!("api.example.com={}", api.addr))],
        credentials: vec![CredentialSpec {
            name: "example".into(),
            domain: "api.example.com".into(),
            port: 443,
            header: http::HeaderName::from_static("x-api-key"),
            source: Source::Env { var: "K".into(), value: Some(zeroize::Zeroizing::new(b"sk-real-secret".to_vec())) },
        }],
        extra_ca: vec![ca],
        ..ProxyConfig::default()
    });
    let phantom = h.proxy.phantom("example").expect("phantom").to_owned();
    let s = tokio::net::TcpStream::connect(h.addr()).await.expect("connect");
    let url = format!("http://web.example.com:{}/page", web.addr.port());
    let host = format!("web.example.com:{}", web.addr.port());
    let (status, body) =
        http_request(s, request("GET", &url, &host, &[("x-api-key", &phantom), ("proxy-authorization", "x")], ""))
            .await
            .expect("forwarded");
    assert_eq!((status, body.as_str()), (200, "ok"));
    let seen = web.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/page", "origin-form upstream");
    assert_eq!(seen[0].header("x-api-key"), Some(phantom.as_str()), "no swap on plain HTTP");
    assert_eq!(seen[0].header("proxy-authorization"), None, "hop-by-hop header dropped");
    assert_eq!(h.last().kind, Kind::Forward);
    // A refused name is not forwarded.
    let s = tokio::net::TcpStream::connect(h.addr()).await.expect("connect");
    let (status, _) =
        http_request(s, request("GET", "http://evil.example.net/", "evil.example.net", &[], "")).await.expect("answer");
    assert_eq!(status, 403);
    assert_eq!(h.last().outcome, Outcome::Refused(Refusal::NotAllowed));
    assert_eq!(h.last().host, "evil.example.net");
    assert!(api.seen().is_empty(), "the credential's domain saw nothing");
}

#[tokio::test]
async fn the_credential_endpoint_swaps_the_phantom_for_its_own_domain_only() {
    let pki = Pki::new(&["api.example.com"]);
    let api = Upstream::start(Some(&pki));
    let (_dir, ca) = tmp_ca(&pki);
    let cred = |name: &str, header: &'static str, secret: &str| CredentialSpec {
        name: name.into(),
        domain: "api.example.com".into(),
        port: 443,
        header: http::HeaderName::from_static(header),
        source: Source::Env { var: "K".into(), value: Some(zeroize::Zeroizing::new(secret.as_bytes().to_vec())) },
    };
    let h = Harness::start(ProxyConfig {
        // The credential's domain needs no allow rule for its own endpoint,
        // and tunnels to it stay refused.
        overrides: vec![pin(&format!("api.example.com={}", api.addr))],
        credentials: vec![cred("anthropic", "x-api-key", "sk-ant-real"), cred("bearer", "authorization", "sk-bearer-real")],
        extra_ca: vec![ca],
        ..ProxyConfig::default()
    });
    let phantom = h.proxy.phantom("anthropic").expect("phantom").to_owned();
    let bearer = h.proxy.phantom("bearer").expect("phantom").to_owned();
    assert!(phantom.starts_with(credential::PHANTOM_PREFIX));
    let body = r#"{"model":"claude-test","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let s = tokio::net::TcpStream::connect(h.addr()).await.expect("connect");
    let (status, reply) = http_request(
        s,
        request(
            "POST",
            "/v1/messages?beta=true",
            &h.addr().to_string(),
            &[("x-api-key", &phantom), ("content-type", "application/json")],
            body,
        ),
    )
    .await
    .expect("answer");
    assert_eq!(status, 200, "{reply}");
    assert!(reply.contains("event: message_stop"), "the stream came through: {reply}");
    assert!(reply.contains(fake_api::REPLY_TEXT));
    let seen = api.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("x-api-key"), Some("sk-ant-real"), "the real key arrived");
    assert_eq!(seen[0].header("host"), Some("api.example.com"));
    assert_eq!(seen[0].path, "/v1/messages?beta=true");
    let ev = h.last();
    assert_eq!((ev.kind, ev.host.as_str(), ev.credential.as_deref()), (Kind::Credential, "api.example.com", Some("anthropic")));

    // `Authorization: Bearer <phantom>` keeps its scheme.
    let s = tokio::net::TcpStream::connect(h.addr()).await.expect("connect");
    let (status, _) = http_request(s, request("GET", "/models", "x", &[("authorization", &format!("Bearer {bearer}"))], ""))
        .await
        .expect("answer");
    assert_eq!(status, 200);
    assert_eq!(api.seen()[1].header("authorization"), Some("Bearer sk-bearer-real"));

    // No phantom, a wrong one, or one in another credential's header: 401, nothing sent.
    for headers in [
        vec![],
        vec![("x-api-key", "nono-phantom-0000")],
        vec![("x-api-key", bearer.as_str())],
        vec![("authorization", phantom.as_str())],
    ] {
        let s = tokio::net::TcpStream::connect(h.addr()).await.expect("connect");
        let (status, _) = http_request(s, request("GET", "/v1/models", "x", &headers, "")).await.expect("answer");
        assert_eq!(status, 401, "{headers:?}");
        assert_eq!(h.last().outcome, Outcome::Refused(Refusal::BadToken));
    }
    assert_eq!(api.seen().len(), 2, "refused requests never left the proxy");
    // A tunnel to the credential's domain is refused (not allowed), so the
    // phantom cannot be replayed around the endpoint.
    let (code, _) = connect(h.addr(), "api.example.com:443").await;
    assert_eq!(code, 403);
}

#[tokio::test]
async fn credential_upstreams_must_present_a_trusted_certificate() {
    let pki = Pki::new(&["api.example.com"]);
    let impostor = Pki::new(&["api.example.com"]);
    let api = Upstream::start(Some(&impostor));
    let (_dir, ca) = tmp_ca(&pki);
    let h = Harness::start(ProxyConfig {
        overrides: vec![pin(&format!("api.example.com={}", api.addr))],
        credentials: vec![CredentialSpec {
            name: "c".into(),
            domain: "api.example.com".into(),
            port: 443,
            header: http::HeaderName::from_static("x-api-key"),
            source: Source::Env { var: "K".into(), value: Some(zeroize::Zeroizing::new(b"sk-real".to_vec())) },
        }],
        extra_ca: vec![ca],
        ..ProxyConfig::default()
    });
    let phantom = h.proxy.phantom("c").expect("phantom").to_owned();
    let s = tokio::net::TcpStream::connect(h.addr()).await.expect("connect");
    let (status, body) = http_request(s, request("GET", "/", "x", &[("x-api-key", &phantom)], "")).await.expect("answer");
    assert_eq!(status, 502, "{body}");
    assert!(matches!(h.last().outcome, Outcome::Failed(ref f) if f.contains("TLS")), "{:?}", h.last());
    assert!(api.seen().is_empty(), "the impostor got no request, so no key");
}

#[tokio::test]
async fn bodies_stream_through_without_being_buffered() {
    let up = Upstream::start(None);
    let port = up.addr.port();
    let h = Harness::start(ProxyConfig {
        allow: rules(&[&format!("web.example.com:{port}")]),
        overrides: vec![pin(&format!("web.example.com={}", up.addr.ip()))],
        ..ProxyConfig::default()
    });
    // Chunked upload: the first chunk, then wait for the server's answer
    // (which comes after the first chunk only), then the rest.
    let mut s = tokio::net::TcpStream::connect(h.addr()).await.expect("connect");
    let head = format!(
        "POST http://web.example.com:{port}/first HTTP/1.1\r\nhost: web.example.com:{port}\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.expect("head");
    s.write_all(b"5\r\nhello\r\n").await.expect("chunk");
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("first 5") {
        let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf))
            .await
            .expect("answer before the body ended")
            .expect("read");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    // A large upload arrives whole.
    let s = tokio::net::TcpStream::connect(h.addr()).await.expect("connect");
    let big = "x".repeat(8 << 20);
    let (status, body) =
        http_request(s, request("POST", &format!("http://web.example.com:{port}/upload"), "web.example.com", &[], &big))
            .await
            .expect("upload");
    assert_eq!((status, body), (200, (8u64 << 20).to_string()));
}

#[tokio::test]
async fn limits_bound_connections_heads_and_idle_tunnels() {
    let up = Upstream::start(None);
    let port = up.addr.port();
    let limits = Limits {
        max_connections: 2,
        header_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(500),
        max_header_bytes: 16 << 10,
        ..Limits::default()
    };
    let h = Harness::start(ProxyConfig {
        allow: rules(&[&format!("web.example.com:{port}")]),
        overrides: vec![pin(&format!("web.example.com={}", up.addr.ip()))],
        limits,
        ..ProxyConfig::default()
    });
    // A head that never ends is closed.
    let mut slow = tokio::net::TcpStream::connect(h.addr()).await.expect("connect");
    slow.write_all(b"CONNECT web.example.com").await.expect("partial head");
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(20), slow.read(&mut buf)).await.expect("closed by the proxy");
    assert!(matches!(n, Ok(0) | Err(_)) || String::from_utf8_lossy(&buf).contains("408"), "{n:?}");
    drop(slow);
    // An oversized head is refused.
    let mut big = tokio::net::TcpStream::connect(h.addr()).await.expect("connect");
    let head = format!("GET http://web.example.com:{port}/ HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n", "a".repeat(32 << 10));
    let _ = big.write_all(head.as_bytes()).await;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), big.read_to_end(&mut got)).await.expect("answered");
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 431"), "{}", String::from_utf8_lossy(&got));
    drop(big);
    // Two tunnels hold both slots: a third connection gets 503. (The
    // connections above may still hold their slots for a moment after
    // the client side closed: retry until each tunnel opens.)
    let target = format!("web.example.com:{port}");
    let mut tunnels = Vec::new();
    for _ in 0..400 {
        if tunnels.len() == 2 {
            break;
        }
        match connect(h.addr(), &target).await {
            (200, t) => tunnels.push(t),
            (503, _) => tokio::time::sleep(Duration::from_millis(50)).await,
            (code, _) => panic!("CONNECT answered {code}"),
        }
    }
    assert_eq!(tunnels.len(), 2, "two tunnels open");
    let (t2, t1) = (tunnels.pop().expect("t2"), tunnels.pop().expect("t1"));
    let mut third = tokio::net::TcpStream::connect(h.addr()).await.expect("connect");
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), third.read_to_end(&mut got)).await.expect("answered");
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 503"), "{}", String::from_utf8_lossy(&got));
    assert_eq!(h.last().outcome, Outcome::Refused(Refusal::ConnectionLimit(2)));
    // Idle tunnels are closed, which frees the slots.
    for mut t in [t1, t2] {
        let r = tokio::time::timeout(Duration::from_secs(20), t.read(&mut buf)).await.expect("idle tunnel closed");
        assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    }
    let mut freed = false;
    for _ in 0..100 {
        let (code, _) = connect(h.addr(), &format!("web.example.com:{port}")).await;
        if code == 200 {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(freed, "slots are released when tunnels close");
}

#[test]
fn start_fails_closed_on_a_missing_credential() {
    let sink: Sink = Arc::new(|_| {});
    let config = ProxyConfig {
        credentials: vec![CredentialSpec {
            name: "c".into(),
            domain: "api.example.com".into(),
            port: 443,
            header: http::HeaderName::from_static("x-api-key"),
            source: Source::File("/nonexistent/key".into()),
        }],
        ..ProxyConfig::default()
    };
    let e = start(config, sink.clone(), None).err().expect("refused");
    assert!(e.to_string().contains("/nonexistent/key"), "{e}");
    let failing: OnStart = Box::new(|| Err(std::io::Error::from_raw_os_error(libc::EPERM)));
    assert!(matches!(start(ProxyConfig::default(), sink, Some(failing)), Err(ProxyError::Identity(_))));
}

#[test]
fn the_environment_points_every_client_at_the_proxy() {
    let h = Harness::start(ProxyConfig::default());
    let env = h.proxy.proxy_env();
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let url = format!("http://{}", h.addr());
    for k in ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"] {
        assert_eq!(get(k).as_deref(), Some(url.as_str()), "{k}");
    }
    assert!(get("NO_PROXY").is_some_and(|v| v.contains("127.0.0.1")));
    assert_eq!(h.proxy.base_url(), url);
}
