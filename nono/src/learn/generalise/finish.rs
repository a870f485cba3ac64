//! The last steps of generalisation, once every path is placed: the
//! rights a later run needs in directories the agent owns, dropping rules
//! a broader one covers, the warning about the workdir's git config, a
//! final check of every rule against the sensitive list, and spelling
//! rules with variables (the shared `/tmp` as `$TMPDIR`). Also the devices
//! every learned profile carries.

use std::collections::{BTreeMap, BTreeSet};

use super::{Builder, Built, MAX_EXAMPLES, ReasonAcc, RuleAcc, TTY};
use crate::learn::Explanation;
use crate::learn::layout::RootKind;
use crate::learn::paths::{is_at_or_beneath, parent};
use crate::learn::rights::Mask;
use crate::profile::rights::{FsRight, FsRule};

/// The devices every shell redirect may need, and the command's own
/// terminal, as the built-in `base` profile grants them: a profile learned
/// from `echo hi > f` must still allow `2>/dev/null` later. Every learned
/// profile carries them (see `to_profile`).
pub(crate) fn device_rules() -> Vec<FsRule> {
    let rw = [FsRight::ReadFile, FsRight::WriteFile, FsRight::IoctlDev];
    let r = [FsRight::ReadFile];
    let devices: [(&str, &[FsRight]); 6] =
        [(TTY, &rw), ("/dev/full", &rw), ("/dev/null", &rw), ("/dev/random", &r), ("/dev/urandom", &r), ("/dev/zero", &rw)];
    devices
        .into_iter()
        .map(|(path, rights)| FsRule {
            path: path.to_owned(),
            access: rights.iter().copied().collect(),
            file: true,
            reason: Some(if path == TTY { "tty" } else { "device" }.to_owned()),
            seen_in: None,
            anticipated: BTreeSet::new(),
        })
        .collect()
}

