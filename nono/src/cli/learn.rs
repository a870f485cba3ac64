//! `nono learn`: record a command and write a profile.
//! (Temporary debug implementation: prints decoded events as JSON lines.)
use std::process::ExitCode;

use crate::record::{self, Backend, session, spawn};

#[derive(Debug, clap::Args)]
pub struct LearnArgs {
    #[arg(long, default_value = "tracepoint")]
    pub backend: String,
    /// The command to run.
    #[arg(trailing_var_arg = true, required = true)]
    pub command: Vec<std::ffi::OsString>,
}

fn dev_offsets() -> anyhow::Result<nono_common::KernelOffsets> {
    let text = std::fs::read_to_string(std::env::var("NONO_DEV_OFFSETS")?)?;
    let v: std::collections::HashMap<String, u32> = serde_json::from_str(&text)?;
    let g = |k: &str| v.get(k).copied().unwrap_or(0);
    Ok(nono_common::KernelOffsets {
        task_real_parent: g("task_real_parent"), task_tgid: g("task_tgid"), task_pid: g("task_pid"), task_fs: g("task_fs"),
        task_files: g("task_files"), task_mm: g("task_mm"), fs_pwd: g("fs_pwd"), fs_root: g("fs_root"), path_mnt: g("path_mnt"),
        path_dentry: g("path_dentry"), dentry_parent: g("dentry_parent"), dentry_name: g("dentry_name"), dentry_inode: g("dentry_inode"),
        qstr_name: g("qstr_name"), qstr_len: g("qstr_len"), mount_parent: g("mount_parent"), mount_mountpoint: g("mount_mountpoint"),
        mount_mnt: g("mount_mnt"), vfsmount_root: g("vfsmount_root"), files_fdt: g("files_fdt"), fdt_fd: g("fdt_fd"),
        fdt_max_fds: g("fdt_max_fds"), file_path: g("file_path"), file_mode: g("file_mode"), file_inode: g("file_inode"),
        inode_mode: g("inode_mode"), mm_exe_file: g("mm_exe_file"), sock_family: g("sock_family"), valid: g("valid"),
    })
}

pub fn run(args: LearnArgs) -> anyhow::Result<ExitCode> {
    let sigfd = session::block_signals()?;
    let backend: Backend = args.backend.parse().map_err(anyhow::Error::msg)?;
    let offsets = dev_offsets()?;
    let mut rec = record::load(backend, &offsets, 4 << 20)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<crate::event::Event>>(16);
    let printer = std::thread::spawn(move || {
        while let Some(batch) = rx.blocking_recv() {
            for e in batch {
                eprintln!("{}", serde_json::to_string(&e).unwrap_or_default());
            }
        }
    });
    let cmd = spawn::Command::new(args.command, std::env::current_dir()?, spawn::Identity::from_sudo()?);
    let out = session::run(rec.as_mut(), &cmd, session::Progress::Auto, tx, sigfd)?;
    drop(rec);
    let _ = printer.join();
    eprintln!("{out:?}");
    Ok(ExitCode::from(out.status.exit_code()))
}
