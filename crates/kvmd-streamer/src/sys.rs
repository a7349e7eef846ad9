//! The crate's only unsafe code: libjpeg's SIMD probe, glibc's `mallopt`, and the V4L2
//! ioctls the v4l crate does not wrap (input selection, DV timings, events). Each call passes a pointer to a properly sized,
//! zero-initialised `repr(C)` struct from the kernel's own headers (bindgen'd by
//! v4l2-sys-mit); request numbers are computed from the struct sizes by nix, so they are
//! right on 32-bit ARM too.
#![allow(unsafe_code)]

use std::os::fd::RawFd;

use v4l::v4l_sys::{v4l2_dv_timings, v4l2_event, v4l2_event_subscription};

unsafe extern "C" {
    /// libjpeg-turbo's SIMD dispatch: non-zero when the SIMD forward DCT is usable.
    #[link_name = "jsimd_can_fdct_islow"]
    fn c_jsimd_can_fdct_islow() -> std::os::raw::c_int;
}

/// Whether libjpeg's SIMD forward DCT is compiled in and usable on this CPU.
pub(crate) fn jsimd_can_fdct_islow() -> bool {
    // SAFETY: a pure query of libjpeg's static CPU-feature table, no arguments.
    unsafe { c_jsimd_can_fdct_islow() != 0 }
}

/// Allocations of `bytes` and more are always their own mapping, given back when freed.
///
/// glibc raises its mmap threshold to the size of each mapped block freed, up to 32 MiB,
/// so after the first frame buffer is freed every later one comes from the heap and its
/// pages stay resident: kvmd-streamer's RSS stepped up by ~12 MiB for good after a few
/// snapshots (the malformed-input pass found it). A fixed threshold turns that off.
pub(crate) fn fixed_mmap_threshold(bytes: i32) {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets an allocator parameter; it takes no pointers.
    let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, bytes) } == 1;
    #[cfg(not(target_env = "gnu"))]
    let ok = {
        let _ = bytes;
        true
    };
    if !ok {
        tracing::warn!(bytes, "mallopt(M_MMAP_THRESHOLD) refused");
    }
}

nix::ioctl_read!(vidioc_query_dv_timings, b'V', 99, v4l2_dv_timings);
nix::ioctl_readwrite!(vidioc_s_dv_timings, b'V', 87, v4l2_dv_timings);
nix::ioctl_write_ptr!(vidioc_subscribe_event, b'V', 90, v4l2_event_subscription);
nix::ioctl_read!(vidioc_dqevent, b'V', 89, v4l2_event);
nix::ioctl_readwrite!(vidioc_s_input, b'V', 39, std::os::raw::c_int);
nix::ioctl_read!(vidioc_g_input, b'V', 38, std::os::raw::c_int);

/// `V4L2_EVENT_SOURCE_CHANGE`.
pub(crate) const EVENT_SOURCE_CHANGE: u32 = 5;

/// Selects the device's video input `index` (`VIDIOC_S_INPUT`, uStreamer's `--input`).
pub(crate) fn select_input(fd: RawFd, index: u32) -> nix::Result<()> {
    let mut i = std::os::raw::c_int::try_from(index).map_err(|_| nix::errno::Errno::EINVAL)?;
    // SAFETY: fd is an open V4L2 device; the pointer is to a live int, which S_INPUT reads.
    unsafe { vidioc_s_input(fd, &mut i) }.map(|_| ())
}

/// The device's current video input (`VIDIOC_G_INPUT`).
pub(crate) fn current_input(fd: RawFd) -> nix::Result<u32> {
    let mut i: std::os::raw::c_int = 0;
    // SAFETY: fd is an open V4L2 device; the pointer is to a live int, which G_INPUT writes.
    unsafe { vidioc_g_input(fd, &mut i) }?;
    u32::try_from(i).map_err(|_| nix::errno::Errno::EINVAL)
}

/// The detected DV timings, already applied with `S_DV_TIMINGS`: (width, height).
pub(crate) fn query_and_set_dv_timings(fd: RawFd) -> nix::Result<(u32, u32)> {
    // SAFETY: v4l2_dv_timings is plain old data; all-zero is a valid value.
    let mut t: v4l2_dv_timings = unsafe { std::mem::zeroed() };
    // SAFETY: fd is an open V4L2 device; the pointer is to a live, correctly sized struct.
    unsafe { vidioc_query_dv_timings(fd, &mut t) }?;
    // SAFETY: as above; S_DV_TIMINGS reads and writes the same struct.
    unsafe { vidioc_s_dv_timings(fd, &mut t) }?;
    // SAFETY: QUERY_DV_TIMINGS fills the bt member (type V4L2_DV_BT_656_1120).
    let bt = unsafe { t.__bindgen_anon_1.bt };
    Ok((bt.width, bt.height))
}

/// Subscribes to the source-change events of video input `input` (they arrive as POLLPRI;
/// the kernel matches a subscription on type and id, and a source change's id is its input).
pub(crate) fn subscribe_source_change(fd: RawFd, input: u32) -> nix::Result<()> {
    // SAFETY: plain old data, zero is valid.
    let mut sub: v4l2_event_subscription = unsafe { std::mem::zeroed() };
    sub.type_ = EVENT_SOURCE_CHANGE;
    sub.id = input;
    // SAFETY: fd is an open V4L2 device; the struct outlives the call.
    unsafe { vidioc_subscribe_event(fd, &sub) }.map(|_| ())
}

/// Takes one pending event; returns its type.
pub(crate) fn dequeue_event(fd: RawFd) -> nix::Result<u32> {
    // SAFETY: plain old data, zero is valid.
    let mut ev: v4l2_event = unsafe { std::mem::zeroed() };
    // SAFETY: fd is an open V4L2 device; the struct outlives the call.
    unsafe { vidioc_dqevent(fd, &mut ev) }?;
    Ok(ev.type_)
}
