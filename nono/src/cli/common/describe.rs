//! Profiles described for people: `nono profile diff`'s rows and text, and
//! one-line summaries of a resolved profile's network and sandbox settings.
//! Shared by `profile`, `amend` and the reports.

use std::collections::{BTreeMap, BTreeSet};

use crate::profile::Resolved;
use crate::profile::rights::FsRight;

pub type DiffRow = ((String, bool), BTreeSet<FsRight>, BTreeSet<FsRight>);

/// Per path: what B grants that A does not, and what A grants that B does not.
pub fn diff_rows(ra: &Resolved, rb: &Resolved) -> Vec<DiffRow> {
    let (ta, tb) = (grant_table(ra), grant_table(rb));
    let keys: BTreeSet<_> = ta.keys().chain(tb.keys()).cloned().collect();
    let mut rows = Vec::new();
    for k in keys {
        let empty = BTreeSet::new();
        let (x, y) = (ta.get(&k).unwrap_or(&empty), tb.get(&k).unwrap_or(&empty));
        let added: BTreeSet<FsRight> = y.difference(x).copied().collect();
        let removed: BTreeSet<FsRight> = x.difference(y).copied().collect();
        if !added.is_empty() || !removed.is_empty() {
            rows.push((k, added, removed));
        }
    }
    rows
}

/// `nono profile diff`'s text: `+ path: rights`, `- path: rights`,
/// `~ network: a -> b`, `~ sandbox: a -> b`.
pub fn diff_text(ra: &Resolved, rb: &Resolved) -> String {
    use std::fmt::Write as _;
    let rows = diff_rows(ra, rb);
    let mut out = String::new();
    for ((path, file), add, rem) in &rows {
        let kind = if *file { " (file)" } else { "" };
        let path = crate::event::display_safe(path);
        if !add.is_empty() {
            let _ = writeln!(out, "+ {path}{kind}: {}", names(add));
        }
        if !rem.is_empty() {
            let _ = writeln!(out, "- {path}{kind}: {}", names(rem));
        }
    }
    let (na, nb) = (describe_net(ra), describe_net(rb));
    if na != nb {
        let _ = writeln!(out, "~ network: {na}  ->  {nb}");
    }
    for line in crate::profile::network::diff(&ra.network, &rb.network) {
        let _ = writeln!(out, "{}", crate::event::display_safe(&line));
    }
    let (sa, sb) = (describe_sandbox(ra), describe_sandbox(rb));
    if sa != sb {
        let _ = writeln!(out, "~ sandbox: {sa}  ->  {sb}");
    }
    if out.is_empty() {
        out.push_str("no difference");
    }
    out.trim_end().to_owned()
}

/// `(path, file) -> rights`, over the whole chain.
pub fn grant_table(r: &Resolved) -> BTreeMap<(String, bool), BTreeSet<FsRight>> {
    let mut t: BTreeMap<(String, bool), BTreeSet<FsRight>> = BTreeMap::new();
    for g in &r.grants {
        t.entry((g.path.display().to_string(), g.file)).or_default().extend(g.rights.iter().copied());
    }
    t
}

pub fn names(rights: &BTreeSet<FsRight>) -> String {
    rights.iter().map(|r| r.name()).collect::<Vec<_>>().join(",")
}

