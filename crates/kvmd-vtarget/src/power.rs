//! The virtual target's power, as a PC's ATX front panel has it: a power switch, a reset
//! switch, a power LED and an HDD LED, wired to four GPIO lines of the KVM.
//!
//! - **Power switch**: a press while off powers on (the screen shows the boot); while on,
//!   a press released before [`HARD_OFF`] asks the OS to shut down (off [`SHUTDOWN`]
//!   later), and holding it [`HARD_OFF`] cuts the power at once, as a real power supply does.
//! - **Reset switch**: a press while on reboots (the screen starts over).
//! - **Power LED** lit while on; **HDD LED** lit for [`DISK`] after a boot.
//!
//! While off the screen sends no signal and the keyboard and mouse are not heard.
//!
//! The panel is a unix stream socket speaking lines of `<line> <0|1>`: the KVM sends the
//! levels it drives on its output lines (the switches), the target sends the levels of
//! its LED lines, all of them on connect and then each change. A KVM that goes away
//! releases its switches (an open wire reads low).

use std::time::{Duration, Instant};

/// Holding the power switch this long forces the power off.
pub const HARD_OFF: Duration = Duration::from_secs(4);
/// How long the OS takes to shut down after a short press.
pub const SHUTDOWN: Duration = Duration::from_secs(2);
/// How long the disk is busy after a boot.
pub const DISK: Duration = Duration::from_millis(1500);

/// Which GPIO line of the KVM each panel pin is wired to (kvmd-gpio's ATX defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wiring {
    /// The power switch (an output of the KVM).
    pub power_switch: u32,
    /// The reset switch (an output of the KVM).
    pub reset_switch: u32,
    /// The power LED (an input of the KVM).
    pub power_led: u32,
    /// The HDD LED (an input of the KVM).
    pub hdd_led: u32,
}

impl Default for Wiring {
    fn default() -> Self {
        Self { power_switch: 23, reset_switch: 27, power_led: 24, hdd_led: 22 }
    }
}

/// What the board did, for the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Powered on: the screen starts with the boot.
    Boot,
    /// A reset: the screen starts over.
    Reboot,
    /// A short press: the OS says it shuts down.
    ShuttingDown,
    /// Powered off (the screen goes dark).
    Off,
}

/// The board's power state.
#[derive(Debug)]
pub struct Board {
    wiring: Wiring,
    on: bool,
    /// Since when the power switch is held, and whether that press powered on (so its
    /// release is not a shutdown request) or already forced the power off.
    power_held: Option<(Instant, bool)>,
    reset_held: bool,
    shutdown_at: Option<Instant>,
    disk_until: Option<Instant>,
}

impl Board {
    /// A board that is on (as the demo's target starts).
    pub fn new(wiring: Wiring, now: Instant) -> Self {
        Self { wiring, on: true, power_held: None, reset_held: false, shutdown_at: None, disk_until: Some(now + DISK) }
    }

    /// The wiring.
    pub fn wiring(&self) -> Wiring {
        self.wiring
    }

    /// Powered.
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// The LED lines and their levels.
    pub fn leds(&self) -> [(u32, bool); 2] {
        [(self.wiring.power_led, self.on), (self.wiring.hdd_led, self.on && self.disk_until.is_some())]
    }

    fn boot(&mut self, now: Instant) {
        self.on = true;
        self.shutdown_at = None;
        self.disk_until = Some(now + DISK);
    }

    fn off(&mut self) {
        self.on = false;
        self.shutdown_at = None;
        self.disk_until = None;
    }

    /// The KVM drove `line` to `level` at `now`.
    pub fn line(&mut self, line: u32, level: bool, now: Instant) -> Option<Change> {
        if line == self.wiring.power_switch {
            match (level, self.power_held) {
                (true, None) => {
                    let booted = !self.on;
                    self.power_held = Some((now, booted));
                    if booted {
                        self.boot(now);
                        return Some(Change::Boot);
                    }
                }
                (false, Some((_, consumed))) => {
                    self.power_held = None;
                    if !consumed && self.on && self.shutdown_at.is_none() {
                        self.shutdown_at = Some(now + SHUTDOWN);
                        return Some(Change::ShuttingDown);
                    }
                }
                _ => {}
            }
        } else if line == self.wiring.reset_switch {
            let pressed = level && !self.reset_held;
            self.reset_held = level;
            if pressed && self.on {
                self.boot(now);
                return Some(Change::Reboot);
            }
        }
        None
    }

