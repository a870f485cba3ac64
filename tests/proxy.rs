//! Network by name (issue 23), end to end, as an ordinary user in a
//! lived-in home: `nono run` with `network.allow_domains` confines the
//! command to nono's proxy, which lets through only the allowed names;
//! credentials reach their upstream while the sandbox holds a phantom.
//!
//! A tool that ignores the proxy is learned by name from the DNS
//! questions it sends (a fake DNS server on 127.0.0.1:53 answers them).
//!
//! There is no outside network here: fake upstreams run on loopback under
//! a CA made per test (`support/fake_api.rs`), and names reach them
//! through `nono run --resolve HOST=127.0.0.1` (the operator's override,
//! like curl's) and `--upstream-ca`.

mod support;

#[path = "support/fake_api.rs"]
mod fake_api;
#[path = "support/fake_dns.rs"]
mod fake_dns;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use fake_api::{Pki, Upstream};
use support::{Sandbox, TestUser, is_root, output_text, skip};

const PY: &str = "/usr/bin/python3";
const CURL: &str = "/usr/bin/curl";

fn ready(test: &str) -> bool {
    if !is_root() {
        return skip(test, "needs root: a test user, and `sudo nono learn`");
    }
    for tool in [PY, CURL] {
        if !Path::new(tool).exists() {
            return skip(test, &format!("{tool} is missing (cargo xtask setup installs it)"));
        }
    }
    if nono::kernel::seccomp_notify().is_err() {
        return skip(test, "seccomp user notification is unavailable: proxy-only networking cannot be enforced here");
    }
    true
}

fn world(test: &str) -> Option<(Sandbox, TestUser)> {
    if !ready(test) {
        return None;
    }
    let sb = Sandbox::new();
    sb.lived_in_home();
    let user = TestUser::create(test, &sb)?;
    user.chown_tree(sb.root());
    Some((sb, user))
}

fn write(sb: &Sandbox, user: &TestUser, path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
    user.chown_tree(path);
    let _ = sb;
}

/// The client script: curl and python urllib at an allowed name, another
/// name, an IP literal and a direct connect. Prints one marker per case.
fn clients(port: u16) -> String {
    format!(
        r#"set -u
CA=$PWD/ca.pem
curl -sS --max-time 20 --cacert "$CA" https://api.example.com:{port}/curl-allowed && echo; echo "curl-allowed=$?"
curl -sS --max-time 20 --cacert "$CA" https://other.example.com:{port}/curl-other; echo "curl-other=$?"
curl -sS --max-time 20 --cacert "$CA" --noproxy '' https://127.0.0.1:{port}/curl-ip; echo "curl-ip=$?"
curl -sS --max-time 20 --cacert "$CA" --noproxy '*' --resolve api.example.com:{port}:127.0.0.1 https://api.example.com:{port}/curl-direct; echo "curl-direct=$?"
{PY} - <<'EOF'
import ssl, urllib.request, os
ctx = ssl.create_default_context(cafile=os.environ["PWD"] + "/ca.pem")
for name in ["api.example.com", "other.example.com"]:
    try:
        body = urllib.request.urlopen(f"https://{{name}}:{port}/py", context=ctx, timeout=20).read().decode()
        print(f"py-{{name}}=ok:{{body}}")
    except Exception as e:
        print(f"py-{{name}}=refused:{{e}}")
EOF
{PY} -c 'import os, socket, urllib.parse
port = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"]).port
s = socket.socket()
try:
    s.connect(("127.0.0.2", port)); print("same-port=connected")
except OSError as e:
    print(f"same-port={{e.errno}}")'
"#
    )
}

fn marker<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines().find_map(|l| l.strip_prefix(&format!("{key}="))).unwrap_or_else(|| panic!("no {key}= in:\n{out}"))
}

