//! Built-in profiles, embedded from the workspace's `profiles/` folder.

use super::ProfileError;

/// `(name, JSON)` of every built-in profile.
pub const BUILTINS: &[(&str, &str)] = &[
    ("base", include_str!("../../../profiles/base.json")),
    ("claude-code", include_str!("../../../profiles/claude-code.json")),
    ("codex", include_str!("../../../profiles/codex.json")),
    ("offline-workdir", include_str!("../../../profiles/offline-workdir.json")),
];

/// The JSON of a built-in profile.
pub fn builtin(name: &str) -> Result<&'static str, ProfileError> {
    BUILTINS.iter().find(|(n, _)| *n == name).map(|(_, text)| *text).ok_or_else(|| ProfileError::UnknownBuiltin {
        name: name.to_owned(),
        available: BUILTINS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
    })
}
