//! kvmd-vtarget: a small emulated computer for the demo and the tests (never installed).
//!
//! It plays the host at the other end of the USB cable and of the HDMI cable:
//! - **HID**: three pseudo-terminals in raw mode stand for the gadget's `/dev/hidg*`
//!   nodes (symlinked where kvmd-hid's OTG backend expects `/dev/kvmd-hid-*`): kvmd-hid
//!   writes its real reports into them, and the keyboard's node gives back the LED byte
//!   when Caps Lock toggles, as a host does. Nothing in kvmd-hid knows it is not a gadget.
//! - **Screen**: a text console (what the keyboard types, US layout) with a mouse
//!   pointer, rendered as YUYV and pushed at a steady rate to every client of a unix
//!   socket, like a capture card: [`frame_header`] then the pixels. kvmd-streamer's
//!   `vtarget` source reads it. Powered off, it sends headers of 0×0 without pixels: no
//!   signal.
//! - **Power** ([`power`]): an ATX front panel (power and reset switches, power and HDD
//!   LEDs) on a unix socket, wired to kvmd-gpio's lines by its `vtarget` chip.

pub mod power;
pub mod screen;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub use screen::Screen;

/// Magic of a frame header.
pub const MAGIC: [u8; 4] = *b"KVTF";
/// Bytes of a frame header.
pub const HEADER: usize = 24;

/// The header of one frame on the screen socket: magic, sequence (u64 LE), width and
/// height (u32 LE), FourCC (`YUYV`); the `width * height * 2` pixel bytes follow.
pub fn frame_header(seq: u64, width: u32, height: u32) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..4].copy_from_slice(&MAGIC);
    h[4..12].copy_from_slice(&seq.to_le_bytes());
    h[12..16].copy_from_slice(&width.to_le_bytes());
    h[16..20].copy_from_slice(&height.to_le_bytes());
    h[20..24].copy_from_slice(b"YUYV");
    h
}

/// Parses a frame header: (sequence, width, height).
pub fn parse_header(h: &[u8; HEADER]) -> Option<(u64, u32, u32)> {
    if h[..4] != MAGIC || &h[20..24] != b"YUYV" {
        return None;
    }
    let seq = u64::from_le_bytes(h[4..12].try_into().ok()?);
    let w = u32::from_le_bytes(h[12..16].try_into().ok()?);
    let h2 = u32::from_le_bytes(h[16..20].try_into().ok()?);
    Some((seq, w, h2))
}

/// A raw-mode pseudo-terminal whose slave is linked at `link`: returns the master.
fn hid_node(link: &Path) -> anyhow::Result<OwnedFd> {
    use nix::sys::termios;
    let pty = nix::pty::openpty(None, None)?;
    let mut t = termios::tcgetattr(&pty.slave)?;
    termios::cfmakeraw(&mut t);
    termios::tcsetattr(&pty.slave, termios::SetArg::TCSANOW, &t)?;
    let name = std::fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd()))?;
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(&name, link)?;
    // Keep the slave open too, so the master never sees a hang-up between kvmd-hid's opens.
    std::mem::forget(pty.slave);
    Ok(pty.master)
}

/// The emulated computer: its board (power) and its screen (what it shows and hears).
struct Machine {
    board: Mutex<power::Board>,
    screen: Mutex<Screen>,
}

impl Machine {
    fn on(&self) -> bool {
        self.board.lock().unwrap_or_else(PoisonError::into_inner).is_on()
    }

    fn apply(&self, change: Option<power::Change>) {
        if let Some(c) = change {
            tracing::info!(change = ?c, "power");
            self.screen.lock().unwrap_or_else(PoisonError::into_inner).power(c);
        }
    }
}

/// Reads fixed-size reports from a node's master and applies them (a powered-off host
/// hears nothing).
fn read_reports(master: OwnedFd, size: usize, machine: Arc<Machine>, kind: screen::Input) {
    let mut f = std::fs::File::from(master);
    let mut buf = vec![0u8; 4096];
    let mut pending = Vec::new();
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(nix::libc::EIO) => {
                // No writer right now (kvmd-hid restarting).
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "HID node read failed");
                return;
            }
        };
        pending.extend_from_slice(&buf[..n]);
        let whole = pending.len() / size * size;
        let mut leds = None;
        if !machine.on() {
            pending.drain(..whole);
            continue;
        }
        {
            let mut s = machine.screen.lock().unwrap_or_else(PoisonError::into_inner);
            for r in pending[..whole].chunks_exact(size) {
                leds = s.input(kind, r).or(leds);
            }
        }
        pending.drain(..whole);
        if let Some(l) = leds {
            // The host's answer to a Caps Lock press: the LED output report.
            let _ = f.write_all(&[l]);
        }
    }
}

