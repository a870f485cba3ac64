//! The built-in list of sensitive paths: credentials, private keys, shell
//! history, and files whose modification gives persistence (shell rc files,
//! autostart). The learner never grants them, nor any directory that
//! contains one, unless the user allows them explicitly
//! (`LearnContext::allow_sensitive`).
//!
//! Why "contains" matters: a Landlock rule on a directory applies to every
//! path beneath it and cannot carve out a subpath, so granting `$HOME`
//! would grant `~/.ssh`.
//!
//! An entry that is `$HOME`, the workdir or one of their parents (`/root`
//! for a root session) is dropped: it would refuse everything.
//!
//! Deliberately absent: `$CWD/.env`. The workdir is the agent's job; a
//! secret kept inside it cannot be protected by Landlock without refusing
//! the workdir itself, which would make every learned profile useless. The
//! learner warns when one is accessed instead.

use std::path::PathBuf;

use super::LearnContext;
use super::paths::{is_at_or_beneath, is_strictly_beneath, normalise_root};

/// Where a built-in entry is rooted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Base {
    /// `$HOME/...`
    Home,
    /// `$XDG_CONFIG_HOME/...`, and `~/.config/...` when that differs.
    Config,
    /// An absolute path.
    Root,
    /// `$XDG_RUNTIME_DIR/...` (the user's sockets).
    Runtime,
}

/// One entry: base, path below it, and why it is sensitive.
const BUILTIN: &[(Base, &str, &str)] = &[
    (Base::Home, ".ssh", "SSH private keys; authorized_keys grants logins"),
    (Base::Home, ".gnupg", "GPG private keys"),
    (Base::Home, ".aws", "AWS access keys and SSO tokens"),
    (Base::Home, ".azure", "Azure CLI tokens"),
    (Base::Home, ".kube", "kubeconfig: cluster credentials"),
    (Base::Home, ".docker", "container registry credentials (config.json)"),
    (Base::Home, ".netrc", "plaintext logins used by curl, ftp and git"),
    (Base::Home, ".npmrc", "npm registry auth tokens"),
    (Base::Home, ".pypirc", "PyPI upload tokens"),
    (Base::Home, ".git-credentials", "git credential-store plaintext tokens"),
    (Base::Home, ".password-store", "pass(1) password store"),
    (Base::Home, ".local/share/keyrings", "GNOME keyring databases"),
    (Base::Home, ".mozilla/firefox", "browser profiles: cookies and saved logins"),
    (Base::Home, ".thunderbird", "mail profiles and saved passwords"),
    (Base::Home, ".bash_history", "shell history often holds pasted secrets"),
    (Base::Home, ".zsh_history", "shell history often holds pasted secrets"),
    (Base::Home, ".local/share/fish/fish_history", "shell history often holds pasted secrets"),
    (Base::Home, ".psql_history", "SQL history may hold passwords"),
    (Base::Home, ".mysql_history", "SQL history may hold passwords"),
    (Base::Home, ".bashrc", "runs in every shell: writing it gives persistence"),
    (Base::Home, ".zshrc", "runs in every shell: writing it gives persistence"),
    (Base::Home, ".profile", "runs at login: writing it gives persistence"),
    (Base::Home, ".bash_profile", "runs at login: writing it gives persistence"),
    (Base::Home, ".bash_login", "runs at login: writing it gives persistence"),
    (Base::Home, ".zprofile", "runs at login: writing it gives persistence"),
    (Base::Home, ".zshenv", "runs in every zsh: writing it gives persistence"),
    (Base::Home, ".env", "dotenv secrets"),
    (Base::Home, ".cargo/credentials.toml", "crates.io publish token"),
    (Base::Home, ".cargo/credentials", "crates.io publish token (old name)"),
    (Base::Home, ".gem/credentials", "RubyGems API key"),
    (Base::Home, ".terraform.d/credentials.tfrc.json", "Terraform Cloud token"),
    (Base::Home, ".vault-token", "HashiCorp Vault token"),
    (Base::Home, ".pgpass", "PostgreSQL passwords"),
    (Base::Home, ".my.cnf", "MySQL client passwords"),
    (Base::Home, ".pki", "NSS database: client certificates and keys"),
    (Base::Home, ".oci", "Oracle Cloud API keys"),
    (Base::Config, "gcloud", "Google Cloud credentials"),
    (Base::Config, "gh", "GitHub CLI OAuth token"),
    (Base::Config, "hub", "hub CLI OAuth token"),
    (Base::Config, "git/credentials", "git credential-store tokens (XDG location)"),
    (Base::Config, "google-chrome", "browser profile: cookies and saved logins"),
    (Base::Config, "chromium", "browser profile: cookies and saved logins"),
    (Base::Config, "op", "1Password CLI session"),
    (Base::Config, "rclone", "cloud storage tokens"),
    (Base::Config, "doctl", "DigitalOcean token"),
    (Base::Config, "sops/age", "age private keys used by sops"),
    (Base::Config, "containers/auth.json", "podman registry credentials"),
    (Base::Config, "autostart", "runs at login: writing it gives persistence"),
    (Base::Config, "systemd/user", "user services: writing them gives persistence"),
    (Base::Root, "/etc/shadow", "password hashes"),
    (Base::Root, "/etc/gshadow", "group password hashes"),
    (Base::Root, "/etc/sudoers", "privilege rules"),
    (Base::Root, "/etc/sudoers.d", "privilege rules"),
    (Base::Root, "/etc/ssl/private", "TLS private keys"),
    (Base::Root, "/etc/ssh/ssh_host_ed25519_key", "SSH host private key"),
    (Base::Root, "/etc/ssh/ssh_host_rsa_key", "SSH host private key"),
    (Base::Root, "/etc/ssh/ssh_host_ecdsa_key", "SSH host private key"),
    (Base::Root, "/etc/krb5.keytab", "Kerberos host keys"),
    (Base::Root, "/etc/security/opasswd", "old password hashes"),
    (Base::Root, "/root", "root's home directory"),
];

