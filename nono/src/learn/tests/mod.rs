//! Specification tests for `learn`, built from hand-made events. Context
//! for all of them unless a test says otherwise: `$HOME=/home/u`,
//! `$CWD=/home/u/proj`, `$TMPDIR=/tmp`, XDG dirs under `$HOME`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

use super::*;

mod amend;
mod brokered;
mod metadata;
mod net;
mod persistence;
mod steady;
use crate::event::{Access, NetAddr, Outcome};
use crate::profile::rights::FsRight::{self, *};
use crate::profile::rights::SeenIn;

pub(super) fn ctx() -> LearnContext {
    LearnContext {
        home: "/home/u".into(),
        cwd: "/home/u/proj".into(),
        tmpdir: "/tmp".into(),
        xdg_config_home: "/home/u/.config".into(),
        xdg_cache_home: "/home/u/.cache".into(),
        allow_sensitive: Vec::new(),
        runtime_dir: Some("/run/user/1000".into()),
        ssh_auth_sock: Some("/tmp/ssh-AbC123/agent.77".into()),
        nameservers: vec!["127.0.0.53".parse().expect("ip")],
        anticipate: false,
        path_dirs: Vec::new(),
    }
}

/// Event builder: `ev(Op::Open, "/x").read().pid(7)`.
pub(super) struct Ev(pub(super) Event);

pub(super) fn ev(op: Op, path: &str) -> Ev {
    Ev(Event {
        time_ns: 0,
        pid: 100,
        tid: 100,
        ppid: 1,
        uid: 1000,
        comm: "agent".into(),
        exe: None,
        op,
        path: Some(path.into()),
        path2: None,
        access: Access::default(),
        arg: 0,
        file_type: 0,
        outcome: Outcome::Ok,
        net: None,
        incomplete: false,
    })
}

pub(super) fn open_r(path: &str) -> Ev {
    ev(Op::Open, path).read()
}

pub(super) fn net(op: Op, family: i32, port: u16) -> Ev {
    let mut e = ev(op, "");
    e.0.path = None;
    e.0.net = Some(NetAddr { family: family as u16, addr: None, port, sock_type: 1, protocol: 0 });
    e
}

impl Ev {
    pub(super) fn read(mut self) -> Self {
        self.0.access.read = true;
        self
    }
    pub(super) fn write(mut self) -> Self {
        self.0.access.write = true;
        self
    }
    pub(super) fn create(mut self) -> Self {
        self.0.access.create = true;
        self
    }
    pub(super) fn trunc(mut self) -> Self {
        self.0.access.truncate = true;
        self
    }
    pub(super) fn dir(mut self) -> Self {
        self.0.access.directory = true;
        self
    }
    pub(super) fn to(mut self, p: &str) -> Self {
        self.0.path2 = Some(p.into());
        self
    }
    pub(super) fn ftype(mut self, mode: u32) -> Self {
        self.0.file_type = mode;
        self
    }
    pub(super) fn arg(mut self, a: u64) -> Self {
        self.0.arg = a;
        self
    }
    pub(super) fn pid(mut self, pid: u32) -> Self {
        self.0.pid = pid;
        self.0.tid = pid;
        self
    }
    pub(super) fn comm(mut self, c: &str) -> Self {
        self.0.comm = c.into();
        self
    }
    pub(super) fn err(mut self, errno: i32) -> Self {
        self.0.outcome = Outcome::from_ret(-i64::from(errno));
        self
    }
    pub(super) fn incomplete(mut self) -> Self {
        self.0.incomplete = true;
        self
    }
    pub(super) fn rights(&self) -> Vec<(String, BTreeSet<FsRight>, bool)> {
        rights_for_event(&self.0).into_iter().map(|(p, r, f)| (p.to_string_lossy().into_owned(), r, f)).collect()
    }
}

pub(super) fn set(r: &[FsRight]) -> BTreeSet<FsRight> {
    r.iter().copied().collect()
}

pub(super) fn need(p: &str, r: &[FsRight], file: bool) -> (String, BTreeSet<FsRight>, bool) {
    (p.to_owned(), set(r), file)
}

pub(super) fn learn_with(ctx: &LearnContext, events: Vec<Ev>) -> Learned {
    synthesise(events.into_iter().map(|e| e.0), ctx)
}

pub(super) fn learn(events: Vec<Ev>) -> Learned {
    learn_with(&ctx(), events)
}