/// Pushes the screen to one capture client at `fps` until it goes away; no signal (a
/// 0×0 header) while the machine is off.
fn serve_client(mut c: UnixStream, machine: Arc<Machine>, fps: u32) {
    let period = Duration::from_secs_f64(1.0 / f64::from(fps.max(1)));
    let mut next = Instant::now();
    let mut seq = 0u64;
    loop {
        let (w, h, pixels) = if machine.on() {
            let mut s = machine.screen.lock().unwrap_or_else(PoisonError::into_inner);
            let (w, h) = s.size();
            (w, h, s.frame().to_vec())
        } else {
            (0, 0, Vec::new())
        };
        seq += 1;
        if c.write_all(&frame_header(seq, w, h)).and_then(|()| c.write_all(&pixels)).is_err() {
            return;
        }
        next += period;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
}

/// Where the virtual target puts its ends.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// The keyboard node link (kvmd-hid's `backend.keyboard`).
    #[arg(long)]
    pub keyboard: PathBuf,
    /// The absolute mouse node link.
    #[arg(long)]
    pub mouse: PathBuf,
    /// The relative mouse node link.
    #[arg(long)]
    pub mouse_alt: PathBuf,
    /// The screen socket (kvmd-streamer's `source.device` with `type = "vtarget"`).
    #[arg(long)]
    pub screen: PathBuf,
    /// Screen width.
    #[arg(long, default_value_t = 1280)]
    pub width: u32,
    /// Screen height.
    #[arg(long, default_value_t = 720)]
    pub height: u32,
    /// Frames per second pushed to capture clients.
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// The ATX front panel socket (kvmd-gpio's chip with `type = "vtarget"`); none: no
    /// panel, always on.
    #[arg(long)]
    pub panel: Option<PathBuf>,
    /// The KVM's line wired to the power switch.
    #[arg(long, default_value_t = 23)]
    pub power_switch_line: u32,
    /// The KVM's line wired to the reset switch.
    #[arg(long, default_value_t = 27)]
    pub reset_switch_line: u32,
    /// The KVM's line wired to the power LED.
    #[arg(long, default_value_t = 24)]
    pub power_led_line: u32,
    /// The KVM's line wired to the HDD LED.
    #[arg(long, default_value_t = 22)]
    pub hdd_led_line: u32,
    /// The USB drive's medium: a file kvmd-msd's virtual drive writes
    /// (`<name>\t<size>\t<cdrom>\t<rw>`, empty when ejected), shown on the screen.
    #[arg(long)]
    pub medium: Option<PathBuf>,
}

/// The medium line of `text` (kvmd-msd's announcement), `None` when there is none.
pub fn medium_line(text: &str) -> Option<String> {
    let mut f = text.trim_end_matches('\n').split('\t');
    let name = f.next().filter(|n| !n.is_empty())?;
    let size: u64 = f.next()?.parse().ok()?;
    let kind = if f.next() == Some("1") { "CD-ROM" } else { "flash drive" };
    let mode = if f.next() == Some("1") { "read-write" } else { "read-only" };
    let mib = size as f64 / 1048576.0;
    Some(format!("USB {kind}: {name} ({mib:.1} MiB, {mode})"))
}

