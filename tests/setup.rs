//! `nono setup --check-only`: the kernel feature matrix, from fixture
//! trees (native 6.18, WSL2 6.6, no BPF LSM, no Landlock) and from the real
//! host. WSL2 is detected from kernel files only.

mod support;

use std::path::Path;
use std::process::Command;

use support::{NONO, is_root, skip};

/// A fake kernel root: /proc/version, osrelease, securityfs lsm, BTF, tracefs.
fn fixture(dir: &Path, version: &str, release: &str, lsm: Option<&str>, wsl_interop: bool) {
    let w = |p: &str, text: &str| {
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    w("proc/version", version);
    w("proc/sys/kernel/osrelease", release);
    if let Some(l) = lsm {
        w("sys/kernel/security/lsm", l);
    }
    w("sys/kernel/btf/vmlinux", "");
    std::fs::create_dir_all(dir.join("sys/kernel/tracing/events")).expect("tracefs");
    if wsl_interop {
        w("proc/sys/fs/binfmt_misc/WSLInterop", "enabled");
    }
}

fn probes(dir: &Path, abi: i32, lsm: Result<(), &str>, seccomp: Result<(), &str>) -> std::path::PathBuf {
    let p = dir.join("probes.json");
    let r = |x: Result<(), &str>| match x {
        Ok(()) => serde_json::json!({"Ok": null}),
        Err(e) => serde_json::json!({"Err": e}),
    };
    let doc = serde_json::json!({
        "landlock_abi": abi,
        "lsm_program": r(lsm),
        "tracepoint_program": {"Ok": null},
        "seccomp_notify": r(seccomp),
    });
    std::fs::write(&p, doc.to_string()).expect("probes");
    p
}

fn check(root: &Path, probes: &Path, env: &[(&str, &str)]) -> (serde_json::Value, String) {
    let mut c = Command::new(NONO);
    c.args(["setup", "--check-only", "--json", "--root"]).arg(root).arg("--assume-probes").arg(probes);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("nono setup");
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let mut t = Command::new(NONO);
    t.args(["setup", "--check-only", "--root"]).arg(root).arg("--assume-probes").arg(probes);
    let table = String::from_utf8_lossy(&t.output().expect("table").stdout).into_owned();
    (json, table)
}

fn status<'a>(j: &'a serde_json::Value, name: &str) -> &'a str {
    j["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == name)
        .and_then(|c| c["status"].as_str())
        .unwrap_or("missing")
}

#[test]
fn native_linux_with_bpf_lsm_picks_the_lsm_backend() {
    let d = tempfile::tempdir().expect("tmp");
    fixture(d.path(), "Linux version 6.18.44 (gcc 14)", "6.18.44", Some("lockdown,capability,landlock,bpf"), false);
    let p = probes(d.path(), 7, Ok(()), Ok(()));
    let (j, table) = check(d.path(), &p, &[]);
    assert_eq!(j["backend"], "lsm", "{j}");
    assert_eq!(j["landlock_abi"], 7);
    assert_eq!(j["wsl2"], false);
    assert_eq!(status(&j, "landlock"), "available");
    assert!(table.contains("audit logging flags"), "{table}");
    assert!(table.contains("recording backend: lsm"), "{table}");
}

#[test]
fn wsl2_6_6_is_detected_from_kernel_files_and_states_its_limits() {
    let d = tempfile::tempdir().expect("tmp");
    fixture(
        d.path(),
        "Linux version 6.6.87.2-microsoft-standard-WSL2 (root@buildhost)",
        "6.6.87.2-microsoft-standard-WSL2",
        Some("lockdown,capability,landlock"),
        true,
    );
    let p =
        probes(d.path(), 3, Err("BPF_PROG_LOAD failed: EINVAL"), Err("seccomp(SECCOMP_FILTER_FLAG_NEW_LISTENER) failed: EBUSY"));
    let (j, table) = check(d.path(), &p, &[]);
    assert_eq!(j["wsl2"], true);
    assert_eq!(status(&j, "landlock"), "degraded", "{j}");
    assert_eq!(j["backend"], "tracepoint");
    let notes = j["notes"].to_string();
    assert!(notes.contains("seccomp user notification") && notes.contains("ABI 4"), "{notes}");
    assert!(table.contains("missing: TCP bind/connect ports"), "{table}");
}

