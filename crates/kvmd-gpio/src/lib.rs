//! kvmd-gpio: ATX power control (`/atx`), GPIO channels (`/gpio`) and Redfish
//! (`/redfish/v1`), compatible with kvmd 4.197 (spec `atx-msd-gpio-redfish.md`).
//!
//! # Layout
//! - [`config`]: the service's configuration, with kvmd's keys and defaults.
//! - [`chip`]: the GPIO lines (the [`chip::Chip`] trait and its virtual chip).
//! - [`atx`]: buttons, LEDs, clicks and power actions.
//! - [`gpio`]: the channels: model, view, state, switch and pulse.
//! - [`region`]: busy-region operations as tasks, answered at once or when over.
//! - [`api`]: the HTTP routes, one module per URL group.

pub mod api;
pub mod atx;
pub mod chip;
pub mod config;
pub mod gpio;
pub mod region;

use std::os::unix::net::UnixListener;
use std::sync::Arc;

use actix_web::web;
use kvmd_core::service::CancellationToken;

pub use config::Config;

/// Every route of the service, with its handler.
pub fn routes() -> kvmd_core::routes::Api {
    let mut api = kvmd_core::routes::Api::new("kvmd-gpio", "gpio");
    api.group(api::atx::routes).group(api::gpio::routes).group(api::redfish::routes).group(api::feed::routes);
    api
}

/// The lines the configuration drives and reads on the chip: ATX's (when enabled) and the
/// GPIO channels' of driver `__gpio__`.
pub fn line_plan(config: &Config) -> chip::cdev::Plan {
    let mut plan = chip::cdev::Plan::default();
    if config.atx.kind == config::AtxKind::Gpio {
        plan.outputs.extend([config.atx.power_switch_pin.offset(), config.atx.reset_switch_pin.offset()]);
        plan.inputs.extend([config.atx.power_led_pin.offset(), config.atx.hdd_led_pin.offset()]);
    }
    for c in config.gpio.scheme.values().filter(|c| c.driver == gpio::DEFAULT_DRIVER) {
        match c.mode {
            gpio::Mode::Output => plan.outputs.insert(c.pin.offset()),
            gpio::Mode::Input => plan.inputs.insert(c.pin.offset()),
        };
    }
    plan
}

/// Resolves the lines given by name (on a `cdev` chip, from the names the kernel shows for
/// its lines); a name no line has, or a name on a chip without names, is an error.
pub fn resolve_pins(config: &mut Config) -> anyhow::Result<()> {
    let atx = config.atx.kind == config::AtxKind::Gpio;
    let mut pins: Vec<&mut config::Pin> = Vec::new();
    if atx {
        pins.extend(config.atx.pins_mut());
    }
    pins.extend(config.gpio.scheme.values_mut().filter(|c| c.driver == gpio::DEFAULT_DRIVER).map(|c| &mut c.pin));
    if pins.iter().all(|p| p.unresolved().is_none()) {
        return Ok(());
    }
    if config.chip.kind != config::ChipKind::Cdev {
        anyhow::bail!("GPIO lines by name need chip.type = \"cdev\" (the kernel names them)");
    }
    let which = config.chip.which();
    let names = chip::cdev::line_names(&which)?;
    for pin in pins {
        if let Some(name) = pin.unresolved() {
            let offset = names
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| anyhow::anyhow!("no GPIO line named {name:?} on the GPIO chip {which}"))?;
            pin.resolve(u32::try_from(offset)?);
        }
    }
    Ok(())
}

/// The chip the configuration names, holding the lines of [`line_plan`] (named lines
/// resolved first: [`resolve_pins`]).
pub fn open_chip(config: &mut Config) -> anyhow::Result<Arc<dyn chip::Chip>> {
    resolve_pins(config)?;
    let plan = line_plan(config);
    let c = &config.chip;
    if c.kind != config::ChipKind::Cdev
        && let Some(l) = plan.outputs.iter().chain(&plan.inputs).find(|&&l| l >= c.lines)
    {
        anyhow::bail!("GPIO line {l}: the chip has lines 0 to {} (chip.lines)", c.lines.saturating_sub(1));
    }
    Ok(match c.kind {
        config::ChipKind::Virtual => Arc::new(chip::VirtualChip::new(c.lines)),
        config::ChipKind::Vtarget => chip::vtarget::PanelChip::connect(c.panel.clone(), c.lines),
        config::ChipKind::Cdev => chip::cdev::CdevChip::open(c.which(), plan)?,
    })
}

