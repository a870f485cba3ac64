//! Loading a profile by name or path, resolving its `extends` chain
//! (parents first, cycle detection, depth limit) and expanding path
//! variables into absolute grants.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use super::rights::FsRight;
use super::{
    BrokerOp, MAX_EXTENDS_DEPTH, MAX_PROFILE_BYTES, MetadataPolicy, Network, Profile, ProfileError, SandboxPolicy, Security, Udp,
    builtin, dir_of,
};

/// The values behind the path variables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vars {
    pub home: PathBuf,
    pub cwd: PathBuf,
    pub tmpdir: PathBuf,
    pub xdg_config_home: PathBuf,
    pub xdg_cache_home: PathBuf,
}

impl Vars {
    /// From this process's environment and `cwd`.
    #[must_use]
    pub fn from_env(cwd: PathBuf) -> Vars {
        let abs = |v: &str| std::env::var_os(v).map(PathBuf::from).filter(|p| p.is_absolute());
        let home = abs("HOME").unwrap_or_else(|| PathBuf::from("/"));
        Vars {
            cwd,
            tmpdir: abs("TMPDIR").unwrap_or_else(|| PathBuf::from("/tmp")),
            xdg_config_home: abs("XDG_CONFIG_HOME").unwrap_or_else(|| home.join(".config")),
            xdg_cache_home: abs("XDG_CACHE_HOME").unwrap_or_else(|| home.join(".cache")),
            home,
        }
    }

    fn lookup(&self, name: &str) -> Option<&Path> {
        Some(match name {
            "HOME" => &self.home,
            "CWD" => &self.cwd,
            "TMPDIR" => &self.tmpdir,
            "XDG_CONFIG_HOME" => &self.xdg_config_home,
            "XDG_CACHE_HOME" => &self.xdg_cache_home,
            _ => return None,
        })
    }

    /// Expands a leading `$VAR` or `~`, then checks the result is absolute
    /// and free of `..`.
    pub fn expand(&self, spelled: &str, profile: &str) -> Result<PathBuf, ProfileError> {
        let bad =
            |why: &str| ProfileError::BadPath { profile: profile.to_owned(), path: spelled.to_owned(), why: why.to_owned() };
        if spelled.is_empty() {
            return Err(bad("empty path"));
        }
        if spelled.contains('\0') {
            return Err(bad("contains a NUL byte"));
        }
        let path = if let Some(rest) = spelled.strip_prefix('$') {
            let (name, tail) = rest.split_once('/').map_or((rest, ""), |(n, t)| (n, t));
            let name = name.trim_start_matches('{').trim_end_matches('}');
            let base = self.lookup(name).ok_or_else(|| {
                bad(&format!("unknown variable ${name}; known: $HOME, $CWD, $TMPDIR, $XDG_CONFIG_HOME, $XDG_CACHE_HOME"))
            })?;
            if tail.is_empty() { base.to_path_buf() } else { base.join(tail) }
        } else if spelled == "~" {
            self.home.clone()
        } else if let Some(tail) = spelled.strip_prefix("~/") {
            self.home.join(tail)
        } else {
            PathBuf::from(spelled)
        };
        if !path.is_absolute() {
            return Err(bad("not absolute (start it with /, ~ or a $VARIABLE)"));
        }
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(bad("contains `..`"));
        }
        Ok(path)
    }
}

/// One absolute grant, with where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub path: PathBuf,
    pub rights: BTreeSet<FsRight>,
    pub file: bool,
    /// The path as the profile spells it.
    pub spelled: String,
    /// The profile (name or file) that grants it.
    pub origin: String,
}

/// A brokered rule with its directory expanded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Brokered {
    pub dir: PathBuf,
    pub names: Vec<String>,
    pub ops: BTreeSet<BrokerOp>,
    /// The directory as the profile spells it.
    pub spelled: String,
    pub origin: String,
}

/// A profile with its `extends` chain folded in and variables expanded.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The top profile, as written.
    pub profile: Profile,
    /// Profiles folded in, parents first, the top one last.
    pub chain: Vec<String>,
    pub grants: Vec<Grant>,
    pub network: Network,
    /// `network.unix_connect` with variables expanded (`None`: absent).
    pub unix_connect: Option<Vec<PathBuf>>,
    pub brokered: Vec<Brokered>,
    pub metadata: MetadataPolicy,
    pub sandbox: SandboxPolicy,
    pub security: Security,
}

impl Resolved {
    /// Adds a grant given on the command line (`--allow`, `--read`, `--write`).
    pub fn add_cli(&mut self, spelled: &str, rights: BTreeSet<FsRight>, vars: &Vars) -> Result<(), ProfileError> {
        let path = vars.expand(spelled, "command line")?;
        let path = if path.exists() { path.canonicalize().unwrap_or(path) } else { path };
        let file = path.is_file();
        let rights = if file { rights.into_iter().filter(|r| r.applies_to_file()).collect() } else { rights };
        self.grants.push(Grant { path, rights, file, spelled: spelled.to_owned(), origin: "command line".to_owned() });
        Ok(())
    }
}

