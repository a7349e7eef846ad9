//! The files source: `<dir>/<unit>.log` of every kvmd unit, merged by time, and one tailer
//! shared by every follower.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use tokio::sync::mpsc;

use super::{LogSource, format_line, is_kvmd_unit, now_micros};

/// The services' log files in one directory, with the tailer its followers share.
#[derive(Clone)]
pub struct Files {
    dir: PathBuf,
    tail: Arc<FileTail>,
}

impl Files {
    /// The log files of `dir`; followers subscribe to `tail`.
    pub fn new(dir: &Path, tail: Arc<FileTail>) -> Self {
        Self { dir: dir.to_path_buf(), tail }
    }
}

impl LogSource for Files {
    fn read<'a>(&'a self, seek: u64, follow: bool, tx: &'a mpsc::Sender<Bytes>) -> BoxFuture<'a, ()> {
        Box::pin(files(&self.dir, seek, follow, tx, &self.tail))
    }
}

/// One parsed line of a service log file: `2026-12-01T19:46:16.123456Z  INFO target: text`.
fn parse_file_line(line: &str) -> Option<(i64, &str)> {
    let (ts, rest) = line.split_once(' ')?;
    let t = chrono::DateTime::parse_from_rfc3339(ts).ok()?;
    Some((t.timestamp_micros(), rest.trim_start()))
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

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// A reader's next line: (timestamp, text, offset after it).
type Head = Option<(i64, String, u64)>;

/// Reads the complete lines of one file between two offsets, lazily, with the timestamp of
/// each (a line without one, such as a continuation, takes the previous line's).
struct LineReader {
    unit: String,
    reader: std::io::Take<std::io::BufReader<std::fs::File>>,
    pos: u64,
    last_ts: i64,
}

impl LineReader {
    fn open(unit: &str, path: &Path, start: u64, end: u64) -> Option<Self> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(path).ok()?;
        f.seek(SeekFrom::Start(start)).ok()?;
        let reader = std::io::BufReader::with_capacity(64 * 1024, f).take(end.saturating_sub(start));
        Some(Self { unit: unit.to_owned(), reader, pos: start, last_ts: i64::MIN })
    }

    /// The next complete line: (timestamp, text, offset after it).
    fn next_line(&mut self) -> Head {
        use std::io::BufRead;
        let mut buf = Vec::new();
        let n = self.reader.read_until(b'\n', &mut buf).ok()?;
        if n == 0 || buf.last() != Some(&b'\n') {
            return None; // the end, or a line still being written
        }
        self.pos += n as u64;
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\n', '\r']);
        let (ts, text) = match parse_file_line(line) {
            Some((ts, text)) => {
                self.last_ts = ts;
                (ts, text.to_owned())
            }
            None => (self.last_ts, line.to_owned()),
        };
        Some((ts, text, self.pos))
    }
}

/// The offset of the first line at or after `since` (lines are in time order): a binary
/// search on the file, so `seek=60` on a large log reads only its end.
fn offset_since(path: &Path, since: i64, end: u64) -> u64 {
    use std::io::{BufRead, Seek, SeekFrom};
    let ts_at = |off: u64| -> Option<(u64, i64)> {
        let mut f = std::io::BufReader::new(std::fs::File::open(path).ok()?);
        f.seek(SeekFrom::Start(off)).ok()?;
        let mut skipped = 0u64;
        if off > 0 {
            let mut junk = Vec::new();
            skipped = f.read_until(b'\n', &mut junk).ok()? as u64;
        }
        let mut line = String::new();
        let mut start = off + skipped;
        for _ in 0..64 {
            line.clear();
            let n = f.read_line(&mut line).ok()?;
            if n == 0 {
                return None;
            }
            if let Some((ts, _)) = parse_file_line(line.trim_end()) {
                return Some((start, ts));
            }
            start += n as u64;
        }
        None
    };
    let (mut lo, mut hi) = (0u64, end);
    while hi - lo > 64 * 1024 {
        let mid = lo + (hi - lo) / 2;
        match ts_at(mid) {
            Some((_, ts)) if ts < since => lo = mid,
            _ => hi = mid,
        }
    }
    // Linear from `lo`: the first line at or after `since`.
    let mut r = match LineReader::open("", path, lo, end) {
        Some(r) => r,
        None => return end,
    };
    if lo > 0 {
        // `lo` may be mid-line: skip to the next one.
        if r.next_line().is_none() {
            return end;
        }
    }
    let mut at = r.pos;
    while let Some((ts, _, after)) = r.next_line() {
        if ts >= since && ts != i64::MIN {
            return at;
        }
        at = after;
    }
    end
}

