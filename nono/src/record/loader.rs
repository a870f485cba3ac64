//! Loading nono's eBPF object into the kernel for one backend: offsets from
//! the running kernel's BTF are patched in, only the backend's programs are
//! loaded and attached, and everything detaches when the [`Recorder`] is
//! dropped (nothing is pinned, so a killed nono leaves nothing behind).

use aya::maps::{HashMap, MapData, PerCpuArray, ProgramArray, RingBuf};
use aya::programs::{BtfTracePoint, Lsm, TracePoint};
use aya::{Btf, Ebpf, EbpfLoader};
use nono_common::{KernelOffsets, RecorderConfig, mode, stat};

use super::{Backend, RecordError};

/// The eBPF object built by `build.rs`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/nono"));

/// Syscalls traced by both backends (the LSM backend uses their exits only
/// for failures, which never reach a hook). Optional ones may be missing on
/// older kernels or other architectures.
const SYSCALLS: &[(&str, bool)] = &[
    ("open", false),
    ("openat", false),
    ("openat2", true),
    ("creat", false),
    ("execve", false),
    ("execveat", true),
    ("unlink", false),
    ("unlinkat", false),
    ("rmdir", false),
    ("rename", false),
    ("renameat", false),
    ("renameat2", true),
    ("mkdir", false),
    ("mkdirat", false),
    ("link", false),
    ("linkat", false),
    ("symlink", false),
    ("symlinkat", false),
    ("truncate", false),
    ("ftruncate", false),
    ("mknod", false),
    ("mknodat", false),
    ("connect", false),
    ("bind", false),
];

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
    ("lsm_socket_connect", "socket_connect"),
    ("lsm_socket_bind", "socket_bind"),
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
    /// Syscall tracepoints that this kernel lacks (optional ones only).
    fn missing_syscalls(&self) -> &[String];
}

/// The state shared by both backends.
struct Loaded {
    ebpf: Ebpf,
    backend: Backend,
    missing: Vec<String>,
    /// Owned attachments, detached in parallel on drop (see `Drop`).
    links: Vec<Box<dyn Send>>,
}

/// Detaching a tracepoint waits for an RCU grace period (~80 ms each on a
/// 2-vCPU VM): one by one, ~50 links took 4 s. Dropping them from several
/// threads lets the waits overlap.
impl Drop for Loaded {
    fn drop(&mut self) {
        let links = std::mem::take(&mut self.links);
        let per_thread = links.len().div_ceil(DETACH_THREADS).max(1);
        let mut links = links.into_iter().peekable();
        std::thread::scope(|scope| {
            while links.peek().is_some() {
                let chunk: Vec<_> = links.by_ref().take(per_thread).collect();
                scope.spawn(move || drop(chunk));
            }
        });
    }
}

const DETACH_THREADS: usize = 16;

/// Loads and attaches `backend` with a ring buffer of `ring_bytes`.
pub fn load(backend: Backend, offsets: &KernelOffsets, ring_bytes: u32) -> Result<Box<dyn Recorder>, RecordError> {
    if OBJECT.is_empty() {
        return Err(RecordError::NoPrograms);
    }
    let config = RecorderConfig {
        mode: match backend {
            Backend::Lsm => mode::LSM,
            Backend::Tracepoint => mode::TRACEPOINT,
        },
        _pad: 0,
    };
    let ebpf = EbpfLoader::new()
        .override_global("OFFSETS", offsets, true)
        .override_global("CONFIG", &config, true)
        .map_max_entries("EVENTS", ring_bytes)
        .load(OBJECT)
        .map_err(RecordError::Load)?;
    let mut loaded = Loaded { ebpf, backend, missing: Vec::new(), links: Vec::new() };
    let btf = Btf::from_sys_fs().map_err(|e| RecordError::Btf { path: "/sys/kernel/btf/vmlinux".into(), source: Box::new(e) })?;
    // LSM hooks first: on kernels that refuse them, nothing else has been
    // attached yet, so falling back to tracepoints costs no detach.
    if backend == Backend::Lsm {
        loaded.attach_lsm(&btf)?;
    }
    loaded.attach_process_tracking(&btf)?;
    loaded.attach_syscalls()?;
    Ok(Box::new(loaded))
}

