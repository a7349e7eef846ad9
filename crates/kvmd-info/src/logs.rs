//! `/log` sources: the systemd journal (through `journalctl`) or the services' log files.
//!
//! kvmd reads the journal of the current boot for every unit named like
//! `kvmd(-\w+)*\.service` and prints `[<local time> <unit>] --- <message>\r\n` per entry
//! (spec `info-log.md` section 2). We spawn `journalctl -o json` (the maintained reader;
//! libsystemd's API is LGPL and thread-bound) and parse its lines; `kill_on_drop` ends it
//! when the client goes away. Without journald (the demo, CI containers) each service
//! writes its log to `<dir>/<unit>.log` and the files source reads and tails those.
//!
//! Both run as a task that feeds a bounded channel; the HTTP body is the receiving end, so
//! a client that stops reading stops the reader, and one that leaves ends it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use kvmd_core::service::CancellationToken;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use crate::config::{LogConfig, LogSourceKind};

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

/// Starts reading; lines arrive on the returned channel until the source ends (no
/// follow), the receiver is dropped, or `shutdown` fires.
pub fn start(
    cfg: LogConfig,
    seek: u64,
    follow: bool,
    shutdown: CancellationToken,
    client: Option<kvmd_core::net::ConnFd>,
) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let work = async {
            match resolve(&cfg) {
                LogSourceKind::Journal => journal(&cfg, seek, follow, &tx).await,
                LogSourceKind::Files => files(&cfg.dir, seek, follow, &tx).await,
                LogSourceKind::Auto | LogSourceKind::Disabled => {}
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

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// A journal field: a string, or bytes when it holds control characters or bad UTF-8.
fn field_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(a) => {
            let bytes: Vec<u8> = a.iter().filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok())).collect();
            Some(String::from_utf8_lossy(&bytes).into_owned())
        }
        _ => None,
    }
}

async fn journal(cfg: &LogConfig, seek: u64, follow: bool, tx: &mpsc::Sender<Bytes>) {
    let mut cmd = tokio::process::Command::new(&cfg.journalctl);
    cmd.args(["--output=json", "--all", "--no-pager", "--output-fields=MESSAGE,_SYSTEMD_UNIT"]);
    if cfg.journal_file.as_os_str().is_empty() {
        cmd.arg("--boot");
    } else {
        cmd.arg(format!("--file={}", cfg.journal_file.display()));
    }
    if seek > 0 {
        cmd.arg(format!("--since=-{seek}s"));
    }
    if follow {
        cmd.args(["--follow", "--lines=all"]);
    }
    cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null());
    cmd.kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot start journalctl");
            return;
        }
    };
    let Some(out) = child.stdout.take() else { return };
    let mut lines = tokio::io::BufReader::new(out).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        let Some(unit) = entry.get("_SYSTEMD_UNIT").and_then(field_text) else { continue };
        if !is_kvmd_unit(&unit) {
            continue;
        }
        let micros = entry.get("__REALTIME_TIMESTAMP").and_then(field_text).and_then(|t| t.parse().ok()).unwrap_or(0);
        let message = entry.get("MESSAGE").and_then(field_text).unwrap_or_default();
        if tx.send(Bytes::from(format_line(micros, &unit, &message))).await.is_err() {
            return;
        }
    }
    let _ = child.wait().await;
}

/// One parsed line of a service log file: `2026-12-01T19:46:16.123456Z  INFO target: text`.
fn parse_file_line(line: &str) -> Option<(i64, &str)> {
    let (ts, rest) = line.split_once(' ')?;
    let t = chrono::DateTime::parse_from_rfc3339(ts).ok()?;
    Some((t.timestamp_micros(), rest.trim_start()))
}

struct Tail {
    unit: String,
    offset: u64,
    last_ts: i64,
}

fn unit_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let p = e.path();
            let stem = p.file_name()?.to_str()?.strip_suffix(".log")?.to_owned();
            let unit = format!("{stem}.service");
            is_kvmd_unit(&unit).then_some((unit, p))
        })
        .collect();
    out.sort();
    out
}

/// Reads the complete lines of `path` after `tail.offset` into `(ts, unit, text)`.
fn read_new(path: &Path, tail: &mut Tail, out: &mut Vec<(i64, String, String)>) {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else { return };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len < tail.offset {
        tail.offset = 0; // truncated or replaced
    }
    if len == tail.offset || f.seek(SeekFrom::Start(tail.offset)).is_err() {
        return;
    }
    let mut buf = Vec::new();
    if f.take(len - tail.offset).read_to_end(&mut buf).is_err() {
        return;
    }
    let complete = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    tail.offset += complete as u64;
    for line in String::from_utf8_lossy(&buf[..complete]).lines() {
        let (ts, text) = match parse_file_line(line) {
            Some((ts, text)) => {
                tail.last_ts = ts;
                (ts, text.to_owned())
            }
            None => (tail.last_ts, line.to_owned()),
        };
        out.push((ts, tail.unit.clone(), text));
    }
}

async fn files(dir: &Path, seek: u64, follow: bool, tx: &mpsc::Sender<Bytes>) {
    let since =
        if seek == 0 { i64::MIN } else { now_micros() - i64::try_from(seek).unwrap_or(i64::MAX / 2) * 1_000_000 };
    let mut tails: BTreeMap<PathBuf, Tail> = BTreeMap::new();
    let mut first = Vec::new();
    for (unit, path) in unit_files(dir) {
        let mut t = Tail { unit, offset: 0, last_ts: 0 };
        read_new(&path, &mut t, &mut first);
        tails.insert(path, t);
    }
    first.retain(|(ts, _, _)| *ts >= since);
    first.sort_by_key(|(ts, _, _)| *ts);
    for (ts, unit, text) in first {
        if tx.send(Bytes::from(format_line(ts, &unit, &text))).await.is_err() {
            return;
        }
    }
    if !follow {
        return;
    }
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let mut new = Vec::new();
        for (unit, path) in unit_files(dir) {
            let t = tails.entry(path.clone()).or_insert(Tail { unit, offset: 0, last_ts: 0 });
            read_new(&path, t, &mut new);
        }
        for (ts, unit, text) in new {
            if tx.send(Bytes::from(format_line(ts, &unit, &text))).await.is_err() {
                return;
            }
        }
        if tx.is_closed() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn file_lines() {
        let (ts, text) = parse_file_line("2026-12-01T19:46:16.123456Z  INFO kvmd_auth: hello").unwrap_or((0, ""));
        let want = chrono::DateTime::parse_from_rfc3339("2026-12-01T19:46:16.123456Z").map(|t| t.timestamp_micros());
        assert_eq!(Ok(ts), want);
        assert_eq!(text, "INFO kvmd_auth: hello");
        assert!(parse_file_line("continuation").is_none());
        assert!(format_line(ts, "kvmd-auth.service", "hello  \n").ends_with(" kvmd-auth.service] --- hello\r\n"));
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
        let mut rx = start(cfg.clone(), 60, false, CancellationToken::new(), None);
        let mut got = Vec::new();
        while let Some(b) = rx.recv().await {
            got.push(String::from_utf8_lossy(&b).into_owned());
        }
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].ends_with("kvmd-auth.service] --- INFO a: new\r\n"));
        // Follow: a line written later arrives while the stream is open.
        let mut rx = start(cfg, 0, true, CancellationToken::new(), None);
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
