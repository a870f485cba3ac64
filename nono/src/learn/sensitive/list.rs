//! The built-in sensitive list, reviewed entry by entry. Two classes:
//! - **secrets** (credentials, private keys, history): neither readable
//!   nor writable;
//! - **persistence** (files that run code outside the sandbox the next
//!   time the user starts a shell, logs in, runs git, an editor or an
//!   agent): readable, since they hold no secret and shells read them on
//!   every start (`bash -l` reads `~/.profile`), but never writable,
//!   creatable, removable, renamable over or changeable in metadata.
//!
//! Each entry says why it is on the list; the comment above it cites
//! where the program documents that it runs code from it. Entries that
//! hold both (`~/.ssh`: keys, and `rc`/`config` that run commands) are
//! secrets, the stricter class.
//!
//! Checked and deliberately absent:
//! - `~/.config/git/attributes`, `.gitattributes`: gitattributes(5) only
//!   selects filter and diff drivers, whose commands must be defined in a
//!   git config file (which is on the list);
//! - `~/.config/pip/pip.conf`, `~/.curlrc`, `~/.wgetrc`: options only, no
//!   command is run from them;
//! - `~/.claude.json`: Claude Code's own state, rewritten on every start
//!   (atomically, which the broker performs), so refusing it would break
//!   Claude Code under nono; it also holds user-scope MCP servers, whose
//!   commands Claude Code starts. The README's limitations say so;
//! - the workdir's `.git/config`, `.git/hooks`, `.claude/settings.json`,
//!   `.vscode/tasks.json`: the workdir is the agent's job, and Landlock
//!   cannot carve a path out of a directory rule (see the README's
//!   limitations; `learn` warns);
//! - a workdir's `.envrc`: direnv refuses an `.envrc` it has not been told
//!   to allow, and again after every change (direnv(1), "direnv allow");
//!   the allow list itself is on the list.

use super::Class;

/// Where a built-in entry is rooted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Base {
    /// `$HOME/...`
    Home,
    /// `$XDG_CONFIG_HOME/...`, and `~/.config/...` when that differs.
    Config,
    /// An absolute path.
    Root,
    /// `$XDG_RUNTIME_DIR/...` (the user's sockets).
    Runtime,
}

const S: Class = Class::Secret;
const P: Class = Class::Persistence;

