//! Loading a profile by name or path, resolving its `extends` graph and
//! expanding path variables into absolute grants.
//!
//! A name is looked up as: a path (it has a `/` or ends in `.json`), then
//! the user's profiles directory (`$XDG_CONFIG_HOME/nono/profiles/NAME.json`,
//! where `nono learn` writes), then the built-ins. The same holds for
//! `extends` entries (relative paths are relative to the profile).
//!
//! Hostile input cannot hang or exhaust nono: only regular files are read
//! (checked before opening, so a FIFO or device is never opened, and again
//! on the opened descriptor, which is opened `O_NONBLOCK`), reads are
//! bounded to [`MAX_PROFILE_BYTES`] (per file and for the whole graph), each file of the `extends` graph is
//! read and folded in once however many profiles extend it (a diamond
//! fan-out stays linear), at most [`MAX_EXTENDS_FILES`] distinct files are
//! read, and cycles and chains deeper than [`MAX_EXTENDS_DEPTH`] are errors.

use std::collections::{BTreeSet, HashSet};
use std::io::Read as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Component, Path, PathBuf};

use super::rights::FsRight;
use super::{
    BrokerOp, MAX_EXTENDS_DEPTH, MAX_EXTENDS_FILES, MAX_PROFILE_BYTES, MetadataPolicy, Network, Profile, ProfileError,
    SandboxPolicy, Security, Udp, builtin, dir_of,
};

/// The values behind the path variables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vars {
    pub home: PathBuf,
    pub cwd: PathBuf,
    /// `nono run` and `wrap` replace it with the run's private temp dir.
    pub tmpdir: PathBuf,
    pub xdg_config_home: PathBuf,
    pub xdg_cache_home: PathBuf,
    /// `$TTY`: the command's own terminal (see [`own_terminal`]); `None`
    /// when it has none, and a rule on `$TTY` is then skipped.
    pub tty: Option<PathBuf>,
}

/// Every variable a profile path may start with.
pub const VARIABLES: &str = "$HOME, $CWD, $TMPDIR, $XDG_CONFIG_HOME, $XDG_CACHE_HOME, $TTY";

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
            tty: own_terminal(),
        }
    }

    /// For a command run as another user (`sudo`): their home and XDG
    /// defaults (nono's own `XDG_*` variables are root's), this process's
    /// `TMPDIR`.
    #[must_use]
    pub fn for_home(cwd: PathBuf, home: &Path) -> Vars {
        let tmpdir = std::env::var_os("TMPDIR").map(PathBuf::from).filter(|p| p.is_absolute());
        Vars {
            cwd,
            tmpdir: tmpdir.unwrap_or_else(|| PathBuf::from("/tmp")),
            xdg_config_home: home.join(".config"),
            xdg_cache_home: home.join(".cache"),
            home: home.to_path_buf(),
            tty: own_terminal(),
        }
    }

    /// Where the user's own profiles live (`nono learn` writes there).
    #[must_use]
    pub fn profiles_dir(&self) -> PathBuf {
        self.xdg_config_home.join("nono/profiles")
    }

    /// The value of a known variable (`Some(None)`: known, but without a
    /// value here, as `$TTY` without a terminal); `None` if unknown.
    #[expect(clippy::option_option, reason = "unknown variable, known without a value, known with one: three cases")]
    fn lookup(&self, name: &str) -> Option<Option<&Path>> {
        Some(Some(match name {
            "HOME" => &self.home,
            "CWD" => &self.cwd,
            "TMPDIR" => &self.tmpdir,
            "XDG_CONFIG_HOME" => &self.xdg_config_home,
            "XDG_CACHE_HOME" => &self.xdg_cache_home,
            "TTY" => return Some(self.tty.as_deref()),
            _ => return None,
        }))
    }

    /// Expands a leading `$VAR` or `~`, then checks the result is absolute
    /// and free of `..`. A variable without a value (`$TTY` when the
    /// command has no terminal) is an error here; see [`Vars::expand_opt`].
    pub fn expand(&self, spelled: &str, profile: &str) -> Result<PathBuf, ProfileError> {
        self.expand_opt(spelled, profile)?.ok_or_else(|| ProfileError::BadPath {
            profile: profile.to_owned(),
            path: spelled.to_owned(),
            why: "$TTY has no value: none of the command's stdin, stdout and stderr is a terminal".to_owned(),
        })
    }

    /// [`Vars::expand`], with `Ok(None)` for a path on a variable that has
    /// no value here (a rule on it is skipped, like a rule whose path does
    /// not exist).
    pub fn expand_opt(&self, spelled: &str, profile: &str) -> Result<Option<PathBuf>, ProfileError> {
        let bad =
            |why: &str| ProfileError::BadPath { profile: profile.to_owned(), path: spelled.to_owned(), why: why.to_owned() };
        if spelled.is_empty() {
            return Err(bad("empty path"));
        }
        if spelled.contains('\0') {
            return Err(bad("contains a NUL byte"));
        }
        // Paths are in the audit trail's text form: `\\` is a backslash
        // and `\xNN` a byte (a name that is not UTF-8 survives the trip).
        let literal = |text: &str| crate::event::unescape_path(text).map_err(|e| bad(&e.to_string()));
        let path = if let Some(rest) = spelled.strip_prefix('$') {
            let (name, tail) = rest.split_once('/').map_or((rest, ""), |(n, t)| (n, t));
            let name = name.trim_start_matches('{').trim_end_matches('}');
            let base = self.lookup(name).ok_or_else(|| bad(&format!("unknown variable ${name}; known: {VARIABLES}")))?;
            let Some(base) = base else {
                // Still check the rest, so a bad path fails everywhere.
                if !tail.is_empty() {
                    literal(tail)?;
                }
                return Ok(None);
            };
            if tail.is_empty() { base.to_path_buf() } else { base.join(literal(tail)?) }
        } else if spelled == "~" {
            self.home.clone()
        } else if let Some(tail) = spelled.strip_prefix("~/") {
            self.home.join(literal(tail)?)
        } else {
            literal(spelled)?
        };
        if path.as_os_str().as_encoded_bytes().contains(&0) {
            return Err(bad("contains a NUL byte (\\x00)"));
        }
        if !path.is_absolute() {
            return Err(bad("not absolute (start it with /, ~ or a $VARIABLE)"));
        }
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(bad("contains `..`"));
        }
        Ok(Some(path))
    }
}

