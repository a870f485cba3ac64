use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use super::diff::{What, When, compare};
use super::manifest::{self, Entry, Kind};
use super::object::Objects;
use super::restore::{execute, plan};
use super::*;

/// Everything a restore must bring back, per relative path: kind, mode,
/// mtime, and content hash or link target.
fn fingerprint(root: &Path) -> BTreeMap<Vec<u8>, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).expect("lstat");
        let rel = p.strip_prefix(root).expect("beneath").as_os_str().as_bytes().to_vec();
        let what = if m.file_type().is_symlink() {
            format!("link {:?}", std::fs::read_link(&p).expect("readlink"))
        } else if m.is_dir() {
            let mut kids: Vec<PathBuf> = std::fs::read_dir(&p).expect("ls").map(|e| e.expect("ent").path()).collect();
            kids.sort();
            stack.extend(kids);
            "dir".to_owned()
        } else if m.file_type().is_file() {
            format!("file {}", object::hex(&openssl::sha::sha256(&std::fs::read(&p).expect("read"))))
        } else {
            "other".to_owned()
        };
        let mtime = if m.is_dir() { String::new() } else { format!("{}.{}", m.mtime(), m.mtime_nsec()) };
        out.insert(rel, format!("{what} mode {:o} mtime {mtime}", m.mode() & 0o7777));
    }
    out
}

/// A tree with the awkward parts: names with a newline and invalid UTF-8,
/// a link, a nested directory, a sparse file, a read-only directory and
/// an executable.
fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("src/deep/er")).expect("mkdir");
    std::fs::write(root.join("src/main.rs"), "fn main() {}\n").expect("w");
    std::fs::write(root.join("src/deep/er/leaf.txt"), "leaf\n").expect("w");
    std::fs::write(root.join("run.sh"), "#!/bin/sh\n").expect("w");
    std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(root.join(std::ffi::OsStr::from_bytes(b"new\nline")), "nl").expect("w");
    std::fs::write(root.join(std::ffi::OsStr::from_bytes(b"bad\xff\xfename")), "bytes").expect("w");
    std::os::unix::fs::symlink("src/main.rs", root.join("link")).expect("ln");
    let sparse = std::fs::File::create(root.join("sparse.img")).expect("create");
    sparse.set_len(64 << 20).expect("truncate");
    std::os::unix::fs::FileExt::write_all_at(&sparse, b"middle", 32 << 20).expect("write");
    std::fs::create_dir(root.join("ro")).expect("mkdir");
    std::fs::write(root.join("ro/fixed"), "fixed").expect("w");
    std::fs::set_permissions(root.join("ro"), std::fs::Permissions::from_mode(0o555)).expect("chmod");
    std::fs::create_dir_all(root.join("node_modules/dep")).expect("mkdir");
    std::fs::write(root.join("node_modules/dep/index.js"), "x").expect("w");
}

struct World {
    _dir: tempfile::TempDir,
    tree: PathBuf,
    store: SnapStore,
}

fn world() -> World {
    let dir = tempfile::tempdir().expect("tmp");
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).expect("mkdir");
    make_tree(&tree);
    let store = SnapStore::create(&dir.path().join("store")).expect("store");
    World { _dir: dir, tree, store }
}

fn opts(tree: &Path) -> TakeOptions {
    TakeOptions {
        roots: vec![Root { dir: tree.to_path_buf(), filter: Filter::All, origin: "test".into() }],
        skipped: Vec::new(),
        excludes: Excludes::new(&[], true).expect("excludes"),
        max_bytes: 1 << 40,
        command: vec!["agent".into()],
        cwd: "/".into(),
        audit: None,
        threads: 2,
    }
}

fn restore_all(store: &SnapStore, id: &str) -> restore::Report {
    let snap = store.load(id).expect("load");
    let mut cmp = compare(&snap, Vec::new()).expect("compare");
    let steps = plan(&cmp, &[]);
    let objects = Objects::open(&store.dir).expect("objects");
    execute(&mut cmp, &steps, &objects).expect("restore")
}