#[test]
fn curl_and_python_reach_the_allowed_name_only_and_each_refusal_is_audited() {
    let test = "curl_and_python_reach_the_allowed_name_only_and_each_refusal_is_audited";
    let Some((sb, user)) = world(test) else { return };
    let pki = Pki::new(&["api.example.com", "other.example.com"]);
    let up = Upstream::start(Some(&pki));
    let port = up.addr.port();
    let ca = sb.work().join("ca.pem");
    pki.write_ca(&ca);
    user.chown_tree(&ca);
    // `sudo nono learn`: curl and python reach the API through the
    // recording proxy (whose --resolve points the name at the upstream).
    let learn_script = sb.work().join("learn.sh");
    write(
        &sb,
        &user,
        &learn_script,
        &format!(
            r#"curl -sS --cacert "$PWD/ca.pem" https://api.example.com:{port}/learn
{PY} -c 'import ssl, urllib.request, os
ctx = ssl.create_default_context(cafile=os.environ["PWD"] + "/ca.pem")
print(urllib.request.urlopen("https://api.example.com:{port}/learn", context=ctx).read())'
"#
        ),
    );
    let profile = sb.root().join("net.json");
    let out = user
        .sudo_nono(&sb)
        .args(["learn", "--no-progress", "--force", "--output"])
        .arg(&profile)
        .arg("--resolve=api.example.com=127.0.0.1")
        .args(["--", "/bin/sh"])
        .arg(&learn_script)
        .output()
        .expect("nono learn");
    assert!(out.status.success(), "learn: {}", output_text(&out));
    user.chown_tree(&profile);
    let learned: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&profile).expect("profile")).expect("json");
    let domains = &learned["network"]["allow_domains"];
    assert_eq!(domains.as_array().map(Vec::len), Some(1), "one name learned: {learned:#}");
    assert_eq!(domains[0]["domain"], format!("api.example.com:{port}"), "{learned:#}");
    assert_eq!(domains[0]["count"], 2, "curl and python: {learned:#}");
    assert!(domains[0]["reason"].as_str().is_some_and(|r| r.contains("CONNECT")), "{learned:#}");
    let script = sb.work().join("clients.sh");
    write(&sb, &user, &script, &clients(port));
    let resolve = |name: &str| format!("--resolve={name}=127.0.0.1");
    // As the user, no root anywhere.
    let out = user
        .nono(&sb)
        .args(["run", "--profile"])
        .arg(&profile)
        .args([resolve("api.example.com"), resolve("other.example.com")])
        .args(["--", "/bin/sh"])
        .arg(&script)
        .output()
        .expect("nono run");
    let text = output_text(&out);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(marker(&stdout, "curl-allowed"), "0", "{text}");
    assert!(stdout.contains("ok\ncurl-allowed=0"), "{text}");
    assert_ne!(marker(&stdout, "curl-other"), "0", "another name: {text}");
    assert_ne!(marker(&stdout, "curl-ip"), "0", "an IP literal: {text}");
    assert_ne!(marker(&stdout, "curl-direct"), "0", "a direct connect: {text}");
    assert_eq!(marker(&stdout, "py-api.example.com"), "ok:ok", "{text}");
    assert!(marker(&stdout, "py-other.example.com").starts_with("refused"), "{text}");
    // Another host on the proxy's port number: Landlock's port rule allows
    // it, the broker's address check does not (EACCES, not ECONNREFUSED).
    assert_eq!(marker(&stdout, "same-port"), "13", "{text}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the proxy refused"), "the run ends with the refusals: {text}");
    assert!(stderr.contains("other.example.com:"), "{text}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{text}");
    // Only the allowed requests reached the upstream.
    let paths: Vec<String> = up.seen().into_iter().map(|s| s.path).filter(|p| !p.starts_with("/learn")).collect();
    assert_eq!(paths, ["/curl-allowed", "/py"], "{text}");

    // The same under `sudo nono run --audit`: every decision is in the store.
    let out = user
        .sudo_nono(&sb)
        .args(["run", "--audit", "--profile"])
        .arg(&profile)
        .args([resolve("api.example.com"), resolve("other.example.com")])
        .args(["--", "/bin/sh"])
        .arg(&script)
        .output()
        .expect("nono run --audit");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(marker(&stdout, "curl-allowed"), "0", "{}", output_text(&out));
    let q = user
        .nono(&sb)
        .args(["audit", "query", "--session", "last", "--domain", "*.example.com", "--format", "json"])
        .output()
        .expect("audit query");
    assert!(q.status.success(), "{}", output_text(&q));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&q.stdout).expect("json rows");
    let of = |domain: &str, result: u8| {
        rows.iter().filter(|r| r["domain"] == domain && r["result"] == result && r["source"] == "connect").count()
    };
    assert_eq!(of("api.example.com", 0), 2, "curl and python let through: {rows:#?}");
    assert_eq!(of("other.example.com", 1), 2, "curl and python refused, by name: {rows:#?}");
    assert!(rows.iter().all(|r| r["domain"] != "127.0.0.1"), "the glob selects names: {rows:#?}");
    let ip = user
        .nono(&sb)
        .args(["audit", "query", "--session", "last", "--domain", "127.0.0.1", "--result", "denied", "--format", "json"])
        .output()
        .expect("audit query");
    let ip_rows: Vec<serde_json::Value> = serde_json::from_slice(&ip.stdout).expect("json rows");
    assert_eq!(ip_rows.len(), 1, "{}", output_text(&ip));
    assert!(ip_rows[0]["reason"].as_str().is_some_and(|r| r.contains("IP address")), "{ip_rows:#?}");
    // The OCSF export carries the names: a Network Activity "Refuse".
    let ocsf = user.nono(&sb).args(["audit", "export", "--format", "ocsf", "--session", "last"]).output().expect("audit export");
    let refused_lines: Vec<serde_json::Value> = String::from_utf8_lossy(&ocsf.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["dst_endpoint"]["hostname"] == "other.example.com")
        .collect();
    assert_eq!(refused_lines.len(), 2, "{}", output_text(&ocsf));
    assert!(refused_lines.iter().all(|v| v["class_uid"] == 4001 && v["activity_name"] == "Refuse"), "{refused_lines:#?}");
    // `audit check` replays the names against another profile.
    let narrower = sb.root().join("narrower.json");
    let mut p: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&profile).expect("profile")).expect("json");
    p["network"]["allow_domains"] = serde_json::json!(["elsewhere.example.com"]);
    std::fs::write(&narrower, serde_json::to_string(&p).expect("json")).expect("write");
    let check =
        user.nono(&sb).args(["audit", "check", "--session", "last", "--profile"]).arg(&narrower).output().expect("audit check");
    let check_text = String::from_utf8_lossy(&check.stdout);
    assert!(check_text.contains(&format!("domain   api.example.com:{port}  x2")), "{}", output_text(&check));
    assert_eq!(check.status.code(), Some(1), "{}", output_text(&check));
    // The direct connect was refused by the broker, and recorded as a denial.
    let denied = user
        .nono(&sb)
        .args(["audit", "query", "--session", "last", "--op", "connect", "--result", "denied"])
        .output()
        .expect("audit query");
    let denied = String::from_utf8_lossy(&denied.stdout);
    assert!(denied.contains(&format!("127.0.0.1:{port}")) || denied.contains(&format!("{port}")), "{denied}");
}

