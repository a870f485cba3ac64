//! Learn, then enforce: for each realistic workload, the profile learned
//! from one run lets a second run finish with zero denials (complete), and
//! under that same profile each attacker step fails (tight).
//!
//! The sandbox gives every workload its own `$HOME`, `$TMPDIR` and workdir,
//! plus a `data/ref.txt` outside all of them that the workload only reads.

mod support;

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use support::{Sandbox, require_recorder};

struct Workload {
    name: &'static str,
    /// Puts the workdir in its starting state (run before learn and before run).
    seed: fn(&Path),
    script: &'static str,
    /// Programs the workload needs; the test skips (or fails under CI) without them.
    needs: &'static [&'static str],
}

/// Every workload reads the reference file and starts python (the attacker
/// probes are python one-liners, which must be able to start under every
/// learned profile for their errno to mean anything).
const PREAMBLE: &str = "set -eu\ncat \"$NONO_TEST_DATA/ref.txt\" > /dev/null\npython3 -c 'import errno, os, socket, sys'\n";

fn seed_nothing(_: &Path) {}

fn seed_c_project(w: &Path) {
    std::fs::write(w.join("main.c"), "#include \"util.h\"\nint main(void) { return util() - 42; }\n").expect("seed");
    std::fs::write(w.join("util.c"), "#include \"util.h\"\nint util(void) { return 42; }\n").expect("seed");
    std::fs::write(w.join("util.h"), "int util(void);\n").expect("seed");
    std::fs::write(w.join("Makefile"), "app: main.o util.o\n\tcc -o app main.o util.o\n%.o: %.c util.h\n\tcc -O1 -c $< -o $@\n")
        .expect("seed");
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "shell script in its workdir",
        seed: seed_nothing,
        script: "mkdir -p out/nested\necho hi > out/a.txt\ncat out/a.txt > /dev/null\nmv out/a.txt out/nested/b.txt\nls -la out > listing.txt\nrm -r out\n",
        needs: &["sh", "ls"],
    },
    Workload {
        name: "git init, add, commit",
        seed: seed_nothing,
        script: "git init -q repo\ncd repo\necho 'hello' > README\ngit add README\ngit -c user.name=nono -c user.email=nono@example.invalid commit -q -m init\ngit log --oneline > /dev/null\n",
        needs: &["git"],
    },
    Workload {
        name: "python writes a venv-like tree",
        seed: seed_nothing,
        script: "python3 - <<'PY'\nimport os, json, tempfile\nroot = 'venv'\nfor d in ('bin', 'include', 'lib/python3/site-packages/demo'):\n    os.makedirs(os.path.join(root, d), exist_ok=True)\nwith open(os.path.join(root, 'pyvenv.cfg'), 'w') as f:\n    f.write('home = /usr/bin\\n')\nos.symlink('/usr/bin/python3', os.path.join(root, 'bin/python'))\nwith open(os.path.join(root, 'lib/python3/site-packages/demo/__init__.py'), 'w') as f:\n    f.write('VALUE = 1\\n')\nwith tempfile.NamedTemporaryFile('w', delete=False, dir=root) as t:\n    json.dump({'ok': True}, t)\nos.replace(t.name, os.path.join(root, 'state.json'))\nPY\n",
        needs: &["python3"],
    },
    Workload {
        name: "make and cc build a small C project",
        seed: seed_c_project,
        script: "make -s\n./app\n",
        needs: &["make", "cc"],
    },
    Workload {
        name: "mktemp files and dirs",
        seed: seed_nothing,
        script: "f=$(mktemp)\necho data > \"$f\"\ncat \"$f\" > /dev/null\nrm \"$f\"\nd=$(mktemp -d)\ntouch \"$d/x\"\nrm -r \"$d\"\necho done > result.txt\n",
        needs: &["mktemp"],
    },
];

fn have(program: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {program}")).output().is_ok_and(|o| o.status.success())
}

/// Prepares the sandbox: data file, fake SSH key, private TMPDIR.
fn prepare(sb: &Sandbox) {
    std::fs::create_dir_all(sb.root().join("data")).expect("data");
    std::fs::write(sb.root().join("data/ref.txt"), "reference data\n").expect("ref");
    std::fs::create_dir_all(sb.home().join(".ssh")).expect("ssh");
    std::fs::write(sb.home().join(".ssh/id_rsa"), "-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n").expect("key");
    std::fs::create_dir_all(sb.root().join("tmp")).expect("tmp");
}

fn reset_workdir(sb: &Sandbox, seed: fn(&Path)) {
    let w = sb.work();
    for entry in std::fs::read_dir(&w).expect("read workdir") {
        let p = entry.expect("entry").path();
        if p.is_dir() && !p.is_symlink() {
            std::fs::remove_dir_all(&p).expect("clear");
        } else {
            std::fs::remove_file(&p).expect("clear");
        }
    }
    seed(&w);
}