/// One entry: base, path below it, class, and why it is sensitive.
pub(super) const BUILTIN: &[(Base, &str, Class, &str)] = &[
    // ---- secrets
    // ssh(1), sshd(8) AUTHORIZED_KEYS and SSHRC: besides keys, ~/.ssh/rc,
    // config (ProxyCommand, LocalCommand, Match exec), environment and
    // authorized_keys (command=) run code: persistence too.
    (Base::Home, ".ssh", S, "SSH private keys; authorized_keys grants logins; rc and config run commands"),
    // gpg-agent.conf names the pinentry program it runs.
    (Base::Home, ".gnupg", S, "GPG private keys"),
    // credential_process in ~/.aws/config runs a command.
    (Base::Home, ".aws", S, "AWS access keys and SSO tokens"),
    (Base::Home, ".azure", S, "Azure CLI tokens"),
    // kubeconfig `exec` credential plugins run a command.
    (Base::Home, ".kube", S, "kubeconfig: cluster credentials"),
    // config.json `credsStore`/`credHelpers` name programs docker runs.
    (Base::Home, ".docker", S, "container registry credentials (config.json)"),
    (Base::Home, ".netrc", S, "plaintext logins used by curl, ftp and git"),
    // npmrc(5): also `node-options` (--require), `script-shell` and
    // `prefix` (where `npm i -g` puts programs): persistence too.
    (Base::Home, ".npmrc", S, "npm registry auth tokens; node-options and script-shell run code"),
    (Base::Home, ".pypirc", S, "PyPI upload tokens"),
    (Base::Home, ".git-credentials", S, "git credential-store plaintext tokens"),
    (Base::Home, ".password-store", S, "pass(1) password store"),
    (Base::Home, ".local/share/keyrings", S, "GNOME keyring databases"),
    (Base::Home, ".mozilla/firefox", S, "browser profiles: cookies and saved logins"),
    (Base::Home, ".thunderbird", S, "mail profiles and saved passwords"),
    (Base::Home, ".bash_history", S, "shell history often holds pasted secrets"),
    (Base::Home, ".zsh_history", S, "shell history often holds pasted secrets"),
    (Base::Home, ".local/share/fish/fish_history", S, "shell history often holds pasted secrets"),
    (Base::Home, ".psql_history", S, "SQL history may hold passwords"),
    (Base::Home, ".mysql_history", S, "SQL history may hold passwords"),
    (Base::Home, ".env", S, "dotenv secrets"),
    (Base::Home, ".cargo/credentials.toml", S, "crates.io publish token"),
    (Base::Home, ".cargo/credentials", S, "crates.io publish token (old name)"),
    (Base::Home, ".gem/credentials", S, "RubyGems API key"),
    (Base::Home, ".terraform.d/credentials.tfrc.json", S, "Terraform Cloud token"),
    (Base::Home, ".vault-token", S, "HashiCorp Vault token"),
    (Base::Home, ".pgpass", S, "PostgreSQL passwords"),
    (Base::Home, ".my.cnf", S, "MySQL client passwords"),
    (Base::Home, ".pki", S, "NSS database: client certificates and keys"),
    (Base::Home, ".oci", S, "Oracle Cloud API keys"),
    (Base::Home, ".local/state/nono", S, "nono's audit trail: every recorded command line and path; writing it rewrites history"),
    (Base::Config, "gcloud", S, "Google Cloud credentials"),
    // gh's config.yml also holds aliases, which may be shell commands (`!`).
    (Base::Config, "gh", S, "GitHub CLI OAuth token"),
    (Base::Config, "hub", S, "hub CLI OAuth token"),
    (Base::Config, "git/credentials", S, "git credential-store tokens (XDG location)"),
    (Base::Config, "google-chrome", S, "browser profile: cookies and saved logins"),
    (Base::Config, "chromium", S, "browser profile: cookies and saved logins"),
    (Base::Config, "op", S, "1Password CLI session"),
    (Base::Config, "rclone", S, "cloud storage tokens"),
    (Base::Config, "doctl", S, "DigitalOcean token"),
    (Base::Config, "sops/age", S, "age private keys used by sops"),
    (Base::Config, "containers/auth.json", S, "podman registry credentials"),
    (Base::Root, "/etc/shadow", S, "password hashes"),
    (Base::Root, "/etc/gshadow", S, "group password hashes"),
    (Base::Root, "/etc/sudoers", S, "privilege rules"),
    (Base::Root, "/etc/sudoers.d", S, "privilege rules"),
    (Base::Root, "/etc/ssl/private", S, "TLS private keys"),
    (Base::Root, "/etc/ssh/ssh_host_ed25519_key", S, "SSH host private key"),
    (Base::Root, "/etc/ssh/ssh_host_rsa_key", S, "SSH host private key"),
    (Base::Root, "/etc/ssh/ssh_host_ecdsa_key", S, "SSH host private key"),
    (Base::Root, "/etc/krb5.keytab", S, "Kerberos host keys"),
    (Base::Root, "/etc/security/opasswd", S, "old password hashes"),
    (Base::Root, "/root", S, "root's home directory"),
    // ---- persistence: shells and login
    // bash(1) INVOCATION: ~/.bashrc for interactive shells; the first of
    // ~/.bash_profile, ~/.bash_login, ~/.profile for login shells;
    // ~/.bash_logout when a login shell exits. dash(1) and sh read ~/.profile.
    (Base::Home, ".bashrc", P, "bash runs it in every interactive shell"),
    (Base::Home, ".bash_profile", P, "bash runs it at login"),
    (Base::Home, ".bash_login", P, "bash runs it at login"),
    (Base::Home, ".profile", P, "sh and bash run it at login"),
    (Base::Home, ".bash_logout", P, "bash runs it when a login shell exits"),
    // Debian's and Ubuntu's /etc/skel/.bashrc sources it.
    (Base::Home, ".bash_aliases", P, "the default ~/.bashrc of Debian and Ubuntu sources it"),
    // readline(3) INITIALIZATION FILE: a key can be bound to a macro, and
    // a macro's text is read back as keystrokes (rl_read_key takes
    // _rl_next_macro_key), so a macro ending in \C-j runs accept-line: a
    // binding for Enter can run a command in every bash the user types in.
    (Base::Home, ".inputrc", P, "readline key bindings: a macro bound to Enter can type and run a command in every bash"),
    // zsh(1) STARTUP/SHUTDOWN FILES.
    (Base::Home, ".zshenv", P, "zsh runs it in every shell, scripts included"),
    (Base::Home, ".zprofile", P, "zsh runs it at login"),
    (Base::Home, ".zshrc", P, "zsh runs it in every interactive shell"),
    (Base::Home, ".zlogin", P, "zsh runs it at login"),
    (Base::Home, ".zlogout", P, "zsh runs it when a login shell exits"),
    // oh-my-zsh's oh-my-zsh.sh sources its plugins and custom/*.zsh.
    (Base::Home, ".oh-my-zsh", P, "oh-my-zsh: ~/.zshrc sources its plugins and custom/*.zsh"),
    // fish-doc "Configuration files": config.fish, conf.d/*.fish,
    // autoloaded functions/ and completions/; fish_variables holds universal
    // variables such as fish_user_paths (prepended to PATH).
    (Base::Config, "fish", P, "fish runs config.fish and conf.d/, autoloads functions/, and sets PATH from fish_variables"),
    // pam_env.conf(5): read at login when user_readenv is on (PATH, LD_PRELOAD).
    (Base::Home, ".pam_environment", P, "pam_env sets the login environment from it (PATH, LD_PRELOAD)"),
    // environment.d(5): the environment of every systemd --user service.
    (Base::Config, "environment.d", P, "systemd --user sets every user service's environment from it (PATH, LD_PRELOAD)"),
    // startx(1), Xsession(5): run at graphical login.
    (Base::Home, ".xprofile", P, "display managers run it at graphical login"),
    (Base::Home, ".xinitrc", P, "startx runs it"),
    (Base::Home, ".xsession", P, "the X session script run at graphical login"),
    (Base::Home, ".xsessionrc", P, "Debian's Xsession sources it at graphical login"),
    // XDG Autostart Specification: desktop entries started at login.
    (Base::Config, "autostart", P, "the desktop starts its entries at login"),
    // systemd.unit(5) "User Unit Search Path".
    (Base::Config, "systemd/user", P, "systemd --user runs the services defined here"),
    (Base::Home, ".local/share/systemd/user", P, "systemd --user runs the services defined here"),
    // Desktop Entry Specification: $XDG_DATA_HOME/applications shadows
    // the system's entries, whose Exec= runs when the user starts the app.
    (
        Base::Home,
        ".local/share/applications",
        P,
        "desktop entries here replace the menu's: their Exec= runs when the user starts an app",
    ),
    // ---- persistence: directories on PATH (besides $PATH's own entries
    // inside $HOME, added at learn and run time). Debian's ~/.profile puts
    // ~/bin and ~/.local/bin first on PATH; file-hierarchy(7) names
    // ~/.local/bin; rustup, go, deno, bun, volta, pyenv, rbenv and asdf
    // put theirs on PATH from the shell's rc file.
    (Base::Home, ".local/bin", P, "on PATH: a program here shadows a system command"),
    (Base::Home, "bin", P, "on PATH: a program here shadows a system command"),
    (Base::Home, ".cargo/bin", P, "on PATH for rustup users: a program here shadows a system command"),
    (Base::Home, "go/bin", P, "on PATH for Go users: a program here shadows a system command"),
    (Base::Home, ".deno/bin", P, "on PATH for Deno users: a program here shadows a system command"),
    (Base::Home, ".bun/bin", P, "on PATH for Bun users: a program here shadows a system command"),
    (Base::Home, ".volta/bin", P, "on PATH for Volta users: a program here shadows a system command"),
    (Base::Home, ".yarn/bin", P, "on PATH for yarn global installs: a program here shadows a system command"),
    (Base::Home, ".pyenv/shims", P, "on PATH for pyenv users: a shim here runs for every python"),
    (Base::Home, ".rbenv/shims", P, "on PATH for rbenv users: a shim here runs for every ruby"),
    (Base::Home, ".asdf/shims", P, "on PATH for asdf users: a shim here runs for every managed tool"),
    // ---- persistence: tools that run code from their configuration
    // git-config(1): core.fsmonitor, core.hooksPath, core.pager,
    // core.editor, core.sshCommand, alias.* starting with `!`,
    // filter.*.clean/smudge, diff.*.textconv, credential.helper all run
    // commands, some on every `git status`.
    (
        Base::Home,
        ".gitconfig",
        P,
        "git runs commands from it (core.fsmonitor on every git status, core.hooksPath, `!` aliases, filters)",
    ),
    (
        Base::Config,
        "git/config",
        P,
        "git runs commands from it (core.fsmonitor on every git status, core.hooksPath, `!` aliases, filters)",
    ),
    // The Cargo Book, "Configuration": build.rustc-wrapper,
    // target.*.runner and `[alias]` run programs on every cargo build.
    (Base::Home, ".cargo/config.toml", P, "cargo runs build.rustc-wrapper and target runners from it on every build"),
    (Base::Home, ".cargo/config", P, "cargo runs build.rustc-wrapper and target runners from it on every build"),
    // `go help environment`: `go env -w` writes os.UserConfigDir()/go/env;
    // GOFLAGS=-toolexec=PROG runs PROG for every compile.
    (Base::Config, "go/env", P, "go reads GOFLAGS from it (-toolexec runs a program for every build)"),
    // The Python docs of `site`: lines of .pth files in the user
    // site-packages (~/.local/lib/pythonX.Y/site-packages) that start with
    // `import` run at every start, and so does usercustomize.py.
    (Base::Home, ".local/lib", P, "Python's user site-packages: .pth files and usercustomize.py run in every python"),
    // yarnrc: `yarnPath` (yarn 2+) and `yarn-path` (yarn 1) name the
    // script yarn runs instead of itself.
    (Base::Home, ".yarnrc.yml", P, "yarn runs the script named by yarnPath instead of itself"),
    (Base::Home, ".yarnrc", P, "yarn 1 runs the script named by yarn-path instead of itself"),
    // bunfig.toml: `preload` scripts run before `bun run`.
    (Base::Home, ".bunfig.toml", P, "bun runs its preload scripts"),
    // psql(1) FILES: ~/.psqlrc runs at start (\! runs a shell command).
    (Base::Home, ".psqlrc", P, "psql runs it at start (\\! runs shell commands)"),
    // gdb manual "Initialization Files": shell and python commands.
    (Base::Home, ".gdbinit", P, "gdb runs it at start (shell and python commands)"),
    // irb runs ~/.irbrc as Ruby.
    (Base::Home, ".irbrc", P, "irb runs it as Ruby at start"),
    // tmux(1) CONFIGURATION FILES: run-shell and if-shell run commands.
    (Base::Home, ".tmux.conf", P, "tmux runs its run-shell and if-shell commands at start"),
    (Base::Config, "tmux", P, "tmux runs its run-shell and if-shell commands at start"),
    // direnv-stdlib(1): direnvrc and lib/*.sh are sourced for every
    // .envrc; direnv.toml(1) `[whitelist]` trusts directories; the allow
    // list says which .envrc files run without asking.
    (Base::Config, "direnv", P, "direnv sources direnvrc and lib/ for every .envrc, and direnv.toml can trust any directory"),
    (
        Base::Home,
        ".local/share/direnv/allow",
        P,
        "direnv's list of allowed .envrc files: an entry makes direnv run one without asking",
    ),
    // ---- persistence: editors
    // vim :help vimrc, 'runtimepath' (plugin/ and autoload/ run at start).
    (Base::Home, ".vimrc", P, "vim runs it at start"),
    (Base::Home, ".gvimrc", P, "gvim runs it at start"),
    (Base::Home, ".exrc", P, "vi and vim run it at start"),
    (Base::Home, ".vim", P, "vim runs its plugin/ and autoload/ scripts"),
    // nvim :help init, :help packpath (site/pack/*/start), and plugin
    // managers' checkouts and LSP servers under ~/.local/share/nvim.
    (Base::Config, "nvim", P, "neovim runs init.lua/init.vim and plugin/ at start"),
    (Base::Home, ".local/share/nvim", P, "neovim loads the packages here and starts the language servers installed here"),
    // The Emacs manual, "The Emacs Initialization File".
    (Base::Home, ".emacs", P, "emacs runs it at start"),
    (Base::Home, ".emacs.el", P, "emacs runs it at start"),
    (Base::Home, ".emacs.d", P, "emacs runs init.el and its packages at start"),
    (Base::Config, "emacs", P, "emacs runs init.el and its packages at start"),
    // VS Code: extensions are code its extension host runs; user
    // settings set the terminal's shell and environment; user tasks can
    // run on folder open.
    (Base::Home, ".vscode/extensions", P, "VS Code runs the extensions installed here"),
    (Base::Home, ".vscode-server", P, "VS Code's remote server: its own code and extensions run from here"),
    (Base::Home, ".cursor/extensions", P, "Cursor runs the extensions installed here"),
    (Base::Config, "Code/User/settings.json", P, "VS Code starts the terminal shell and environment set here"),
    (Base::Config, "Code/User/tasks.json", P, "VS Code runs user tasks, some when a folder opens"),
    // ---- persistence: agents
    // Claude Code settings and hooks docs: hooks, statusLine and
    // apiKeyHelper are shell commands it runs.
    (Base::Home, ".claude/settings.json", P, "Claude Code runs the shell commands of its hooks, statusLine and apiKeyHelper"),
    (
        Base::Home,
        ".claude/settings.local.json",
        P,
        "Claude Code runs the shell commands of its hooks, statusLine and apiKeyHelper",
    ),
    // Codex docs/config.md: mcp_servers.*.command and `notify`.
    (Base::Home, ".codex/config.toml", P, "Codex starts the MCP servers and the notify program configured here"),
    // Gemini CLI docs: mcpServers commands.
    (Base::Home, ".gemini/settings.json", P, "Gemini CLI starts the MCP servers configured here"),
    // nono itself: a profile the command can rewrite widens its next sandbox.
    (Base::Config, "nono", P, "nono's profiles: writing them widens the next sandbox"),
];

/// Sockets that give power outside the sandbox to whoever connects. They
/// are sensitive for `network.unix_connect` only: Landlock's filesystem
/// rights do not govern connecting to a socket (that is the broker's job),
/// so they do not stop a directory that holds them from being granted.
pub(super) const SOCKETS: &[(Base, &str, &str)] = &[
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

/// Why a directory named on `$PATH` is on the list.
pub(super) const PATH_WHY: &str = "a directory on $PATH: a program here shadows a system command";