    /// Time passes: a held power switch, a shutdown and the disk run their course.
    pub fn tick(&mut self, now: Instant) -> Option<Change> {
        if let Some((since, false)) = self.power_held
            && self.on
            && now.duration_since(since) >= HARD_OFF
        {
            self.power_held = Some((since, true));
            self.off();
            return Some(Change::Off);
        }
        if self.shutdown_at.is_some_and(|t| now >= t) {
            self.off();
            return Some(Change::Off);
        }
        if self.disk_until.is_some_and(|t| now >= t) {
            self.disk_until = None;
        }
        None
    }

    /// The KVM went away: its switches read released.
    pub fn released(&mut self, now: Instant) -> Option<Change> {
        let a = self.line(self.wiring.power_switch, false, now);
        let b = self.line(self.wiring.reset_switch, false, now);
        a.or(b)
    }
}

/// One line of the panel protocol: `<line> <0|1>`.
pub fn parse_line(s: &str) -> Option<(u32, bool)> {
    let (line, level) = s.trim().split_once(' ')?;
    let level = match level {
        "0" => false,
        "1" => true,
        _ => return None,
    };
    Some((line.parse().ok()?, level))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(b: &mut Board, line: u32, at: Instant, held: Duration) -> Vec<Change> {
        let mut out: Vec<Change> = b.line(line, true, at).into_iter().collect();
        let mut t = at;
        while t < at + held {
            t += Duration::from_millis(50);
            out.extend(b.tick(t));
        }
        out.extend(b.line(line, false, at + held));
        out
    }

    #[test]
    fn the_power_switch_boots_shuts_down_and_forces_off() {
        let w = Wiring::default();
        let t0 = Instant::now();
        let mut b = Board::new(w, t0);
        assert!(b.is_on());
        assert_eq!(b.leds(), [(24, true), (22, true)], "the disk is busy after the boot");
        assert_eq!(b.tick(t0 + DISK), None);
        assert_eq!(b.leds(), [(24, true), (22, false)]);
        // A short press: the OS shuts down a moment later.
        assert_eq!(press(&mut b, w.power_switch, t0 + DISK, Duration::from_millis(100)), [Change::ShuttingDown]);
        assert!(b.is_on());
        assert_eq!(b.tick(t0 + DISK + SHUTDOWN + Duration::from_millis(100)), Some(Change::Off));
        assert_eq!(b.leds(), [(24, false), (22, false)]);
        // Off: a short press powers on, and its release is no shutdown request.
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(press(&mut b, w.power_switch, t1, Duration::from_millis(100)), [Change::Boot]);
        assert!(b.is_on());
        // Held: off at the 4 s mark, before the release; nothing more on the release.
        let t2 = t1 + Duration::from_secs(10);
        assert_eq!(press(&mut b, w.power_switch, t2, Duration::from_millis(5500)), [Change::Off]);
        assert!(!b.is_on());
    }

    #[test]
    fn reset_reboots_only_a_running_board_and_a_lost_kvm_releases() {
        let w = Wiring::default();
        let t0 = Instant::now();
        let mut b = Board::new(w, t0);
        assert_eq!(press(&mut b, w.reset_switch, t0, Duration::from_millis(100)), [Change::Reboot]);
        assert_eq!(b.line(w.power_switch, true, t0 + Duration::from_secs(1)), None);
        assert_eq!(b.released(t0 + Duration::from_millis(1100)), Some(Change::ShuttingDown));
        assert_eq!(b.tick(t0 + Duration::from_secs(5)), Some(Change::Off));
        assert_eq!(press(&mut b, w.reset_switch, t0 + Duration::from_secs(6), Duration::from_millis(100)), []);
        assert!(!b.is_on());
        assert_eq!(b.line(99, true, t0), None, "an unwired line");
    }

    #[test]
    fn panel_lines_parse_strictly() {
        assert_eq!(parse_line("23 1\n"), Some((23, true)));
        assert_eq!(parse_line("27 0"), Some((27, false)));
        for bad in ["", "23", "23 2", "x 1", "-1 1", "23  1"] {
            assert_eq!(parse_line(bad), None, "{bad:?}");
        }
    }
}
