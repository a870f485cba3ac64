//! OpenSSH's allowed-signers files (`man ssh-keygen`, ALLOWED SIGNERS) and
//! plain revocation lists, parsed and matched the way `ssh-keygen -Y
//! verify` does, with one difference: a malformed line is an error for the
//! whole file (with its line number), never skipped, so a typo cannot
//! silently drop or widen a rule.
//!
//! A line is `principals [options] keytype base64-key [comment]`:
//! - `principals`: comma-separated patterns (`*`, `?`, and `!` to exclude)
//!   matched against the signer's identity, optionally in double quotes;
//! - `options`, comma-separated, names case-insensitive:
//!   `cert-authority` (the key is a CA: it matches only signatures made
//!   with certificates it issued, which nono does not support, so such a
//!   line never matches), `namespaces="pattern,..."` (the signature's
//!   namespace must match), `valid-after="TIME"` and `valid-before="TIME"`
//!   (`YYYYMMDD[HHMM[SS]]`, local time, or UTC with a trailing `Z`); any
//!   other option is an error;
//! - lines that are empty or start with `#` are ignored.
//!
//! A revocation list (`ssh-keygen -Y verify -r`) is one public key per line
//! (`keytype base64 [comment]`, `#` comments); OpenSSH's binary KRLs are
//! refused with a message saying so.

use std::path::{Path, PathBuf};

use ssh_key::public::KeyData;

use super::TrustError;

/// One line of an allowed-signers file.
#[derive(Clone, Debug)]
pub struct Entry {
    /// 1-based line number.
    pub line: usize,
    /// The principals pattern list, as written (without quotes).
    pub principals: String,
    pub cert_authority: bool,
    /// The `namespaces` pattern list, if restricted.
    pub namespaces: Option<String>,
    /// Seconds since the Unix epoch.
    pub valid_after: Option<i64>,
    pub valid_before: Option<i64>,
    pub key: KeyData,
}

/// A parsed allowed-signers file.
#[derive(Clone, Debug)]
pub struct AllowedSigners {
    pub path: PathBuf,
    pub entries: Vec<Entry>,
}

/// Why no line allowed a signature, the most specific reason first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No line lists this key (for these principals).
    UnknownKey,
    /// Lines list the key, but not for a principal the policy accepts.
    Principal { principals: Vec<String> },
    /// The key is listed, but not for this namespace.
    Namespace { line: usize, allowed: String },
    /// The key is listed, but not yet valid.
    NotYetValid { line: usize, after: i64 },
    /// The key is listed, but has expired.
    Expired { line: usize, before: i64 },
}

