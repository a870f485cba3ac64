//! The kernel struct offsets the eBPF path walk needs, read from the
//! running kernel's BTF (`/sys/kernel/btf/vmlinux`), so one binary works
//! across kernel builds whose structs are laid out differently (the Rust
//! eBPF toolchain has no CO-RE relocations).
//!
//! A small reader of the raw BTF format: types, members (through anonymous
//! structs and unions, as `file.f_path` and `dentry.d_name` are on 6.18)
//! and modifiers. Bitfield members are refused: the programs read whole
//! fields.

use std::path::Path;

use nono_common::KernelOffsets;

/// Why the offsets could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("reading {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("malformed BTF: {0}")]
    Malformed(String),
    #[error("BTF has no struct {0}")]
    NoStruct(String),
    #[error("BTF struct {strukt} has no member {member}")]
    NoMember { strukt: String, member: String },
    #[error("BTF member {strukt}.{member} is a bitfield")]
    Bitfield { strukt: String, member: String },
}

const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_TYPEDEF: u32 = 8;
const KIND_FUNC: u32 = 12;
const MODIFIERS: [u32; 5] = [8, 9, 10, 11, 18]; // typedef, volatile, const, restrict, type_tag

/// Parsed vmlinux BTF, indexed but not decoded: a type's record is read
/// from the raw bytes when a lookup needs it. `nono learn` starts by
/// reading a handful of offsets from ~120,000 types, so decoding every
/// member of every struct (as a first version did) cost more than the
/// rest of the start-up put together.
pub struct Btf {
    data: Vec<u8>,
    /// Byte offset in `data` of each type's record, by type id (0 = void).
    records: Vec<u32>,
    /// Ids of the named structs and unions, and of the functions.
    structs: Vec<u32>,
    funcs: Vec<u32>,
    strings: std::ops::Range<usize>,
}

/// A type's fixed part.
#[derive(Clone, Copy)]
struct Head {
    name: u32,
    kind: u32,
    vlen: usize,
    kind_flag: bool,
    /// Size, or the referenced type id.
    size_type: u32,
    /// Where the kind-specific part starts.
    body: usize,
}

impl Btf {
    pub fn from_file(path: &Path) -> Result<Btf, BtfError> {
        let data = std::fs::read(path).map_err(|source| BtfError::Read { path: path.display().to_string(), source })?;
        Btf::parse(data)
    }

    pub fn parse(data: impl Into<Vec<u8>>) -> Result<Btf, BtfError> {
        let data = data.into();
        let bad = |what: &str| BtfError::Malformed(what.to_owned());
        if u16_at(&data, 0) != Some(0xEB9F) {
            return Err(bad("bad magic (not little-endian BTF)"));
        }
        let hdr_len = u32_at(&data, 4).ok_or_else(|| bad("short header"))? as usize;
        let field = |i: usize| u32_at(&data, 8 + 4 * i).map(|v| v as usize).ok_or_else(|| bad("short header"));
        let (type_off, type_len, str_off, str_len) = (field(0)?, field(1)?, field(2)?, field(3)?);
        let types_start = hdr_len + type_off;
        let types_end = types_start + type_len;
        let strings = hdr_len + str_off..hdr_len + str_off + str_len;
        if strings.end > data.len() || types_end > data.len() {
            return Err(bad("section out of bounds"));
        }
        let mut btf = Btf { records: vec![0], structs: Vec::new(), funcs: Vec::new(), strings, data: Vec::new() };
        let mut o = types_start;
        while o < types_end {
            let id = btf.records.len() as u32;
            let h = head(&data, o).ok_or_else(|| bad("truncated type"))?;
            let extra = match h.kind {
                1 | 14 | 17 => 4,
                3 => 12,
                KIND_STRUCT | KIND_UNION | 15 | 19 => 12 * h.vlen,
                6 | 13 => 8 * h.vlen,
                2 | 7..=12 | 16 | 18 => 0,
                other => return Err(BtfError::Malformed(format!("unknown BTF kind {other}"))),
            };
            if h.body + extra > types_end {
                return Err(bad("truncated type"));
            }
            match h.kind {
                KIND_STRUCT | KIND_UNION if h.name != 0 => btf.structs.push(id),
                KIND_FUNC => btf.funcs.push(id),
                _ => {}
            }
            btf.records.push(o as u32);
            o = h.body + extra;
        }
        btf.data = data;
        Ok(btf)
    }

    fn head(&self, id: u32) -> Option<Head> {
        let o = *self.records.get(id as usize)? as usize;
        if id == 0 {
            return None;
        }
        head(&self.data, o)
    }

    fn string(&self, off: u32) -> &[u8] {
        let s = self.data.get(self.strings.start + off as usize..self.strings.end).unwrap_or_default();
        let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
        &s[..end]
    }

