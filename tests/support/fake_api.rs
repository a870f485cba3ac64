//! A test PKI and fake upstreams on loopback, for the proxy's unit tests,
//! its bench and the end-to-end tests (included with `#[path]`, since
//! each is its own crate): a CA made per test with rcgen, a server
//! certificate for the names given, and an HTTPS or plain HTTP server on
//! its own thread that answers like a tiny Anthropic Messages API and
//! records what it saw.
//!
//! Routes: `POST /v1/messages` streams a canned reply as server-sent
//! events (or one JSON message without `"stream": true`); `POST /upload`
//! counts the body's bytes as they arrive; `GET /first` answers as soon as
//! the first body chunk is in; anything else answers `ok`.

#![allow(dead_code, reason = "each includer uses a different part")]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

/// A CA and a server certificate signed by it.
pub struct Pki {
    pub ca_pem: String,
    pub server: Arc<rustls::ServerConfig>,
    /// A client that trusts only this CA.
    pub client: Arc<rustls::ClientConfig>,
}

#[expect(deprecated, reason = "the same provider as nono's proxy (see nono::proxy::tls::provider)")]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Pki {
    pub fn new(names: &[&str]) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        ca.distinguished_name.push(DnType::CommonName, "nono test CA");
        let ca_key = KeyPair::generate().expect("ca key");
        let ca_cert = ca.self_signed(&ca_key).expect("ca cert");
        let issuer = Issuer::new(ca, ca_key);
        let leaf_key = KeyPair::generate().expect("leaf key");
        let mut leaf = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).expect("leaf");
        leaf.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or("test"));
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).expect("leaf cert");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let mut server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![leaf_cert.der().clone(), ca_cert.der().clone()], key)
            .expect("server config");
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca_cert.der().clone()).expect("root");
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Pki { ca_pem: ca_cert.pem(), server: Arc::new(server), client: Arc::new(client) }
    }

    /// Writes the CA certificate to `path` (for `--upstream-ca`, curl's `--cacert`).
    pub fn write_ca(&self, path: &std::path::Path) {
        std::fs::write(path, &self.ca_pem).expect("write CA");
    }
}

/// What the server saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A fake upstream running on its own thread until dropped.
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Upstream {
    /// An HTTPS server with `pki`'s certificate, or plain HTTP without.
    pub fn start(pki: Option<&Pki>) -> Upstream {
        let tls = pki.map(|p| tokio_rustls::TlsAcceptor::from(Arc::clone(&p.server)));
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let seen2 = Arc::clone(&seen);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
                addr_tx.send(l.local_addr().expect("addr")).expect("send addr");
                let accept = async {
                    loop {
                        let Ok((s, _)) = l.accept().await else { continue };
                        let _ = s.set_nodelay(true);
                        let (tls, seen) = (tls.clone(), Arc::clone(&seen2));
                        tokio::spawn(async move {
                            match tls {
                                Some(acceptor) => {
                                    if let Ok(s) = acceptor.accept(s).await {
                                        serve(TokioIo::new(s), seen).await;
                                    }
                                }
                                None => serve(TokioIo::new(s), seen).await,
                            }
                        });
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = stop_rx => {}
                }
            });
            rt.shutdown_timeout(std::time::Duration::from_millis(100));
        });
        let addr = addr_rx.recv().expect("server address");
        Upstream { addr, seen, stop: Some(stop_tx), thread: Some(thread) }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn full(s: impl Into<Bytes>) -> Body {
    Full::new(s.into()).boxed()
}