/// The command's own terminal: the first of descriptors 0, 1 and 2 (which
/// the command inherits from nono) that is a terminal, by the path its
/// device has here (`/dev/pts/3`). `None` when none is, or when that path
/// does not lead to the same device (a terminal from another devpts
/// instance): then nothing is granted rather than the wrong device.
#[must_use]
pub fn own_terminal() -> Option<PathBuf> {
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
    for fd in 0..3 {
        // SAFETY: isatty only queries the descriptor.
        if unsafe { libc::isatty(fd) } != 1 {
            continue;
        }
        let Ok(path) = std::fs::read_link(format!("/proc/self/fd/{fd}")) else { continue };
        // SAFETY: fstat on a descriptor number into a local struct.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::fstat(fd, &raw mut st) } != 0 {
            continue;
        }
        let same = std::fs::metadata(&path).is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == st.st_rdev);
        if same && path.is_absolute() {
            return Some(path);
        }
    }
    None
}

/// Whether the controlling terminal (what `/dev/tty` opens) is `tty`, or
/// there is none. `nono run` grants `/dev/tty` only then: a command started
/// with its output redirected from an interactive shell must not reach,
/// through `/dev/tty`, the terminal it was not given. The controlling
/// terminal is `tty_nr` of `/proc/self/stat` (0: none); an open of
/// `/dev/tty` would not tell, since its descriptor keeps `/dev/tty`'s inode.
#[must_use]
pub fn controlling_terminal_is(tty: Option<&Path>) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let Some(tty_nr) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| s.rsplit_once(')')?.1.split_whitespace().nth(4)?.parse::<u64>().ok())
    else {
        return false;
    };
    if tty_nr == 0 {
        return true;
    }
    // Both use the kernel's `new_encode_dev` layout.
    tty.and_then(|t| std::fs::metadata(t).ok()).is_some_and(|m| m.rdev() == tty_nr)
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
    /// The last `rollback` section of the chain.
    pub rollback: Option<super::RollbackSettings>,
    /// Every profile file read (the top one and its `extends`), as
    /// located, absolute; built-ins are not files.
    pub files: Vec<PathBuf>,
    /// Rules left out because their variable has no value here (`$TTY`
    /// without a terminal), for people; built-ins' are not listed.
    pub skipped: Vec<String>,
}

