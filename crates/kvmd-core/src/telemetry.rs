//! Logging set-up: the only place that builds the tracing subscriber.
//!
//! Text records are appended to a buffer that one writer thread writes out 20 ms after a
//! batch's first line (lossless: a full buffer makes loggers wait rather than drop), so a
//! request never waits for a `write(2)` of its access-log line, nor wakes a thread for
//! it; [`flush`] writes what is left before exit.
//!
//! Under systemd, stderr is a journal stream (`JOURNAL_STREAM` names its device and inode);
//! then records go to journald natively, with their level as the journal priority. In the
//! demo and tests they go to stderr as text, and optionally to a log file as well (the
//! file source that kvmd-info reads where there is no journal).

use std::fs::OpenOptions;
use std::path::PathBuf;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Where log records go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// journald when stderr is a journal stream, else text on stderr.
    #[default]
    Auto,
    /// journald (falls back to text when the journal socket is missing).
    Journal,
    /// Text on stderr.
    Text,
}

/// The logging options every binary shares.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LogArgs {
    /// Log destination.
    #[arg(long, value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
    /// Filter in `RUST_LOG` syntax (the `RUST_LOG` variable wins when set).
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Also appends text lines to this file.
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
}

/// How long a line may wait in the buffer before the writer thread writes it.
const FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(20);
/// A buffer this full is written at once, without waiting for the interval.
const FLUSH_BYTES: usize = 64 * 1024;
/// A buffer this full makes loggers wait for the writer (lossless back-pressure).
const MAX_BYTES: usize = 4 * 1024 * 1024;

/// The text sinks' shared buffer. Loggers append whole lines under the lock; one writer
/// thread, woken by the first line of a batch, swaps the buffer out [`FLUSH_INTERVAL`]
/// later (sooner when it is large) and writes it to every sink with one `write(2)` each.
/// An idle service's writer sleeps without a timer.
///
/// Why not tracing-appender's non-blocking writer: it wakes its thread for every line, and
/// under load that wake-up (a futex and a context switch per access-log line) cost more
/// than the line itself. Here a burst of lines costs one wake-up per interval.
struct Batch {
    state: std::sync::Mutex<BatchState>,
    /// Signals the writer: a batch began or grew large, or stop.
    ready: std::sync::Condvar,
    /// Signals the loggers waiting for room in a full buffer.
    room: std::sync::Condvar,
}

struct BatchState {
    buf: Vec<u8>,
    stop: bool,
}

impl Batch {
    fn new() -> Self {
        Self {
            state: std::sync::Mutex::new(BatchState { buf: Vec::new(), stop: false }),
            ready: std::sync::Condvar::new(),
            room: std::sync::Condvar::new(),
        }
    }

