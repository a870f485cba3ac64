//! Benchmark for `cargo xtask bench`: rollback snapshots of a tree of N
//! files and B bytes against `cp -a` and `rsync -a` of the same tree, side
//! by side in one run (page cache warm for all): the first snapshot
//! (every file copied), the second of the unchanged tree (a metadata
//! walk; `rsync -a` to its previous copy is the incremental comparison,
//! `cp -a` has none), and a restore after 1% of the files changed (against
//! `rsync -a --delete` and `cp -a` from a copy made before). Prints a
//! Markdown table (median of RUNS runs; the `cp -a` restore is run once).
//!
//! Usage: `bench_rollback <scratch dir> <files> <bytes> <runs> <label>`

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nono::snapshot::{self, Excludes, Filter, Root, SnapStore, TakeOptions};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Fast deterministic bytes (the content does not matter, only that it
/// differs between files).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn fill(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

/// The tree: 100 files per directory, directories ten to a parent, sizes
/// spread around `bytes / files`.
fn make_tree(tree: &Path, files: usize, bytes: u64) -> Res<Vec<PathBuf>> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let avg = (bytes / files as u64).max(1);
    let mut paths = Vec::with_capacity(files);
    for i in 0..files {
        let dir = tree.join(format!("d{:03}", i / 1000)).join(format!("e{:02}", (i / 100) % 10));
        if i % 100 == 0 {
            std::fs::create_dir_all(&dir)?;
        }
        let size = (avg / 2 + rng.next() % avg) as usize;
        let p = dir.join(format!("f{i}.dat"));
        std::fs::write(&p, rng.fill(size))?;
        paths.push(p);
    }
    Ok(paths)
}

/// Rewrites every hundredth file with other bytes of the same size.
fn change_one_percent(paths: &[PathBuf], seed: u64) -> Res<()> {
    let mut rng = Rng(seed | 1);
    for p in paths.iter().step_by(100) {
        let n = std::fs::metadata(p)?.len() as usize;
        std::fs::write(p, rng.fill(n))?;
    }
    Ok(())
}