impl Refusal {
    fn rank(&self) -> u8 {
        match self {
            Refusal::UnknownKey => 0,
            Refusal::Principal { .. } => 1,
            Refusal::Namespace { .. } => 2,
            Refusal::NotYetValid { .. } => 3,
            Refusal::Expired { .. } => 4,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let when = |t: i64| jiff::Timestamp::from_second(t).map_or_else(|_| t.to_string(), |t| t.to_string());
        match self {
            Refusal::UnknownKey => write!(f, "the signing key is not listed"),
            Refusal::Principal { principals } => {
                write!(f, "the signing key is listed only for {}, which the policy does not accept", principals.join("; "))
            }
            Refusal::Namespace { line, allowed } => {
                write!(f, "line {line} allows this key only for namespaces \"{allowed}\"")
            }
            Refusal::NotYetValid { line, after } => write!(f, "line {line}: the key is not valid before {}", when(*after)),
            Refusal::Expired { line, before } => write!(f, "line {line}: the key expired at {}", when(*before)),
        }
    }
}

/// Whether `s` matches one shell-style pattern (`*`, `?`), as OpenSSH's
/// `match_pattern` (case-sensitive).
#[must_use]
pub fn match_pattern(s: &str, pattern: &str) -> bool {
    let (s, p): (Vec<char>, Vec<char>) = (s.chars().collect(), pattern.chars().collect());
    // Iterative wildcard match with one backtrack point.
    let (mut i, mut j) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while i < s.len() {
        if j < p.len() && (p[j] == '?' || p[j] == s[i]) {
            i += 1;
            j += 1;
        } else if j < p.len() && p[j] == '*' {
            star = Some(j);
            mark = i;
            j += 1;
        } else if let Some(st) = star {
            j = st + 1;
            mark += 1;
            i = mark;
        } else {
            return false;
        }
    }
    while j < p.len() && p[j] == '*' {
        j += 1;
    }
    j == p.len()
}

/// Whether `s` matches a comma-separated pattern list, as OpenSSH's
/// `match_pattern_list`: a matching `!pattern` excludes it whatever else
/// matches; otherwise one positive match is needed.
#[must_use]
pub fn match_pattern_list(s: &str, list: &str) -> bool {
    let mut positive = false;
    for p in list.split(',') {
        if let Some(neg) = p.strip_prefix('!') {
            if match_pattern(s, neg) {
                return false;
            }
        } else if match_pattern(s, p) {
            positive = true;
        }
    }
    positive
}

/// Key type names a line's key may start with.
fn is_key_type(token: &str) -> bool {
    matches!(
        token,
        "ssh-ed25519"
            | "ssh-rsa"
            | "ssh-dss"
            | "ecdsa-sha2-nistp256"
            | "ecdsa-sha2-nistp384"
            | "ecdsa-sha2-nistp521"
            | "sk-ssh-ed25519@openssh.com"
            | "sk-ecdsa-sha2-nistp256@openssh.com"
    ) || token.ends_with("-cert-v01@openssh.com")
}

/// Splits off the next whitespace-delimited token, honouring double
/// quotes (OpenSSH's `strdelimw`); returns (token, rest).
fn next_token(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start_matches([' ', '\t']);
    if s.is_empty() {
        return None;
    }
    if let Some(q) = s.strip_prefix('"') {
        let end = q.find('"')?;
        return Some((&q[..end], &q[end + 1..]));
    }
    let end = s.find([' ', '\t']).unwrap_or(s.len());
    Some((&s[..end], &s[end..]))
}

/// Splits off the options field: up to the first whitespace outside quotes.
fn options_field(s: &str) -> (&str, &str) {
    let s = s.trim_start_matches([' ', '\t']);
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ' ' | '\t' if !quoted => return (&s[..i], &s[i..]),
            _ => {}
        }
    }
    (s, "")
}

/// OpenSSH's `parse_absolute_time`: `YYYYMMDD`, `YYYYMMDDHHMM` or
/// `YYYYMMDDHHMMSS`, local time unless it ends in `Z` (UTC).
pub fn parse_time(s: &str) -> Result<i64, String> {
    let (digits, utc) = match s.strip_suffix(['Z', 'z']) {
        Some(d) => (d, true),
        None => (s, false),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s:?} is not YYYYMMDD[HHMM[SS]][Z]"));
    }
    let full = match digits.len() {
        8 => format!("{digits}000000"),
        12 => format!("{digits}00"),
        14 => digits.to_owned(),
        _ => return Err(format!("{s:?} is not YYYYMMDD[HHMM[SS]][Z]")),
    };
    let n = |a: usize, b: usize| full[a..b].parse::<i16>().map_err(|e| e.to_string());
    let dt = jiff::civil::DateTime::new(
        n(0, 4)?,
        n(4, 6)? as i8,
        n(6, 8)? as i8,
        n(8, 10)? as i8,
        n(10, 12)? as i8,
        n(12, 14)? as i8,
        0,
    )
    .map_err(|e| format!("{s:?}: {e}"))?;
    let tz = if utc { jiff::tz::TimeZone::UTC } else { jiff::tz::TimeZone::system() };
    let t = dt.to_zoned(tz).map_err(|e| format!("{s:?}: {e}"))?.timestamp().as_second();
    if t <= 0 {
        return Err(format!("{s:?} is not after 1970"));
    }
    Ok(t)
}

/// An option's value: `"quoted"` (no escapes, as OpenSSH's `opt_dequote`).
fn dequote<'a>(rest: &'a str, name: &str) -> Result<(&'a str, &'a str), String> {
    let q = rest.strip_prefix('"').ok_or_else(|| format!("{name}= needs a double-quoted value"))?;
    let end = q.find('"').ok_or_else(|| format!("{name}= value has no closing quote"))?;
    Ok((&q[..end], &q[end + 1..]))
}

