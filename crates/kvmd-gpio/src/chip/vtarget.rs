//! The virtual target's ATX front panel as a chip (`chip.type = "vtarget"`, the demo's):
//! lines in memory like [`VirtualChip`], wired over a unix socket to `kvmd-vtarget
//! --panel`. What kvmd-gpio drives on a line is sent as `<line> <0|1>`; the target sends
//! its LED lines the same way (all on connect, then each change), which arrive as edges.
//! While the target is away its lines read low, as an open wire does, and the socket is
//! retried every half second; on each connection the driven levels are sent again.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use super::{Chip, VirtualChip};

const RETRY: Duration = Duration::from_millis(500);

/// The panel's lines.
pub struct PanelChip {
    lines: VirtualChip,
    /// What kvmd-gpio drives, sent again on each connection.
    driven: Mutex<BTreeMap<u32, bool>>,
    /// The connection's write half, while connected.
    conn: Mutex<Option<UnixStream>>,
}

impl PanelChip {
    /// A chip of `lines` lines wired to the panel at `panel` (connected in the background).
    pub fn connect(panel: PathBuf, lines: u32) -> Arc<Self> {
        let chip = Arc::new(Self { lines: VirtualChip::new(lines), driven: Mutex::default(), conn: Mutex::default() });
        let c = chip.clone();
        std::thread::Builder::new()
            .name("vtarget-panel".into())
            .spawn(move || c.follow(&panel))
            .map_err(|e| tracing::error!("cannot start the panel thread: {e}"))
            .ok();
        chip
    }

    /// Connects, reads the LED lines, reconnects: forever.
    fn follow(&self, panel: &std::path::Path) {
        let mut logged = false;
        loop {
            match UnixStream::connect(panel) {
                Ok(s) => {
                    logged = false;
                    tracing::info!(panel = %panel.display(), "the virtual target's panel is connected");
                    self.serve(s);
                    tracing::warn!("the virtual target's panel went away");
                }
                Err(e) if !logged => {
                    logged = true;
                    tracing::warn!(panel = %panel.display(), "no virtual target panel yet: {e}");
                }
                Err(_) => {}
            }
            std::thread::sleep(RETRY);
        }
    }

    fn serve(&self, s: UnixStream) {
        let Ok(mut w) = s.try_clone() else { return };
        let _ = w.set_write_timeout(Some(Duration::from_secs(1)));
        {
            let driven = self.driven.lock().unwrap_or_else(PoisonError::into_inner);
            let msg: String = driven.iter().map(|(l, v)| format!("{l} {}\n", u8::from(*v))).collect();
            if w.write_all(msg.as_bytes()).is_err() {
                return;
            }
            *self.conn.lock().unwrap_or_else(PoisonError::into_inner) = Some(w);
        }
        let mut inputs = Vec::new();
        for line in std::io::BufReader::new(s).lines() {
            let Ok(line) = line else { break };
            match parse(&line) {
                Some((l, level)) => {
                    if self.lines.drive(l, level).is_ok() && !inputs.contains(&l) {
                        inputs.push(l);
                    }
                }
                None => tracing::warn!(line = %line.escape_debug(), "not a panel line"),
            }
        }
        *self.conn.lock().unwrap_or_else(PoisonError::into_inner) = None;
        for l in inputs {
            let _ = self.lines.drive(l, false);
        }
    }
}

fn parse(s: &str) -> Option<(u32, bool)> {
    let (line, level) = s.trim_end().split_once(' ')?;
    let level = match level {
        "0" => false,
        "1" => true,
        _ => return None,
    };
    Some((line.parse().ok()?, level))
}

impl Chip for PanelChip {
    fn set(&self, line: u32, level: bool) -> anyhow::Result<()> {
        // `drive`, not `set`: the in-memory chip's write log is for tests, and would grow
        // for as long as the demo runs.
        self.lines.drive(line, level)?;
        // The record and the send under one lock, so a reconnection never misses a level.
        let mut driven = self.driven.lock().unwrap_or_else(PoisonError::into_inner);
        driven.insert(line, level);
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = conn.as_mut()
            && c.write_all(format!("{line} {}\n", u8::from(level)).as_bytes()).is_err()
        {
            *conn = None; // the reader sees the end and the next connection resends
        }
        Ok(())
    }

    fn get(&self, line: u32) -> anyhow::Result<bool> {
        self.lines.get(line)
    }

    fn edges(&self) -> watch::Receiver<u64> {
        self.lines.edges()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;

    use super::*;

    #[test]
    fn levels_cross_the_panel_both_ways_and_an_open_wire_reads_low() {
        let dir = std::env::temp_dir().join(format!("kvmd-gpio-panel-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("panel.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap_or_else(|e| panic!("{e}"));
        let chip = PanelChip::connect(path.clone(), 32);
        assert!(chip.set(23, true).is_ok(), "driven before the target is there");
        let (mut target, _) = listener.accept().unwrap_or_else(|e| panic!("{e}"));
        target.set_read_timeout(Some(Duration::from_secs(5))).unwrap_or_else(|e| panic!("{e}"));
        let mut reader = std::io::BufReader::new(target.try_clone().unwrap_or_else(|e| panic!("{e}")));
        let mut got = String::new();
        reader.read_line(&mut got).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, "23 1\n", "the driven levels are sent on connect");
        let edges = chip.edges();
        target.write_all(b"24 1\n").unwrap_or_else(|e| panic!("{e}"));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !chip.get(24).unwrap_or(false) {
            assert!(std::time::Instant::now() < deadline, "the LED line never rose");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(edges.has_changed().unwrap_or(false), "an edge");
        assert!(chip.set(23, false).is_ok());
        got.clear();
        reader.read_line(&mut got).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, "23 0\n");
        drop((target, reader));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while chip.get(24).unwrap_or(true) {
            assert!(std::time::Instant::now() < deadline, "the LED line stayed high without the target");
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
