//! Uploads into the storage and downloads out of it, on threads of their own, in bounded
//! memory (spec `atx-msd-gpio-redfish.md` 3.7 to 3.9).
//!
//! An upload's bytes go into the image's marker (`.__<name>.incomplete`), allocated to the
//! announced size at the start (a full storage is refused before a byte is sent), synced
//! every `sync_chunk_size` bytes (by a syncer thread, so the writer goes on with the next
//! window while the disk takes the last: at most two windows are ever unsynced); once every
//! byte is there the file is synced, renamed to the image's name and the directory synced. A writer dropped before that (a cut
//! connection, a failed download, an I/O error) leaves the marker, which the state shows
//! as an incomplete image, or deletes it with `remove_incomplete`. Either way the busy
//! region ends with the writer.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use kvmd_core::ApiError;
use serde::Serialize;

use crate::msd::{Busy, Msd, Transfer, err};
use crate::name::Compression;

/// The result of an upload (`{"image": {...}}`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Written {
    /// The image.
    pub name: String,
    /// Its announced size.
    pub size: u64,
    /// Bytes written.
    pub written: u64,
}

/// `{"image": Written}`.
#[derive(Debug, Clone, Serialize)]
pub struct WriteResult {
    /// The image.
    pub image: Written,
}

/// An image being written. Dropped unfinished, it leaves an incomplete image (or none).
pub struct Writer {
    busy: Option<Busy>,
    name: String,
    path: PathBuf,
    marker: PathBuf,
    file: Option<File>,
    size: u64,
    done: Arc<AtomicU64>,
    unsynced: u64,
    sync_every: u64,
    syncer: Option<Syncer>,
    remove_incomplete: bool,
}

fn io_error(what: &str, e: &std::io::Error) -> ApiError {
    if e.raw_os_error() == Some(nix::libc::ENOSPC) {
        err::io("Not enough free space in the storage")
    } else {
        err::io(format!("Can't {what}: {e}"))
    }
}

