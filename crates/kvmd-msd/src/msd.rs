//! The mass-storage core: kvmd's virtual drive over a [`Drive`], the storage, the busy
//! region and the state (spec `atx-msd-gpio-redfish.md` 3.2, 3.3, 3.6, 3.10).
//!
//! Every operation enters the busy region at once or fails with kvmd's 409; uploads and
//! downloads hold it to their last byte ([`Busy`] travels with them). Everything here
//! touches the file system and is called off the HTTP workers (`web::block`, or the
//! transfer threads).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use kvmd_core::ApiError;
use serde::Serialize;

use crate::config::{MsdConfig, MsdKind};
use crate::drive::{Drive, Lun};
use crate::storage::{Found, Image, Index, Ordered, Part, Storage};

/// kvmd's MSD errors (3.2).
pub mod err {
    use kvmd_core::ApiError;

    /// `MsdDisabledError`.
    pub fn disabled() -> ApiError {
        ApiError::operation("MsdDisabledError", "MSD is disabled")
    }
    /// `MsdIsBusyError` (409).
    pub fn busy() -> ApiError {
        ApiError::busy("MsdIsBusyError", "Performing another MSD operation, please try again later")
    }
    /// `MsdOfflineError`.
    pub fn offline() -> ApiError {
        ApiError::operation("MsdOfflineError", "MSD is not found")
    }
    /// `MsdConnectedError`.
    pub fn connected() -> ApiError {
        ApiError::operation("MsdConnectedError", "MSD is connected to Server, but shouldn't for this operation")
    }
    /// `MsdDisconnectedError`.
    pub fn disconnected() -> ApiError {
        ApiError::operation("MsdDisconnectedError", "MSD is disconnected from Server, but should be for this operation")
    }
    /// `MsdImageNotSelected`.
    pub fn not_selected() -> ApiError {
        ApiError::operation("MsdImageNotSelected", "The image is not selected")
    }
    /// `MsdUnknownImageError`.
    pub fn unknown() -> ApiError {
        ApiError::operation("MsdUnknownImageError", "The image is not found in the storage")
    }
    /// `MsdImageExistsError` (sic).
    pub fn exists() -> ApiError {
        ApiError::operation("MsdImageExistsError", "This image is already exists")
    }
    /// `MsdImageStaticError`.
    pub fn not_removable() -> ApiError {
        ApiError::operation("MsdImageStaticError", "This image can't be removed")
    }
    /// `MsdRemoteDisabledError`.
    pub fn remote_disabled() -> ApiError {
        ApiError::operation("MsdRemoteDisabledError", "Remote images binding is disabled")
    }
    /// kvmd's base `MsdError` for what kvmd leaves to a plain 500: a full storage, an I/O
    /// failure, a failed remount. Here a 400 that says what went wrong.
    pub fn io(message: impl Into<String>) -> ApiError {
        ApiError::operation("MsdError", message.into())
    }
}

/// An image on the drive (`drive.image`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DriveImage {
    /// Its name in the storage, or its path when attached from elsewhere.
    pub name: String,
    /// It is an image of the storage.
    pub in_storage: bool,
    /// As [`Image`].
    pub complete: bool,
    /// As [`Image`].
    pub removable: bool,
    /// As [`Image`].
    pub writable: bool,
    /// As [`Image`].
    pub size: u64,
    /// As [`Image`].
    pub mod_ts: f64,
}

/// The drive (`drive`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DriveState {
    /// The selected or attached image.
    pub image: Option<DriveImage>,
    /// Attached to the host.
    pub connected: bool,
    /// CD-ROM, else a flash drive.
    pub cdrom: bool,
    /// Read-write.
    pub rw: bool,
}

/// `storage.uploading`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Uploading {
    /// The image.
    pub name: String,
    /// Its announced size.
    pub size: u64,
    /// Bytes written so far.
    pub written: u64,
}

/// `storage.downloading` (kvmd's spelling).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Downloading {
    /// The image.
    pub name: String,
    /// Its size.
    pub size: u64,
    /// Bytes read so far.
    pub readed: u64,
}

/// `storage`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StorageState {
    /// The images, in scan order.
    pub images: Ordered<Image>,
    /// The partitions.
    pub parts: Ordered<Part>,
    /// A download running.
    pub downloading: Option<Downloading>,
    /// An upload running.
    pub uploading: Option<Uploading>,
}

/// The whole state (`GET /msd`, the `msd` event), in kvmd's WebSocket order.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct State {
    /// Not `disabled`.
    pub enabled: bool,
    /// The storage is readable and the drive exists.
    pub online: bool,
    /// An operation is running.
    pub busy: bool,
    /// The storage, once scanned.
    pub storage: Option<StorageState>,
    /// The drive, once it exists.
    pub drive: Option<DriveState>,
}

