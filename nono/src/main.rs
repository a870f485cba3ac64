//! The `nono` binary: parse, run, map errors to an exit code. Nothing else.
//!
//! Exit codes of nono's own (a command's status is passed through):
//! usage errors (an unknown flag, a bad value) and every other failure of
//! nono itself exit with 125, as `env` and `timeout` do, so they are never
//! mistaken for the command's; `--help` and `--version` exit 0. A closed
//! stdout or stderr (`nono audit query | head`) ends nono the way it ends
//! `cat`: quietly, by SIGPIPE.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::new().filter_or("NONO_LOG", "warn")).init();
    // `println!` panics when the reader went away; that is not a bug to report.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !panic_is_broken_pipe(info.payload()) {
            default_hook(info);
        }
    }));
    let args = match nono::cli::Cli::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let code = if e.use_stderr() { nono::cli::EXIT_NONO_ERROR } else { 0 };
            if e.print().is_err() {
                die_of_sigpipe();
            }
            return ExitCode::from(code);
        }
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| nono::cli::run(args))) {
        Ok(Ok(code)) => code,
        Ok(Err(err)) => {
            // A broken pipe on our own output (`export | head`), not on a
            // socket nono talks through (a database server going away).
            let epipe = err
                .chain()
                .any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe));
            if epipe && output_gone() {
                die_of_sigpipe();
            }
            eprintln!("nono: error: {err:#}");
            ExitCode::from(nono::cli::EXIT_NONO_ERROR)
        }
        Err(panic) if panic_is_broken_pipe(panic.as_ref()) => die_of_sigpipe(),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// A panic of `print!`/`println!`/`eprintln!` on a closed pipe.
fn panic_is_broken_pipe(payload: &(dyn std::any::Any + Send)) -> bool {
    let text = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or_default();
    text.starts_with("failed printing to std") && text.contains("Broken pipe")
}

/// Whether stdout or stderr is a pipe whose reader is gone.
fn output_gone() -> bool {
    [1, 2].into_iter().any(|fd| {
        let mut p = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
        // SAFETY: one valid pollfd on the stack, no timeout.
        let n = unsafe { libc::poll(&raw mut p, 1, 0) };
        n == 1 && p.revents & libc::POLLERR != 0
    })
}

/// Ends the process as a write to a closed pipe ends any Unix tool (the
/// Rust runtime ignores SIGPIPE, which turns it into a panic instead).
fn die_of_sigpipe() -> ! {
    // SAFETY: restoring the default action of one signal and raising it;
    // no handler runs, the kernel ends the process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    std::process::exit(128 + libc::SIGPIPE)
}
