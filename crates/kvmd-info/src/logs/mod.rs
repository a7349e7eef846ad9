//! `/log` sources: the systemd journal (through `journalctl`) or the services' log files.
//!
//! kvmd reads the journal of the current boot for every unit named like
//! `kvmd(-\w+)*\.service` and prints `[<local time> <unit>] --- <message>\r\n` per entry
//! (spec `info-log.md` section 2). Both sources implement [`LogSource`]: the lines of the
//! last `seek` seconds, then with `follow` the new ones.
//!
//! - [`Journal`] (`journal.rs`): spawns `journalctl -o json` (the maintained reader;
//!   libsystemd's API is LGPL and thread-bound) and parses its lines; `kill_on_drop` ends it
//!   when the client goes away.
//! - [`Files`] (`files.rs`): without journald (the demo, CI containers) each service writes
//!   its log to `<dir>/<unit>.log`; this source reads those (a binary search finds `seek`;
//!   files are merged by time, streamed) and tails them with one shared tailer
//!   ([`FileTail`]) for all followers.
//!
//! [`start`] runs the configured source as a task that feeds a bounded channel; the HTTP
//! body is the receiving end, so a client that stops reading stops the reader, and one that
//! leaves ends it.

mod files;
mod journal;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use kvmd_core::service::CancellationToken;
use tokio::sync::mpsc;

use crate::config::{LogConfig, LogSourceKind};

pub use files::{FileTail, Files, TailLine};

/// The cap on `follow=1` readers (`log.max_followers`), one for the whole service.
#[derive(Debug, Clone)]
pub struct Followers(pub kvmd_core::limit::Limit);

impl Followers {
    /// The cap of `cfg`.
    pub fn new(cfg: &crate::config::LogConfig) -> Self {
        Self(kvmd_core::limit::Limit::new(cfg.max_followers, "log followers"))
    }
}
pub use journal::Journal;

/// A source of `/log` lines, formatted by [`format_line`].
pub trait LogSource: Send + Sync {
    /// Sends to `tx`, in time order, the lines of the last `seek` seconds (every line with
    /// 0); with `follow`, then every new line as it is written. Returns at the end of the
    /// lines (without `follow`), when the source ends, or once `tx` is closed. It waits
    /// while `tx` is full, so a client that stops reading stops the reading.
    fn read<'a>(&'a self, seek: u64, follow: bool, tx: &'a mpsc::Sender<Bytes>) -> BoxFuture<'a, ()>;
}

/// kvmd's unit filter: `kvmd(-\w+)*\.service`.
pub fn is_kvmd_unit(unit: &str) -> bool {
    let Some(mid) = unit.strip_prefix("kvmd").and_then(|u| u.strip_suffix(".service")) else { return false };
    if mid.is_empty() {
        return true;
    }
    let Some(rest) = mid.strip_prefix('-') else { return false };
    rest.split('-').all(|seg| !seg.is_empty() && seg.chars().all(|c| c.is_alphanumeric() || c == '_'))
}

/// One output line for an entry at `micros` (unix microseconds).
pub fn format_line(micros: i64, unit: &str, message: &str) -> String {
    use chrono::TimeZone;
    let t = chrono::Local
        .timestamp_micros(micros)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default();
    format!("[{t} {unit}] --- {}\r\n", message.trim_end())
}

/// The source that `kind` resolves to on this machine.
pub fn resolve(cfg: &LogConfig) -> LogSourceKind {
    match cfg.source {
        LogSourceKind::Auto => {
            let journald = ["/run/systemd/journal/socket"].iter().any(|p| Path::new(p).exists());
            if !cfg.journal_file.as_os_str().is_empty() || journald {
                LogSourceKind::Journal
            } else {
                LogSourceKind::Files
            }
        }
        k => k,
    }
}

/// The source `cfg` resolves to on this machine ([`resolve`]); `None` when disabled.
/// The files source's followers share `tail`.
pub fn source(cfg: &LogConfig, tail: Arc<FileTail>) -> Option<Box<dyn LogSource>> {
    match resolve(cfg) {
        LogSourceKind::Journal => Some(Box::new(Journal::new(cfg))),
        LogSourceKind::Files => Some(Box::new(Files::new(&cfg.dir, tail))),
        LogSourceKind::Auto | LogSourceKind::Disabled => None,
    }
}

/// Starts reading; lines arrive on the returned channel until the source ends (no
/// follow), the receiver is dropped, or `shutdown` fires.
pub fn start(
    cfg: LogConfig,
    seek: u64,
    follow: bool,
    shutdown: CancellationToken,
    client: Option<kvmd_core::net::ConnFd>,
    tail: Arc<FileTail>,
) -> mpsc::Receiver<Bytes> {
    // Nothing is older than the epoch: a larger seek (kvmd accepts any number) means
    // everything, and stays a valid `journalctl --since`.
    let epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(u64::MAX, |d| d.as_secs());
    let seek = seek.min(epoch);
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let work = async {
            if let Some(source) = source(&cfg, tail) {
                source.read(seek, follow, &tx).await;
            }
            if follow {
                // kvmd keeps a follow request open even when it has nothing to read.
                tx.closed().await;
            }
        };
        tokio::select! {
            () = work => {}
            () = tx.closed() => {}
            () = shutdown.cancelled() => {}
            () = kvmd_core::net::disconnected(client) => {}
        }
    });
    rx
}

/// Now, in unix microseconds.
fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn unit_filter_is_kvmds() {
        for ok in ["kvmd.service", "kvmd-auth.service", "kvmd-hid-x.service", "kvmd-a_b.service"] {
            assert!(is_kvmd_unit(ok), "{ok}");
        }
        for bad in ["kvmd-x@y.service", "kvmd-.service", "nginx.service", "kvmdx.service", "kvmd-auth.socket"] {
            assert!(!is_kvmd_unit(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn files_source_reads_seeks_and_follows() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let now = chrono::Utc::now();
        let old = (now - chrono::Duration::seconds(3600)).format("%Y-%m-%dT%H:%M:%S%.6fZ");
        let recent = now.format("%Y-%m-%dT%H:%M:%S%.6fZ");
        std::fs::write(dir.path().join("kvmd-auth.log"), format!("{old}  INFO a: old\n{recent}  INFO a: new\n"))
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("nginx.log"), "not ours\n").unwrap_or_else(|e| panic!("{e}"));
        let cfg = LogConfig { source: LogSourceKind::Files, dir: dir.path().into(), ..LogConfig::default() };
        let mut rx = start(cfg.clone(), 60, false, CancellationToken::new(), None, Default::default());
        let mut got = Vec::new();
        while let Some(b) = rx.recv().await {
            got.push(String::from_utf8_lossy(&b).into_owned());
        }
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].ends_with("kvmd-auth.service] --- INFO a: new\r\n"));
        // Follow: a line written later arrives while the stream is open.
        let mut rx = start(cfg, 0, true, CancellationToken::new(), None, Default::default());
        for _ in 0..2 {
            let _ = rx.recv().await;
        }
        let later = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ");
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("kvmd-auth.log"))
            .unwrap_or_else(|e| panic!("{e}"));
        writeln!(f, "{later}  INFO a: later").unwrap_or_else(|e| panic!("{e}"));
        let line = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.ok().flatten().unwrap_or_default();
        assert!(String::from_utf8_lossy(&line).ends_with("--- INFO a: later\r\n"));
    }
}
