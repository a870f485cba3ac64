//! Exclusions: trees a snapshot leaves out (dependency and build caches
//! that are large and can be regenerated). Every excluded path found is
//! recorded in the manifest and reported, at snapshot time and again by
//! `diff` and `restore`: an excluded tree is never taken for restored.
//!
//! Patterns, a subset of gitignore's: a trailing `/` matches directories
//! only; a pattern with another `/` is a glob on the path relative to the
//! grant (`data/raw`, `**/*.tmp`; a leading `/` is dropped); any other is a
//! glob on one name, at any depth (`node_modules`, `*.log`). `*` and `?`
//! never cross a `/`, `**` does.

use globset::{Glob, GlobBuilder, GlobMatcher};

use super::SnapshotError;

/// Left out unless `default_excludes` is false: trees package managers and
/// build tools regenerate (`npm install`, `cargo build`, `python -m venv`).
pub const DEFAULT_EXCLUDES: &[&str] = &[
    "node_modules/",
    "target/",
    ".venv/",
    "venv/",
    "__pycache__/",
    ".tox/",
    ".nox/",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".gradle/",
    ".next/",
    ".turbo/",
    ".parcel-cache/",
];

#[derive(Clone, Debug)]
struct Pattern {
    text: String,
    dir_only: bool,
    /// Matches the relative path (else the last name).
    anchored: bool,
    glob: GlobMatcher,
}

/// A set of exclusion patterns.
#[derive(Clone, Debug, Default)]
pub struct Excludes {
    patterns: Vec<Pattern>,
}

impl Excludes {
    /// The user's patterns, after the defaults when `defaults` is set.
    pub fn new(user: &[String], defaults: bool) -> Result<Excludes, SnapshotError> {
        let mut texts: Vec<String> =
            if defaults { DEFAULT_EXCLUDES.iter().map(|s| (*s).to_owned()).collect() } else { Vec::new() };
        for u in user {
            if !texts.contains(u) {
                texts.push(u.clone());
            }
        }
        Excludes::from_patterns(&texts)
    }

    /// Exactly these patterns (as a manifest records them).
    pub fn from_patterns(texts: &[String]) -> Result<Excludes, SnapshotError> {
        let mut patterns = Vec::new();
        for text in texts {
            patterns.push(parse(text)?);
        }
        Ok(Excludes { patterns })
    }

    /// The patterns, as written (for the manifest and messages).
    #[must_use]
    pub fn patterns(&self) -> Vec<String> {
        self.patterns.iter().map(|p| p.text.clone()).collect()
    }

    /// The pattern that excludes the entry `name` at `rel` (relative to
    /// its root), if any.
    #[must_use]
    pub fn matches(&self, rel: &[u8], name: &[u8], is_dir: bool) -> Option<&str> {
        use std::os::unix::ffi::OsStrExt as _;
        let rel = std::path::Path::new(std::ffi::OsStr::from_bytes(rel));
        let name = std::path::Path::new(std::ffi::OsStr::from_bytes(name));
        self.patterns
            .iter()
            .find(|p| (is_dir || !p.dir_only) && p.glob.is_match(if p.anchored { rel } else { name }))
            .map(|p| p.text.as_str())
    }
}

fn parse(text: &str) -> Result<Pattern, SnapshotError> {
    let bad = |why: &str| SnapshotError::BadPattern { pattern: text.to_owned(), why: why.to_owned() };
    let body = text.strip_suffix('/').unwrap_or(text);
    let dir_only = body.len() != text.len();
    let body = body.strip_prefix('/').unwrap_or(body);
    if body.is_empty() {
        return Err(bad("empty pattern"));
    }
    if body.split('/').any(|c| c == ".." || c == "." || c.is_empty()) {
        return Err(bad("`.`, `..` and empty components are not allowed"));
    }
    let anchored = body.contains('/');
    let glob: Glob =
        GlobBuilder::new(body).literal_separator(true).backslash_escape(true).build().map_err(|e| bad(&e.to_string()))?;
    Ok(Pattern { text: text.to_owned(), dir_only, anchored, glob: glob.compile_matcher() })
}

/// Exclusion names match as brokered names do.
pub use crate::profile::name_glob;
