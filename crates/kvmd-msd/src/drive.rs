//! The drive the host sees: the USB gadget's mass-storage LUN (spec
//! `atx-msd-gpio-redfish.md` 3.5), or the virtual target's drive in memory.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use kvmd_core::ApiError;

use crate::msd::err;

/// What the drive holds now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lun {
    /// The attached file (`None`: no medium).
    pub file: Option<PathBuf>,
    /// CD-ROM, else a flash drive.
    pub cdrom: bool,
    /// Read-only.
    pub ro: bool,
}

/// A drive: the backend of kvmd's `otg` drive.
pub trait Drive: Send + Sync {
    /// What it holds; `None` while the drive does not exist (no gadget function).
    fn read(&self) -> Option<Lun>;
    /// Attaches `file` (kvmd's order: `ro`, `cdrom`, then `file`).
    fn attach(&self, file: &Path, cdrom: bool, rw: bool) -> Result<(), ApiError>;
    /// Ejects the medium, even one the host has locked.
    fn eject(&self) -> Result<(), ApiError>;
    /// Sets the mode an empty drive shows: a host sees a drive's type when it enumerates
    /// the gadget, so a mode chosen before connecting is there at the next enumeration (a
    /// replug, the host's boot), not only after an attach.
    fn set_mode(&self, cdrom: bool) -> Result<(), ApiError>;
    /// `reset`: ejects and sets flash mode read-only; errors are only logged.
    fn reset(&self);
}

fn locked() -> ApiError {
    ApiError::operation("MsdLockedError", "MSD is locked on IO operation")
}

/// The gadget's LUN: `<gadget>/functions/mass_storage.usb0/lun.0/`, enabled when the
/// configuration links the function. Values are written with `\n`, as kvmd writes them.
#[derive(Debug, Clone)]
pub struct GadgetDrive {
    gadget: PathBuf,
}

/// The kernel's internal `ETOOSMALL`, which configfs hands to user space as it is.
const ETOOSMALL: i32 = 525;

/// The function's name in the gadget.
pub const FUNCTION: &str = "mass_storage.usb0";

impl GadgetDrive {
    /// The LUN of the gadget in `gadget` (its configfs directory).
    pub fn new(gadget: PathBuf) -> Self {
        Self { gadget }
    }

    fn lun(&self) -> PathBuf {
        self.gadget.join("functions").join(FUNCTION).join("lun.0")
    }

    fn write(&self, attr: &str, value: &str) -> Result<(), ApiError> {
        let path = self.lun().join(attr);
        std::fs::write(&path, format!("{value}\n")).map_err(|e| {
            tracing::warn!(path = %path.display(), error = %e, "writing the MSD drive");
            match (e.raw_os_error(), attr) {
                (Some(nix::libc::EBUSY), _) => locked(),
                (Some(nix::libc::EACCES | nix::libc::EPERM), "file") => {
                    ApiError::operation("MsdPermissionsError", "MSD can't insert the image due to file permissions")
                }
                // The kernel's ETOOSMALL: a CD-ROM needs 300 frames (f_mass_storage).
                (Some(ETOOSMALL), "file") => {
                    err::io("The image is too small for the drive (a CD-ROM image needs at least 600 KiB)")
                }
                // kvmd lets these out as a plain 500; here the drive's refusal, said.
                (_, "file") => err::io(format!("The drive refused the image: {e}")),
                _ => err::io(format!("The drive refused {attr}: {e}")),
            }
        })
    }

    fn read_attr(&self, attr: &str) -> io::Result<String> {
        Ok(std::fs::read_to_string(self.lun().join(attr))?.trim().to_owned())
    }
}

impl Drive for GadgetDrive {
    fn read(&self) -> Option<Lun> {
        let linked = std::fs::symlink_metadata(self.gadget.join("configs/c.1").join(FUNCTION)).is_ok();
        if !linked || !self.lun().is_dir() {
            return None;
        }
        let file = self.read_attr("file").ok()?;
        Some(Lun {
            file: (!file.is_empty()).then(|| PathBuf::from(file)),
            cdrom: self.read_attr("cdrom").ok()? == "1",
            ro: self.read_attr("ro").ok()? == "1",
        })
    }

    fn attach(&self, file: &Path, cdrom: bool, rw: bool) -> Result<(), ApiError> {
        self.write("ro", if rw { "0" } else { "1" })?;
        self.set_mode(cdrom)?;
        self.write("file", &file.to_string_lossy())
    }

    fn set_mode(&self, cdrom: bool) -> Result<(), ApiError> {
        // A mainline kernel has one inquiry string for both modes: the mode's, set here
        // (a PiKVM kernel's `inquiry_string_cdrom` holds the CD-ROM's; kvmd-otg set both).
        let lun = self.lun();
        if !lun.join("inquiry_string_cdrom").exists() && lun.join("inquiry_string").exists() {
            self.write("inquiry_string", &kvmd_core::usb::drive_inquiry(cdrom))?;
        }
        self.write("cdrom", if cdrom { "1" } else { "0" })
    }

