//! GPIO channels as kvmd's `ugpio` builds them (spec `atx-msd-gpio-redfish.md` section 2):
//! the model (scheme and view) from the configuration, the live state, switch and pulse
//! inside per-channel busy regions. Drivers: `gpio` (the service's [`Chip`]) and `noop`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kvmd_core::ApiError;
use serde::{Deserialize, Serialize};

use crate::chip::Chip;

/// The driver `__gpio__`, always there: the service's chip.
pub const DEFAULT_DRIVER: &str = "__gpio__";

/// A driver's type.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DriverKind {
    /// Lines of the service's chip, the pin a line offset.
    Gpio,
    /// Reads false, writes nothing.
    Noop,
}

/// `kvmd.gpio.drivers.<name>`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DriverConfig {
    /// Its type.
    #[serde(rename = "type")]
    pub kind: DriverKind,
}

/// Input or output.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Read.
    Input,
    /// Driven.
    Output,
}

/// `pulse`: `false`, or its delays.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum PulseConfig {
    /// `pulse = false`: as `delay = 0`.
    Off(bool),
    /// The delays in seconds.
    Delays {
        /// The default pulse length.
        #[serde(default = "tenth")]
        delay: f64,
        /// The shortest pulse.
        #[serde(default = "tenth")]
        min_delay: f64,
        /// The longest pulse (longer requests are cut).
        #[serde(default = "tenth")]
        max_delay: f64,
    },
}

fn tenth() -> f64 {
    0.1
}

impl Default for PulseConfig {
    fn default() -> Self {
        PulseConfig::Delays { delay: 0.1, min_delay: 0.1, max_delay: 0.1 }
    }
}

/// `kvmd.gpio.scheme.<channel>`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// The driver instance.
    #[serde(default = "default_driver")]
    pub driver: String,
    /// The driver's pin (a line offset or name for `gpio`).
    pub pin: crate::config::Pin,
    /// Input or output.
    pub mode: Mode,
    /// The value is the line's level XOR this.
    #[serde(default)]
    pub inverted: bool,
    /// Outputs: seconds the channel stays busy after an operation.
    #[serde(default = "busy_delay")]
    pub busy_delay: f64,
    /// Outputs: the value driven at start (`None`: low on `gpio`).
    #[serde(default)]
    pub initial: Option<bool>,
    /// Outputs: may be switched.
    #[serde(default = "yes")]
    pub switch: bool,
    /// Outputs: may be pulsed.
    #[serde(default)]
    pub pulse: PulseConfig,
    /// Inputs: debounce seconds (accepted as kvmd does; the chip's edges are not bouncy).
    #[serde(default = "tenth")]
    pub debounce: f64,
}

fn default_driver() -> String {
    DEFAULT_DRIVER.to_owned()
}

fn busy_delay() -> f64 {
    0.2
}

fn yes() -> bool {
    true
}

/// `kvmd.gpio.view.header.title`: one label, or a list of items.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Title {
    /// One label.
    Text(String),
    /// Labels and inputs (anything else is dropped).
    Items(Vec<String>),
}

/// `kvmd.gpio.view.header`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Header {
    /// The title.
    pub title: Title,
}

impl Default for Header {
    fn default() -> Self {
        Self { title: Title::Text("GPIO".into()) }
    }
}

/// `kvmd.gpio.view`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ViewConfig {
    /// The menu's header.
    pub header: Header,
    /// The menu's rows of items.
    pub table: Vec<Vec<String>>,
}

/// `kvmd.gpio`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GpioConfig {
    /// Driver instances besides `__gpio__`.
    pub drivers: BTreeMap<String, DriverConfig>,
    /// The channels.
    pub scheme: BTreeMap<String, ChannelConfig>,
    /// The menu.
    pub view: ViewConfig,
}

/// One channel, resolved.
struct Channel {
    cfg: ChannelConfig,
    driver: DriverKind,
    /// `(delay, min, max)` when it pulses.
    pulse: Option<(f64, f64, f64)>,
    busy: AtomicBool,
}

impl Channel {
    fn constant(&self) -> bool {
        self.cfg.mode == Mode::Output && !self.cfg.switch && self.pulse.is_none()
    }
}

fn not_found() -> ApiError {
    ApiError::operation("GpioChannelNotFoundError", "GPIO channel is not found")
}

/// kvmd's error of a channel whose driver failed (answered with `wait=1`): `GPIO driver
/// <Kind>(<instance>) is offline`.
fn driver_offline(ch: &Channel) -> ApiError {
    let kind = match ch.driver {
        DriverKind::Gpio => "GPIO",
        DriverKind::Noop => "NOOP",
    };
    ApiError::operation("GpioDriverOfflineError", format!("GPIO driver {kind}({}) is offline", ch.cfg.driver))
}