pub(super) fn rule<'a>(l: &'a Learned, path: &str) -> &'a FsRule {
    l.rules.iter().find(|r| r.path == path).unwrap_or_else(|| panic!("no rule {path}; rules: {:#?}", l.rules))
}

pub(super) fn paths(l: &Learned) -> Vec<&str> {
    l.rules.iter().map(|r| r.path.as_str()).collect()
}

pub(super) fn explanation<'a>(l: &'a Learned, rule_path: &str, needle: &str) -> &'a Explanation {
    l.explanations
        .iter()
        .find(|x| x.rule_path == rule_path && x.reason.contains(needle))
        .unwrap_or_else(|| panic!("no explanation for {rule_path} with {needle:?}: {:#?}", l.explanations))
}

// ---------------------------------------------------------------- mapping

#[test]
fn reading_a_file_needs_read_file_on_the_file() {
    assert_eq!(open_r("/a/f").rights(), vec![need("/a/f", &[ReadFile], true)]);
}

#[test]
fn opening_a_directory_needs_read_dir_on_it() {
    assert_eq!(open_r("/a/d").dir().rights(), vec![need("/a/d", &[ReadDir], false)]);
    // The file type alone also says it is a directory.
    assert_eq!(open_r("/a/d").ftype(libc::S_IFDIR).rights(), vec![need("/a/d", &[ReadDir], false)]);
}

#[test]
fn writing_with_o_trunc_needs_write_and_truncate() {
    let e = ev(Op::Open, "/a/f").write().trunc();
    assert_eq!(e.rights(), vec![need("/a/f", &[WriteFile, Truncate], true)]);
}

#[test]
fn creating_a_file_needs_make_reg_on_the_parent_and_no_truncate() {
    // O_CREAT|O_TRUNC that created the file: the kernel drops O_TRUNC.
    let e = ev(Op::Open, "/a/f").write().create().trunc();
    assert_eq!(e.rights(), vec![need("/a", &[MakeReg], false), need("/a/f", &[WriteFile], true)]);
}

#[test]
fn o_path_opens_need_nothing() {
    let mut e = ev(Op::Open, "/a/f");
    e.0.access = Access::from_open_flags((libc::O_PATH | libc::O_RDWR) as u64, false, false);
    assert!(e.rights().is_empty());
}

#[test]
fn exec_needs_execute_and_read_file() {
    // execve opens the binary O_RDONLY|__FMODE_EXEC: both are checked.
    assert_eq!(ev(Op::Exec, "/usr/bin/git").rights(), vec![need("/usr/bin/git", &[Execute, ReadFile], true)]);
}

#[test]
fn removing_and_making_are_checked_on_the_parent() {
    assert_eq!(ev(Op::Unlink, "/a/f").rights(), vec![need("/a", &[RemoveFile], false)]);
    assert_eq!(ev(Op::Rmdir, "/a/d").rights(), vec![need("/a", &[RemoveDir], false)]);
    assert_eq!(ev(Op::Mkdir, "/a/d").rights(), vec![need("/a", &[MakeDir], false)]);
    assert_eq!(ev(Op::Create, "/a/f").rights(), vec![need("/a", &[MakeReg], false)]);
}

#[test]
fn mknod_needs_the_make_right_of_its_file_type() {
    let cases = [
        (libc::S_IFIFO, MakeFifo),
        (libc::S_IFCHR, MakeChar),
        (libc::S_IFBLK, MakeBlock),
        (libc::S_IFSOCK, MakeSock),
        (libc::S_IFREG, MakeReg),
        (0, MakeReg),
    ];
    for (mode, right) in cases {
        let e = ev(Op::Mknod, "/a/n").arg(u64::from(mode | 0o644));
        assert_eq!(e.rights(), vec![need("/a", &[right], false)], "mode {mode:o}");
    }
}

#[test]
fn symlink_needs_make_sym_on_the_link_parent() {
    // Recorded as path = the link, path2 = the target, verbatim.
    let e = ev(Op::Symlink, "/a/link").to("../target");
    assert_eq!(e.rights(), vec![need("/a", &[MakeSym], false)]);
}

#[test]
fn truncate_and_device_ioctl() {
    assert_eq!(ev(Op::Truncate, "/a/f").rights(), vec![need("/a/f", &[Truncate], true)]);
    assert_eq!(ev(Op::Ioctl, "/dev/tty").ftype(libc::S_IFCHR).rights(), vec![need("/dev/tty", &[IoctlDev], true)]);
    // Landlock does not restrict ioctl on regular files.
    assert!(ev(Op::Ioctl, "/a/f").ftype(libc::S_IFREG).rights().is_empty());
}

