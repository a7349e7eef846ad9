//! The CH9329 serial HID chip (a UART-to-USB keyboard and mouse), as PiKVM drives it.
//!
//! Frames are `57 AB | ADDR | CMD | LEN | DATA | SUM` (SUM = the byte sum of everything
//! before it); the chip answers each with `CMD | 0x80` (ok) or `CMD | 0xC0` (error) and a
//! status byte. Keyboard reports go out as they are (CMD 0x02); absolute mouse reports are
//! rescaled to the chip's 0..4095 (CMD 0x04); relative ones (CMD 0x05) carry deltas divided
//! by 3 and a ±1 wheel, as PiKVM's driver sends them. `GET_INFO` (0x01) doubles as
//! keepalive and LED poll. STACK.md §9.3 has the worked frames the tests check.
//!
//! The port is opened raw (termios: 8N1, no echo, no flow control) at the configured
//! speed. A writer thread owns it: [`HidOutput::write`] only queues a frame and reports
//! whether the chip answered the previous one, so the HID thread never waits on the UART.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use nix::sys::termios::{self, BaudRate, SetArg};

use super::{Device, HidOutput};

/// The sum of `bytes`, modulo 256.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |s, b| s.wrapping_add(*b))
}

/// A frame for command `cmd` with `data`, to chip address 0.
pub fn frame(cmd: u8, data: &[u8]) -> Vec<u8> {
    let mut f = vec![0x57, 0xAB, 0x00, cmd, data.len() as u8];
    f.extend_from_slice(data);
    f.push(checksum(&f));
    f
}

/// The CH9329 frame for one of our OTG-style reports.
pub fn translate(device: Device, r: &[u8]) -> Option<Vec<u8>> {
    match (device, r.len()) {
        (Device::Keyboard, 8) => Some(frame(0x02, r)),
        (Device::Mouse, 7) => {
            let scale = |lo: u8, hi: u8| (u16::from_le_bytes([lo, hi]) / 8).min(4095).to_le_bytes();
            let (x, y) = (scale(r[1], r[2]), scale(r[3], r[4]));
            Some(frame(0x04, &[0x02, r[0], x[0], x[1], y[0], y[1], wheel_step(r[5])]))
        }
        (Device::MouseAlt, 5) => {
            let third = |d: u8| ((d as i8) / 3) as u8;
            Some(frame(0x05, &[0x01, r[0], third(r[1]), third(r[2]), wheel_step(r[3])]))
        }
        _ => None,
    }
}

fn wheel_step(w: u8) -> u8 {
    match (w as i8).signum() {
        1 => 0x01,
        -1 => 0xFF,
        _ => 0x00,
    }
}

/// Reads one reply frame; `Some((cmd, data))` when its header and sum are right.
fn read_reply(port: &mut File, deadline: Instant) -> Option<(u8, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while Instant::now() < deadline {
        match port.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            // End of file: the other side hung up.
            Ok(_) => return None,
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
        // Resynchronise on the header.
        while buf.len() >= 2 && buf[..2] != [0x57, 0xAB] {
            buf.remove(0);
        }
        if buf.len() >= 5 && buf.len() == 5 + usize::from(buf[4]) + 1 {
            let (body, sum) = buf.split_at(buf.len() - 1);
            return (checksum(body) == sum[0]).then(|| (buf[3], buf[5..buf.len() - 1].to_vec()));
        }
    }
    None
}

/// The chip on a serial port.
pub struct Ch9329 {
    tx: mpsc::Sender<Vec<u8>>,
    online: Arc<AtomicBool>,
    leds: Arc<AtomicU8>,
}

/// Opens `path` raw at `speed` baud.
fn open_port(path: &PathBuf, speed: u32) -> std::io::Result<File> {
    let port = OpenOptions::new().read(true).write(true).custom_flags_nonblock().open(path)?;
    let mut t = termios::tcgetattr(&port).map_err(std::io::Error::from)?;
    termios::cfmakeraw(&mut t);
    let rate = match speed {
        9600 => BaudRate::B9600,
        19200 => BaudRate::B19200,
        38400 => BaudRate::B38400,
        57600 => BaudRate::B57600,
        _ => BaudRate::B115200,
    };
    termios::cfsetspeed(&mut t, rate).map_err(std::io::Error::from)?;
    termios::tcsetattr(&port, SetArg::TCSANOW, &t).map_err(std::io::Error::from)?;
    Ok(port)
}

trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}

impl NonBlock for OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits() | nix::fcntl::OFlag::O_NOCTTY.bits())
    }
}

const REPLY_TIMEOUT: Duration = Duration::from_millis(300);

