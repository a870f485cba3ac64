//! Loading nono's eBPF object into the kernel for one backend: offsets from
//! the running kernel's BTF are patched in, only the backend's programs are
//! loaded and attached, and everything detaches when the [`Recorder`] is
//! dropped (nothing is pinned, so a killed nono leaves nothing behind).
//!
//! Four programs for the tracepoint backend (the syscall dispatcher,
//! process tracking), ten more LSM hooks for the lsm backend.

use std::time::{Duration, Instant};

use aya::maps::{HashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::Program;
use aya::{Btf, Ebpf, EbpfLoader};
use nono_common::{KernelOffsets, RecorderConfig, mode, stat};

use super::{Backend, RecordError};

/// The eBPF object built by `build.rs`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/nono"));

/// BTF tracepoints of both backends: the syscall dispatcher (the LSM
/// backend uses it for failures and for what has no hook) and process
/// tracking. The program is named after its tracepoint.
const TRACEPOINTS: &[&str] = &["sys_exit", "sched_process_fork", "sched_process_exec", "sched_process_exit"];

/// LSM programs and the hook each attaches to.
const LSM_HOOKS: &[(&str, &str)] = &[
    ("lsm_file_open", "file_open"),
    ("lsm_path_unlink", "path_unlink"),
    ("lsm_path_rmdir", "path_rmdir"),
    ("lsm_path_mkdir", "path_mkdir"),
    ("lsm_path_mknod", "path_mknod"),
    ("lsm_path_symlink", "path_symlink"),
    ("lsm_path_link", "path_link"),
    ("lsm_path_rename", "path_rename"),
    ("lsm_path_truncate", "path_truncate"),
    ("lsm_file_ioctl", "file_ioctl"),
];

/// Kernel-side counters, summed over CPUs (see `nono_common::stat`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct KernelCounters {
    pub ringbuf_drops: u64,
    pub path_failures: u64,
    pub path_truncations: u64,
    pub pending_full: u64,
    pub traced_full: u64,
    pub events_sent: u64,
    pub scratch_busy: u64,
    pub orphan_exits: u64,
    /// `sendmmsg` messages whose destination was not inspected.
    pub sendmmsg_skipped: u64,
    /// Execs through a `/dev/fd/N` name whose descriptor was gone.
    pub exec_names_unresolved: u64,
    /// Syscalls made through the 32-bit entry, which are not decoded.
    pub compat_syscalls: u64,
}

impl KernelCounters {
    /// Records the kernel could not deliver or could not fill in.
    #[must_use]
    pub fn lost(&self) -> u64 {
        self.ringbuf_drops + self.pending_full + self.traced_full + self.scratch_busy
    }

    /// Whether the learner saw everything (no loss, no incomplete paths).
    #[must_use]
    pub fn complete(&self) -> bool {
        self.lost() == 0 && self.path_failures == 0 && self.path_truncations == 0
    }
}

/// One recording backend, loaded and attached.
pub trait Recorder {
    fn backend(&self) -> Backend;
    /// Adds a process to the traced set; its future children join by themselves.
    fn trace(&mut self, pid: u32) -> Result<(), RecordError>;
    /// The ring buffer of records; can be taken once.
    fn take_events(&mut self) -> Result<RingBuf<MapData>, RecordError>;
    fn counters(&self) -> Result<KernelCounters, RecordError>;
    /// Number of processes currently in the traced set.
    fn traced_count(&self) -> usize;
}

/// Where the fixed cost of a session goes (`NONO_LOG=debug` prints it).
#[derive(Clone, Copy, Debug, Default)]
pub struct LoadTimes {
    /// Reading and parsing the kernel's BTF.
    pub btf: Duration,
    /// Parsing the object and creating its maps.
    pub object: Duration,
    /// `BPF_PROG_LOAD` of every program (the verifier's time).
    pub verify: Duration,
    /// Attaching them.
    pub attach: Duration,
}

/// The state shared by both backends.
struct Loaded {
    /// Taken by `Drop` (to hand it to the detaching thread), never before.
    ebpf: std::mem::ManuallyDrop<Ebpf>,
    backend: Backend,
    /// Owned attachments: dropping one detaches its program.
    links: Vec<Box<dyn Send>>,
}

/// Dropping the recorder never waits for the kernel: the attachments and
/// the object go to a background thread, which detaches them in parallel
/// (one thread per program), so the caller goes straight on to storing the
/// session and printing its summary. A BTF tracepoint detaches in well
/// under a millisecond, but an LSM program's trampoline is rewritten on
/// detach: in the TCG guest the ten LSM hooks took 1.3-1.6 s one by one.
/// If nono exits first, the kernel closes what is left with the process:
/// nothing is pinned, so nothing outlives it.
impl Drop for Loaded {
    fn drop(&mut self) {
        let links = std::mem::take(&mut self.links);
        // SAFETY: `drop` runs once and nothing touches `self.ebpf` after it.
        let object = unsafe { std::mem::ManuallyDrop::take(&mut self.ebpf) };
        let spawned = std::thread::Builder::new().name("nono-detach".into()).spawn(move || {
            let started = Instant::now();
            let n = links.len();
            std::thread::scope(|scope| {
                for link in links {
                    scope.spawn(move || drop(link));
                }
            });
            drop(object);
            log::debug!("detached {n} programs in {:?}", started.elapsed());
        });
        if let Err(e) = spawned {
            // No thread: detach here, synchronously (correct, only slower).
            log::debug!("detaching in the foreground: {e}");
        }
    }
}