/// A line tailed from a log file, for every follower at once.
#[derive(Debug)]
pub struct TailLine {
    file: PathBuf,
    /// Offset after the line: a follower skips lines its own first read already sent.
    end: u64,
    bytes: Bytes,
}

/// One tailer of the log directory shared by every `follow=1` client: each new line is
/// read and formatted once and fanned out through a broadcast channel. It starts with
/// the first follower and stops when the last one has gone.
#[derive(Default)]
pub struct FileTail {
    sender: std::sync::Mutex<Option<tokio::sync::broadcast::Sender<Arc<TailLine>>>>,
}

/// Lines a slow follower may fall behind before it skips some.
const TAIL_BACKLOG: usize = 4096;

impl FileTail {
    /// A receiver of new lines of `dir` (subscribe before the first read: lines
    /// written in between arrive twice and are filtered by offset, never lost).
    pub fn subscribe(&self, dir: &Path) -> tokio::sync::broadcast::Receiver<Arc<TailLine>> {
        let mut guard = self.sender.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(tx) = guard.as_ref().filter(|tx| tx.receiver_count() > 0) {
            return tx.subscribe();
        }
        let (tx, rx) = tokio::sync::broadcast::channel(TAIL_BACKLOG);
        *guard = Some(tx.clone());
        let dir = dir.to_path_buf();
        tokio::spawn(async move {
            let mut offsets: BTreeMap<PathBuf, u64> = unit_files(&dir)
                .into_iter()
                .map(|(_, p)| {
                    let l = file_len(&p);
                    (p, l)
                })
                .collect();
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                if tx.receiver_count() == 0 {
                    return;
                }
                for (unit, path) in unit_files(&dir) {
                    let len = file_len(&path);
                    let off = offsets.entry(path.clone()).or_insert(0);
                    if len < *off {
                        *off = 0; // truncated or replaced
                    }
                    if len == *off {
                        continue;
                    }
                    let Some(mut r) = LineReader::open(&unit, &path, *off, len) else { continue };
                    while let Some((ts, text, end)) = r.next_line() {
                        let bytes = Bytes::from(format_line(ts, &r.unit, &text));
                        let _ = tx.send(Arc::new(TailLine { file: path.clone(), end, bytes }));
                        *off = end;
                    }
                }
            }
        });
        rx
    }
}

/// `seek` seconds in microseconds, saturated (`seek` is any number up to 16 digits).
fn seek_micros(seek: u64) -> i64 {
    i64::try_from(seek).unwrap_or(i64::MAX).saturating_mul(1_000_000)
}

/// The first read: every file from `seek` seconds ago up to its current end, merged by
/// time, sent with backpressure. Runs on a blocking thread. Returns each file's end.
fn first_read(dir: &Path, seek: u64, tx: &mpsc::Sender<Bytes>) -> BTreeMap<PathBuf, u64> {
    let since = if seek == 0 { i64::MIN } else { now_micros().saturating_sub(seek_micros(seek)) };
    let mut ends = BTreeMap::new();
    let mut readers = Vec::new();
    for (unit, path) in unit_files(dir) {
        let end = file_len(&path);
        let start = if seek == 0 { 0 } else { offset_since(&path, since, end) };
        if let Some(mut r) = LineReader::open(&unit, &path, start, end) {
            let head = r.next_line();
            readers.push((r, head));
        }
        ends.insert(path, end);
    }
    // k-way merge: always the reader whose next line is oldest.
    let oldest = |readers: &[(LineReader, Head)]| {
        readers
            .iter()
            .enumerate()
            .filter_map(|(i, (_, h))| h.as_ref().map(|(ts, _, _)| (i, *ts)))
            .min_by_key(|(_, ts)| *ts)
            .map(|(i, _)| i)
    };
    while let Some(i) = oldest(&readers) {
        let (r, head) = &mut readers[i];
        if let Some((ts, text, _)) = head.take()
            && ts >= since
            && tx.blocking_send(Bytes::from(format_line(ts, &r.unit, &text))).is_err()
        {
            return ends;
        }
        *head = r.next_line();
    }
    ends
}