pub fn describe_net(r: &Resolved) -> String {
    if r.network.block {
        return "blocked".to_owned();
    }
    let ports = |p: &Option<BTreeSet<u16>>| match p {
        None => "any".to_owned(),
        Some(s) if s.is_empty() => "none".to_owned(),
        Some(s) => s.iter().map(u16::to_string).collect::<Vec<_>>().join(","),
    };
    let n = &r.network;
    let udp = match &n.udp {
        None => "none".to_owned(),
        Some(u) => {
            let mut v: Vec<String> = u.to.iter().map(ToString::to_string).collect();
            if u.dns {
                v.insert(0, "dns".to_owned());
            }
            if v.is_empty() { "sockets only".to_owned() } else { v.join(",") }
        }
    };
    let unix = r.unix_connect.as_ref().map_or(0, Vec::len);
    let mut s =
        format!("tcp connect {}, tcp bind {}, udp {udp}, unix sockets {unix}", ports(&n.open_port), ports(&n.listen_port));
    if let Some(i) = &n.icmp {
        s.push_str(&format!(", icmp {}", i.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")));
    }
    if !n.families.is_empty() {
        s.push_str(&format!(", families {}", n.families.join(",")));
    }
    s
}

pub fn describe_sandbox(r: &Resolved) -> String {
    let sb = &r.sandbox;
    let mut parts = Vec::new();
    if sb.signal_outside {
        parts.push("signal_outside".to_owned());
    }
    if sb.abstract_unix_outside {
        parts.push("abstract_unix_outside".to_owned());
    }
    parts.extend(sb.allow.iter().map(|f| f.name().to_owned()));
    parts.extend(r.brokered.iter().map(|b| format!("brokered {}/{}", b.spelled, b.names.join("|"))));
    if parts.is_empty() { "defaults".to_owned() } else { parts.join(", ") }
}

/// The resolved profile as one self-contained profile: the `extends` chain
/// folded in, every path expanded (as the run expanded it), each rule with
/// its reason (or the profile it was inherited from). Loading it alone
/// gives the same grants, so it is what a `run` session stores as the
/// profile it enforced.
#[must_use]
pub fn flatten(r: &Resolved, block_net: bool) -> crate::profile::Profile {
    use crate::event::escape_path;
    use crate::profile::rights::FsRule;
    use crate::profile::{BrokeredRule, Profile};
    let top = r.chain.last().cloned().unwrap_or_default();
    let mut p = Profile::default();
    p.meta.name = r.profile.meta.name.clone().or_else(|| Some(top.clone()));
    p.meta.version.clone_from(&r.profile.meta.version);
    p.meta.description = Some(format!("as enforced: {}", r.chain.join(" -> ")));
    for g in &r.grants {
        let own = r.profile.filesystem.rules.iter().find(|x| x.path == g.spelled && x.file == g.file);
        let inherited = (g.origin != top).then(|| format!("inherited from {}", g.origin));
        p.filesystem.rules.push(FsRule {
            path: escape_path(&g.path),
            access: g.rights.clone(),
            file: g.file,
            reason: own.and_then(|x| x.reason.clone()).or(inherited),
            seen_in: own.and_then(|x| x.seen_in.clone()),
            anticipated: own.map(|x| x.anticipated.clone()).unwrap_or_default(),
        });
    }
    for b in &r.brokered {
        let own = r.profile.filesystem.brokered.iter().find(|x| x.dir == b.spelled);
        p.filesystem.brokered.push(BrokeredRule {
            dir: escape_path(&b.dir),
            names: b.names.clone(),
            ops: b.ops.clone(),
            reason: own.and_then(|x| x.reason.clone()).or_else(|| Some(format!("from {}", b.origin))),
        });
    }
    p.filesystem.metadata = r.metadata;
    p.network = r.network.clone();
    p.network.block |= block_net;
    p.network.unix_connect = r.unix_connect.as_ref().map(|v| v.iter().map(|x| escape_path(x)).collect());
    p.sandbox = r.sandbox.clone();
    p.security = r.security.clone();
    p
}

/// [`flatten`] as the stored text and its SHA-256.
pub fn enforced(r: &Resolved, block_net: bool) -> anyhow::Result<crate::store::EnforcedProfile> {
    let json = flatten(r, block_net).to_json_pretty()?;
    Ok(crate::store::EnforcedProfile { hash: sha256_hex(&json), json })
}

/// Lowercase hex SHA-256 of `text`.
#[must_use]
pub fn sha256_hex(text: &str) -> String {
    use std::fmt::Write as _;
    openssl::sha::sha256(text.as_bytes()).iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Vars, load_str};

    #[test]
    fn the_flattened_profile_loads_alone_to_the_same_grants_with_their_reasons() {
        let d = tempfile::tempdir().expect("tmp");
        let vars = Vars::for_home(d.path().join("work"), d.path());
        let text = r#"{"extends": "base", "filesystem": {"rules": [{"path": "$CWD", "access": ["read_file", "write_file"], "reason": "workdir"}],
            "brokered": [{"dir": "$HOME", "names": [".app.json", ".app.json.tmp.*"], "ops": ["create", "rename"], "reason": "atomic save"}]},
            "network": {"open_port": [443], "unix_connect": ["$HOME/agent.sock"]}}"#;
        let r = load_str(text, "agent.json", &vars).expect("resolve");
        let stored = enforced(&r, true).expect("flatten");
        assert_eq!(stored.hash.len(), 64);
        assert_eq!(stored.hash, sha256_hex(&stored.json));
        // Loaded elsewhere (other variables): the same paths, since they are expanded.
        let other = Vars::for_home("/elsewhere".into(), std::path::Path::new("/nobody"));
        let again = load_str(&stored.json, "stored", &other).expect("the stored profile loads alone");
        assert_eq!(grant_table(&again), grant_table(&r));
        assert_eq!(
            again.brokered.iter().map(|b| (&b.dir, &b.names, &b.ops)).collect::<Vec<_>>(),
            r.brokered.iter().map(|b| (&b.dir, &b.names, &b.ops)).collect::<Vec<_>>()
        );
        assert!(again.network.block, "--block-net is part of what was enforced");
        assert_eq!(again.unix_connect, r.unix_connect);
        let reasons: Vec<_> = again.profile.filesystem.rules.iter().filter_map(|x| x.reason.clone()).collect();
        assert!(
            reasons.iter().any(|x| x == "workdir") && reasons.iter().any(|x| x == "inherited from builtin:base"),
            "{reasons:?}"
        );
        assert_eq!(again.profile.filesystem.brokered[0].reason.as_deref(), Some("atomic save"));
        // The same input gives the same hash; any change another.
        assert_eq!(enforced(&r, true).expect("again").hash, stored.hash);
        assert_ne!(enforced(&r, false).expect("unblocked").hash, stored.hash);
    }
}
