//! Progress on stderr for long reads: bytes read of the total, speed and
//! events decoded. Shown only on a terminal, and only once a query has run
//! for a second, so quick queries and pipelines see nothing.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::report::Report;

/// A running progress display; `finish` clears it.
pub struct Progress {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Progress {
    /// Starts the display thread. `total` is the input size, if known.
    pub fn start(report: Arc<Report>, total: Option<u64>) -> Self {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut bar: Option<ProgressBar> = None;
            while let Err(RecvTimeoutError::Timeout) =
                stopped.recv_timeout(Duration::from_millis(200))
            {
                if started.elapsed() < Duration::from_secs(1) {
                    continue;
                }
                let bar = bar.get_or_insert_with(|| new_bar(total));
                bar.set_position(report.bytes_read());
                bar.set_message(format!("{} events", report.events()));
            }
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
        });
        Self { stop, thread }
    }

    pub fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

fn new_bar(total: Option<u64>) -> ProgressBar {
    let bar = match total {
        Some(t) => ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr()),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
    };
    let template = match total {
        Some(_) => "{bar:30} {bytes}/{total_bytes} {bytes_per_sec} {msg} ({eta} left)",
        None => "{spinner} {bytes} {bytes_per_sec} {msg}",
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}