    fn named(&self, ids: &[u32], name: &str) -> Option<u32> {
        ids.iter().copied().find(|&id| self.head(id).is_some_and(|h| self.string(h.name) == name.as_bytes()))
    }

    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.head(id) {
                Some(h) if MODIFIERS.contains(&h.kind) => id = h.size_type,
                _ => break,
            }
        }
        id
    }

    /// Byte offset and type of `member` in struct/union `id`, looking
    /// inside anonymous members.
    fn find(&self, id: u32, member: &str, strukt: &str) -> Result<Option<(u32, u32)>, BtfError> {
        let Some(h) = self.head(id) else { return Ok(None) };
        if !matches!(h.kind, KIND_STRUCT | KIND_UNION) {
            return Ok(None);
        }
        for i in 0..h.vlen {
            let m = |j: usize| u32_at(&self.data, h.body + 12 * i + 4 * j).unwrap_or(0);
            let (name, ty, raw) = (m(0), m(1), m(2));
            let (bits, bitfield_size) = if h.kind_flag { (raw & 0x00ff_ffff, raw >> 24) } else { (raw, 0) };
            if name != 0 && self.string(name) == member.as_bytes() {
                if bitfield_size != 0 || bits % 8 != 0 {
                    return Err(BtfError::Bitfield { strukt: strukt.to_owned(), member: member.to_owned() });
                }
                return Ok(Some((bits / 8, ty)));
            }
            if name == 0
                && let Some((o, ty)) = self.find(self.resolve(ty), member, strukt)?
            {
                return Ok(Some((bits / 8 + o, ty)));
            }
        }
        Ok(None)
    }

    /// The type id of typedef `name` (`btf_trace_<tracepoint>` names a BTF
    /// tracepoint's prototype).
    #[must_use]
    pub fn typedef_id(&self, name: &str) -> Option<u32> {
        (1..self.records.len() as u32)
            .find(|&id| self.head(id).is_some_and(|h| h.kind == KIND_TYPEDEF && self.string(h.name) == name.as_bytes()))
    }

    /// The type id of kernel function `name` (an LSM program's attach point).
    #[must_use]
    pub fn func_id(&self, name: &str) -> Option<u32> {
        self.named(&self.funcs, name)
    }

    /// Byte offset of `path` (`a.b.c`) in struct `strukt`.
    pub fn member_offset(&self, strukt: &str, path: &str) -> Result<u32, BtfError> {
        let mut id = self.named(&self.structs, strukt).ok_or_else(|| BtfError::NoStruct(strukt.to_owned()))?;
        let mut total = 0;
        for part in path.split('.') {
            let (o, ty) = self
                .find(id, part, strukt)?
                .ok_or_else(|| BtfError::NoMember { strukt: strukt.to_owned(), member: path.to_owned() })?;
            total += o;
            id = self.resolve(ty);
        }
        Ok(total)
    }

    /// Every offset the eBPF programs read.
    pub fn kernel_offsets(&self) -> Result<KernelOffsets, BtfError> {
        let o = |s: &str, m: &str| self.member_offset(s, m);
        Ok(KernelOffsets {
            task_real_parent: o("task_struct", "real_parent")?,
            task_tgid: o("task_struct", "tgid")?,
            task_pid: o("task_struct", "pid")?,
            task_fs: o("task_struct", "fs")?,
            task_files: o("task_struct", "files")?,
            task_mm: o("task_struct", "mm")?,
            fs_pwd: o("fs_struct", "pwd")?,
            fs_root: o("fs_struct", "root")?,
            path_mnt: o("path", "mnt")?,
            path_dentry: o("path", "dentry")?,
            dentry_parent: o("dentry", "d_parent")?,
            dentry_name: o("dentry", "d_name")?,
            dentry_inode: o("dentry", "d_inode")?,
            qstr_name: o("qstr", "name")?,
            qstr_len: o("qstr", "len")?,
            mount_parent: o("mount", "mnt_parent")?,
            mount_mountpoint: o("mount", "mnt_mountpoint")?,
            mount_mnt: o("mount", "mnt")?,
            vfsmount_root: o("vfsmount", "mnt_root")?,
            files_fdt: o("files_struct", "fdt")?,
            fdt_fd: o("fdtable", "fd")?,
            fdt_max_fds: o("fdtable", "max_fds")?,
            file_path: o("file", "f_path")?,
            file_mode: o("file", "f_mode")?,
            file_inode: o("file", "f_inode")?,
            inode_mode: o("inode", "i_mode")?,
            mm_exe_file: o("mm_struct", "exe_file")?,
            sock_family: o("sock", "__sk_common.skc_family")?,
            file_flags: o("file", "f_flags")?,
            file_private_data: o("file", "private_data")?,
            socket_sk: o("socket", "sk")?,
            sk_type: o("sock", "sk_type")?,
            sk_protocol: o("sock", "sk_protocol")?,
            inode_private: o("inode", "i_private")?,
            pid_numbers: o("pid", "numbers")?,
            upid_nr: o("upid", "nr")?,
            bprm_filename: o("linux_binprm", "filename")?,
            task_ti_status: o("task_struct", "thread_info.status")?,
            valid: 1,
        })
    }
}

fn u16_at(d: &[u8], o: usize) -> Option<u16> {
    d.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]))
}