impl Resolved {
    /// Adds a grant given on the command line (`--allow`, `--read`, `--write`).
    pub fn add_cli(&mut self, spelled: &str, rights: BTreeSet<FsRight>, vars: &Vars) -> Result<(), ProfileError> {
        // Taken literally: a backslash on the command line is a backslash.
        // A relative path (`.`, `src`, `../shared`) is relative to the
        // current directory, as the shell that typed it meant; profiles
        // stay absolute so they mean the same from anywhere.
        let relative = !spelled.is_empty() && !spelled.starts_with(['/', '~', '$']);
        let path = if relative {
            let joined = vars.cwd.join(spelled);
            match joined.canonicalize() {
                Ok(real) => real,
                // Not there (yet): joined as written, `..` still refused.
                Err(_) => vars.expand(&crate::event::escape_path(&joined), "command line")?,
            }
        } else {
            vars.expand(&crate::event::escape_bytes(spelled.as_bytes()), "command line")?
        };
        let path = if path.exists() { path.canonicalize().unwrap_or(path) } else { path };
        let file = path.is_file();
        let rights = if file { rights.into_iter().filter(|r| r.applies_to_file()).collect() } else { rights };
        self.grants.push(Grant { path, rights, file, spelled: spelled.to_owned(), origin: "command line".to_owned() });
        Ok(())
    }
}

/// Loads a profile by name or path (see the module doc) and resolves it.
pub fn load(spec: &str, vars: &Vars) -> Result<Resolved, ProfileError> {
    load_observed(spec, vars, &mut |_| {})
}

/// One profile of the `extends` graph, as [`load_observed`] reads it: for
/// a caller that must check the exact bytes used (signatures, `crate::trust`).
#[derive(Clone, Copy, Debug)]
pub enum Link<'a> {
    /// A file: as located (absolute), canonical, and its text as parsed.
    File {
        path: &'a Path,
        canonical: &'a str,
        text: &'a str,
    },
    Builtin(&'a str),
}