/// The storage part of a partial event.
#[derive(Debug, Serialize)]
struct StorageChanges<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    images: Option<&'a Ordered<Image>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parts: Option<&'a Ordered<Part>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    downloading: Option<&'a Option<Downloading>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uploading: Option<&'a Option<Uploading>>,
}

/// A partial event: only what changed, each member whole, in kvmd's order.
#[derive(Debug, Serialize)]
struct Changes<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    busy: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    drive: Option<&'a Option<DriveState>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    storage: Option<StorageChanges<'a>>,
}

/// The event that takes a session from `prev` to `now` (compact JSON), if anything
/// changed: the full state when `online` changed or the storage came or went, otherwise
/// only the changed members.
pub fn event(prev: &State, now: &State) -> Option<String> {
    if prev == now {
        return None;
    }
    if prev.online != now.online || prev.enabled != now.enabled || prev.storage.is_some() != now.storage.is_some() {
        return Some(kvmd_core::json::to_compact_string(now));
    }
    let storage = match (&prev.storage, &now.storage) {
        (Some(p), Some(n)) if p != n => Some(StorageChanges {
            images: (p.images != n.images).then_some(&n.images),
            parts: (p.parts != n.parts).then_some(&n.parts),
            downloading: (p.downloading != n.downloading).then_some(&n.downloading),
            uploading: (p.uploading != n.uploading).then_some(&n.uploading),
        }),
        _ => None,
    };
    let changes = Changes {
        busy: (prev.busy != now.busy).then_some(now.busy),
        drive: (prev.drive != now.drive).then_some(&now.drive),
        storage,
    };
    Some(kvmd_core::json::to_compact_string(&changes))
}

/// kvmd's virtual drive: what `set_params` chose, written to the drive on connect.
#[derive(Debug, Clone, Default)]
struct Selected {
    image: Option<String>,
    cdrom: bool,
    rw: bool,
}

/// A transfer running (what `storage.uploading` / `downloading` show).
#[derive(Debug, Clone)]
pub struct Transfer {
    /// An upload, else a download.
    pub upload: bool,
    /// The image.
    pub name: String,
    /// Its size.
    pub size: u64,
    /// Bytes done.
    pub done: Arc<AtomicU64>,
}

/// The mass-storage service's state.
pub struct Msd {
    cfg: MsdConfig,
    storage: Storage,
    drive: Arc<dyn Drive>,
    selected: Mutex<Selected>,
    busy: AtomicBool,
    transfer: Mutex<Option<Transfer>>,
    /// Bumped whenever an operation changed something (the feeds look at once).
    changed: tokio::sync::watch::Sender<u64>,
}

/// The busy region, held while it lives.
pub struct Busy {
    msd: Arc<Msd>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        *self.msd.transfer.lock().unwrap_or_else(PoisonError::into_inner) = None;
        self.msd.busy.store(false, Ordering::SeqCst);
        self.msd.touch();
    }
}

impl Busy {
    /// The service.
    pub fn msd(&self) -> &Arc<Msd> {
        &self.msd
    }
}