/// The service's parts, shared by every worker's app.
#[derive(Clone)]
pub struct Parts {
    /// The configuration.
    pub config: web::Data<Config>,
    /// ATX on the chip.
    pub atx: web::Data<atx::Atx>,
    /// The GPIO channels on the chip.
    pub gpio: web::Data<gpio::Gpio>,
    /// Ends the feeds at shutdown.
    pub shutdown: web::Data<CancellationToken>,
}

impl Parts {
    /// ATX and the channels of `config` on `chip` (the ATX LED reader is not started:
    /// [`run`] starts it, tests drive it).
    pub fn new(config: Config, chip: Arc<dyn chip::Chip>, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let atx = atx::Atx::new(config.atx.clone(), chip.clone())?;
        let gpio = gpio::Gpio::new(&config.gpio, chip)?;
        Ok(Self {
            config: web::Data::new(config),
            atx: web::Data::from(atx),
            gpio: web::Data::from(gpio),
            shutdown: web::Data::new(shutdown),
        })
    }

    /// The actix app (tests drive it without a socket).
    pub fn app(&self) -> actix_web::App<impl kvmd_core::service::ServiceApp + use<>> {
        let c = &self.config;
        let front = kvmd_core::net::FrontTrust::resolve(&c.front);
        kvmd_core::service::authed_app(routes(), &c.auth_socket, c.usc.clone(), front)
            .app_data(self.config.clone())
            .app_data(self.atx.clone())
            .app_data(self.gpio.clone())
            .app_data(self.shutdown.clone())
    }
}

/// Serves kvmd-gpio on `listener` until `shutdown` is cancelled.
pub async fn run(config: Config, listener: UnixListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let workers = config.workers;
    let mut config = config;
    let chip = open_chip(&mut config)?;
    let parts = Parts::new(config, chip, shutdown.clone())?;
    tokio::spawn(parts.atx.clone().into_inner().run_leds(shutdown.clone()));
    kvmd_core::service::serve(listener, workers, shutdown, move || parts.app()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_holds_atxs_lines_and_the_chips_channels_and_lines_must_exist() {
        let mut cfg: Config = toml::from_str(
            r#"
            [atx]
            type = "gpio"
            [gpio.drivers.nothing]
            type = "noop"
            [gpio.scheme.relay]
            pin = 5
            mode = "output"
            [gpio.scheme.sense]
            pin = 6
            mode = "input"
            [gpio.scheme.n]
            driver = "nothing"
            pin = 7
            mode = "output"
            "#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let plan = line_plan(&cfg);
        assert_eq!(plan.outputs.into_iter().collect::<Vec<_>>(), [5, 23, 27]);
        assert_eq!(plan.inputs.into_iter().collect::<Vec<_>>(), [6, 22, 24]);
        cfg.chip.kind = config::ChipKind::Virtual;
        assert!(open_chip(&mut cfg).is_ok());
        cfg.chip.lines = 24;
        let err = open_chip(&mut cfg).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("GPIO line 27: the chip has lines 0 to 23 (chip.lines)"));
        cfg.atx.kind = config::AtxKind::Disabled;
        assert_eq!(line_plan(&cfg).outputs.into_iter().collect::<Vec<_>>(), [5]);
    }

    #[test]
    fn pins_by_name_need_the_kernels_names_and_numbers_in_strings_are_offsets() {
        let parse = |t: &str| toml::from_str::<Config>(t).unwrap_or_else(|e| panic!("{e}"));
        let mut cfg = parse("[chip]\ntype = \"virtual\"\n[gpio.scheme.relay]\npin = \"5\"\nmode = \"output\"\n");
        assert_eq!(cfg.gpio.scheme["relay"].pin, config::Pin::at(5));
        assert!(open_chip(&mut cfg).is_ok());
        let mut cfg = parse("[chip]\ntype = \"virtual\"\n[atx]\npower_led_pin = \"PWR_LED\"\n");
        assert_eq!(cfg.atx.power_led_pin.unresolved(), Some("PWR_LED"));
        assert!(toml::to_string(&cfg).unwrap_or_default().contains("power_led_pin = \"PWR_LED\""));
        let err = open_chip(&mut cfg).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("GPIO lines by name need chip.type = \"cdev\" (the kernel names them)"));
        let mut cfg = parse("[chip]\ndevice = \"/nonexistent/gpiochip7\"\n[atx]\npower_led_pin = \"PWR_LED\"\n");
        let err = open_chip(&mut cfg).err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(err, "the GPIO chip /nonexistent/gpiochip7: lines by name need the chip there at start");
        assert!(toml::from_str::<Config>("[atx]\npower_led_pin = \" \"\n").is_err(), "an empty name");
    }
}
