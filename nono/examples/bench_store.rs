//! Benchmark for `cargo xtask bench`: audit-store ingest rate through the
//! batched writer, query latency on the resulting database, and its size.
//! Prints a Markdown table.
//!
//! Usage: `bench_store <db-path> <events>` (the database is recreated);
//! with `BENCH_INGEST_ONLY=1` it prints just the ingest rate. Ingest runs
//! `BENCH_CHAIN_ROUNDS` (default 3) times without and with the audit hash
//! chain, interleaved, and reports both medians.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nono::event::Op;
use nono::store::{self, Query, Store};

/// CPU time of the calling thread so far.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// User plus system CPU time of this process so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage writes one `rusage` into the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer cannot fail.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &raw mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[expect(clippy::cast_precision_loss, reason = "rates and sizes for people to read")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let db = PathBuf::from(args.next().ok_or("usage: bench_store <db-path> <events>")?);
    let n: u64 = args.next().map_or(Ok(1_000_000), |s| s.parse())?;
    let remove = || {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = db.as_os_str().to_owned();
            p.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(p));
        }
    };
    if std::env::var_os("BENCH_INGEST_ONLY").is_some() {
        remove();
        println!("{:.0}", store::bench_ingest(&db, n)?);
        return Ok(());
    }
    // The hash chain's cost: ingest without and with it, interleaved, each
    // into a fresh database; the last run (chained) is the one queried.
    let rounds = std::env::var("BENCH_CHAIN_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3usize).max(1);
    let (mut plain, mut chained) = (Vec::new(), Vec::new());
    // CPU time per event of the whole process (all writer threads): a
    // busy machine slows wall time for both modes alike, but CPU time
    // shows what the chain adds however the cores are shared.
    let (mut plain_cpu, mut chained_cpu) = (Vec::new(), Vec::new());
    let mut plain_size = 0;
    for _ in 0..rounds {
        for with_chain in [false, true] {
            remove();
            let cpu0 = cpu_time();
            let rate = store::bench_ingest_chained(&db, n, with_chain)?;
            let cpu = cpu_time().saturating_sub(cpu0).as_nanos() as f64 / n.max(1) as f64;
            eprintln!(
                "bench_store: ingest {} chain: {rate:.0} events/s, {cpu:.0} ns CPU/event",
                if with_chain { "with" } else { "without" }
            );
            if with_chain {
                chained.push(rate);
                chained_cpu.push(cpu);
            } else {
                plain.push(rate);
                plain_cpu.push(cpu);
                plain_size = std::fs::metadata(&db)?.len();
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (plain, rate) = (median(&mut plain), median(&mut chained));
    let (plain_cpu, chained_cpu) = (median(&mut plain_cpu), median(&mut chained_cpu));
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
    println!("| ingest ({n} events, batches of 4096; median of {rounds}) | {rate:.0} events/s |");
    println!(
        "| ingest without the hash chain (interleaved, same run) | {plain:.0} events/s (the chain costs {:.1}%) |",
        (plain / rate - 1.0) * 100.0
    );
    println!(
        "| CPU time per event, all threads, without / with the chain | {plain_cpu:.0} / {chained_cpu:.0} ns (+{:.1}%) |",
        (chained_cpu / plain_cpu - 1.0) * 100.0
    );
    // The chain's CPU cost alone: hashing synthetic events on this thread.
    let sample: Vec<_> = (0..100_000u64).map(store::synthetic_event).collect();
    let mut chain = store::chain::Chain::resume([0; 32], 0);
    let hash_start = thread_cpu_time();
    for e in &sample {
        std::hint::black_box(chain.push(e));
    }
    let hash_ns = thread_cpu_time().saturating_sub(hash_start).as_nanos() as f64 / sample.len() as f64;
    println!("| hashing alone (SHA-256 of each event's canonical bytes; CPU time of one thread) | {hash_ns:.0} ns/event |");
    let verify_start = Instant::now();
    let check = store.verify_chain(session)?;
    let verify_rate = check.events as f64 / verify_start.elapsed().as_secs_f64();
    println!(
        "| `audit verify` of the session | {verify_rate:.0} events/s ({}) |",
        if check.verified() { "verified" } else { "FAILED" }
    );
    println!("| read back for synthesis | {read_rate:.0} events/s |");
    for r in rows {
        println!("{r}");
    }
    println!("| database size | {:.1} MiB ({:.0} bytes/event) |", size as f64 / 1_048_576.0, size as f64 / n.max(1) as f64);
    println!(
        "| database size without the hash chain | {:.1} MiB ({:.1} bytes/event less) |",
        plain_size as f64 / 1_048_576.0,
        (size as f64 - plain_size as f64) / n.max(1) as f64
    );
    Ok(())
}