async fn serve<I>(io: I, seen: Arc<Mutex<Vec<Seen>>>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let seen = Arc::clone(&seen);
        async move { Ok::<_, Infallible>(answer(req, seen).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await;
}

/// The canned reply of the fake Messages API, as Anthropic streams it.
pub const REPLY_TEXT: &str = "Hello from the fake Messages API";

fn sse(model: &str) -> Vec<String> {
    let ev = |name: &str, data: serde_json::Value| format!("event: {name}\ndata: {data}\n\n");
    vec![
        ev(
            "message_start",
            serde_json::json!({"type": "message_start", "message": {"id": "msg_fake", "type": "message", "role": "assistant",
                "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 5, "output_tokens": 1}}}),
        ),
        ev(
            "content_block_start",
            serde_json::json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        ev("ping", serde_json::json!({"type": "ping"})),
        ev(
            "content_block_delta",
            serde_json::json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": REPLY_TEXT}}),
        ),
        ev("content_block_stop", serde_json::json!({"type": "content_block_stop", "index": 0})),
        ev(
            "message_delta",
            serde_json::json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 8}}),
        ),
        ev("message_stop", serde_json::json!({"type": "message_stop"})),
    ]
}

async fn answer(req: Request<Incoming>, seen: Arc<Mutex<Vec<Seen>>>) -> Response<Body> {
    let (parts, mut body) = req.into_parts();
    let record = Seen {
        method: parts.method.to_string(),
        path: parts.uri.to_string(),
        headers: parts.headers.iter().map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect(),
    };
    seen.lock().expect("lock").push(record);
    let path = parts.uri.path().to_owned();
    match (parts.method.as_str(), path.as_str()) {
        ("POST", "/v1/messages") => {
            let bytes = body.collect().await.map(http_body_util::Collected::to_bytes).unwrap_or_default();
            let req: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let model = req.get("model").and_then(|m| m.as_str()).unwrap_or("claude-fake").to_owned();
            if req.get("stream").and_then(serde_json::Value::as_bool) == Some(true) {
                let frames = Frames(sse(&model).into_iter().map(Bytes::from).collect());
                let mut r = Response::new(frames.boxed());
                r.headers_mut().insert("content-type", "text/event-stream".parse().expect("header"));
                r
            } else {
                let msg = serde_json::json!({"id": "msg_fake", "type": "message", "role": "assistant", "model": model,
                    "content": [{"type": "text", "text": REPLY_TEXT}], "stop_reason": "end_turn", "stop_sequence": null,
                    "usage": {"input_tokens": 5, "output_tokens": 8}});
                let mut r = Response::new(full(msg.to_string()));
                r.headers_mut().insert("content-type", "application/json".parse().expect("header"));
                r
            }
        }
        ("POST", "/upload") => {
            let mut n: u64 = 0;
            while let Some(Ok(f)) = body.frame().await {
                if let Some(d) = f.data_ref() {
                    n += d.len() as u64;
                }
            }
            Response::new(full(n.to_string()))
        }
        ("POST", "/first") => {
            // Answers after the first chunk, without reading the rest: a
            // proxy that buffered whole bodies would never let this
            // answer through before the client finished sending.
            let first = body.frame().await.and_then(Result::ok).and_then(|f| f.into_data().ok()).unwrap_or_default();
            Response::new(full(format!("first {}", first.len())))
        }
        _ => Response::new(full("ok")),
    }
}

/// A body sent as separate frames (one per server-sent event).
struct Frames(std::collections::VecDeque<Bytes>);

impl hyper::body::Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

/// Opens a CONNECT tunnel through `proxy` to `target` (`host:port`); the
/// status line's code and the stream (for 200).
pub async fn connect(proxy: SocketAddr, target: &str) -> (u16, tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(proxy).await.expect("connect to proxy");
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\nhost: {target}\r\n\r\n").as_bytes()).await.expect("write");
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).await.expect("read") == 0 {
            break;
        }
        head.push(b[0]);
    }
    let text = String::from_utf8_lossy(&head);
    let code = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, s)
}

/// One HTTPS request over `stream` (already connected, e.g. a tunnel) to
/// `host`, trusting `client`: status and body.
pub async fn https_request<S>(
    stream: S,
    client: Arc<rustls::ClientConfig>,
    host: &str,
    req: Request<Full<Bytes>>,
) -> Result<(u16, String), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let name = ServerName::try_from(host.to_owned()).map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(client).connect(name, stream).await.map_err(|e| format!("TLS: {e}"))?;
    http_request(tls, req).await
}

/// One HTTP/1.1 request over `stream`: status and body.
pub async fn http_request<S>(stream: S, req: Request<Full<Bytes>>) -> Result<(u16, String), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// A request with `host` set.
pub fn request(method: &str, uri: &str, host: &str, headers: &[(&str, &str)], body: &str) -> Request<Full<Bytes>> {
    let mut b = Request::builder().method(method).uri(uri).header("host", host);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(Full::new(Bytes::from(body.to_owned()))).expect("request")
}

/// Unused marker so `CertificateDer` stays imported for includers that
/// build their own roots.
pub type Der = CertificateDer<'static>;
