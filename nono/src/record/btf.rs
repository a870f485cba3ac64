//! The kernel struct offsets the eBPF path walk needs, read from the
//! running kernel's BTF (`/sys/kernel/btf/vmlinux`), so one binary works
//! across kernel builds whose structs are laid out differently (the Rust
//! eBPF toolchain has no CO-RE relocations).
//!
//! A small reader of the raw BTF format: types, members (through anonymous
//! structs and unions, as `file.f_path` and `dentry.d_name` are on 6.18)
//! and modifiers. Bitfield members are refused: the programs read whole
//! fields.

use std::collections::HashMap;
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
const KIND_FUNC: u32 = 12;
const MODIFIERS: [u32; 5] = [8, 9, 10, 11, 18]; // typedef, volatile, const, restrict, type_tag

#[derive(Debug)]
struct Member {
    name: u32,
    ty: u32,
    /// Bit offset (low 24 bits when the bitfield flag is set).
    bits: u32,
    bitfield_size: u32,
}

#[derive(Debug)]
struct Type {
    name: u32,
    kind: u32,
    /// size or referenced type id
    size_type: u32,
    members: Vec<Member>,
}

/// Parsed vmlinux BTF (only what the offsets need).
pub struct Btf {
    types: Vec<Type>,
    strings: Vec<u8>,
    structs: HashMap<String, u32>,
    funcs: HashMap<String, u32>,
}

impl Btf {
    pub fn from_file(path: &Path) -> Result<Btf, BtfError> {
        let data = std::fs::read(path).map_err(|source| BtfError::Read { path: path.display().to_string(), source })?;
        Btf::parse(&data)
    }

