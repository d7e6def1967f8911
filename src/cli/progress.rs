//! A progress line on stderr for long transfers (`zoe ws get` and `put`): redrawn in place at
//! most ten times a second, only when stderr is a terminal and the transfer is large enough to
//! be worth watching; nothing at all otherwise (scripts, logs, pipes).

use std::cell::Cell;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use zoe_actors::description::units::show_bytes;

/// Transfers smaller than this show no progress.
pub const SHOWN_FROM: u64 = 4 * 1024 * 1024;
/// Pause between two redraws.
const EVERY: Duration = Duration::from_millis(100);
/// Longest name shown, in characters.
const NAME_CHARS: usize = 40;

/// The progress of one transfer of `total` bytes.
pub struct Progress {
    name: String,
    total: u64,
    shown: bool,
    started: Instant,
    drawn: Cell<Option<Instant>>,
}

impl Progress {
    /// The progress of the transfer of `name` (a path, shown escaped and shortened), drawn
    /// when stderr is a terminal and `total` is at least [`SHOWN_FROM`].
    pub fn new(name: &str, total: u64) -> Progress {
        let shown = total >= SHOWN_FROM && std::io::stderr().is_terminal();
        Progress::with(name, total, shown)
    }

    fn with(name: &str, total: u64, shown: bool) -> Progress {
        let name = super::output::show(name);
        let count = name.chars().count();
        let name = if count > NAME_CHARS {
            let tail: String = name.chars().skip(count - (NAME_CHARS - 3)).collect();
            format!("...{tail}")
        } else {
            name.into_owned()
        };
        Progress { name, total, shown, started: Instant::now(), drawn: Cell::new(None) }
    }

    /// `done` bytes are through.
    pub fn update(&self, done: u64) {
        if !self.shown || self.drawn.get().is_some_and(|at| at.elapsed() < EVERY) {
            return;
        }
        self.drawn.set(Some(Instant::now()));
        self.draw(done);
    }

    /// The transfer is over: the last line is drawn complete and the cursor goes to the next line.
    pub fn finish(&self, done: u64) {
        if self.shown {
            self.draw(done);
            eprintln!();
        }
    }

    fn draw(&self, done: u64) {
        let mut err = std::io::stderr().lock();
        // A terminal that went away is no reason to stop a transfer.
        let _ = write!(err, "\r{}\x1b[K", self.line(done, self.started.elapsed()));
        let _ = err.flush();
    }

    /// `name  45%  90 MiB of 200 MiB  50 MiB/s`.
    fn line(&self, done: u64, elapsed: Duration) -> String {
        let percent = (done.min(self.total) * 100).checked_div(self.total).unwrap_or(100);
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 { format!("  {}/s", show_bytes((done as f64 / secs) as u64)) } else { String::new() };
        format!("{}  {percent:>3}%  {} of {}{rate}", self.name, show_bytes(done), show_bytes(self.total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_how_far_and_how_fast_with_the_name_escaped_and_shortened() {
        let p = Progress::with("data/\u{1b}]0;owned\u{7}.csv", 200 << 20, false);
        assert_eq!(
            p.line(50 << 20, Duration::from_secs(2)),
            "data/\\u{1b}]0;owned\\u{7}.csv   25%  50 MiB of 200 MiB  25 MiB/s"
        );
        let long = Progress::with(&"x".repeat(100), 10, false);
        assert_eq!(long.line(10, Duration::ZERO), format!("...{}  100%  10 bytes of 10 bytes", "x".repeat(37)));
        // Not a terminal: nothing is drawn, whatever the size.
        assert!(!Progress::with("big", 1 << 30, false).shown);
    }
}
