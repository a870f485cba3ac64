//! `cargo xtask bench`: side-by-side measurements, reported as ratios
//! within one run (these machines are noisy; absolute figures drift).
//!
//! 0. fixed cost of a session: `nono learn -- true` against `true`;
//! 1. recording overhead: native vs `nono learn` vs `strace -f`, on a
//!    file-heavy, a process-heavy and a build workload (median of N runs;
//!    the workload times itself, so nono's fixed program-load cost is
//!    reported separately rather than hidden in the ratio), and the cost
//!    to a busy process outside the traced tree while a session runs;
//! 2. event throughput and loss at increasing paced rates;
//! 3. store ingest and query latency, 4. synthesis time (nono's
//!    `bench_store` / `bench_synth` examples);
//! 5. enforcement start-up (`nono run -- true` vs `true`, vs `bwrap`);
//! 6. peak RSS of nono in each (from `wait4`'s rusage);
//! 7. what enforcement costs a running command: native vs `nono run`
//!    (Landlock, the seccomp baseline, the broker) vs `nono run
//!    --no-broker`, on create-and-rename, read and connect-heavy loops;
//! 8. `nono audit push` to a throwaway PostgreSQL;
//! 9. the HTML report of a 1M-event session: aggregation, page size and
//!    the time headless Chromium takes to render it;
//! 10. rollback snapshots of a 100k-file, 1 GiB tree (first, second,
//!    restore after 1% changed) against `cp -a` and `rsync -a`, on the
//!    target directory's filesystem and on a loop-mounted XFS with reflinks.
//!
//! `--quick` shrinks everything to a smoke run that asserts nothing but
//! that the harness still works; CI runs it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::setup::sh;
use crate::{target_dir, workspace_root};

mod rollback;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Tiny sizes, one run each: keeps the harness working, asserts nothing.
    #[arg(long)]
    pub quick: bool,
    /// Runs per measurement (median reported).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Events in the store benchmark's database.
    #[arg(long, default_value_t = 10_000_000)]
    pub store_events: u64,
    /// Skip the LSM-backend recording overhead measured inside the
    /// debian-6.12 VM (this host refuses LSM programs).
    #[arg(long)]
    pub no_vm: bool,
    /// Run only these sections (repeatable): fixed, recording, outside,
    /// vm, throughput, store, startup, enforcement, push, report, proxy,
    /// rollback. The report is then written to report-partial.md.
    #[arg(
        long,
        value_parser = ["fixed", "recording", "outside", "vm", "throughput", "store", "startup", "enforcement", "push", "report", "proxy", "rollback"]
    )]
    pub only: Vec<String>,
    /// Internal: what the VM half runs in the guest. Only the recording
    /// overhead, with the LSM backend and the tracepoint backend beside it,
    /// smaller sizes; the table is
    /// printed between markers for the host to pick up.
    #[arg(long, hide = true)]
    pub guest: bool,
}

struct Ctx {
    nono: PathBuf,
    dir: PathBuf,
    runs: usize,
    quick: bool,
    /// Running as the VM half (`--guest`).
    guest: bool,
    /// The `nono learn --backend` of each recording column (`None`: auto),
    /// measured side by side in the same loop.
    backends: Vec<Option<&'static str>>,
    /// Workload sizes: files read, `sh -c` children, C files built.
    sizes: (usize, usize, usize),
    report: String,
}

impl Ctx {
    /// A context whose scratch directory `dir` (in the target dir) exists.
    fn new(
        root: &Path,
        dir: &str,
        args: &BenchArgs,
        backends: Vec<Option<&'static str>>,
        sizes: (usize, usize, usize),
    ) -> anyhow::Result<Self> {
        let dir = target_dir(root).join(dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Ctx {
            nono: target_dir(root).join("release/nono"),
            dir,
            runs: if args.quick { 1 } else { args.runs.max(1) },
            quick: args.quick,
            guest: args.guest,
            backends,
            sizes,
            report: String::new(),
        })
    }
}

/// Marks the guest's report in the serial console output.
const GUEST_BEGIN: &str = "NONO-BENCH-REPORT-BEGIN";
const GUEST_END: &str = "NONO-BENCH-REPORT-END";