#[test]
fn rename_in_one_directory_needs_remove_and_make_there_without_refer() {
    let e = ev(Op::Rename, "/a/f.tmp").to("/a/f").ftype(libc::S_IFREG);
    assert_eq!(e.rights(), vec![need("/a", &[RemoveFile, MakeReg], false)]);
}

#[test]
fn cross_directory_rename_needs_refer_on_both_parents() {
    let e = ev(Op::Rename, "/a/f").to("/b/g").ftype(libc::S_IFREG);
    assert_eq!(
        e.rights(),
        vec![
            need("/a", &[RemoveFile, Refer], false),
            // remove_file: the destination may be replaced.
            need("/b", &[RemoveFile, MakeReg, Refer], false),
        ]
    );
    // RENAME_NOREPLACE cannot replace: no remove on the destination.
    let e = ev(Op::Rename, "/a/f").to("/b/g").arg(1);
    assert_eq!(e.rights()[1], need("/b", &[MakeReg, Refer], false));
    // A directory moves with remove_dir/make_dir.
    let e = ev(Op::Rename, "/a/d").to("/b/d").ftype(libc::S_IFDIR).arg(1);
    assert_eq!(e.rights(), vec![need("/a", &[RemoveDir, Refer], false), need("/b", &[MakeDir, Refer], false)]);
}

#[test]
fn cross_directory_link_needs_make_and_refer() {
    let e = ev(Op::Link, "/a/f").to("/b/f");
    assert_eq!(e.rights(), vec![need("/a", &[Refer], false), need("/b", &[MakeReg, Refer], false)]);
}

#[test]
fn failures_before_the_hook_need_nothing_but_denials_still_list_rights() {
    assert!(open_r("/a/missing").err(libc::ENOENT).rights().is_empty());
    assert!(ev(Op::Mkdir, "/a/d").err(libc::EEXIST).rights().is_empty());
    assert_eq!(open_r("/a/f").err(libc::EACCES).rights(), vec![need("/a/f", &[ReadFile], true)]);
}

#[test]
fn sockets_and_processes_need_no_filesystem_rights_except_unix_bind() {
    assert!(net(Op::Connect, libc::AF_INET, 443).rights().is_empty());
    assert!(ev(Op::Fork, "").rights().is_empty());
    let mut bind = net(Op::Bind, libc::AF_UNIX, 0);
    bind.0.path = Some("/run/app/sock".into());
    assert_eq!(bind.rights(), vec![need("/run/app", &[MakeSock], false)]);
}

// ------------------------------------------------------ failed accesses

#[test]
fn enoent_probes_grant_nothing() {
    let l = learn(vec![
        ev(Op::Exec, "/home/u/bin/git").err(libc::ENOENT),
        open_r("/var/lib/app/conf").err(libc::ENOENT),
        ev(Op::Exec, "/usr/bin/git"),
    ]);
    assert_eq!(paths(&l), vec!["/usr"]);
    assert_eq!(l.stats.ignored[synth::reason::FAILED_EARLY], 2);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
}

#[test]
fn denied_accesses_are_not_granted_and_warned() {
    let l = learn(vec![open_r("/var/secret").err(libc::EACCES).comm("curl")]);
    assert!(l.rules.is_empty());
    assert!(
        l.warnings.iter().any(|w| w.contains("refused") && w.contains("/var/secret") && w.contains("curl")),
        "{:?}",
        l.warnings
    );
    assert_eq!(l.stats.ignored[synth::reason::REFUSED], 1);
}

#[test]
fn failures_after_the_hook_are_not_granted_and_warned() {
    let l = learn(vec![ev(Op::Rmdir, "/var/lib/app/d").err(libc::ENOTEMPTY)]);
    assert!(l.rules.is_empty());
    assert!(l.warnings.iter().any(|w| w.contains("ENOTEMPTY") && w.contains("EACCES")), "{:?}", l.warnings);
}

#[test]
fn incomplete_events_are_ignored_with_a_warning() {
    let l = learn(vec![open_r("/very/long/pa").incomplete()]);
    assert!(l.rules.is_empty());
    assert!(l.warnings.iter().any(|w| w.contains("incomplete")));
    assert_eq!(l.stats.ignored[synth::reason::INCOMPLETE], 1);
}

// ---------------------------------------------------------------- network

