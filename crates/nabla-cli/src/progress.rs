//! Progress display: an indicatif bar on a terminal, plain lines otherwise.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    last_line: Option<Instant>,
    last_pct: u64,
    quiet: bool,
}

impl Progress {
    /// A display for one run; `quiet` prints nothing (but still tracks the run).
    pub fn new(label: &str, quiet: bool) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(10));
            b.set_style(
                ProgressStyle::with_template("{prefix:.bold} [{bar:30.cyan/blue}] {pos}/{len} {msg}  [{elapsed_precise} < {eta}, {per_sec}]")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            b.set_prefix(label.to_string());
            b
        });
        Progress {
            bar,
            label: label.to_string(),
            last_line: None,
            last_pct: u64::MAX,
            quiet,
        }
    }

    pub fn update(&mut self, done: u64, total: u64, status: &str) {
        if let Some(b) = &self.bar {
            b.set_length(total);
            b.set_position(done);
            b.set_message(status.to_string());
            return;
        }
        if self.quiet || total == 0 {
            return;
        }
        // Plain lines: every 10% and at most every 2 seconds, plus the last step.
        let pct = done * 10 / total;
        let due = self
            .last_line
            .is_none_or(|t| t.elapsed() > Duration::from_secs(2));
        if done == total || (pct != self.last_pct && due) {
            eprintln!("{}: step {done}/{total}  {status}", self.label);
            self.last_pct = pct;
            self.last_line = Some(Instant::now());
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
