//! Section 10: rollback snapshots (`nono run --rollback`) against `cp -a`
//! and `rsync -a` of the same tree in the same run (nono's
//! `bench_rollback` example): on the target directory's filesystem, and
//! on a loop-mounted XFS image with reflinks, where snapshots clone
//! instead of copying (and so does `cp -a`, whose default is
//! `--reflink=auto`).

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

use super::{Ctx, which};
use crate::target_dir;

fn example(ctx: &Ctx, root: &Path, dir: &Path, files: usize, bytes: &str, runs: usize, label: &str) -> anyhow::Result<String> {
    let bin = target_dir(root).join("release/examples/bench_rollback");
    eprintln!("bench: bench_rollback {label} ({files} files, {bytes})");
    let _ = ctx;
    let out = Command::new(&bin)
        .arg(dir)
        .arg(files.to_string())
        .arg(bytes)
        .arg(runs.to_string())
        .arg(label)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!("bench_rollback ({label}) failed: {}", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The type of the filesystem holding `dir` (`ext2/ext3`, `xfs`, ...).
fn fs_type(dir: &Path) -> String {
    Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "?".to_owned())
}

pub(super) fn rollback(ctx: &mut Ctx, root: &Path) -> anyhow::Result<()> {
    let (files, bytes, image_mib, runs) =
        if ctx.quick { (2_000, "20M", 300, 1) } else { (100_000, "1G", 5_120, ctx.runs.min(3)) };
    writeln!(
        ctx.report,
        "## 10. Rollback snapshots against `cp -a` and `rsync -a` of the same tree (median of {runs}; page cache warm for all)\n"
    )?;
    let dir = ctx.dir.join("rollback");
    std::fs::create_dir_all(&dir)?;
    let label = format!("{} (the target directory's filesystem)", fs_type(&dir));
    let table = example(ctx, root, &dir, files, bytes, runs, &label)?;
    writeln!(ctx.report, "{table}")?;
    let _ = std::fs::remove_dir_all(&dir);

    let root_user = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !root_user || !which("mkfs.xfs") {
        writeln!(ctx.report, "XFS with reflinks: not measured (needs root and mkfs.xfs; cargo xtask setup installs xfsprogs)\n")?;
        return Ok(());
    }
    let image = ctx.dir.join("rollback-xfs.img");
    let mnt = ctx.dir.join("rollback-xfs");
    std::fs::File::create(&image)?.set_len(image_mib << 20)?;
    let mk = Command::new("mkfs.xfs").args(["-q", "-f", "-m", "reflink=1"]).arg(&image).output()?;
    if !mk.status.success() {
        bail!("mkfs.xfs: {}", String::from_utf8_lossy(&mk.stderr));
    }
    std::fs::create_dir_all(&mnt)?;
    let m = Command::new("mount").args(["-o", "loop"]).arg(&image).arg(&mnt).output()?;
    if !m.status.success() {
        bail!("mounting the XFS image: {}", String::from_utf8_lossy(&m.stderr));
    }
    let result = example(ctx, root, &mnt.join("b"), files, bytes, runs, "xfs (loop-mounted image, reflink=1)");
    let _ = Command::new("umount").arg(&mnt).status();
    let _ = std::fs::remove_file(&image);
    writeln!(ctx.report, "{}", result?)?;
    Ok(())
}
