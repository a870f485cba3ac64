//! Specification: a profile learned from one run must hold on the next.
//! Scripts run by path, directories the agent owns (state, cache, temp,
//! the workdir), terminals.

use super::*;

fn anticipating() -> LearnContext {
    LearnContext { anticipate: true, ..ctx() }
}

#[test]
fn a_script_run_by_path_gets_execute_on_the_script() {
    // `./s.sh`: the exec event names the interpreter that runs and the
    // script the exec named.
    let mut e = ev(Op::Exec, "/usr/bin/dash");
    e.0.path2 = Some("/srv/tools/s.sh".into());
    assert_eq!(
        e.rights(),
        vec![need("/usr/bin/dash", &[Execute, ReadFile], true), need("/srv/tools/s.sh", &[Execute, ReadFile], true)]
    );
    let l = learn(vec![e]);
    assert!(rule(&l, "/srv/tools/s.sh").access.contains(&Execute), "{:#?}", l.rules);
}

#[test]
fn scripts_the_run_wrote_in_a_new_directory_generalise_with_it() {
    // `python -m venv ~/.venvs/x && ~/.venvs/x/bin/pip`: the run created
    // the directory, so its executables are covered by the directory rule.
    let mut pip = ev(Op::Exec, "/usr/bin/python3.11");
    pip.0.path2 = Some("/home/u/.venvs/x/bin/pip".into());
    let l = learn(vec![
        ev(Op::Mkdir, "/home/u/.venvs/x"),
        ev(Op::Mkdir, "/home/u/.venvs/x/bin"),
        ev(Op::Open, "/home/u/.venvs/x/bin/pip").write().create(),
        pip,
    ]);
    let r = rule(&l, "$HOME/.venvs");
    assert!(r.access.contains(&Execute) && r.access.contains(&MakeDir), "{:#?}", l.rules);
}

#[test]
fn a_state_directory_cleaned_on_the_next_start_gets_remove_and_refer() {
    // A Codex-like agent: run 1 creates ~/.codex/tmp/arg0-linux/<random>/
    // with symlinks in it; run 2 renames and removes what run 1 left.
    let events = || {
        vec![
            ev(Op::Mkdir, "/home/u/.codex/tmp/arg0-linux/k2j3x9ab4q"),
            ev(Op::Symlink, "/home/u/.codex/tmp/arg0-linux/k2j3x9ab4q/apply_patch").to("/usr/bin/codex"),
            open_r("/home/u/.codex/config.toml"),
        ]
    };
    let l = learn_with(&anticipating(), events());
    let r = rule(&l, "$HOME/.codex/tmp/arg0-linux");
    for right in [RemoveDir, RemoveFile, Refer, ReadDir] {
        assert!(r.access.contains(&right), "{right} missing: {r:#?}");
        assert!(r.anticipated.contains(&right), "{right} not marked anticipated: {r:#?}");
    }
    assert!(!r.anticipated.contains(&MakeDir), "observed rights are not anticipated");
    let x = explanation(&l, "$HOME/.codex/tmp/arg0-linux", "anticipated steady state");
    assert!(x.reason.contains("state directory") || x.reason.contains("created"), "{}", x.reason);
    // Off switch: exactly what was seen.
    let l = learn(events());
    assert!(rule(&l, "$HOME/.codex/tmp/arg0-linux").anticipated.is_empty());
}

#[test]
fn lock_files_and_rotated_logs_in_a_state_directory_hold() {
    let l = learn_with(
        &anticipating(),
        vec![ev(Op::Open, "/home/u/.local/state/app/app.log").write().create(), ev(Op::Mkdir, "/home/u/.local/state/app/lock")],
    );
    let r = rule(&l, "$HOME/.local/state/app");
    for right in [MakeReg, WriteFile, Truncate, RemoveFile, MakeDir, RemoveDir] {
        assert!(r.access.contains(&right), "{right} missing: {r:#?}");
    }
}