#[test]
fn wsl_distro_name_changes_nothing() {
    let d = tempfile::tempdir().expect("tmp");
    fixture(d.path(), "Linux version 6.18.44 (gcc 14)", "6.18.44", Some("landlock,bpf"), false);
    let p = probes(d.path(), 7, Ok(()), Ok(()));
    let (plain, _) = check(d.path(), &p, &[]);
    let (with_env, _) = check(d.path(), &p, &[("WSL_DISTRO_NAME", "Ubuntu"), ("WSL_INTEROP", "/run/WSL/1_interop")]);
    assert_eq!(plain, with_env);
    assert_eq!(with_env["wsl2"], false);
    // And on the real host.
    let real = |env: Option<(&str, &str)>| {
        let mut c = Command::new(NONO);
        c.args(["setup", "--check-only", "--json"]);
        if let Some((k, v)) = env {
            c.env(k, v);
        }
        let out = c.output().expect("nono");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).map(|j| j["wsl2"].clone()).ok()
    };
    assert_eq!(real(None), real(Some(("WSL_DISTRO_NAME", "Ubuntu"))));
}

#[test]
fn a_kernel_without_bpf_in_lsm_falls_back_to_tracepoints() {
    let d = tempfile::tempdir().expect("tmp");
    fixture(
        d.path(),
        "Linux version 6.1.0-28-amd64",
        "6.1.0-28-amd64",
        Some("lockdown,capability,landlock,yama,apparmor"),
        false,
    );
    let p = probes(d.path(), 2, Err("BPF_PROG_LOAD failed: EINVAL"), Ok(()));
    let (j, table) = check(d.path(), &p, &[]);
    assert_eq!(status(&j, "bpf lsm active"), "unavailable");
    assert!(table.contains("`bpf` is not in lsm"), "{table}");
    assert_eq!(j["backend"], "tracepoint");
}

#[test]
fn a_kernel_without_landlock_says_enforcement_is_unavailable() {
    let d = tempfile::tempdir().expect("tmp");
    fixture(d.path(), "Linux version 5.10.0", "5.10.0", Some("capability,apparmor"), false);
    let p = probes(d.path(), 0, Err("BPF_PROG_LOAD failed: EINVAL"), Ok(()));
    let (j, table) = check(d.path(), &p, &[]);
    assert_eq!(status(&j, "landlock"), "unavailable");
    assert!(table.contains("enforcement (nono run): unavailable"), "{table}");
}

/// The real host: on this machine kind, Landlock ABI 7, BPF LSM listed but
/// its programs refused, tracepoints usable. In the VM suite (a kernel that
/// loads LSM programs) the backend must be lsm.
#[test]
fn the_real_host_reports_its_matrix() {
    if !is_root() {
        skip("the_real_host_reports_its_matrix", "the BPF probes need root");
        return;
    }
    let out = Command::new(NONO).args(["setup", "--json"]).output().expect("nono setup");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(j["landlock_abi"].as_i64().unwrap_or(0) >= 1, "{j}");
    assert_eq!(status(&j, "tracepoint programs"), "available", "{j}");
    assert_eq!(status(&j, "btf"), "available", "{j}");
    let lsm_loads = status(&j, "bpf lsm programs") == "available";
    assert_eq!(j["backend"], if lsm_loads { "lsm" } else { "tracepoint" }, "{j}");
    if std::env::var("NONO_TEST_BACKEND").as_deref() == Ok("lsm") {
        assert!(lsm_loads, "the VM kernel must load BPF LSM programs: {j}");
    } else if std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().contains("-fc-") {
        // The Firecracker development host (and CI machines of its kind).
        assert_eq!(j["landlock_abi"], 7, "{j}");
        assert_eq!(status(&j, "bpf lsm active"), "available", "{j}");
        assert!(!lsm_loads, "this host refuses LSM programs with EPERM: {j}");
        assert!(j.to_string().contains("EPERM"), "{j}");
    }
}
