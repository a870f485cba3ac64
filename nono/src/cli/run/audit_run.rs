//! `nono run --audit`: the sandboxed command is recorded like `nono learn`
//! records it, and its denials are attributed and summarised at the end.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;

use super::{RunArgs, summary, supervised};
use crate::cli::common;
use crate::record::{self, BackendChoice, session, spawn};
use crate::store::Store;

/// `run --audit`: the sandboxed command is recorded like `nono learn`
/// records it, so what it did (and what was denied) lands in the store.
pub(super) struct AuditRun {
    pub(super) recorder: Box<dyn record::Recorder>,
    pub(super) store: Store,
    pub(super) id: i64,
    pub(super) tx: tokio::sync::mpsc::Sender<Vec<crate::event::Event>>,
    pub(super) writer: crate::store::WriterHandle,
    /// The supervisor's own refusals, for attribution.
    pub(super) decisions: crate::enforce::attribute::DecisionLog,
    /// Landlock's audit records (`--kernel-audit`).
    pub(super) kaudit: Option<record::kaudit::KernelAudit>,
    pub(super) grants: crate::learn::Grants,
    pub(super) who: crate::enforce::sensitive::Who,
    /// How to name the profile in the amend command.
    pub(super) profile: Option<String>,
}

impl AuditRun {
    /// Loads the recorder and opens the session before the command starts.
    pub(super) fn start(
        args: &RunArgs,
        cwd: &Path,
        identity: Option<&spawn::Identity>,
        grants: crate::learn::Grants,
        enforced: Option<&crate::store::EnforcedProfile>,
        tmpdir: &Path,
    ) -> anyhow::Result<AuditRun> {
        let db = crate::cli::common::db_path(args.db.as_deref(), identity)?;
        let offsets = record::btf::running_kernel_offsets().context("reading kernel struct offsets from BTF")?;
        let (recorder, _) = crate::cli::common::recorder::load_recorder(BackendChoice::Auto, &offsets, 4 << 20)?;
        let store = Store::open(&db)?;
        let backend = recorder.backend();
        let mut ctx = crate::cli::common::context::learn_context(cwd, identity, &args.sandbox.allow_sensitive, true);
        // The command's `$TMPDIR` is the run's own: what it did there is
        // learned (and amended) as `$TMPDIR/...`.
        ctx.tmpdir = tmpdir.to_path_buf();
        let id = store.begin_session(&crate::store::NewSession {
            kind: crate::store::SessionKind::Run,
            profile: args.sandbox.profile.clone(),
            context: serde_json::to_string(&ctx).ok(),
            ..common::new_session(&args.sandbox.command, cwd, identity, backend)
        })?;
        if let Some(p) = enforced {
            store.set_enforced_profile(id, p)?;
        }
        let (tx, writer) = crate::store::spawn_writer(&db, id)?;
        let kaudit = if args.kernel_audit {
            Some(record::kaudit::KernelAudit::open(true).context("reading Landlock's records from the kernel audit log")?)
        } else {
            None
        };
        let who = identity.map_or_else(crate::enforce::sensitive::Who::current, |i| crate::enforce::sensitive::Who {
            uid: i.uid,
            gid: i.gid,
            groups: i.groups.clone(),
            is_self: false,
        });
        Ok(AuditRun {
            recorder,
            store,
            id,
            tx,
            writer,
            decisions: std::sync::Arc::default(),
            kaudit,
            grants,
            who,
            profile: args.sandbox.profile.clone(),
        })
    }

    /// Releases and records the command; stops the broker (which shares
    /// the writer's channel) before the session is closed.
    pub(super) fn supervise(
        mut self,
        gated: spawn::Gated,
        sigfd: nix::sys::signalfd::SignalFd,
        sup: Option<supervised::Supervised>,
    ) -> anyhow::Result<ExitCode> {
        let outcome = session::run_gated(self.recorder.as_mut(), gated, session::Progress::Off, self.tx, sigfd);
        drop(self.recorder);
        if let Some(sup) = sup {
            sup.finish();
        }
        let (outcome, end) =
            common::close_session(&self.store, self.id, outcome, self.writer.join(), "recording the sandboxed run")?;
        let id = self.id;
        let landlock = self.kaudit.as_mut().map(|k| k.drain(std::time::Duration::from_millis(300), true)).unwrap_or_default();
        drop(self.kaudit.take());
        let decisions = self.decisions.lock().map(|d| d.clone()).unwrap_or_default();
        let attributor = crate::enforce::attribute::Attributor { grants: self.grants, who: self.who, landlock, decisions };
        let denied = self.store.attribute_denials(id, |e| attributor.classify(e)).context("attributing denials")?;
        eprintln!("nono: audited as session {id}: {} events, {denied} sandbox denial(s)", end.events);
        if denied > 0 {
            summary::print(&self.store, id, self.profile.as_deref())?;
        }
        Ok(ExitCode::from(outcome.status.exit_code()))
    }
}