fn busy() -> ApiError {
    ApiError::busy(
        "GpioChannelIsBusyError",
        "Performing another GPIO operation on this channel, please try again later",
    )
}

/// What a channel name may be (`valid_ugpio_channel`).
pub fn valid_channel(arg: Option<&str>) -> Result<String, ApiError> {
    const NAME: &str = "GPIO channel";
    let arg = arg.ok_or_else(|| kvmd_core::valid::none_error(NAME))?;
    kvmd_core::valid::check_raw(arg, 512)?;
    let v = arg.trim();
    let mut chars = v.chars();
    let ok = v.chars().count() <= 255
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok { Ok(v.to_owned()) } else { Err(kvmd_core::valid::invalid_error(v, NAME)) }
}

/// The GPIO channels over a [`Chip`].
pub struct Gpio {
    channels: BTreeMap<String, Channel>,
    chip: Arc<dyn Chip>,
    view: View,
    /// Bumped when an output enters or leaves its region or is written (inputs change
    /// with the chip's edges).
    changes: tokio::sync::watch::Sender<u64>,
}

impl Gpio {
    /// The channels of `cfg` on `chip`; outputs driven to their initial values.
    pub fn new(cfg: &GpioConfig, chip: Arc<dyn Chip>) -> anyhow::Result<Arc<Self>> {
        let mut channels = BTreeMap::new();
        for (name, c) in &cfg.scheme {
            valid_channel(Some(name)).map_err(|e| anyhow::anyhow!("gpio.scheme.{name}: {}", e.message))?;
            let driver = if c.driver == DEFAULT_DRIVER {
                DriverKind::Gpio
            } else {
                cfg.drivers
                    .get(&c.driver)
                    .map(|d| d.kind)
                    .ok_or_else(|| anyhow::anyhow!("gpio.scheme.{name}: no driver {:?}", c.driver))?
            };
            let pulse = match c.pulse {
                PulseConfig::Off(true) => Some((0.1, 0.1, 0.1)),
                PulseConfig::Off(false) => None,
                PulseConfig::Delays { delay, min_delay, max_delay } => {
                    for v in [delay, min_delay, max_delay, c.busy_delay] {
                        if !v.is_finite() || !(0.0..=3600.0).contains(&v) {
                            anyhow::bail!("gpio.scheme.{name}: delays are seconds from 0 to 3600, got {v}");
                        }
                    }
                    (delay > 0.0).then(|| (delay.clamp(min_delay, max_delay.max(min_delay)), min_delay, max_delay))
                }
            };
            if c.mode == Mode::Output && driver == DriverKind::Gpio {
                // A chip that is not there yet is driven when it comes (its own business).
                if let Err(e) = chip.set(c.pin.offset(), c.initial.unwrap_or(false) ^ c.inverted) {
                    tracing::warn!(channel = %name, "cannot drive the initial value: {e:#}");
                }
            }
            channels.insert(name.clone(), Channel { cfg: c.clone(), driver, pulse, busy: AtomicBool::new(false) });
        }
        let gpio = Self { view: View::default(), channels, chip, changes: tokio::sync::watch::channel(0).0 };
        let view = gpio.build_view(&cfg.view);
        Ok(Arc::new(Self { view, ..gpio }))
    }

    fn item(&self, s: &str, inputs_and_labels_only: bool) -> Option<Item> {
        let s = s.trim();
        if s.is_empty() || s.starts_with('#') {
            return Some(Item::Label { text: s.trim_start_matches('#').trim().to_owned() });
        }
        let parts: Vec<&str> = s.splitn(3, '|').map(str::trim).collect();
        let ch = self.channels.get(parts[0])?;
        let channel = parts[0].to_owned();
        match ch.cfg.mode {
            Mode::Input => {
                const COLORS: [&str; 8] = ["green", "yellow", "red", "blue", "cyan", "magenta", "pink", "white"];
                let color = parts.get(1).filter(|c| COLORS.contains(c)).copied().unwrap_or("green").to_owned();
                Some(Item::Input { channel, color })
            }
            Mode::Output if inputs_and_labels_only => None,
            Mode::Output => {
                let (flags, text) = match parts.len() {
                    1 => ("", "Click"),
                    2 => ("", parts[1]),
                    _ => (parts[1], parts[2]),
                };
                let flags: Vec<&str> = flags.split(',').map(str::trim).collect();
                Some(Item::Output {
                    channel,
                    confirm: flags.contains(&"confirm"),
                    hide: flags.contains(&"hide"),
                    text: text.to_owned(),
                })
            }
        }
    }

