//! The GPIO lines that ATX and the GPIO channels drive and read: the [`Chip`] trait and
//! its implementations: lines in memory ([`VirtualChip`], tests), the virtual target's
//! front panel ([`vtarget`], the demo) and the kernel's GPIO character device ([`cdev`], a
//! device).

pub mod cdev;
pub mod vtarget;

use std::sync::Mutex;

use tokio::sync::watch;

/// A set of GPIO lines addressed by offset.
pub trait Chip: Send + Sync {
    /// Drives output line `line` to `level` (true = high).
    fn set(&self, line: u32, level: bool) -> anyhow::Result<()>;
    /// Reads line `line`.
    fn get(&self, line: u32) -> anyhow::Result<bool>;
    /// Changes whenever a line may have changed level (its edges): readers wait on it
    /// instead of polling.
    fn edges(&self) -> watch::Receiver<u64>;
}

/// Lines in memory. An output keeps what is written to it; an input is set from
/// outside with [`VirtualChip::drive`] (a test, the demo's virtual target), which wakes
/// the edge waiters as a real chip's edge event would.
pub struct VirtualChip {
    levels: Mutex<Vec<bool>>,
    edges: watch::Sender<u64>,
    /// Every write to a line, with when it happened (what a logic analyser would see).
    log: Mutex<Vec<(u32, bool, std::time::Instant)>>,
}

impl VirtualChip {
    /// A chip of `lines` lines, all low.
    pub fn new(lines: u32) -> Self {
        Self {
            levels: Mutex::new(vec![false; lines as usize]),
            edges: watch::channel(0).0,
            log: Mutex::new(Vec::new()),
        }
    }

    /// The outside world drives `line` to `level`.
    pub fn drive(&self, line: u32, level: bool) -> anyhow::Result<()> {
        self.put(line, level)
    }

    /// Every write so far: line, level, when.
    pub fn writes(&self) -> Vec<(u32, bool, std::time::Instant)> {
        self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn put(&self, line: u32, level: bool) -> anyhow::Result<()> {
        let mut levels = self.levels.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = levels.len();
        let slot = levels.get_mut(line as usize).ok_or_else(|| anyhow::anyhow!("no line {line} (the chip has {n})"))?;
        let changed = *slot != level;
        *slot = level;
        drop(levels);
        if changed {
            self.edges.send_modify(|n| *n = n.wrapping_add(1));
        }
        Ok(())
    }
}

impl Chip for VirtualChip {
    fn set(&self, line: u32, level: bool) -> anyhow::Result<()> {
        self.put(line, level)?;
        self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((
            line,
            level,
            std::time::Instant::now(),
        ));
        Ok(())
    }

    fn get(&self, line: u32) -> anyhow::Result<bool> {
        let levels = self.levels.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        levels.get(line as usize).copied().ok_or_else(|| anyhow::anyhow!("no line {line}"))
    }

    fn edges(&self) -> watch::Receiver<u64> {
        self.edges.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_levels_and_edges_wake_waiters() {
        let chip = VirtualChip::new(4);
        let mut rx = chip.edges();
        assert!(!chip.get(2).unwrap_or(true));
        assert!(chip.drive(2, true).is_ok());
        assert!(rx.has_changed().unwrap_or(false), "an edge");
        rx.borrow_and_update();
        assert!(chip.drive(2, true).is_ok());
        assert!(!rx.has_changed().unwrap_or(true), "no edge without a change");
        assert!(chip.get(2).unwrap_or(false));
        assert!(chip.set(9, true).is_err(), "no such line");
        assert!(chip.set(1, true).is_ok());
        assert_eq!(chip.writes().iter().map(|w| (w.0, w.1)).collect::<Vec<_>>(), [(1, true)]);
    }
}