#[test]
fn tcp_connects_and_binds_become_ports() {
    let mut refused = net(Op::Connect, libc::AF_INET, 8080);
    refused = refused.err(libc::ECONNREFUSED);
    let mut unix = net(Op::Connect, libc::AF_UNIX, 0);
    unix.0.path = Some("/run/docker.sock".into());
    let l = learn(vec![
        net(Op::Connect, libc::AF_INET, 443),
        net(Op::Connect, libc::AF_INET6, 80).err(libc::EINPROGRESS),
        refused,
        net(Op::Bind, libc::AF_INET, 0),
        unix,
    ]);
    // A refused connect got past Landlock's port check: without the port the
    // sandboxed run would see EACCES instead of ECONNREFUSED.
    assert_eq!(l.connect_ports, [80, 443, 8080].into());
    assert_eq!(l.bind_ports, [0].into());
    assert!(l.rules.is_empty());
    // Docker's socket is sensitive: reported, never granted.
    assert!(l.unix_connect.is_empty());
    assert!(l.sensitive.iter().any(|h| h.path == "/run/docker.sock" && h.why.contains("root")), "{:?}", l.sensitive);
}

// -------------------------------------------------------- generalisation

#[test]
fn system_tree_reads_collapse_to_the_root_with_an_explanation() {
    let l = learn(vec![
        ev(Op::Exec, "/usr/bin/git"),
        open_r("/usr/lib/x86_64-linux-gnu/libc.so.6"),
        open_r("/usr/share/zoneinfo/UTC"),
    ]);
    assert_eq!(paths(&l), vec!["/usr"]);
    assert_eq!(rule(&l, "/usr").access, FsRight::read_set());
    assert!(!rule(&l, "/usr").file);
    let x = explanation(&l, "/usr", "read-only system tree");
    assert_eq!(x.paths, 3);
    assert!(x.from.contains(&"/usr/bin/git".to_owned()));
}

#[test]
fn writes_in_a_system_tree_stay_exact() {
    let l = learn(vec![open_r("/opt/tool/bin/x"), ev(Op::Open, "/opt/tool/state").write()]);
    assert_eq!(rule(&l, "/opt").access, FsRight::read_set());
    let w = rule(&l, "/opt/tool/state");
    assert!(w.file);
    assert_eq!(w.access, set(&[WriteFile]));
}

#[test]
fn etc_cannot_collapse_because_it_holds_shadow() {
    let l = learn(vec![open_r("/etc/passwd"), open_r("/etc/ssl/certs/ca.pem"), open_r("/etc/ssl/openssl.cnf")]);
    assert_eq!(paths(&l), vec!["/etc/passwd", "/etc/ssl/certs", "/etc/ssl/openssl.cnf"]);
    // Stopped on the file itself: only what was observed.
    assert_eq!(rule(&l, "/etc/passwd").access, set(&[ReadFile]));
    assert!(rule(&l, "/etc/passwd").file);
    // /etc/ssl holds /etc/ssl/private; /etc/ssl/certs is a safe directory.
    assert_eq!(rule(&l, "/etc/ssl/certs").access, FsRight::read_set());
    explanation(&l, "/etc/ssl/certs", "/etc/ssl/private");
}

#[test]
fn workdir_files_collapse_to_the_workdir() {
    let l = learn(vec![
        open_r("/home/u/proj/src/main.rs"),
        ev(Op::Open, "/home/u/proj/src/lib.rs").write().trunc(),
        ev(Op::Open, "/home/u/proj/target/debug/out").write().create(),
        ev(Op::Mkdir, "/home/u/proj/target/debug/build"),
    ]);
    assert_eq!(paths(&l), vec!["$CWD"]);
    assert_eq!(rule(&l, "$CWD").access, set(&[ReadFile, WriteFile, Truncate, MakeReg, MakeDir]));
    assert!(explanation(&l, "$CWD", "workdir").paths >= 4);
}

#[test]
fn tool_caches_and_temp_dirs_collapse_to_their_roots() {
    let l = learn(vec![
        open_r("/home/u/.cache/pip/http/a/b"),
        ev(Op::Open, "/home/u/.rustup/toolchains/1.95.0-x86_64/lib/x").read(),
        ev(Op::Open, "/tmp/tmp.AbC123xyz/out").write().create(),
        ev(Op::Mkdir, "/tmp/tmp.AbC123xyz"),
    ]);
    assert_eq!(paths(&l), vec!["$HOME/.rustup", "$TMPDIR", "$XDG_CACHE_HOME"]);
    assert_eq!(rule(&l, "$TMPDIR").access, set(&[WriteFile, MakeDir, MakeReg]));
    explanation(&l, "$TMPDIR", "temp dir /tmp");
    explanation(&l, "$XDG_CACHE_HOME", "tool cache");
}

