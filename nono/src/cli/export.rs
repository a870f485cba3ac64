//! `nono audit export --format ocsf`: a session's events (or every
//! session's) as JSON lines in the Open Cybersecurity Schema Framework, for
//! SIEMs: File System Activity (class 1001), Process Activity (1007) and
//! Network Activity (4001). The mapping is documented in the README's
//! "Fleet" section; what OCSF has no field for goes to `unmapped`.
//! Works on the local database and on a fleet database alike.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::{Value, json};

use super::audit::Common;
use super::audit_source;
use crate::event::{Event, Op, Outcome};
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
    /// Only this host's sessions (fleet databases only).
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
        let device = source.host_of(s.id)?.map(|(name, id)| json!({"hostname": name, "uid": id}));
        let mut failed = None;
        source.events(s.id, |e| {
            if failed.is_none()
                && let Err(err) = writeln!(out, "{}", ocsf(&e, s, device.as_ref()))
            {
                failed = Some(err);
            }
        })?;
        if let Some(err) = failed {
            return Err(err).context("writing the export");
        }
    }
    out.flush().context("writing the export")?;
    Ok(ExitCode::SUCCESS)
}

/// `(class_uid, category_uid, activity_id, activity_name)` of an event.
fn classify(e: &Event) -> (u32, u32, u32, &'static str) {
    const FILE: (u32, u32) = (1001, 1);
    const PROCESS: (u32, u32) = (1007, 1);
    const NETWORK: (u32, u32) = (4001, 4);
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
    };
    (class.0, class.1, activity, name)
}

/// One event as an OCSF object.
fn ocsf(e: &Event, s: &Session, device: Option<&Value>) -> Value {
    let (class_uid, category_uid, activity_id, activity_name) = classify(e);
    let (status_id, status) = if e.outcome == Outcome::Ok { (1, "Success") } else { (2, "Failure") };
    let actor_process = json!({
        "pid": e.pid,
        "tid": e.tid,
        "name": e.comm,
        "file": e.exe.as_ref().map(|x| json!({"path": x})),
        "user": {"uid": e.uid.to_string()},
        "parent_process": {"pid": e.ppid},
    });
    let mut v = json!({
        "class_uid": class_uid,
        "category_uid": category_uid,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity_id,
        "time": e.time_ns / 1_000_000,
        "severity_id": 1,
        "status_id": status_id,
        "status": status,
        "metadata": {
            "version": OCSF_VERSION,
            "product": {"name": "nono", "vendor_name": "nono", "version": env!("CARGO_PKG_VERSION")},
            "log_name": "nono audit",
        },
        "actor": {"process": actor_process},
        "unmapped": {
            "nono_session": s.id,
            "nono_op": e.op,
            "nono_access": e.access.label(),
            "nono_incomplete": e.incomplete,
        },
    });
    if let Some(device) = device {
        v["device"] = device.clone();
    }
    if e.outcome != Outcome::Ok {
        v["status_code"] = json!(errno_name(e.outcome.errno()));
        v["status_detail"] = json!(match e.outcome.denied_by() {
            Some(by) => format!("denied ({by})"),
            None => "error".to_owned(),
        });
    }
    let path = |p: &Option<String>| p.as_ref().map(|p| json!({"path": p, "name": p.rsplit('/').next().unwrap_or(p)}));
    match class_uid {
        1001 => {
            v["file"] = path(&e.path).unwrap_or(Value::Null);
            if e.path2.is_some() && matches!(e.op, Op::Rename | Op::Link | Op::Symlink) {
                v["file_result"] = path(&e.path2).unwrap_or(Value::Null);
            }
        }
        1007 => {
            v["process"] = match e.op {
                Op::Exec => json!({"pid": e.pid, "name": e.comm, "file": path(&e.path)}),
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
            let endpoint = match (&e.net, &e.path) {
                (Some(n), _) if n.addr.is_some() => json!({"ip": n.addr.map(|a| a.to_string()), "port": n.port}),
                (_, Some(p)) => {
                    v["unmapped"]["nono_unix_socket"] = json!(p);
                    json!({})
                }
                _ => json!({}),
            };
            if e.op == Op::Bind {
                v["src_endpoint"] = endpoint;
            } else {
                v["dst_endpoint"] = endpoint;
            }
            if let Some(n) = &e.net {
                v["connection_info"] = json!({
                    "protocol_name": n.proto().name(),
                    "protocol_ver_id": match i32::from(n.family) { libc::AF_INET => 4, libc::AF_INET6 => 6, _ => 0 },
                });
            }
        }
    }
    v
}