    fn build_view(&self, view: &ViewConfig) -> View {
        let title = match &view.header.title {
            Title::Text(t) => vec![Item::Label { text: t.trim().to_owned() }],
            Title::Items(items) => items.iter().filter_map(|i| self.item(i, true)).collect(),
        };
        let table = view
            .table
            .iter()
            .map(|row| (!row.is_empty()).then(|| row.iter().filter_map(|i| self.item(i, false)).collect()))
            .collect();
        View { header: ViewHeader { title }, table }
    }

    /// The model: `scheme` (constants left out) and `view`.
    pub fn model(&self) -> Model {
        let mut scheme = Scheme::default();
        for (name, ch) in &self.channels {
            let driver = if ch.driver == DriverKind::Gpio { DEFAULT_DRIVER } else { ch.cfg.driver.as_str() };
            let hw = Hw { driver: driver.to_owned(), pin: ch.cfg.pin.shown() };
            match ch.cfg.mode {
                Mode::Input => {
                    scheme.inputs.insert(name.clone(), InputScheme { hw });
                }
                Mode::Output if ch.constant() => {}
                Mode::Output => {
                    let (delay, min_delay, max_delay) = ch.pulse.unwrap_or((0.0, 0.0, 0.0));
                    let pulse = Pulse { delay, min_delay, max_delay };
                    scheme.outputs.insert(name.clone(), OutputScheme { switch: ch.cfg.switch, pulse, hw });
                }
            }
        }
        Model { scheme, view: self.view.clone() }
    }

    fn read(&self, ch: &Channel) -> (bool, bool) {
        match ch.driver {
            DriverKind::Noop => (true, false),
            DriverKind::Gpio => match self.chip.get(ch.cfg.pin.offset()) {
                Ok(level) => (true, level ^ ch.cfg.inverted),
                Err(_) => (false, false),
            },
        }
    }

    /// The state: `{"inputs": {ch: {online, state}}, "outputs": {ch: {online, state, busy}}}`.
    pub fn state(&self) -> State {
        let mut out = State::default();
        for (name, ch) in &self.channels {
            match ch.cfg.mode {
                Mode::Input => {
                    let (online, state) = self.read(ch);
                    out.inputs.insert(name.clone(), InputState { online, state });
                }
                Mode::Output if ch.constant() => {}
                Mode::Output => {
                    let busy = ch.busy.load(Ordering::SeqCst);
                    let (online, state) = if busy { (true, false) } else { self.read(ch) };
                    out.outputs.insert(name.clone(), OutputState { online, state, busy });
                }
            }
        }
        out
    }

    /// Changes when the state may have: an output's region or level, or an edge of the chip.
    pub fn subscribe(&self) -> (tokio::sync::watch::Receiver<u64>, tokio::sync::watch::Receiver<u64>) {
        (self.changes.subscribe(), self.chip.edges())
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn output(&self, name: &str) -> Result<&Channel, ApiError> {
        self.channels.get(name).filter(|c| c.cfg.mode == Mode::Output).ok_or_else(not_found)
    }

    fn write(&self, ch: &Channel, value: bool) -> anyhow::Result<()> {
        let result = match ch.driver {
            DriverKind::Noop => Ok(()),
            DriverKind::Gpio => self.chip.set(ch.cfg.pin.offset(), value ^ ch.cfg.inverted),
        };
        self.changed();
        result
    }

    /// Switches output `name` to `state`, then holds it busy for its `busy_delay`.
    pub async fn switch(self: &Arc<Self>, name: &str, state: bool, wait: bool) -> Result<(), ApiError> {
        let ch = self.output(name)?;
        if !ch.cfg.switch {
            return Err(ApiError::operation("GpioSwitchNotSupported", "This GPIO channel does not support switching"));
        }
        self.run(name, wait, move |gpio, ch| Box::pin(async move { gpio.write(ch, state) })).await
    }

    /// Pulses output `name` for `delay` seconds (0: its own), clamped to its bounds.
    pub async fn pulse(self: &Arc<Self>, name: &str, delay: f64, wait: bool) -> Result<(), ApiError> {
        let ch = self.output(name)?;
        let Some((own, min, max)) = ch.pulse else {
            return Err(ApiError::operation("GpioPulseNotSupported", "This GPIO channel does not support pulsing"));
        };
        let length = if delay > 0.0 { delay } else { own }.clamp(min, max.max(min));
        self.run(name, wait, move |gpio, ch| {
            Box::pin(async move {
                gpio.write(ch, true)?;
                tokio::time::sleep(Duration::from_secs_f64(length)).await;
                gpio.write(ch, false)
            })
        })
        .await
    }

    /// Runs `op` on channel `name` inside its busy region, then its `busy_delay`.
    async fn run<F>(self: &Arc<Self>, name: &str, wait: bool, op: F) -> Result<(), ApiError>
    where
        F: for<'a> FnOnce(
                &'a Gpio,
                &'a Channel,
            ) -> std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>>
            + Send
            + 'static,
    {
        let ch = self.output(name)?;
        if ch.busy.compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst).is_err() {
            return Err(busy());
        }
        self.changed();
        let gpio = self.clone();
        let name = name.to_owned();
        let job = async move {
            let Some(ch) = gpio.channels.get(&name) else { return Ok(()) };
            let result = op(&gpio, ch).await;
            tokio::time::sleep(Duration::from_secs_f64(ch.cfg.busy_delay)).await;
            ch.busy.store(false, Ordering::SeqCst);
            gpio.changed();
            result.map_err(|e| {
                tracing::error!(channel = %name, "GPIO operation failed: {e:#}");
                driver_offline(ch)
            })
        };
        crate::region::run(job, wait).await
    }
}

