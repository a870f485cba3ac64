//! Fetches and caches Debian cloud kernels under `target/vm/<name>/`.
//!
//! The newest package matching the kernel's name pattern is chosen with
//! `apt-cache`, downloaded with `apt-get download` and unpacked with
//! `dpkg-deb`; only `boot/` and `lib/modules/` are kept. A `kernel.txt` marker
//! makes the second run skip apt entirely (and so work offline).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

/// A guest kernel the harness knows how to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelSpec {
    /// Name used on the command line and in `NONO_IN_VM`.
    pub name: &'static str,
    /// Package name prefix and suffix; the middle must be dots, dashes and digits.
    prefix: &'static str,
    suffix: &'static str,
}

/// Every kernel `--kernel all` runs, in order.
pub const KERNELS: &[KernelSpec] = &[
    // bookworm-security / bookworm-backports: Landlock ABI 6, BPF LSM built in.
    KernelSpec { name: "debian-6.12", prefix: "linux-image-6.12.", suffix: "+deb12-cloud-amd64" },
    // bookworm: older Landlock ABI; virtiofs is a module here.
    KernelSpec { name: "debian-6.1", prefix: "linux-image-6.1.0-", suffix: "-cloud-amd64" },
];

/// An unpacked kernel package.
#[derive(Debug)]
pub struct Kernel {
    /// Package name, e.g. `linux-image-6.12.117+deb12-cloud-amd64`.
    pub package: String,
    pub vmlinuz: PathBuf,
    /// `lib/modules/<release>` of the unpacked package.
    pub modules_dir: PathBuf,
}

pub fn spec(name: &str) -> Option<KernelSpec> {
    KERNELS.iter().copied().find(|k| k.name == name)
}

/// Returns the cached kernel, downloading and unpacking it first if needed.
pub fn ensure(spec: KernelSpec, cache_root: &Path) -> Result<Kernel> {
    let dir = cache_root.join(spec.name);
    let marker = dir.join("kernel.txt");
    if let Ok(package) = fs::read_to_string(&marker) {
        let package = package.trim().to_owned();
        if let Some(kernel) = locate(&dir, &package) {
            eprintln!("vm: {}: cached {package}", spec.name);
            return Ok(kernel);
        }
    }
    let package = newest_package(spec)?;
    eprintln!("vm: {}: downloading {package}", spec.name);
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing stale {}", dir.display()))?;
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    run(Command::new("apt-get").arg("download").arg(&package).current_dir(&dir))?;
    let deb = fs::read_dir(&dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("apt-get download produced no .deb")?;
    let root = dir.join("root");
    fs::create_dir_all(&root)?;
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
    fs::remove_file(&deb)?;
    // The firmware-less cloud image still ships docs we do not need.
    let _ = fs::remove_dir_all(root.join("usr"));
    fs::write(&marker, format!("{package}\n"))?;
    locate(&dir, &package).with_context(|| format!("{package} has no boot/vmlinuz-*"))
}

fn locate(dir: &Path, package: &str) -> Option<Kernel> {
    let release = package.strip_prefix("linux-image-")?;
    let root = dir.join("root");
    let vmlinuz = root.join("boot").join(format!("vmlinuz-{release}"));
    let modules_dir = root.join("lib/modules").join(release);
    (vmlinuz.is_file() && modules_dir.is_dir()).then(|| Kernel { package: package.to_owned(), vmlinuz, modules_dir })
}

/// The newest package whose name matches `spec`, compared by its numbers.
fn newest_package(spec: KernelSpec) -> Result<String> {
    let out = Command::new("apt-cache")
        .args(["search", "--names-only"])
        .arg(format!("^{}", spec.prefix.replace('.', "\\.")))
        .output()
        .context("running apt-cache (install apt, or pre-seed target/vm)")?;
    ensure!(out.status.success(), "apt-cache search failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let best = text
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|name| {
            let middle = name.strip_prefix(spec.prefix)?.strip_suffix(spec.suffix)?;
            let key: Option<Vec<u64>> = middle.split(['.', '-']).map(|n| n.parse::<u64>().ok()).collect();
            Some((key?, name.to_owned()))
        })
        .max();
    match best {
        Some((_, name)) => Ok(name),
        None => bail!(
            "no package {}*{} in apt's lists (does apt need `apt-get update` or bookworm-backports?)",
            spec.prefix,
            spec.suffix
        ),
    }
}

/// Drivers the guest needs to mount the host root: the PCI transport and
/// the filesystem. Whichever the kernel builds as modules get loaded.
const VIRTIOFS_MODULES: &[&str] = &["virtio_pci", "virtiofs"];

/// The `.ko` files (uncompressed) needed to mount virtiofs, with their
/// dependencies, in load order. Empty when everything is built in.
pub fn virtiofs_modules(kernel: &Kernel) -> Result<Vec<(String, Vec<u8>)>> {
    let mut loaded = Vec::new();
    for name in VIRTIOFS_MODULES {
        if find_module(&kernel.modules_dir, name).is_some() {
            add_module(&kernel.modules_dir, name, &mut loaded, 0)?;
        }
    }
    Ok(loaded)
}

fn add_module(dir: &Path, name: &str, out: &mut Vec<(String, Vec<u8>)>, depth: u32) -> Result<()> {
    ensure!(depth < 16, "module dependency loop at {name}");
    let file_name = format!("{name}.ko");
    if out.iter().any(|(n, _)| *n == file_name) {
        return Ok(());
    }
    let path = find_module(dir, name).with_context(|| format!("module {name} not in {}", dir.display()))?;
    let data = read_module(&path)?;
    for dep in depends(&data) {
        add_module(dir, &dep, out, depth + 1)?;
    }
    out.push((file_name, data));
    Ok(())
}

/// Finds `<name>.ko[.xz|.zst]`; module names treat `-` and `_` alike.
fn find_module(dir: &Path, name: &str) -> Option<PathBuf> {
    let want = name.replace('-', "_");
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).ok()?.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let file = entry.file_name().to_string_lossy().replace('-', "_");
            let stem = file.strip_suffix(".ko").or_else(|| file.strip_suffix(".ko.xz")).or_else(|| file.strip_suffix(".ko.zst"));
            if stem == Some(want.as_str()) {
                return Some(path);
            }
        }
    }
    None
}

fn read_module(path: &Path) -> Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let tool = if name.ends_with(".xz") {
        Some("xz")
    } else if name.ends_with(".zst") {
        Some("zstd")
    } else {
        None
    };
    match tool {
        None => fs::read(path).with_context(|| format!("reading {name}")),
        Some(tool) => {
            let out = Command::new(tool).arg("-dc").arg(path).output().with_context(|| format!("running {tool}"))?;
            ensure!(out.status.success(), "{tool} -dc {name} failed");
            Ok(out.stdout)
        }
    }
}

/// The `depends=` entry of a module's `.modinfo` section. Found by scanning
/// for the NUL-delimited key rather than parsing ELF: `.modinfo` is a list of
/// NUL-terminated `key=value` strings and no other section holds that key.
fn depends(ko: &[u8]) -> Vec<String> {
    let key = b"\0depends=";
    ko.windows(key.len())
        .position(|w| w == key)
        .map(|at| {
            let rest = &ko[at + key.len()..];
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            String::from_utf8_lossy(&rest[..end]).split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect()
        })
        .unwrap_or_default()
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    ensure!(status.success(), "{cmd:?} failed with {status}");
    Ok(())
}
