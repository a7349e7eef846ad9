//! kvmd-gpio's configuration (`/etc/kvmd/gpio.toml`; layering in `kvmd_core::config`), with
//! kvmd's knobs and defaults (spec `atx-msd-gpio-redfish.md` section 5).

use std::path::PathBuf;

use kvmd_core::net::{FrontConfig, SocketConfig, UscConfig};
use serde::{Deserialize, Serialize};

/// Which lines the ATX and GPIO channels drive and read.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ChipKind {
    /// Lines in memory: outputs keep what is written, inputs are set from outside
    /// (tests). A real backend of the [`crate::chip::Chip`] trait.
    Virtual,
    /// The virtual target's ATX front panel (`kvmd-vtarget --panel`): lines in memory
    /// whose outputs reach the target's switches and whose inputs are its LEDs (the demo).
    Vtarget,
    /// The kernel's GPIO character device `device` (`/dev/gpiochipN`): a device's lines.
    Cdev,
}

/// The line chip.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ChipConfig {
    /// The backend.
    #[serde(rename = "type")]
    pub kind: ChipKind,
    /// Its lines (the virtual chip's size).
    pub lines: u32,
    /// `vtarget`: the target's panel socket.
    pub panel: PathBuf,
    /// `cdev`: the GPIO character device...
    pub device: PathBuf,
    /// ... or, if set, the chip with this label wherever it is (`gpiodetect`'s bracketed
    /// name): found again when it comes back under another number.
    pub label: Option<String>,
}

impl ChipConfig {
    /// Which `cdev` chip.
    pub fn which(&self) -> crate::chip::cdev::Which {
        match &self.label {
            Some(l) => crate::chip::cdev::Which::Label(l.clone()),
            None => crate::chip::cdev::Which::Device(self.device.clone()),
        }
    }
}

impl Default for ChipConfig {
    fn default() -> Self {
        Self {
            kind: ChipKind::Cdev,
            lines: 32,
            panel: "/run/kvmd-vtarget/panel.sock".into(),
            device: "/dev/gpiochip0".into(),
            label: None,
        }
    }
}

/// A line: its offset on the chip, or its name (`gpioinfo`'s, resolved to the offset on a
/// `cdev` chip when the service starts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    offset: u32,
    name: Option<String>,
}

impl Pin {
    /// The line at `offset`.
    pub const fn at(offset: u32) -> Self {
        Self { offset, name: None }
    }

    /// The offset (meaningless for a name not yet resolved: [`Pin::unresolved`]).
    pub fn offset(&self) -> u32 {
        self.offset
    }

    /// The name still to resolve, if the configuration gave one.
    pub fn unresolved(&self) -> Option<&str> {
        self.name.as_deref().filter(|_| self.offset == u32::MAX)
    }

    /// The name found at `offset`.
    pub fn resolve(&mut self, offset: u32) {
        self.offset = offset;
    }

    /// As kvmd shows it (`hw.pin`): the name if one was given, else the offset.
    pub fn shown(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.offset.to_string())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum PinRepr {
    Offset(u32),
    Name(String),
}

impl Serialize for Pin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.name {
            Some(n) => PinRepr::Name(n.clone()),
            None => PinRepr::Offset(self.offset),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Pin {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match PinRepr::deserialize(d)? {
            PinRepr::Offset(o) => Pin::at(o),
            PinRepr::Name(n) if n.trim().is_empty() => return Err(serde::de::Error::custom("an empty line name")),
            PinRepr::Name(n) => match n.trim().parse::<u32>() {
                Ok(o) => Pin::at(o),
                Err(_) => Pin { offset: u32::MAX, name: Some(n.trim().to_owned()) },
            },
        })
    }
}

/// kvmd's `atx.type`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AtxKind {
    /// kvmd's `disabled` plugin: every action is `AtxDisabledError`.
    Disabled,
    /// kvmd's `gpio` plugin: buttons on output lines, LEDs on input lines.
    Gpio,
}

