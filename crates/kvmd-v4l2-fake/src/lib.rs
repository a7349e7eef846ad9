//! A fake V4L2 capture device, for tests only, loaded with `LD_PRELOAD` into
//! kvmd-streamer: it interposes `open`, `close`, `ioctl`, `mmap`, `munmap` and `poll`
//! for one path (`KVMD_FAKE_V4L2`) and passes everything else to libc.
//!
//! The device is a single-planar MMAP YUYV capture node behind an HDMI bridge: DV
//! timings (`QUERY_DV_TIMINGS` gives the signal's size, `ENOLINK` without signal,
//! `ENOLCK` without sync), `S_FMT` always answers the signal's size (the caller must use
//! what the driver returns), and a `V4L2_EVENT_SOURCE_CHANGE` (POLLPRI) when the signal
//! changes. The signal is what the control file (`KVMD_FAKE_V4L2_CTL`) says, re-read
//! every frame: `<W>x<H> <fps>`, `nosignal`, `nosync`, or `gone` (the node disappears:
//! `open` fails with ENOENT). Frames are a gradient with a moving bar, so consecutive
//! frames differ; or, when the caller asks for MJPG and `KVMD_FAKE_V4L2_JPEG` names a
//! file, that JPEG in every frame, every third one broken (a USB HDMI dongle).
//!
//! Everything here is FFI: the crate allows unsafe code (and is never installed).
#![allow(unsafe_code, missing_docs, clippy::missing_safety_doc)]

use std::ffi::{CStr, c_char, c_int, c_ulong, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use v4l::v4l_sys::*;
use v4l::v4l2::vidioc;

type OpenFn = unsafe extern "C" fn(*const c_char, c_int, libc::mode_t) -> c_int;
type CloseFn = unsafe extern "C" fn(c_int) -> c_int;
type IoctlFn = unsafe extern "C" fn(c_int, c_ulong, *mut c_void) -> c_int;
type MmapFn = unsafe extern "C" fn(*mut c_void, usize, c_int, c_int, c_int, libc::off_t) -> *mut c_void;
type MunmapFn = unsafe extern "C" fn(*mut c_void, usize) -> c_int;
type PollFn = unsafe extern "C" fn(*mut libc::pollfd, libc::nfds_t, c_int) -> c_int;

fn real<T: Copy>(name: &CStr) -> T {
    // SAFETY: dlsym with RTLD_NEXT returns the next definition of a libc function whose
    // signature T matches; transmuting a non-null symbol address to that fn type.
    unsafe {
        let p = libc::dlsym(libc::RTLD_NEXT, name.as_ptr());
        assert!(!p.is_null(), "no {name:?}");
        std::mem::transmute_copy(&p)
    }
}

struct Real {
    open: OpenFn,
    open64: OpenFn,
    close: CloseFn,
    ioctl: IoctlFn,
    mmap: MmapFn,
    munmap: MunmapFn,
    poll: PollFn,
}

fn libc_fns() -> &'static Real {
    static R: OnceLock<Real> = OnceLock::new();
    R.get_or_init(|| Real {
        open: real(c"open"),
        open64: real(c"open64"),
        close: real(c"close"),
        ioctl: real(c"ioctl"),
        mmap: real(c"mmap"),
        munmap: real(c"munmap"),
        poll: real(c"poll"),
    })
}

fn fake_path() -> Option<&'static str> {
    static P: OnceLock<Option<String>> = OnceLock::new();
    P.get_or_init(|| std::env::var("KVMD_FAKE_V4L2").ok()).as_deref()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Mode(u32, u32, u32),
    Lost,
    NoSync,
    Gone,
}

fn read_signal() -> Signal {
    let ctl = std::env::var("KVMD_FAKE_V4L2_CTL").unwrap_or_default();
    let text = std::fs::read_to_string(ctl).unwrap_or_default();
    let t = text.trim();
    match t {
        "nosignal" => Signal::Lost,
        "nosync" => Signal::NoSync,
        "gone" => Signal::Gone,
        _ => {
            let mut it = t.split_whitespace();
            let (w, h) = it.next().and_then(|r| r.split_once('x')).unwrap_or(("640", "480"));
            let fps = it.next().and_then(|f| f.parse().ok()).unwrap_or(30);
            Signal::Mode(w.parse().unwrap_or(640), h.parse().unwrap_or(480), fps)
        }
    }
}

const OFFSET_STEP: usize = 1 << 24;

struct Buffer {
    mem: *mut u8,
    len: usize,
    queued: bool,
    done: bool,
    used: u32,
    sequence: u32,
    ts: libc::timeval,
}

