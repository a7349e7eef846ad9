//! `kvmd-streambench <bin-dir>`: kvmd-streamer's numbers, one run (`just bench-streamer`).
//!
//! Starts the release `kvmd-streamer` on a private socket with the 1920x1080 synthetic
//! desktop, and measures with MJPEG clients reading `/stream?extra_headers=1` over the
//! socket: the service's CPU (its threads' run time from /proc) per changed frame (every frame
//! differs) and per unchanged frame (a still desktop), the most fps it serves on all
//! cores, capture-to-first-byte latency at the client (p50/p99, from the part's
//! `X-UStreamer-Grab-Begin-Time`, CLOCK_MONOTONIC on both ends), the CPU of 10 clients
//! against 1, and RSS. The same frame through the bare encoder, in this process, is
//! the reference.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kvmd_streamer::encode::Encoder;
use kvmd_streamer::source::pattern::Pattern;
use kvmd_streamer::source::{Source, Wanted};

const WIDTH: u32 = 1920;
const HEIGHT: u32 = 1080;

fn thread_cpu() -> f64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(|t| t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9)
        .unwrap_or(0.0)
}

fn monotonic() -> f64 {
    kvmd_streamer::frame::monotonic()
}

/// CPU seconds of process `pid` so far: the sum of its threads' run time from
/// `/proc/<pid>/task/*/schedstat` (nanoseconds; /proc's utime+stime count 10 ms ticks).
/// Threads that ended before the call are not counted: the service's threads live for
/// the whole run.
fn process_cpu(pid: u32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0.0 };
    let mut ns = 0u64;
    for t in tasks.flatten() {
        let s = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
        ns += s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    }
    ns as f64 / 1e9
}

fn rss_mib(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// The bare encoder on the moving desktop: CPU ms per 1080p frame (YUYV → I420 → JPEG).
fn bare_encode_ms() -> (f64, usize) {
    let mut p = Pattern::new(WIDTH, HEIGHT, 0, true);
    let _ = p.open(Wanted { width: WIDTH, height: HEIGHT });
    let mut frames = Vec::new();
    for _ in 0..8 {
        if let Ok(Some(f)) = p.grab() {
            frames.push((f.data.to_vec(), f.geometry));
        }
    }
    let mut enc = Encoder::default();
    let mut size = 0;
    let (start, t0) = (Instant::now(), thread_cpu());
    let mut n = 0usize;
    while start.elapsed() < Duration::from_secs(3) {
        let (data, g) = &frames[n % frames.len()];
        size = enc.encode(data, *g, 80).map(|j| j.len()).unwrap_or(0);
        n += 1;
    }
    ((thread_cpu() - t0) * 1000.0 / n as f64, size)
}

/// CPU ms of the YUYV → I420 deinterleave of one 1080p frame, and of its XXH3-128 digest.
fn stage_costs() -> (f64, f64) {
    let mut p = Pattern::new(WIDTH, HEIGHT, 0, true);
    let _ = p.open(Wanted { width: WIDTH, height: HEIGHT });
    let Ok(Some(f)) = p.grab() else { return (0.0, 0.0) };
    let (data, g) = (f.data.to_vec(), f.geometry);
    let mut planes = kvmd_streamer::encode::I420::default();
    let t0 = thread_cpu();
    for _ in 0..200 {
        let _ = planes.fill(std::hint::black_box(&data), g);
    }
    let fill = (thread_cpu() - t0) * 1000.0 / 200.0;
    let t1 = thread_cpu();
    for _ in 0..200 {
        std::hint::black_box(kvmd_streamer::encode::frame_digest(std::hint::black_box(&data), g));
    }
    (fill, (thread_cpu() - t1) * 1000.0 / 200.0)
}

/// CPU ms of a full compare of two equal 1080p YUYV frames, and of copying one.
fn raw_costs() -> (f64, f64) {
    let a = vec![7u8; (WIDTH * HEIGHT * 2) as usize];
    let b = a.clone();
    let mut c = vec![0u8; a.len()];
    let (t0, mut same) = (thread_cpu(), 0);
    for _ in 0..200 {
        same += usize::from(std::hint::black_box(&a) == std::hint::black_box(&b));
    }
    let cmp = (thread_cpu() - t0) * 1000.0 / 200.0;
    let t1 = thread_cpu();
    for _ in 0..200 {
        c.copy_from_slice(std::hint::black_box(&a));
        std::hint::black_box(&c);
    }
    let copy = (thread_cpu() - t1) * 1000.0 / 200.0;
    assert_eq!(same, 200);
    (cmp, copy)
}

struct Service {
    child: Child,
    sock: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::SIGTERM);
        let _ = self.child.wait();
    }
}

