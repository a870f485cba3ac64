//! The network-by-name part of a profile (issue 23): `network.allow_domains`
//! (what nono's proxy lets through) and `network.credentials` (secrets the
//! proxy injects so the sandbox never holds them). Formats, validation
//! and merging; the proxy itself is `crate::proxy`, whose pure name rules
//! (`proxy::policy`) this module uses so a profile and the proxy can never
//! disagree on what a name means.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::proxy::policy::{Pattern, Rule};

/// One `allow_domains` entry: a string (`"api.example.com"`,
/// `"*.example.com"`, `"host:8443"`, `"10.0.0.5"`) or an object with a
/// reason and a count (learned profiles write these).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DomainEntry {
    Name(String),
    Rule(DomainRule),
}

/// The object form of an `allow_domains` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainRule {
    /// The name (`*.` wildcard, `:PORT` suffix and IP literals as in the
    /// string form).
    pub domain: String,
    /// The name may resolve to a loopback, private or link-local address.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub private: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How often the learning session(s) saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

impl DomainEntry {
    #[must_use]
    pub fn domain(&self) -> &str {
        match self {
            DomainEntry::Name(d) => d,
            DomainEntry::Rule(r) => &r.domain,
        }
    }

    #[must_use]
    pub fn reason(&self) -> Option<&str> {
        match self {
            DomainEntry::Name(_) => None,
            DomainEntry::Rule(r) => r.reason.as_deref(),
        }
    }

    /// The proxy's rule for this entry.
    pub fn rule(&self) -> Result<Rule, String> {
        let mut rule = Rule::parse(self.domain()).map_err(|e| format!("{:?}: {e}", self.domain()))?;
        if let DomainEntry::Rule(r) = self {
            rule.private |= r.private;
        }
        Ok(rule)
    }
}

/// One `network.credentials` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// A short name (`anthropic`): the audit trail's and the keyring
    /// key's (`nono:NAME`).
    pub name: String,
    /// The variable that holds the key for the agent; it gets the phantom.
    pub env: String,
    /// The HTTPS upstream the key is for (a plain name).
    pub domain: String,
    /// The request header that carries the key (`x-api-key`,
    /// `authorization` for `Bearer KEY`).
    pub header: String,
    /// `keyring` (the kernel keyring's `user` key `nono:NAME`),
    /// `keyring:DESCRIPTION`, `file:PATH` (owned by the user, mode 0600),
    /// `env` (the variable `env` of nono's own environment) or `env:VAR`.
    pub from: String,
    /// The variable that tells the agent where to send its requests
    /// (`ANTHROPIC_BASE_URL`); it gets the proxy's credential endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url_env: Option<String>,
    /// The upstream's port (443).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Where a credential's secret comes from, parsed from `from`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum From {
    Keyring(String),
    File(String),
    Env(String),
}

impl Credential {
    pub fn source(&self) -> Result<From, String> {
        let f = self.from.as_str();
        let src = match f.split_once(':') {
            None if f == "keyring" => From::Keyring(format!("nono:{}", self.name)),
            None if f == "env" => From::Env(self.env.clone()),
            Some(("keyring", d)) if !d.is_empty() => From::Keyring(d.to_owned()),
            Some(("env", v)) if env_name_ok(v) => From::Env(v.to_owned()),
            Some(("file", p)) if p.starts_with('/') || p.starts_with("~/") || p.starts_with('$') => From::File(p.to_owned()),
            _ => {
                return Err(format!(
                    "credential {}: from {f:?}: expected \"keyring\", \"keyring:DESCRIPTION\", \"file:/absolute/path\" (or ~/...), \"env\" or \"env:VAR\"",
                    self.name
                ));
            }
        };
        Ok(src)
    }
}