/// The tool of the DNS test: python resolving names itself through glibc
/// (UDP: `connect`, `sendmmsg`/`send`, `recvfrom`) and with its own
/// question over TCP port 53, then connecting directly to the answers.
fn resolving_tool(port: u16, tcp_port: u16) -> String {
    format!(
        r#"{PY} - <<'PYEOF'
import socket, struct
ip = socket.getaddrinfo("dns-only.nono.test", {port}, type=socket.SOCK_STREAM)[0][4][0]
socket.create_connection((ip, {port}), timeout=10).close()
print("udp-connect=" + ip)
socket.getaddrinfo("asked.nono.test", 443, family=socket.AF_INET)
try:
    socket.getaddrinfo("gone.nono.test", 443, family=socket.AF_INET)
    print("gone=resolved")
except socket.gaierror:
    print("gone=nxdomain")
name = b"".join(bytes([len(l)]) + l.encode() for l in "tcp.nono.test".split(".")) + b"\0"
q = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + name + struct.pack(">HH", 1, 1)
t = socket.create_connection(("127.0.0.1", 53), timeout=10)
t.sendall(struct.pack(">H", len(q)) + q)
n = struct.unpack(">H", t.recv(2, socket.MSG_WAITALL))[0]
ip2 = socket.inet_ntoa(t.recv(n, socket.MSG_WAITALL)[-4:])
socket.create_connection((ip2, {tcp_port}), timeout=10).close()
print("tcp-connect=" + ip2)
PYEOF
"#
    )
}

