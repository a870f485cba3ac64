//! Benchmark for `cargo xtask bench`: audit-store ingest rate through the
//! batched writer, query latency on the resulting database, and its size.
//! Prints a Markdown table.
//!
//! Usage: `bench_store <db-path> <events>` (the database is recreated);
//! with `BENCH_INGEST_ONLY=1` it prints just the ingest rate.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nono::event::Op;
use nono::store::{self, Query, Store};

#[expect(clippy::cast_precision_loss, reason = "rates and sizes for people to read")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let db = PathBuf::from(args.next().ok_or("usage: bench_store <db-path> <events>")?);
    let n: u64 = args.next().map_or(Ok(1_000_000), |s| s.parse())?;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
    let rate = store::bench_ingest(&db, n)?;
    if std::env::var_os("BENCH_INGEST_ONLY").is_some() {
        println!("{rate:.0}");
        return Ok(());
    }
    let store = Store::open_existing(&db)?;
    let session = store.session("last")?.id;
    let mut rows = Vec::new();
    let queries = [
        (
            "session + path glob + op",
            Query {
                session: Some(session),
                path_glob: Some("/home/user/project/src/dir7/file1*.c".into()),
                op: Some(Op::Open),
                ..Query::default()
            },
        ),
        (
            "path glob, all sessions",
            Query { path_glob: Some("/home/user/project/src/dir3/file40?.c".into()), ..Query::default() },
        ),
        ("session + pid + limit 100", Query { session: Some(session), pid: Some(1003), limit: Some(100), ..Query::default() }),
    ];
    for (name, q) in &queries {
        let mut best = Duration::MAX;
        let mut hits = 0;
        for _ in 0..5 {
            let t = Instant::now();
            hits = store.query(q)?.len();
            best = best.min(t.elapsed());
        }
        rows.push(format!("| query: {name} | {best:.2?} ({hits} rows, best of 5) |"));
    }
    let t = Instant::now();
    let summary = store.summary(session, 20)?;
    rows.push(format!("| summary of the session ({} events) | {:.2?} |", summary.events, t.elapsed()));
    let t = Instant::now();
    let mut read = 0u64;
    store.events(session, |_| {
        read += 1;
        Ok(())
    })?;
    let read_rate = read as f64 / t.elapsed().as_secs_f64();
    let size = std::fs::metadata(&db)?.len();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| ingest ({n} events, batches of 4096) | {rate:.0} events/s |");
    println!("| read back for synthesis | {read_rate:.0} events/s |");
    for r in rows {
        println!("{r}");
    }
    println!("| database size | {:.1} MiB ({:.0} bytes/event) |", size as f64 / 1_048_576.0, size as f64 / n.max(1) as f64);
    Ok(())
}
