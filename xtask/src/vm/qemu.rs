//! Boots one guest: starts `virtiofsd` sharing the host's `/`, runs QEMU with
//! the serial console on stdout, streams it live, and turns the guest's
//! sentinel line into an exit status. Kills QEMU on timeout.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The kernel command line. `lsm=` enables BPF LSM next to Landlock.
const APPEND: &str = "console=ttyS0 lsm=landlock,lockdown,bpf panic=-1 quiet loglevel=4";
const MEMORY_MB: u32 = 2048;

/// How QEMU executes guest code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Accel {
    /// Try KVM and fall back to TCG if the guest never starts.
    Auto,
    Kvm,
    Tcg,
}

/// What one boot produced.
#[derive(Debug)]
pub enum Outcome {
    /// The guest printed its sentinel with this exit status.
    Exited(i32),
    /// QEMU ended (or the kernel panicked) without a sentinel.
    NoSentinel {
        booted: bool,
        panicked: bool,
    },
    TimedOut,
}

pub struct Boot<'a> {
    pub vmlinuz: &'a Path,
    pub initrd: &'a Path,
    pub nonce: &'a str,
    pub timeout: Duration,
    pub work_dir: &'a Path,
    /// Prefix for each streamed console line, e.g. `[debian-6.12] `.
    pub label: &'a str,
}

/// Boots with `accel`, retrying once with TCG when KVM never got the guest
/// to `/init` (KVM on some hosts fails on MSR setup before the first line).
pub fn boot(b: &Boot<'_>, accel: Accel) -> Result<Outcome> {
    let kvm_usable = Path::new("/dev/kvm").exists();
    if accel == Accel::Kvm || (accel == Accel::Auto && kvm_usable) {
        let outcome = boot_once(b, "kvm")?;
        match outcome {
            Outcome::NoSentinel { booted: false, .. } if accel == Accel::Auto => {
                eprintln!("vm: KVM did not start the guest; falling back to TCG");
            }
            other => return Ok(other),
        }
    }
    boot_once(b, "tcg")
}

fn virtiofsd_path() -> Result<PathBuf> {
    for candidate in ["/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd"] {
        if Path::new(candidate).is_file() {
            return Ok(PathBuf::from(candidate));
        }
    }
    let out = Command::new("sh").args(["-c", "command -v virtiofsd"]).output()?;
    let found = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if found.is_empty() {
        bail!("virtiofsd not found (Debian: qemu-system-common in bookworm, package virtiofsd later)");
    }
    Ok(PathBuf::from(found))
}

/// Kills and reaps a child when dropped, so no path leaves QEMU or
/// virtiofsd running.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn boot_once(b: &Boot<'_>, accel: &str) -> Result<Outcome> {
    let socket = b.work_dir.join(format!("virtiofs-{}.sock", b.nonce));
    let _ = std::fs::remove_file(&socket);
    // virtiofsd is chatty about harmless vhost-user events; keep it off the console.
    let log_path = b.work_dir.join("virtiofsd.log");
    let log = std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let virtiofsd = Command::new(virtiofsd_path()?)
        .arg(format!("--socket-path={}", socket.display()))
        .args(["-o", "source=/", "-o", "cache=auto", "-o", "sandbox=chroot", "-o", "log_level=warn"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting virtiofsd")?;
    let _virtiofsd = Reaped(virtiofsd);
    let waited = Instant::now();
    while !socket.exists() {
        if waited.elapsed() > Duration::from_secs(10) {
            bail!("virtiofsd did not create {}", socket.display());
        }
        thread::sleep(Duration::from_millis(20));
    }

    let mem = format!("memory-backend-memfd,id=mem,size={MEMORY_MB}M,share=on");
    // One vCPU under TCG: with two, multi-threaded TCG occasionally let a
    // vCPU run a stale translation of the int3 the kernel's text_poke leaves
    // while it patches a BPF trampoline call site in, after the patch had
    // completed ("Oops: int3" at bpf_lsm_file_open+0x5, seen once in ~10
    // suite runs). Real CPUs and KVM honour the kernel's sync protocol.
    let cpus = if accel == "kvm" { "2" } else { "1" };
    let mut qemu = Command::new("qemu-system-x86_64");
    qemu.args(["-accel", accel, "-cpu", "max", "-smp", cpus, "-m"])
        .arg(MEMORY_MB.to_string())
        .args(["-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio", "-monitor", "none"])
        .args(["-object", &mem, "-numa", "node,memdev=mem"])
        .arg("-chardev")
        .arg(format!("socket,id=vfs,path={}", socket.display()))
        .args(["-device", "vhost-user-fs-pci,chardev=vfs,tag=hostroot"])
        .arg("-kernel")
        .arg(b.vmlinuz)
        .arg("-initrd")
        .arg(b.initrd)
        .args(["-append", APPEND])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    eprintln!("vm: starting QEMU ({accel})");
    let mut child = qemu.spawn().context("starting qemu-system-x86_64")?;
    let stdout = child.stdout.take().context("qemu stdout")?;
    let stderr = child.stderr.take().context("qemu stderr")?;
    let mut qemu = Reaped(child);

    let (tx, rx) = mpsc::channel::<String>();
    let tx_err = tx.clone();
    thread::spawn(move || stream_lines(stdout, &tx));
    thread::spawn(move || stream_lines(stderr, &tx_err));

    let booted_marker = format!("NONO-VM-BOOTED-{}", b.nonce);
    let exit_marker = format!("NONO-VM-EXIT-{}=", b.nonce);
    let deadline = Instant::now() + b.timeout;
    let mut booted = false;
    let mut panicked = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            eprintln!("vm: timeout after {}s; killing QEMU", b.timeout.as_secs());
            return Ok(Outcome::TimedOut);
        }
        match rx.recv_timeout(left) {
            Ok(line) => {
                let clean = line.trim_end_matches(['\r', '\n']);
                println!("{}{clean}", b.label);
                if clean.contains(&booted_marker) {
                    booted = true;
                }
                if clean.contains("Kernel panic") {
                    panicked = true;
                }
                if let Some(at) = clean.find(&exit_marker) {
                    let digits: String = clean[at + exit_marker.len()..].chars().take_while(char::is_ascii_digit).collect();
                    let code = digits.parse::<i32>().unwrap_or(125);
                    // Give the guest a moment to power off, then reap it.
                    let grace = Instant::now();
                    while grace.elapsed() < Duration::from_secs(5) {
                        if qemu.0.try_wait()?.is_some() {
                            break;
                        }
                        thread::sleep(Duration::from_millis(50));
                    }
                    return Ok(Outcome::Exited(code));
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = qemu.0.wait()?;
                eprintln!("vm: QEMU exited ({status}) without the exit sentinel");
                return Ok(Outcome::NoSentinel { booted, panicked });
            }
        }
    }
}

/// Splits a byte stream into lines (lossy UTF-8; the console carries
/// terminal escapes) and sends them until EOF.
fn stream_lines(reader: impl Read, tx: &mpsc::Sender<String>) {
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if tx.send(String::from_utf8_lossy(&buf).into_owned()).is_err() {
                    return;
                }
            }
        }
    }
}