/// `sudo nono ARGS` in a private mount namespace whose `/etc/resolv.conf`
/// is `resolv` (so glibc asks the fake server on 127.0.0.1).
fn sudo_nono_with_resolver(sb: &Sandbox, user: &TestUser, resolv: &Path, args: &[&str]) -> std::process::Output {
    let inner = user.sudo_nono(sb);
    let mut c = std::process::Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "--", "sh", "-c", "mount --bind \"$0\" /etc/resolv.conf && exec \"$@\""]);
    c.arg(resolv).arg(inner.get_program()).args(inner.get_args()).args(args);
    c.env_clear();
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    c.current_dir(inner.get_current_dir().expect("cwd")).stdin(std::process::Stdio::null()).output().expect("unshare")
}

#[test]
fn a_tool_that_ignores_the_proxy_is_learned_by_name_from_its_dns_questions() {
    let test = "a_tool_that_ignores_the_proxy_is_learned_by_name_from_its_dns_questions";
    if !Path::new("/etc/resolv.conf").exists() {
        skip(test, "/etc/resolv.conf is missing: there is nothing to bind the test's resolver over");
        return;
    }
    let Some((sb, user)) = world(test) else { return };
    // Both backends capture DNS: the one under test (`lsm` in the VM suite).
    let Some(backend) = support::require_recorder(test) else { return };
    let local = std::net::Ipv4Addr::LOCALHOST;
    let table = [("dns-only.nono.test", local), ("asked.nono.test", local), ("tcp.nono.test", local)];
    let dns = fake_dns::FakeDns::start(&table).expect("127.0.0.1:53 is free for the fake DNS server");
    // The services the tool connects to directly (the backlog accepts).
    let svc = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let tcp_svc = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let (port, tcp_port) = (svc.local_addr().expect("addr").port(), tcp_svc.local_addr().expect("addr").port());
    let resolv = sb.root().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 127.0.0.1\noptions attempts:2 timeout:3\n").expect("resolv.conf");
    std::fs::set_permissions(&resolv, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let script = sb.work().join("resolve.sh");
    write(&sb, &user, &script, &resolving_tool(port, tcp_port));
    let profile = sb.root().join("dns.json");
    let profile_arg = profile.to_string_lossy().into_owned();
    let script_arg = script.to_string_lossy().into_owned();
    let out = sudo_nono_with_resolver(
        &sb,
        &user,
        &resolv,
        &["learn", "--backend", &backend, "--no-progress", "--force", "--output", &profile_arg, "--", "/bin/sh", &script_arg],
    );
    let text = output_text(&out);
    assert!(out.status.success(), "learn: {text}");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(marker(&stdout, "udp-connect"), "127.0.0.1", "{text}");
    assert_eq!(marker(&stdout, "gone"), "nxdomain", "{text}");
    assert_eq!(marker(&stdout, "tcp-connect"), "127.0.0.1", "{text}");
    let asked = dns.asked.lock().expect("lock").clone();
    assert!(asked.iter().any(|(n, p)| n == "dns-only.nono.test" && *p == "udp"), "{asked:?}");
    assert!(asked.iter().any(|(n, p)| n == "tcp.nono.test" && *p == "tcp"), "{asked:?}");

    user.chown_tree(&profile);
    let learned: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&profile).expect("profile")).expect("json");
    let domains = learned["network"]["allow_domains"].as_array().cloned().unwrap_or_default();
    let entry = |d: &str| {
        domains.iter().find(|e| e["domain"] == d).cloned().unwrap_or_else(|| panic!("no {d} in allow_domains: {learned:#}"))
    };
    // Resolved and connected to: the name with the connect's port, marked
    // private (its answer was loopback), and the reason says how.
    let udp = entry(&format!("dns-only.nono.test:{port}"));
    assert!(udp["reason"].as_str().is_some_and(|r| r.contains("DNS and a direct connect")), "{udp:#}");
    assert_eq!(udp["private"], true, "{udp:#}");
    let tcp = entry(&format!("tcp.nono.test:{tcp_port}"));
    assert!(tcp["reason"].as_str().is_some_and(|r| r.contains("DNS and a direct connect")), "{tcp:#}");
    // Only asked: a rule for the default ports that says so, with a count.
    let only = entry("asked.nono.test");
    assert_eq!(only["reason"], "seen only as a DNS question", "{only:#}");
    assert_eq!(only["count"], 1, "{only:#}");
    // A name that does not exist grants nothing.
    assert!(!domains.iter().any(|e| e["domain"].as_str().is_some_and(|d| d.contains("gone."))), "{learned:#}");

    // The audit trail has the rows, source `dns`.
    let q = user
        .nono(&sb)
        .args(["audit", "query", "--domain", "dns-only.nono.test", "--format", "json"])
        .output()
        .expect("audit query");
    assert!(q.status.success(), "{}", output_text(&q));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&q.stdout).expect("json rows");
    assert!(rows.iter().all(|r| r["source"] == "dns"), "{rows:#?}");
    assert!(
        rows.iter().any(|r| r["port"] == port && r["addr"] == format!("127.0.0.1:{port}") && r["result"] == 0),
        "the connect joined to the answer: {rows:#?}"
    );
    assert!(rows.iter().any(|r| r["port"] == 0), "the question itself: {rows:#?}");
    let gone =
        user.nono(&sb).args(["audit", "query", "--domain", "gone.nono.test", "--format", "json"]).output().expect("audit query");
    let gone: Vec<serde_json::Value> = serde_json::from_slice(&gone.stdout).expect("json rows");
    assert!(!gone.is_empty() && gone.iter().all(|r| r["result"] == 2), "NXDOMAIN is stored as an error: {gone:#?}");
    drop((svc, tcp_svc));
}

