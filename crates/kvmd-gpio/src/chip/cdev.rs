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

/// The names the kernel shows for the lines of the chip (`gpioinfo`'s), by offset.
pub fn line_names(which: &Which) -> anyhow::Result<Vec<String>> {
    let node =
        which.locate().with_context(|| format!("the GPIO chip {which}: lines by name need the chip there at start"))?;
    let chip =
        gpiocdev::chip::Chip::from_path(&node).with_context(|| format!("{}: not a GPIO chip", node.display()))?;
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

/// Which chip: a device node, or the chip whose label is this (found again at each
/// opening, so a chip that comes back under another number is still found).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Which {
    /// `/dev/gpiochipN`.
    Device(PathBuf),
    /// The label the kernel gives the chip (`gpiodetect`'s bracketed name).
    Label(String),
}

impl Which {
    /// The device node now, if there is one.
    pub fn locate(&self) -> Option<PathBuf> {
        match self {
            Which::Device(p) => p.exists().then(|| p.clone()),
            Which::Label(l) => gpiocdev::chip::chips()
                .ok()?
                .into_iter()
                .find(|p| gpiocdev::chip::Chip::from_path(p).and_then(|c| c.info()).is_ok_and(|i| i.label == *l)),
        }
    }
}

impl std::fmt::Display for Which {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Which::Device(p) => write!(f, "{}", p.display()),
            Which::Label(l) => write!(f, "labelled {l:?}"),
        }
    }
}

/// The lines of one GPIO character device.
pub struct CdevChip {
    which: Which,
    plan: Plan,
    /// The request, and the node it is on, while the chip is there.
    held: Mutex<Option<(Arc<Request>, PathBuf)>>,
    /// The last level written to each output, driven again when the chip comes back.
    driven: Mutex<BTreeMap<u32, bool>>,
    edges: watch::Sender<u64>,
}

fn level(v: bool) -> Value {
    if v { Value::Active } else { Value::Inactive }
}

impl CdevChip {
    /// Requests `plan`'s lines on the chip and starts the edge reader. A chip that is not
    /// there yet is waited for; one that cannot hold the lines is an error.
    pub fn open(which: Which, plan: Plan) -> anyhow::Result<Arc<Self>> {
        if let Some(l) = plan.outputs.intersection(&plan.inputs).next() {
            anyhow::bail!("GPIO line {l} is configured both as an input and as an output");
        }
        let chip = Arc::new(Self {
            which,
            plan,
            held: Mutex::new(None),
            driven: Mutex::new(BTreeMap::new()),
            edges: watch::channel(0).0,
        });
        if chip.plan == Plan::default() {
            return Ok(chip); // nothing configured on it (ATX disabled, no channels)
        }
        if let Some(node) = chip.which.locate() {
            let req = chip.request(&node)?;
            chip.hold(node, req);
        } else {
            tracing::warn!("the GPIO chip {} is not there yet: its lines are offline until it is", chip.which);
        }
        let c = chip.clone();
        std::thread::Builder::new()
            .name("gpio-edges".into())
            .spawn(move || c.follow())
            .context("cannot start the GPIO edge reader")?;
        Ok(chip)
    }

    fn hold(&self, node: PathBuf, req: Request) {
        *self.held.lock().unwrap_or_else(PoisonError::into_inner) = Some((Arc::new(req), node));
    }

    fn request(&self, node: &Path) -> anyhow::Result<Request> {
        let info = gpiocdev::chip::Chip::from_path(node)
            .and_then(|c| c.info())
            .with_context(|| format!("{}: not a GPIO chip", node.display()))?;
        for &l in self.plan.outputs.iter().chain(&self.plan.inputs) {
            if l >= info.num_lines {
                anyhow::bail!(
                    "GPIO line {l}: {} ({}, {}) has lines 0 to {}",
                    node.display(),
                    info.name,
                    info.label,
                    info.num_lines.saturating_sub(1)
                );
            }
        }
        let mut b = Request::builder();
        b.on_chip(node).with_consumer(CONSUMER);
        let inputs: Vec<u32> = self.plan.inputs.iter().copied().collect();
        if !inputs.is_empty() {
            b.with_lines(&inputs).as_input().with_edge_detection(EdgeDetection::BothEdges);
        }
        let driven = self.driven.lock().unwrap_or_else(PoisonError::into_inner);
        for &l in &self.plan.outputs {
            b.with_line(l).as_output(level(driven.get(&l).copied().unwrap_or(false)));
        }
        drop(driven);
        b.request().with_context(|| format!("cannot request GPIO lines {:?} on {}", self.plan, node.display()))
    }

    fn current(&self) -> Option<Arc<Request>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).as_ref().map(|(r, _)| r.clone())
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
                let Some(node) = self.which.locate() else { continue };
                match self.request(&node) {
                    Ok(r) => {
                        tracing::info!(device = %node.display(), "the GPIO chip {} is back", self.which);
                        self.hold(node, r);
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
        let mut slot = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, node)) = slot.as_ref().filter(|(r, _)| Arc::ptr_eq(r, req)) {
            tracing::error!(device = %node.display(), "lost the GPIO chip {}: {why}", self.which);
            *slot = None;
        }
        drop(slot);
        self.wake();
    }

    fn offline(&self) -> anyhow::Error {
        anyhow::anyhow!("the GPIO chip {} is not there", self.which)
    }

    /// The device node of the lines held now (none while the chip is away).
    pub fn device(&self) -> Option<PathBuf> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).as_ref().map(|(_, n)| n.clone())
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
        let nowhere = Which::Device("/nonexistent/gpiochip9".into());
        let err = CdevChip::open(nowhere.clone(), plan).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("GPIO line 3 is configured both as an input and as an output"));
        let plan = Plan { outputs: [3].into(), inputs: [4].into() };
        let chip = CdevChip::open(nowhere, plan).unwrap_or_else(|e| panic!("{e:#}"));
        let err = chip.set(3, true).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("the GPIO chip /nonexistent/gpiochip9 is not there"));
        assert!(chip.get(4).is_err());
        let err = chip.set(4, true).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("GPIO line 4 is not configured as an output"));
        assert!(chip.get(7).is_err(), "an unconfigured line");
        assert_eq!(chip.device(), None);
        let plan = Plan { outputs: [3].into(), inputs: [].into() };
        let chip = CdevChip::open(Which::Label("no-such-chip-label".into()), plan).unwrap_or_else(|e| panic!("{e:#}"));
        let err = chip.set(3, true).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("the GPIO chip labelled \"no-such-chip-label\" is not there"));
    }
}