#[test]
fn a_cache_holding_credentials_collapses_below_them() {
    // ~/.cargo holds credentials.toml: the rule stops at ~/.cargo/registry.
    let l = learn(vec![
        open_r("/home/u/.cargo/registry/src/index/serde-1.0/src/lib.rs"),
        ev(Op::Open, "/home/u/.cargo/registry/cache/x.crate").write().create(),
    ]);
    assert_eq!(paths(&l), vec!["$HOME/.cargo/registry"]);
    explanation(&l, "$HOME/.cargo/registry", ".cargo/credentials");
}

#[test]
fn volatile_names_are_granted_on_their_parent() {
    let l = learn(vec![
        // A pid of a traced process.
        open_r("/var/lib/app/4242/status").pid(4242),
        // A hash.
        open_r("/var/cache/app/0123abcd89ef/blob"),
        // A version number.
        ev(Op::Exec, "/home/u/.local/share/tool/1.2.3/bin/tool"),
        // A temp suffix outside temp dirs.
        open_r("/srv/data/.tmpAb12Cd"),
    ]);
    assert_eq!(paths(&l), vec!["$HOME/.local/share/tool", "/srv/data", "/var/cache/app", "/var/lib/app"]);
    assert_eq!(rule(&l, "$HOME/.local/share/tool").access, set(&[Execute, ReadFile]));
    explanation(&l, "/var/lib/app", "process id");
    explanation(&l, "/var/cache/app", "hash");
    explanation(&l, "$HOME/.local/share/tool", "version");
    explanation(&l, "/srv/data", "temp-file");
}

#[test]
fn stable_names_are_not_mistaken_for_volatile_ones() {
    let pids = [100].into();
    for name in ["python3", "x86_64-linux-gnu", "tmpfiles.d", "ubuntu2204", "sha256sums", "deadbeef", "1000", "config"] {
        assert_eq!(generalise::volatile_kind(name, &pids), None, "{name}");
    }
    for name in ["tmp.k2J8aQ0xZ1", "lock.100", "1.75.0", "node-v18.17.0", "k2j3x9ab", "1700000000"] {
        assert!(generalise::volatile_kind(name, &pids).is_some(), "{name}");
    }
}

#[test]
fn save_by_rename_grants_the_pattern_on_the_directory() {
    // An editor save outside collapse roots: write x.tmp, rename over x.
    let dir = "/home/u/.config/app";
    let l = learn(vec![
        open_r(&format!("{dir}/settings.json")),
        ev(Op::Open, &format!("{dir}/settings.json.tmp")).write().create(),
        ev(Op::Rename, &format!("{dir}/settings.json.tmp")).to(&format!("{dir}/settings.json")),
    ]);
    assert_eq!(paths(&l), vec!["$XDG_CONFIG_HOME/app"]);
    assert_eq!(rule(&l, "$XDG_CONFIG_HOME/app").access, set(&[ReadFile, WriteFile, MakeReg, RemoveFile]));
    let x = explanation(&l, "$XDG_CONFIG_HOME/app", "created or replaced");
    assert!(x.from.iter().any(|f| f.ends_with("settings.json.tmp")));
}

#[test]
fn lock_files_and_cross_directory_moves_get_refer() {
    let l = learn(vec![
        ev(Op::Open, "/srv/app/db.lock").write().create(),
        ev(Op::Unlink, "/srv/app/db.lock"),
        ev(Op::Open, "/srv/app/incoming/x.part").write().create(),
        ev(Op::Rename, "/srv/app/incoming/x.part").to("/srv/app/data/x"),
    ]);
    assert_eq!(rule(&l, "/srv/app").access, set(&[WriteFile, RemoveFile, MakeReg]));
    assert_eq!(rule(&l, "/srv/app/incoming").access, set(&[WriteFile, RemoveFile, MakeReg, Refer]));
    assert_eq!(rule(&l, "/srv/app/data").access, set(&[RemoveFile, MakeReg, Refer]));
}