fn start(bin: &Path, set: &[&str]) -> anyhow::Result<Service> {
    let dir = tempfile::tempdir()?;
    let sock = dir.path().join("streamer.sock");
    let mut cmd = Command::new(bin.join("kvmd-streamer"));
    cmd.arg("--set").arg(format!("socket.path={}", sock.display()));
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())?.map(|u| u.name).unwrap_or_default();
    cmd.arg("--set").arg(format!("usc.users=[\"{user}\"]"));
    for s in ["source.type=pattern", "params.resolution=1920x1080", "params.desired_fps=0"].iter().chain(set) {
        cmd.arg("--set").arg(s);
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let child = cmd.spawn()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(&sock).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "kvmd-streamer did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Service { child, sock, _dir: dir })
}

#[derive(Default)]
struct Counters {
    frames: AtomicU64,
    latencies: Mutex<Vec<f64>>,
}

/// An MJPEG client: counts frames, records capture-to-first-byte latency.
fn client(sock: PathBuf, stop: Arc<AtomicBool>, c: Arc<Counters>) {
    let Ok(mut s) = UnixStream::connect(&sock) else { return };
    let _ = s.write_all(b"GET /stream?extra_headers=1 HTTP/1.0\r\n\r\n");
    let mut r = BufReader::with_capacity(1 << 20, s);
    let mut line = String::new();
    // Response head.
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut buf = vec![0u8; 1 << 20];
    while !stop.load(Ordering::Relaxed) {
        let mut len = 0usize;
        let mut grab = 0.0f64;
        let mut first = None;
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line.starts_with("Content-Type: ") {
                first = Some(monotonic()); // the part's first bytes
            }
            if let Some(v) = line.strip_prefix("Content-Length: ") {
                len = v.trim().parse().unwrap_or(0);
            } else if let Some(v) = line.strip_prefix("X-UStreamer-Grab-Begin-Time: ") {
                grab = v.trim().parse().unwrap_or(0.0);
            } else if line == "\r\n" && len > 0 {
                break;
            }
        }
        let mut left = len + 2; // the data and its CRLF
        while left > 0 {
            let n = left.min(buf.len());
            if r.read_exact(&mut buf[..n]).is_err() {
                return;
            }
            left -= n;
        }
        c.frames.fetch_add(1, Ordering::Relaxed);
        if let (Some(t), true) = (first, grab > 0.0)
            && let Ok(mut l) = c.latencies.lock()
        {
            l.push(t - grab);
        }
    }
}

struct Run {
    cpu_s: f64,
    secs: f64,
    frames: u64,
    latencies: Vec<f64>,
    rss: f64,
}