/// Shows the medium file's content on the screen whenever it changes (read every 200 ms).
fn watch_medium(path: PathBuf, machine: Arc<Machine>) {
    let mut shown: Option<String> = None;
    loop {
        let line = std::fs::read_to_string(&path).ok().and_then(|t| medium_line(&t));
        if line != shown {
            machine.screen.lock().unwrap_or_else(PoisonError::into_inner).set_medium(line.clone());
            shown = line;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The panel's clients (normally one kvmd-gpio), to send LED changes to.
type PanelClients = Arc<Mutex<Vec<UnixStream>>>;

fn led_lines(leds: &[(u32, bool)]) -> String {
    leds.iter().map(|(l, v)| format!("{l} {}\n", u8::from(*v))).collect()
}

/// Reads one panel client's switch levels until it goes away, then releases them.
fn panel_client(c: UnixStream, machine: Arc<Machine>) {
    use std::io::BufRead;
    let reader = std::io::BufReader::new(c);
    for line in reader.lines() {
        let Ok(line) = line else { break };
        match power::parse_line(&line) {
            Some((l, level)) => {
                let change =
                    machine.board.lock().unwrap_or_else(PoisonError::into_inner).line(l, level, Instant::now());
                machine.apply(change);
            }
            None => tracing::warn!(line = %line.escape_debug(), "not a panel line"),
        }
    }
    let change = machine.board.lock().unwrap_or_else(PoisonError::into_inner).released(Instant::now());
    machine.apply(change);
}

/// Lets time pass on the board every 10 ms and sends the LED changes to the panel's clients.
fn run_board(machine: Arc<Machine>, clients: PanelClients) {
    let mut last = machine.board.lock().unwrap_or_else(PoisonError::into_inner).leds();
    loop {
        std::thread::sleep(Duration::from_millis(10));
        let (change, leds) = {
            let mut b = machine.board.lock().unwrap_or_else(PoisonError::into_inner);
            (b.tick(Instant::now()), b.leds())
        };
        machine.apply(change);
        let changed: Vec<(u32, bool)> = leds.iter().filter(|l| !last.contains(l)).copied().collect();
        if !changed.is_empty() {
            let msg = led_lines(&changed);
            clients.lock().unwrap_or_else(PoisonError::into_inner).retain_mut(|c| c.write_all(msg.as_bytes()).is_ok());
            last = leds;
        }
    }
}

/// Accepts panel clients: each gets every LED level at once, then the changes.
fn serve_panel(listener: UnixListener, machine: Arc<Machine>, clients: PanelClients) {
    for mut c in listener.incoming().flatten() {
        let leds = machine.board.lock().unwrap_or_else(PoisonError::into_inner).leds();
        let mut list = clients.lock().unwrap_or_else(PoisonError::into_inner);
        if c.write_all(led_lines(&leds).as_bytes()).is_err() {
            continue;
        }
        if let Ok(w) = c.try_clone() {
            // A client that stops reading is dropped rather than stalling the board.
            let _ = w.set_write_timeout(Some(Duration::from_secs(1)));
            list.push(w);
        }
        drop(list);
        let m = machine.clone();
        std::thread::spawn(move || panel_client(c, m));
    }
}

/// Runs the virtual target until the process is stopped.
pub fn run(o: &Options) -> anyhow::Result<()> {
    let wiring = power::Wiring {
        power_switch: o.power_switch_line,
        reset_switch: o.reset_switch_line,
        power_led: o.power_led_line,
        hdd_led: o.hdd_led_line,
    };
    let machine = Arc::new(Machine {
        board: Mutex::new(power::Board::new(wiring, Instant::now())),
        screen: Mutex::new(Screen::new(o.width, o.height)),
    });
    let clients = PanelClients::default();
    {
        let (m, c) = (machine.clone(), clients.clone());
        std::thread::spawn(move || run_board(m, c));
    }
    if let Some(medium) = o.medium.clone() {
        let m = machine.clone();
        std::thread::spawn(move || watch_medium(medium, m));
    }
    if let Some(panel) = &o.panel {
        let _ = std::fs::remove_file(panel);
        let listener = UnixListener::bind(panel)?;
        let (m, c) = (machine.clone(), clients.clone());
        std::thread::spawn(move || serve_panel(listener, m, c));
    }
    for (link, size, kind) in [
        (&o.keyboard, 8, screen::Input::Keyboard),
        (&o.mouse, 7, screen::Input::Mouse),
        (&o.mouse_alt, 5, screen::Input::MouseRelative),
    ] {
        let master = hid_node(link)?;
        let m = machine.clone();
        std::thread::spawn(move || read_reports(master, size, m, kind));
    }
    let _ = std::fs::remove_file(&o.screen);
    let listener = UnixListener::bind(&o.screen)?;
    tracing::info!(screen = %o.screen.display(), "virtual target ready");
    for c in listener.incoming().flatten() {
        let (m, fps) = (machine.clone(), o.fps);
        std::thread::spawn(move || serve_client(c, m, fps));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_medium_line_says_what_the_drive_holds() {
        assert_eq!(
            super::medium_line("os.iso\t3145728\t1\t0\n").as_deref(),
            Some("USB CD-ROM: os.iso (3.0 MiB, read-only)")
        );
        assert_eq!(
            super::medium_line("disk.img\t1048576\t0\t1\n").as_deref(),
            Some("USB flash drive: disk.img (1.0 MiB, read-write)")
        );
        assert_eq!(super::medium_line(""), None);
        assert_eq!(super::medium_line("x\tnot a size\t0\t0"), None);
    }
}