impl Builder<'_> {
    /// Adds what a later run needs in directories the agent owns (see the
    /// module docs of `learn`): what this run created there, the next one
    /// reads, rewrites, renames and removes.
    pub(super) fn anticipate(&mut self) {
        let makes = Mask::of(FsRight::MakeReg)
            .with(FsRight::MakeDir)
            .with(FsRight::MakeSym)
            .with(FsRight::MakeSock)
            .with(FsRight::MakeFifo);
        let mut adds: Vec<(String, Mask, String)> = Vec::new();
        for (path, rule) in &self.rules {
            if rule.file || rule.mask.intersect(makes).is_empty() {
                continue;
            }
            let Some(owner) = self.owned(path) else { continue };
            let has = |r: FsRight| rule.mask.contains_all(Mask::of(r));
            let mut want = Mask::of(FsRight::Refer);
            if has(FsRight::MakeReg) {
                want = want.with(FsRight::ReadFile).with(FsRight::WriteFile).with(FsRight::Truncate).with(FsRight::RemoveFile);
            }
            if has(FsRight::MakeDir) {
                want = want.with(FsRight::ReadDir).with(FsRight::RemoveDir);
            }
            if has(FsRight::MakeSym) || has(FsRight::MakeSock) || has(FsRight::MakeFifo) {
                want = want.with(FsRight::RemoveFile);
            }
            let add = want.minus(rule.mask);
            if !add.is_empty() {
                adds.push((path.clone(), add, owner));
            }
        }
        for (path, add, owner) in adds {
            let Some(rule) = self.rules.get_mut(&path) else { continue };
            rule.mask = rule.mask.union(add);
            rule.anticipated = rule.anticipated.union(add);
            let text = format!(
                "anticipated steady state: {owner} is the agent's, and a later run reads, rewrites, renames and removes \
what this run created here: +{}",
                add.label()
            );
            rule.reasons.insert(text, ReasonAcc { label: "anticipated", from: Vec::new(), count: 1 });
        }
    }

    /// Why the directory `path` belongs to the agent, if it does: the
    /// workdir, a temp dir, a tool cache, a directory this run created, or
    /// an application's own state directory (`~/.app`,
    /// `$XDG_CONFIG_HOME/app`, `~/.local/share/app`, `~/.local/state/app`).
    fn owned(&self, path: &str) -> Option<String> {
        if let Some(root) = self.layout.root_for(path) {
            return match root.kind {
                RootKind::Workdir => Some("the workdir".to_owned()),
                RootKind::Temp => Some(format!("temp dir {}", root.path)),
                RootKind::Cache => Some(format!("tool cache {}", root.path)),
                RootKind::System | RootKind::Sys => None,
            };
        }
        if self.paths.get(path).is_some_and(|a| a.born) {
            return Some(format!("{path}, which this run created,"));
        }
        self.layout.state_dir(path).map(|d| format!("its state directory {d}"))
    }

    /// Drops rules whose rights a directory rule on an ancestor already
    /// grants; the ancestor's explanation lists them.
    pub(super) fn drop_covered(&mut self) {
        let mut covered: Vec<(String, String)> = Vec::new();
        for (path, rule) in &self.rules {
            let mut up = parent(path);
            while let Some(a) = up {
                if let Some(ar) = self.rules.get(a)
                    && !ar.file
                    && ar.mask.contains_all(rule.mask)
                {
                    covered.push((path.clone(), a.to_owned()));
                    break;
                }
                up = parent(a);
            }
        }
        for (path, by) in covered {
            self.rules.remove(&path);
            if let Some(r) = self.rules.get_mut(&by) {
                let reason = r
                    .reasons
                    .entry("covers narrower rules with no extra rights".to_owned())
                    .or_insert_with(|| ReasonAcc { label: "covers", from: Vec::new(), count: 0 });
                reason.count += 1;
                if reason.from.len() < MAX_EXAMPLES {
                    reason.from.push(path);
                }
            }
        }
    }

    /// The workdir is the agent's, so its `.git/config` and `.git/hooks`
    /// (which git runs code from) cannot be protected: say so when the
    /// profile lets the agent write in a repository it used.
    pub(super) fn warn_workdir_git(&mut self) {
        let Some(cwd) = self.layout.cwd.clone() else { return };
        let git = format!("{cwd}/.git");
        let writes = self.rules.get(&cwd).is_some_and(|r| !r.file && !r.mask.minus(Mask::read_class()).is_empty());
        if writes && self.paths.keys().any(|p| is_at_or_beneath(p, &git)) {
            self.warnings.push(format!(
                "the workdir grant lets the command write {git}/config and {git}/hooks, which git runs code from \
(core.fsmonitor on your next `git status`, hooks on commit): nono cannot carve them out of the workdir; review \
`git config --local --list` and .git/hooks after a run"
            ));
        }
    }

    /// Checks every rule against the sensitive list once more: what
    /// placement got wrong is stripped (and warned about) rather than
    /// written into a profile `nono run` would refuse.
    pub(super) fn verify(&mut self) {
        let sensitive = &self.layout.sensitive;
        let mut stripped = Vec::new();
        for (path, rule) in &mut self.rules {
            if !path.starts_with('/') {
                continue;
            }
            let mut forbid = sensitive.forbidden_within(path);
            if !rule.file {
                forbid = forbid.union(sensitive.forbidden_above(path).0);
            }
            let bad = rule.mask.intersect(forbid);
            if !bad.is_empty() {
                rule.mask = rule.mask.minus(bad);
                rule.anticipated = rule.anticipated.minus(bad);
                stripped.push(format!("{path}: {}", bad.label()));
            }
        }
        self.rules.retain(|_, r| !r.mask.is_empty());
        for s in stripped {
            self.warnings.push(format!("not granted (it would expose a sensitive path): {s}"));
        }
    }

    /// How a rule path is spelled in the profile. The shared `/tmp` itself
    /// is never granted: the run's private temp dir (`$TMPDIR`, which
    /// `nono run` creates) takes its place. Narrower rules below `/tmp` (a
    /// file named by path) stay absolute.
    fn spell(&self, path: &str) -> String {
        if path == "/tmp" && self.layout.tmpdir.as_deref() != Some("/tmp") {
            return "$TMPDIR".to_owned();
        }
        self.layout.vars.express(path)
    }

    pub(super) fn finish(self) -> Built {
        let mut merged: BTreeMap<String, RuleAcc> = BTreeMap::new();
        for (path, acc) in &self.rules {
            let spelled = self.spell(path);
            // Two absolute paths spelled alike (`/tmp` and `$TMPDIR`): one rule.
            if let Some(m) = merged.get_mut(&spelled) {
                m.mask = m.mask.union(acc.mask);
                m.file &= acc.file;
                m.anticipated = m.anticipated.union(acc.anticipated);
                for (text, r) in &acc.reasons {
                    let e =
                        m.reasons.entry(text.clone()).or_insert_with(|| ReasonAcc { label: r.label, from: Vec::new(), count: 0 });
                    e.count += r.count;
                    e.from.extend(r.from.iter().take(MAX_EXAMPLES.saturating_sub(e.from.len())).cloned());
                }
                continue;
            }
            let reasons = acc
                .reasons
                .iter()
                .map(|(t, r)| (t.clone(), ReasonAcc { label: r.label, from: r.from.clone(), count: r.count }))
                .collect();
            merged.insert(spelled, RuleAcc { mask: acc.mask, file: acc.file, reasons, anticipated: acc.anticipated });
        }
        let mut rules = Vec::with_capacity(merged.len());
        let mut explanations = Vec::new();
        for (rule_path, acc) in merged {
            let labels: BTreeSet<&str> = acc.reasons.values().map(|r| r.label).collect();
            for (text, r) in acc.reasons {
                if r.count > 0 {
                    explanations.push(Explanation { rule_path: rule_path.clone(), from: r.from, paths: r.count, reason: text });
                }
            }
            rules.push(FsRule {
                path: rule_path,
                access: acc.mask.to_set(),
                file: acc.file,
                reason: Some(labels.into_iter().collect::<Vec<_>>().join(", ")),
                seen_in: None,
                anticipated: acc.anticipated.to_set(),
            });
        }
        rules.sort_by(|a, b| a.path.cmp(&b.path));
        Built { rules, brokered: Vec::new(), sensitive: self.hits.into_values().collect(), explanations, warnings: self.warnings }
    }
}