fn run(bin: &Path, set: &[&str], clients: usize, secs: f64) -> anyhow::Result<Run> {
    let svc = start(bin, set)?;
    let stop = Arc::new(AtomicBool::new(false));
    let counters: Vec<Arc<Counters>> = (0..clients).map(|_| Arc::new(Counters::default())).collect();
    let threads: Vec<_> = counters
        .iter()
        .map(|c| {
            let (sock, stop, c) = (svc.sock.clone(), stop.clone(), c.clone());
            std::thread::spawn(move || client(sock, stop, c))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2)); // start-up and warm-up
    let pid = svc.child.id();
    for c in &counters {
        if let Ok(mut l) = c.latencies.lock() {
            l.clear();
        }
    }
    let (f0, c0, t0) = (counters[0].frames.load(Ordering::Relaxed), process_cpu(pid), Instant::now());
    std::thread::sleep(Duration::from_secs_f64(secs));
    let (f1, c1, dt) = (counters[0].frames.load(Ordering::Relaxed), process_cpu(pid), t0.elapsed().as_secs_f64());
    let rss = rss_mib(pid);
    let latencies = counters[0].latencies.lock().map(|l| l.clone()).unwrap_or_default();
    stop.store(true, Ordering::Relaxed);
    drop(svc);
    for t in threads {
        let _ = t.join();
    }
    Ok(Run { cpu_s: c1 - c0, secs: dt, frames: f1 - f0, latencies, rss })
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let bin = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "target/release".into()));
    let secs: f64 = std::env::var("DURATION").ok().and_then(|d| d.trim_end_matches('s').parse().ok()).unwrap_or(8.0);
    anyhow::ensure!(kvmd_streamer::encode::simd_available(), "libjpeg built without SIMD");
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let (bare, bare_size) = bare_encode_ms();
    // 60 fps of a moving picture: every frame changes.
    let changed = run(&bin, &["source.fps=60", "source.motion=true", "encoder.workers=1"], 1, secs)?;
    let changed_ms = changed.cpu_s * 1000.0 / changed.frames.max(1) as f64;
    // 60 fps of a still desktop: every frame is the same.
    let still =
        run(&bin, &["source.fps=60", "source.motion=false", "source.clock=false", "encoder.workers=1"], 1, secs)?;
    let captured = 60.0 * still.secs;
    let still_ms = still.cpu_s * 1000.0 / captured;
    // As fast as it goes, all cores.
    // A 300 fps source (a fast capture device) of a moving picture, all cores.
    let max = run(&bin, &["source.fps=300", "source.motion=true", &format!("encoder.workers={cores}")], 1, secs)?;
    let max_fps = max.frames as f64 / max.secs;
    // Ten clients of the 60 fps moving picture.
    let ten = run(&bin, &["source.fps=60", "source.motion=true", "encoder.workers=1"], 10, secs)?;
    let ten_ms = ten.cpu_s * 1000.0 / ten.frames.max(1) as f64;
    let mut lat = changed.latencies.clone();
    let (p50, p99) = (pct(&mut lat, 0.5) * 1000.0, pct(&mut lat, 0.99) * 1000.0);

    println!("| kvmd-streamer, 1920x1080 synthetic desktop, one run | value | target |");
    println!("|---|---|---|");
    println!(
        "| bare encoder (mozjpeg fastest, YUYV → I420 → JPEG q80), CPU per frame | {bare:.2} ms ({} KB) | reference |",
        bare_size / 1000
    );
    println!(
        "| CPU per changed frame (60 fps moving, 1 client: {:.1} fps) | {changed_ms:.2} ms = **{:.2} × bare** | ≤ 1.15 × bare |",
        changed.frames as f64 / changed.secs,
        changed_ms / bare
    );
    println!("| CPU per unchanged frame (60 fps still desktop) | **{still_ms:.3} ms** | ≤ 0.5 ms |");
    println!(
        "| most fps served (300 fps source), {cores} encoder workers on {cores} cores | **{max_fps:.0} fps** | ≥ 200 |"
    );
    let (fill_ms, digest_ms) = stage_costs();
    println!(
        "| stages of the bare encode's input, and the digest: YUYV → I420 / digest of a frame | {fill_ms:.2} / {digest_ms:.2} ms | |"
    );
    let (cmp_ms, copy_ms) = raw_costs();
    println!("| for scale: compare / copy of two 1080p YUYV frames (4 MB) | {cmp_ms:.3} / {copy_ms:.3} ms | |");
    println!(
        "| capture → first byte at the client, p50 / p99 (60 fps) | **{p50:.1} / {p99:.1} ms** | ≤ encode + 2 ms ({:.1}) |",
        bare + 2.0
    );
    println!(
        "| CPU per frame, 10 clients vs 1 | {ten_ms:.2} vs {changed_ms:.2} ms = **{:+.1} %** | ≤ +10 % |",
        (ten_ms / changed_ms - 1.0) * 100.0
    );
    println!("| RSS at 1080p, 10 clients | **{:.1} MiB** | ≤ 40 MiB |", ten.rss);
    println!();
    println!("({cores} cores, {secs} s per run after 2 s warm-up; clients on the service socket)");
    Ok(())
}