impl Ch9329 {
    /// Starts the writer thread for the chip on `path` at `speed` baud.
    pub fn new(path: PathBuf, speed: u32) -> Self {
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        let online = Arc::new(AtomicBool::new(false));
        let leds = Arc::new(AtomicU8::new(0));
        let (on, led) = (online.clone(), leds.clone());
        std::thread::Builder::new()
            .name("ch9329".into())
            .spawn(move || {
                let mut port: Option<File> = None;
                let mut logged = false;
                loop {
                    // A frame to send, or a keepalive (GET_INFO) once a second.
                    let (f, closed) = match rx.recv_timeout(Duration::from_secs(1)) {
                        Ok(f) => (f, false),
                        Err(mpsc::RecvTimeoutError::Timeout) => (frame(0x01, &[]), false),
                        Err(mpsc::RecvTimeoutError::Disconnected) => (Vec::new(), true),
                    };
                    if closed {
                        return;
                    }
                    if port.is_none() {
                        port = match open_port(&path, speed) {
                            Ok(p) => {
                                logged = false;
                                Some(p)
                            }
                            Err(e) => {
                                if !logged {
                                    tracing::error!(path = %path.display(), error = %e, "cannot open the CH9329 serial port");
                                    logged = true;
                                }
                                on.store(false, Ordering::SeqCst);
                                continue;
                            }
                        };
                    }
                    let Some(p) = port.as_mut() else { continue };
                    if p.write_all(&f).is_err() {
                        port = None;
                        on.store(false, Ordering::SeqCst);
                        continue;
                    }
                    match read_reply(p, Instant::now() + REPLY_TIMEOUT) {
                        Some((cmd, data)) if cmd == f[3] | 0x80 => {
                            if cmd == 0x81 && data.len() >= 3 {
                                led.store(data[2], Ordering::SeqCst);
                            }
                            on.store(true, Ordering::SeqCst);
                        }
                        Some((cmd, data)) => {
                            tracing::error!(cmd, status = ?data.first(), "CH9329 refused a frame");
                            on.store(false, Ordering::SeqCst);
                        }
                        None => on.store(false, Ordering::SeqCst),
                    }
                }
            })
            .unwrap_or_else(|e| panic!("cannot start the CH9329 thread: {e}"));
        Self { tx, online, leds }
    }
}

impl HidOutput for Ch9329 {
    fn write(&self, device: Device, report: &[u8]) -> bool {
        let Some(f) = translate(device, report) else { return false };
        if self.tx.send(f).is_err() {
            return false;
        }
        // The chip's answer to the previous frame: the flag follows the link.
        self.online.load(Ordering::SeqCst)
    }

    fn read_leds(&self) -> Option<u8> {
        Some(self.leds.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn worked_frames() {
        // STACK.md §9.3.
        assert_eq!(hex(&frame(0x01, &[])), "57 AB 00 01 00 03");
        assert_eq!(
            hex(&translate(Device::Keyboard, &[0, 0, 4, 0, 0, 0, 0, 0]).unwrap_or_default()),
            "57 AB 00 02 08 00 00 04 00 00 00 00 00 10"
        );
        assert_eq!(
            hex(&translate(Device::Keyboard, &[0; 8]).unwrap_or_default()),
            "57 AB 00 02 08 00 00 00 00 00 00 00 00 0C"
        );
        // Centre: 16384 / 8 = 2048.
        let abs = translate(Device::Mouse, &[0, 0x00, 0x40, 0x00, 0x40, 0, 0]).unwrap_or_default();
        assert_eq!(hex(&abs), "57 AB 00 04 07 02 00 00 08 00 08 00 1F");
        // (+30, -15) / 3 = (+10, -5).
        let rel = translate(Device::MouseAlt, &[0, 30, (-15i8) as u8, 0, 0]).unwrap_or_default();
        assert_eq!(hex(&rel), "57 AB 00 05 05 01 00 0A FB 00 12");
        assert_eq!(checksum(&[0x57, 0xAB, 0x00, 0x82, 0x01, 0x00]), 0x85);
        assert!(translate(Device::Keyboard, &[0; 7]).is_none());
    }

    /// The chip played on a pseudo-terminal: acks every frame, answers GET_INFO with Caps
    /// Lock on, and the backend reports online and the LEDs.
    #[test]
    fn talks_to_a_chip_on_a_pty() {
        let pty = nix::pty::openpty(None, None).unwrap_or_else(|e| panic!("{e}"));
        let slave = std::fs::read_link(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&pty.slave)))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut master = File::from(pty.master);
        let stop = Arc::new(AtomicBool::new(false));
        let chip_stop = stop.clone();
        let chip = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut buf = [0u8; 64];
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut pending = Vec::new();
            // The master stays open until the test has seen the answers (a hang-up would
            // discard the last reply).
            while Instant::now() < deadline && !chip_stop.load(Ordering::SeqCst) {
                let n = master.read(&mut buf).unwrap_or(0);
                pending.extend_from_slice(&buf[..n]);
                while pending.len() >= 6 && pending.len() > 5 + usize::from(pending[4]) {
                    let len = 5 + usize::from(pending[4]) + 1;
                    let f: Vec<u8> = pending.drain(..len).collect();
                    assert_eq!(checksum(&f[..len - 1]), f[len - 1], "bad checksum from the backend");
                    let reply = if f[3] == 0x01 {
                        frame(0x81, &[0x30, 0x01, 0x02, 0, 0, 0, 0, 0])
                    } else {
                        frame(f[3] | 0x80, &[0x00])
                    };
                    let _ = master.write_all(&reply);
                    seen.push(f[3]);
                }
            }
            seen
        });
        let out = Ch9329::new(slave, 9600);
        // The first write is queued while the link is still unknown.
        let _ = out.write(Device::Keyboard, &[0, 0, 4, 0, 0, 0, 0, 0]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(out.online.load(Ordering::SeqCst) && out.read_leds() == Some(0x02)) {
            assert!(Instant::now() < deadline, "the backend never saw the chip's answers");
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::SeqCst);
        let _ = out.write(Device::Keyboard, &[0; 8]); // wakes the chip's read for the stop
        let seen = chip.join().unwrap_or_default();
        assert_eq!(&seen[..2], &[0x02, 0x01], "a keyboard frame, then the keepalive GET_INFO");
        drop(pty.slave);
    }
}