/// kvmd's `gpio` event after the first: the channels whose state object differs from
/// `prev`, as `{"state": {"inputs": {…}, "outputs": {…}}}` with an unchanged half left
/// out (inputs first); `None` when nothing changed.
pub fn state_changes(prev: &State, now: &State) -> Option<StateChanges> {
    fn changed<T: Clone + PartialEq>(prev: &BTreeMap<String, T>, now: &BTreeMap<String, T>) -> BTreeMap<String, T> {
        now.iter().filter(|(k, v)| prev.get(*k) != Some(v)).map(|(k, v)| (k.clone(), v.clone())).collect()
    }
    let state =
        ChangedState { inputs: changed(&prev.inputs, &now.inputs), outputs: changed(&prev.outputs, &now.outputs) };
    (!state.inputs.is_empty() || !state.outputs.is_empty()).then_some(StateChanges { state })
}

/// A channel's hardware, as the model shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Hw {
    /// The driver instance (`__gpio__` for the chip).
    pub driver: String,
    /// The pin, as a string (kvmd's).
    pub pin: String,
}

/// An input in the scheme.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct InputScheme {
    /// Its hardware.
    pub hw: Hw,
}

/// A pulse's delays in seconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Pulse {
    /// The default length (0: no pulse).
    pub delay: f64,
    /// The shortest.
    pub min_delay: f64,
    /// The longest.
    pub max_delay: f64,
}

/// An output in the scheme.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OutputScheme {
    /// It may be switched.
    pub switch: bool,
    /// Its pulse.
    pub pulse: Pulse,
    /// Its hardware.
    pub hw: Hw,
}

/// `model.scheme`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Scheme {
    /// The inputs.
    pub inputs: BTreeMap<String, InputScheme>,
    /// The outputs that are not constants.
    pub outputs: BTreeMap<String, OutputScheme>,
}

/// An item of the view: the tag first, as kvmd's dicts are built.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Item {
    /// A text.
    Label {
        /// What it says.
        text: String,
    },
    /// An input's LED.
    Input {
        /// The channel.
        channel: String,
        /// Its colour.
        color: String,
    },
    /// An output's button or switch.
    Output {
        /// The channel.
        channel: String,
        /// Ask before acting.
        confirm: bool,
        /// Hidden in the menu.
        hide: bool,
        /// The button's text.
        text: String,
    },
}

/// `model.view.header`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ViewHeader {
    /// Labels and inputs.
    pub title: Vec<Item>,
}

/// `model.view`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct View {
    /// The menu's header.
    pub header: ViewHeader,
    /// Rows of items; an empty row in the config is `null` (a separator).
    pub table: Vec<Option<Vec<Item>>>,
}

/// `model`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Model {
    /// The channels.
    pub scheme: Scheme,
    /// The menu.
    pub view: View,
}

/// An input's state.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct InputState {
    /// Its driver answered.
    pub online: bool,
    /// The level XOR `inverted`.
    pub state: bool,
}

/// An output's state.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct OutputState {
    /// Its driver answered.
    pub online: bool,
    /// The level XOR `inverted` (false while busy).
    pub state: bool,
    /// In its region.
    pub busy: bool,
}

/// `state`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct State {
    /// The inputs.
    pub inputs: BTreeMap<String, InputState>,
    /// The outputs.
    pub outputs: BTreeMap<String, OutputState>,
}

/// The changed channels of a change event, a half without changes left out.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ChangedState {
    /// The inputs that changed.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, InputState>,
    /// The outputs that changed.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, OutputState>,
}

/// A change event: `{"state": …}` with the changed channels only.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StateChanges {
    /// The changed channels.
    pub state: ChangedState,
}

/// The full `gpio` event and `GET /gpio`'s result.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Full {
    /// The model.
    pub model: Model,
    /// The state.
    pub state: State,
}