/// [`load`], telling `observe` about every profile of the graph as it is
/// read (each once, the top one first).
pub fn load_observed(spec: &str, vars: &Vars, observe: &mut dyn FnMut(Link<'_>)) -> Result<Resolved, ProfileError> {
    let mut loader = Loader::new(vars);
    loader.observer = Some(observe);
    loader.visit(spec, None, &mut Vec::new())?;
    loader.fold(vars)
}

/// Resolves profile text (tests, stdin).
pub fn load_str(text: &str, origin: &str, vars: &Vars) -> Result<Resolved, ProfileError> {
    let profile = Profile::parse(text, origin)?;
    resolve(profile, origin, vars)
}

/// Resolves an already parsed profile (its relative `extends` paths are
/// relative to the current directory).
pub fn resolve(profile: Profile, origin: &str, vars: &Vars) -> Result<Resolved, ProfileError> {
    let mut loader = Loader::new(vars);
    let mut stack = vec![origin.to_owned()];
    loader.seen.insert(origin.to_owned());
    for parent in profile.extends.names() {
        loader.visit(&parent, None, &mut stack)?;
    }
    loader.nodes.push(Node { id: origin.to_owned(), profile, file: None });
    loader.fold(vars)
}

/// Where a spec points.
enum Located {
    File { path: PathBuf, id: String },
    Builtin(String),
}

/// Finds `spec`: a path relative to `base` (or the current directory), a
/// profile in the user's directory, or a built-in.
fn locate(spec: &str, base: Option<&Path>, profiles_dir: &Path) -> Result<Located, ProfileError> {
    // `builtin:NAME` reaches a built-in even when a user profile shadows it.
    if let Some(name) = spec.strip_prefix("builtin:") {
        builtin(name)?;
        return Ok(Located::Builtin(name.to_owned()));
    }
    let file = |path: PathBuf| -> Result<Located, ProfileError> {
        // Absolute (without `.` components): it names the file in messages
        // and is what the writable-grant check compares.
        let path = std::path::absolute(&path).unwrap_or(path);
        let id = path
            .canonicalize()
            .map_err(|source| ProfileError::Read { path: path.display().to_string(), source })?
            .display()
            .to_string();
        Ok(Located::File { path, id })
    };
    if spec.contains('/') || Path::new(spec).extension().is_some_and(|e| e == "json") {
        let p = Path::new(spec);
        return file(match base {
            Some(b) if p.is_relative() => b.join(p),
            _ => p.to_path_buf(),
        });
    }
    if !spec.is_empty() && !spec.contains('\0') {
        let candidate = profiles_dir.join(format!("{spec}.json"));
        if std::fs::symlink_metadata(&candidate).is_ok() {
            return file(candidate);
        }
    }
    builtin(spec)?;
    Ok(Located::Builtin(spec.to_owned()))
}

/// Reads and parses one profile file (no `extends` resolution), with the
/// same limits as [`load`].
pub fn read_file(path: &Path) -> Result<Profile, ProfileError> {
    Profile::parse(&read_bounded(path)?, &path.display().to_string())
}

/// Reads a profile file: regular files only, at most `MAX_PROFILE_BYTES`.
fn read_bounded(path: &Path) -> Result<String, ProfileError> {
    let shown = path.display().to_string();
    let read_err = |source| ProfileError::Read { path: shown.clone(), source };
    let regular = |meta: &std::fs::Metadata| -> Result<(), ProfileError> {
        if meta.is_file() {
            return Ok(());
        }
        Err(ProfileError::NotRegular { path: shown.clone(), kind: file_kind(meta.file_type()) })
    };
    // Check before opening: opening a FIFO blocks and a device may act.
    regular(&std::fs::metadata(path).map_err(read_err)?)?;
    let f =
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(path).map_err(read_err)?;
    // And on what was opened: the path may have been swapped meanwhile.
    let meta = f.metadata().map_err(read_err)?;
    regular(&meta)?;
    if meta.len() > MAX_PROFILE_BYTES {
        return Err(ProfileError::TooLarge { path: shown, size: meta.len() });
    }
    let mut buf = Vec::new();
    f.take(MAX_PROFILE_BYTES + 1).read_to_end(&mut buf).map_err(read_err)?;
    if buf.len() as u64 > MAX_PROFILE_BYTES {
        return Err(ProfileError::TooLarge { path: shown, size: buf.len() as u64 });
    }
    String::from_utf8(buf).map_err(|e| read_err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}

fn file_kind(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

/// One profile of the `extends` graph.
struct Node {
    /// Canonical path, `builtin:NAME`, or the origin given to `resolve`.
    id: String,
    profile: Profile,
    file: Option<PathBuf>,
}

/// Walks the `extends` graph depth first, parents before children, each
/// file once.
struct Loader<'o> {
    profiles_dir: PathBuf,
    /// Post-order: every node after all of its parents.
    nodes: Vec<Node>,
    /// Every id read so far (finished or on the stack).
    seen: HashSet<String>,
    /// Bytes read from files so far (bounded like one file).
    bytes: u64,
    /// Told about each profile as it is read ([`load_observed`]).
    observer: Option<&'o mut dyn FnMut(Link<'_>)>,
}

impl Loader<'_> {
    fn new(vars: &Vars) -> Self {
        Loader { profiles_dir: vars.profiles_dir(), nodes: Vec::new(), seen: HashSet::new(), bytes: 0, observer: None }
    }

    fn visit(&mut self, spec: &str, base: Option<&Path>, stack: &mut Vec<String>) -> Result<(), ProfileError> {
        let located = locate(spec, base, &self.profiles_dir)?;
        let id = match &located {
            Located::File { id, .. } => id.clone(),
            Located::Builtin(name) => format!("builtin:{name}"),
        };
        let chain = |stack: &[String]| {
            let mut c = stack.to_vec();
            c.push(id.clone());
            c.join(" -> ")
        };
        if stack.contains(&id) {
            return Err(ProfileError::Cycle(chain(stack)));
        }
        if stack.len() >= MAX_EXTENDS_DEPTH {
            return Err(ProfileError::TooDeep(chain(stack)));
        }
        if self.seen.contains(&id) {
            // Already folded in (a diamond): once is enough.
            return Ok(());
        }
        if self.seen.len() >= MAX_EXTENDS_FILES {
            return Err(ProfileError::TooManyFiles(chain(stack)));
        }
        self.seen.insert(id.clone());
        let (profile, file, dir) = match located {
            Located::File { path, .. } => {
                let text = read_bounded(&path)?;
                self.bytes += text.len() as u64;
                if self.bytes > MAX_PROFILE_BYTES {
                    return Err(ProfileError::TooLarge { path: chain(stack), size: self.bytes });
                }
                if let Some(observe) = self.observer.as_mut() {
                    observe(Link::File { path: &path, canonical: &id, text: &text });
                }
                (Profile::parse(&text, &path.display().to_string())?, Some(path.clone()), Some(dir_of(&path)))
            }
            Located::Builtin(name) => {
                if let Some(observe) = self.observer.as_mut() {
                    observe(Link::Builtin(&name));
                }
                (Profile::parse(builtin(&name)?, &id)?, None, None)
            }
        };
        stack.push(id.clone());
        for parent in profile.extends.names() {
            self.visit(&parent, dir.as_deref(), stack)?;
        }
        stack.pop();
        self.nodes.push(Node { id, profile, file });
        Ok(())
    }

    /// Folds the graph, parents first: grants add up, the network and
    /// sandbox policies merge, the widest metadata policy wins, and the
    /// last non-default `security` section and the last `rollback` section win.
    fn fold(self, vars: &Vars) -> Result<Resolved, ProfileError> {
        let top = self.nodes.last().map(|n| n.profile.clone()).unwrap_or_default();
        let single = self.nodes.len() == 1;
        let mut out = Resolved {
            profile: top,
            chain: Vec::new(),
            grants: Vec::new(),
            network: Network::default(),
            unix_connect: None,
            brokered: Vec::new(),
            metadata: MetadataPolicy::None,
            sandbox: SandboxPolicy::default(),
            security: Security::default(),
            rollback: None,
            files: Vec::new(),
            skipped: Vec::new(),
        };
        for node in self.nodes {
            fold_one(&mut out, &node.profile, &node.id, vars, single)?;
            out.chain.push(node.id);
            out.files.extend(node.file);
        }
        Ok(out)
    }
}