#[test]
fn a_directory_the_agent_does_not_own_gets_no_anticipated_removal() {
    // Creating one file in ~/Documents must not grant deleting the user's
    // documents on the next run.
    let l = learn_with(&anticipating(), vec![ev(Op::Open, "/home/u/Documents/report.txt").write().create()]);
    let r = rule(&l, "$HOME/Documents");
    assert!(!r.access.contains(&RemoveFile), "{r:#?}");
    assert!(r.anticipated.is_empty());
    // Nor a system tree.
    let l = learn_with(&anticipating(), vec![ev(Op::Open, "/var/lib/app/db").write().create()]);
    assert!(l.rules.iter().all(|r| r.anticipated.is_empty()), "{:#?}", l.rules);
}

#[test]
fn the_workdir_and_temp_dirs_anticipate_rebuilds() {
    let l = learn_with(
        &anticipating(),
        vec![ev(Op::Open, "/home/u/proj/build/out.o").write().create(), ev(Op::Open, "/tmp/cc123.s").write().create()],
    );
    assert!(rule(&l, "$CWD").access.contains(&RemoveFile));
    assert!(rule(&l, "$TMPDIR").access.contains(&RemoveFile));
}

#[test]
fn anticipated_rights_merge_as_seen_once_used() {
    let run1 = learn_with(&anticipating(), vec![ev(Op::Mkdir, "/home/u/.app/cache-k2j3x9ab4q")]);
    let run2 = learn_with(&anticipating(), vec![ev(Op::Rmdir, "/home/u/.app/cache-k2j3x9ab4q")]);
    let m = merge(&[run1, run2]);
    let r = rule(&m, "$HOME/.app");
    assert!(r.access.contains(&RemoveDir));
    assert!(!r.anticipated.contains(&RemoveDir), "observed in run 2: {r:#?}");
}

#[test]
fn a_terminal_gets_its_ioctls_and_dev_tty_survives_enxio() {
    let l = learn(vec![ev(Op::Open, "/dev/pts/3").read().write().ftype(libc::S_IFCHR)]);
    assert!(rule(&l, "$TTY").access.contains(&IoctlDev), "{:#?}", l.rules);
    // No controlling terminal while learning: ENXIO, after Landlock's check.
    // Granting keeps ENXIO under the sandbox (not EACCES).
    let l = learn(vec![ev(Op::Open, "/dev/tty").read().write().err(libc::ENXIO)]);
    let r = rule(&l, "/dev/tty");
    assert!(r.file && r.access.contains(&ReadFile) && r.access.contains(&WriteFile), "{r:#?}");
}

#[test]
fn a_home_inside_a_temp_dir_is_still_a_home() {
    // Demos and tests keep $HOME under /tmp: paths in it must not collapse
    // to the temp dir (which then holds ~/.ssh and would be narrowed).
    let c = LearnContext {
        home: "/tmp/t/home".into(),
        cwd: "/tmp/t/work".into(),
        tmpdir: "/tmp/t/tmp".into(),
        xdg_config_home: "/tmp/t/home/.config".into(),
        xdg_cache_home: "/tmp/t/home/.cache".into(),
        runtime_dir: None,
        ssh_auth_sock: None,
        ..anticipating()
    };
    let l = learn_with(
        &c,
        vec![ev(Op::Mkdir, "/tmp/t/home/.app/run-k2j3x9ab4q"), ev(Op::Open, "/tmp/t/tmp/scratch").write().create()],
    );
    assert_eq!(paths(&l), ["$HOME/.app", "$TMPDIR"], "{:#?}", l.rules);
    explanation(&l, "$HOME/.app", "state directory");
    // With $TMPDIR holding $HOME, a temp file cannot be granted through
    // its directory (that would grant ~/.ssh): say why, with the fix.
    let private = c.clone();
    let c = LearnContext { tmpdir: "/tmp".into(), ..c };
    let l = learn_with(&c, vec![ev(Op::Open, "/tmp/scratch").write().create()]);
    assert!(l.warnings.iter().any(|w| w.contains("TMPDIR") && w.contains("$HOME")), "{:?}", l.warnings);
    // A private $TMPDIR: a file under /tmp beside the home (the agent's
    // own script in a clone under /tmp) is no reason to blame TMPDIR.
    let l = learn_with(&private, vec![open_r("/tmp/t/agent.sh"), ev(Op::Open, "/tmp/t/tmp/x").write().create()]);
    assert!(!l.warnings.iter().any(|w| w.contains("TMPDIR")), "{:?}", l.warnings);
}