fn env(c: &mut Command, sb: &Sandbox) {
    c.env("TMPDIR", sb.root().join("tmp")).env("NONO_TEST_DATA", sb.root().join("data"));
}

/// `nono run --profile P -- sh -c SCRIPT`; returns (exit code, stderr).
fn run_under(sb: &Sandbox, script: &str) -> (Option<i32>, String) {
    let mut c = sb.cmd();
    env(&mut c, sb);
    c.arg("run").arg("--profile").arg(sb.profile()).args(["--", "sh", "-c", script]);
    let out = c.output().expect("nono run");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Runs a python snippet under the profile that prints the errno (0 = success).
fn attack(sb: &Sandbox, what: &str, python: &str) -> String {
    let script = format!("python3 -c '{python}'");
    let (code, stderr) = run_under(sb, &script);
    assert_eq!(code, Some(0), "{what}: the probe itself failed:\n{stderr}");
    stderr.lines().last().unwrap_or_default().trim().to_owned()
}

#[test]
fn learned_profiles_are_complete_and_tight() {
    let Some(backend) = require_recorder("learned_profiles_are_complete_and_tight") else { return };
    if !have("python3") {
        support::skip("learned_profiles_are_complete_and_tight", "python3 is needed for the attacker probes");
        return;
    }
    let mut failures = Vec::new();
    for wl in WORKLOADS {
        if let Some(missing) = wl.needs.iter().find(|p| !have(p)) {
            support::skip(wl.name, &format!("{missing} is not installed"));
            continue;
        }
        eprintln!("--- workload: {}", wl.name);
        let sb = Sandbox::new();
        prepare(&sb);
        reset_workdir(&sb, wl.seed);
        let script = format!("{PREAMBLE}{}", wl.script);
        let mut learn = sb.learn_command(&backend, &["--no-progress"], &["sh", "-c", &script]);
        env(&mut learn, &sb);
        let out = learn.output().expect("nono learn");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{}: learn run failed:\n{stderr}", wl.name);
        assert!(sb.profile().exists(), "{}: no profile written:\n{stderr}", wl.name);

        // Complete: the same workload, from the same starting state, runs
        // under the learned profile with zero denials.
        reset_workdir(&sb, wl.seed);
        let (code, stderr) = run_under(&sb, &script);
        if code != Some(0) || stderr.contains("Permission denied") {
            let profile = std::fs::read_to_string(sb.profile()).unwrap_or_default();
            failures.push(format!("{}: enforced run failed ({code:?}):\n{stderr}\nprofile:\n{profile}", wl.name));
            continue;
        }

        // Tight: each attacker step is denied with EACCES.
        let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
        let port = listener.local_addr().expect("addr").port();
        let key = sb.home().join(".ssh/id_rsa");
        let outside = sb.root().join("outside.txt");
        let stolen = sb.root().join("stolen.txt");
        let reference = sb.root().join("data/ref.txt");
        std::fs::write(sb.work().join("victim.txt"), "v").expect("victim");
        let victim = sb.work().join("victim.txt");
        let probe = |body: &str| {
            format!(
                "import errno, os, socket, sys\ntry:\n    {body}\n    r = 0\nexcept OSError as e:\n    r = e.errno\nprint(errno.errorcode.get(r, r), file=sys.stderr)"
            )
        };
        let steps = [
            ("read ~/.ssh/id_rsa", probe(&format!("open(\"{}\").read()", key.display())), &["EACCES"][..]),
            ("write outside the workdir", probe(&format!("open(\"{}\", \"w\").write(\"x\")", outside.display())), &["EACCES"]),
            (
                "rename a file out of the workdir",
                probe(&format!("os.rename(\"{}\", \"{}\")", victim.display(), stolen.display())),
                // Landlock answers EXDEV when only the cross-directory
                // `refer` right is missing; both mean "denied", and the
                // file must stay where it was.
                &["EACCES", "EXDEV"],
            ),
            ("truncate a file it only read", probe(&format!("os.truncate(\"{}\", 0)", reference.display())), &["EACCES"]),
            (
                "connect to a port it never used",
                probe(&format!("socket.create_connection((\"127.0.0.1\", {port}), timeout=5).close()")),
                &["EACCES"],
            ),
        ];
        for (what, py, expected) in &steps {
            let got = attack(&sb, what, py);
            if !expected.contains(&got.as_str()) {
                failures.push(format!("{}: attacker step `{what}` gave {got}, expected {expected:?}", wl.name));
            }
        }
        assert!(victim.exists() && !stolen.exists(), "{}: the victim file moved", wl.name);
        assert_eq!(std::fs::read_to_string(&reference).expect("ref"), "reference data\n", "{}: ref.txt was truncated", wl.name);
        assert!(!outside.exists(), "{}: a file was written outside the workdir", wl.name);
        drop(listener);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
