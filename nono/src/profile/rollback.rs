//! The profile's `rollback` section: whether `nono run` snapshots the
//! write grants before the command (as `--rollback` does), what it leaves
//! out, and its size limits. The snapshots themselves are
//! `crate::snapshot`'s; this is only the setting.

use serde::{Deserialize, Serialize};

/// `rollback` in a profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackSettings {
    /// Snapshot before every `nono run` with this profile (`--no-rollback`
    /// turns it off for one run).
    #[serde(default)]
    pub enabled: bool,
    /// Exclusion patterns, added to the defaults (`node_modules/`,
    /// `target/`, `.venv/`, ...; see `nono rollback list --help`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Whether the default exclusions apply.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub default_excludes: bool,
    /// The most bytes of files one snapshot may cover ("10G"): a run whose
    /// grants hold more is refused rather than run without its snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<ByteSize>,
    /// The most bytes the snapshot store may hold ("20G"): older snapshots
    /// are pruned after a new one beyond it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_max_size: Option<ByteSize>,
}

impl Default for RollbackSettings {
    fn default() -> Self {
        RollbackSettings { enabled: false, exclude: Vec::new(), default_excludes: true, max_size: None, store_max_size: None }
    }
}

fn yes() -> bool {
    true
}

#[expect(clippy::trivially_copy_pass_by_ref, reason = "serde's skip_serializing_if passes a reference")]
fn is_true(b: &bool) -> bool {
    *b
}

/// A byte count, written as a number or a string with a binary unit
/// (`"500M"`, `"10G"`, `"1TiB"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => crate::snapshot::parse_size(&s).map(ByteSize).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::load_str;
    use super::super::tests::vars;
    use super::*;

    #[test]
    fn the_rollback_section_parses_and_refuses_what_it_does_not_know() {
        let r = load_str(
            r#"{"rollback": {"enabled": true, "exclude": ["*.log", "data/raw/"], "max_size": "500M", "store_max_size": 1024}}"#,
            "p.json",
            &vars(),
        )
        .expect("valid");
        let s = r.rollback.expect("a rollback section");
        assert!(s.enabled && s.default_excludes);
        assert_eq!(s.max_size, Some(ByteSize(500 << 20)));
        assert_eq!(s.store_max_size, Some(ByteSize(1024)));
        for (bad, why) in [
            (r#"{"rollback": {"enabeld": true}}"#, "unknown field"),
            (r#"{"rollback": {"max_size": "5Q"}}"#, "the unit must be"),
            (r#"{"rollback": {"exclude": ["../up"]}}"#, "rollback.exclude"),
        ] {
            let e = load_str(bad, "p.json", &vars()).expect_err(bad).to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(load_str("{}", "p.json", &vars()).expect("empty").rollback.is_none());
    }
}
