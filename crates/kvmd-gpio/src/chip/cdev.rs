//! The kernel's GPIO character device (`chip.type = "cdev"`, a device's lines): one line
//! request on `/dev/gpiochipN` through the v2 uAPI ([`gpiocdev`]), holding every line the
//! configuration uses — outputs driven low until written, inputs with edge detection on
//! both edges — under the consumer name `kvmd-rs`, as kvmd holds its lines.
//!
//! A thread waits for edge events (a 1 s timeout, as kvmd's reader has) and tells the
//! readers through [`Chip::edges`]. If the chip goes away (a USB GPIO expander unplugged, a
//! simulated chip taken down) its lines report errors (the GPIO channels go offline), the
//! thread retries every second, and when the chip is back the outputs are driven again to
//! what was last written. A chip that exists but cannot hold the configured lines (a line
//! past its end, a line another program holds) is an error at start, said plainly.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use gpiocdev::Request;
use gpiocdev::line::{EdgeDetection, Value};
use tokio::sync::watch;

use super::Chip;

/// The consumer name the kernel shows for the held lines (`gpioinfo`).
pub const CONSUMER: &str = "kvmd-rs";
/// How long the reader waits for an edge before it looks again.
const WAIT: Duration = Duration::from_secs(1);

/// The names the kernel shows for the lines of `device` (`gpioinfo`'s), by offset.
pub fn line_names(device: &Path) -> anyhow::Result<Vec<String>> {
    let chip = gpiocdev::chip::Chip::from_path(device)
        .with_context(|| format!("{}: lines by name need the GPIO chip there at start", device.display()))?;
    let info = chip.info()?;
    (0..info.num_lines).map(|o| Ok(chip.line_info(o)?.name)).collect()
}

/// Which lines the configuration drives and reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Driven lines.
    pub outputs: BTreeSet<u32>,
    /// Read lines.
    pub inputs: BTreeSet<u32>,
}

/// The lines of one GPIO character device.
pub struct CdevChip {
    device: PathBuf,
    plan: Plan,
    /// The request while the chip is there.
    req: Mutex<Option<Arc<Request>>>,
    /// The last level written to each output, driven again when the chip comes back.
    driven: Mutex<BTreeMap<u32, bool>>,
    edges: watch::Sender<u64>,
}

fn level(v: bool) -> Value {
    if v { Value::Active } else { Value::Inactive }
}