async fn files(dir: &Path, seek: u64, follow: bool, tx: &mpsc::Sender<Bytes>, tail: &FileTail) {
    let mut sub = follow.then(|| tail.subscribe(dir));
    let (d, t) = (dir.to_path_buf(), tx.clone());
    let Ok(ends) = tokio::task::spawn_blocking(move || first_read(&d, seek, &t)).await else { return };
    let Some(sub) = sub.as_mut() else { return };
    loop {
        match sub.recv().await {
            Ok(line) => {
                if ends.get(&line.file).is_some_and(|&e| line.end <= e) {
                    continue;
                }
                if tx.send(line.bytes.clone()).await.is_err() {
                    return;
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                let note = format_line(
                    now_micros(),
                    "kvmd-info.service",
                    &format!("--- {n} log lines skipped: this client reads too slowly"),
                );
                if tx.send(Bytes::from(note)).await.is_err() {
                    return;
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_seek_reads_everything_and_never_overflows() {
        // /log?seek=9223372036855 overflowed here (a panic in debug, a wrong start in release).
        assert_eq!(seek_micros(9_223_372_036_855), i64::MAX);
        assert_eq!(seek_micros(u64::MAX), i64::MAX);
        assert_eq!(seek_micros(60), 60_000_000);
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let line = "2026-12-01T19:46:16.123456Z  INFO kvmd_auth: hello\n";
        let _ = std::fs::write(dir.path().join("kvmd-auth.log"), line);
        let (tx, mut rx) = mpsc::channel(16);
        first_read(dir.path(), 9_999_999_999_999_999, &tx);
        drop(tx);
        let got = rx.try_recv().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        assert!(got.contains("hello"), "{got:?}");
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

    #[test]
    fn seek_finds_the_first_recent_line_of_a_large_file_and_files_merge_by_time() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let base = chrono::Utc::now() - chrono::Duration::seconds(100_000);
        let stamp = |s: i64| (base + chrono::Duration::seconds(s)).format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        // 100 000 lines, one per second, plus a continuation line without a timestamp.
        let mut text = String::new();
        for i in 0..100_000 {
            text.push_str(&format!("{}  INFO a: line {i}\n", stamp(i)));
        }
        text.push_str("  continued\n");
        let a = dir.path().join("kvmd-a.log");
        std::fs::write(&a, &text).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("kvmd-b.log"), format!("{}  INFO b: between\n", stamp(99_998)))
            .unwrap_or_else(|e| panic!("{e}"));
        let since = (base + chrono::Duration::seconds(99_997)).timestamp_micros();
        let off = offset_since(&a, since, file_len(&a));
        let first = text[off as usize..].lines().next().unwrap_or_default();
        assert!(first.ends_with("  INFO a: line 99997"), "{first}");
        // The first read merges both files by time and keeps the continuation.
        let (tx, mut rx) = mpsc::channel(100);
        let now_seek = u64::try_from((now_micros() - since) / 1_000_000 + 1).unwrap_or(0);
        let ends = first_read(dir.path(), now_seek, &tx);
        drop(tx);
        let mut got = Vec::new();
        while let Ok(b) = rx.try_recv() {
            got.push(String::from_utf8_lossy(&b).split("] --- ").nth(1).unwrap_or_default().trim_end().to_owned());
        }
        assert!(
            got.ends_with(&[
                "INFO a: line 99998".into(),
                "INFO b: between".into(),
                "INFO a: line 99999".into(),
                "  continued".into()
            ]),
            "{got:?}"
        );
        assert!(got.len() <= 6, "only the last seconds were read: {got:?}");
        assert_eq!(ends.get(&a).copied(), Some(file_len(&a)));
    }
}