/// Loads and attaches `backend` with a ring buffer of `ring_bytes`.
///
/// Where the time goes and how it is kept short (`NONO_LOG=debug` prints
/// each part): the LSM backend first asks whether LSM programs load at all
/// (a 2-instruction probe), so a refusing kernel costs a millisecond, not
/// a full load; aya parses the kernel's BTF once for the object and once
/// for attaching, so the second parse runs on a thread beside the first;
/// the biggest program (`sys_exit`) is verified on a thread beside the
/// others.
pub fn load(backend: Backend, offsets: &KernelOffsets, ring_bytes: u32) -> Result<Box<dyn Recorder>, RecordError> {
    if OBJECT.is_empty() {
        return Err(RecordError::NoPrograms);
    }
    if backend == Backend::Lsm {
        crate::kernel::lsm_program_loads().map_err(RecordError::LsmRefused)?;
    }
    let mut times = LoadTimes::default();
    let config = RecorderConfig {
        mode: match backend {
            Backend::Lsm => mode::LSM,
            Backend::Tracepoint => mode::TRACEPOINT,
        },
        _pad: 0,
    };
    let t = Instant::now();
    let btf = std::thread::spawn(|| {
        let t = Instant::now();
        (Btf::from_sys_fs(), t.elapsed())
    });
    // The programs read struct members through `OFFSETS`, not CO-RE: no
    // BTF relocation is needed (the loader still parses BTF on creation).
    let ebpf = EbpfLoader::new()
        .btf(None)
        .override_global("OFFSETS", offsets, true)
        .override_global("CONFIG", &config, true)
        .map_max_entries("EVENTS", ring_bytes)
        .load(OBJECT)
        .map_err(RecordError::Load);
    let (btf, btf_time) = btf.join().map_err(|_| RecordError::Btf {
        path: "/sys/kernel/btf/vmlinux".into(),
        source: "the BTF parsing thread panicked".into(),
    })?;
    times.btf = btf_time;
    let btf = btf.map_err(|e| RecordError::Btf { path: "/sys/kernel/btf/vmlinux".into(), source: Box::new(e) })?;
    let ebpf = ebpf?;
    times.object = t.elapsed();
    let mut loaded = Loaded { ebpf: std::mem::ManuallyDrop::new(ebpf), backend, links: Vec::new() };
    loaded.load_programs(&btf, &mut times)?;
    // LSM hooks first: a hook that attaches but records nothing yet is
    // harmless, and the tracepoints then start with every hook in place.
    if backend == Backend::Lsm {
        for &(name, _) in LSM_HOOKS {
            loaded.attach(name, &mut times)?;
        }
    }
    for &name in TRACEPOINTS {
        loaded.attach(name, &mut times)?;
    }
    log::debug!(
        "{backend} recorder ready: BTF {:?} (beside the object), object and maps {:?}, verification {:?}, attach {:?}",
        times.btf,
        times.object,
        times.verify,
        times.attach
    );
    Ok(Box::new(loaded))
}

fn perr(name: &str, backend: Backend) -> impl FnOnce(aya::programs::ProgramError) -> RecordError + use<> {
    let name = name.to_owned();
    move |source| RecordError::Program { name, backend, source }
}

/// The program that takes the verifier longest; loaded on its own thread.
const BIGGEST: &str = "sys_exit";

/// Loads one program: `hook` is the LSM hook, or `None` for a BTF
/// tracepoint named like the program.
fn load_one(name: &str, prog: &mut Program, hook: Option<&str>, btf: &Btf, backend: Backend) -> Result<Duration, RecordError> {
    let t = Instant::now();
    match (prog, hook) {
        (Program::BtfTracePoint(p), None) => {
            p.load(name, btf).map_err(perr(name, backend))?;
            log_verified(name, t.elapsed(), p.info());
        }
        (Program::Lsm(p), Some(hook)) => {
            p.load(hook, btf).map_err(perr(name, backend))?;
            log_verified(name, t.elapsed(), p.info());
        }
        _ => return Err(RecordError::MissingProgram(name.to_owned())),
    }
    Ok(t.elapsed())
}

/// Logs how long the verifier took and how many instructions it walked.
fn log_verified(name: &str, elapsed: Duration, info: Result<aya::programs::ProgramInfo, aya::programs::ProgramError>) {
    let insns = info.ok().and_then(|i| i.verified_instruction_count()).unwrap_or(0);
    log::debug!("verified {name} in {elapsed:?} ({insns} instructions processed)");
}

