//! Progress of a long run (`train`, `fit`): a bar on a terminal, otherwise
//! one line every 5 % of the iterations (logs, CI).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::output::note;

pub struct Reporter {
    bar: Option<ProgressBar>,
    every: usize,
}

impl Reporter {
    pub fn new(iterations: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(iterations as u64);
            let style = ProgressStyle::with_template(
                "{bar:30.cyan/blue} {pos:>6}/{len} {msg} [{elapsed_precise}, eta {eta}]",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar
        });
        Reporter {
            bar,
            every: (iterations / 20).max(1),
        }
    }

    /// Reports iteration `iteration` of `iterations` with the message `msg`
    /// (built only when it is shown).
    pub fn update(
        &mut self,
        iteration: usize,
        iterations: usize,
        elapsed: Duration,
        msg: impl FnOnce() -> String,
    ) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(iteration as u64);
                bar.set_message(msg());
            }
            None if iteration.is_multiple_of(self.every) || iteration == iterations => {
                note!(
                    "iteration {iteration:>6}/{iterations}  {}  ({:.1} s)",
                    msg(),
                    elapsed.as_secs_f64()
                );
            }
            None => {}
        }
    }

    /// Whether progress shows as a bar (a terminal) rather than log lines.
    pub fn is_bar(&self) -> bool {
        self.bar.is_some()
    }

    /// A line of its own, above the bar when there is one.
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => note!("{line}"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