impl CdevChip {
    /// Requests `plan`'s lines on `device` and starts the edge reader. A device that does
    /// not exist yet is waited for; one that cannot hold the lines is an error.
    pub fn open(device: PathBuf, plan: Plan) -> anyhow::Result<Arc<Self>> {
        if let Some(l) = plan.outputs.intersection(&plan.inputs).next() {
            anyhow::bail!("GPIO line {l} is configured both as an input and as an output");
        }
        let chip = Arc::new(Self {
            device,
            plan,
            req: Mutex::new(None),
            driven: Mutex::new(BTreeMap::new()),
            edges: watch::channel(0).0,
        });
        if chip.plan == Plan::default() {
            return Ok(chip); // nothing configured on it (ATX disabled, no channels)
        }
        if chip.device.exists() {
            let req = chip.request()?;
            *chip.req.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(req));
        } else {
            tracing::warn!(device = %chip.device.display(), "no GPIO chip yet: its lines are offline until it appears");
        }
        let c = chip.clone();
        std::thread::Builder::new()
            .name("gpio-edges".into())
            .spawn(move || c.follow())
            .context("cannot start the GPIO edge reader")?;
        Ok(chip)
    }

    fn request(&self) -> anyhow::Result<Request> {
        let info = gpiocdev::chip::Chip::from_path(&self.device)
            .and_then(|c| c.info())
            .with_context(|| format!("{}: not a GPIO chip", self.device.display()))?;
        for &l in self.plan.outputs.iter().chain(&self.plan.inputs) {
            if l >= info.num_lines {
                anyhow::bail!(
                    "GPIO line {l}: {} ({}, {}) has lines 0 to {}",
                    self.device.display(),
                    info.name,
                    info.label,
                    info.num_lines.saturating_sub(1)
                );
            }
        }
        let mut b = Request::builder();
        b.on_chip(&self.device).with_consumer(CONSUMER);
        let inputs: Vec<u32> = self.plan.inputs.iter().copied().collect();
        if !inputs.is_empty() {
            b.with_lines(&inputs).as_input().with_edge_detection(EdgeDetection::BothEdges);
        }
        let driven = self.driven.lock().unwrap_or_else(PoisonError::into_inner);
        for &l in &self.plan.outputs {
            b.with_line(l).as_output(level(driven.get(&l).copied().unwrap_or(false)));
        }
        drop(driven);
        b.request().with_context(|| format!("cannot request GPIO lines {:?} on {}", self.plan, self.device.display()))
    }

    fn current(&self) -> Option<Arc<Request>> {
        self.req.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn wake(&self) {
        self.edges.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Waits for edges while the chip is there; while it is not, tries to get it back.
    fn follow(&self) {
        let mut complained = false;
        loop {
            let Some(req) = self.current() else {
                std::thread::sleep(WAIT);
                if !self.device.exists() {
                    continue;
                }
                match self.request() {
                    Ok(r) => {
                        tracing::info!(device = %self.device.display(), "the GPIO chip is back");
                        *self.req.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(r));
                        complained = false;
                        self.wake();
                    }
                    Err(e) if !complained => {
                        complained = true;
                        tracing::warn!("the GPIO chip is there but its lines are not: {e:#}");
                    }
                    Err(_) => {}
                }
                continue;
            };
            if self.plan.inputs.is_empty() {
                std::thread::sleep(WAIT); // nothing to wait for but the chip going away
            } else {
                match req.wait_edge_event(WAIT) {
                    Ok(true) => {
                        // Drain what is queued: the readers read the levels themselves.
                        while req.has_edge_event().unwrap_or(false) {
                            if req.read_edge_event().is_err() {
                                break;
                            }
                        }
                        self.wake();
                    }
                    Ok(false) => {}
                    Err(e) => {
                        self.lost(&req, &e.to_string());
                        continue;
                    }
                }
            }
            // A removed chip need not wake a waiter (nor its node stay gone: a new chip can
            // take the same name), but reading its lines fails: then let the request go.
            if let Some(&line) = self.plan.inputs.iter().chain(&self.plan.outputs).next()
                && let Err(e) = req.value(line)
            {
                self.lost(&req, &e.to_string());
            }
        }
    }

    fn lost(&self, req: &Arc<Request>, why: &str) {
        let mut slot = self.req.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_some_and(|r| Arc::ptr_eq(r, req)) {
            tracing::error!(device = %self.device.display(), "lost the GPIO chip: {why}");
            *slot = None;
        }
        drop(slot);
        self.wake();
    }

    fn offline(&self) -> anyhow::Error {
        anyhow::anyhow!("the GPIO chip {} is not there", self.device.display())
    }

    /// The device.
    pub fn device(&self) -> &Path {
        &self.device
    }
}

impl Chip for CdevChip {
    fn set(&self, line: u32, level_: bool) -> anyhow::Result<()> {
        if !self.plan.outputs.contains(&line) {
            anyhow::bail!("GPIO line {line} is not configured as an output");
        }
        self.driven.lock().unwrap_or_else(PoisonError::into_inner).insert(line, level_);
        let req = self.current().ok_or_else(|| self.offline())?;
        req.set_value(line, level(level_)).with_context(|| format!("cannot drive GPIO line {line}"))
    }

    fn get(&self, line: u32) -> anyhow::Result<bool> {
        if !self.plan.outputs.contains(&line) && !self.plan.inputs.contains(&line) {
            anyhow::bail!("GPIO line {line} is not configured");
        }
        let req = self.current().ok_or_else(|| self.offline())?;
        let v = req.value(line).with_context(|| format!("cannot read GPIO line {line}"))?;
        Ok(v == Value::Active)
    }

    fn edges(&self) -> watch::Receiver<u64> {
        self.edges.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_both_ways_is_refused_and_a_missing_chip_is_offline_not_fatal() {
        let plan = Plan { outputs: [3].into(), inputs: [3, 4].into() };
        let err = CdevChip::open("/nonexistent/gpiochip9".into(), plan).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("GPIO line 3 is configured both as an input and as an output"));
        let plan = Plan { outputs: [3].into(), inputs: [4].into() };
        let chip = CdevChip::open("/nonexistent/gpiochip9".into(), plan).unwrap_or_else(|e| panic!("{e:#}"));
        let err = chip.set(3, true).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("the GPIO chip /nonexistent/gpiochip9 is not there"));
        assert!(chip.get(4).is_err());
        let err = chip.set(4, true).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("GPIO line 4 is not configured as an output"));
        assert!(chip.get(7).is_err(), "an unconfigured line");
    }
}
