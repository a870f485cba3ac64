//! Live progress of a recording, shown without drawing on the command's
//! screen. An interactive agent (a TUI) owns the terminal while it runs:
//! a spinner redrawn under it corrupts what the user sees. So the default
//! (`auto`) puts progress in the terminal's title (OSC 2), which no
//! screen content depends on, and uses a status line only when none of
//! the command's stdio is a terminal. The title is pushed and set once,
//! before the command starts, and popped (and cleared, for terminals
//! without a title stack) after. nono never writes it while the command
//! runs: it cannot see whether the agent set a title of its own, and a
//! title an agent set must stay (so the title carries no live counts).

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

/// How a recording shows its progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// A live spinner line when stderr is a terminal, a plain line every
    /// 10 s otherwise (unless `NONO_PROGRESS=off`).
    Line,
    /// The terminal title (OSC 2), set once before the command starts,
    /// when stderr is a terminal; else nothing.
    Title,
    /// Nothing.
    Off,
}

impl Progress {
    /// `--progress auto`: a line only when the command's stdio (inherited
    /// from nono) has no terminal; otherwise the command holds the
    /// terminal and only the title may change.
    #[must_use]
    pub fn auto() -> Progress {
        let tty = std::io::stdin().is_terminal() || std::io::stdout().is_terminal() || std::io::stderr().is_terminal();
        if tty { Progress::Title } else { Progress::Line }
    }
}

/// Plain lines (stderr not a terminal) this often.
const PLAIN_EVERY: Duration = Duration::from_secs(10);

/// The live display of one recording.
pub(crate) struct Display {
    bar: indicatif::ProgressBar,
    title_set: bool,
    plain: bool,
    started: Instant,
    last_plain: Instant,
}

impl Display {
    /// Call before the command starts: the title is set here or never.
    pub(crate) fn new(progress: Progress, started: Instant) -> Display {
        let tty = std::io::stderr().is_terminal();
        let bar = if progress == Progress::Line && tty {
            let bar = indicatif::ProgressBar::new_spinner();
            if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} nono: recording {elapsed} · {msg}") {
                bar.set_style(style);
            }
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        let plain = progress == Progress::Line && !tty && !matches!(std::env::var("NONO_PROGRESS").as_deref(), Ok("off"));
        let title_set = progress == Progress::Title && tty;
        if title_set {
            // Push the title (xterm's title stack), so the user's own
            // title comes back at the end.
            let _ = write!(std::io::stderr(), "\x1b[22;0t\x1b]2;nono: recording\x07");
        }
        Display { bar, title_set, plain, started, last_plain: Instant::now() }
    }

    /// Called on every tick with the running totals.
    pub(crate) fn update(&mut self, events: u64, lost: u64) {
        self.bar.set_message(format!("{events} events, {lost} lost"));
        self.bar.tick();
        let secs = self.started.elapsed().as_secs();
        if self.plain && self.last_plain.elapsed() >= PLAIN_EVERY {
            self.last_plain = Instant::now();
            eprintln!("nono: recording {secs}s, {events} events, {lost} lost");
        }
    }

    /// Clears the line and restores the title (idempotent).
    pub(crate) fn finish(&mut self) {
        self.bar.finish_and_clear();
        if self.title_set {
            // Clear, then pop: terminals without a title stack keep an
            // empty title rather than a stale "recording".
            let _ = write!(std::io::stderr(), "\x1b]2;\x07\x1b[23;0t");
            self.title_set = false;
        }
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        self.finish();
    }
}