/// Loads a built-in name or a profile file and resolves it.
pub fn load(spec: &str, vars: &Vars) -> Result<Resolved, ProfileError> {
    let mut stack = Vec::new();
    let (profile, origin, dir) = read_spec(spec, None)?;
    resolve_inner(profile, &origin, dir.as_deref(), vars, &mut stack)
}

/// Resolves profile text (tests, stdin).
pub fn load_str(text: &str, origin: &str, vars: &Vars) -> Result<Resolved, ProfileError> {
    let profile = Profile::parse(text, origin)?;
    resolve(profile, origin, vars)
}

/// Resolves an already parsed profile.
pub fn resolve(profile: Profile, origin: &str, vars: &Vars) -> Result<Resolved, ProfileError> {
    let mut stack = Vec::new();
    resolve_inner(profile, origin, None, vars, &mut stack)
}

/// Reads a spec: a path (has a `/` or ends in `.json`) relative to `base`,
/// or a built-in name. Returns the profile, its identity, and its directory.
fn read_spec(spec: &str, base: Option<&Path>) -> Result<(Profile, String, Option<PathBuf>), ProfileError> {
    if spec.contains('/') || spec.ends_with(".json") {
        let p = Path::new(spec);
        let path = match base {
            Some(b) if p.is_relative() => b.join(p),
            _ => p.to_path_buf(),
        };
        let shown = path.display().to_string();
        let read_err = |source| ProfileError::Read { path: shown.clone(), source };
        let meta = std::fs::metadata(&path).map_err(read_err)?;
        if meta.len() > MAX_PROFILE_BYTES {
            return Err(ProfileError::TooLarge { path: shown, size: meta.len() });
        }
        let text = std::fs::read_to_string(&path).map_err(|source| ProfileError::Read { path: shown.clone(), source })?;
        let profile = Profile::parse(&text, &shown)?;
        let id = path.canonicalize().unwrap_or(path.clone()).display().to_string();
        return Ok((profile, id, Some(dir_of(&path))));
    }
    let text = builtin(spec)?;
    let origin = format!("builtin:{spec}");
    Ok((Profile::parse(text, &origin)?, origin, None))
}

fn resolve_inner(
    profile: Profile,
    origin: &str,
    dir: Option<&Path>,
    vars: &Vars,
    stack: &mut Vec<String>,
) -> Result<Resolved, ProfileError> {
    if stack.iter().any(|s| s == origin) {
        let mut chain = stack.clone();
        chain.push(origin.to_owned());
        return Err(ProfileError::Cycle(chain.join(" -> ")));
    }
    if stack.len() >= MAX_EXTENDS_DEPTH {
        let mut chain = stack.clone();
        chain.push(origin.to_owned());
        return Err(ProfileError::TooDeep(chain.join(" -> ")));
    }
    stack.push(origin.to_owned());
    let mut out = Resolved {
        profile: profile.clone(),
        chain: Vec::new(),
        grants: Vec::new(),
        network: Network::default(),
        unix_connect: None,
        brokered: Vec::new(),
        metadata: MetadataPolicy::None,
        sandbox: SandboxPolicy::default(),
        security: Security::default(),
    };
    let mut metadata_set = false;
    for parent in profile.extends.names() {
        let (p, id, pdir) = read_spec(&parent, dir)?;
        let r = resolve_inner(p, &id, pdir.as_deref(), vars, stack)?;
        out.chain.extend(r.chain);
        out.grants.extend(r.grants);
        out.network = merge_network(&out.network, &r.network);
        out.unix_connect = merge_paths(out.unix_connect.take(), r.unix_connect);
        out.brokered.extend(r.brokered);
        out.metadata = widest(out.metadata, r.metadata);
        metadata_set = true;
        out.sandbox = out.sandbox.merge(&r.sandbox);
        if r.security != Security::default() {
            out.security = r.security;
        }
    }
    stack.pop();
    for (spelled, rights, file) in profile.fs_grants() {
        if rights.is_empty() {
            return Err(ProfileError::Invalid {
                profile: origin.to_owned(),
                message: format!("rule for {spelled:?} grants no right"),
            });
        }
        if file && rights.iter().any(|r| !r.applies_to_file()) {
            return Err(ProfileError::Invalid {
                profile: origin.to_owned(),
                message: format!(
                    "file rule for {spelled:?} lists directory-only rights; a file can only get: {}",
                    FsRight::FILE_RIGHTS.map(FsRight::name).join(", ")
                ),
            });
        }
        let path = vars.expand(&spelled, origin)?;
        out.grants.push(Grant { path, rights, file, spelled, origin: origin.to_owned() });
    }
    validate_network(&profile.network, origin)?;
    out.network = merge_network(&out.network, &profile.network);
    if let Some(paths) = &profile.network.unix_connect {
        let expanded = paths.iter().map(|p| vars.expand(p, origin)).collect::<Result<Vec<_>, _>>()?;
        out.unix_connect = merge_paths(out.unix_connect.take(), Some(expanded));
    }
    for b in &profile.filesystem.brokered {
        validate_brokered(b, origin)?;
        out.brokered.push(Brokered {
            dir: vars.expand(&b.dir, origin)?,
            names: b.names.clone(),
            ops: b.ops.clone(),
            spelled: b.dir.clone(),
            origin: origin.to_owned(),
        });
    }
    // The top profile's own policy counts like a parent's: the widest wins.
    out.metadata = if metadata_set { widest(out.metadata, profile.filesystem.metadata) } else { profile.filesystem.metadata };
    out.sandbox = out.sandbox.merge(&profile.sandbox);
    if profile.security != Security::default() {
        out.security = profile.security.clone();
    }
    out.chain.push(origin.to_owned());
    Ok(out)
}