    fn eject(&self) -> Result<(), ApiError> {
        self.write("forced_eject", "")
    }

    fn reset(&self) {
        for (attr, v) in [("forced_eject", ""), ("cdrom", "0"), ("ro", "1")] {
            if let Err(e) = self.write(attr, v) {
                tracing::error!(attr, error = %e, "resetting the MSD drive");
            }
        }
    }
}

/// A drive in memory (the virtual target's): always there; it writes what it holds to
/// `announce` (`<name>\t<size>\t<cdrom>\t<rw>`, or nothing) for the target's screen.
#[derive(Debug)]
pub struct VirtualDrive {
    lun: Mutex<Lun>,
    announce: PathBuf,
}

impl VirtualDrive {
    /// An empty drive, a read-only CD-ROM, as kvmd-otg makes the gadget's.
    pub fn new(announce: PathBuf) -> Self {
        let d = Self { lun: Mutex::new(Lun { file: None, cdrom: true, ro: true }), announce };
        d.announce(&Lun::default());
        d
    }

    fn announce(&self, lun: &Lun) {
        if self.announce.as_os_str().is_empty() {
            return;
        }
        let text = lun.file.as_ref().map_or_else(String::new, |f| {
            let size = std::fs::metadata(f).map_or(0, |m| m.len());
            let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            format!("{name}\t{size}\t{}\t{}\n", u8::from(lun.cdrom), u8::from(!lun.ro))
        });
        let tmp = self.announce.with_extension("new");
        if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &self.announce)) {
            tracing::warn!(path = %self.announce.display(), error = %e, "announcing the virtual drive's medium");
        }
    }

    fn set(&self, f: impl FnOnce(&mut Lun)) {
        let mut lun = self.lun.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut lun);
        self.announce(&lun);
    }
}

impl Drive for VirtualDrive {
    fn read(&self) -> Option<Lun> {
        Some(self.lun.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone())
    }

    fn attach(&self, file: &Path, cdrom: bool, rw: bool) -> Result<(), ApiError> {
        self.set(|l| *l = Lun { file: Some(file.to_owned()), cdrom, ro: !rw });
        Ok(())
    }

    fn eject(&self) -> Result<(), ApiError> {
        self.set(|l| l.file = None);
        Ok(())
    }

    fn set_mode(&self, cdrom: bool) -> Result<(), ApiError> {
        self.set(|l| l.cdrom = cdrom);
        Ok(())
    }

    fn reset(&self) {
        self.set(|l| *l = Lun { file: None, cdrom: false, ro: true });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gadget_lun_is_written_in_kvmds_order_and_form() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let g = dir.path().to_owned();
        let d = GadgetDrive::new(g.clone());
        assert_eq!(d.read(), None, "no function");
        let lun = g.join("functions/mass_storage.usb0/lun.0");
        std::fs::create_dir_all(&lun).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(g.join("configs/c.1")).unwrap_or_else(|e| panic!("{e}"));
        for (a, v) in [("file", ""), ("cdrom", "1"), ("ro", "1"), ("forced_eject", "")] {
            std::fs::write(lun.join(a), format!("{v}\n")).unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(d.read(), None, "the function is not linked");
        std::os::unix::fs::symlink(g.join("functions/mass_storage.usb0"), g.join("configs/c.1/mass_storage.usb0"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.read(), Some(Lun { file: None, cdrom: true, ro: true }));
        d.attach(Path::new("/var/lib/kvmd/msd/x.img"), false, true).unwrap_or_else(|e| panic!("{e}"));
        let read = |a: &str| std::fs::read_to_string(lun.join(a)).unwrap_or_default();
        assert_eq!(
            (read("ro"), read("cdrom"), read("file")),
            ("0\n".into(), "0\n".into(), "/var/lib/kvmd/msd/x.img\n".into())
        );
        assert_eq!(d.read().and_then(|l| l.file), Some(PathBuf::from("/var/lib/kvmd/msd/x.img")));
        d.eject().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read("forced_eject"), "\n");
    }

    #[test]
    fn the_virtual_drive_announces_its_medium() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let img = dir.path().join("os.iso");
        std::fs::write(&img, [0u8; 2048]).unwrap_or_else(|e| panic!("{e}"));
        let announce = dir.path().join("medium");
        let d = VirtualDrive::new(announce.clone());
        assert_eq!(std::fs::read_to_string(&announce).unwrap_or_default(), "");
        d.attach(&img, true, false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read_to_string(&announce).unwrap_or_default(), "os.iso\t2048\t1\t0\n");
        d.eject().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read_to_string(&announce).unwrap_or_default(), "");
    }
}
