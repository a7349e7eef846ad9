//! `kvmd-vmprobe`: what the guest of the real-kernel tests (`tests/vm`) uses to look at the
//! kernel's side of the suite's work:
//!
//! - `find <phys-suffix>`: the `/dev/input/event*` node the USB host side of `dummy_hcd` made
//!   for one interface of the gadget (`input0` keyboard, `input1` absolute mouse, `input2`
//!   relative mouse), waiting for it to appear;
//! - `read <node>`: the input events it delivers (key codes, coordinates, motion, wheel), from
//!   the first until it has been quiet for a while, one `EV_<type> <code> <value>` line each;
//! - `led <node> <caps|num|scroll> <0|1>`: sets a keyboard LED from the host side (the gadget
//!   then reads the output report);
//! - `mjpeg <file>`: decodes every frame of a saved `multipart/x-mixed-replace` stream and
//!   prints its size;
//! - `ws <socket> <path> <key=value...>`: reads kvmd-hid's WebSocket on its unix socket until
//!   an event matches (`type=hid keyboard.leds.caps=true`), and prints that event;
//! - `pulse <value-file>`: watches a simulated GPIO line's sysfs `value` (gpio-sim) every
//!   millisecond until it goes high and low again, and prints `high <ms>`: what a logic
//!   analyser on an ATX button would show.
//!
//! Everything goes through sysfs, plain reads and writes: no ioctls, so no unsafe code.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;