impl Loaded {
    /// Loads (verifies) every program the backend needs.
    fn load_programs(&mut self, btf: &Btf, times: &mut LoadTimes) -> Result<(), RecordError> {
        let backend = self.backend;
        let mut wanted: Vec<(&str, Option<&str>)> = TRACEPOINTS.iter().map(|&n| (n, None)).collect();
        if backend == Backend::Lsm {
            wanted.extend(LSM_HOOKS.iter().map(|&(n, h)| (n, Some(h))));
        }
        let mut progs: Vec<(&str, &mut Program)> =
            self.ebpf.programs_mut().filter(|(n, _)| wanted.iter().any(|w| w.0 == *n)).collect();
        if progs.len() != wanted.len() {
            let missing = wanted.iter().find(|w| !progs.iter().any(|p| p.0 == w.0)).map_or("?", |w| w.0);
            return Err(RecordError::MissingProgram(missing.to_owned()));
        }
        let hook_of = |name: &str| wanted.iter().find(|w| w.0 == name).and_then(|w| w.1);
        let big = progs.iter().position(|p| p.0 == BIGGEST);
        let mut big = big.map(|i| progs.swap_remove(i));
        let started = Instant::now();
        std::thread::scope(|scope| {
            let side = big.as_mut().map(|(name, prog)| scope.spawn(|| load_one(name, prog, hook_of(name), btf, backend)));
            for (name, prog) in &mut progs {
                load_one(name, prog, hook_of(name), btf, backend)?;
            }
            if let Some(side) = side {
                side.join().map_err(|_| RecordError::MissingProgram(BIGGEST.to_owned()))??;
            }
            Ok::<(), RecordError>(())
        })?;
        times.verify = started.elapsed();
        Ok(())
    }

    fn attach(&mut self, name: &str, times: &mut LoadTimes) -> Result<(), RecordError> {
        let backend = self.backend;
        let t = Instant::now();
        let link: Box<dyn Send> = match self.ebpf.program_mut(name) {
            Some(Program::BtfTracePoint(p)) => {
                let id = p.attach().map_err(perr(name, backend))?;
                Box::new(p.take_link(id).map_err(perr(name, backend))?)
            }
            Some(Program::Lsm(p)) => {
                let id = p.attach().map_err(perr(name, backend))?;
                Box::new(p.take_link(id).map_err(perr(name, backend))?)
            }
            _ => return Err(RecordError::MissingProgram(name.to_owned())),
        };
        times.attach += t.elapsed();
        self.links.push(link);
        Ok(())
    }
}

impl Recorder for Loaded {
    fn backend(&self) -> Backend {
        self.backend
    }

    fn trace(&mut self, pid: u32) -> Result<(), RecordError> {
        let map = self.ebpf.map_mut("TRACED").ok_or(RecordError::MissingMap("TRACED"))?;
        let mut traced: HashMap<_, u32, u32> =
            HashMap::try_from(map).map_err(|source| RecordError::Map { name: "TRACED", source })?;
        traced.insert(pid, 1, 0).map_err(|source| RecordError::Trace { pid, source })
    }

    fn take_events(&mut self) -> Result<RingBuf<MapData>, RecordError> {
        let map = self.ebpf.take_map("EVENTS").ok_or(RecordError::MissingMap("EVENTS"))?;
        RingBuf::try_from(map).map_err(|source| RecordError::Map { name: "EVENTS", source })
    }

    fn counters(&self) -> Result<KernelCounters, RecordError> {
        let map = self.ebpf.map("STATS").ok_or(RecordError::MissingMap("STATS"))?;
        let stats: PerCpuArray<_, u64> =
            PerCpuArray::try_from(map).map_err(|source| RecordError::Map { name: "STATS", source })?;
        let mut sum = [0u64; stat::COUNT as usize];
        for (i, slot) in sum.iter_mut().enumerate() {
            let values = stats.get(&(i as u32), 0).map_err(|source| RecordError::Map { name: "STATS", source })?;
            *slot = values.iter().sum();
        }
        Ok(KernelCounters {
            ringbuf_drops: sum[stat::RINGBUF_DROPS as usize],
            path_failures: sum[stat::PATH_FAILURES as usize],
            path_truncations: sum[stat::PATH_TRUNCATIONS as usize],
            pending_full: sum[stat::PENDING_FULL as usize],
            traced_full: sum[stat::TRACED_FULL as usize],
            events_sent: sum[stat::EVENTS_SENT as usize],
            scratch_busy: sum[stat::SCRATCH_BUSY as usize],
            orphan_exits: sum[stat::ORPHAN_EXITS as usize],
            sendmmsg_skipped: sum[stat::SENDMMSG_SKIPPED as usize],
            exec_names_unresolved: sum[stat::EXEC_NAME_UNRESOLVED as usize],
            compat_syscalls: sum[stat::COMPAT_SYSCALLS as usize],
        })
    }

    fn traced_count(&self) -> usize {
        self.ebpf
            .map("TRACED")
            .and_then(|m| HashMap::<_, u32, u32>::try_from(m).ok())
            .map_or(0, |m| m.keys().filter(Result::is_ok).count())
    }
}