/// A credential file of the user's, 0600, outside every grant.
fn key_file(sb: &Sandbox, user: &TestUser, secret: &str) -> PathBuf {
    let dir = sb.home().join(".config/nono-keys");
    std::fs::create_dir_all(&dir).expect("dir");
    let p = dir.join("anthropic");
    std::fs::write(&p, format!("{secret}\n")).expect("key");
    user.chown_tree(&sb.home().join(".config"));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    p
}

fn credential_profile(sb: &Sandbox, extra_allow: &[&str]) -> PathBuf {
    let profile = sb.root().join("cred.json");
    let p = serde_json::json!({
        "extends": "base",
        "filesystem": {"allow": ["$CWD"], "read": extra_allow},
        "network": {
            "allow_domains": [],
            "credentials": [{"name": "anthropic", "env": "ANTHROPIC_API_KEY", "domain": "api.anthropic.com",
                             "header": "x-api-key", "from": "file:~/.config/nono-keys/anthropic",
                             "base_url_env": "ANTHROPIC_BASE_URL"}]
        }
    });
    std::fs::write(&profile, serde_json::to_string_pretty(&p).expect("json")).expect("profile");
    profile
}

#[test]
fn the_real_key_reaches_the_api_and_never_enters_the_sandbox() {
    let test = "the_real_key_reaches_the_api_and_never_enters_the_sandbox";
    let Some((sb, user)) = world(test) else { return };
    let secret = "sk-ant-api03-REAL-SECRET-7f3a9c1e5b";
    let key = key_file(&sb, &user, secret);
    let pki = Pki::new(&["api.anthropic.com"]);
    let api = Upstream::start(Some(&pki));
    let ca = sb.root().join("upstream-ca.pem");
    pki.write_ca(&ca);
    let profile = credential_profile(&sb, &[]);
    let script = sb.work().join("agent.sh");
    write(
        &sb,
        &user,
        &script,
        &format!(
            r#"echo "phantom=$ANTHROPIC_API_KEY"
echo "base=$ANTHROPIC_BASE_URL"
echo "env-hits=$(env | grep -c '{secret}')"
echo "environ-hits=$(tr '\0' '\n' < /proc/self/environ | grep -c '{secret}')"
cat {key} >/dev/null 2>&1; echo "key-file=$?"
curl -sS --max-time 20 "$ANTHROPIC_BASE_URL/v1/messages" -H "x-api-key: $ANTHROPIC_API_KEY" -H 'content-type: application/json' \
  -d '{{"model":"claude-test","max_tokens":5,"stream":true,"messages":[{{"role":"user","content":"hi"}}]}}'
echo; echo "curl=$?"
curl -sS --max-time 20 "$ANTHROPIC_BASE_URL/v1/messages" -H "x-api-key: not-the-phantom"; echo; echo "wrong=$?"
"#,
            key = key.display()
        ),
    );
    let out = user
        .nono(&sb)
        .args(["run", "--profile"])
        .arg(&profile)
        .arg(format!("--resolve=api.anthropic.com=127.0.0.1:{}", api.addr.port()))
        .arg("--upstream-ca")
        .arg(&ca)
        // A variable of the caller's that happens to hold the secret is not passed.
        .env("LEAKY_COPY", secret)
        .args(["--", "/bin/sh"])
        .arg(&script)
        .output()
        .expect("nono run");
    let text = output_text(&out);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(!stdout.contains(secret), "the secret reached the sandbox: {text}");
    assert!(marker(&stdout, "phantom").starts_with("nono-phantom-"), "{text}");
    assert!(marker(&stdout, "base").starts_with("http://127.0.0.1:"), "{text}");
    assert_eq!(marker(&stdout, "env-hits"), "0", "{text}");
    assert_eq!(marker(&stdout, "environ-hits"), "0", "{text}");
    assert_ne!(marker(&stdout, "key-file"), "0", "the key file is outside the grants: {text}");
    assert_eq!(marker(&stdout, "curl"), "0", "{text}");
    assert!(stdout.contains(fake_api::REPLY_TEXT) && stdout.contains("message_stop"), "the streamed reply: {text}");
    assert!(stdout.contains("credential endpoint"), "a wrong token is refused: {text}");
    let seen = api.seen();
    assert_eq!(seen.len(), 1, "only the request with the phantom went upstream: {seen:#?}");
    assert_eq!(seen[0].header("x-api-key"), Some(secret), "the real key arrived");
    assert!(String::from_utf8_lossy(&out.stderr).contains("LEAKY_COPY is not passed"), "{text}");

    // A profile that lets the sandbox read the key file is refused.
    let exposed = credential_profile(&sb, &["$HOME/.config/nono-keys"]);
    let out = user.nono(&sb).args(["run", "--profile"]).arg(&exposed).args(["--", "/bin/true"]).output().expect("nono run");
    assert_eq!(out.status.code(), Some(125), "{}", output_text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("readable in the sandbox"), "{}", output_text(&out));
}