impl Writer {
    /// Starts writing the new image `name` (validated) of `size` bytes: kvmd's checks
    /// (busy, offline, connected, exists), then the marker, allocated.
    pub fn begin(msd: &Arc<Msd>, name: String, size: u64, remove_incomplete: bool) -> Result<Self, ApiError> {
        let busy = msd.enter()?;
        let path = msd.check_new(&name)?;
        let marker = crate::storage::marker_of(&path);
        // The free space where the image goes: its directory's file system (a partition
        // mounted inside the storage), else the storage's.
        let dir = path.ancestors().skip(1).find(|d| d.is_dir()).unwrap_or(msd.storage().root());
        if let Ok((_, free)) = crate::storage::space(dir)
            && size > free
        {
            return Err(err::io("Not enough free space in the storage"));
        }
        msd.remount("rw")?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_error("create the image's directory", &e))?;
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&marker)
            .map_err(|e| io_error("create the image", &e))?;
        let mut w = Self {
            busy: Some(busy),
            name: name.clone(),
            path,
            marker,
            file: Some(file),
            size,
            done: Arc::new(AtomicU64::new(0)),
            unsynced: 0,
            sync_every: msd.config().sync_chunk_size,
            syncer: None,
            remove_incomplete,
        };
        w.allocate()?;
        msd.set_transfer(Transfer { upload: true, name, size, done: w.done.clone() });
        Ok(w)
    }

    fn allocate(&mut self) -> Result<(), ApiError> {
        let Some(file) = &self.file else { return Ok(()) };
        let Ok(len) = i64::try_from(self.size) else { return Err(err::io("Not enough free space in the storage")) };
        if len == 0 {
            return Ok(());
        }
        match nix::fcntl::fallocate(file.as_fd(), nix::fcntl::FallocateFlags::empty(), 0, len) {
            Ok(()) => Ok(()),
            Err(nix::errno::Errno::ENOSPC | nix::errno::Errno::EFBIG) => {
                // The writer's drop removes the marker: nothing was written.
                self.remove_incomplete = true;
                Err(err::io("Not enough free space in the storage"))
            }
            // A file system without fallocate: kvmd's sparse file of that size.
            Err(_) => file.set_len(self.size).map_err(|e| io_error("size the image", &e)),
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// Its announced size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The progress line of kvmd's answers.
    pub fn progress(&self) -> WriteResult {
        WriteResult { image: Written { name: self.name.clone(), size: self.size, written: self.written() } }
    }

    /// Appends `chunk` (more than the announced size is an error).
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        let Some(file) = self.file.as_mut() else { return Err(err::io("The image is closed")) };
        let done = self.done.load(Ordering::Relaxed);
        if done + chunk.len() as u64 > self.size {
            return Err(err::io("More data than announced"));
        }
        file.write_all(chunk).map_err(|e| io_error("write the image", &e))?;
        self.done.store(done + chunk.len() as u64, Ordering::Relaxed);
        self.unsynced += chunk.len() as u64;
        if self.unsynced >= self.sync_every {
            if self.syncer.is_none() {
                let clone = file.try_clone().map_err(|e| io_error("sync the image", &e))?;
                self.syncer = Some(Syncer::start(clone)?);
            }
            if let Some(s) = self.syncer.as_mut() {
                s.sync()?;
            }
            self.unsynced = 0;
        }
        Ok(())
    }

    /// Ends the upload: complete when every announced byte is there (synced, renamed to
    /// the image's name, the directory synced), else incomplete (kept or removed).
    pub fn finish(mut self) -> Result<WriteResult, ApiError> {
        let result = self.progress();
        if self.written() < self.size {
            self.abandon();
            return Ok(result);
        }
        if let Some(mut s) = self.syncer.take() {
            s.wait()?;
        }
        if let Some(file) = self.file.take() {
            file.sync_all().map_err(|e| io_error("sync the image", &e))?;
        }
        std::fs::rename(&self.marker, &self.path).map_err(|e| io_error("complete the image", &e))?;
        if let Some(dir) = self.path.parent()
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        self.finish_busy();
        Ok(result)
    }

    fn finish_busy(&mut self) {
        if let Some(b) = self.busy.take() {
            let _ = b.msd().remount("ro");
        }
    }

    fn abandon(&mut self) {
        if let Some(file) = self.file.take() {
            let _ = file.sync_all();
            if self.remove_incomplete {
                let _ = std::fs::remove_file(&self.marker);
            } else {
                tracing::warn!(image = %self.name, written = self.written(), size = self.size, "the upload ended early: the image is incomplete");
            }
        }
        self.finish_busy();
    }
}

/// `fdatasync` of an upload's file on a thread of its own: [`Syncer::sync`] waits for the
/// previous window's sync, then starts this one's.
struct Syncer {
    start: std::sync::mpsc::SyncSender<()>,
    done: std::sync::mpsc::Receiver<std::io::Result<()>>,
    pending: bool,
}

