//! The journal source: `journalctl -o json`, of the current boot (or of a journal file),
//! filtered to kvmd's units.

use std::path::PathBuf;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use super::{LogSource, format_line, is_kvmd_unit};
use crate::config::LogConfig;

/// The systemd journal, read by `journalctl`.
#[derive(Debug, Clone)]
pub struct Journal {
    /// The `journalctl` binary.
    journalctl: PathBuf,
    /// A journal file to read instead of the current boot's journal (empty: none).
    file: PathBuf,
}

impl Journal {
    /// The journal `cfg` names (`journalctl`, `journal_file`).
    pub fn new(cfg: &LogConfig) -> Self {
        Self { journalctl: cfg.journalctl.clone(), file: cfg.journal_file.clone() }
    }
}

impl LogSource for Journal {
    fn read<'a>(&'a self, seek: u64, follow: bool, tx: &'a mpsc::Sender<Bytes>) -> BoxFuture<'a, ()> {
        Box::pin(journal(self, seek, follow, tx))
    }
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

async fn journal(cfg: &Journal, seek: u64, follow: bool, tx: &mpsc::Sender<Bytes>) {
    let mut cmd = tokio::process::Command::new(&cfg.journalctl);
    cmd.args(["--output=json", "--all", "--no-pager", "--output-fields=MESSAGE,_SYSTEMD_UNIT"]);
    if cfg.file.as_os_str().is_empty() {
        cmd.arg("--boot");
    } else {
        cmd.arg(format!("--file={}", cfg.file.display()));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn journalctl_is_asked_for_the_boot_and_seek_and_only_kvmd_units_are_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let args = dir.path().join("args");
        let script = dir.path().join("journalctl");
        let body = format!(
            "#!/bin/sh\necho \"$@\" > '{}'\ncat <<'END'\n{}\n{}\nnot json\n{}\nEND\n",
            args.display(),
            r#"{"__REALTIME_TIMESTAMP":"1764618376123456","_SYSTEMD_UNIT":"kvmd-auth.service","MESSAGE":"hello  "}"#,
            r#"{"__REALTIME_TIMESTAMP":"1764618377000000","_SYSTEMD_UNIT":"nginx.service","MESSAGE":"not ours"}"#,
            r#"{"__REALTIME_TIMESTAMP":"1764618378000000","_SYSTEMD_UNIT":"kvmd.service","MESSAGE":[104,105]}"#,
        );
        std::fs::write(&script, body).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| panic!("{e}"));
        let journal = Journal::new(&LogConfig { journalctl: script, ..LogConfig::default() });
        let (tx, mut rx) = mpsc::channel(10);
        journal.read(60, false, &tx).await;
        drop(tx);
        let mut got = Vec::new();
        while let Some(b) = rx.recv().await {
            got.push(String::from_utf8_lossy(&b).into_owned());
        }
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].ends_with(" kvmd-auth.service] --- hello\r\n"), "{got:?}");
        assert!(got[1].ends_with(" kvmd.service] --- hi\r\n"), "bytes fields decode: {got:?}");
        let args = std::fs::read_to_string(&args).unwrap_or_default();
        assert!(args.contains("--boot") && args.contains("--since=-60s") && !args.contains("--follow"), "{args}");
    }
}