/// Sockets that give power outside the sandbox to whoever connects. They
/// are sensitive for `network.unix_connect` only: Landlock's filesystem
/// rights do not govern connecting to a socket (that is the broker's job),
/// so they do not stop a directory that holds them from being granted.
const SOCKETS: &[(Base, &str, &str)] = &[
    (Base::Root, "/var/run/docker.sock", "the Docker daemon's socket: whoever reaches it is root"),
    (Base::Root, "/run/docker.sock", "the Docker daemon's socket: whoever reaches it is root"),
    (Base::Root, "/run/containerd/containerd.sock", "containerd's socket: whoever reaches it is root"),
    (Base::Root, "/run/podman/podman.sock", "Podman's API socket: runs containers as root"),
    (Base::Runtime, "docker.sock", "rootless Docker's socket: runs containers as the user, outside the sandbox"),
    (Base::Runtime, "podman/podman.sock", "rootless Podman's API socket: runs containers outside the sandbox"),
    (Base::Runtime, "bus", "the user's D-Bus session bus: can start programs outside the sandbox (systemd --user)"),
    (Base::Runtime, "systemd", "systemd --user's sockets: start services outside the sandbox"),
    (Base::Runtime, "gnupg", "gpg-agent's sockets: sign and decrypt with the user's keys"),
    (Base::Runtime, "keyring", "GNOME keyring's sockets: the user's secrets and ssh-agent"),
];

/// One expanded sensitive path and why it is on the list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Sensitive {
    pub path: String,
    pub why: &'static str,
    /// A socket: sensitive to connect to, not as a file.
    pub socket: bool,
}

/// The expanded list and the user's exceptions.
#[derive(Clone, Debug, Default)]
pub(crate) struct SensitiveSet {
    entries: Vec<Sensitive>,
    allow: Vec<String>,
}