/// kvmd's `kvmd.atx` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AtxConfig {
    /// The plugin.
    #[serde(rename = "type")]
    pub kind: AtxKind,
    /// The power LED's input line.
    pub power_led_pin: Pin,
    /// The HDD LED's input line.
    pub hdd_led_pin: Pin,
    /// The power button's output line.
    pub power_switch_pin: Pin,
    /// The reset button's output line.
    pub reset_switch_pin: Pin,
    /// The power LED reads inverted (active low).
    pub power_led_inverted: bool,
    /// The HDD LED reads inverted.
    pub hdd_led_inverted: bool,
    /// Seconds a power LED change is held before the next is accepted.
    pub power_led_debounce: f64,
    /// The same for the HDD LED.
    pub hdd_led_debounce: f64,
    /// Seconds a click holds a button (kvmd: at least 0.1).
    pub click_delay: f64,
    /// Seconds a long click holds the power button.
    pub long_click_delay: f64,
}

impl Default for AtxConfig {
    fn default() -> Self {
        Self {
            kind: AtxKind::Gpio,
            power_led_pin: Pin::at(24),
            hdd_led_pin: Pin::at(22),
            power_switch_pin: Pin::at(23),
            reset_switch_pin: Pin::at(27),
            power_led_inverted: false,
            hdd_led_inverted: false,
            power_led_debounce: 0.1,
            hdd_led_debounce: 0.1,
            click_delay: 0.1,
            long_click_delay: 5.5,
        }
    }
}

impl AtxConfig {
    /// The four lines: power LED, HDD LED, power switch, reset switch.
    pub fn pins(&self) -> [&Pin; 4] {
        [&self.power_led_pin, &self.hdd_led_pin, &self.power_switch_pin, &self.reset_switch_pin]
    }

    /// The same, to resolve.
    pub fn pins_mut(&mut self) -> [&mut Pin; 4] {
        [&mut self.power_led_pin, &mut self.hdd_led_pin, &mut self.power_switch_pin, &mut self.reset_switch_pin]
    }

    /// kvmd's validators of the section: delays are floats of at least 0.1 (clicks) or 0
    /// (debounce), pins distinct.
    pub fn check(&self) -> anyhow::Result<()> {
        for (name, v, min) in [
            ("click_delay", self.click_delay, 0.1),
            ("long_click_delay", self.long_click_delay, 0.1),
            ("power_led_debounce", self.power_led_debounce, 0.0),
            ("hdd_led_debounce", self.hdd_led_debounce, 0.0),
        ] {
            if !v.is_finite() || v < min || v > 3600.0 {
                anyhow::bail!("atx.{name} = {v}: a number of seconds from {min} to 3600 is needed");
            }
        }
        let pins = self.pins().map(Pin::offset);
        if pins.iter().enumerate().any(|(i, p)| pins[..i].contains(p)) {
            anyhow::bail!("atx: the four pins must be distinct lines, got {pins:?}");
        }
        Ok(())
    }
}

/// Everything kvmd-gpio can be told.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where it listens (nginx's `gpio` upstream).
    pub socket: SocketConfig,
    /// HTTP worker threads.
    pub workers: usize,
    /// kvmd-auth's socket, asked about credentials of direct callers.
    pub auth_socket: PathBuf,
    /// Local processes trusted by peer credentials.
    pub usc: UscConfig,
    /// The front, whose identity header is believed.
    pub front: FrontConfig,
    /// kvmd's `meta.yaml`, whose `server.host` Redfish reports as the host name.
    pub meta: PathBuf,
    /// The line chip.
    pub chip: ChipConfig,
    /// ATX power control.
    pub atx: AtxConfig,
    /// The GPIO channels (kvmd's `kvmd.gpio`).
    pub gpio: crate::gpio::GpioConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            socket: SocketConfig::at("/run/kvmd/gpio.sock"),
            workers: 1,
            auth_socket: "/run/kvmd/auth.sock".into(),
            usc: UscConfig::default(),
            front: FrontConfig::default(),
            meta: "/etc/kvmd/meta.yaml".into(),
            chip: ChipConfig::default(),
            atx: AtxConfig::default(),
            gpio: crate::gpio::GpioConfig::default(),
        }
    }
}

kvmd_core::service_config!(Config);