/// What an agent does to the tree.
fn vandalise(tree: &Path) {
    std::fs::remove_file(tree.join("src/main.rs")).expect("rm");
    std::fs::write(tree.join("run.sh"), "#!/bin/sh\nrm -rf ~\n").expect("rewrite");
    std::fs::set_permissions(tree.join("run.sh"), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    std::fs::rename(tree.join(std::ffi::OsStr::from_bytes(b"new\nline")), tree.join("renamed")).expect("mv");
    std::fs::remove_dir_all(tree.join("src/deep")).expect("rm -r");
    std::fs::write(tree.join("created.bin"), [0u8, 1, 2, 255]).expect("create");
    std::fs::remove_file(tree.join("link")).expect("rm link");
    std::fs::create_dir(tree.join("link")).expect("dir where a link was");
    std::fs::write(tree.join("link/inside"), "x").expect("w");
    std::fs::set_permissions(tree.join("ro"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(tree.join("ro/fixed"), "changed").expect("w");
    std::fs::OpenOptions::new().write(true).open(tree.join("sparse.img")).expect("open").set_len(1).expect("truncate");
}

#[test]
fn a_restore_puts_back_contents_modes_links_times_and_removes_what_was_created() {
    let w = world();
    let before = fingerprint(&w.tree);
    let taken = take(&w.store, &opts(&w.tree)).expect("take");
    let id = taken.meta.id.clone();
    assert!(taken.meta.inconsistent.is_empty(), "{:?}", taken.meta.inconsistent);
    vandalise(&w.tree);
    taken.finish().expect("finish");
    let rep = restore_all(&w.store, &id);
    assert!(rep.failed.is_empty(), "{:?}", rep.failed);
    let after = fingerprint(&w.tree);
    assert_eq!(before, after, "the tree differs after the restore");
    // The sparse file stayed sparse.
    let m = std::fs::metadata(w.tree.join("sparse.img")).expect("stat");
    assert!(m.blocks() * 512 < 1 << 20, "{} blocks", m.blocks());
    // Restoring again finds nothing to do.
    let snap = w.store.load(&id).expect("load");
    assert!(compare(&snap, Vec::new()).expect("compare").changes.is_empty());
}

#[test]
fn changes_after_the_run_are_told_from_the_runs_own() {
    let w = world();
    let taken = take(&w.store, &opts(&w.tree)).expect("take");
    let id = taken.meta.id.clone();
    std::fs::write(w.tree.join("run.sh"), "by the run").expect("w");
    taken.finish().expect("finish");
    std::fs::write(w.tree.join("src/main.rs"), "by the user, later").expect("w");
    let cmp = compare(&w.store.load(&id).expect("load"), Vec::new()).expect("compare");
    let when = |name: &str| cmp.changes.iter().find(|c| c.path == name.as_bytes()).map(|c| c.when);
    assert_eq!(when("run.sh"), Some(When::Run));
    assert_eq!(when("src/main.rs"), Some(When::Later));
}

#[test]
fn an_excluded_tree_is_recorded_and_never_walked() {
    let w = world();
    let taken = take(&w.store, &opts(&w.tree)).expect("take");
    let snap = w.store.load(&taken.meta.id).expect("load");
    let nm: Vec<&Entry> = snap.entries.iter().filter(|e| e.path.starts_with(b"node_modules")).collect();
    assert_eq!(nm.len(), 1, "{nm:?}");
    assert_eq!(nm[0].kind, Kind::Excluded);
    assert_eq!(nm[0].text, b"node_modules/");
    std::fs::remove_dir_all(w.tree.join("node_modules")).expect("rm");
    let cmp = compare(&snap, Vec::new()).expect("compare");
    assert!(cmp.changes.iter().all(|c| !c.path.starts_with(b"node_modules")));
    assert_eq!(cmp.untracked.len(), 1);
    assert_eq!(cmp.untracked[0].state, diff::UntrackedState::Removed);
}

#[test]
fn a_second_snapshot_of_an_unchanged_tree_reads_no_file() {
    let w = world();
    // Entries changed within the last two seconds are not trusted by
    // their metadata (a write in the same clock tick would not show).
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let first = take(&w.store, &opts(&w.tree)).expect("take");
    assert!(first.meta.stats.copied_files > 0);
    let files = first.meta.stats.files;
    first.finish().expect("finish");
    let second = take(&w.store, &opts(&w.tree)).expect("take");
    assert_eq!(second.meta.stats.copied_files, 0, "{:?}", second.meta.stats);
    assert_eq!(second.meta.stats.reused_files, files);
    // One changed file is read again.
    std::fs::write(w.tree.join("src/main.rs"), "fn main() { changed() }\n").expect("w");
    second.finish().expect("finish");
    let third = take(&w.store, &opts(&w.tree)).expect("take");
    assert_eq!(third.meta.stats.copied_files, 1, "{:?}", third.meta.stats);
}

#[test]
fn a_restore_never_follows_a_link_out_of_the_grant() {
    let w = world();
    let outside = w.tree.parent().expect("parent").join("outside");
    std::fs::create_dir(&outside).expect("mkdir");
    std::fs::write(outside.join("leaf.txt"), "precious").expect("w");
    let taken = take(&w.store, &opts(&w.tree)).expect("take");
    let id = taken.meta.id.clone();
    // The agent swaps a directory of the tree for a link to the outside.
    std::fs::remove_dir_all(w.tree.join("src/deep/er")).expect("rm");
    std::os::unix::fs::symlink(&outside, w.tree.join("src/deep/er")).expect("ln");
    taken.finish().expect("finish");
    let rep = restore_all(&w.store, &id);
    assert!(rep.failed.is_empty(), "{:?}", rep.failed);
    assert_eq!(std::fs::read_to_string(outside.join("leaf.txt")).expect("r"), "precious");
    assert_eq!(std::fs::read_dir(&outside).expect("ls").count(), 1);
    assert!(std::fs::symlink_metadata(w.tree.join("src/deep/er")).expect("stat").is_dir());
    assert_eq!(std::fs::read_to_string(w.tree.join("src/deep/er/leaf.txt")).expect("r"), "leaf\n");
}

#[test]
fn renames_are_paired_by_inode() {
    let w = world();
    let taken = take(&w.store, &opts(&w.tree)).expect("take");
    std::fs::rename(w.tree.join("src"), w.tree.join("source")).expect("mv dir");
    std::fs::rename(w.tree.join("run.sh"), w.tree.join("go.sh")).expect("mv file");
    let cmp = compare(&w.store.load(&taken.meta.id).expect("load"), Vec::new()).expect("compare");
    let r = diff::renames(&cmp.changes);
    let pairs: Vec<(&[u8], &[u8])> =
        r.pairs.iter().map(|&(c, d)| (cmp.changes[c].path.as_slice(), cmp.changes[d].path.as_slice())).collect();
    assert_eq!(pairs, vec![(&b"go.sh"[..], &b"run.sh"[..]), (&b"source"[..], &b"src"[..])]);
    // Whatever moved with the directory is shown by it.
    assert!(r.hidden.iter().all(|&i| cmp.changes[i].path.starts_with(b"src") || cmp.changes[i].path.starts_with(b"source")));
    assert_eq!(r.hidden.len(), 2 * 4, "main.rs, deep, deep/er, deep/er/leaf.txt on both sides");
}

#[test]
fn a_manifest_cut_short_or_altered_is_refused() {
    let w = world();
    let taken = take(&w.store, &opts(&w.tree)).expect("take");
    let path = w.store.snapshot_dir(&taken.meta.id).join("manifest");
    let bytes = std::fs::read(&path).expect("read");
    let (meta, entries): (SnapMeta, Vec<Entry>) = manifest::decode(&bytes, &path).expect("whole");
    assert_eq!(meta.id, taken.meta.id);
    assert!(entries.iter().any(|e| e.path == b"bad\xff\xfename"), "non-UTF-8 names round-trip");
    assert!(entries.iter().any(|e| e.path == b"new\nline"));
    for cut in [bytes.len() - 1, bytes.len() / 2, 20] {
        assert!(manifest::decode::<SnapMeta>(&bytes[..cut], &path).is_err(), "cut at {cut}");
    }
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 1;
    assert!(matches!(manifest::decode::<SnapMeta>(&flipped, &path), Err(SnapshotError::Corrupt { .. })));
}

#[test]
fn an_interrupted_snapshot_is_never_listed_and_prune_removes_its_leftovers() {
    let w = world();
    let taken = take(&w.store, &opts(&w.tree)).expect("take");
    let keep = taken.meta.id.clone();
    drop(taken);
    // What a SIGKILL mid-snapshot leaves: a partial directory (even with
    // a manifest in it), a temp file and an object no manifest names.
    let partial = w.store.dir.join("snapshots/.partial-20260101-000000-abcdef");
    std::fs::create_dir(&partial).expect("mkdir");
    std::fs::copy(w.store.snapshot_dir(&keep).join("manifest"), partial.join("manifest")).expect("cp");
    std::fs::write(w.store.dir.join("tmp/123-0.tmp"), "half").expect("w");
    let orphan = w.store.dir.join("objects/00/00orphan");
    std::fs::create_dir_all(orphan.parent().expect("p")).expect("mkdir");
    std::fs::write(&orphan, "x").expect("w");
    let ids: Vec<String> = w.store.list().expect("list").into_iter().map(|l| l.meta.id).collect();
    assert_eq!(ids, vec![keep.clone()]);
    let p = prune::prune(&w.store, &prune::Policy::default(), false).expect("prune").expect("not busy");
    assert!(p.removed.is_empty());
    assert_eq!(p.partials_removed, 1);
    assert_eq!(p.objects_removed, 1);
    assert!(!partial.exists() && !orphan.exists());
    assert_eq!(std::fs::read_dir(w.store.dir.join("tmp")).expect("ls").count(), 0);
    // The committed snapshot still restores.
    vandalise(&w.tree);
    assert!(restore_all(&w.store, &keep).failed.is_empty());
}

#[test]
fn prune_keeps_what_newer_snapshots_share_and_skips_a_running_one() {
    let w = world();
    let a = take(&w.store, &opts(&w.tree)).expect("take");
    let a_id = a.meta.id.clone();
    a.finish().expect("finish");
    std::fs::write(w.tree.join("only-in-b"), "b").expect("w");
    let b = take(&w.store, &opts(&w.tree)).expect("take");
    let policy = prune::Policy { all: true, ..Default::default() };
    let p = prune::prune(&w.store, &policy, false).expect("prune").expect("lock");
    assert_eq!(p.removed.iter().map(|m| m.id.clone()).collect::<Vec<_>>(), vec![a_id]);
    assert_eq!(p.busy, vec![b.meta.id.clone()], "the running snapshot stays");
    // b's objects survived the sweep.
    let b_id = b.meta.id.clone();
    b.finish().expect("finish");
    std::fs::remove_file(w.tree.join("src/main.rs")).expect("rm");
    assert!(restore_all(&w.store, &b_id).failed.is_empty());
    assert_eq!(std::fs::read_to_string(w.tree.join("src/main.rs")).expect("r"), "fn main() {}\n");
}

#[test]
fn a_damaged_object_is_refused_on_restore() {
    let w = world();
    let taken = take(&w.store, &opts(&w.tree)).expect("take");
    let snap = w.store.load(&taken.meta.id).expect("load");
    let e = snap.entries.iter().find(|e| e.path == b"src/main.rs").expect("entry");
    let objects = Objects::open(&w.store.dir).expect("objects");
    let obj = objects.path(&e.hash.expect("hash"));
    std::fs::set_permissions(&obj, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::write(&obj, "fn main() { evil }").expect("tamper");
    std::fs::remove_file(w.tree.join("src/main.rs")).expect("rm");
    let rep = restore_all(&w.store, &taken.meta.id);
    assert_eq!(rep.failed.len(), 1, "{:?}", rep.failed);
    assert!(!w.tree.join("src/main.rs").exists());
}

#[test]
fn the_size_limit_refuses_before_anything_is_copied() {
    let w = world();
    let mut o = opts(&w.tree);
    o.max_bytes = 1000;
    let err = take(&w.store, &o).err().expect("too large");
    assert!(matches!(err, SnapshotError::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("sparse.img"), "{err}");
    assert!(w.store.list().expect("list").is_empty());
    assert_eq!(std::fs::read_dir(w.store.dir.join("snapshots")).expect("ls").count(), 0);
}

#[test]
fn a_file_or_brokered_root_covers_only_its_names() {
    let w = world();
    let mut o = opts(&w.tree);
    o.roots = vec![
        Root { dir: w.tree.clone(), filter: Filter::One(b"run.sh".to_vec()), origin: "file".into() },
        Root { dir: w.tree.join("src"), filter: Filter::Names(vec![b"*.rs".to_vec()]), origin: "brokered".into() },
    ];
    let taken = take(&w.store, &o).expect("take");
    let snap = w.store.load(&taken.meta.id).expect("load");
    let paths: Vec<&[u8]> = snap.entries.iter().map(|e| e.path.as_slice()).collect();
    assert_eq!(paths, vec![&b"run.sh"[..], &b"main.rs"[..]]);
    std::fs::write(w.tree.join("src/other.txt"), "not covered").expect("w");
    std::fs::write(w.tree.join("src/new.rs"), "covered").expect("w");
    let cmp = compare(&snap, Vec::new()).expect("compare");
    let created: Vec<&[u8]> = cmp.changes.iter().filter(|c| c.what == What::Created).map(|c| c.path.as_slice()).collect();
    assert_eq!(created, vec![&b"new.rs"[..]]);
}

#[test]
fn exclusion_patterns() {
    let e = Excludes::new(&["*.log".into(), "data/raw".into(), "cache/".into()], true).expect("patterns");
    assert_eq!(e.matches(b"a/node_modules", b"node_modules", true), Some("node_modules/"));
    assert_eq!(e.matches(b"target", b"target", false), None, "a file named target is kept");
    assert_eq!(e.matches(b"x/y.log", b"y.log", false), Some("*.log"));
    assert_eq!(e.matches(b"data/raw", b"raw", true), Some("data/raw"));
    assert_eq!(e.matches(b"other/data/raw", b"raw", true), None, "a path pattern is anchored at the grant");
    assert_eq!(e.matches(b"cache", b"cache", false), None);
    assert!(Excludes::new(&[], false).expect("none").matches(b"node_modules", b"node_modules", true).is_none());
    for bad in ["", "/", "../x", "a//b", "[z-a]"] {
        assert!(Excludes::new(&[bad.into()], false).is_err(), "{bad:?}");
    }
    assert!(exclude::name_glob(b".app.json*", b".app.json.tmp.1"));
    assert!(!exclude::name_glob(b"*.rs", b"a.rs.bak"));
}

#[test]
fn sizes() {
    assert_eq!(parse_size("500M"), Ok(500 << 20));
    assert_eq!(parse_size("10GiB"), Ok(10 << 30));
    assert_eq!(parse_size("7"), Ok(7));
    assert!(parse_size("1X").is_err() && parse_size("").is_err() && parse_size("99999999999T").is_err());
    assert_eq!(human(1536), "1.5 KiB");
}

#[test]
fn a_snapshot_of_files_changing_under_it_is_marked_inconsistent_with_the_paths() {
    let w = world();
    let log = w.tree.join("grow.log");
    std::fs::write(&log, "start\n").expect("w");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (log, stop) = (log.clone(), std::sync::Arc::clone(&stop));
        std::thread::spawn(move || {
            use std::io::Write as _;
            let mut f = std::fs::OpenOptions::new().append(true).open(&log).expect("open");
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                f.write_all(b"line\n").expect("append");
            }
        })
    };
    let taken = take(&w.store, &opts(&w.tree));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().expect("writer");
    let taken = taken.expect("take");
    let named: Vec<&str> = taken.meta.inconsistent.iter().map(|p| p.path.as_str()).collect();
    assert!(named.iter().any(|p| p.ends_with("/grow.log")), "{:?}", taken.meta.inconsistent);
    let mut once = named.clone();
    once.dedup();
    assert_eq!(once, named, "each path named once");
    assert!(named.iter().all(|p| p.ends_with("/grow.log") || p == &w.tree.to_str().expect("utf-8")), "{named:?}");
    // And the listing says so.
    let listed = w.store.list().expect("list");
    assert_eq!(listed[0].meta.inconsistent, taken.meta.inconsistent);
}

#[test]
fn the_mode_fallback_for_kernels_without_fchmodat2_never_follows_a_link() {
    let d = tempfile::tempdir().expect("tmp");
    std::fs::write(d.path().join("f"), "x").expect("w");
    std::fs::write(d.path().join("target"), "t").expect("w");
    std::fs::set_permissions(d.path().join("target"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::os::unix::fs::symlink("target", d.path().join("l")).expect("ln");
    let dir = sys::open_dir_path(d.path()).expect("open");
    use std::os::fd::AsFd as _;
    sys::chmod_via_proc(dir.as_fd(), b"f", 0o640).expect("chmod");
    assert_eq!(std::fs::metadata(d.path().join("f")).expect("stat").mode() & 0o7777, 0o640);
    let e = sys::chmod_via_proc(dir.as_fd(), b"l", 0o777).expect_err("a link");
    assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
    assert_eq!(std::fs::metadata(d.path().join("target")).expect("stat").mode() & 0o7777, 0o644);
}