impl Syncer {
    fn start(file: File) -> Result<Self, ApiError> {
        let (start, go) = std::sync::mpsc::sync_channel::<()>(1);
        let (done_tx, done) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("msd-sync".into())
            .spawn(move || {
                while go.recv().is_ok() {
                    if done_tx.send(file.sync_data()).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| err::io(format!("Can't start the upload's syncer: {e}")))?;
        Ok(Self { start, done, pending: false })
    }

    /// Waits for the sync running, if any (its error is the upload's).
    fn wait(&mut self) -> Result<(), ApiError> {
        if std::mem::take(&mut self.pending) {
            let r = self.done.recv().unwrap_or_else(|_| Err(std::io::Error::other("the syncer stopped")));
            r.map_err(|e| io_error("sync the image", &e))?;
        }
        Ok(())
    }

    /// Waits for the last window's sync, then starts one of everything written so far.
    fn sync(&mut self) -> Result<(), ApiError> {
        self.wait()?;
        self.start.send(()).map_err(|_| err::io("The upload's syncer stopped"))?;
        self.pending = true;
        Ok(())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.abandon();
    }
}

/// Runs `w` on a thread of its own, fed by the returned sender (a bounded queue: the
/// sender waits while the disk is behind); the receiver gets the result once the sender
/// is dropped, or the first error (then the writer is abandoned at once).
pub fn spawn_writer(
    mut w: Writer,
    queue: usize,
) -> (tokio::sync::mpsc::Sender<Bytes>, tokio::sync::oneshot::Receiver<Result<WriteResult, ApiError>>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(queue);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("msd-write".into())
        .spawn(move || {
            let result = (|| {
                while let Some(chunk) = rx.blocking_recv() {
                    w.write(&chunk)?;
                }
                w.finish()
            })();
            let _ = done_tx.send(result);
        })
        .map_or_else(|e| tracing::error!(error = %e, "cannot start an upload thread"), drop);
    (tx, done_rx)
}

/// A download of `path` (the image `name`, `size` bytes) inside the busy region `busy`:
/// chunks of `chunk` bytes, compressed as asked, into the returned receiver, from a
/// thread of its own that ends when the receiver goes.
pub fn spawn_reader(
    busy: Busy,
    name: String,
    path: PathBuf,
    size: u64,
    compression: Compression,
    chunk: usize,
) -> Result<tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>, ApiError> {
    let file = File::open(&path).map_err(|_| err::unknown())?;
    let done = Arc::new(AtomicU64::new(0));
    busy.msd().set_transfer(Transfer { upload: false, name, size, done: done.clone() });
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    std::thread::Builder::new()
        .name("msd-read".into())
        .spawn(move || {
            let _busy = busy;
            if let Err(e) = read_into(file, &tx, &done, compression, chunk) {
                let _ = tx.blocking_send(Err(e));
            }
        })
        .map_err(|e| err::io(format!("Can't start the download: {e}")))?;
    Ok(rx)
}

/// A `Write` that hands every `min` bytes to the channel.
struct Chunks<'a> {
    tx: &'a tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
    min: usize,
}

impl Chunks<'_> {
    fn send(&mut self) -> std::io::Result<()> {
        let b = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(self.min * 2)));
        self.tx.blocking_send(Ok(b)).map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

impl Write for Chunks<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= self.min {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() { Ok(()) } else { self.send() }
    }
}

/// Copies `file` into `sink` in `chunk`-byte reads, counting them in `done`.
fn pump(mut file: File, sink: &mut impl Write, done: &AtomicU64, chunk: usize) -> std::io::Result<()> {
    let mut buf = vec![0u8; chunk];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        sink.write_all(&buf[..n])?;
        done.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// XZ's preset for downloads: 1 (a 1 MiB dictionary, about 10 MiB of memory, and fast);
/// kvmd's Python default, 6, needs 94 MiB per download. Any valid XZ stream is what
/// clients expect (spec 3.9).
const XZ_PRESET: u32 = 1;

/// The least a download sends at once, uncompressed.
const SEND_PIECE: usize = 256 * 1024;

fn read_into(
    mut file: File,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    done: &AtomicU64,
    compression: Compression,
    chunk: usize,
) -> std::io::Result<()> {
    let out = Chunks { tx, buf: Vec::with_capacity(chunk * 2), min: chunk };
    match compression {
        Compression::None => loop {
            // Straight from the file into the piece sent (no copy), of at least 256 KiB: each
            // piece costs a channel hand-off, a socket write here and a read in nginx.
            let mut buf = vec![0u8; chunk.max(SEND_PIECE)];
            let n = match file.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            buf.truncate(n);
            done.fetch_add(n as u64, Ordering::Relaxed);
            tx.blocking_send(Ok(Bytes::from(buf))).map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        },
        Compression::Zstd => {
            let mut enc = zstd::stream::write::Encoder::new(out, 0)?;
            pump(file, &mut enc, done, chunk)?;
            enc.finish()?.flush()
        }
        Compression::Lzma => {
            let mut enc = liblzma::write::XzEncoder::new(out, XZ_PRESET);
            pump(file, &mut enc, done, chunk)?;
            enc.finish()?.flush()
        }
    }
}
