//! Benchmark for `cargo xtask bench`: time to synthesise a profile from N
//! generated events that look like an agent's session (system reads, a
//! workdir with churn, temp files, caches, execs). Prints a Markdown table.
//!
//! Usage: `bench_synth <unused-db-path> <events>`

use std::time::Instant;

use nono::event::{Access, Event, Op, Outcome};
use nono::learn::{LearnContext, Synthesiser};

fn event(i: u64) -> Event {
    let (op, path, access) = match i % 10 {
        0..=3 => (
            Op::Open,
            format!("/usr/lib/x86_64-linux-gnu/lib{}.so.{}", i % 300, i % 7),
            Access { read: true, ..Access::default() },
        ),
        4 | 5 => (
            Op::Open,
            format!("/home/u/project/src/mod{}/file{}.rs", i % 40, i % 900),
            Access { read: true, write: i % 3 == 0, ..Access::default() },
        ),
        6 => (
            Op::Open,
            format!("/tmp/tmp.{:08x}", i.wrapping_mul(2_654_435_761)),
            Access { write: true, create: true, ..Access::default() },
        ),
        7 => (
            Op::Open,
            format!("/home/u/.cache/tool/{:016x}", i % 5000),
            Access { read: true, write: true, create: true, ..Access::default() },
        ),
        8 => (Op::Exec, format!("/usr/bin/tool{}", i % 20), Access { exec: true, ..Access::default() }),
        _ => (Op::Unlink, format!("/home/u/project/target/obj{}.o", i % 2000), Access::default()),
    };
    Event {
        time_ns: i as i64,
        pid: 1000 + (i % 50) as u32,
        tid: 1000 + (i % 50) as u32,
        ppid: 999,
        uid: 1000,
        comm: "agent".into(),
        exe: Some("/usr/bin/agent".into()),
        op,
        path: Some(path),
        path2: None,
        access,
        arg: 0,
        file_type: 0o100_000,
        outcome: Outcome::Ok,
        net: None,
        incomplete: false,
    }
}

fn main() {
    let n: u64 = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let ctx = LearnContext {
        home: "/home/u".into(),
        cwd: "/home/u/project".into(),
        tmpdir: "/tmp".into(),
        xdg_config_home: "/home/u/.config".into(),
        xdg_cache_home: "/home/u/.cache".into(),
        allow_sensitive: Vec::new(),
        runtime_dir: Some("/run/user/1000".into()),
        ssh_auth_sock: None,
        nameservers: vec!["127.0.0.53".parse().expect("ip")],
        anticipate: true,
        path_dirs: Vec::new(),
    };
    let events: Vec<Event> = (0..n).map(event).collect();
    let start = Instant::now();
    let mut s = Synthesiser::new(&ctx);
    for e in &events {
        s.add(e);
    }
    let learned = s.finish();
    let took = start.elapsed();
    println!("| events | time | events/s | rules |");
    println!("|---|---|---|---|");
    println!("| {n} | {took:.2?} | {:.0} | {} |", n as f64 / took.as_secs_f64(), learned.rules.len());
}
