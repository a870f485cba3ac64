//! Name globs of brokered rules and rollback exclusions: `*` any run of
//! bytes, `?` one byte, everything else literal, matched against one
//! directory entry (no `/`, so nothing crosses a directory). The one
//! matcher both the broker and snapshots use, so a name means the same to
//! both.

/// Whether `name` matches `pattern`, byte for byte. A `*` in the pattern
/// is always a wildcard (never matched as a literal `*` of the name first).
#[must_use]
pub fn name_glob(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == name[n]) && pattern[p] != b'*' {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            mark = n;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            n = mark;
        } else {
            return false;
        }
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_one_name_and_a_star_is_always_a_wildcard() {
        assert!(name_glob(b".claude.json.tmp.*", b".claude.json.tmp.4242.1732912345678"));
        assert!(name_glob(b".claude.json", b".claude.json"));
        assert!(!name_glob(b".claude.json", b".claude.json.lock"));
        assert!(name_glob(b"*.lock", b".claude.json.lock"));
        assert!(name_glob(b"a?c", b"abc"));
        assert!(!name_glob(b"a?c", b"ac"));
        assert!(!name_glob(b".claude.json.tmp.*", b".bashrc"));
        assert!(name_glob(b"*", b""));
        // A `*` in the name is a byte like any other.
        assert!(name_glob(b"*", b"*x"));
    }
}
