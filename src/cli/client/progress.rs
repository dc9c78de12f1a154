//! Transfer progress on stderr, self-drawn (no progress-bar crate): when stderr is a terminal,
//! one line per file redrawn with `\r` (`[2/5] data/x.bin [######----] 3.0 MiB/8.0 MiB 37%`);
//! otherwise (CI logs) one plain line per finished file.
//!
//! A [`Meter`] is cheap to clone and `Send`, so an upload's body stream can count its own
//! bytes.

use std::io::{IsTerminal as _, Write as _};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::human_bytes;

/// Least time between two redraws of a line.
const REDRAW_INTERVAL: Duration = Duration::from_millis(100);
/// Width of the bar, in characters.
const BAR_WIDTH: u64 = 24;

/// The progress of one file's transfer.
#[derive(Clone)]
pub struct Meter {
    inner: Arc<MeterInner>,
}

struct MeterInner {
    label: String,
    total: Option<u64>,
    done: AtomicU64,
    terminal: bool,
    drawn: AtomicBool,
    last_draw: Mutex<Option<Instant>>,
}

impl Meter {
    /// Starts the meter of `label` (`[i/n] path`) with `total` bytes when known; draws on a
    /// terminal only when `terminal`.
    #[must_use]
    pub fn new(label: String, total: Option<u64>, terminal: bool) -> Self {
        Self {
            inner: Arc::new(MeterInner {
                label,
                total,
                done: AtomicU64::new(0),
                terminal,
                drawn: AtomicBool::new(false),
                last_draw: Mutex::new(None),
            }),
        }
    }

    /// A meter drawing on stderr when stderr is a terminal.
    #[must_use]
    pub fn on_stderr(label: String, total: Option<u64>) -> Self {
        Self::new(label, total, std::io::stderr().is_terminal())
    }

    /// Counts `bytes` more, redrawing the line at most every 100 ms.
    pub fn add(&self, bytes: u64) {
        let done = self.inner.done.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if !self.inner.terminal {
            return;
        }
        let Ok(mut last) = self.inner.last_draw.lock() else {
            return;
        };
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < REDRAW_INTERVAL) {
            return;
        }
        *last = Some(now);
        self.inner.drawn.store(true, Ordering::Relaxed);
        let line = self.line(done);
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r\x1b[2K{line}");
        let _ = stderr.flush();
    }

    /// Bytes counted so far.
    #[must_use]
    pub fn done(&self) -> u64 {
        self.inner.done.load(Ordering::Relaxed)
    }

    /// Ends the meter with `verb` (`uploaded`, `downloaded`): the final line.
    pub fn finish(&self, verb: &str) {
        let done = self.done();
        let line = format!("{verb} {} ({})", self.inner.label, human_bytes(done));
        self.end_with(&line);
    }

    /// Ends the meter of a failed transfer, leaving the terminal on a fresh line.
    pub fn abandon(&self) {
        if self.inner.terminal && self.inner.drawn.load(Ordering::Relaxed) {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr);
        }
    }

    fn end_with(&self, line: &str) {
        let mut stderr = std::io::stderr().lock();
        if self.inner.terminal {
            let _ = writeln!(stderr, "\r\x1b[2K{line}");
        } else {
            let _ = writeln!(stderr, "{line}");
        }
    }

    /// The line drawn for `done` bytes.
    fn line(&self, done: u64) -> String {
        let label = &self.inner.label;
        match self.inner.total {
            Some(total) if total > 0 => {
                let done = done.min(total);
                let filled = done * BAR_WIDTH / total;
                let percent = done * 100 / total;
                let bar: String = (0..BAR_WIDTH)
                    .map(|cell| if cell < filled { '#' } else { '-' })
                    .collect();
                format!(
                    "{label} [{bar}] {}/{} {percent}%",
                    human_bytes(done),
                    human_bytes(total)
                )
            }
            _ => format!("{label} {}", human_bytes(done)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_a_bar_sizes_and_percent() {
        let meter = Meter::new("[1/2] a.bin".to_owned(), Some(4 * 1024 * 1024), false);
        meter.add(1024 * 1024);
        assert_eq!(meter.done(), 1024 * 1024);
        assert_eq!(
            meter.line(meter.done()),
            "[1/2] a.bin [######------------------] 1.0 MiB/4.0 MiB 25%"
        );
        let unknown = Meter::new("b".to_owned(), None, false);
        assert_eq!(unknown.line(2048), "b 2.0 KiB");
    }
}