// SAFETY: the buffer memory is only touched under the device mutex.
unsafe impl Send for Buffer {}

struct Device {
    fd: c_int,
    width: u32,
    height: u32,
    signal: Signal,
    bufs: Vec<Buffer>,
    event: bool,
    streaming: Option<Arc<AtomicBool>>,
    sequence: u32,
    /// MJPEG mode: the JPEG every frame carries (`KVMD_FAKE_V4L2_JPEG`), like a USB dongle.
    mjpeg: Option<Vec<u8>>,
}

fn devices() -> &'static Mutex<Vec<Device>> {
    static D: OnceLock<Mutex<Vec<Device>>> = OnceLock::new();
    D.get_or_init(|| Mutex::new(Vec::new()))
}

fn with_dev<R>(fd: c_int, f: impl FnOnce(&mut Device) -> R) -> Option<R> {
    let mut all = devices().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    all.iter_mut().find(|d| d.fd == fd).map(f)
}

fn is_fake(fd: c_int) -> bool {
    with_dev(fd, |_| ()).is_some()
}

fn set_errno(e: c_int) -> c_int {
    // SAFETY: errno is thread-local.
    unsafe { *libc::__errno_location() = e };
    -1
}

unsafe fn open_impl(real: OpenFn, path: *const c_char, flags: c_int, mode: libc::mode_t) -> c_int {
    // SAFETY: path is the caller's NUL-terminated string.
    let p = unsafe { CStr::from_ptr(path) }.to_str().unwrap_or("");
    if fake_path() != Some(p) {
        // SAFETY: forwarding the caller's arguments.
        return unsafe { real(path, flags, mode) };
    }
    let signal = read_signal();
    if signal == Signal::Gone {
        return set_errno(libc::ENOENT);
    }
    // SAFETY: plain syscall; the eventfd stands for the device node.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_SEMAPHORE | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return fd;
    }
    let (width, height) = match signal {
        Signal::Mode(w, h, _) => (w, h),
        _ => (640, 480),
    };
    let dev =
        Device { fd, width, height, signal, bufs: Vec::new(), event: false, streaming: None, sequence: 0, mjpeg: None };
    devices().lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(dev);
    fd
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn open(path: *const c_char, flags: c_int, mode: libc::mode_t) -> c_int {
    // SAFETY: see open_impl.
    unsafe { open_impl(libc_fns().open, path, flags, mode) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn open64(path: *const c_char, flags: c_int, mode: libc::mode_t) -> c_int {
    // SAFETY: see open_impl.
    unsafe { open_impl(libc_fns().open64, path, flags, mode) }
}

fn stop_streaming(d: &mut Device) {
    if let Some(flag) = d.streaming.take() {
        flag.store(false, Ordering::SeqCst);
    }
}

fn free_buffers(d: &mut Device) {
    for b in d.bufs.drain(..) {
        // SAFETY: allocated by our own anonymous mmap of this length.
        unsafe { (libc_fns().munmap)(b.mem.cast(), b.len) };
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    let removed = {
        let mut all = devices().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        all.iter().position(|d| d.fd == fd).map(|i| all.remove(i))
    };
    if let Some(mut d) = removed {
        stop_streaming(&mut d);
        free_buffers(&mut d);
    }
    // SAFETY: forwarding.
    unsafe { (libc_fns().close)(fd) }
}

fn fill_frame(d: &Device, b: &mut Buffer, n: u32) {
    if let Some(jpeg) = &d.mjpeg {
        let len = jpeg.len().min(b.len);
        // SAFETY: mem is a live mapping of len ≥ len bytes, only written under the lock.
        let px = unsafe { std::slice::from_raw_parts_mut(b.mem, len) };
        px.copy_from_slice(&jpeg[..len]);
        if n % 3 == 2 {
            // Every third frame is broken (no SOI), as dongles send now and then.
            px[..2].copy_from_slice(&[0, 0]);
        }
        b.used = len as u32;
        return;
    }
    let (w, h) = (d.width as usize, d.height as usize);
    let stride = w * 2;
    let size = stride * h;
    if size > b.len {
        return;
    }
    // SAFETY: mem is a live mapping of len ≥ size bytes, only written under the lock.
    let px = unsafe { std::slice::from_raw_parts_mut(b.mem, size) };
    let bar = (n as usize * 16) % w.max(1);
    for y in 0..h {
        let row = &mut px[y * stride..(y + 1) * stride];
        for x in (0..w).step_by(2) {
            let yv = if x.abs_diff(bar) < 32 { 235 } else { 16 + ((x * 200) / w.max(1)) as u8 };
            row[x * 2..x * 2 + 4].copy_from_slice(&[yv, 128, yv, (64 + (y * 128) / h.max(1)) as u8]);
        }
    }
    b.used = size as u32;
}

fn producer(fd: c_int, run: Arc<AtomicBool>) {
    let mut n = 0u32;
    while run.load(Ordering::SeqCst) {
        let signal = read_signal();
        let fps = match signal {
            Signal::Mode(_, _, f) => f.max(1),
            _ => 30,
        };
        let changed = with_dev(fd, |d| {
            if signal != d.signal {
                // The bridge sees another signal: a source-change event, no more frames
                // until the caller restarts.
                d.signal = signal;
                d.event = true;
                return true;
            }
            let now = {
                let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
                // SAFETY: plain clock read into a local.
                unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
                libc::timeval { tv_sec: t.tv_sec, tv_usec: t.tv_nsec / 1000 }
            };
            let seq = d.sequence;
            if let Some(i) = d.bufs.iter().position(|b| b.queued && !b.done) {
                let mut b = std::mem::replace(
                    &mut d.bufs[i],
                    Buffer {
                        mem: std::ptr::null_mut(),
                        len: 0,
                        queued: false,
                        done: false,
                        used: 0,
                        sequence: 0,
                        ts: now,
                    },
                );
                fill_frame(d, &mut b, n);
                b.done = true;
                b.sequence = seq;
                b.ts = now;
                d.bufs[i] = b;
                d.sequence += 1;
                let one: u64 = 1;
                // SAFETY: writing 8 bytes to our eventfd.
                unsafe { libc::write(fd, (&raw const one).cast(), 8) };
            }
            false
        });
        match changed {
            None => return,
            Some(true) => {
                let one: u64 = 1;
                // SAFETY: as above; wakes a poller to see the event.
                unsafe { libc::write(fd, (&raw const one).cast(), 8) };
            }
            Some(false) => {}
        }
        n = n.wrapping_add(1);
        std::thread::sleep(Duration::from_secs_f64(1.0 / f64::from(fps)));
    }
}

unsafe fn fake_ioctl(fd: c_int, req: c_ulong, arg: *mut c_void) -> c_int {
    let r = req as u32 as vidioc::_IOC_TYPE;
    // Read before taking the lock: reading a file calls open/close, which lock too.
    let signal = read_signal();
    let jpeg = if r == vidioc::VIDIOC_S_FMT as u32 as vidioc::_IOC_TYPE {
        std::env::var("KVMD_FAKE_V4L2_JPEG").ok().and_then(|path| std::fs::read(path).ok())
    } else {
        None
    };
    let result = with_dev(fd, |d| -> Result<(), c_int> {
        // SAFETY (all arms): arg points to the struct the request names, as the caller
        // passes for a real device.
        unsafe {
            if r == vidioc::VIDIOC_QUERYCAP as u32 as vidioc::_IOC_TYPE {
                let c = &mut *arg.cast::<v4l2_capability>();
                *c = std::mem::zeroed();
                c.driver[..9].copy_from_slice(b"kvmd-fake");
                c.card[..9].copy_from_slice(b"kvmd-fake");
                c.capabilities = V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_STREAMING | V4L2_CAP_DEVICE_CAPS;
                c.device_caps = V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_STREAMING;
                Ok(())
            } else if r == vidioc::VIDIOC_G_FMT as u32 as vidioc::_IOC_TYPE
                || r == vidioc::VIDIOC_S_FMT as u32 as vidioc::_IOC_TYPE
            {
                let f = &mut *arg.cast::<v4l2_format>();
                if f.type_ != v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_CAPTURE {
                    return Err(libc::EINVAL);
                }
                if !d.bufs.is_empty() && r == vidioc::VIDIOC_S_FMT as u32 as vidioc::_IOC_TYPE {
                    return Err(libc::EBUSY);
                }
                let p = &mut f.fmt.pix;
                if r == vidioc::VIDIOC_S_FMT as u32 as vidioc::_IOC_TYPE {
                    d.mjpeg = if p.pixelformat == u32::from_le_bytes(*b"MJPG") { jpeg } else { None };
                }
                // Like a bridge: the signal decides the size; YUYV, or MJPEG when asked
                // and a JPEG is given.
                p.width = d.width;
                p.height = d.height;
                p.field = v4l2_field_V4L2_FIELD_NONE;
                if let Some(j) = &d.mjpeg {
                    p.pixelformat = u32::from_le_bytes(*b"MJPG");
                    p.bytesperline = 0;
                    p.sizeimage = (j.len() as u32).max(d.width * d.height * 2);
                } else {
                    p.pixelformat = u32::from_le_bytes(*b"YUYV");
                    p.bytesperline = d.width * 2;
                    p.sizeimage = d.width * d.height * 2;
                }
                Ok(())
            } else if r == vidioc::VIDIOC_REQBUFS as u32 as vidioc::_IOC_TYPE {
                let q = &mut *arg.cast::<v4l2_requestbuffers>();
                free_buffers(d);
                q.count = q.count.min(8);
                let len = ((d.width * d.height * 2) as usize).max(d.mjpeg.as_ref().map_or(0, Vec::len));
                for _ in 0..q.count {
                    let mem = (libc_fns().mmap)(
                        std::ptr::null_mut(),
                        len,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                        -1,
                        0,
                    );
                    if mem == libc::MAP_FAILED {
                        return Err(libc::ENOMEM);
                    }
                    d.bufs.push(Buffer {
                        mem: mem.cast(),
                        len,
                        queued: false,
                        done: false,
                        used: 0,
                        sequence: 0,
                        ts: libc::timeval { tv_sec: 0, tv_usec: 0 },
                    });
                }
                Ok(())
            } else if r == vidioc::VIDIOC_QUERYBUF as u32 as vidioc::_IOC_TYPE {
                let b = &mut *arg.cast::<v4l2_buffer>();
                let Some(buf) = d.bufs.get(b.index as usize) else { return Err(libc::EINVAL) };
                b.length = buf.len as u32;
                b.m.offset = (b.index as usize * OFFSET_STEP) as u32;
                Ok(())
            } else if r == vidioc::VIDIOC_QBUF as u32 as vidioc::_IOC_TYPE {
                let b = &mut *arg.cast::<v4l2_buffer>();
                let Some(buf) = d.bufs.get_mut(b.index as usize) else { return Err(libc::EINVAL) };
                buf.queued = true;
                buf.done = false;
                Ok(())
            } else if r == vidioc::VIDIOC_DQBUF as u32 as vidioc::_IOC_TYPE {
                let b = &mut *arg.cast::<v4l2_buffer>();
                let Some(i) = d.bufs.iter().position(|x| x.queued && x.done) else { return Err(libc::EAGAIN) };
                let mut one: u64 = 0;
                libc::read(d.fd, (&raw mut one).cast(), 8);
                let buf = &mut d.bufs[i];
                buf.queued = false;
                buf.done = false;
                b.index = i as u32;
                b.bytesused = buf.used;
                b.sequence = buf.sequence;
                b.timestamp = timeval { tv_sec: buf.ts.tv_sec, tv_usec: buf.ts.tv_usec };
                b.length = buf.len as u32;
                Ok(())
            } else if r == vidioc::VIDIOC_STREAMON as u32 as vidioc::_IOC_TYPE {
                if d.streaming.is_none() {
                    let run = Arc::new(AtomicBool::new(true));
                    d.streaming = Some(run.clone());
                    let fd = d.fd;
                    std::thread::spawn(move || producer(fd, run));
                }
                Ok(())
            } else if r == vidioc::VIDIOC_STREAMOFF as u32 as vidioc::_IOC_TYPE {
                stop_streaming(d);
                for b in &mut d.bufs {
                    b.queued = false;
                    b.done = false;
                }
                Ok(())
            } else if r == 0x8084_5663 {
                // QUERY_DV_TIMINGS
                let t = &mut *arg.cast::<v4l2_dv_timings>();
                match signal {
                    Signal::Lost => Err(libc::ENOLINK),
                    Signal::NoSync => Err(libc::ENOLCK),
                    Signal::Gone => Err(libc::ENODEV),
                    Signal::Mode(w, h, _) => {
                        *t = std::mem::zeroed();
                        t.type_ = V4L2_DV_BT_656_1120;
                        t.__bindgen_anon_1.bt.width = w;
                        t.__bindgen_anon_1.bt.height = h;
                        Ok(())
                    }
                }
            } else if r == 0xc084_5657 {
                // S_DV_TIMINGS: the size is the signal's from now on.
                let t = &*arg.cast::<v4l2_dv_timings>();
                d.width = t.__bindgen_anon_1.bt.width;
                d.height = t.__bindgen_anon_1.bt.height;
                d.signal = signal;
                Ok(())
            } else if r == 0x4020_565a {
                Ok(()) // SUBSCRIBE_EVENT
            } else if r == 0x8088_5659 {
                // DQEVENT
                let e = &mut *arg.cast::<v4l2_event>();
                if d.event {
                    d.event = false;
                    *e = std::mem::zeroed();
                    e.type_ = 5; // V4L2_EVENT_SOURCE_CHANGE
                    Ok(())
                } else {
                    Err(libc::ENOENT)
                }
            } else {
                if std::env::var_os("KVMD_FAKE_V4L2_DEBUG").is_some() {
                    eprintln!("kvmd-v4l2-fake: ioctl {req:#x} not emulated");
                }
                Err(libc::ENOTTY)
            }
        }
    });
    match result {
        Some(Ok(())) => 0,
        Some(Err(e)) => set_errno(e),
        None => set_errno(libc::EBADF),
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn ioctl(fd: c_int, req: c_ulong, arg: *mut c_void) -> c_int {
    if is_fake(fd) {
        // SAFETY: see fake_ioctl.
        return unsafe { fake_ioctl(fd, req, arg) };
    }
    // SAFETY: forwarding.
    unsafe { (libc_fns().ioctl)(fd, req, arg) }
}

type SyscallFn = unsafe extern "C" fn(libc::c_long, ...) -> libc::c_long;

/// The v4l crate issues its ioctls through `syscall(SYS_ioctl, ...)`. The variadic
/// arguments are read as six longs (registers on x86_64 and aarch64 Linux).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn syscall(
    num: libc::c_long,
    a1: libc::c_long,
    a2: libc::c_long,
    a3: libc::c_long,
    a4: libc::c_long,
    a5: libc::c_long,
    a6: libc::c_long,
) -> libc::c_long {
    if num == libc::SYS_ioctl && is_fake(a1 as c_int) {
        // SAFETY: see fake_ioctl; a3 is the caller's argument pointer.
        return libc::c_long::from(unsafe { fake_ioctl(a1 as c_int, a2 as c_ulong, a3 as *mut c_void) });
    }
    static REAL: OnceLock<SyscallFn> = OnceLock::new();
    let real = *REAL.get_or_init(|| real(c"syscall"));
    // SAFETY: forwarding all six argument registers.
    unsafe { real(num, a1, a2, a3, a4, a5, a6) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn mmap(
    addr: *mut c_void,
    len: usize,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: libc::off_t,
) -> *mut c_void {
    if fd >= 0
        && let Some(p) = with_dev(fd, |d| {
            d.bufs.get(off as usize / OFFSET_STEP).filter(|b| b.len >= len).map(|b| b.mem.cast::<c_void>())
        })
    {
        return p.unwrap_or(libc::MAP_FAILED);
    }
    // SAFETY: forwarding.
    unsafe { (libc_fns().mmap)(addr, len, prot, flags, fd, off) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn mmap64(
    addr: *mut c_void,
    len: usize,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: libc::off_t,
) -> *mut c_void {
    // SAFETY: same contract as mmap.
    unsafe { mmap(addr, len, prot, flags, fd, off) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn munmap(addr: *mut c_void, len: usize) -> c_int {
    let ours = {
        let all = devices().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        all.iter().any(|d| d.bufs.iter().any(|b| b.mem.cast::<c_void>() == addr))
    };
    if ours {
        return 0; // freed with the buffers
    }
    // SAFETY: forwarding.
    unsafe { (libc_fns().munmap)(addr, len) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn poll(fds: *mut libc::pollfd, n: libc::nfds_t, timeout: c_int) -> c_int {
    // SAFETY: the caller's array of n pollfds.
    let list = unsafe { std::slice::from_raw_parts_mut(fds, n as usize) };
    if n != 1 || !is_fake(list[0].fd) {
        // SAFETY: forwarding.
        return unsafe { (libc_fns().poll)(fds, n, timeout) };
    }
    let fd = list[0].fd;
    let deadline = std::time::Instant::now() + Duration::from_millis(timeout.max(0) as u64);
    loop {
        let ready = with_dev(fd, |d| {
            let mut ev = 0;
            if d.event {
                ev |= libc::POLLPRI;
            }
            if d.bufs.iter().any(|b| b.queued && b.done) {
                ev |= libc::POLLIN;
            }
            ev
        })
        .unwrap_or(libc::POLLNVAL);
        let ev = ready & (list[0].events | libc::POLLNVAL | libc::POLLERR);
        if ev != 0 {
            list[0].revents = ev;
            return 1;
        }
        if timeout >= 0 && std::time::Instant::now() >= deadline {
            list[0].revents = 0;
            return 0;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
