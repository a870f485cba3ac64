//! Benchmark for `cargo xtask bench --only push`: the rate of `nono audit
//! push` (binary COPY from the local store to `PostgreSQL`), end to end:
//! reading the local `SQLite` database, encoding, the network, and the
//! server's inserts and commits. Prints a Markdown table.
//!
//! Usage: `bench_push <db-path> <postgres-url> <events>` (the local
//! database is recreated; the fleet schema is migrated if needed).

use std::path::PathBuf;

use nono::fleet::{self, FleetUrl, Host, PushOptions};
use nono::store::{self, Store};

#[expect(clippy::cast_precision_loss, reason = "rates for people to read")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bench_push <db-path> <postgres-url> <events>";
    let db = PathBuf::from(args.next().ok_or(usage)?);
    let url = FleetUrl::parse(&args.next().ok_or(usage)?)?;
    let n: u64 = args.next().map_or(Ok(1_000_000), |s| s.parse())?;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
    store::bench_ingest(&db, n)?;
    let store = Store::open_read_only(&db)?;
    let mut client = fleet::connect(&url)?.client;
    fleet::migrate(&mut client)?;
    // A host id of its own per run: every run pushes afresh.
    let host = Host { id: format!("bench-{}", jiff::Timestamp::now().as_nanosecond()), name: "bench".to_owned() };
    let cpu = || {
        nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).map_or(0.0, |u| {
            let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            t(u.user_time()) + t(u.system_time())
        })
    };
    let cpu_before = cpu();
    let report = fleet::push(&mut client, &store, &host, &PushOptions::default(), |_| {})?;
    let client_cpu = cpu() - cpu_before;
    let rate = report.events as f64 / report.secs.max(1e-9);
    println!("| events | slice | time | rate | nono's CPU time |");
    println!("|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {:.2} s | {:.0} events/s | {client_cpu:.2} s |",
        report.events,
        PushOptions::default().slice,
        report.secs,
        rate
    );
    Ok(())
}
