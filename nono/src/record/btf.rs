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
            sk_dport: o("sock", "__sk_common.skc_dport")?,
            sk_daddr: o("sock", "__sk_common.skc_daddr")?,
            // Absent without CONFIG_IPV6: DNS records then lack an IPv6
            // server address, nothing else.
            sk_v6_daddr: o("sock", "__sk_common.skc_v6_daddr").unwrap_or(0),
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

    /// Where each offset lives, as `(name, struct, member path)`: the
    /// test's own statement of what `kernel_offsets` must read, resolved a
    /// second time from bpftool's dump rather than from a fixture (a kernel
    /// release does not identify a struct layout: two 6.18 builds differ).
    const SPEC: &[(&str, &str, &str)] = &[
        ("task_real_parent", "task_struct", "real_parent"),
        ("task_tgid", "task_struct", "tgid"),
        ("task_pid", "task_struct", "pid"),
        ("task_fs", "task_struct", "fs"),
        ("task_files", "task_struct", "files"),
        ("task_mm", "task_struct", "mm"),
        ("fs_pwd", "fs_struct", "pwd"),
        ("fs_root", "fs_struct", "root"),
        ("path_mnt", "path", "mnt"),
        ("path_dentry", "path", "dentry"),
        ("dentry_parent", "dentry", "d_parent"),
        ("dentry_name", "dentry", "d_name"),
        ("dentry_inode", "dentry", "d_inode"),
        ("qstr_name", "qstr", "name"),
        ("qstr_len", "qstr", "len"),
        ("mount_parent", "mount", "mnt_parent"),
        ("mount_mountpoint", "mount", "mnt_mountpoint"),
        ("mount_mnt", "mount", "mnt"),
        ("vfsmount_root", "vfsmount", "mnt_root"),
        ("files_fdt", "files_struct", "fdt"),
        ("fdt_fd", "fdtable", "fd"),
        ("fdt_max_fds", "fdtable", "max_fds"),
        ("file_path", "file", "f_path"),
        ("file_mode", "file", "f_mode"),
        ("file_inode", "file", "f_inode"),
        ("inode_mode", "inode", "i_mode"),
        ("mm_exe_file", "mm_struct", "exe_file"),
        ("sock_family", "sock", "__sk_common.skc_family"),
        ("file_flags", "file", "f_flags"),
        ("file_private_data", "file", "private_data"),
        ("socket_sk", "socket", "sk"),
        ("sk_type", "sock", "sk_type"),
        ("sk_protocol", "sock", "sk_protocol"),
        ("inode_private", "inode", "i_private"),
        ("pid_numbers", "pid", "numbers"),
        ("upid_nr", "upid", "nr"),
        ("bprm_filename", "linux_binprm", "filename"),
        ("task_ti_status", "task_struct", "thread_info.status"),
        ("sk_dport", "sock", "__sk_common.skc_dport"),
        ("sk_daddr", "sock", "__sk_common.skc_daddr"),
        ("sk_v6_daddr", "sock", "__sk_common.skc_v6_daddr"),
    ];

    /// bpftool's JSON dump of a BTF file, indexed by type id.
    struct Dump(Vec<serde_json::Value>);

    impl Dump {
        fn load(path: &Path) -> Option<Dump> {
            let out = std::process::Command::new("bpftool")
                .args(["-j", "btf", "dump", "file"])
                .arg(path)
                .output()
                .ok()
                .filter(|o| o.status.success())?;
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bpftool JSON");
            let mut types = vec![serde_json::Value::Null];
            types.extend(v["types"].as_array().expect("types").iter().cloned());
            Some(Dump(types))
        }

        fn resolve(&self, mut id: u64) -> &serde_json::Value {
            loop {
                let t = &self.0[id as usize];
                match t["kind"].as_str() {
                    Some("TYPEDEF" | "CONST" | "VOLATILE" | "RESTRICT" | "TYPE_TAG") => {
                        id = t["type_id"].as_u64().expect("type_id");
                    }
                    _ => return t,
                }
            }
        }

        /// Bit offset and type of `name` in `t`, through anonymous members.
        fn member(&self, t: &serde_json::Value, name: &str) -> Option<(u64, u64)> {
            for m in t["members"].as_array()? {
                let (bits, ty) = (m["bits_offset"].as_u64()?, m["type_id"].as_u64()?);
                if m["name"] == name {
                    return Some((bits, ty));
                }
                if m["name"] == "(anon)"
                    && let Some((inner, ty)) = self.member(self.resolve(ty), name)
                {
                    return Some((bits + inner, ty));
                }
            }
            None
        }

        fn offset(&self, strukt: &str, path: &str) -> u64 {
            let mut t = self
                .0
                .iter()
                .find(|t| t["kind"] == "STRUCT" && t["name"] == strukt)
                .unwrap_or_else(|| panic!("bpftool: no struct {strukt}"));
            let mut bits = 0;
            for part in path.split('.') {
                let (o, ty) = self.member(t, part).unwrap_or_else(|| panic!("bpftool: no {strukt}.{path}"));
                bits += o;
                t = self.resolve(ty);
            }
            assert_eq!(bits % 8, 0, "{strukt}.{path} is not byte-aligned");
            bits / 8
        }
    }

    #[test]
    fn offsets_of_the_running_kernel_are_complete_and_match_bpftool() {
        let path = Path::new("/sys/kernel/btf/vmlinux");
        let required = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
            || std::env::var("NONO_REQUIRE_KERNEL").is_ok_and(|v| v == "1");
        if !path.exists() {
            assert!(!required, "CI machines have BTF");
            eprintln!("SKIP: no {}", path.display());
            return;
        }
        let off = running_kernel_offsets().expect("offsets");
        assert_eq!(off.valid, 1);
        // Structs the walk cannot do without sit at non-zero offsets.
        assert!(off.task_tgid > 0 && off.task_fs > 0 && off.dentry_parent > 0 && off.mm_exe_file > 0);
        let got = offsets_map(&off);
        assert_eq!(got.len(), SPEC.len(), "every offset has a SPEC entry");
        let Some(dump) = Dump::load(path) else {
            assert!(!required, "bpftool is installed by `cargo xtask setup`, and CI runs it");
            eprintln!("SKIP (comparison): bpftool is not installed");
            return;
        };
        for (name, strukt, member) in SPEC {
            assert_eq!(u64::from(got[name]), dump.offset(strukt, member), "{name} ({strukt}.{member})");
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
            ("sk_dport", o.sk_dport),
            ("sk_daddr", o.sk_daddr),
            ("sk_v6_daddr", o.sk_v6_daddr),
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
