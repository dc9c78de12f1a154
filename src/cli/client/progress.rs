//! Transfer progress on stderr (`indicatif`): on a terminal, one overall bar (files and bytes)
//! with one bar per file in flight under it, and a line per finished file above them;
//! otherwise (CI logs, pipes) one plain line per finished file. `--quiet` draws nothing.
//!
//! A [`Meter`] is cheap to clone and `Send`, so an upload's body stream can count its own
//! bytes while other files transfer concurrently.

use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{human_bytes, out};

/// The progress of a whole transfer (several files).
#[derive(Clone)]
pub struct Transfer {
    bars: Option<Bars>,
    quiet: bool,
}

#[derive(Clone)]
struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
}

impl Transfer {
    /// Starts the progress of `files` files, `bytes` bytes in all; bars are drawn only when
    /// stderr is a terminal and `--quiet` was not given.
    #[must_use]
    pub fn start(verb: &str, files: usize, bytes: u64) -> Self {
        let quiet = out::quiet();
        let terminal = std::io::stderr().is_terminal();
        let bars = (terminal && !quiet).then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let overall = multi.add(ProgressBar::new(bytes));
            overall.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            overall.set_prefix(format!("{verb} 0/{files} files"));
            Bars { multi, overall }
        });
        Self { bars, quiet }
    }

    /// The meter of one file (`label`), `size` bytes when known.
    #[must_use]
    pub fn file(&self, label: String, size: Option<u64>) -> Meter {
        let bar = self.bars.as_ref().map(|bars| {
            let bar = bars.multi.add(ProgressBar::new(size.unwrap_or(0)));
            bar.set_style(
                ProgressStyle::with_template("  {wide_msg} [{bar:20}] {bytes}/{total_bytes}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_message(label.clone());
            bar
        });
        Meter {
            inner: Arc::new(MeterInner {
                label,
                bar,
                transfer: self.clone(),
                done: AtomicU64::new(0),
            }),
        }
    }

    /// Counts one finished file in the overall bar.
    fn file_done(&self, files_done: u64, files: u64, verb: &str) {
        if let Some(bars) = &self.bars {
            bars.overall
                .set_prefix(format!("{verb} {files_done}/{files} files"));
        }
    }

    /// Prints a line above the bars (or on stderr), unless `--quiet`.
    pub fn println(&self, line: &str) {
        if self.quiet {
            return;
        }
        match &self.bars {
            Some(bars) => {
                let _ = bars.multi.println(line);
            }
            None => {
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }
        }
    }

    /// Removes the bars.
    pub fn finish(&self) {
        if let Some(bars) = &self.bars {
            bars.overall.finish_and_clear();
            let _ = bars.multi.clear();
        }
    }
}

/// The progress of one file's transfer.
#[derive(Clone)]
pub struct Meter {
    inner: Arc<MeterInner>,
}

struct MeterInner {
    label: String,
    bar: Option<ProgressBar>,
    transfer: Transfer,
    done: AtomicU64,
}

impl Meter {
    /// Counts `bytes` more.
    pub fn add(&self, bytes: u64) {
        self.inner.done.fetch_add(bytes, Ordering::Relaxed);
        if let Some(bar) = &self.inner.bar {
            bar.inc(bytes);
        }
        if let Some(bars) = &self.inner.transfer.bars {
            bars.overall.inc(bytes);
        }
    }

    /// Bytes counted so far.
    #[must_use]
    pub fn done(&self) -> u64 {
        self.inner.done.load(Ordering::Relaxed)
    }

    /// Ends the meter with `verb` (`uploaded`, `downloaded`): the final line.
    pub fn finish(&self, verb: &str) {
        if let Some(bar) = &self.inner.bar {
            bar.finish_and_clear();
        }
        self.inner
            .transfer
            .println(&finished_line(verb, &self.inner.label, self.done()));
    }

    /// Ends the meter of a failed transfer (its bar removed).
    pub fn abandon(&self) {
        if let Some(bar) = &self.inner.bar {
            bar.finish_and_clear();
        }
    }
}

/// Counts finished files for the overall bar.
pub struct Counter {
    transfer: Transfer,
    files: u64,
    done: AtomicU64,
    verb: String,
}

impl Counter {
    /// A counter of `files` files for `transfer`.
    #[must_use]
    pub fn new(transfer: &Transfer, verb: &str, files: usize) -> Self {
        Self {
            transfer: transfer.clone(),
            files: files as u64,
            done: AtomicU64::new(0),
            verb: verb.to_owned(),
        }
    }

    /// One more file finished.
    pub fn tick(&self) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        self.transfer.file_done(done, self.files, &self.verb);
    }
}

/// The line printed when a file is done.
fn finished_line(verb: &str, label: &str, bytes: u64) -> String {
    format!("{verb} {label} ({})", human_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_name_the_file_and_its_size() {
        assert_eq!(
            finished_line("uploaded", "[1/2] a.bin", 4 * 1024 * 1024),
            "uploaded [1/2] a.bin (4.0 MiB)"
        );
        let transfer = Transfer {
            bars: None,
            quiet: true,
        };
        let meter = transfer.file("b".to_owned(), Some(10));
        meter.add(4);
        meter.add(6);
        assert_eq!(meter.done(), 10);
    }
}