fn env_name_ok(v: &str) -> bool {
    !v.is_empty() && !v.starts_with(|c: char| c.is_ascii_digit()) && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks the network-by-name keys of one profile file.
pub fn validate(domains: Option<&[DomainEntry]>, credentials: &[Credential]) -> Result<(), String> {
    for d in domains.unwrap_or_default() {
        d.rule().map_err(|e| format!("network.allow_domains: {e}"))?;
    }
    let mut names = BTreeSet::new();
    let mut envs = BTreeSet::new();
    for c in credentials {
        let bad = |m: String| format!("network.credentials: credential {:?}: {m}", c.name);
        if c.name.is_empty() || !c.name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_') {
            return Err(bad("a name is letters, digits, `-` and `_`".into()));
        }
        if !names.insert(c.name.clone()) {
            return Err(bad("listed twice".into()));
        }
        for v in std::iter::once(&c.env).chain(c.base_url_env.as_ref()) {
            if !env_name_ok(v) {
                return Err(bad(format!("{v:?} is not a variable name")));
            }
            if !envs.insert(v.clone()) {
                return Err(bad(format!("the variable {v} is used twice")));
            }
        }
        match Pattern::parse(&c.domain) {
            Ok(Pattern::Exact(_)) => {}
            _ => return Err(bad(format!("domain {:?} must be one plain host name (no wildcard, port or address)", c.domain))),
        }
        if http::HeaderName::from_bytes(c.header.as_bytes()).is_err() {
            return Err(bad(format!("header {:?} is not an HTTP header name", c.header)));
        }
        if matches!(c.header.to_ascii_lowercase().as_str(), "host" | "content-length" | "transfer-encoding" | "connection") {
            return Err(bad(format!("header {:?} cannot carry a credential", c.header)));
        }
        if c.port == Some(0) {
            return Err(bad("port 0".into()));
        }
        c.source().map_err(|e| format!("network.credentials: {e}"))?;
    }
    Ok(())
}

/// Parent then child: the lists add up (an entry listed twice stays
/// once, the child's form kept); present on either side means present.
#[must_use]
pub fn merge_domains(a: Option<&Vec<DomainEntry>>, b: Option<&Vec<DomainEntry>>) -> Option<Vec<DomainEntry>> {
    match (a, b) {
        (None, None) => None,
        (Some(v), None) | (None, Some(v)) => Some(v.clone()),
        (Some(v), Some(w)) => {
            let mut out: Vec<DomainEntry> = v.iter().filter(|e| !w.iter().any(|x| x.domain() == e.domain())).cloned().collect();
            out.extend(w.iter().cloned());
            Some(out)
        }
    }
}

/// Parent then child: a child's credential replaces the parent's of the
/// same name.
#[must_use]
pub fn merge_credentials(a: &[Credential], b: &[Credential]) -> Vec<Credential> {
    let mut out: Vec<Credential> = a.iter().filter(|c| !b.iter().any(|d| d.name == c.name)).cloned().collect();
    out.extend(b.iter().cloned());
    out
}

/// What changes between two networks' names and credentials, one line
/// each: `+ domain api.example.com`, `- domain x.example.com`,
/// `~ domains: proxy-only -> unrestricted`, `+ credential anthropic
/// (x-api-key for api.anthropic.com, from keyring)`.
#[must_use]
pub fn diff(a: &super::Network, b: &super::Network) -> Vec<String> {
    let mut out = Vec::new();
    match (&a.allow_domains, &b.allow_domains) {
        (None, Some(_)) => out.push("~ domains: any host (by port)  ->  only allow_domains, through nono's proxy".to_owned()),
        (Some(_), None) => out.push("~ domains: only allow_domains, through nono's proxy  ->  any host (by port)".to_owned()),
        _ => {}
    }
    let names = |n: &super::Network| -> BTreeSet<String> {
        n.allow_domains.iter().flatten().map(|d| d.rule().map_or_else(|_| d.domain().to_owned(), |r| describe(&r))).collect()
    };
    let (na, nb) = (names(a), names(b));
    for d in nb.difference(&na) {
        out.push(format!("+ domain {d}"));
    }
    for d in na.difference(&nb) {
        out.push(format!("- domain {d}"));
    }
    let creds = |n: &super::Network| -> BTreeSet<String> {
        n.credentials
            .iter()
            .map(|c| format!("{} ({} for {}, from {}, in ${})", c.name, c.header, c.domain, c.from, c.env))
            .collect()
    };
    let (ca, cb) = (creds(a), creds(b));
    for c in cb.difference(&ca) {
        out.push(format!("+ credential {c}"));
    }
    for c in ca.difference(&cb) {
        out.push(format!("- credential {c}"));
    }
    out
}