fn u32_at(d: &[u8], o: usize) -> Option<u32> {
    d.get(o..o + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn head(d: &[u8], o: usize) -> Option<Head> {
    let (name, info, size_type) = (u32_at(d, o)?, u32_at(d, o + 4)?, u32_at(d, o + 8)?);
    Some(Head {
        name,
        kind: (info >> 24) & 0x1f,
        vlen: (info & 0xffff) as usize,
        kind_flag: info >> 31 == 1,
        size_type,
        body: o + 12,
    })
}

/// The offsets of the running kernel.
pub fn running_kernel_offsets() -> Result<KernelOffsets, BtfError> {
    let started = std::time::Instant::now();
    let offsets = Btf::from_file(Path::new("/sys/kernel/btf/vmlinux"))?.kernel_offsets();
    log::debug!("kernel struct offsets read from BTF in {:?}", started.elapsed());
    offsets
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Offsets bpftool reported for the 6.18 development host; the test
    /// compares only on that kernel release.
    const HOST_6_18: &str = r#"{"task_real_parent": 1280, "task_tgid": 1268, "task_pid": 1264, "task_fs": 1816, "task_files": 1824, "task_mm": 1136, "fs_pwd": 40, "fs_root": 24, "path_mnt": 0, "path_dentry": 8, "dentry_parent": 24, "dentry_name": 32, "dentry_inode": 48, "qstr_name": 8, "qstr_len": 4, "mount_parent": 16, "mount_mountpoint": 24, "mount_mnt": 32, "vfsmount_root": 0, "files_fdt": 32, "fdt_fd": 8, "fdt_max_fds": 0, "file_path": 64, "file_mode": 4, "file_inode": 32, "inode_mode": 0, "mm_exe_file": 1312, "sock_family": 16, "file_flags": 40, "file_private_data": 24, "socket_sk": 24, "sk_type": 534, "sk_protocol": 532, "pid_numbers": 144, "upid_nr": 0, "bprm_filename": 96, "task_ti_status": 16, "inode_private": 608}"#;

    #[test]
    fn offsets_of_the_running_kernel_are_complete_and_match_bpftool() {
        let path = Path::new("/sys/kernel/btf/vmlinux");
        if !path.exists() {
            assert!(std::env::var("CI").is_err(), "CI machines have BTF");
            eprintln!("SKIP: no {}", path.display());
            return;
        }
        let off = running_kernel_offsets().expect("offsets");
        assert_eq!(off.valid, 1);
        // Structs the walk cannot do without sit at non-zero offsets.
        assert!(off.task_tgid > 0 && off.task_fs > 0 && off.dentry_parent > 0 && off.mm_exe_file > 0);
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        if release.trim() == "6.18.44" || release.starts_with("6.18.") {
            let want: std::collections::BTreeMap<String, u32> = serde_json::from_str(HOST_6_18).expect("fixture");
            let got = serde_json::to_value(offsets_map(&off)).expect("json");
            for (k, v) in want {
                assert_eq!(got[&k], v, "{k}");
            }
        }
    }

    fn offsets_map(o: &KernelOffsets) -> std::collections::BTreeMap<&'static str, u32> {
        [
            ("task_real_parent", o.task_real_parent),
            ("task_tgid", o.task_tgid),
            ("task_pid", o.task_pid),
            ("task_fs", o.task_fs),
            ("task_files", o.task_files),
            ("task_mm", o.task_mm),
            ("fs_pwd", o.fs_pwd),
            ("fs_root", o.fs_root),
            ("path_mnt", o.path_mnt),
            ("path_dentry", o.path_dentry),
            ("dentry_parent", o.dentry_parent),
            ("dentry_name", o.dentry_name),
            ("dentry_inode", o.dentry_inode),
            ("qstr_name", o.qstr_name),
            ("qstr_len", o.qstr_len),
            ("mount_parent", o.mount_parent),
            ("mount_mountpoint", o.mount_mountpoint),
            ("mount_mnt", o.mount_mnt),
            ("vfsmount_root", o.vfsmount_root),
            ("files_fdt", o.files_fdt),
            ("fdt_fd", o.fdt_fd),
            ("fdt_max_fds", o.fdt_max_fds),
            ("file_path", o.file_path),
            ("file_mode", o.file_mode),
            ("file_inode", o.file_inode),
            ("inode_mode", o.inode_mode),
            ("mm_exe_file", o.mm_exe_file),
            ("sock_family", o.sock_family),
            ("file_flags", o.file_flags),
            ("file_private_data", o.file_private_data),
            ("socket_sk", o.socket_sk),
            ("sk_type", o.sk_type),
            ("sk_protocol", o.sk_protocol),
            ("inode_private", o.inode_private),
            ("pid_numbers", o.pid_numbers),
            ("upid_nr", o.upid_nr),
            ("bprm_filename", o.bprm_filename),
            ("task_ti_status", o.task_ti_status),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn garbage_is_refused() {
        assert!(matches!(Btf::parse(b"nope".as_slice()), Err(BtfError::Malformed(_))));
        assert!(matches!(Btf::parse([0x9f, 0xeb, 1, 0, 24, 0, 0, 0].as_slice()), Err(BtfError::Malformed(_))));
    }
}
