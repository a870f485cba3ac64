//! Writes the guest's initramfs: an uncompressed `newc` cpio archive with
//! busybox, `/init`, the run configuration and any kernel modules the guest
//! needs to mount the host root. Written here rather than by `cpio(1)` so the
//! archive content is exactly what this module lists, with no staging tree.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use anyhow::{Context, Result};

/// The guest's `/init`, run as PID 1.
const INIT_SCRIPT: &str = include_str!("init.sh");

/// One entry of the archive.
enum Entry<'a> {
    Dir(&'a str),
    File { path: &'a str, mode: u32, data: &'a [u8] },
}

/// Everything the guest needs beyond busybox and `/init`.
pub struct GuestFiles<'a> {
    /// Shell variable assignments sourced by `/init` (`NONCE`, `MODULES`, ...).
    pub config: &'a str,
    /// The script run inside the host root.
    pub command: &'a str,
    /// `(file name, uncompressed .ko)` in load order.
    pub modules: &'a [(String, Vec<u8>)],
}

/// Writes the archive to `out`, with the static busybox found at `busybox`.
pub fn write(out: &Path, busybox: &Path, files: &GuestFiles<'_>) -> Result<()> {
    let busybox_bin = fs::read(busybox).with_context(|| format!("reading {}", busybox.display()))?;
    let mut entries = vec![
        Entry::Dir("bin"),
        Entry::Dir("dev"),
        Entry::Dir("proc"),
        Entry::Dir("sys"),
        Entry::Dir("tmp"),
        Entry::Dir("newroot"),
        Entry::Dir("nono-vm"),
        Entry::Dir("nono-vm/modules"),
        Entry::File { path: "bin/busybox", mode: 0o755, data: &busybox_bin },
        Entry::File { path: "init", mode: 0o755, data: INIT_SCRIPT.as_bytes() },
        Entry::File { path: "nono-vm/config", mode: 0o644, data: files.config.as_bytes() },
        Entry::File { path: "nono-vm/cmd.sh", mode: 0o755, data: files.command.as_bytes() },
    ];
    let module_paths: Vec<String> = files.modules.iter().map(|(name, _)| format!("nono-vm/modules/{name}")).collect();
    for ((_, data), path) in files.modules.iter().zip(&module_paths) {
        entries.push(Entry::File { path, mode: 0o644, data });
    }

    let mut buf = Vec::with_capacity(busybox_bin.len() + 64 * 1024);
    for (ino, entry) in entries.iter().enumerate() {
        let (name, mode, data): (&str, u32, &[u8]) = match entry {
            Entry::Dir(path) => (path, 0o040_755, &[]),
            Entry::File { path, mode, data } => (path, 0o100_000 | mode, data),
        };
        push_entry(&mut buf, ino as u32 + 1, name, mode, data)?;
    }
    push_entry(&mut buf, 0, "TRAILER!!!", 0, &[])?;
    fs::write(out, &buf).with_context(|| format!("writing {}", out.display()))
}

/// Appends one `newc` record: a 110-byte ASCII header, the NUL-terminated
/// name and the data, each padded to a multiple of four bytes.
fn push_entry(buf: &mut Vec<u8>, ino: u32, name: &str, mode: u32, data: &[u8]) -> io::Result<()> {
    let size = u32::try_from(data.len()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file too large for newc"))?;
    let nlink = if mode & 0o040_000 != 0 { 2 } else { 1 };
    let name_len = name.len() as u32 + 1;
    write!(
        buf,
        "070701{ino:08x}{mode:08x}{:08x}{:08x}{nlink:08x}{:08x}{size:08x}{:08x}{:08x}{:08x}{:08x}{name_len:08x}{:08x}",
        0, 0, 0, 0, 0, 0, 0, 0
    )?;
    buf.extend_from_slice(name.as_bytes());
    buf.push(0);
    pad4(buf);
    buf.extend_from_slice(data);
    pad4(buf);
    Ok(())
}

fn pad4(buf: &mut Vec<u8>) {
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}