/// One timed run: wall time of the workload itself, and the peak RSS of
/// the process we started (nono, strace or the workload).
#[derive(Clone, Copy, Debug)]
struct Sample {
    workload: Duration,
    /// CPU time (user + system) of the workload's own processes, as its
    /// shell's `times` reports it. Recording code running in the kernel on
    /// their behalf (the BPF programs) is charged here; nono's own threads
    /// are not, even when they share the workload's CPU.
    cpu: Duration,
    total: Duration,
    max_rss_kib: i64,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let root = workspace_root()?;
    if args.guest {
        return guest(args, &root);
    }
    sh(Command::new("cargo").args(["build", "--release", "--locked", "-p", "nono", "--examples"]).current_dir(&root))?;
    let sizes = if args.quick { (500, 50, 4) } else { (20_000, 2_000, 40) };
    let mut ctx = Ctx::new(&root, "bench", args, vec![None], sizes)?;
    let machine = machine();
    writeln!(ctx.report, "machine: {machine}")?;
    writeln!(ctx.report, "command: cargo xtask bench{}\n", if args.quick { " --quick" } else { "" })?;
    let want = |section: &str| args.only.is_empty() || args.only.iter().any(|o| o == section);
    if want("fixed") {
        fixed_cost(&mut ctx)?;
    }
    if want("recording") || want("outside") {
        make_tree(&ctx)?;
    }
    if want("recording") {
        recording_overhead(&mut ctx)?;
    }
    if want("outside") {
        outside_cost(&mut ctx)?;
    }
    if !args.no_vm && want("vm") {
        lsm_in_vm(&mut ctx, &root, args)?;
    }
    if want("throughput") {
        throughput(&mut ctx)?;
    }
    if want("store") {
        store_and_synthesis(&mut ctx, &root, if args.quick { 20_000 } else { args.store_events })?;
    }
    if want("startup") {
        startup(&mut ctx)?;
    }
    if want("enforcement") {
        make_tree(&ctx)?;
        enforcement_cost(&mut ctx)?;
    }
    if want("push") {
        push_rate(&mut ctx, &root, if args.quick { 50_000 } else { 2_000_000 })?;
    }
    if want("report") {
        html_report(&mut ctx, &root, if args.quick { 20_000 } else { 1_000_000 })?;
    }
    if want("proxy") {
        proxy_cost(&mut ctx, &root, if args.quick { 50 } else { 1_000 })?;
    }
    if want("rollback") {
        rollback::rollback(&mut ctx, &root)?;
    }
    println!("{}", ctx.report);
    let out = ctx.dir.join(if !args.only.is_empty() {
        "report-partial.md"
    } else if args.quick {
        "report-quick.md"
    } else {
        "report.md"
    });
    std::fs::write(&out, &ctx.report)?;
    eprintln!("bench: report written to {}", out.display());
    Ok(())
}

/// Boots debian-6.12 (see `vm-test`) and runs this program's guest half
/// there; its table becomes section 1b of the report.
fn lsm_in_vm(ctx: &mut Ctx, root: &Path, args: &BenchArgs) -> anyhow::Result<()> {
    eprintln!("bench: LSM backend inside the debian-6.12 VM");
    let me = std::env::current_exe().context("locating the xtask binary")?;
    let mut c = Command::new(&me);
    // The guest's scratch tmpfs is this target dir's `tmp/`, wherever it is.
    c.args(["vm-test", "--kernel", "debian-6.12", "--timeout", "3000", "--", "env"])
        .arg(format!("CARGO_TARGET_DIR={}", target_dir(root).display()))
        .arg(&me)
        .args(["bench", "--guest"]);
    c.args(["--runs", &ctx.runs.to_string()]);
    if args.quick {
        c.arg("--quick");
    }
    let out = c.stderr(Stdio::inherit()).output().context("running vm-test for the LSM bench")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut table = String::new();
    let mut inside = false;
    for line in text.lines() {
        // vm-test prefixes guest lines with "[kernel] ".
        let line = line.split_once("] ").map_or(line, |(_, rest)| rest);
        if line.starts_with(GUEST_BEGIN) {
            inside = true;
        } else if line.starts_with(GUEST_END) {
            inside = false;
        } else if let Some(title) = line.strip_prefix("## ").filter(|_| inside) {
            // The guest's own section titles, one level down.
            let _ = writeln!(table, "**{title}**");
        } else if inside {
            table.push_str(line);
            table.push('\n');
        }
    }
    if !out.status.success() || table.is_empty() {
        bail!("the LSM bench in the VM failed ({}); rerun with --no-vm to skip it", out.status);
    }
    writeln!(
        ctx.report,
        "## 1b. Recording overhead with the LSM backend, inside the debian-6.12 VM (QEMU; compare ratios only, and the LSM column with the tracepoint column beside it)\n\n{table}"
    )?;
    Ok(())
}

/// The guest half: recording overhead only, the LSM backend with the
/// tracepoint backend in the same loop, sizes cut for
/// emulated CPUs; the scratch space is the target dir's tmpfs `tmp/`.
fn guest(args: &BenchArgs, root: &Path) -> anyhow::Result<()> {
    // Emulated CPUs run these ~50x slower than the host.
    let sizes = if args.quick { (200, 20, 2) } else { (1_000, 40, 3) };
    // The tracepoint backend beside it, in the same loop: the emulated CPU
    // inflates every ratio, and this column shows by how much.
    let mut ctx = Ctx::new(root, "tmp/bench", args, vec![Some("lsm"), Some("tracepoint")], sizes)?;
    writeln!(ctx.report, "guest: {}\n", machine())?;
    fixed_cost(&mut ctx)?;
    recording_overhead(&mut ctx)?;
    println!("{GUEST_BEGIN}\n{}{GUEST_END}", ctx.report);
    Ok(())
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned()))
        .unwrap_or_default();
    format!("{cores} cores ({cpu}), kernel {}", kernel.trim())
}

