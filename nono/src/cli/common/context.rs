//! The learning context of a session: the values behind the profile
//! variables where the command runs (as the user it runs as), the user's
//! sensitive-path exceptions, and the machine facts the learner needs
//! (nameservers, the ssh-agent socket). Built once per session by the
//! commands that record (`learn`, `run --audit`) and stored with the
//! session, so `learn --from` and `profile amend` derive rules exactly as
//! they would have been derived at the time.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::learn::LearnContext;
use crate::record::spawn::Identity;
use crate::store::Session;

/// The context for a command run in `cwd`, as `identity` (the sudo user)
/// or as nono's own user.
pub fn learn_context(cwd: &Path, identity: Option<&Identity>, allow_sensitive: &[PathBuf], anticipate: bool) -> LearnContext {
    let home = identity
        .map(|i| i.home.clone())
        .or_else(|| std::env::var_os("HOME").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/root"));
    let env_dir = |var: &str, default: PathBuf| {
        // Under sudo, nono's own XDG variables are root's: use the user's defaults.
        if identity.is_some() {
            return default;
        }
        std::env::var_os(var).map(PathBuf::from).filter(|p| p.is_absolute()).unwrap_or(default)
    };
    let uid = identity.map_or_else(|| nix::unistd::getuid().as_raw(), |i| i.uid);
    let runtime_dir = if identity.is_some() {
        Some(PathBuf::from(format!("/run/user/{uid}")))
    } else {
        std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from).filter(|p| p.is_absolute())
    };
    LearnContext {
        cwd: cwd.to_path_buf(),
        tmpdir: std::env::var_os("TMPDIR")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| PathBuf::from("/tmp")),
        xdg_config_home: env_dir("XDG_CONFIG_HOME", home.join(".config")),
        xdg_cache_home: env_dir("XDG_CACHE_HOME", home.join(".cache")),
        allow_sensitive: allow_sensitive.iter().map(|p| if p.is_absolute() { p.clone() } else { cwd.join(p) }).collect(),
        runtime_dir,
        // sudo keeps SSH_AUTH_SOCK only when told to; either way it names
        // the socket the command would inherit.
        ssh_auth_sock: std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from).filter(|p| p.is_absolute()),
        nameservers: nameservers(Path::new("/etc/resolv.conf")),
        anticipate,
        path_dirs: path_dirs(),
        home,
    }
}

/// The directories of this process's `$PATH` (absolute ones only): they
/// are persistence paths (see `learn::sensitive`).
#[must_use]
pub fn path_dirs() -> Vec<PathBuf> {
    std::env::var_os("PATH").map(|p| std::env::split_paths(&p).filter(|d| d.is_absolute()).collect()).unwrap_or_default()
}

/// The learning context of a session: stored with it, or rebuilt from its
/// workdir and this environment for sessions recorded before that.
pub fn session_context(session: &Session, allow: &[PathBuf]) -> LearnContext {
    let cwd = PathBuf::from(&session.info.cwd);
    let mut ctx = session
        .info
        .context
        .as_deref()
        .and_then(|c| serde_json::from_str::<LearnContext>(c).ok())
        .unwrap_or_else(|| learn_context(&cwd, None, &[], true));
    ctx.allow_sensitive.extend(allow.iter().map(|p| if p.is_absolute() { p.clone() } else { cwd.join(p) }));
    ctx
}

/// The `nameserver` addresses of a resolv.conf (empty when unreadable).
#[must_use]
pub fn nameservers(resolv_conf: &Path) -> Vec<IpAddr> {
    let Ok(text) = std::fs::read_to_string(resolv_conf) else { return Vec::new() };
    parse_nameservers(&text)
}

fn parse_nameservers(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next()).flatten()
        })
        // A link-local IPv6 server carries a zone: `fe80::1%eth0`.
        .filter_map(|a| a.split('%').next().and_then(|a| a.parse().ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_are_parsed_and_junk_skipped() {
        let text =
            "# generated\nsearch example.com\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\nnameserver bogus\noptions edns0\n";
        assert_eq!(parse_nameservers(text), vec!["127.0.0.53".parse::<IpAddr>().expect("v4"), "fe80::1".parse().expect("v6")]);
    }
}
