//! `nono audit export --format ocsf`: a session's events (or every
//! session's) as JSON lines in the Open Cybersecurity Schema Framework
//! 1.1, for SIEMs: File System Activity (class 1001), Process Activity
//! (1007) and Network Activity (4001). The mapping, the severities and the
//! endpoints nono fills in are documented in the README's "Fleet" section;
//! what OCSF has no field for goes to `unmapped`. Every record validates
//! against the OCSF 1.1 schema (tests/fleet/ocsf.rs checks it with the schema
//! files of the `ocsf-json-schema` package). Works on the local database
//! and on a fleet database alike.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::cli::common::source as audit_source;
use crate::cli::common::source::{HostView, SourceArgs as Common};
use crate::event::{Event, NetAddr, Op, Outcome, family_name};
use crate::report::Sensitive;
use crate::report::network::netlink_protocol;
use crate::store::{Session, errno_name};

/// Export formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// OCSF 1.1 JSON lines.
    Ocsf,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Output format.
    #[arg(long)]
    pub format: ExportFormat,
    /// Only this session (an id, or `last`); default: every session.
    #[arg(long)]
    pub session: Option<String>,
    /// Audit database: a file, or a fleet's postgres:// URL.
    #[arg(long, env = "NONO_DB", value_name = "PATH|URL")]
    pub db: Option<PathBuf>,
    /// Only this host's sessions (fleet databases only): its id, its label
    /// (NAME#ID-PREFIX) or a name only one host carries.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
}

const OCSF_VERSION: &str = "1.1.0";

pub fn run(args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let common = Common { db: args.db.clone(), host: args.host.clone(), format: super::common::Format::Json };
    let mut source = audit_source::open(&common)?;
    let sessions = match &args.session {
        Some(s) => vec![source.session(s)?],
        None => source.sessions()?,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for s in &sessions {
        let host = source.host_of(s.id)?;
        let ctx = Shared::new(s, &host);
        let mut failed = None;
        source.events(s.id, |e| {
            if failed.is_none() {
                // Control characters in names are written as JSON escapes.
                let line = super::common::text::json_line(&ocsf(&e, &ctx)).map_err(|err| std::io::Error::other(err.to_string()));
                if let Err(err) = line.and_then(|l| writeln!(out, "{l}")) {
                    failed = Some(err);
                }
            }
        })?;
        if let Some(err) = failed {
            return Err(err).context("writing the export");
        }
        // The network proxy's decisions by name (issue 23; local stores).
        // A DNS question row (port 0) repeats a DNS event exported above.
        for r in source.domains(s.id)?.iter().filter(|r| !(r.source == crate::store::DomainSource::Dns && r.port == 0)) {
            let line = super::common::text::json_line(&ocsf_domain(r, &ctx))?;
            writeln!(out, "{line}").context("writing the export")?;
        }
    }
    out.flush().context("writing the export")?;
    Ok(ExitCode::SUCCESS)
}

/// A proxy decision as OCSF Network Activity: Open (1) when let through,
/// Refuse (5) when refused, Fail (4) when the upstream could not be
/// reached; the name in `dst_endpoint.hostname`. A refusal is a sandbox
/// denial: Medium, with the security-control attributes, as in [`ocsf`].
fn ocsf_domain(r: &crate::store::DomainEvent, ctx: &Shared<'_>) -> Value {
    let (activity_id, activity_name, status_id, status) = match r.result {
        0 => (1, "Open", 1, "Success"),
        1 => (5, "Refuse", 2, "Failure"),
        _ => (4, "Fail", 2, "Failure"),
    };
    let (severity_id, severity) = if r.result == 1 { (3, "Medium") } else { (1, "Informational") };
    let addr: Option<std::net::SocketAddr> = r.addr.as_deref().and_then(|a| a.parse().ok());
    let mut dst = json!({"hostname": r.domain, "port": r.port});
    if let Some(a) = addr {
        dst["ip"] = json!(a.ip().to_string());
    }
    let mut v = json!({
        "class_uid": 4001,
        "category_uid": 4,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": 4001 * 100 + activity_id,
        "time": r.time_ns / 1_000_000,
        "severity_id": severity_id,
        "severity": severity,
        "status_id": status_id,
        "status": status,
        "metadata": {
            "version": OCSF_VERSION,
            "product": {"name": "nono", "vendor_name": "nono", "version": env!("CARGO_PKG_VERSION")},
            "log_name": "nono proxy",
            "profiles": if r.result == 1 { json!(["host", "security_control"]) } else { json!(["host"]) },
        },
        "device": ctx.device,
        "src_endpoint": {"hostname": ctx.hostname},
        "dst_endpoint": dst,
        "connection_info": {"protocol_name": "tcp", "direction_id": 2, "direction": "Outbound"},
        "unmapped": {"nono_session": ctx.session.id, "nono_proxy_source": r.source.as_str(), "nono_credential": r.credential},
    });
    if r.result == 1 {
        v["action_id"] = json!(2);
        v["action"] = json!("Denied");
        v["disposition_id"] = json!(2);
        v["disposition"] = json!("Blocked");
    }
    if let Some(reason) = &r.reason {
        v["status_detail"] = json!(reason);
    }
    v
}

/// What every record of one session shares.
struct Shared<'a> {
    session: &'a Session,
    device: Value,
    hostname: String,
    /// The session's sensitive paths (its own `$HOME`): a denial there is
    /// High severity.
    sensitive: Sensitive,
}

