//! ATX power control as kvmd's `gpio` plugin does it (spec `atx-msd-gpio-redfish.md`
//! section 1): two buttons on output lines, two LEDs on input lines, clicks inside busy
//! regions that refuse rather than queue, and power actions that look at the power LED.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kvmd_core::ApiError;
use kvmd_core::service::CancellationToken;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::chip::Chip;
use crate::config::{AtxConfig, AtxKind};

/// How long a button stays busy after it is released (kvmd's tail).
const TAIL: Duration = Duration::from_secs(1);
/// LED readers re-read every line this often whatever the edges say (an edge queue can
/// overflow).
const REREAD: Duration = Duration::from_secs(1);

/// Which click runs.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, Default)]
pub struct Acts {
    /// A power click (short or long).
    pub power: bool,
    /// A reset click.
    pub reset: bool,
}

/// The debounced LEDs.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, Default)]
pub struct Leds {
    /// The power LED.
    pub power: bool,
    /// The HDD LED.
    pub hdd: bool,
}

/// `GET /atx` and the `atx` event, fields in kvmd's insertion order (HTTP sorts them).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, Default)]
pub struct AtxState {
    /// Not kvmd's `disabled` plugin.
    pub enabled: bool,
    /// Any click runs.
    pub busy: bool,
    /// Which.
    pub acts: Acts,
    /// The LEDs.
    pub leds: Leds,
}

/// A button to click.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Button {
    /// The power button, `click_delay`.
    Power,
    /// The power button, `long_click_delay`.
    PowerLong,
    /// The reset button.
    Reset,
}

impl Button {
    /// kvmd's names, as `/atx/click?button=` takes them.
    pub const NAMES: [&str; 3] = ["power", "power_long", "reset"];

    /// The button named `name` (one of [`Button::NAMES`]).
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "power" => Some(Self::Power),
            "power_long" => Some(Self::PowerLong),
            "reset" => Some(Self::Reset),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// A power action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    /// A power click if the LED is off.
    On,
    /// A power click if the LED is on.
    Off,
    /// A long power click if the LED is on.
    OffHard,
    /// A reset click if the LED is on.
    ResetHard,
}

impl PowerAction {
    /// kvmd's names, as `/atx/power?action=` takes them.
    pub const NAMES: [&str; 4] = ["on", "off", "off_hard", "reset_hard"];

    /// The action named `name` (one of [`PowerAction::NAMES`]).
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "on" => Some(Self::On),
            "off" => Some(Self::Off),
            "off_hard" => Some(Self::OffHard),
            "reset_hard" => Some(Self::ResetHard),
            _ => None,
        }
    }
}

fn disabled() -> ApiError {
    ApiError::operation("AtxDisabledError", "ATX is disabled")
}

fn busy() -> ApiError {
    ApiError::busy("AtxIsBusyError", "Performing another ATX operation, please try again later")
}

/// ATX power control over a [`Chip`].
pub struct Atx {
    cfg: AtxConfig,
    chip: Arc<dyn Chip>,
    /// The region of `power` and `power_long`.
    power_region: AtomicBool,
    /// The region of `reset`.
    reset_region: AtomicBool,
    leds: Mutex<Leds>,
    state: watch::Sender<AtxState>,
}

impl Atx {
    /// ATX on `chip`; with the `gpio` plugin its buttons are driven low at once.
    pub fn new(cfg: AtxConfig, chip: Arc<dyn Chip>) -> anyhow::Result<Arc<Self>> {
        let enabled = cfg.kind == AtxKind::Gpio;
        if enabled {
            cfg.check()?;
            for pin in [cfg.power_switch_pin.offset(), cfg.reset_switch_pin.offset()] {
                // A chip that is not there yet is driven when it comes (its own business).
                if let Err(e) = chip.set(pin, false) {
                    tracing::warn!(pin, "cannot release an ATX button: {e:#}");
                }
            }
        }
        let state = watch::channel(AtxState { enabled, ..AtxState::default() }).0;
        Ok(Arc::new(Self {
            cfg,
            chip,
            power_region: AtomicBool::new(false),
            reset_region: AtomicBool::new(false),
            leds: Mutex::new(Leds::default()),
            state,
        }))
    }

    /// Whether kvmd's `gpio` plugin is configured (not `disabled`).
    pub fn enabled(&self) -> bool {
        self.cfg.kind == AtxKind::Gpio
    }

    /// The state now.
    pub fn state(&self) -> AtxState {
        *self.state.borrow()
    }

    /// The state, changing whenever it does.
    pub fn subscribe(&self) -> watch::Receiver<AtxState> {
        self.state.subscribe()
    }