/// A rule as people read it: `api.example.com` (ports 80, 443),
/// `git.corp:22 (private)`.
#[must_use]
pub fn describe(r: &Rule) -> String {
    let mut s = r.pattern.to_string();
    if let Some(ports) = &r.ports {
        s.push(':');
        s.push_str(&ports.iter().map(u16::to_string).collect::<Vec<_>>().join(","));
    }
    if r.private {
        s.push_str(" (private)");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(json: &str) -> Credential {
        serde_json::from_str(json).expect(json)
    }

    #[test]
    fn entries_parse_in_both_forms() {
        let v: Vec<DomainEntry> = serde_json::from_str(
            r#"["api.example.com", {"domain": "*.cdn.example.com", "reason": "dns: 3 names", "count": 7}, {"domain": "git.corp:22", "private": true}]"#,
        )
        .expect("parse");
        assert_eq!(v[0].domain(), "api.example.com");
        assert_eq!(v[1].reason(), Some("dns: 3 names"));
        assert!(v[2].rule().expect("rule").private);
        assert!(validate(Some(&v), &[]).is_ok());
        let bad: Vec<DomainEntry> = serde_json::from_str(r#"["*.com"]"#).expect("parse");
        assert!(validate(Some(&bad), &[]).expect_err("refused").contains("allow_domains"));
        assert!(serde_json::from_str::<Vec<DomainEntry>>(r#"[{"domain": "x.com", "typo": 1}]"#).is_err());
    }

    #[test]
    fn credentials_are_checked() {
        let ok = cred(
            r#"{"name": "anthropic", "env": "ANTHROPIC_API_KEY", "domain": "api.anthropic.com", "header": "x-api-key", "from": "keyring", "base_url_env": "ANTHROPIC_BASE_URL"}"#,
        );
        assert!(validate(None, std::slice::from_ref(&ok)).is_ok());
        assert_eq!(ok.source(), Ok(From::Keyring("nono:anthropic".into())));
        for (field, value) in [
            ("domain", "*.anthropic.com"),
            ("domain", "1.2.3.4"),
            ("header", "host"),
            ("header", "bad header"),
            ("from", "keyring:"),
            ("from", "file:relative/key"),
            ("from", "vault"),
            ("env", "1BAD"),
        ] {
            let mut c = ok.clone();
            match field {
                "domain" => c.domain = value.into(),
                "header" => c.header = value.into(),
                "from" => c.from = value.into(),
                _ => c.env = value.into(),
            }
            assert!(validate(None, &[c]).is_err(), "{field} = {value:?} must be refused");
        }
        let mut same_env = ok.clone();
        same_env.name = "other".into();
        assert!(validate(None, &[ok.clone(), same_env]).expect_err("refused").contains("used twice"));
        assert_eq!(
            cred(r#"{"name": "o", "env": "K", "domain": "a.b", "header": "authorization", "from": "env"}"#).source(),
            Ok(From::Env("K".into()))
        );
    }

    #[test]
    fn diffs_name_domains_and_credentials() {
        let a: super::super::Network =
            serde_json::from_str(r#"{"allow_domains": ["a.example.com", "b.example.com:8443"]}"#).expect("a");
        let b: super::super::Network = serde_json::from_str(
            r#"{"allow_domains": ["a.example.com", "c.example.com"], "credentials": [{"name": "k", "env": "K", "domain": "c.example.com", "header": "x-api-key", "from": "env"}]}"#,
        )
        .expect("b");
        let d = diff(&a, &b);
        assert!(d.contains(&"+ domain c.example.com".to_owned()), "{d:?}");
        assert!(d.contains(&"- domain b.example.com:8443".to_owned()), "{d:?}");
        assert!(d.iter().any(|l| l.starts_with("+ credential k (x-api-key for c.example.com")), "{d:?}");
        let none = super::super::Network::default();
        assert!(diff(&none, &a)[0].starts_with("~ domains: any host"));
    }

    #[test]
    fn lists_merge() {
        let a = vec![DomainEntry::Name("a.example.com".into()), DomainEntry::Name("b.example.com".into())];
        let b = vec![DomainEntry::Rule(DomainRule { domain: "b.example.com".into(), private: true, reason: None, count: None })];
        let m = merge_domains(Some(&a), Some(&b)).expect("present");
        assert_eq!(m.len(), 2);
        assert!(m[1].rule().expect("rule").private);
        assert_eq!(merge_domains(None, None), None);
        assert_eq!(merge_domains(Some(&Vec::new()), None), Some(Vec::new()));
    }
}