    pub fn parse(data: &[u8]) -> Result<Btf, BtfError> {
        let bad = |what: &str| BtfError::Malformed(what.to_owned());
        let u16_at = |o: usize| data.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
        let u32_at = |o: usize| data.get(o..o + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        if u16_at(0) != Some(0xEB9F) {
            return Err(bad("bad magic (not little-endian BTF)"));
        }
        let hdr_len = u32_at(4).ok_or_else(|| bad("short header"))? as usize;
        let field = |i: usize| u32_at(8 + 4 * i).map(|v| v as usize).ok_or_else(|| bad("short header"));
        let (type_off, type_len, str_off, str_len) = (field(0)?, field(1)?, field(2)?, field(3)?);
        let types_start = hdr_len + type_off;
        let types_end = types_start + type_len;
        let strings =
            data.get(hdr_len + str_off..hdr_len + str_off + str_len).ok_or_else(|| bad("string section out of bounds"))?;
        if types_end > data.len() {
            return Err(bad("type section out of bounds"));
        }
        // Type id 0 is void.
        let mut types = vec![Type { name: 0, kind: 0, size_type: 0, members: Vec::new() }];
        let mut o = types_start;
        while o < types_end {
            let word = |i: usize| u32_at(o + 4 * i).ok_or_else(|| bad("truncated type"));
            let (name, info, size_type) = (word(0)?, word(1)?, word(2)?);
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            o += 12;
            let mut members = Vec::new();
            let extra = match kind {
                1 | 14 | 17 => 4,
                3 => 12,
                KIND_STRUCT | KIND_UNION => {
                    for i in 0..vlen {
                        let m = |j: usize| u32_at(o + 12 * i + 4 * j).ok_or_else(|| bad("truncated member"));
                        let raw = m(2)?;
                        let (bits, bitfield_size) = if kind_flag { (raw & 0x00ff_ffff, raw >> 24) } else { (raw, 0) };
                        members.push(Member { name: m(0)?, ty: m(1)?, bits, bitfield_size });
                    }
                    12 * vlen
                }
                6 | 13 => 8 * vlen,
                15 | 19 => 12 * vlen,
                2 | 7..=12 | 16 | 18 => 0,
                other => return Err(BtfError::Malformed(format!("unknown BTF kind {other}"))),
            };
            o += extra;
            types.push(Type { name, kind, size_type, members });
        }
        let mut btf = Btf { types, strings: strings.to_vec(), structs: HashMap::new(), funcs: HashMap::new() };
        for (id, t) in btf.types.iter().enumerate() {
            if (t.kind == KIND_STRUCT || t.kind == KIND_FUNC) && t.name != 0 {
                let name = btf.string(t.name).to_owned();
                let map = if t.kind == KIND_STRUCT { &mut btf.structs } else { &mut btf.funcs };
                map.entry(name).or_insert(id as u32);
            }
        }
        Ok(btf)
    }

    fn string(&self, off: u32) -> &str {
        let s = self.strings.get(off as usize..).unwrap_or_default();
        let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
        std::str::from_utf8(&s[..end]).unwrap_or("")
    }

    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.types.get(id as usize) {
                Some(t) if MODIFIERS.contains(&t.kind) => id = t.size_type,
                _ => break,
            }
        }
        id
    }

    /// Byte offset and type of `member` in struct/union `id`, looking
    /// inside anonymous members.
    fn find(&self, id: u32, member: &str, strukt: &str) -> Result<Option<(u32, u32)>, BtfError> {
        let Some(t) = self.types.get(id as usize) else { return Ok(None) };
        for m in &t.members {
            if m.name != 0 && self.string(m.name) == member {
                if m.bitfield_size != 0 || m.bits % 8 != 0 {
                    return Err(BtfError::Bitfield { strukt: strukt.to_owned(), member: member.to_owned() });
                }
                return Ok(Some((m.bits / 8, m.ty)));
            }
            if m.name == 0 {
                let inner = self.resolve(m.ty);
                if matches!(self.types.get(inner as usize).map(|t| t.kind), Some(KIND_STRUCT | KIND_UNION)) {
                    if let Some((o, ty)) = self.find(inner, member, strukt)? {
                        return Ok(Some((m.bits / 8 + o, ty)));
                    }
                }
            }
        }
        Ok(None)
    }

    /// The type id of kernel function `name` (an LSM program's attach point).
    #[must_use]
    pub fn func_id(&self, name: &str) -> Option<u32> {
        self.funcs.get(name).copied()
    }

    /// Byte offset of `path` (`a.b.c`) in struct `strukt`.
    pub fn member_offset(&self, strukt: &str, path: &str) -> Result<u32, BtfError> {
        let mut id = *self.structs.get(strukt).ok_or_else(|| BtfError::NoStruct(strukt.to_owned()))?;
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
            sock_family: o("sock_common", "skc_family")?,
            valid: 1,
        })
    }
}

/// The offsets of the running kernel.
pub fn running_kernel_offsets() -> Result<KernelOffsets, BtfError> {
    Btf::from_file(Path::new("/sys/kernel/btf/vmlinux"))?.kernel_offsets()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Offsets bpftool reported for the 6.18 development host; the test
    /// compares only on that kernel release.
    const HOST_6_18: &str = r#"{"task_real_parent": 1280, "task_tgid": 1268, "task_pid": 1264, "task_fs": 1816, "task_files": 1824, "task_mm": 1136, "fs_pwd": 40, "fs_root": 24, "path_mnt": 0, "path_dentry": 8, "dentry_parent": 24, "dentry_name": 32, "dentry_inode": 48, "qstr_name": 8, "qstr_len": 4, "mount_parent": 16, "mount_mountpoint": 24, "mount_mnt": 32, "vfsmount_root": 0, "files_fdt": 32, "fdt_fd": 8, "fdt_max_fds": 0, "file_path": 64, "file_mode": 4, "file_inode": 32, "inode_mode": 0, "mm_exe_file": 1312, "sock_family": 16}"#;

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
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn garbage_is_refused() {
        assert!(matches!(Btf::parse(b"nope"), Err(BtfError::Malformed(_))));
        assert!(matches!(Btf::parse(&[0x9f, 0xeb, 1, 0, 24, 0, 0, 0]), Err(BtfError::Malformed(_))));
    }
}
