//! String helpers for the absolute, normalised paths the recorder emits
//! (`/a/b/c`, no trailing slash, no `.` or `..`), and the `$VAR` spelling
//! of rule paths. Paths stay `&str` here: events carry them as strings and
//! the learner must not touch the filesystem to canonicalise them.

use std::path::Path;

/// Parent of an absolute path; `None` for `/` and for non-absolute input.
pub(crate) fn parent(p: &str) -> Option<&str> {
    if p == "/" || !p.starts_with('/') {
        return None;
    }
    match p.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&p[..i]),
        None => None,
    }
}

/// Parent of a rule path that may start with a variable (`$CWD/src` ->
/// `$CWD`); `None` at a variable or at `/`.
pub(crate) fn rule_parent(p: &str) -> Option<&str> {
    if p.starts_with('/') {
        return parent(p);
    }
    p.rfind('/').map(|i| &p[..i])
}

/// `p` is `root` or lies beneath it, on a component boundary
/// (`/usr2` is not beneath `/usr`).
pub(crate) fn is_at_or_beneath(p: &str, root: &str) -> bool {
    if root == "/" {
        return p.starts_with('/');
    }
    p.starts_with(root) && (p.len() == root.len() || p.as_bytes()[root.len()] == b'/')
}

/// `p` lies beneath `root` and is not `root` itself.
pub(crate) fn is_strictly_beneath(p: &str, root: &str) -> bool {
    p.len() != root.len() && is_at_or_beneath(p, root)
}

/// The prefix of `path` one component deeper than `anchor`. `path` must be
/// strictly beneath `anchor`.
pub(crate) fn child_toward<'a>(anchor: &str, path: &'a str) -> &'a str {
    let start = if anchor == "/" { 1 } else { anchor.len() + 1 };
    match path.get(start..).and_then(|rest| rest.find('/')) {
        Some(i) => &path[..start + i],
        None => path,
    }
}

/// Components of an absolute path with the byte offset where each starts.
pub(crate) fn components(p: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut offset = 0;
    p.split('/').filter_map(move |name| {
        let start = offset;
        offset += name.len() + 1;
        (!name.is_empty()).then_some((start, name))
    })
}

/// A context path as the learner compares it: absolute, no trailing slash.
/// Relative or empty paths are unusable (they would match nothing or
/// everything) and yield `None`.
pub(crate) fn normalise_root(p: &Path) -> Option<String> {
    // The same escaped text as recorded paths, so they compare equal.
    let s = crate::event::escape_path(p);
    if !s.starts_with('/') {
        return None;
    }
    let trimmed = s.trim_end_matches('/');
    Some(if trimmed.is_empty() { "/".to_owned() } else { trimmed.to_owned() })
}

/// Rewrites absolute paths with the variables a profile understands.
#[derive(Clone, Debug, Default)]
pub(crate) struct Vars {
    /// Variable name and its value; earlier entries win ties.
    list: Vec<(&'static str, String)>,
}

impl Vars {
    /// Tie order matters only when two variables have the same value
    /// (for example `$CWD` = `$HOME`): the workdir is the more specific
    /// meaning for a learned rule.
    pub(crate) fn new(
        cwd: Option<&str>,
        tmpdir: Option<&str>,
        cache: Option<&str>,
        config: Option<&str>,
        home: Option<&str>,
    ) -> Vars {
        let list =
            [("$CWD", cwd), ("$TMPDIR", tmpdir), ("$XDG_CACHE_HOME", cache), ("$XDG_CONFIG_HOME", config), ("$HOME", home)]
                .into_iter()
                // `/` as a variable would rewrite every path; it says nothing.
                .filter_map(|(name, v)| v.filter(|v| *v != "/").map(|v| (name, v.to_owned())))
                .collect();
        Vars { list }
    }

    /// The variable whose value is the longest prefix of `p`, if any.
    pub(crate) fn best(&self, p: &str) -> Option<(&'static str, &str)> {
        let mut best: Option<(&'static str, &str)> = None;
        for (name, value) in &self.list {
            if is_at_or_beneath(p, value) && best.is_none_or(|(_, b)| value.len() > b.len()) {
                best = Some((name, value.as_str()));
            }
        }
        best
    }

    /// Byte length of the variable prefix of `p` (0 when none applies).
    pub(crate) fn prefix_len(&self, p: &str) -> usize {
        self.best(p).map_or(0, |(_, v)| v.len())
    }

    /// `p` with its longest variable prefix substituted.
    pub(crate) fn express(&self, p: &str) -> String {
        match self.best(p) {
            Some((name, value)) => format!("{name}{}", &p[value.len()..]),
            None => p.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_and_boundaries() {
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/"), None);
        assert_eq!(parent("pipe:[1]"), None);
        assert_eq!(rule_parent("$CWD/src"), Some("$CWD"));
        assert_eq!(rule_parent("$CWD"), None);
        assert!(is_at_or_beneath("/usr/lib", "/usr"));
        assert!(is_at_or_beneath("/usr", "/usr"));
        assert!(!is_at_or_beneath("/usr2", "/usr"));
        assert!(is_strictly_beneath("/a/b", "/"));
        assert!(!is_strictly_beneath("/a", "/a"));
        assert_eq!(child_toward("/", "/a/b/c"), "/a");
        assert_eq!(child_toward("/a", "/a/b/c"), "/a/b");
        assert_eq!(child_toward("/a/b", "/a/b/c"), "/a/b/c");
        let c: Vec<_> = components("/a/bc/d").collect();
        assert_eq!(c, vec![(1, "a"), (3, "bc"), (6, "d")]);
    }

    #[test]
    fn normalise_root_trims_and_rejects_relative() {
        assert_eq!(normalise_root(Path::new("/home/u/")).as_deref(), Some("/home/u"));
        assert_eq!(normalise_root(Path::new("/")).as_deref(), Some("/"));
        assert_eq!(normalise_root(Path::new("rel")), None);
        assert_eq!(normalise_root(Path::new("")), None);
    }
}
