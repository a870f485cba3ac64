//! The user's own profiles: where `nono learn` writes them
//! (`$XDG_CONFIG_HOME/nono/profiles/NAME.json`, outside any workdir, so
//! the agent that was recorded cannot rewrite the profile of its next run
//! by editing its workdir) and how they are listed.
//!
//! Writing them is `invoker::fs`'s job: under sudo, as the invoking user,
//! never through a planted link.

use std::path::PathBuf;

use super::Vars;

/// `(name, path)` of every `*.json` in the user's profiles directory, by name.
#[must_use]
pub fn list(vars: &Vars) -> Vec<(String, PathBuf)> {
    let Ok(dir) = std::fs::read_dir(vars.profiles_dir()) else { return Vec::new() };
    let mut out: Vec<(String, PathBuf)> = dir
        .filter_map(Result::ok)
        .filter_map(|e| {
            let path = e.path();
            let name = path.file_stem()?.to_str()?.to_owned();
            (path.extension().is_some_and(|x| x == "json") && !name.starts_with('.')).then_some((name, path))
        })
        .collect();
    out.sort();
    out
}