/// Runs `cmd`, returning its wall time and peak RSS (KiB) via wait4.
fn timed(cmd: &mut Command) -> anyhow::Result<(Duration, i64, i32)> {
    let start = Instant::now();
    let child = cmd.stdin(Stdio::null()).spawn().with_context(|| format!("starting {cmd:?}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our unwaited child; status and usage are valid out-pointers.
    let r = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
    if r != pid {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    std::mem::forget(child);
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) };
    Ok((start.elapsed(), usage.ru_maxrss, code))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The workload script wrapped so it writes its own duration (ns) to
/// `stamp`, then its CPU times (`times`: the shell's, then its children's).
fn self_timed(script: &str, stamp: &Path) -> String {
    format!("s=$(date +%s%N)\n{script}\ne=$(date +%s%N)\necho $((e - s)) > '{0}'\ntimes >> '{0}'", stamp.display())
}

/// The wall time and the total CPU time in a stamp [`self_timed`] wrote.
/// `times` prints `1m2.5s 0m0.25s` pairs (dash and bash alike).
fn parse_stamp(text: &str) -> anyhow::Result<(Duration, Duration)> {
    let mut lines = text.lines();
    let ns: u64 = lines.next().unwrap_or_default().trim().parse().context("reading the workload's own time")?;
    let mut cpu = 0.0;
    for field in lines.flat_map(str::split_whitespace) {
        let (m, s) = field
            .strip_suffix('s')
            .and_then(|f| f.split_once('m'))
            .with_context(|| format!("reading `times` output {field:?}"))?;
        cpu += m.parse::<f64>()? * 60.0 + s.parse::<f64>()?;
    }
    Ok((Duration::from_nanos(ns), Duration::from_secs_f64(cpu)))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Native,
    /// `nono learn`, with this `--backend` (`None`: auto).
    Nono(Option<&'static str>),
    Strace,
    /// `nono run --profile P`: Landlock, the seccomp baseline and the broker.
    Run(&'static str),
    /// The same without the broker (hidden `--no-broker`).
    RunNoBroker(&'static str),
}

fn run_mode(ctx: &Ctx, mode: Mode, script: &str, cwd: &Path) -> anyhow::Result<Sample> {
    let stamp = ctx.dir.join("stamp");
    let wrapped = self_timed(script, &stamp);
    let mut cmd = match mode {
        Mode::Native => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(&wrapped);
            c
        }
        Mode::Nono(backend) => {
            let mut c = Command::new(&ctx.nono);
            c.arg("learn")
                .args(backend.map(|b| format!("--backend={b}")))
                .arg("--no-progress")
                .arg("--force")
                .arg("--db")
                .arg(ctx.dir.join("overhead.db"))
                .arg("--output")
                .arg(ctx.dir.join("overhead.json"))
                .args(["--", "sh", "-c"])
                .arg(&wrapped);
            c
        }
        Mode::Run(profile) | Mode::RunNoBroker(profile) => {
            let mut c = Command::new(&ctx.nono);
            c.arg("run")
                .args((matches!(mode, Mode::RunNoBroker(_))).then_some("--no-broker"))
                .arg("--profile")
                .arg(profiles_dir(ctx).join(profile))
                .args(["--", "sh", "-c"])
                .arg(&wrapped);
            c
        }
        Mode::Strace => {
            let mut c = Command::new("strace");
            c.args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=file,network,process", "sh", "-c"]).arg(&wrapped);
            c
        }
    };
    cmd.current_dir(cwd).stdout(Stdio::null()).stderr(Stdio::null());
    let (total, rss, code) = timed(&mut cmd)?;
    if code != 0 {
        bail!("workload failed with {code}: {cmd:?}");
    }
    let (workload, cpu) = parse_stamp(&std::fs::read_to_string(&stamp)?)?;
    Ok(Sample { workload, cpu, total, max_rss_kib: rss })
}

/// Where the small files live: one tree per size, so a quick run never
/// reads the full run's tree.
fn tree_dir(ctx: &Ctx) -> PathBuf {
    ctx.dir.join(format!("tree-{}", ctx.sizes.0))
}

/// The small files the file-heavy and read-heavy workloads read.
fn make_tree(ctx: &Ctx) -> anyhow::Result<()> {
    let files = ctx.sizes.0;
    let tree = tree_dir(ctx);
    if !tree.join(format!("d{}/f{}", (files - 1) / 100, files - 1)).exists() {
        let _ = std::fs::remove_dir_all(&tree);
        for i in 0..files {
            let d = tree.join(format!("d{}", i / 100));
            std::fs::create_dir_all(&d)?;
            std::fs::write(d.join(format!("f{i}")), format!("file {i}\n"))?;
        }
    }
    Ok(())
}

fn recording_overhead(ctx: &mut Ctx) -> anyhow::Result<()> {
    let (files, procs, cfiles) = ctx.sizes;
    let tree = tree_dir(ctx);
    let proj = ctx.dir.join("cproj");
    let _ = std::fs::remove_dir_all(&proj);
    std::fs::create_dir_all(&proj)?;
    let mut objs = String::new();
    for i in 0..cfiles {
        std::fs::write(proj.join(format!("m{i}.c")), format!("int f{i}(int x) {{ return x * {i} + 1; }}\n"))?;
        write!(objs, " m{i}.o")?;
    }
    std::fs::write(proj.join("main.c"), "int main(void) { return 0; }\n")?;
    std::fs::write(
        proj.join("Makefile"),
        format!("app: main.o{objs}\n\tcc -o app main.o{objs}\n%.o: %.c\n\tcc -O1 -c $< -o $@\n"),
    )?;
    let workloads = [
        (
            format!("file-heavy: read {files} small files"),
            format!("find '{}' -type f -print0 | xargs -0 cat > /dev/null", tree.display()),
            ctx.dir.clone(),
        ),
        (
            format!("process-heavy: {procs} sh -c children"),
            format!("i=0; while [ $i -lt {procs} ]; do sh -c true; i=$((i+1)); done"),
            ctx.dir.clone(),
        ),
        (format!("build: make of {cfiles} C files"), "rm -f *.o app; make -s -j2".to_owned(), proj.clone()),
    ];
    let strace = Command::new("strace").arg("-V").output().is_ok_and(|o| o.status.success());
    let backends = ctx.backends.clone();
    let label = |b: Option<&str>| b.map_or_else(|| "nono learn".to_owned(), |b| format!("nono learn --backend={b}"));
    let names: Vec<&str> = backends.iter().map(|b| b.unwrap_or("auto-selected")).collect();
    writeln!(
        ctx.report,
        "## 1. Recording overhead, {} backend (median of {} runs; ratio = workload time / native)\n",
        names.join(" and "),
        ctx.runs
    )?;
    // Not in the guest: its tick-based CPU accounting under TCG charged
    // the recorded workloads 0.85-0.96x their native CPU time, which no
    // recorder can cause.
    let cpu_column = !ctx.guest;
    if cpu_column {
        writeln!(
            ctx.report,
            "CPU ratio: the workload's own CPU time (user + system, the recording programs included) against \
             native; it leaves out nono's threads, which compete with the workload when the cores are busy.\n"
        )?;
    }
    let mut head = "| workload | native |".to_owned();
    for b in &backends {
        write!(head, " {} | ratio |{}", label(*b), if cpu_column { " CPU ratio |" } else { "" })?;
    }
    head.push_str(" strace -f | ratio | nono fixed start+stop | peak RSS (nono or largest descendant) |");
    let per_backend = if cpu_column { 3 } else { 2 };
    writeln!(ctx.report, "{head}\n|{}", "---|".repeat(6 + per_backend * backends.len()))?;
    for (name, script, cwd) in &workloads {
        eprintln!("bench: {name}");
        // Warm the page cache once so the first mode measured is not penalised.
        run_mode(ctx, Mode::Native, script, cwd)?;
        let mut native = Vec::new();
        let mut native_cpu = Vec::new();
        let mut nono = vec![Vec::new(); backends.len()];
        let mut nono_cpu = vec![Vec::new(); backends.len()];
        let mut nono_fixed = vec![Vec::new(); backends.len()];
        let mut rss = vec![0; backends.len()];
        let mut st = Vec::new();
        // Interleave the modes so drift affects all of them alike.
        for _ in 0..ctx.runs {
            let s = run_mode(ctx, Mode::Native, script, cwd)?;
            native.push(s.workload);
            native_cpu.push(s.cpu);
            for (i, b) in backends.iter().enumerate() {
                let s = run_mode(ctx, Mode::Nono(*b), script, cwd)?;
                nono[i].push(s.workload);
                nono_cpu[i].push(s.cpu);
                nono_fixed[i].push(s.total.saturating_sub(s.workload));
                rss[i] = rss[i].max(s.max_rss_kib);
            }
            if strace {
                st.push(run_mode(ctx, Mode::Strace, script, cwd)?.workload);
            }
        }
        let n = median(native);
        let ratio = |d: Duration| d.as_secs_f64() / n.as_secs_f64().max(1e-9);
        let nc = median(native_cpu);
        let mut row = format!("| {name} | {n:.2?} |");
        for (times, cpu) in nono.into_iter().zip(nono_cpu) {
            let l = median(times);
            write!(row, " {l:.2?} | {:.2}x |", ratio(l))?;
            if cpu_column {
                write!(row, " {:.2}x |", median(cpu).as_secs_f64() / nc.as_secs_f64().max(1e-9))?;
            }
        }
        if strace {
            let s = median(st);
            write!(row, " {s:.2?} | {:.2}x |", ratio(s))?;
        } else {
            row.push_str(" n/a | strace not installed |");
        }
        let fixed: Vec<String> = nono_fixed.into_iter().map(|f| format!("{:.2?}", median(f))).collect();
        let mib: Vec<String> = rss.iter().map(|r| format!("{} MiB", r / 1024)).collect();
        writeln!(ctx.report, "{row} {} | {} |", fixed.join(" / "), mib.join(" / "))?;
    }
    writeln!(ctx.report)?;
    Ok(())
}

/// `nono learn -- true` against `true`: what every `learn` and `run
/// --audit` pays before and after the command (loading, verifying and
/// attaching the programs, the database, the profile, detaching).
fn fixed_cost(ctx: &mut Ctx) -> anyhow::Result<()> {
    let n = if ctx.quick { 3 } else { 20 };
    eprintln!("bench: fixed cost ({n} runs)");
    let backends = ctx.backends.clone();
    let mut bare = Vec::new();
    let mut learn = vec![Vec::new(); backends.len()];
    for _ in 0..n {
        bare.push(timed(Command::new("true").stdout(Stdio::null()))?.0);
        for (i, backend) in backends.iter().enumerate() {
            let mut c = Command::new(&ctx.nono);
            c.arg("learn")
                .args(backend.map(|b| format!("--backend={b}")))
                .args(["--no-progress", "--force", "--db"])
                .arg(ctx.dir.join("fixed.db"))
                .arg("--output")
                .arg(ctx.dir.join("fixed.json"))
                .args(["--", "true"])
                .current_dir(&ctx.dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let (d, _, code) = timed(&mut c)?;
            if code != 0 {
                bail!("nono learn -- true failed with {code}");
            }
            learn[i].push(d);
        }
    }
    let b = median(bare);
    writeln!(ctx.report, "## 0. Fixed cost of a recording session (median of {n}; goal: < 300 ms over `true`)\n")?;
    writeln!(ctx.report, "| command | median | slowest | extra vs `true` |")?;
    writeln!(ctx.report, "|---|---|---|---|")?;
    writeln!(ctx.report, "| true | {b:.2?} | - | - |")?;
    for (backend, times) in backends.iter().zip(learn) {
        let worst = times.iter().max().copied().unwrap_or_default();
        let l = median(times);
        writeln!(
            ctx.report,
            "| nono learn{} -- true | {l:.2?} | {worst:.2?} | {:.2?} |",
            backend.map(|b| format!(" --backend={b}")).unwrap_or_default(),
            l.saturating_sub(b)
        )?;
    }
    writeln!(ctx.report)?;
    Ok(())
}

/// The file-heavy workload run natively by a process outside any traced
/// tree, with and without a `nono learn` session (of an idle command)
/// running beside it: what recording costs the rest of the machine. Every
/// process passes the syscall tracepoints; outside the tree a recorded
/// syscall costs one map lookup at entry and one at exit.
fn outside_cost(ctx: &mut Ctx) -> anyhow::Result<()> {
    let files = ctx.sizes.0;
    let script = format!("find '{}' -type f -print0 | xargs -0 cat > /dev/null", tree_dir(ctx).display());
    eprintln!("bench: cost outside the traced tree");
    let mut alone = Vec::new();
    let mut beside = Vec::new();
    let ready = ctx.dir.join("outside-ready");
    for _ in 0..ctx.runs {
        alone.push(run_mode(ctx, Mode::Native, &script, &ctx.dir)?.workload);
        let _ = std::fs::remove_file(&ready);
        let mut session = Command::new(&ctx.nono)
            .arg("learn")
            .args(ctx.backends[0].map(|b| format!("--backend={b}")))
            .args(["--no-progress", "--force", "--db"])
            .arg(ctx.dir.join("outside.db"))
            .arg("--output")
            .arg(ctx.dir.join("outside.json"))
            .args(["--", "sh", "-c"])
            .arg(format!("touch '{}'; exec sleep 3600", ready.display()))
            .current_dir(&ctx.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the idle learn session")?;
        let started = Instant::now();
        while !ready.exists() {
            if started.elapsed() > Duration::from_mins(2) {
                let _ = session.kill();
                bail!("the idle learn session did not start");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let measured = run_mode(ctx, Mode::Native, &script, &ctx.dir);
        // nono forwards SIGTERM to the command and then exits.
        // SAFETY: plain kill(2) of our own child.
        unsafe { libc::kill(session.id() as libc::pid_t, libc::SIGTERM) };
        let _ = session.wait();
        beside.push(measured?.workload);
    }
    let (a, b) = (median(alone), median(beside));
    writeln!(
        ctx.report,
        "## 1c. Cost to a process outside the traced tree (read {files} small files natively; median of {})\n",
        ctx.runs
    )?;
    writeln!(ctx.report, "| no session | a learn session beside it | ratio |")?;
    writeln!(ctx.report, "|---|---|---|")?;
    writeln!(ctx.report, "| {a:.2?} | {b:.2?} | {:.2}x |\n", b.as_secs_f64() / a.as_secs_f64().max(1e-9))?;
    Ok(())
}

/// A paced event generator: `rate` opens per second for `secs` seconds.
const GENERATOR: &str = r#"
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long rate = atol(argv[1]); double secs = atof(argv[2]);
    struct timespec t0, now; clock_gettime(CLOCK_MONOTONIC, &t0);
    long done = 0;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        double el = (now.tv_sec - t0.tv_sec) + (now.tv_nsec - t0.tv_nsec) / 1e9;
        if (el >= secs) break;
        long want = rate > 0 ? (long)(el * rate) : done + 1000;
        while (done < want) { int fd = open("/etc/hostname", O_RDONLY); if (fd >= 0) close(fd); done++; }
        if (rate > 0) { struct timespec ts = {0, 200000}; nanosleep(&ts, 0); }
    }
    return 0;
}
"#;

fn throughput(ctx: &mut Ctx) -> anyhow::Result<()> {
    let src = ctx.dir.join("gen.c");
    let bin = ctx.dir.join("gen");
    std::fs::write(&src, GENERATOR)?;
    sh(Command::new("cc").args(["-O2", "-o"]).arg(&bin).arg(&src))?;
    let secs = if ctx.quick { "0.5" } else { "4" };
    let rates: &[u64] = if ctx.quick { &[20_000] } else { &[50_000, 100_000, 200_000, 400_000, 800_000, 0] };
    writeln!(ctx.report, "## 2. Event throughput and loss (paced open/close loop, {secs} s each, 0 = unpaced)\n")?;
    writeln!(ctx.report, "| target rate | recorded events/s | lost | loss rate | peak RSS (nono or generator) |")?;
    writeln!(ctx.report, "|---|---|---|---|---|")?;
    for &rate in rates {
        let db = ctx.dir.join("throughput.db");
        let _ = std::fs::remove_file(&db);
        let mut c = Command::new(&ctx.nono);
        c.args(["learn", "--no-progress", "--force", "--format", "json", "--db"])
            .arg(&db)
            .arg("--output")
            .arg(ctx.dir.join("throughput.json"))
            .arg("--")
            .arg(&bin)
            .arg(rate.to_string())
            .arg(secs)
            .stderr(Stdio::null());
        let out_path = ctx.dir.join("throughput-summary.json");
        c.stdout(std::fs::File::create(&out_path)?);
        let (_, rss, code) = timed(&mut c)?;
        if code != 0 {
            bail!("nono learn of the generator failed with {code}");
        }
        let summary: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&out_path)?).context("nono learn --format json summary")?;
        let events = summary["events"].as_u64().unwrap_or(0);
        let lost = summary["lost"].as_u64().unwrap_or(0);
        let dur_ms = summary["duration_ms"].as_u64().unwrap_or(1).max(1);
        writeln!(
            ctx.report,
            "| {} | {:.0} | {lost} | {:.3}% | {} MiB |",
            if rate == 0 { "unpaced".to_owned() } else { rate.to_string() },
            events as f64 / (dur_ms as f64 / 1000.0),
            lost as f64 * 100.0 / (events + lost).max(1) as f64,
            rss / 1024
        )?;
    }
    writeln!(ctx.report)?;
    Ok(())
}

fn store_and_synthesis(ctx: &mut Ctx, root: &Path, events: u64) -> anyhow::Result<()> {
    for (title, example, extra) in [
        ("3. Store: ingest rate, query latency, size", "bench_store", vec![events.to_string()]),
        (
            "4. Synthesis: events to profile",
            "bench_synth",
            vec![if ctx.quick { "20000".to_owned() } else { "1000000".to_owned() }],
        ),
    ] {
        eprintln!("bench: {example}");
        let bin = target_dir(root).join("release/examples").join(example);
        let mut c = Command::new(&bin);
        c.arg(ctx.dir.join(format!("{example}.db"))).args(&extra).stderr(Stdio::inherit()).stdout(Stdio::piped());
        let out = c.output().with_context(|| format!("running {}", bin.display()))?;
        if !out.status.success() {
            bail!("{example} failed: {}", out.status);
        }
        writeln!(ctx.report, "## {title}\n\n{}", String::from_utf8_lossy(&out.stdout))?;
    }
    Ok(())
}

/// Section 8: `nono audit push` to a throwaway local `PostgreSQL` (binary
/// COPY, slices of 100k events each committed with its high-water mark).
fn push_rate(ctx: &mut Ctx, root: &Path, events: u64) -> anyhow::Result<()> {
    eprintln!("bench: bench_push ({events} events)");
    let pg = crate::pg::Pg::start(&ctx.dir.join("pg"))?;
    let bin = target_dir(root).join("release/examples/bench_push");
    let out = Command::new(&bin)
        .arg(ctx.dir.join("bench_push.db"))
        .arg(pg.url())
        .arg(events.to_string())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    drop(pg);
    if !out.status.success() {
        bail!("bench_push failed: {}", out.status);
    }
    writeln!(
        ctx.report,
        "## 8. Fleet push: local store to PostgreSQL 15 on this machine (TCP, fsync on)\n\n{}",
        String::from_utf8_lossy(&out.stdout)
    )?;
    Ok(())
}

/// Section 9: the HTML report of a made-up session (`bench_report`), then
/// the time headless Chromium takes to load it: the page's own self-check
/// (`#selftest`) reports `performance.now()` once the tree is drawn.
fn html_report(ctx: &mut Ctx, root: &Path, events: u64) -> anyhow::Result<()> {
    eprintln!("bench: HTML report of {events} events");
    let page = ctx.dir.join("report.html");
    let bin = target_dir(root).join("release/examples/bench_report");
    let out = Command::new(&bin)
        .arg(&page)
        .arg(events.to_string())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!("bench_report failed: {}", out.status);
    }
    writeln!(
        ctx.report,
        "## 9. HTML report of a {events}-event session
"
    )?;
    writeln!(ctx.report, "| measure | value |\n|---|---|")?;
    write!(ctx.report, "{}", String::from_utf8_lossy(&out.stdout))?;
    let browser = ["chromium", "chromium-browser"].into_iter().find(|b| which(b));
    let row = match browser {
        None => "not measured: chromium is not installed (cargo xtask setup installs it)".to_owned(),
        Some(b) => {
            let profile = ctx.dir.join("chromium-profile");
            let _ = std::fs::remove_dir_all(&profile);
            let out = Command::new(b)
                .args(["--headless", "--no-sandbox", "--disable-gpu", "--host-resolver-rules=MAP * ~NOTFOUND"])
                .arg(format!("--user-data-dir={}", profile.display()))
                .arg("--dump-dom")
                .arg(format!("file://{}#selftest", page.display()))
                .stderr(Stdio::null())
                .output()
                .with_context(|| format!("running {b}"))?;
            let dom = String::from_utf8_lossy(&out.stdout);
            let ms = dom
                .split("\"render_ms\":")
                .nth(1)
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse::<u64>().ok());
            match ms {
                Some(ms) => format!("{ms} ms (navigation start to the tree drawn; goal < 2 s at 1M events)"),
                None => bail!("the report page's self-check gave no render time: {}", out.status),
            }
        }
    };
    writeln!(ctx.report, "| headless Chromium render | {row} |\n")?;
    Ok(())
}

/// Section 10: HTTPS through nono's network proxy against direct, on
/// loopback, both in the same run (`bench_proxy`, interleaved rounds).
fn proxy_cost(ctx: &mut Ctx, root: &Path, requests: usize) -> anyhow::Result<()> {
    eprintln!("bench: bench_proxy ({requests} requests per mode)");
    let bin = target_dir(root).join("release/examples/bench_proxy");
    let out = Command::new(&bin)
        .arg(requests.to_string())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!("bench_proxy failed: {}", out.status);
    }
    writeln!(
        ctx.report,
        "## 10. Network proxy: HTTPS through nono's proxy against direct (loopback, test CA)\n\n{}",
        String::from_utf8_lossy(&out.stdout)
    )?;
    Ok(())
}

/// Whether `name` is an executable on PATH.
fn which(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

fn startup(ctx: &mut Ctx) -> anyhow::Result<()> {
    let profile = profiles_dir(ctx).join("startup.json");
    std::fs::create_dir_all(profiles_dir(ctx))?;
    std::fs::write(&profile, serde_json::to_vec_pretty(&bench_profile("startup", &ctx.dir))?)?;
    let n = if ctx.quick { 5 } else { 200 };
    let mut bare = Vec::new();
    let mut under = Vec::new();
    let mut bw = Vec::new();
    let bwrap = Command::new("bwrap").arg("--version").output().is_ok_and(|o| o.status.success());
    let mut rss = 0;
    for _ in 0..n {
        bare.push(timed(Command::new("true").stdout(Stdio::null()))?.0);
        let (d, r, code) = timed(
            Command::new(&ctx.nono)
                .arg("run")
                .arg("--profile")
                .arg(&profile)
                .args(["--", "true"])
                .current_dir(&ctx.dir)
                .stdout(Stdio::null()),
        )?;
        if code != 0 {
            bail!("nono run -- true failed with {code}");
        }
        rss = rss.max(r);
        under.push(d);
        if bwrap {
            bw.push(
                timed(
                    Command::new("bwrap")
                        .args(["--ro-bind", "/usr", "/usr", "--ro-bind", "/lib", "/lib", "--ro-bind", "/lib64", "/lib64"])
                        .args(["--ro-bind", "/bin", "/bin", "--ro-bind", "/etc", "/etc", "--bind"])
                        .arg(&ctx.dir)
                        .arg(&ctx.dir)
                        .args(["--", "true"])
                        .stdout(Stdio::null()),
                )?
                .0,
            );
        }
    }
    let b = median(bare);
    let u = median(under);
    writeln!(ctx.report, "## 5. Enforcement start-up (median of {n})\n")?;
    writeln!(ctx.report, "| command | median | extra vs bare `true` | peak RSS |")?;
    writeln!(ctx.report, "|---|---|---|---|")?;
    writeln!(ctx.report, "| true | {b:.2?} | - | - |")?;
    writeln!(ctx.report, "| nono run --profile P -- true | {u:.2?} | {:.2?} | {} MiB |", u.saturating_sub(b), rss / 1024)?;
    if bwrap {
        let w = median(bw);
        writeln!(ctx.report, "| bwrap (equivalent binds) -- true | {w:.2?} | {:.2?} | - |", w.saturating_sub(b))?;
    } else {
        writeln!(ctx.report, "| bwrap | not installed | - | - |")?;
    }
    writeln!(ctx.report)?;
    Ok(())
}

/// Where the bench's profiles live: beside its directory, not in it, since
/// `nono run` refuses a profile beneath a write grant.
fn profiles_dir(ctx: &Ctx) -> PathBuf {
    let name = ctx.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    ctx.dir.with_file_name(format!("{name}-profiles"))
}

/// A profile for the bench's commands: the system's programs read-only
/// and `dir` read-write. Not the built-in `base`: its grant on /etc would
/// expose /etc/shadow to root, so `nono run` (run by root here) refuses it.
fn bench_profile(name: &str, dir: &Path) -> serde_json::Value {
    serde_json::json!({
        "meta": {"name": name},
        "filesystem": {
            "read": ["/usr"],
            "read_file": ["/etc/ld.so.cache"],
            "allow_file": ["/dev/null"],
            "allow": [dir.display().to_string()],
        },
    })
}

/// The enforcement profile's name in the profiles directory.
const ENFORCE_PROFILE: &str = "enforce.json";
/// The same profile with a brokered rule (on another directory).
const BROKERED_PROFILE: &str = "enforce-brokered.json";

/// Section 7: the cost of enforcement to the command it confines. The
/// broker answers some syscalls from user space (creates and renames
/// beside brokered rules, connects when ports or UDP destinations are
/// restricted); the rest are decided in the kernel.
fn enforcement_cost(ctx: &mut Ctx) -> anyhow::Result<()> {
    let files = ctx.sizes.0;
    let (creates, conns) = if ctx.quick { (200, 50) } else { (10_000, 2_000) };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("a local listener for the connect loop")?;
    let port = listener.local_addr()?.port();
    // Each connect waits for its accept (the client reads until the
    // server closes): with no wait, a burst overflows the listen backlog
    // of 128 and the dropped SYNs are retried a second later, which
    // measured the backlog, not the sandbox.
    std::thread::spawn(move || {
        for s in listener.incoming() {
            drop(s);
        }
    });
    let work = ctx.dir.join("enforce-work");
    let profiles = profiles_dir(ctx);
    let mut profile = bench_profile("bench-enforce", &ctx.dir);
    profile["network"] = serde_json::json!({"open_port": [port]});
    std::fs::create_dir_all(&profiles)?;
    std::fs::write(profiles.join(ENFORCE_PROFILE), serde_json::to_vec_pretty(&profile)?)?;
    // The same with one brokered rule elsewhere: creates and renames
    // anywhere then go through the broker (most are answered "continue").
    let beside = profiles.join("brokered");
    std::fs::create_dir_all(&beside)?;
    let mut with_rule = profile;
    with_rule["filesystem"]["brokered"] = serde_json::json!([{
        "dir": beside.display().to_string(),
        "names": ["settings.json", "settings.json.tmp.*"],
        "ops": ["create", "write", "rename", "remove"],
        "reason": "bench",
    }]);
    std::fs::write(profiles.join(BROKERED_PROFILE), serde_json::to_vec_pretty(&with_rule)?)?;
    let workloads = [
        (
            format!("create-heavy: {creates} writes of a temp file renamed into place"),
            format!(
                "/usr/bin/python3 -c 'import os\nfor i in range({creates}):\n    f = open(\"t\", \"w\"); f.write(\"x\"); f.close(); os.replace(\"t\", \"f%d\" % i)'"
            ),
        ),
        (
            format!("read-heavy: read {files} small files"),
            format!("find '{}' -type f -print0 | xargs -0 cat > /dev/null", tree_dir(ctx).display()),
        ),
        (
            format!("connect-heavy: {conns} TCP connects to 127.0.0.1, each awaiting its accept"),
            format!(
                "/usr/bin/python3 -c 'import socket\nfor i in range({conns}):\n    s = socket.create_connection((\"127.0.0.1\", {port})); s.recv(1); s.close()'"
            ),
        ),
    ];
    writeln!(
        ctx.report,
        "## 7. Enforcement cost to the confined command (median of {}; the broker's cost is the ratio against --no-broker)\n",
        ctx.runs
    )?;
    writeln!(
        ctx.report,
        "| workload | native | nono run --no-broker | vs native | nono run | vs --no-broker | nono run, a brokered rule in the profile | vs --no-broker |"
    )?;
    writeln!(ctx.report, "|---|---|---|---|---|---|---|---|")?;
    let modes = [Mode::Native, Mode::RunNoBroker(ENFORCE_PROFILE), Mode::Run(ENFORCE_PROFILE), Mode::Run(BROKERED_PROFILE)];
    for (name, script) in &workloads {
        eprintln!("bench: enforcement, {name}");
        let mut samples: [Vec<Duration>; 4] = Default::default();
        for _ in 0..ctx.runs {
            // Interleaved, so drift affects every mode alike.
            for (i, mode) in modes.into_iter().enumerate() {
                let _ = std::fs::remove_dir_all(&work);
                std::fs::create_dir_all(&work)?;
                samples[i].push(run_mode(ctx, mode, script, &work)?.workload);
            }
        }
        let [n, nb, r, rb] = samples.map(median);
        let over = |d: Duration, base: Duration| d.as_secs_f64() / base.as_secs_f64().max(1e-9);
        writeln!(
            ctx.report,
            "| {name} | {n:.2?} | {nb:.2?} | {:.2}x | {r:.2?} | {:.2}x | {rb:.2?} | {:.2}x |",
            over(nb, n),
            over(r, nb),
            over(rb, nb)
        )?;
    }
    let _ = std::fs::remove_dir_all(&work);
    writeln!(ctx.report)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_sums_the_shell_and_its_children() {
        // dash prints six decimals, bash three.
        let (wall, cpu) = parse_stamp("1500000\n0m0.010000s 0m0.020000s\n1m2.500s 0m0.250s\n").expect("parses");
        assert_eq!(wall, Duration::from_micros(1500));
        assert!((cpu.as_secs_f64() - 62.78).abs() < 1e-9, "{cpu:?}");
        assert!(parse_stamp("12\n0m0.1 0m0.2s\n").is_err(), "a field without its unit is refused");
        assert!(parse_stamp("").is_err());
    }
}
