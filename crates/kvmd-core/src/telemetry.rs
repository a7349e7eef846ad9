//! Logging set-up: the only place that builds the tracing subscriber.
//!
//! Text records are handed to a writer thread (tracing-appender's non-blocking writer,
//! lossless: a full buffer blocks rather than drops), so a request never waits for a
//! `write(2)` of its access-log line; [`init`] keeps the writer's guard until exit.
//!
//! Under systemd, stderr is a journal stream (`JOURNAL_STREAM` names its device and inode);
//! then records go to journald natively, with their level as the journal priority. In the
//! demo and tests they go to stderr as text, and optionally to a log file as well (the
//! file source that kvmd-info reads where there is no journal).

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

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

/// Lines the writer thread may have queued; its channel is allocated up front, so the
/// library default (128 000) would cost megabytes of memory per service.
const BUFFERED_LINES: usize = 4096;

/// Guards of the writer threads: dropping one flushes and stops its thread, so they live
/// as long as the process.
static GUARDS: OnceLock<std::sync::Mutex<Vec<tracing_appender::non_blocking::WorkerGuard>>> = OnceLock::new();

fn keep(guard: tracing_appender::non_blocking::WorkerGuard) {
    let g = GUARDS.get_or_init(|| std::sync::Mutex::new(Vec::new()));
    g.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(guard);
}

/// Flushes buffered log lines (call before exiting).
pub fn flush() {
    if let Some(g) = GUARDS.get() {
        g.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
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
    let stderr = if journal.is_none() {
        let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
            .lossy(false)
            .buffered_lines_limit(BUFFERED_LINES)
            .finish(std::io::stderr());
        keep(guard);
        Some(tracing_subscriber::fmt::layer().with_writer(writer).with_ansi(false).with_target(true).boxed())
    } else {
        None
    };
    let file = match &args.log_file {
        Some(path) => {
            let f = OpenOptions::new().create(true).append(true).open(path)?;
            let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .lossy(false)
                .buffered_lines_limit(BUFFERED_LINES)
                .finish(f);
            keep(guard);
            Some(tracing_subscriber::fmt::layer().with_writer(writer).with_ansi(false).with_target(true).boxed())
        }
        None => None,
    };
    tracing_subscriber::registry().with(filter).with(journal).with(stderr).with(file).try_init()?;
    Ok(())
}