impl SensitiveSet {
    pub(crate) fn new(ctx: &LearnContext) -> SensitiveSet {
        let home = normalise_root(&ctx.home);
        let config = normalise_root(&ctx.xdg_config_home);
        let home_config = home.as_deref().map(|h| join(h, ".config"));
        let runtime = ctx.runtime_dir.as_deref().and_then(normalise_root);
        let mut entries: Vec<Sensitive> = Vec::new();
        let mut push = |path: String, why: &'static str, socket: bool| {
            if !entries.iter().any(|e| e.path == path) {
                entries.push(Sensitive { path, why, socket });
            }
        };
        let all = BUILTIN.iter().map(|e| (e, false)).chain(SOCKETS.iter().map(|e| (e, true)));
        for (&(base, rel, why), socket) in all {
            match base {
                Base::Root => push(rel.to_owned(), why, socket),
                Base::Home => {
                    if let Some(h) = &home {
                        push(join(h, rel), why, socket);
                    }
                }
                Base::Runtime => {
                    if let Some(r) = &runtime {
                        push(join(r, rel), why, socket);
                    }
                }
                Base::Config => {
                    // Both spellings: tools differ in whether they honour
                    // XDG_CONFIG_HOME.
                    for dir in [&config, &home_config].into_iter().flatten() {
                        push(join(dir, rel), why, socket);
                    }
                }
            }
        }
        if let Some(sock) = ctx.ssh_auth_sock.as_deref().and_then(normalise_root) {
            push(sock, "the ssh-agent socket ($SSH_AUTH_SOCK): signs with the user's SSH keys", true);
        }
        // An entry that holds $HOME or the workdir (`/root` when running as
        // root) would refuse the whole session; the entries below $HOME
        // still protect what matters there.
        let cwd = normalise_root(&ctx.cwd);
        entries.retain(|e| [&home, &cwd].into_iter().flatten().all(|p| !is_at_or_beneath(p, &e.path)));
        let allow = ctx.allow_sensitive.iter().filter_map(|p| normalise_root(p)).collect();
        SensitiveSet { entries, allow }
    }

    pub(crate) fn paths(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.path.as_str())
    }

    /// The user allowed `p` (it or one of its parents is in `allow_sensitive`).
    pub(crate) fn is_allowed(&self, p: &str) -> bool {
        self.allow.iter().any(|a| is_at_or_beneath(p, a))
    }

    /// The entry `p` is (or lies beneath), unless the user allowed `p`.
    /// Sockets count only for connects ([`Self::socket`]).
    pub(crate) fn inside(&self, p: &str) -> Option<&Sensitive> {
        let hit = self.entries.iter().find(|e| !e.socket && is_at_or_beneath(p, &e.path))?;
        (!self.is_allowed(p)).then_some(hit)
    }

    /// The entry a connect to socket `p` would reach (any entry: a socket,
    /// or a socket inside a sensitive directory), unless allowed.
    pub(crate) fn socket(&self, p: &str) -> Option<&Sensitive> {
        let hit = self.entries.iter().find(|e| is_at_or_beneath(p, &e.path))?;
        (!self.is_allowed(p)).then_some(hit)
    }

    /// A non-allowed entry strictly beneath directory `d`: granting `d`
    /// would grant it too. Sockets do not count (see [`SOCKETS`]).
    pub(crate) fn contained_in(&self, d: &str) -> Option<&Sensitive> {
        if self.is_allowed(d) {
            return None;
        }
        self.entries.iter().find(|e| !e.socket && is_strictly_beneath(&e.path, d) && !self.is_allowed(&e.path))
    }
}

fn join(dir: &str, rel: &str) -> String {
    if dir == "/" { format!("/{rel}") } else { format!("{dir}/{rel}") }
}

/// The built-in sensitive paths, expanded for this context.
#[must_use]
pub fn sensitive_paths(ctx: &LearnContext) -> Vec<PathBuf> {
    SensitiveSet::new(ctx).paths().map(PathBuf::from).collect()
}

/// One expanded entry of the sensitive list, for enforcement-time checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SensitiveEntry {
    pub path: PathBuf,
    pub why: &'static str,
    /// A socket (Docker's, the ssh-agent's, the D-Bus session bus): sensitive
    /// to connect to (`network.unix_connect`), not as a file. A filesystem
    /// grant that contains it does not expose it.
    pub socket: bool,
}

/// The sensitive list, expanded for this context, with what each entry is.
/// Entries the user allowed (`allow_sensitive`) are left out.
#[must_use]
pub fn sensitive_entries(ctx: &LearnContext) -> Vec<SensitiveEntry> {
    let set = SensitiveSet::new(ctx);
    set.entries
        .iter()
        .filter(|e| !set.is_allowed(&e.path))
        .map(|e| SensitiveEntry {
            path: crate::event::unescape_path(&e.path).unwrap_or_else(|_| PathBuf::from(&e.path)),
            why: e.why,
            socket: e.socket,
        })
        .collect()
}