/// Parses the options field of a line into `entry`.
fn parse_options(mut opts: &str, entry: &mut Entry) -> Result<(), String> {
    while !opts.is_empty() {
        let lower = opts.to_ascii_lowercase();
        if lower.starts_with("cert-authority") {
            entry.cert_authority = true;
            opts = &opts["cert-authority".len()..];
        } else if let Some(name) = ["namespaces", "valid-after", "valid-before"]
            .into_iter()
            .find(|n| lower.starts_with(n) && lower[n.len()..].starts_with('='))
        {
            let (value, rest) = dequote(&opts[name.len() + 1..], name)?;
            let twice = || format!("multiple \"{name}\" clauses");
            match name {
                "namespaces" => {
                    if entry.namespaces.is_some() {
                        return Err(twice());
                    }
                    entry.namespaces = Some(value.to_owned());
                }
                "valid-after" => {
                    if entry.valid_after.is_some() {
                        return Err(twice());
                    }
                    entry.valid_after = Some(parse_time(value).map_err(|e| format!("valid-after: {e}"))?);
                }
                _ => {
                    if entry.valid_before.is_some() {
                        return Err(twice());
                    }
                    entry.valid_before = Some(parse_time(value).map_err(|e| format!("valid-before: {e}"))?);
                }
            }
            opts = rest;
        } else {
            let name = opts.split([',', '=']).next().unwrap_or(opts);
            return Err(format!(
                "unknown option {name:?} (known: cert-authority, namespaces=\"...\", valid-after=\"...\", valid-before=\"...\")"
            ));
        }
        match opts.strip_prefix(',') {
            Some("") => return Err("the options end with a comma".to_owned()),
            Some(rest) => opts = rest,
            None if opts.is_empty() => {}
            None => return Err(format!("unexpected {opts:?} after an option")),
        }
    }
    if let (Some(a), Some(b)) = (entry.valid_after, entry.valid_before)
        && b <= a
    {
        return Err("\"valid-before\" is not after \"valid-after\"".to_owned());
    }
    Ok(())
}

/// Parses a key `keytype base64 [comment]`.
fn parse_key(s: &str) -> Result<KeyData, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("the line has no key".to_owned());
    }
    let kind = s.split([' ', '\t']).next().unwrap_or_default();
    if kind.ends_with("-cert-v01@openssh.com") {
        return Err(format!("{kind}: a certificate cannot be an allowed signer (use cert-authority with the CA's key)"));
    }
    ssh_key::PublicKey::from_openssh(s).map(|k| k.key_data().clone()).map_err(|e| format!("invalid {kind} key: {e}"))
}

impl AllowedSigners {
    /// Parses an allowed-signers file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<AllowedSigners, TrustError> {
        let mut entries = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let bad = |message: String| TrustError::AllowedSigners { path: path.to_path_buf(), line, message };
            let s = raw.trim_matches([' ', '\t', '\r']);
            if s.is_empty() || s.starts_with('#') {
                continue;
            }
            let (principals, rest) = next_token(s).ok_or_else(|| bad("invalid line".to_owned()))?;
            if principals.is_empty() {
                return Err(bad("empty principals".to_owned()));
            }
            let mut entry = Entry {
                line,
                principals: principals.to_owned(),
                cert_authority: false,
                namespaces: None,
                valid_after: None,
                valid_before: None,
                key: KeyData::Ed25519(ssh_key::public::Ed25519PublicKey([0; 32])),
            };
            let first = rest.trim_start_matches([' ', '\t']).split([' ', '\t']).next().unwrap_or_default();
            let key_text = if is_key_type(first) {
                rest
            } else {
                let (opts, after) = options_field(rest);
                parse_options(opts, &mut entry).map_err(bad)?;
                after
            };
            entry.key = parse_key(key_text).map_err(bad)?;
            entries.push(entry);
        }
        Ok(AllowedSigners { path: path.to_path_buf(), entries })
    }

    /// Reads and parses the file at `path`.
    pub fn read(path: &Path) -> Result<AllowedSigners, TrustError> {
        let text = super::read_small(path, "allowed signers file")?;
        AllowedSigners::parse(&text, path)
    }

    /// The line that allows `key` to sign in `namespace` at `now` (Unix
    /// seconds) as one of `identities` (any principal when empty), as
    /// `ssh-keygen -Y verify -I IDENTITY` would; else the most specific
    /// reason none does.
    pub fn allows(&self, key: &KeyData, namespace: &str, identities: &[String], now: i64) -> Result<&Entry, Refusal> {
        let mut best = Refusal::UnknownKey;
        let mut better = |r: Refusal| {
            if r.rank() > best.rank() {
                best = r;
            }
        };
        let mut other_principals = Vec::new();
        for e in &self.entries {
            // A CA line matches only certificate signatures (not supported).
            if e.cert_authority || &e.key != key {
                continue;
            }
            if !identities.is_empty() && !identities.iter().any(|id| match_pattern_list(id, &e.principals)) {
                other_principals.push(format!("{} (line {})", e.principals, e.line));
                continue;
            }
            if let Some(ns) = &e.namespaces
                && !match_pattern_list(namespace, ns)
            {
                better(Refusal::Namespace { line: e.line, allowed: ns.clone() });
                continue;
            }
            if let Some(after) = e.valid_after
                && now < after
            {
                better(Refusal::NotYetValid { line: e.line, after });
                continue;
            }
            if let Some(before) = e.valid_before
                && now > before
            {
                better(Refusal::Expired { line: e.line, before });
                continue;
            }
            return Ok(e);
        }
        if best == Refusal::UnknownKey && !other_principals.is_empty() {
            best = Refusal::Principal { principals: other_principals };
        }
        Err(best)
    }
}