#[test]
fn proc_reads_collapse_to_proc_and_writes_become_proc_self() {
    let l = learn(vec![
        open_r("/proc/100/status"),
        open_r("/proc/self/maps"),
        open_r("/proc/cpuinfo"),
        open_r("/proc/100/fd").dir(),
        // Re-opening a descriptor names no path Landlock checks.
        open_r("/proc/self/fd/3"),
        ev(Op::Open, "/proc/100/oom_score_adj").write(),
    ]);
    assert_eq!(paths(&l), vec!["/proc", "/proc/self/oom_score_adj"]);
    assert_eq!(rule(&l, "/proc").access, set(&[ReadFile, ReadDir]));
    explanation(&l, "/proc", "/proc/self");
    assert!(rule(&l, "/proc/self/oom_score_adj").file);
    assert!(l.warnings.iter().any(|w| w.contains("/proc/self/oom_score_adj")));
    assert_eq!(l.stats.ignored[synth::reason::FD_REOPEN], 1);
}

#[test]
fn devices_are_single_files_and_ptys_collapse() {
    let l = learn(vec![
        ev(Op::Open, "/dev/null").read().write(),
        open_r("/dev/urandom"),
        ev(Op::Open, "/dev/tty").read().write(),
        ev(Op::Ioctl, "/dev/tty").ftype(libc::S_IFCHR),
        ev(Op::Open, "/dev/pts/3").read().write(),
        ev(Op::Open, "pipe:[1234]").write(),
    ]);
    // Never /dev/pts, which holds the user's other terminals: the
    // command's own, resolved at run time.
    assert_eq!(paths(&l), vec!["$TTY", "/dev/null", "/dev/tty", "/dev/urandom"]);
    assert!(rule(&l, "/dev/null").file);
    assert_eq!(rule(&l, "/dev/tty").access, set(&[ReadFile, WriteFile, IoctlDev]));
    assert!(rule(&l, "$TTY").file);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
}

#[test]
fn redundant_narrow_rules_are_dropped() {
    let l = learn(vec![open_r("/srv/app/a").dir(), ev(Op::Open, "/srv/app/a/f").write().create(), open_r("/srv/app/a/f")]);
    // /srv/app/a (read_dir, make_reg) and /srv/app/a/f (created -> hoisted
    // to /srv/app/a): one rule.
    assert_eq!(paths(&l), vec!["/srv/app/a"]);
}

// -------------------------------------------------------------- variables

#[test]
fn variables_use_the_longest_matching_prefix() {
    let l = learn(vec![open_r("/home/u/proj/a"), open_r("/home/u/.gitconfig"), open_r("/home/u/.config/git/config")]);
    assert_eq!(paths(&l), vec!["$CWD", "$HOME/.gitconfig", "$XDG_CONFIG_HOME/git/config"]);
    // A workdir inside the temp dir.
    let mut c = ctx();
    c.cwd = "/tmp/work".into();
    let l = learn_with(&c, vec![ev(Op::Open, "/tmp/work/a").write(), open_r("/tmp/other")]);
    assert_eq!(paths(&l), vec!["$CWD", "$TMPDIR"]);
    // With no extra rights the workdir rule is redundant under $TMPDIR.
    let l = learn_with(&c, vec![open_r("/tmp/work/a"), open_r("/tmp/other")]);
    assert_eq!(paths(&l), vec!["$TMPDIR"]);
}

// -------------------------------------------------------------- sensitive

#[test]
fn the_builtin_sensitive_list_is_expanded() {
    let list = sensitive_paths(&ctx());
    assert!(list.len() >= 48, "{}", list.len());
    for p in ["/home/u/.ssh", "/home/u/.config/gh", "/etc/shadow", "/home/u/.cargo/credentials.toml"] {
        assert!(list.contains(&PathBuf::from(p)), "{p}");
    }
}

#[test]
fn sensitive_paths_are_reported_not_granted() {
    let l = learn(vec![
        open_r("/home/u/.ssh/id_ed25519").pid(4321).comm("ssh"),
        open_r("/home/u/.aws/credentials"),
        open_r("/etc/shadow").err(libc::EACCES),
    ]);
    assert!(l.rules.is_empty(), "{:?}", l.rules);
    let hit = l.sensitive.iter().find(|h| h.path == "/home/u/.ssh/id_ed25519").expect("hit");
    assert_eq!(hit.matched, "/home/u/.ssh");
    assert_eq!(hit.pids, vec![4321]);
    assert_eq!(hit.comms, vec!["ssh".to_owned()]);
    assert_eq!(hit.rights, set(&[ReadFile]));
    assert!(hit.ops.contains(&Op::Open));
    assert!(hit.why.contains("SSH"));
    assert!(l.sensitive.iter().any(|h| h.path == "/home/u/.aws/credentials"));
    // Denied or failed attempts are reported too, and still not granted.
    let shadow = l.sensitive.iter().find(|h| h.path == "/etc/shadow").expect("attempt reported");
    assert!(shadow.why.contains("EACCES"), "{}", shadow.why);
    assert_eq!(shadow.rights, set(&[ReadFile]));
}