impl Msd {
    /// The service on `storage` and `drive`; the virtual drive starts in the mode the
    /// drive is in (kvmd-otg makes it a read-only CD-ROM).
    pub fn new(cfg: MsdConfig, drive: Arc<dyn Drive>) -> Arc<Self> {
        let storage = Storage::new(cfg.storage.clone());
        let selected = drive.read().map_or_else(Selected::default, |l| Selected {
            image: None,
            cdrom: l.cdrom,
            rw: !l.ro && !l.cdrom,
        });
        Arc::new(Self {
            cfg,
            storage,
            drive,
            selected: Mutex::new(selected),
            busy: AtomicBool::new(false),
            transfer: Mutex::new(None),
            changed: tokio::sync::watch::channel(0).0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &MsdConfig {
        &self.cfg
    }

    /// The storage.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Changes, for the feeds.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Tells the feeds to look.
    pub fn touch(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn selected(&self) -> std::sync::MutexGuard<'_, Selected> {
        self.selected.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `MsdDisabledError` unless enabled.
    pub fn check_enabled(&self) -> Result<(), ApiError> {
        if self.cfg.kind == MsdKind::Disabled { Err(err::disabled()) } else { Ok(()) }
    }

    /// Enters the busy region (kvmd's 409 if another operation holds it).
    pub fn enter(self: &Arc<Self>) -> Result<Busy, ApiError> {
        self.check_enabled()?;
        if self.busy.compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst).is_err() {
            return Err(err::busy());
        }
        self.touch();
        Ok(Busy { msd: self.clone() })
    }

    /// Marks `t` as the running transfer (inside the busy region).
    pub fn set_transfer(&self, t: Transfer) {
        *self.transfer.lock().unwrap_or_else(PoisonError::into_inner) = Some(t);
        self.touch();
    }

    /// The drive as it is, with the storage's index: `MsdOfflineError` when either is
    /// missing.
    fn online(&self) -> Result<(Lun, Index), ApiError> {
        let lun = self.drive.read().ok_or_else(err::offline)?;
        let index = self.storage.scan().map_err(|_| err::offline())?;
        Ok((lun, index))
    }

    /// The state now.
    pub fn state(&self) -> State {
        if self.cfg.kind == MsdKind::Disabled {
            return State { enabled: false, online: false, busy: false, storage: None, drive: None };
        }
        let lun = self.drive.read();
        let index = self.storage.scan().ok();
        let busy = self.busy.load(Ordering::SeqCst);
        let transfer = self.transfer.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let (mut uploading, mut downloading) = (None, None);
        if let Some(t) = transfer {
            let done = t.done.load(Ordering::Relaxed);
            if t.upload {
                uploading = Some(Uploading { name: t.name, size: t.size, written: done });
            } else {
                downloading = Some(Downloading { name: t.name, size: t.size, readed: done });
            }
        }
        let drive = match (&lun, &index) {
            (Some(lun), Some(index)) => Some(self.drive_state(lun, index)),
            _ => None,
        };
        State {
            enabled: true,
            online: lun.is_some() && index.is_some(),
            busy,
            storage: index.map(|i| StorageState { images: i.images(), parts: i.parts, downloading, uploading }),
            drive,
        }
    }

    fn drive_image(&self, name: &str, found: &Found) -> DriveImage {
        let i = &found.image;
        DriveImage {
            name: name.to_owned(),
            in_storage: true,
            complete: i.complete,
            removable: i.removable,
            writable: i.writable,
            size: i.size,
            mod_ts: i.mod_ts,
        }
    }

    fn drive_state(&self, lun: &Lun, index: &Index) -> DriveState {
        if let Some(file) = &lun.file {
            // The real LUN replaces the virtual drive while it holds a file.
            let found = index.images.0.iter().find(|(_, f)| f.data == *file);
            let image = match found {
                Some((name, f)) => self.drive_image(name, f),
                None => {
                    let m = std::fs::metadata(file).ok();
                    let name = file.to_string_lossy().into_owned();
                    DriveImage {
                        writable: !name.to_lowercase().ends_with(".iso"),
                        name,
                        in_storage: false,
                        complete: true,
                        removable: false,
                        size: m.as_ref().map_or(0, std::fs::Metadata::len),
                        mod_ts: m
                            .and_then(|m| m.modified().ok())
                            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                            .map_or(0.0, |d| d.as_secs_f64()),
                    }
                }
            };
            return DriveState { image: Some(image), connected: true, cdrom: lun.cdrom, rw: !lun.ro };
        }
        let sel = self.selected().clone();
        let image = sel.image.as_deref().and_then(|n| index.images.get(n).map(|f| self.drive_image(n, f)));
        DriveState { image, connected: false, cdrom: sel.cdrom, rw: sel.rw }
    }

    /// Runs kvmd's remount helper with `mode` (`rw`/`ro`), if one is configured.
    pub fn remount(&self, mode: &str) -> Result<(), ApiError> {
        let Some((prog, args)) = self.cfg.remount_cmd.split_first() else { return Ok(()) };
        let status = std::process::Command::new(prog)
            .args(args.iter().map(|a| a.replace("{mode}", mode)))
            .stdin(std::process::Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => Ok(()),
            other => {
                tracing::error!(mode, result = ?other, "the remount helper failed");
                Err(err::io("Can't execute remount helper"))
            }
        }
    }

    /// `set_params`: selects `image` (`Some("")` unselects; validated), and the CD-ROM and
    /// read-write flags; `rw` is cleared for a CD-ROM or an image that is not writable.
    pub fn set_params(
        self: &Arc<Self>,
        image: Option<String>,
        cdrom: Option<bool>,
        rw: Option<bool>,
    ) -> Result<(), ApiError> {
        let _busy = self.enter()?;
        let (lun, index) = self.online()?;
        if lun.file.is_some() {
            return Err(err::connected());
        }
        let mut sel = self.selected();
        let mut next = sel.clone();
        if let Some(name) = image {
            if name.is_empty() {
                next.image = None;
            } else {
                let found = index.images.get(&name).ok_or_else(err::unknown)?;
                if !found.data.exists() {
                    return Err(err::unknown());
                }
                next.image = Some(name);
            }
        }
        if let Some(c) = cdrom {
            next.cdrom = c;
        }
        if let Some(r) = rw {
            next.rw = r;
        }
        let writable = next.image.as_deref().and_then(|n| index.images.get(n)).is_none_or(|f| f.image.writable);
        if next.cdrom || !writable {
            next.rw = false;
        }
        if next.cdrom != lun.cdrom
            && let Err(e) = self.drive.set_mode(next.cdrom)
        {
            // Not kvmd's step (it writes the mode only on connect), so never its error.
            tracing::warn!(error = %e, "setting the empty drive's mode");
        }
        *sel = next;
        Ok(())
    }

    /// Unselects `name` if it is the selected image.
    fn unselect(&self, name: &str) {
        let mut sel = self.selected();
        if sel.image.as_deref() == Some(name) {
            sel.image = None;
        }
    }

    /// `set_connected`: attaches the selected image to the host, or ejects it.
    pub fn set_connected(self: &Arc<Self>, connected: bool) -> Result<(), ApiError> {
        let _busy = self.enter()?;
        let (lun, index) = self.online()?;
        if connected {
            if lun.file.is_some() {
                return Err(err::connected());
            }
            let sel = self.selected().clone();
            let name = sel.image.ok_or_else(err::not_selected)?;
            let found = index.images.get(&name).ok_or_else(err::unknown)?;
            if !found.data.exists() {
                return Err(err::unknown());
            }
            if sel.rw {
                self.remount("rw")?;
            }
            self.drive.attach(&found.data, sel.cdrom, sel.rw)
        } else {
            if lun.file.is_none() {
                return Err(err::disconnected());
            }
            self.drive.eject()?;
            let _ = self.remount("ro");
            Ok(())
        }
    }

    /// `reset`: ejects, flash mode, read-only; errors only logged.
    pub fn reset(self: &Arc<Self>) -> Result<(), ApiError> {
        let _busy = self.enter()?;
        self.drive.reset();
        let _ = self.remount("ro");
        Ok(())
    }

    /// `remove`: deletes an image and its marker.
    pub fn remove(self: &Arc<Self>, name: &str) -> Result<(), ApiError> {
        let _busy = self.enter()?;
        let (lun, index) = self.online()?;
        if lun.file.is_some() {
            return Err(err::connected());
        }
        let found = index.images.get(name).ok_or_else(err::unknown)?;
        if !found.image.removable {
            return Err(err::not_removable());
        }
        self.unselect(name);
        self.remount("rw")?;
        let result = remove_files(&self.storage.path_of(name), found);
        let _ = self.remount("ro");
        result
    }

    /// Redfish's InsertMedia: disconnects and unselects whatever is there, selects `name`
    /// in flash mode and connects it if `inserted` (each step with its kvmd errors).
    pub fn insert(self: &Arc<Self>, name: String, inserted: bool, rw: bool) -> Result<(), ApiError> {
        if self.drive.read().is_none() {
            return Err(err::offline());
        }
        if self.state().drive.is_some_and(|d| d.connected) {
            self.set_connected(false)?;
            self.set_params(Some(String::new()), None, None)?;
        }
        self.set_params(Some(name), Some(false), Some(rw))?;
        if inserted {
            self.set_connected(true)?;
        }
        Ok(())
    }

    /// Redfish's EjectMedia: disconnects, then unselects.
    pub fn eject_media(self: &Arc<Self>) -> Result<(), ApiError> {
        self.set_connected(false)?;
        self.set_params(Some(String::new()), None, None)
    }

    /// Where a new image `name` may be written: `MsdImageExistsError` if anything of that
    /// name is there (an image, complete or not, or any file); checks `online` and
    /// `connected` as kvmd does.
    pub fn check_new(&self, name: &str) -> Result<PathBuf, ApiError> {
        let (lun, index) = self.online()?;
        if lun.file.is_some() {
            return Err(err::connected());
        }
        let path = self.storage.path_of(name);
        let marker = crate::storage::marker_of(&path);
        if index.images.get(name).is_some()
            || std::fs::symlink_metadata(&path).is_ok()
            || std::fs::symlink_metadata(&marker).is_ok()
        {
            return Err(err::exists());
        }
        Ok(path)
    }

    /// The image `name` to read: its bytes' path and size (`online`, `connected` and
    /// `MsdUnknownImageError` checks).
    pub fn readable(&self, name: &str) -> Result<(PathBuf, u64), ApiError> {
        let (lun, index) = self.online()?;
        if lun.file.is_some() {
            return Err(err::connected());
        }
        let found = index.images.get(name).ok_or_else(err::unknown)?;
        let size = std::fs::metadata(&found.data).map_err(|_| err::unknown())?.len();
        Ok((found.data.clone(), size))
    }
}

fn remove_files(path: &Path, found: &Found) -> Result<(), ApiError> {
    for p in [Some(path), found.marker.as_deref()].into_iter().flatten() {
        match std::fs::remove_file(p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(err::io(format!("Can't remove the image: {e}")));
            }
            _ => {}
        }
    }
    Ok(())
}