/// Parent then child: `block` if either blocks; a port list present on
/// either side restricts, and two lists add up. The closed-unless-listed
/// parts (UDP, ICMP, Unix connects, families) add up.
fn merge_network(a: &Network, b: &Network) -> Network {
    fn union<T: Ord + Clone>(x: &Option<BTreeSet<T>>, y: &Option<BTreeSet<T>>) -> Option<BTreeSet<T>> {
        match (x, y) {
            (None, None) => None,
            (Some(s), None) | (None, Some(s)) => Some(s.clone()),
            (Some(s), Some(t)) => Some(s.union(t).cloned().collect()),
        }
    }
    let udp = match (&a.udp, &b.udp) {
        (None, None) => None,
        (Some(u), None) | (None, Some(u)) => Some(u.clone()),
        (Some(u), Some(v)) => Some(Udp { dns: u.dns || v.dns, to: u.to.union(&v.to).copied().collect() }),
    };
    let unix_connect = match (&a.unix_connect, &b.unix_connect) {
        (None, None) => None,
        (Some(u), None) | (None, Some(u)) => Some(u.clone()),
        (Some(u), Some(v)) => Some(u.iter().chain(v).cloned().collect::<BTreeSet<_>>().into_iter().collect()),
    };
    Network {
        block: a.block || b.block,
        open_port: union(&a.open_port, &b.open_port),
        listen_port: union(&a.listen_port, &b.listen_port),
        udp,
        icmp: union(&a.icmp, &b.icmp),
        unix_connect,
        families: a.families.iter().chain(&b.families).cloned().collect::<BTreeSet<_>>().into_iter().collect(),
    }
}

fn merge_paths(a: Option<Vec<PathBuf>>, b: Option<Vec<PathBuf>>) -> Option<Vec<PathBuf>> {
    match (a, b) {
        (None, None) => None,
        (Some(v), None) | (None, Some(v)) => Some(v),
        (Some(mut v), Some(w)) => {
            for p in w {
                if !v.contains(&p) {
                    v.push(p);
                }
            }
            Some(v)
        }
    }
}

/// The more permissive of two metadata policies (grants add up).
fn widest(a: MetadataPolicy, b: MetadataPolicy) -> MetadataPolicy {
    let rank = |m: MetadataPolicy| match m {
        MetadataPolicy::None => 0,
        MetadataPolicy::WriteGrants => 1,
        MetadataPolicy::Any => 2,
    };
    if rank(b) > rank(a) { b } else { a }
}

fn validate_network(n: &Network, origin: &str) -> Result<(), ProfileError> {
    for f in &n.families {
        if !crate::event::SOCKET_FAMILIES.iter().any(|(name, _)| name == f) {
            return Err(ProfileError::Invalid {
                profile: origin.to_owned(),
                message: format!(
                    "network.families: unknown socket family {f:?}; known: {} (unix, inet and inet6 need no entry)",
                    crate::event::SOCKET_FAMILIES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                ),
            });
        }
    }
    Ok(())
}

fn validate_brokered(b: &super::BrokeredRule, origin: &str) -> Result<(), ProfileError> {
    let bad = |message: String| ProfileError::Invalid { profile: origin.to_owned(), message };
    if b.names.is_empty() {
        return Err(bad(format!("filesystem.brokered rule for {:?} lists no names", b.dir)));
    }
    if b.ops.is_empty() {
        return Err(bad(format!("filesystem.brokered rule for {:?} lists no ops", b.dir)));
    }
    for n in &b.names {
        if n.is_empty() || n.contains('/') || n == "." || n == ".." || n.contains('\0') {
            return Err(bad(format!(
                "filesystem.brokered name {n:?} in {:?}: a name is one directory entry (globs `*` and `?`, no `/`)",
                b.dir
            )));
        }
        if n.chars().all(|c| c == '*' || c == '?') {
            return Err(bad(format!(
                "filesystem.brokered name {n:?} in {:?} matches every entry; name the file (e.g. `.app.json.tmp.*`)",
                b.dir
            )));
        }
    }
    Ok(())
}
