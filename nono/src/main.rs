//! The `nono` binary: parse, run, map errors to an exit code. Nothing else.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::new().filter_or("NONO_LOG", "warn")).init();
    let args = nono::cli::Cli::parse();
    match nono::cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("nono: error: {err:#}");
            ExitCode::from(nono::cli::EXIT_NONO_ERROR)
        }
    }
}
