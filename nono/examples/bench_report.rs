//! Benchmark for `cargo xtask bench`: the HTML report of a made-up session
//! of N events ([`nono::report::synthetic`]): aggregation and rendering
//! time, and the page's size. Writes the page for the bench to load in a
//! browser, and prints Markdown table rows.
//!
//! Usage: `bench_report <page.html> <events>`

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(page), Some(events)) = (args.next(), args.next()) else {
        return Err("usage: bench_report <page.html> <events>".into());
    };
    let events: i64 = events.parse()?;
    let started = Instant::now();
    let data = nono::report::synthetic::session(events, 900, nono::report::Header::default());
    let aggregated = started.elapsed();
    let render_started = std::time::Instant::now();
    let html = nono::report::html::render(&data)?;
    let rendered = render_started.elapsed();
    std::fs::write(&page, &html)?;
    println!("| events aggregated (generated in the same loop) | {events} in {aggregated:.2?} |");
    println!("| tree nodes (cap {}) | {} |", nono::report::MAX_NODES, data.nodes.len());
    println!("| page rendered to HTML | {rendered:.2?} |");
    println!("| page size | {:.1} MiB |", f64::from(u32::try_from(html.len() >> 10)?) / 1024.0);
    Ok(())
}