/// Adds one profile's own content to `out`.
fn fold_one(out: &mut Resolved, profile: &Profile, origin: &str, vars: &Vars, single: bool) -> Result<(), ProfileError> {
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
        let Some(path) = vars.expand_opt(&spelled, origin)? else {
            if !origin.starts_with("builtin:") {
                out.skipped
                    .push(format!("{spelled} ({origin}): the command has no terminal (stdin, stdout and stderr are not one)"));
            }
            continue;
        };
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
    // Alone, a profile's metadata policy is its own; in a graph the
    // widest wins (grants add up).
    out.metadata = if single { profile.filesystem.metadata } else { widest(out.metadata, profile.filesystem.metadata) };
    out.sandbox = out.sandbox.merge(&profile.sandbox);
    if profile.security != Security::default() {
        out.security = profile.security.clone();
    }
    if let Some(r) = &profile.rollback {
        crate::snapshot::Excludes::new(&r.exclude, false)
            .map_err(|e| ProfileError::Invalid { profile: origin.to_owned(), message: format!("rollback.exclude: {e}") })?;
        out.rollback = Some(r.clone());
    }
    Ok(())
}

/// Parent then child: `block` if either blocks; a port list present on
/// either side restricts, and two lists add up. The closed-unless-listed
/// parts (UDP, ICMP, Unix connects, families) add up.
fn merge_network(a: &Network, b: &Network) -> Network {
    fn union<T: Ord + Clone>(x: Option<&BTreeSet<T>>, y: Option<&BTreeSet<T>>) -> Option<BTreeSet<T>> {
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
        open_port: union(a.open_port.as_ref(), b.open_port.as_ref()),
        listen_port: union(a.listen_port.as_ref(), b.listen_port.as_ref()),
        udp,
        icmp: union(a.icmp.as_ref(), b.icmp.as_ref()),
        unix_connect,
        families: a.families.iter().chain(&b.families).cloned().collect::<BTreeSet<_>>().into_iter().collect(),
        allow_domains: super::network::merge_domains(a.allow_domains.as_ref(), b.allow_domains.as_ref()),
        credentials: super::network::merge_credentials(&a.credentials, &b.credentials),
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
    super::network::validate(n.allow_domains.as_deref(), &n.credentials)
        .map_err(|message| ProfileError::Invalid { profile: origin.to_owned(), message })?;
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
