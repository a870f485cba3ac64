//! `nono audit query --domain GLOB` (issue 23): the network proxy's
//! decisions (and DNS questions) by domain name, from the local store or
//! the fleet (`--db postgres://...`, `--host`).

use std::process::ExitCode;

use anyhow::bail;

use super::QueryArgs;
use crate::cli::common::{Format, source};
use crate::store::{DomainEvent, DomainQuery};

pub fn query(args: &QueryArgs, domain: &str) -> anyhow::Result<ExitCode> {
    let common = &args.common;
    if args.path.is_some() || args.op.is_some() || args.pid.is_some() || args.comm.is_some() || args.denied_by.is_some() {
        bail!("--domain combines with --session, --result denied, --limit and --host only");
    }
    let refused = match args.result {
        None => false,
        Some(crate::store::ResultClass::Denied) => true,
        Some(other) => bail!("--domain with --result {other:?}: only `denied` (refused by the proxy) is supported"),
    };
    let mut store = source::open(common)?;
    let session = match &args.session {
        Some(s) => Some(store.session(s)?.id),
        None => None,
    };
    let rows = store.domain_query(&DomainQuery {
        session,
        domain: Some(domain.to_owned()),
        refused,
        limit: args.limit.map(|l| l as u64),
    })?;
    print(&rows, common.format)?;
    Ok(ExitCode::SUCCESS)
}

fn time(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns)).map_or_else(|_| ns.to_string(), |t| t.to_string())
}

fn print(rows: &[DomainEvent], format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(rows)?),
        Format::Csv => {
            println!("session,time,source,domain,port,result,reason,addr,credential,pid");
            for r in rows {
                let fields = [
                    r.session_id.to_string(),
                    time(r.time_ns),
                    r.source.as_str().to_owned(),
                    r.domain.clone(),
                    r.port.to_string(),
                    r.result_text().to_owned(),
                    r.reason.clone().unwrap_or_default(),
                    r.addr.clone().unwrap_or_default(),
                    r.credential.clone().unwrap_or_default(),
                    r.pid.map(|p| p.to_string()).unwrap_or_default(),
                ];
                let quoted: Vec<String> = fields.iter().map(|f| format!("\"{}\"", f.replace('"', "\"\""))).collect();
                println!("{}", quoted.join(","));
            }
        }
        Format::Table => {
            println!("{:<7} {:<30} {:<10} {:<40} {:<8} DETAIL", "SESSION", "TIME", "SOURCE", "DOMAIN:PORT", "RESULT");
            for r in rows {
                let dest = format!("{}:{}", crate::event::display_safe(&r.domain), r.port);
                let detail = [r.reason.as_deref(), r.addr.as_deref(), r.credential.as_deref().map(str::trim)]
                    .into_iter()
                    .flatten()
                    .map(crate::event::display_safe)
                    .collect::<Vec<_>>()
                    .join("; ");
                println!(
                    "{:<7} {:<30} {:<10} {:<40} {:<8} {}",
                    r.session_id,
                    time(r.time_ns),
                    r.source.as_str(),
                    dest,
                    r.result_text(),
                    detail
                );
            }
            println!("{} row(s)", rows.len());
        }
    }
    Ok(())
}