/// Where `cargo xtask setup` installs the Claude Code CLI for this test.
const CLAUDE: &str = "/opt/nono-test/npm/bin/claude";

#[test]
fn claude_code_completes_a_prompt_through_the_proxy_with_only_a_phantom() {
    let test = "claude_code_completes_a_prompt_through_the_proxy_with_only_a_phantom";
    if !Path::new(CLAUDE).exists() {
        skip(test, &format!("{CLAUDE} is missing (cargo xtask setup installs @anthropic-ai/claude-code there)"));
        return;
    }
    let Some((sb, user)) = world(test) else { return };
    let secret = "sk-ant-api03-CLAUDE-REAL-9d8c7b6a5f";
    key_file(&sb, &user, secret);
    let pki = Pki::new(&["api.anthropic.com"]);
    let api = Upstream::start(Some(&pki));
    let ca = sb.root().join("upstream-ca.pem");
    pki.write_ca(&ca);
    let profile = sb.root().join("claude.json");
    let p = serde_json::json!({
        "extends": "claude-code",
        "filesystem": {"read": ["/opt/nono-test/npm"]},
        "network": {
            "allow_domains": [],
            "credentials": [{"name": "anthropic", "env": "ANTHROPIC_API_KEY", "domain": "api.anthropic.com",
                             "header": "x-api-key", "from": "file:~/.config/nono-keys/anthropic",
                             "base_url_env": "ANTHROPIC_BASE_URL"}]
        }
    });
    std::fs::write(&profile, serde_json::to_string_pretty(&p).expect("json")).expect("profile");
    let out = user
        .nono(&sb)
        .args(["run", "--profile"])
        .arg(&profile)
        .arg(format!("--resolve=api.anthropic.com=127.0.0.1:{}", api.addr.port()))
        .arg("--upstream-ca")
        .arg(&ca)
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_ERROR_REPORTING", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .args(["--", CLAUDE, "-p", "hi"])
        .output()
        .expect("nono run claude");
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(fake_api::REPLY_TEXT), "{text}");
    let seen = api.seen();
    let messages: Vec<_> = seen.iter().filter(|s| s.path.starts_with("/v1/messages")).collect();
    assert!(!messages.is_empty(), "claude reached the fake API: {seen:#?}\n{text}");
    assert!(messages.iter().all(|s| s.header("x-api-key") == Some(secret)), "the real key, swapped in by the proxy: {seen:#?}");
    assert!(!text.contains(secret), "{text}");
}