impl<'a> Shared<'a> {
    fn new(session: &'a Session, host: &HostView) -> Shared<'a> {
        let ctx = crate::cli::common::context::session_context(session, &[]);
        // OCSF requires a device type; nono does not know whether the host
        // is a server, a desktop or a VM, and says so (0, Unknown).
        let mut device = json!({"hostname": host.name, "uid": host.id, "type_id": 0, "type": "Unknown"});
        if !session.info.kernel.is_empty() {
            device["os"] = json!({"name": "Linux", "type_id": 200, "type": "Linux", "version": session.info.kernel});
        }
        Shared { session, device, hostname: host.name.clone(), sensitive: Sensitive::new(&ctx) }
    }
}

/// `(class_uid, category_uid, activity_id, activity_name)` of an event.
fn classify(e: &Event) -> (u32, u32, u32, &'static str) {
    const FILE: (u32, u32) = (1001, 1);
    const PROCESS: (u32, u32) = (1007, 1);
    const NETWORK: (u32, u32) = (4001, 4);
    const DNS: (u32, u32) = (4003, 4);
    let (class, activity, name) = match e.op {
        Op::Open if e.access.create => (FILE, 1, "Create"),
        Op::Open if e.access.write || e.access.truncate => (FILE, 3, "Update"),
        Op::Open => (FILE, 2, "Read"),
        Op::Create | Op::Mkdir | Op::Mknod | Op::Symlink | Op::Link => (FILE, 1, "Create"),
        Op::Truncate => (FILE, 3, "Update"),
        Op::Unlink | Op::Rmdir => (FILE, 4, "Delete"),
        Op::Rename => (FILE, 5, "Rename"),
        Op::Metadata => (FILE, 6, "Set Attributes"),
        Op::Ioctl => (FILE, 99, "Other"),
        Op::Exec | Op::Fork => (PROCESS, 1, "Launch"),
        Op::Exit => (PROCESS, 2, "Terminate"),
        Op::Signal | Op::Syscall => (PROCESS, 99, "Other"),
        Op::Connect => (NETWORK, 1, "Open"),
        Op::Send => (NETWORK, 6, "Traffic"),
        Op::Bind | Op::Socket => (NETWORK, 99, "Other"),
        Op::Dns if crate::event::DnsArg::unpack(e.arg).answer => (DNS, 2, "Response"),
        Op::Dns => (DNS, 1, "Query"),
    };
    (class.0, class.1, activity, name)
}

/// `(severity_id, severity)`: a sandbox denial needs a reviewer's look
/// (Medium: a missing rule, or an agent reaching too far), and one on a
/// sensitive path (a key, a credential) needs it now (High); everything
/// else, errors such as ENOENT included, is Informational.
fn severity(e: &Event, sensitive: &Sensitive) -> (u32, &'static str) {
    match e.outcome {
        Outcome::Denied { .. } if e.path.as_deref().is_some_and(|p| sensitive.why(p).is_some()) => (4, "High"),
        Outcome::Denied { .. } => (3, "Medium"),
        _ => (1, "Informational"),
    }
}

/// OCSF's file `type_id` from the recorded `S_IFMT` bits, or from the
/// operation when the recorder did not see the object's type.
fn file_type(e: &Event, is_result: bool) -> (u32, &'static str) {
    match e.file_type & 0o170_000 {
        0o100_000 => (1, "Regular File"),
        0o040_000 => (2, "Folder"),
        0o020_000 => (3, "Character Device"),
        0o060_000 => (4, "Block Device"),
        0o140_000 => (5, "Local Socket"),
        0o010_000 => (6, "Named Pipe"),
        0o120_000 => (7, "Symbolic Link"),
        _ => match e.op {
            Op::Mkdir | Op::Rmdir => (2, "Folder"),
            Op::Symlink if !is_result => (7, "Symbolic Link"),
            _ => (0, "Unknown"),
        },
    }
}

/// An OCSF `file` object (name and `type_id` are required).
fn file(path: &str, type_id: (u32, &'static str)) -> Value {
    let name = path.rsplit('/').find(|c| !c.is_empty()).unwrap_or(path);
    json!({"path": path, "name": name, "type_id": type_id.0, "type": type_id.1})
}

/// Where an IP address lies, as OCSF's `boundary_id` says it.
fn boundary(ip: IpAddr) -> (u32, &'static str) {
    let private = match ip {
        IpAddr::V4(a) => a.is_private() || a.is_link_local(),
        IpAddr::V6(a) => (a.segments()[0] & 0xfe00) == 0xfc00 || (a.segments()[0] & 0xffc0) == 0xfe80,
    };
    if ip.is_loopback() {
        (1, "Localhost")
    } else if private {
        (2, "Internal")
    } else if ip.is_unspecified() {
        (0, "Unknown")
    } else {
        (3, "External")
    }
}

/// The far end of a socket operation (OCSF requires at least one of ip,
/// name, hostname, `svc_name`, ... on every endpoint): the IP and port; a
/// Unix socket's path as its name (`@name` when abstract; `unix` when
/// unnamed); the kernel for netlink, with the netlink protocol as the
/// service; the family's name for other families.
fn peer(n: Option<&NetAddr>, path: Option<&str>) -> Value {
    let family = n.map_or(0, |n| i32::from(n.family));
    match n {
        Some(n) if n.addr.is_some() => json!({"ip": n.addr.map(|a| a.to_string()), "port": n.port}),
        _ if family == libc::AF_NETLINK => {
            json!({"name": "kernel", "svc_name": netlink_protocol(n.map_or(0, |n| n.protocol))})
        }
        _ => match path.filter(|p| !p.is_empty()) {
            Some(p) => json!({"name": p}),
            None if family == libc::AF_UNIX => json!({"name": "unix"}),
            None if family == 0 => json!({"name": "unknown"}),
            None => json!({"name": family_name(family)}),
        },
    }
}

/// Source, destination and connection of a Network Activity record.
fn network(v: &mut Value, e: &Event, ctx: &Shared<'_>) {
    let this_host = json!({"hostname": ctx.hostname});
    let n = e.net.as_ref();
    let far = peer(n, e.path.as_deref());
    // bind: inbound traffic will arrive at the bound address from any
    // peer; socket(): nothing is connected yet.
    let (src, dst, direction) = match e.op {
        Op::Bind => (json!({"name": "any"}), far, (1, "Inbound")),
        Op::Socket if n.is_some_and(|n| i32::from(n.family) != libc::AF_NETLINK) => {
            (this_host, json!({"name": "none"}), (0, "Unknown"))
        }
        Op::Socket => (this_host, far, (0, "Unknown")),
        _ => (this_host, far, (2, "Outbound")),
    };
    v["src_endpoint"] = src;
    v["dst_endpoint"] = dst;
    let mut info = json!({"direction_id": direction.0, "direction": direction.1});
    if let Some(n) = n {
        info["protocol_name"] = json!(n.proto().name());
        info["protocol_ver_id"] = json!(match i32::from(n.family) {
            libc::AF_INET => 4,
            libc::AF_INET6 => 6,
            _ => 0,
        });
        if let Some(ip) = n.addr {
            let (id, name) = boundary(ip);
            info["boundary_id"] = json!(id);
            info["boundary"] = json!(name);
        }
        if i32::from(n.family) == libc::AF_UNIX
            && let Some(p) = e.path.as_deref()
        {
            v["unmapped"]["nono_unix_socket"] = json!(p);
        }
    }
    v["connection_info"] = info;
}

/// One event as an OCSF object.
fn ocsf(e: &Event, ctx: &Shared<'_>) -> Value {
    let s = ctx.session;
    let (class_uid, category_uid, activity_id, activity_name) = classify(e);
    let (status_id, status) = if e.outcome == Outcome::Ok { (1, "Success") } else { (2, "Failure") };
    let (severity_id, severity_name) = severity(e, &ctx.sensitive);
    let mut actor_process = json!({
        "pid": e.pid,
        "tid": e.tid,
        "name": e.comm,
        "user": {"uid": e.uid.to_string()},
        "parent_process": {"pid": e.ppid},
    });
    if let Some(exe) = &e.exe {
        actor_process["file"] = file(exe, (1, "Regular File"));
    }
    // Network Activity keeps `device` and `actor` in the host profile.
    let mut profiles = if class_uid == 4001 || class_uid == 4003 { vec!["host"] } else { Vec::new() };
    let mut v = json!({
        "class_uid": class_uid,
        "category_uid": category_uid,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity_id,
        "time": e.time_ns / 1_000_000,
        "severity_id": severity_id,
        "severity": severity_name,
        "status_id": status_id,
        "status": status,
        "metadata": {
            "version": OCSF_VERSION,
            "product": {"name": "nono", "vendor_name": "nono", "version": env!("CARGO_PKG_VERSION")},
            "log_name": "nono audit",
        },
        "actor": {"process": actor_process},
        "device": ctx.device,
        "unmapped": {
            "nono_session": s.id,
            "nono_op": e.op,
            "nono_access": e.access.label(),
            "nono_incomplete": e.incomplete,
        },
    });
    if e.outcome != Outcome::Ok {
        v["status_code"] = json!(errno_name(e.outcome.errno()));
        v["status_detail"] = json!(match e.outcome.denied_by() {
            Some(by) => format!("denied ({by})"),
            None => "error".to_owned(),
        });
    }
    if let Outcome::Denied { .. } = e.outcome {
        // The security_control profile: the sandbox denied and blocked it.
        profiles.push("security_control");
        v["action_id"] = json!(2);
        v["action"] = json!("Denied");
        v["disposition_id"] = json!(2);
        v["disposition"] = json!("Blocked");
    }
    if !profiles.is_empty() {
        v["metadata"]["profiles"] = json!(profiles);
    }
    match class_uid {
        1001 => {
            v["file"] = file(e.path.as_deref().unwrap_or(""), file_type(e, false));
            if let Some(p2) = e.path2.as_deref().filter(|_| matches!(e.op, Op::Rename | Op::Link | Op::Symlink)) {
                v["file_result"] = file(p2, file_type(e, true));
            }
        }
        1007 => {
            v["process"] = match e.op {
                Op::Exec => {
                    let mut p = json!({"pid": e.pid, "name": e.comm});
                    if let Some(path) = e.path.as_deref() {
                        p["file"] = file(path, (1, "Regular File"));
                    }
                    p
                }
                Op::Fork => json!({"pid": e.arg, "parent_process": {"pid": e.pid}}),
                Op::Signal => {
                    let (sig, target) = e.signal().unwrap_or((0, 0));
                    v["unmapped"]["nono_signal"] = json!(sig);
                    json!({"pid": target})
                }
                _ => json!({"pid": e.pid, "name": e.comm}),
            };
            if e.op == Op::Exit {
                v["exit_code"] = json!(e.arg as i64);
            }
        }
        _ => {
            network(&mut v, e, ctx);
            if e.op == Op::Dns {
                dns(&mut v, e);
            }
        }
    }
    v
}

/// A DNS Activity record's question, answers and response code, when the
/// message was parsed (`query.hostname` is required by OCSF).
fn dns(v: &mut Value, e: &Event) {
    let arg = crate::event::DnsArg::unpack(e.arg);
    let qtype = match arg.qtype {
        1 => "A".to_owned(),
        28 => "AAAA".to_owned(),
        64 => "SVCB".to_owned(),
        65 => "HTTPS".to_owned(),
        n => format!("TYPE{n}"),
    };
    if let Some(name) = e.path.as_deref() {
        v["query"] = json!({"hostname": name, "type": qtype, "class": "IN"});
    }
    if arg.answer {
        v["rcode_id"] = json!(if arg.rcode <= 5 { u32::from(arg.rcode) } else { 99 });
        let answers: Vec<Value> = e
            .path2
            .as_deref()
            .unwrap_or("")
            .split(',')
            .filter(|a| !a.is_empty())
            .map(|a| json!({"rdata": a, "type": if a.contains(':') { "AAAA" } else { "A" }, "class": "IN"}))
            .collect();
        if !answers.is_empty() {
            v["answers"] = json!(answers);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netlink_and_unix_endpoints_name_something() {
        let nl = NetAddr { family: libc::AF_NETLINK as u16, addr: None, port: 0, sock_type: 3, protocol: 0 };
        assert_eq!(peer(Some(&nl), None), json!({"name": "kernel", "svc_name": "netlink-route"}));
        let unix = NetAddr { family: libc::AF_UNIX as u16, addr: None, port: 0, sock_type: 1, protocol: 0 };
        assert_eq!(peer(Some(&unix), Some("/run/x.sock")), json!({"name": "/run/x.sock"}));
        assert_eq!(peer(Some(&unix), None), json!({"name": "unix"}));
    }

    #[test]
    fn boundaries_follow_the_address() {
        assert_eq!(boundary("127.0.0.1".parse().expect("ip")).0, 1);
        assert_eq!(boundary("10.1.2.3".parse().expect("ip")).0, 2);
        assert_eq!(boundary("fd00::1".parse().expect("ip")).0, 2);
        assert_eq!(boundary("93.184.216.34".parse().expect("ip")).0, 3);
    }
}