/// The probe's commands.
#[derive(Debug, Parser)]
#[command(version)]
enum Cli {
    /// Prints the event node whose `phys` ends with SUFFIX, waiting up to TIMEOUT seconds.
    Find {
        suffix: String,
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
    },
    /// Prints the events of NODE from the first (waited for up to FIRST ms) until it is
    /// quiet for QUIET ms (at most MAX ms in all).
    Read {
        node: PathBuf,
        #[arg(long, default_value_t = 10_000)]
        first: u64,
        #[arg(long, default_value_t = 1500)]
        quiet: u64,
        #[arg(long, default_value_t = 20_000)]
        max: u64,
    },
    /// Sets an LED of the keyboard at NODE from the host side.
    Led { node: PathBuf, led: String, value: i32 },
    /// Decodes the JPEG frames of a saved MJPEG stream; prints `frame <n> <w>x<h>`.
    Mjpeg { file: PathBuf },
    /// Waits up to TIMEOUT seconds for the line whose sysfs `value` is FILE to go high,
    /// then low; prints `high <ms>`.
    Pulse {
        file: PathBuf,
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
    },
    /// Waits for a WebSocket event whose fields match every `path=value`.
    Ws {
        socket: PathBuf,
        path: String,
        matches: Vec<String>,
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse() {
        Cli::Find { suffix, timeout } => find(&suffix, Duration::from_secs_f64(timeout)),
        Cli::Read { node, first, quiet, max } => {
            read(&node, Duration::from_millis(first), Duration::from_millis(quiet), Duration::from_millis(max))
        }
        Cli::Led { node, led, value } => set_led(&node, &led, value),
        Cli::Mjpeg { file } => mjpeg(&file),
        Cli::Pulse { file, timeout } => pulse(&file, Duration::from_secs_f64(timeout)),
        Cli::Ws { socket, path, matches, timeout } => ws(&socket, &path, &matches, Duration::from_secs_f64(timeout)),
    }
}

fn pulse(file: &Path, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let high = || -> anyhow::Result<bool> {
        let v = std::fs::read_to_string(file).with_context(|| format!("{}", file.display()))?;
        Ok(v.trim() == "1")
    };
    let mut rose = None;
    loop {
        let now = Instant::now();
        match (rose, high()?) {
            (None, true) => rose = Some(now),
            (Some(t), false) => {
                println!("high {}", now.duration_since(t).as_millis());
                return Ok(());
            }
            _ => {}
        }
        if now > deadline {
            bail!("{}: no pulse within {timeout:?} (rose: {})", file.display(), rose.is_some());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn find(suffix: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(dir) = std::fs::read_dir("/sys/class/input") {
            for e in dir.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !name.starts_with("event") {
                    continue;
                }
                let phys = std::fs::read_to_string(e.path().join("device/phys")).unwrap_or_default();
                if phys.trim_end().ends_with(suffix) && Path::new("/dev/input").join(&name).exists() {
                    println!("/dev/input/{name}");
                    return Ok(());
                }
            }
        }
        if Instant::now() > deadline {
            bail!("no input device with phys *{suffix} within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `struct input_event` on 64-bit Linux: timeval (16), type, code (u16), value (i32).
const EVENT_SIZE: usize = 24;

fn type_name(t: u16) -> String {
    match t {
        0x01 => "EV_KEY".into(),
        0x02 => "EV_REL".into(),
        0x03 => "EV_ABS".into(),
        0x11 => "EV_LED".into(),
        t => format!("EV_{t:#x}"),
    }
}

fn read(node: &Path, first: Duration, quiet: Duration, max: Duration) -> anyhow::Result<()> {
    // A reader thread blocks on the node; the main thread decides when the device has gone
    // quiet (the reader is left behind at exit).
    let mut f = std::fs::File::open(node).with_context(|| format!("open {}", node.display()))?;
    let (tx, rx) = std::sync::mpsc::channel::<[u8; EVENT_SIZE]>();
    std::thread::spawn(move || {
        let mut b = [0u8; EVENT_SIZE];
        while f.read_exact(&mut b).is_ok() {
            if tx.send(b).is_err() {
                break;
            }
        }
    });
    // Ready: the caller may act now.
    eprintln!("reading {}", node.display());
    let end = Instant::now() + max;
    let out = std::io::stdout();
    let mut out = out.lock();
    // The action the caller starts now may take a while to reach the device (the guest runs
    // under TCG): the quiet period counts from the first event.
    let mut wait = first;
    while let Ok(b) = rx.recv_timeout(wait.min(end.saturating_duration_since(Instant::now()))) {
        wait = quiet;
        let kind = u16::from_ne_bytes([b[16], b[17]]);
        let code = u16::from_ne_bytes([b[18], b[19]]);
        let value = i32::from_ne_bytes([b[20], b[21], b[22], b[23]]);
        // EV_SYN and EV_MSC (scan codes) frame the events; they are not what was typed.
        if kind != 0x00 && kind != 0x04 {
            writeln!(out, "{} {code} {value}", type_name(kind))?;
            out.flush()?;
        }
    }
    Ok(())
}

fn set_led(node: &Path, led: &str, value: i32) -> anyhow::Result<()> {
    let code: u16 = match led {
        "num" => 0,
        "caps" => 1,
        "scroll" => 2,
        other => bail!("unknown LED {other:?}"),
    };
    let event = |kind: u16, code: u16, value: i32| {
        let mut b = [0u8; EVENT_SIZE];
        b[16..18].copy_from_slice(&kind.to_ne_bytes());
        b[18..20].copy_from_slice(&code.to_ne_bytes());
        b[20..24].copy_from_slice(&value.to_ne_bytes());
        b
    };
    let mut f =
        std::fs::OpenOptions::new().write(true).open(node).with_context(|| format!("open {}", node.display()))?;
    f.write_all(&event(0x11, code, value))?;
    f.write_all(&event(0x00, 0, 0))?;
    Ok(())
}

fn mjpeg(file: &Path) -> anyhow::Result<()> {
    let data = std::fs::read(file).with_context(|| format!("read {}", file.display()))?;
    let mut rest = &data[..];
    let mut n = 0;
    let needle = b"Content-Length:";
    while let Some(at) = rest.windows(needle.len()).position(|w| w.eq_ignore_ascii_case(needle)) {
        let after = &rest[at + needle.len()..];
        let Some(eol) = after.windows(2).position(|w| w == b"\r\n") else { break };
        let len: usize = std::str::from_utf8(&after[..eol])?.trim().parse()?;
        let Some(body) = after.windows(4).position(|w| w == b"\r\n\r\n") else { break };
        let start = body + 4;
        if after.len() < start + len {
            break; // the last part, cut off when the capture stopped
        }
        let jpeg = &after[start..start + len];
        n += 1;
        let (w, h) = decode(jpeg).with_context(|| format!("frame {n}"))?;
        println!("frame {n} {w}x{h}");
        rest = &after[start + len..];
    }
    if n == 0 {
        bail!("no complete frame in {}", file.display());
    }
    Ok(())
}

/// Decodes a whole JPEG (mozjpeg's errors are panics, caught here) and returns its size.
fn decode(jpeg: &[u8]) -> anyhow::Result<(usize, usize)> {
    std::panic::catch_unwind(|| -> anyhow::Result<(usize, usize)> {
        let d = mozjpeg::Decompress::new_mem(jpeg)?;
        let (w, h) = d.size();
        let mut rgb = d.rgb()?;
        let pixels: Vec<[u8; 3]> = rgb.read_scanlines()?;
        rgb.finish()?;
        if pixels.len() != w * h {
            bail!("decoded {} pixels, expected {}", pixels.len(), w * h);
        }
        Ok((w, h))
    })
    .unwrap_or_else(|_| bail!("not a valid JPEG"))
}

/// The value at a dotted path of a JSON value, as text (`true`, `42`, `"x"` → `x`).
fn lookup(v: &serde_json::Value, path: &str) -> Option<String> {
    let mut cur = v;
    for part in path.split('.') {
        cur = cur.get(part)?;
    }
    Some(match cur {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

fn ws(socket: &Path, path: &str, matches: &[String], timeout: Duration) -> anyhow::Result<()> {
    let wanted: Vec<(&str, &str)> =
        matches.iter().map(|m| m.split_once('=').context("matches are path=value")).collect::<Result<_, _>>()?;
    let stream =
        std::os::unix::net::UnixStream::connect(socket).with_context(|| format!("connect {}", socket.display()))?;
    stream.set_read_timeout(Some(timeout))?;
    let (mut ws, _) = tungstenite::client(format!("ws://localhost{path}"), stream).context("WebSocket handshake")?;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let msg = ws.read().context("WebSocket read")?;
        let tungstenite::Message::Text(text) = msg else { continue };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
        let hit = wanted.iter().all(|(p, want)| {
            let got = if *p == "type" {
                v.get("event_type").and_then(|t| t.as_str()).map(str::to_owned)
            } else {
                v.get("event").and_then(|e| lookup(e, p))
            };
            got.as_deref() == Some(*want)
        });
        if hit {
            println!("{text}");
            return Ok(());
        }
    }
    bail!("no WebSocket event matched {matches:?} within {timeout:?}")
}