fn sh(args: &[&str]) -> Res<Duration> {
    let t = Instant::now();
    let st = Command::new(args[0]).args(&args[1..]).status()?;
    if !st.success() {
        return Err(format!("{args:?}: {st}").into());
    }
    Ok(t.elapsed())
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn rm(p: &Path) {
    let _ = std::fs::remove_dir_all(p);
}

fn opts(tree: &Path) -> TakeOptions {
    TakeOptions {
        roots: vec![Root { dir: tree.to_path_buf(), filter: Filter::All, origin: "bench".into() }],
        skipped: Vec::new(),
        excludes: Excludes::new(&[], true).unwrap_or_default(),
        max_bytes: u64::MAX,
        command: vec!["bench".into()],
        cwd: "/".into(),
        audit: None,
        threads: std::thread::available_parallelism().map_or(2, |n| n.get().min(4)),
    }
}

fn cell(d: Option<Duration>, nono: Duration) -> String {
    match d {
        None => "not measured (not installed)".to_owned(),
        Some(d) => format!("{:.2} s ({:.2}x nono)", d.as_secs_f64(), d.as_secs_f64() / nono.as_secs_f64().max(1e-9)),
    }
}

fn main() -> Res<()> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let [dir, files, bytes, runs, label] = a.as_slice() else {
        return Err("usage: bench_rollback <scratch dir> <files> <bytes> <runs> <label>".into());
    };
    let (dir, files, bytes, runs) =
        (PathBuf::from(dir), files.parse::<usize>()?, snapshot::parse_size(bytes)?, runs.parse::<usize>()?.max(1));
    let tree = dir.join("tree");
    let store_dir = dir.join("store");
    let (cp_dst, rs_dst) = (dir.join("cp"), dir.join("rsync"));
    for p in [&tree, &store_dir, &cp_dst, &rs_dst] {
        rm(p);
    }
    let t = Instant::now();
    let paths = make_tree(&tree, files, bytes)?;
    eprintln!("bench_rollback: made {files} files in {:.1?}", t.elapsed());
    // Entries changed in the last two seconds are not trusted by their
    // metadata (a write in the same clock tick would not show): a real
    // tree is older than that.
    std::thread::sleep(Duration::from_millis(2100));
    let rsync = have("rsync");
    let tree_s = format!("{}/", tree.display());
    let rs_s = format!("{}/", rs_dst.display());

    // 1. First snapshot: an empty store each run.
    let (mut n1, mut c1, mut r1) = (Vec::new(), Vec::new(), Vec::new());
    let mut stats = None;
    for _ in 0..runs {
        rm(&store_dir);
        let store = SnapStore::create(&store_dir)?;
        let t = Instant::now();
        let taken = snapshot::take(&store, &opts(&tree))?;
        n1.push(t.elapsed());
        stats = Some(taken.meta.stats.clone());
        rm(&cp_dst);
        c1.push(sh(&["cp", "-a", &tree.display().to_string(), &cp_dst.display().to_string()])?);
        if rsync {
            rm(&rs_dst);
            r1.push(sh(&["rsync", "-a", &tree_s, &rs_s])?);
        }
    }
    // 2. Second snapshot of the unchanged tree; rsync to its last copy.
    let store = SnapStore::create(&store_dir)?;
    let (mut n2, mut c2, mut r2) = (Vec::new(), Vec::new(), Vec::new());
    let mut reused = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let taken = snapshot::take(&store, &opts(&tree))?;
        n2.push(t.elapsed());
        reused = taken.meta.stats.reused_files;
        rm(&cp_dst);
        c2.push(sh(&["cp", "-a", &tree.display().to_string(), &cp_dst.display().to_string()])?);
        if rsync {
            r2.push(sh(&["rsync", "-a", &tree_s, &rs_s])?);
        }
    }
    let id = store.list()?.last().map(|l| l.meta.id.clone()).ok_or("no snapshot")?;
    // 3. Restore after 1% of the files changed, from the snapshot / the copies.
    let (mut n3, mut c3, mut r3) = (Vec::new(), Vec::new(), Vec::new());
    let cp_back = format!("{}/.", cp_dst.display());
    for run in 0..runs {
        change_one_percent(&paths, 7 + run as u64)?;
        let t = Instant::now();
        let snap = store.load(&id)?;
        let mut cmp = snapshot::diff::compare(&snap, Vec::new())?;
        let steps = snapshot::restore::plan(&cmp, &[]);
        let objects = snapshot::object::Objects::open(&store.dir)?;
        let rep = snapshot::restore::execute(&mut cmp, &steps, &objects)?;
        n3.push(t.elapsed());
        if !rep.failed.is_empty() || rep.written as usize != paths.len().div_ceil(100) {
            return Err(format!("restore wrote {} files, failed {:?}", rep.written, rep.failed.first()).into());
        }
        if rsync {
            change_one_percent(&paths, 2007 + run as u64)?;
            r3.push(sh(&["rsync", "-a", "--delete", &rs_s, &tree_s])?);
        }
    }
    // Once, last: `cp -a` rewrites every file, so every ctime moves and a
    // later snapshot comparison would have to read the whole tree again.
    change_one_percent(&paths, 1007)?;
    c3.push(sh(&["cp", "-a", &cp_back, &tree.display().to_string()])?);
    let s = stats.unwrap_or_default();
    let opt = |v: Vec<Duration>| (!v.is_empty()).then(|| median(v));
    println!("| {label}: {files} files, {} | nono | cp -a | rsync -a |", snapshot::human(bytes));
    println!("|---|---|---|---|");
    let (a1, a2, a3) = (median(n1), median(n2), median(n3));
    println!(
        "| first snapshot ({} copied, {} cloned) | {:.2} s | {} | {} |",
        s.copied_files,
        s.reflinked_files,
        a1.as_secs_f64(),
        cell(Some(median(c1)), a1),
        cell(opt(r1), a1)
    );
    println!(
        "| second snapshot, tree unchanged ({reused} files reused; cp -a copies all again, rsync -a updates its copy) | {:.2} s | {} | {} |",
        a2.as_secs_f64(),
        cell(Some(median(c2)), a2),
        cell(opt(r2), a2)
    );
    println!(
        "| restore after 1% of the files changed (cp -a and rsync -a --delete from a copy) | {:.2} s | {} | {} |",
        a3.as_secs_f64(),
        cell(Some(median(c3)), a3),
        cell(opt(r3), a3)
    );
    for p in [&tree, &store_dir, &cp_dst, &rs_dst] {
        rm(p);
    }
    Ok(())
}
