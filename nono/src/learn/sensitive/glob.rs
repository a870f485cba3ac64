//! Name globs as brokered rules spell them (`*` any run of bytes, `?` one
//! byte, everything else literal; one directory entry, no `/`), and the
//! question the sensitive check asks of them: can this glob match that
//! name, or any name another glob matches?

/// Whether `pattern` matches `name`.
#[must_use]
pub fn glob_matches(pattern: &[u8], name: &[u8]) -> bool {
    glob_intersects(pattern, name)
}

/// Whether some name matches both globs (a literal name is a glob without
/// wildcards). A product of the two patterns' automata, explored from the
/// start: a state is a position in each, `*` may be skipped or consume a
/// byte, `?` consumes any byte, a literal consumes itself.
#[must_use]
pub fn glob_intersects(left: &[u8], right: &[u8]) -> bool {
    let width = right.len() + 1;
    let mut seen = vec![false; (left.len() + 1) * width];
    // A state: how much of each glob is consumed.
    let mut stack = vec![(0usize, 0usize)];
    while let Some((at_l, at_r)) = stack.pop() {
        let slot = at_l * width + at_r;
        if seen[slot] {
            continue;
        }
        seen[slot] = true;
        let (rest_l, rest_r) = (&left[at_l..], &right[at_r..]);
        if rest_l.is_empty() && rest_r.is_empty() {
            return true;
        }
        // Skipping a star consumes nothing.
        if rest_l.first() == Some(&b'*') {
            stack.push((at_l + 1, at_r));
        }
        if rest_r.first() == Some(&b'*') {
            stack.push((at_l, at_r + 1));
        }
        // Both consume one byte: is there a byte both accept? (When one side
        // is exhausted, only the other's trailing stars remain, pushed above.)
        let (Some(&cl), Some(&cr)) = (rest_l.first(), rest_r.first()) else { continue };
        let wild = |c: u8| c == b'*' || c == b'?';
        if !(wild(cl) || wild(cr) || cl == cr) {
            continue;
        }
        // A star stays where it is after consuming a byte.
        let next = (if cl == b'*' { at_l } else { at_l + 1 }, if cr == b'*' { at_r } else { at_r + 1 });
        if next != (at_l, at_r) {
            stack.push(next);
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_glob_matches_one_name() {
        assert!(glob_matches(b".claude.json.tmp.*", b".claude.json.tmp.4242.1732912345678"));
        assert!(glob_matches(b".b?shrc", b".bashrc"));
        assert!(glob_matches(b"*", b""));
        assert!(glob_matches(b"*rc", b".bashrc"));
        assert!(!glob_matches(b".claude.json", b".claude.json.lock"));
        assert!(!glob_matches(b"a?c", b"ac"));
        assert!(!glob_matches(b".claude.json.tmp.*", b".bashrc"));
    }

    #[test]
    fn two_globs_intersect_when_one_name_matches_both() {
        // The companions of `.ssh` (`.ssh.bak`, ...) against a hand-written rule.
        assert!(glob_intersects(b".ssh.*", b".ssh.*"));
        assert!(glob_intersects(b".ssh*", b".ssh"));
        assert!(glob_intersects(b"*.json", b".claude.*"));
        assert!(glob_intersects(b"?b*", b"*bashrc"));
        assert!(glob_intersects(b".gitconfig.*", b".gitconfig.lock"));
        assert!(!glob_intersects(b".claude.json.tmp.*", b".bashrc.*"));
        assert!(!glob_intersects(b".claude.json.tmp.*", b".bashrc"));
        assert!(!glob_intersects(b"a*b", b"c*"));
        assert!(!glob_intersects(b"??", b"?"));
        assert!(glob_intersects(b"*", b"anything.at.all"));
    }
}