    fn publish(&self) {
        let acts =
            Acts { power: self.power_region.load(Ordering::SeqCst), reset: self.reset_region.load(Ordering::SeqCst) };
        let leds = *self.leds.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let next = AtxState { enabled: self.enabled(), busy: acts.power || acts.reset, acts, leds };
        self.state.send_if_modified(|s| {
            let changed = *s != next;
            *s = next;
            changed
        });
    }

    /// Reads the LEDs until `shutdown`: at each edge of the chip and every second, each
    /// LED's level XOR its inversion, an accepted change held for its debounce time (the
    /// changes meanwhile collapse to the latest).
    pub async fn run_leds(self: Arc<Self>, shutdown: CancellationToken) {
        if !self.enabled() {
            return;
        }
        let mut edges = self.chip.edges();
        let lines = [
            (self.cfg.power_led_pin.offset(), self.cfg.power_led_inverted, self.cfg.power_led_debounce),
            (self.cfg.hdd_led_pin.offset(), self.cfg.hdd_led_inverted, self.cfg.hdd_led_debounce),
        ];
        let mut shown: [Option<bool>; 2] = [None, None];
        let mut held_until = [Instant::now(); 2];
        loop {
            edges.borrow_and_update();
            let now = Instant::now();
            let mut wake = now + REREAD;
            for (i, (pin, inverted, debounce)) in lines.iter().enumerate() {
                let level = match self.chip.get(*pin) {
                    Ok(l) => l ^ inverted,
                    Err(e) => {
                        tracing::warn!(pin, "cannot read an ATX LED: {e:#}");
                        continue;
                    }
                };
                if shown[i] == Some(level) {
                    continue;
                }
                if now >= held_until[i] {
                    shown[i] = Some(level);
                    held_until[i] = now + Duration::from_secs_f64(*debounce);
                } else {
                    wake = wake.min(held_until[i]);
                }
            }
            {
                let mut leds = self.leds.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                leds.power = shown[0].unwrap_or(false);
                leds.hdd = shown[1].unwrap_or(false);
            }
            self.publish();
            tokio::select! {
                () = shutdown.cancelled() => return,
                r = edges.changed() => if r.is_err() { return },
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Clicks `button`: refused with kvmd's 409 while a click of its region runs. With
    /// `wait` it answers when the click and its 1 s tail are over; otherwise once the
    /// region is entered. A dropped request never cancels a click ([`crate::region`]).
    pub async fn click(self: &Arc<Self>, button: Button, wait: bool) -> Result<(), ApiError> {
        if !self.enabled() {
            return Err(disabled());
        }
        let region = match button {
            Button::Reset => &self.reset_region,
            Button::Power | Button::PowerLong => &self.power_region,
        };
        if region.compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst).is_err() {
            return Err(busy());
        }
        self.publish();
        let (pin, hold) = match button {
            Button::Power => (self.cfg.power_switch_pin.offset(), self.cfg.click_delay),
            Button::PowerLong => (self.cfg.power_switch_pin.offset(), self.cfg.long_click_delay),
            Button::Reset => (self.cfg.reset_switch_pin.offset(), self.cfg.click_delay),
        };
        let atx = self.clone();
        let job = async move {
            let result = atx.press(pin, Duration::from_secs_f64(hold)).await;
            tokio::time::sleep(TAIL).await;
            let region = if button == Button::Reset { &atx.reset_region } else { &atx.power_region };
            region.store(false, Ordering::SeqCst);
            atx.publish();
            match result {
                Ok(()) => {
                    tracing::info!("Clicked ATX button {:?}", button.name());
                    Ok(())
                }
                // kvmd has no error of its own for a line that cannot be driven (its 500).
                Err(e) => Err(ApiError::internal(format!("Cannot click ATX button {:?}: {e:#}", button.name()))),
            }
        };
        crate::region::run(job, wait).await
    }

    async fn press(&self, pin: u32, hold: Duration) -> anyhow::Result<()> {
        self.chip.set(pin, true)?;
        tokio::time::sleep(hold).await;
        // Released whatever happens: a held power button forces the host off.
        let mut last = self.chip.set(pin, false);
        for _ in 0..3 {
            if last.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            last = self.chip.set(pin, false);
        }
        last
    }

    /// A power action: the click it needs given the power LED, or nothing (then 200 at
    /// once, busy or not).
    pub async fn power(self: &Arc<Self>, action: PowerAction, wait: bool) -> Result<(), ApiError> {
        if !self.enabled() {
            return Err(disabled());
        }
        let on = self.state().leds.power;
        let click = match (action, on) {
            (PowerAction::On, false) => Some(Button::Power),
            (PowerAction::Off, true) => Some(Button::Power),
            (PowerAction::OffHard, true) => Some(Button::PowerLong),
            (PowerAction::ResetHard, true) => Some(Button::Reset),
            _ => None,
        };
        match click {
            Some(b) => self.click(b, wait).await,
            None => Ok(()),
        }
    }
}