    /// Makes the writer write what is left and return.
    fn stop(&self) {
        self.lock().stop = true;
        self.ready.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BatchState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn append(&self, line: &[u8]) {
        let mut st = self.lock();
        while st.buf.len() >= MAX_BYTES && !st.stop {
            st = self.room.wait(st).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        let first = st.buf.is_empty();
        st.buf.extend_from_slice(line);
        // The first line of a batch starts the writer's interval; a large batch ends it.
        if first || st.buf.len() >= FLUSH_BYTES {
            self.ready.notify_one();
        }
    }

    /// The writer thread: until stopped, and then once more for what is left.
    fn run(&self, mut sinks: Vec<Box<dyn std::io::Write + Send>>) {
        use std::io::Write as _;
        let mut out = Vec::new();
        loop {
            let stop = {
                let mut st = self.lock();
                // Idle: no timer, no wake-up until a line comes.
                while st.buf.is_empty() && !st.stop {
                    st = self.ready.wait(st).unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                // Then the batch gathers for one interval (less if it grows large).
                let deadline = std::time::Instant::now() + FLUSH_INTERVAL;
                while !st.stop && st.buf.len() < FLUSH_BYTES {
                    let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) else { break };
                    st = self.ready.wait_timeout(st, left).unwrap_or_else(std::sync::PoisonError::into_inner).0;
                }
                std::mem::swap(&mut st.buf, &mut out);
                st.stop
            };
            self.room.notify_all();
            if !out.is_empty() {
                for sink in &mut sinks {
                    // A sink that fails (a closed stderr) must not stop the others.
                    let _ = sink.write_all(&out).and_then(|()| sink.flush());
                }
                out.clear();
            }
            if stop {
                return;
            }
        }
    }
}

/// The [`tracing_subscriber::fmt::MakeWriter`] of the text sinks: each formatted line
/// goes into the [`Batch`] in one piece.
#[derive(Clone)]
struct BatchWriter(std::sync::Arc<Batch>);

impl std::io::Write for BatchWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchWriter {
    type Writer = Self;

    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

/// The running writer thread, kept until [`flush`].
struct Writer {
    batch: std::sync::Arc<Batch>,
    thread: std::thread::JoinHandle<()>,
}

static WRITER: std::sync::Mutex<Option<Writer>> = std::sync::Mutex::new(None);

/// Starts the writer thread for `sinks` and returns the writer loggers use.
fn start_writer(sinks: Vec<Box<dyn std::io::Write + Send>>) -> anyhow::Result<BatchWriter> {
    let batch = std::sync::Arc::new(Batch::new());
    let b = batch.clone();
    let thread = std::thread::Builder::new().name("log-writer".into()).spawn(move || b.run(sinks))?;
    *WRITER.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Writer { batch: batch.clone(), thread });
    Ok(BatchWriter(batch))
}

/// Writes every buffered log line and stops the writer thread (call before exiting;
/// lines logged after it go nowhere).
pub fn flush() {
    let writer = WRITER.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
    if let Some(w) = writer {
        w.batch.stop();
        let _ = w.thread.join();
    }
}

/// Whether stderr is the journal stream systemd connected (systemd.exec(5)).
pub fn stderr_is_journal() -> bool {
    let Some(want) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(st) = nix::sys::stat::fstat(std::io::stderr()) else {
        return false;
    };
    want.to_str() == Some(format!("{}:{}", st.st_dev, st.st_ino).as_str())
}

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init(args: &LogArgs) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(&args.log_level))?;
    let journal = match args.log_format {
        LogFormat::Auto if stderr_is_journal() => tracing_journald::layer().ok(),
        LogFormat::Journal => tracing_journald::layer().ok(),
        _ => None,
    };
    let mut sinks: Vec<Box<dyn std::io::Write + Send>> = Vec::new();
    if journal.is_none() {
        sinks.push(Box::new(std::io::stderr()));
    }
    if let Some(path) = &args.log_file {
        sinks.push(Box::new(OpenOptions::new().create(true).append(true).open(path)?));
    }
    let text = if sinks.is_empty() {
        None
    } else {
        let writer = start_writer(sinks)?;
        Some(tracing_subscriber::fmt::layer().with_writer(writer).with_ansi(false).with_target(true))
    };
    tracing_subscriber::registry().with(filter).with(journal).with(text).try_init()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A sink that keeps what it is given, slowly (so the buffer fills up).
    struct Slow(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Slow {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            std::thread::sleep(std::time::Duration::from_millis(50));
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_reaches_every_sink_in_order_even_past_the_buffer_limit() {
        let batch = Arc::new(Batch::new());
        let (a, b) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
        let sinks: Vec<Box<dyn std::io::Write + Send>> = vec![Box::new(Slow(a.clone())), Box::new(Slow(b.clone()))];
        let bt = batch.clone();
        let thread = std::thread::spawn(move || bt.run(sinks));
        // 3 loggers, 12 MiB in all: three times what the buffer may hold.
        let loggers: Vec<_> = (0..3)
            .map(|t| {
                let w = BatchWriter(batch.clone());
                std::thread::spawn(move || {
                    use std::io::Write as _;
                    let mut w = w;
                    for i in 0..40_000 {
                        w.write_all(format!("{t} {i:08} {}\n", "x".repeat(90)).as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for l in loggers {
            l.join().unwrap();
        }
        batch.stop();
        thread.join().unwrap();
        let a = String::from_utf8(a.lock().unwrap().clone()).unwrap();
        assert_eq!(a.as_bytes(), b.lock().unwrap().as_slice(), "both sinks got the same bytes");
        for t in 0..3 {
            let mine: Vec<&str> = a.lines().filter(|l| l.starts_with(&format!("{t} "))).collect();
            assert_eq!(mine.len(), 40_000, "no line of logger {t} lost");
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "logger {t}'s lines in order, whole");
        }
    }
}