#[test]
fn a_sensitive_entry_holding_home_is_dropped() {
    // A root session: $HOME=/root must not make the whole session sensitive.
    let c = LearnContext {
        home: "/root".into(),
        cwd: "/root/proj".into(),
        tmpdir: "/tmp".into(),
        xdg_config_home: "/root/.config".into(),
        xdg_cache_home: "/root/.cache".into(),
        ..ctx()
    };
    assert!(!sensitive_paths(&c).contains(&PathBuf::from("/root")));
    let l = learn_with(&c, vec![open_r("/root/proj/a"), open_r("/root/.ssh/id_rsa")]);
    assert_eq!(paths(&l), vec!["$CWD"]);
    assert_eq!(l.sensitive.len(), 1);
}

#[test]
fn a_directory_containing_a_sensitive_path_is_only_listed() {
    // Creating a file directly in $HOME would need a rule on $HOME, which
    // would cover ~/.ssh; listing it (names, no contents) is granted alone.
    let l = learn(vec![open_r("/home/u").dir(), ev(Op::Open, "/home/u/.lesshst").write().create()]);
    assert_eq!(rule(&l, "$HOME").access, set(&[ReadDir]), "{:?}", l.rules);
    assert_eq!(rule(&l, "$HOME").reason.as_deref(), Some("listing-only"));
    let hit = l.sensitive.iter().find(|h| h.path == "/home/u").expect("hit on $HOME");
    assert_eq!(hit.rights, set(&[MakeReg]));
    assert!(hit.why.contains("beneath"));
    // The created file itself falls back to an exact rule.
    assert_eq!(rule(&l, "$HOME/.lesshst").access, set(&[WriteFile]));
    // A secret directory is not listed.
    let l = learn(vec![open_r("/home/u/.ssh").dir()]);
    assert!(l.rules.is_empty(), "{:?}", l.rules);
    assert!(l.sensitive.iter().any(|h| h.path == "/home/u/.ssh"));
}

#[test]
fn a_workdir_equal_to_home_is_narrowed_to_safe_children() {
    let mut c = ctx();
    c.cwd = "/home/u".into();
    let l = learn_with(&c, vec![open_r("/home/u/proj/a.rs"), open_r("/home/u/.gitconfig")]);
    assert_eq!(paths(&l), vec!["$CWD/.gitconfig", "$CWD/proj"]);
    explanation(&l, "$CWD/proj", "stopped below /home/u");
}

#[test]
fn allow_sensitive_grants_the_listed_path_only() {
    let mut c = ctx();
    c.allow_sensitive = vec!["/home/u/.ssh".into()];
    let l =
        learn_with(&c, vec![open_r("/home/u/.ssh/known_hosts"), open_r("/home/u/.gnupg/pubring.kbx"), open_r("/home/u").dir()]);
    assert_eq!(paths(&l), vec!["$HOME", "$HOME/.ssh/known_hosts"]);
    // $HOME still holds ~/.gnupg (not allowed): only listed.
    assert_eq!(rule(&l, "$HOME").access, set(&[ReadDir]));
    assert!(l.sensitive.iter().any(|h| h.path == "/home/u/.gnupg/pubring.kbx"));
    // Allowing $HOME itself allows everything beneath.
    c.allow_sensitive = vec!["/home/u".into()];
    let l = learn_with(&c, vec![open_r("/home/u").dir()]);
    assert_eq!(paths(&l), vec!["$HOME"]);
}

#[test]
fn dotenv_in_the_workdir_is_granted_with_a_warning() {
    let l = learn(vec![open_r("/home/u/proj/.env")]);
    assert_eq!(paths(&l), vec!["$CWD"]);
    assert!(l.warnings.iter().any(|w| w.contains(".env")));
}

// ------------------------------------------------------------------ merge

