//! The learning context, normalised once: the roots that collapse
//! (system trees, workdir, tool caches, temp dirs), the variables rule
//! paths are spelled with, and the sensitive list. Shared by both stages
//! of synthesis (`synth` folds events, `generalise` builds rules).

use super::LearnContext;
use super::paths::{Vars, is_at_or_beneath, is_strictly_beneath, normalise_root};
use super::sensitive::SensitiveSet;

/// Read-only system trees: reads collapse to the root; writes stay exact.
const SYSTEM_TREES: &[&str] = &["/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin", "/etc", "/opt", "/nix/store"];

/// Tool caches and toolchains under `$HOME`, besides `$XDG_CACHE_HOME`.
const HOME_CACHES: &[&str] = &[
    ".cache",
    ".cargo",
    ".rustup",
    ".npm",
    ".yarn",
    ".pnpm-store",
    ".local/share/pnpm",
    ".bun",
    ".deno",
    ".nvm",
    ".pyenv",
    ".m2",
    ".gradle",
    ".ivy2",
    ".sbt",
    "go/pkg/mod",
    ".cabal",
    ".stack",
    ".ghcup",
    ".nuget/packages",
    ".gem",
    ".conan",
    ".elan",
    ".opam",
];

/// Temp dirs besides `$TMPDIR`.
const TEMP_DIRS: &[&str] = &["/tmp", "/var/tmp", "/dev/shm"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RootKind {
    System,
    Sys,
    Workdir,
    Cache,
    Temp,
}

#[derive(Clone, Debug)]
pub(crate) struct Root {
    pub path: String,
    pub kind: RootKind,
}

/// The context, normalised once: roots, variables, sensitive list.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub cwd: Option<String>,
    pub home: Option<String>,
    pub config: Option<String>,
    /// `$TMPDIR` (normalised).
    pub tmpdir: Option<String>,
    pub vars: Vars,
    /// Longest first, so the first match is the most specific.
    pub roots: Vec<Root>,
    pub sensitive: SensitiveSet,
}

impl Layout {
    pub(crate) fn new(ctx: &LearnContext) -> Layout {
        let cwd = normalise_root(&ctx.cwd);
        let home = normalise_root(&ctx.home);
        let tmpdir = normalise_root(&ctx.tmpdir);
        let cache = normalise_root(&ctx.xdg_cache_home);
        let config = normalise_root(&ctx.xdg_config_home);
        let mut roots: Vec<Root> = Vec::new();
        let mut push = |path: String, kind: RootKind| {
            // `/` as a root would collapse the whole filesystem.
            if path != "/" && !roots.iter().any(|r| r.path == path) {
                roots.push(Root { path, kind });
            }
        };
        if let Some(c) = &cwd {
            push(c.clone(), RootKind::Workdir);
        }
        for s in SYSTEM_TREES {
            push((*s).to_owned(), RootKind::System);
        }
        push("/sys".to_owned(), RootKind::Sys);
        if let Some(c) = &cache {
            push(c.clone(), RootKind::Cache);
        }
        if let Some(h) = &home {
            for rel in HOME_CACHES {
                push(format!("{h}/{rel}"), RootKind::Cache);
            }
        }
        if let Some(t) = &tmpdir {
            push(t.clone(), RootKind::Temp);
        }
        for t in TEMP_DIRS {
            push((*t).to_owned(), RootKind::Temp);
        }
        // Stable: on equal length the earlier (workdir first) wins.
        roots.sort_by_key(|r| std::cmp::Reverse(r.path.len()));
        let vars = Vars::new(cwd.as_deref(), tmpdir.as_deref(), cache.as_deref(), config.as_deref(), home.as_deref());
        Layout { cwd, home, config, tmpdir, vars, roots, sensitive: SensitiveSet::new(ctx) }
    }

    /// The most specific collapse root of `p`. A root that holds `$HOME`
    /// (a test or demo home under /tmp, a workdir above it) does not speak
    /// for paths inside `$HOME`: those are the user's, classified on their
    /// own (state directories, caches), never as "temp".
    pub(crate) fn root_for(&self, p: &str) -> Option<&Root> {
        let in_home = self.home.as_deref().filter(|h| is_at_or_beneath(p, h));
        self.roots.iter().find(|r| is_at_or_beneath(p, &r.path) && in_home.is_none_or(|h| !is_strictly_beneath(h, &r.path)))
    }

    /// The application state directory `p` lies in, if any: `~/.app`
    /// (a dot directory of `$HOME` that is not an XDG root),
    /// `$XDG_CONFIG_HOME/app`, `~/.local/share/app` or `~/.local/state/app`.
    pub(crate) fn state_dir(&self, p: &str) -> Option<String> {
        let within = |root: &str, depth: usize| -> Option<String> {
            if !is_at_or_beneath(p, root) || p.len() == root.len() {
                return None;
            }
            let rest = &p[root.len() + 1..];
            let mut parts = rest.split('/');
            let mut end = root.len();
            for _ in 0..depth {
                let c = parts.next().filter(|c| !c.is_empty())?;
                end += 1 + c.len();
            }
            Some(p[..end].to_owned())
        };
        if let Some(config) = &self.config
            && let Some(d) = within(config, 1)
        {
            return Some(d);
        }
        let home = self.home.as_deref()?;
        for xdg in ["/.local/share", "/.local/state"] {
            if let Some(d) = within(&format!("{home}{xdg}"), 1) {
                return Some(d);
            }
        }
        let d = within(home, 1)?;
        let name = &d[home.len() + 1..];
        let xdg_roots = [".config", ".local", ".cache"];
        (name.starts_with('.') && !xdg_roots.contains(&name)).then_some(d)
    }

    /// Whether accesses to `p` must keep pids and comms for a report.
    pub(crate) fn watch(&self, p: &str) -> bool {
        self.sensitive.inside(p).is_some() || self.sensitive.contained_in(p).is_some()
    }
}