/// A list of revoked public keys.
#[derive(Clone, Debug, Default)]
pub struct Revoked {
    pub keys: Vec<(PathBuf, usize, KeyData)>,
}

impl Revoked {
    /// Adds the keys of a revocation list.
    pub fn read_into(&mut self, path: &Path) -> Result<(), TrustError> {
        let bytes = super::read_small_bytes(path, "revocation list")?;
        if bytes.starts_with(b"SSHKRL\n\0") {
            return Err(TrustError::AllowedSigners {
                path: path.to_path_buf(),
                line: 1,
                message: "binary KRLs are not supported: list the revoked public keys one per line instead".to_owned(),
            });
        }
        let text = String::from_utf8(bytes).map_err(|_| TrustError::AllowedSigners {
            path: path.to_path_buf(),
            line: 1,
            message: "not UTF-8 text".to_owned(),
        })?;
        for (i, raw) in text.lines().enumerate() {
            let s = raw.trim();
            if s.is_empty() || s.starts_with('#') {
                continue;
            }
            let key =
                parse_key(s).map_err(|message| TrustError::AllowedSigners { path: path.to_path_buf(), line: i + 1, message })?;
            self.keys.push((path.to_path_buf(), i + 1, key));
        }
        Ok(())
    }

    /// Where `key` is revoked, if it is.
    #[must_use]
    pub fn find(&self, key: &KeyData) -> Option<(&Path, usize)> {
        self.keys.iter().find(|(_, _, k)| k == key).map(|(p, l, _)| (p.as_path(), *l))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO+prPqwnjNf1DJeajBJSvvfBzLqLh+zM0bXgv8TWFNI";
    const ED2: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINxjdYLrYiO82cciKu+ZPWFGc/4rq4/B6o9VyQ9aptPo";

    fn key(s: &str) -> KeyData {
        ssh_key::PublicKey::from_openssh(s).expect("test key").key_data().clone()
    }

    fn parse(text: &str) -> Result<AllowedSigners, TrustError> {
        AllowedSigners::parse(text, Path::new("allowed_signers"))
    }

    #[test]
    fn patterns_match_like_openssh() {
        assert!(match_pattern("alice@example.com", "*@example.com"));
        assert!(match_pattern("a", "?"));
        assert!(!match_pattern("ab", "?"));
        assert!(match_pattern("", "*"));
        assert!(match_pattern("abcabd", "*abd"));
        assert!(!match_pattern("Alice@example.com", "alice@*"));
        assert!(match_pattern_list("bob@example.com", "alice@example.com,bob@example.com"));
        assert!(!match_pattern_list("mallory@example.com", "*@example.com,!mallory@*"));
        assert!(!match_pattern_list("x", ""));
    }

    #[test]
    fn the_man_page_examples_parse() {
        // From ssh-keygen(1), ALLOWED SIGNERS (keys replaced by real ones).
        let text = format!(
            "# Comments allowed at start of line\n\
             user1@example.com,user2@example.com {ED}\n\
             # A certificate authority, trusted for all principals in a domain.\n\
             *@example.com cert-authority {ED2}\n\
             # A key that is accepted only for file signing.\n\
             user2@example.com namespaces=\"file\" {ED} comment here\n"
        );
        let a = parse(&text).expect("parses");
        assert_eq!(a.entries.len(), 3);
        assert_eq!(a.entries[0].principals, "user1@example.com,user2@example.com");
        assert!(a.entries[1].cert_authority);
        assert_eq!(a.entries[2].namespaces.as_deref(), Some("file"));
        assert_eq!(a.entries[2].line, 6);
        // The CA line never matches a plain key.
        assert_eq!(a.allows(&key(ED2), "file", &[], 0).err(), Some(Refusal::UnknownKey));
        assert_eq!(a.allows(&key(ED), "git", &["user1@example.com".into()], 0).map(|e| e.line).ok(), Some(2));
    }

    #[test]
    fn quoted_principals_options_case_and_validity() {
        let a = parse(&format!(
            "\"alice@example.com\" Namespaces=\"nono-*\",VALID-AFTER=\"20200101\",valid-before=\"20300101Z\" {ED}\n"
        ))
        .expect("parses");
        let e = &a.entries[0];
        assert_eq!(e.principals, "alice@example.com");
        assert_eq!(e.valid_before, Some(1_893_456_000));
        let k = key(ED);
        let alice = ["alice@example.com".to_owned()];
        assert!(a.allows(&k, "nono-profile", &alice, 1_700_000_000).is_ok());
        assert!(matches!(a.allows(&k, "file", &alice, 1_700_000_000), Err(Refusal::Namespace { line: 1, .. })));
        assert!(matches!(a.allows(&k, "nono-profile", &alice, 1_900_000_000), Err(Refusal::Expired { .. })));
        assert!(matches!(a.allows(&k, "nono-profile", &alice, 1_000_000_000), Err(Refusal::NotYetValid { .. })));
        assert!(matches!(
            a.allows(&k, "nono-profile", &["bob@example.com".into()], 1_700_000_000),
            Err(Refusal::Principal { .. })
        ));
        // A later line may still allow what an earlier one refused.
        let b = parse(&format!("a@x namespaces=\"git\" {ED}\na@x {ED}\n")).expect("parses");
        assert_eq!(b.allows(&k, "nono-profile", &[], 0).map(|e| e.line).ok(), Some(2));
    }

    #[test]
    fn malformed_lines_are_errors_with_their_line_number() {
        for (text, needle) in [
            (format!("a@x bogus-option {ED}"), "unknown option"),
            (format!("a@x namespaces=file {ED}"), "double-quoted"),
            (format!("a@x namespaces=\"a\",namespaces=\"b\" {ED}"), "multiple"),
            (format!("a@x valid-before=\"2020\" {ED}"), "YYYYMMDD"),
            (format!("a@x valid-after=\"20300101\",valid-before=\"20200101\" {ED}"), "not after"),
            (format!("a@x cert-authority, {ED}"), "comma"),
            ("a@x ssh-ed25519 notbase64!".to_owned(), "invalid ssh-ed25519 key"),
            ("a@x".to_owned(), "no key"),
            ("a@x namespaces=\"file\"".to_owned(), "no key"),
        ] {
            let text = format!("# ok\n\n{text}\n");
            let err = parse(&text).expect_err(&text).to_string();
            assert!(err.contains(":3:") && err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn times_parse_as_openssh_does() {
        assert_eq!(parse_time("19700102Z"), Ok(86_400));
        assert_eq!(parse_time("197001020001Z"), Ok(86_460));
        assert_eq!(parse_time("19700102000001Z"), Ok(86_401));
        assert!(parse_time("1970010").is_err());
        assert!(parse_time("19701301Z").is_err());
    }

    #[test]
    fn revocation_lists_hold_plain_keys_and_refuse_krls() {
        let dir = tempfile::tempdir().expect("tempdir");
        let list = dir.path().join("revoked");
        std::fs::write(&list, format!("# revoked\n{ED} old laptop\n")).expect("write");
        let mut r = Revoked::default();
        r.read_into(&list).expect("reads");
        assert_eq!(r.find(&key(ED)).map(|(_, l)| l), Some(2));
        assert!(r.find(&key(ED2)).is_none());
        std::fs::write(&list, b"SSHKRL\n\0rest").expect("write");
        assert!(r.read_into(&list).expect_err("a KRL").to_string().contains("KRL"));
    }
}