#[test]
fn merge_marks_rules_seen_in_only_some_runs() {
    let a = learn(vec![ev(Op::Exec, "/usr/bin/git"), open_r("/home/u/proj/a"), net(Op::Connect, libc::AF_INET, 443)]);
    let b = learn(vec![ev(Op::Exec, "/usr/bin/git"), open_r("/home/u/.gitconfig"), net(Op::Connect, libc::AF_INET, 22)]);
    let m = merge(&[a.clone(), b.clone()]);
    assert_eq!(m.stats.runs, 2);
    assert_eq!(rule(&m, "/usr").seen_in, None);
    assert_eq!(rule(&m, "$CWD").seen_in, Some(SeenIn { runs: 1, of: 2, ..SeenIn::default() }));
    assert_eq!(rule(&m, "$HOME/.gitconfig").seen_in, Some(SeenIn { runs: 1, of: 2, ..SeenIn::default() }));
    assert_eq!(m.connect_ports, [22, 443].into());
    assert_eq!(m.stats.events, a.stats.events + b.stats.events);
    // Merging a merge counts the runs it stands for.
    let c = learn(vec![ev(Op::Exec, "/usr/bin/git"), open_r("/home/u/proj/b")]);
    let m3 = merge(&[m, c]);
    assert_eq!(rule(&m3, "$CWD").seen_in, Some(SeenIn { runs: 2, of: 3, ..SeenIn::default() }));
    assert_eq!(rule(&m3, "/usr").seen_in, None);
}

#[test]
fn merge_unions_rights_and_drops_covered_rules() {
    let a = learn(vec![open_r("/srv/x/f")]);
    let b = learn(vec![open_r("/srv/x").dir(), ev(Op::Open, "/srv/x/g").write().create(), open_r("/srv/x/f")]);
    let m = merge(&[a, b]);
    // /srv/x/f (read_file, 2 runs) is not covered by /srv/x (1 run): kept.
    assert_eq!(rule(&m, "/srv/x/f").seen_in, None);
    assert_eq!(rule(&m, "/srv/x").seen_in, Some(SeenIn { runs: 1, of: 2, ..SeenIn::default() }));
    assert_eq!(merge(&[]).rules, Vec::new());
}

// ------------------------------------------------------------ bookkeeping

#[test]
fn stats_count_used_and_ignored_events() {
    let l = learn(vec![open_r("/home/u/proj/a"), ev(Op::Fork, "").arg(101), ev(Op::Exit, ""), open_r("/nope").err(libc::ENOENT)]);
    assert_eq!(l.stats.events, 4);
    assert_eq!(l.stats.used, 1);
    assert_eq!(l.stats.ignored[synth::reason::LIFECYCLE], 2);
    assert_eq!(l.stats.runs, 1);
}

#[test]
fn explanations_cap_their_examples() {
    let events = (0..100).map(|i| open_r(&format!("/home/u/proj/f{i}"))).collect();
    let l = learn(events);
    let x = explanation(&l, "$CWD", "workdir");
    assert_eq!(x.paths, 100);
    assert!(x.from.len() <= 8);
}

#[test]
fn a_million_events_synthesise() {
    let dirs = ["/usr/lib", "/home/u/proj/src", "/tmp/build", "/home/u/.cache/x", "/var/lib/app"];
    let events = || {
        (0..1_000_000u32).map(move |i| {
            let dir = dirs[(i % 5) as usize];
            let e = match i % 7 {
                0 => ev(Op::Open, &format!("{dir}/f{}", i % 2000)).write().create(),
                1 => ev(Op::Exec, &format!("{dir}/bin{}", i % 50)),
                2 => open_r(&format!("{dir}/missing{}", i % 300)).err(libc::ENOENT),
                _ => open_r(&format!("{dir}/f{}", i % 2000)),
            };
            e.pid(1000 + i % 64).0
        })
    };
    // Building the events costs as much as folding them: time both.
    let start = Instant::now();
    let built = events().filter(|e| e.pid != 0).count();
    let build_time = start.elapsed();
    let start = Instant::now();
    let l = synthesise(events(), &ctx());
    let total = start.elapsed();
    println!(
        "1M events: built alone in {build_time:?}; built and synthesised in {total:?} \
(synthesis about {:?}); {} rules, {} distinct paths",
        total.saturating_sub(build_time),
        l.rules.len(),
        l.stats.distinct_paths
    );
    assert_eq!(built, 1_000_000);
    assert_eq!(l.stats.events, 1_000_000);
    assert!(paths(&l).contains(&"$CWD"));
}

#[test]
fn learned_round_trips_through_json() {
    let l = learn(vec![open_r("/home/u/proj/a"), open_r("/home/u/.ssh/id_rsa")]);
    let json = serde_json::to_string(&l).expect("serialize");
    let back: Learned = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, l);
}