fn perr(name: &str, backend: Backend) -> impl FnOnce(aya::programs::ProgramError) -> RecordError + use<> {
    let name = name.to_owned();
    move |source| RecordError::Program { name, backend, source }
}

/// Looks up program `name` as type `T` in `ebpf`.
fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str, backend: Backend) -> Result<&'a mut T, RecordError>
where
    &'a mut aya::programs::Program: TryInto<&'a mut T, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name).ok_or_else(|| RecordError::MissingProgram(name.to_owned()))?.try_into().map_err(perr(name, backend))
}

impl Loaded {
    fn tracepoint(&mut self, name: &str, category: &str) -> Result<(), RecordError> {
        let backend = self.backend;
        let prog: &mut TracePoint = program(&mut self.ebpf, name, backend)?;
        let t = std::time::Instant::now();
        prog.load().map_err(perr(name, backend))?;
        log::debug!("loaded {name} in {:?}", t.elapsed());
        let id = prog.attach(category, name).map_err(perr(name, backend))?;
        let link = prog.take_link(id).map_err(perr(name, backend))?;
        self.links.push(Box::new(link));
        Ok(())
    }

    fn attach_process_tracking(&mut self, btf: &Btf) -> Result<(), RecordError> {
        let name = "sched_process_fork";
        let backend = self.backend;
        let prog: &mut BtfTracePoint = program(&mut self.ebpf, name, backend)?;
        prog.load(name, btf).map_err(perr(name, backend))?;
        let id = prog.attach().map_err(perr(name, backend))?;
        let link = prog.take_link(id).map_err(perr(name, backend))?;
        self.links.push(Box::new(link));
        self.tracepoint("sched_process_exec", "sched")?;
        self.tracepoint("sched_process_exit", "sched")?;
        Ok(())
    }

    fn attach_syscalls(&mut self) -> Result<(), RecordError> {
        self.install_exit_common()?;
        for &(sys, optional) in SYSCALLS {
            let exists = std::path::Path::new("/sys/kernel/tracing/events/syscalls").join(format!("sys_enter_{sys}")).exists();
            if !exists && optional {
                self.missing.push(sys.to_owned());
                continue;
            }
            self.tracepoint(&format!("sys_enter_{sys}"), "syscalls")?;
            self.tracepoint(&format!("sys_exit_{sys}"), "syscalls")?;
        }
        Ok(())
    }

    /// Loads the one program that does the heavy lifting for every
    /// `sys_exit_*` and puts it in the tail-call table, before any of them
    /// is attached.
    fn install_exit_common(&mut self) -> Result<(), RecordError> {
        let name = "sys_exit_common";
        let backend = self.backend;
        let prog: &mut TracePoint = program(&mut self.ebpf, name, backend)?;
        let t = std::time::Instant::now();
        prog.load().map_err(perr(name, backend))?;
        log::debug!("loaded {name} in {:?}", t.elapsed());
        let fd = prog
            .fd()
            .map_err(perr(name, backend))?
            .try_clone()
            .map_err(|source| RecordError::Sys { call: "dup of the sys_exit_common program fd", source })?;
        let map = self.ebpf.map_mut("TAIL").ok_or(RecordError::MissingMap("TAIL"))?;
        let mut tail: ProgramArray<_> =
            ProgramArray::try_from(map).map_err(|source| RecordError::Map { name: "TAIL", source })?;
        tail.set(0, &fd, 0).map_err(|source| RecordError::Map { name: "TAIL", source })?;
        Ok(())
    }

    fn attach_lsm(&mut self, btf: &Btf) -> Result<(), RecordError> {
        let backend = self.backend;
        for &(name, hook) in LSM_HOOKS {
            let prog: &mut Lsm = program(&mut self.ebpf, name, backend)?;
            prog.load(hook, btf).map_err(perr(name, backend))?;
            let id = prog.attach().map_err(perr(name, backend))?;
            let link = prog.take_link(id).map_err(perr(name, backend))?;
            self.links.push(Box::new(link));
        }
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
        })
    }

    fn traced_count(&self) -> usize {
        self.ebpf
            .map("TRACED")
            .and_then(|m| HashMap::<_, u32, u32>::try_from(m).ok())
            .map_or(0, |m| m.keys().filter(Result::is_ok).count())
    }

    fn missing_syscalls(&self) -> &[String] {
        &self.missing
    }
}