/// `nono profile amend` after a run whose proxy refused names: the
/// refused name becomes an `allow_domains` proposal (with how often, and
/// which process asked), three refused names below one parent become one
/// `*.parent` entry (`nono learn`'s rule), an IP literal is never
/// proposed, and after `--yes` the next run reaches the names.
#[test]
fn amend_proposes_the_names_the_proxy_refused_and_the_next_run_reaches_them() {
    let test = "amend_proposes_the_names_the_proxy_refused_and_the_next_run_reaches_them";
    let Some((sb, user)) = world(test) else { return };
    // Not below example.com: `learn::domains` counts them for every parent,
    // so with new.example.com they would make `*.example.com` as well.
    let cdn = ["a.cdn.example.org", "b.cdn.example.org", "c.cdn.example.org"];
    let names: Vec<&str> = ["api.example.com", "new.example.com"].into_iter().chain(cdn).collect();
    let pki = Pki::new(&names);
    let up = Upstream::start(Some(&pki));
    let port = up.addr.port();
    let ca = sb.work().join("ca.pem");
    pki.write_ca(&ca);
    user.chown_tree(&ca);
    let profile = sb.root().join("agent.json");
    let p = serde_json::json!({
        "extends": "base",
        "filesystem": {"allow": ["$CWD"]},
        "network": {"allow_domains": [format!("api.example.com:{port}")]}
    });
    write(&sb, &user, &profile, &serde_json::to_string_pretty(&p).expect("json"));
    let script = sb.work().join("agent.sh");
    // `--noproxy ''`: curl would reach an IP literal directly, not through the proxy.
    let fetch = |name: &str, key: &str| {
        format!(
            "curl -sS --max-time 20 --cacert \"$PWD/ca.pem\" --noproxy '' https://{name}:{port}/{key}; rc=$?; echo; echo \"{key}=$rc\"\n"
        )
    };
    let mut text = fetch("api.example.com", "api");
    text.push_str(&fetch("new.example.com", "new"));
    for (i, name) in cdn.iter().enumerate() {
        text.push_str(&fetch(name, &format!("cdn{i}")));
    }
    text.push_str(&fetch("127.0.0.1", "ip"));
    write(&sb, &user, &script, &text);
    let resolve: Vec<String> = names.iter().map(|n| format!("--resolve={n}=127.0.0.1")).collect();
    let run = |sudo: bool| {
        let mut c = if sudo { user.sudo_nono(&sb) } else { user.nono(&sb) };
        c.arg("run");
        if sudo {
            c.arg("--audit");
        }
        let out =
            c.arg("--profile").arg(&profile).args(&resolve).args(["--", "/bin/sh"]).arg(&script).output().expect("nono run");
        (String::from_utf8_lossy(&out.stdout).into_owned(), output_text(&out))
    };
    let (stdout, text) = run(true);
    assert!(stdout.contains("ip="), "the script ran to its end: {text}");
    assert_eq!(marker(&stdout, "api"), "0", "{text}");
    for key in ["new", "cdn0", "cdn1", "cdn2", "ip"] {
        assert_ne!(marker(&stdout, key), "0", "{key} is refused before the amendment: {text}");
    }

    // The proposals, for scripts.
    let amend = |extra: &[&str]| {
        let out = user
            .nono(&sb)
            .args(["profile", "amend"])
            .arg(&profile)
            .args(["--session", "last"])
            .args(extra)
            .output()
            .expect("nono profile amend");
        assert!(out.status.success(), "amend {extra:?}: {}", output_text(&out));
        out
    };
    let dry = amend(&["--dry-run", "--format", "json"]);
    let a: serde_json::Value = serde_json::from_slice(&dry.stdout).expect("json");
    let domains: Vec<&serde_json::Value> =
        a["proposals"].as_array().expect("proposals").iter().filter(|p| p["change"]["kind"] == "domain").collect();
    let proposed: Vec<&str> = domains.iter().filter_map(|p| p["change"]["domain"].as_str()).collect();
    assert_eq!(proposed, [format!("*.cdn.example.org:{port}"), format!("new.example.com:{port}")], "{a:#}");
    let new_reason = domains[1]["reason"].as_str().expect("a reason");
    assert!(
        new_reason.contains("refused new.example.com 1 time(s)") && new_reason.contains("asked for by curl (pid "),
        "{new_reason}"
    );
    assert!(domains[0]["reason"].as_str().is_some_and(|r| r.contains("3 distinct names")), "{a:#}");
    let unexplained = a["unexplained"].to_string();
    assert!(unexplained.contains(&format!("127.0.0.1:{port}: an IP address")), "the IP literal is not proposed: {a:#}");
    let before = std::fs::read_to_string(&profile).expect("profile");
    assert!(!before.contains("new.example.com"), "--dry-run changes nothing");

    // At a terminal (`script` gives one): accept the first, then `q`:
    // nothing is written, exit 1.
    let mut prompt = user.run(&sb, "/usr/bin/script");
    prompt
        .arg("-qec")
        .arg(format!("{} profile amend {} --session last", support::NONO, profile.display()))
        .arg("/dev/null")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = prompt.spawn().expect("amend at a terminal");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), b"y\nq\n").expect("answers");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("aborted"), "{}", output_text(&out));
    assert_eq!(std::fs::read_to_string(&profile).expect("profile"), before, "q writes nothing");

    let out = amend(&["--yes"]);
    let diff = String::from_utf8_lossy(&out.stdout);
    assert!(diff.contains("new.example.com"), "the diff shows the new name: {}", output_text(&out));
    let after: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&profile).expect("profile")).expect("json");
    let allowed: Vec<&str> = after["network"]["allow_domains"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|d| d.as_str().or_else(|| d["domain"].as_str()))
        .collect();
    assert!(allowed.contains(&format!("new.example.com:{port}").as_str()), "{after:#}");
    assert!(!allowed.iter().any(|d| d.starts_with("127.0.0.1")), "{after:#}");

    // The next run, as the user, reaches the names it was refused.
    let (stdout, text) = run(false);
    assert!(stdout.contains("ip="), "the script ran to its end: {text}");
    for key in ["api", "new", "cdn0", "cdn1", "cdn2"] {
        assert_eq!(marker(&stdout, key), "0", "{key} after the amendment: {text}");
    }
    assert_ne!(marker(&stdout, "ip"), "0", "the IP literal is still refused: {text}");
    let reached: Vec<String> = up.seen().into_iter().map(|s| s.path).collect();
    assert!(reached.iter().filter(|p| *p == "/new").count() == 1, "{reached:?}");
}
