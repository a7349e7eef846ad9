//! The USB gadget of kvmd-hid through configfs (`kvmd-otg start|stop`).
//!
//! Values are kvmd's (spec `hid.md` section 6): vendor 0x1D6B, product 0x0104, strings
//! "PiKVM" / "PiKVM Composite Device" / "CAFEBABE", one configuration with three HID
//! functions: `hid.usb0` boot keyboard, `hid.usb1` absolute mouse, `hid.usb2` relative
//! mouse, with the report descriptors below. The kernel then creates `/dev/hidg0..2`, which
//! the udev rules in `deploy/udev` name `/dev/kvmd-hid-*`.
//!
//! With [`Msd`] it also has kvmd's mass-storage function `mass_storage.usb0` (spec
//! `atx-msd-gpio-redfish.md` 3.5): one LUN, empty, CD-ROM, read-only, removable, with
//! kvmd's inquiry strings; the attributes kvmd-msd writes (`file`, `cdrom`, `ro`,
//! `forced_eject`, `inquiry_string`) belong to its user.
//!
//! `start` is idempotent (a gadget already bound is left alone) and fails with a clear
//! message when configfs is not mounted or there is no USB device controller. `stop`
//! unbinds and removes the gadget in the order configfs demands.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The boot keyboard's report descriptor (8-byte reports, 5 LED bits out).
pub const KEYBOARD_DESC: &[u8] = &[
    0x05, 0x01, 0x09, 0x06, 0xA1, 0x01, 0x05, 0x07, 0x19, 0xE0, 0x29, 0xE7, 0x15, 0x00, 0x25, 0x01, 0x75, 0x01, 0x95,
    0x08, 0x81, 0x02, 0x95, 0x01, 0x75, 0x08, 0x81, 0x01, 0x95, 0x05, 0x75, 0x01, 0x05, 0x08, 0x19, 0x01, 0x29, 0x05,
    0x91, 0x02, 0x95, 0x01, 0x75, 0x03, 0x91, 0x01, 0x95, 0x06, 0x75, 0x08, 0x15, 0x00, 0x26, 0xFF, 0x00, 0x05, 0x07,
    0x19, 0x00, 0x2A, 0xFF, 0x00, 0x81, 0x00, 0xC0,
];

/// The absolute mouse (8 buttons, X/Y 0..32767, wheel, horizontal wheel; 7-byte reports).
pub const MOUSE_ABS_DESC: &[u8] = &[
    0x05, 0x01, 0x09, 0x02, 0xA1, 0x01, 0x09, 0x01, 0xA1, 0x00, 0x05, 0x09, 0x19, 0x01, 0x29, 0x08, 0x15, 0x00, 0x25,
    0x01, 0x95, 0x08, 0x75, 0x01, 0x81, 0x02, 0x05, 0x01, 0x09, 0x30, 0x09, 0x31, 0x16, 0x00, 0x00, 0x26, 0xFF, 0x7F,
    0x75, 0x10, 0x95, 0x02, 0x81, 0x02, 0x09, 0x38, 0x15, 0x81, 0x25, 0x7F, 0x75, 0x08, 0x95, 0x01, 0x81, 0x06, 0x05,
    0x0C, 0x0A, 0x38, 0x02, 0x15, 0x81, 0x25, 0x7F, 0x75, 0x08, 0x95, 0x01, 0x81, 0x06, 0xC0, 0xC0,
];

/// The relative mouse (8 buttons, dx, dy, wheel, horizontal wheel; 5-byte reports).
pub const MOUSE_REL_DESC: &[u8] = &[
    0x05, 0x01, 0x09, 0x02, 0xA1, 0x01, 0x09, 0x01, 0xA1, 0x00, 0x05, 0x09, 0x19, 0x01, 0x29, 0x08, 0x15, 0x00, 0x25,
    0x01, 0x95, 0x08, 0x75, 0x01, 0x81, 0x02, 0x05, 0x01, 0x09, 0x30, 0x09, 0x31, 0x09, 0x38, 0x15, 0x81, 0x25, 0x7F,
    0x75, 0x08, 0x95, 0x03, 0x81, 0x06, 0x05, 0x0C, 0x0A, 0x38, 0x02, 0x15, 0x81, 0x25, 0x7F, 0x75, 0x08, 0x95, 0x01,
    0x81, 0x06, 0xC0, 0xC0,
];

/// One HID function: name, protocol, subclass, report length, descriptor.
pub const FUNCTIONS: &[(&str, u8, u8, u8, &[u8])] = &[
    ("hid.usb0", 1, 1, 8, KEYBOARD_DESC),
    ("hid.usb1", 0, 0, 7, MOUSE_ABS_DESC),
    ("hid.usb2", 2, 1, 5, MOUSE_REL_DESC),
];

/// The mass-storage function's name.
pub const MSD_FUNCTION: &str = "mass_storage.usb0";

/// The mass-storage drive of the gadget.
#[derive(Debug, Clone)]
pub struct Msd {
    /// Owner (uid, gid) of the attributes the MSD service writes.
    pub owner: Option<(u32, u32)>,
}

/// The LUN attributes the MSD service writes.
pub const MSD_OWNED: &[&str] = &["file", "cdrom", "ro", "forced_eject", "inquiry_string"];

fn add_msd(g: &Path, config: &Path, msd: &Msd) -> io::Result<()> {
    let f = g.join("functions").join(MSD_FUNCTION);
    mkdir(&f)?;
    write(&f.join("stall"), "0")?;
    let lun = f.join("lun.0");
    // kvmd-otg's defaults: empty, CD-ROM, read-only, removable, FUA on.
    write(&lun.join("cdrom"), "1")?;
    write(&lun.join("ro"), "1")?;
    write(&lun.join("removable"), "1")?;
    write(&lun.join("nofua"), "0")?;
    let (cdrom, flash) = (kvmd_core::usb::drive_inquiry(true), kvmd_core::usb::drive_inquiry(false));
    // `inquiry_string_cdrom` is a PiKVM kernel's; on a mainline kernel the one string is the
    // CD-ROM's now and kvmd-msd sets the mode's at each attach.
    if lun.join("inquiry_string_cdrom").exists() {
        write(&lun.join("inquiry_string_cdrom"), &cdrom)?;
        write(&lun.join("inquiry_string"), &flash)?;
    } else {
        write(&lun.join("inquiry_string"), &cdrom)?;
    }
    if let Some((uid, gid)) = msd.owner {
        for attr in MSD_OWNED {
            let p = lun.join(attr);
            std::os::unix::fs::chown(&p, Some(uid), Some(gid))
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
        }
    }
    let link = config.join(MSD_FUNCTION);
    if fs::symlink_metadata(&link).is_err() {
        std::os::unix::fs::symlink(&f, &link)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", link.display())))?;
    }
    Ok(())
}

/// Where the gadget lives.
#[derive(Debug, Clone)]
pub struct Paths {
    /// configfs, normally `/sys/kernel/config`.
    pub configfs: PathBuf,
    /// The UDC class directory, normally `/sys/class/udc`.
    pub udc_dir: PathBuf,
    /// A UDC name; empty = the first one found.
    pub udc: String,
}

fn gadget(p: &Paths) -> PathBuf {
    p.configfs.join("usb_gadget/kvmd")
}

fn write(path: &Path, value: impl AsRef<[u8]>) -> io::Result<()> {
    fs::write(path, value).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

fn mkdir(path: &Path) -> io::Result<()> {
    match fs::create_dir(path) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            Err(io::Error::new(e.kind(), format!("{}: {e}", path.display())))
        }
        _ => Ok(()),
    }
}

fn find_udc(p: &Paths) -> io::Result<String> {
    if !p.udc.is_empty() {
        return Ok(p.udc.clone());
    }
    let mut names: Vec<String> = fs::read_dir(&p.udc_dir)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.udc_dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    names.into_iter().next().ok_or_else(|| {
        io::Error::other(format!(
            "no USB device controller in {} (dwc2 on a Pi, dummy_hcd in a VM)",
            p.udc_dir.display()
        ))
    })
}

/// Creates and binds the gadget (with the mass-storage drive if `msd`). Returns `false`
/// when it was already bound.
pub fn start(p: &Paths, msd: Option<&Msd>) -> io::Result<bool> {
    let root = p.configfs.join("usb_gadget");
    if !root.is_dir() {
        return Err(io::Error::other(format!(
            "{} does not exist: mount configfs and load libcomposite (modprobe libcomposite)",
            root.display()
        )));
    }
    let g = gadget(p);
    if fs::read_to_string(g.join("UDC")).is_ok_and(|u| !u.trim().is_empty()) {
        return Ok(false);
    }
    let udc = find_udc(p)?;
    mkdir(&g)?;
    write(&g.join("idVendor"), "0x1d6b")?;
    write(&g.join("idProduct"), "0x0104")?;
    write(&g.join("bcdUSB"), "0x0200")?;
    write(&g.join("bcdDevice"), "0x0100")?;
    let strings = g.join("strings/0x409");
    mkdir(&g.join("strings"))?;
    mkdir(&strings)?;
    write(&strings.join("manufacturer"), "PiKVM")?;
    write(&strings.join("product"), "PiKVM Composite Device")?;
    write(&strings.join("serialnumber"), "CAFEBABE")?;
    let config = g.join("configs/c.1");
    mkdir(&g.join("configs"))?;
    mkdir(&config)?;
    write(&config.join("MaxPower"), "250")?;
    write(&config.join("bmAttributes"), "0xA0")?;
    mkdir(&config.join("strings"))?;
    mkdir(&config.join("strings/0x409"))?;
    write(&config.join("strings/0x409/configuration"), "Config 1: HID")?;
    mkdir(&g.join("functions"))?;
    for (name, protocol, subclass, len, desc) in FUNCTIONS {
        let f = g.join("functions").join(name);
        mkdir(&f)?;
        write(&f.join("protocol"), protocol.to_string())?;
        write(&f.join("subclass"), subclass.to_string())?;
        write(&f.join("report_length"), len.to_string())?;
        write(&f.join("report_desc"), desc)?;
        // Only where the kernel has them (kvmd does the same).
        for (attr, v) in [("no_out_endpoint", "1"), ("wakeup_on_write", "1")] {
            if f.join(attr).exists() && !(*name == "hid.usb0" && attr == "no_out_endpoint") {
                write(&f.join(attr), v)?;
            }
        }
        let link = config.join(name);
        if fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(&f, &link)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", link.display())))?;
        }
    }
    if let Some(msd) = msd {
        add_msd(&g, &config, msd)?;
    }
    write(&g.join("UDC"), &udc)?;
    Ok(true)
}

/// Unbinds and removes the gadget; `false` when there was none.
pub fn stop(p: &Paths) -> io::Result<bool> {
    let g = gadget(p);
    if !g.exists() {
        return Ok(false);
    }
    let _ = write(&g.join("UDC"), "\n");
    let config = g.join("configs/c.1");
    for name in FUNCTIONS.iter().map(|f| f.0).chain([MSD_FUNCTION]) {
        let _ = fs::remove_file(config.join(name));
    }
    // configfs removes attribute files itself; remove the directories leaf first.
    let dirs = [
        config.join("strings/0x409"),
        config.clone(),
        g.join("functions/hid.usb0"),
        g.join("functions/hid.usb1"),
        g.join("functions/hid.usb2"),
        g.join("functions").join(MSD_FUNCTION),
        g.join("strings/0x409"),
        g.clone(),
    ];
    for d in dirs {
        if d.exists() {
            fs::remove_dir(&d).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", d.display())))?;
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_are_kvmds() {
        assert_eq!(KEYBOARD_DESC.len(), 65, "the 31 items of hid.md section 6.1");
        // Logical Maximum 255 must be the two-byte form (STACK.md pitfall 32).
        assert!(KEYBOARD_DESC.windows(3).any(|w| w == [0x26, 0xFF, 0x00]));
        assert!(MOUSE_ABS_DESC.windows(3).any(|w| w == [0x26, 0xFF, 0x7F]));
        assert_eq!(MOUSE_ABS_DESC.last(), Some(&0xC0));
        assert_eq!(MOUSE_REL_DESC.iter().filter(|&&b| b == 0xA1).count(), 2);
    }

    #[test]
    fn start_writes_kvmds_gadget_and_is_idempotent() {
        let dir = std::env::temp_dir().join(format!("kvmd-otg-start-{}", std::process::id()));
        fs::create_dir_all(dir.join("config/usb_gadget")).unwrap_or_else(|e| panic!("{e}"));
        fs::create_dir_all(dir.join("udc/dummy_udc.0")).unwrap_or_else(|e| panic!("{e}"));
        let p = Paths { configfs: dir.join("config"), udc_dir: dir.join("udc"), udc: String::new() };
        // configfs makes lun.0 with the function; a plain directory needs it made.
        fs::create_dir_all(dir.join("config/usb_gadget/kvmd/functions/mass_storage.usb0/lun.0"))
            .unwrap_or_else(|e| panic!("{e}"));
        let msd = Msd { owner: None };
        assert!(start(&p, Some(&msd)).unwrap_or_else(|e| panic!("{e}")));
        let g = dir.join("config/usb_gadget/kvmd");
        let read = |rel: &str| fs::read(g.join(rel)).unwrap_or_default();
        assert_eq!(read("idVendor"), b"0x1d6b");
        assert_eq!(read("strings/0x409/product"), b"PiKVM Composite Device");
        assert_eq!(read("functions/hid.usb0/report_desc"), KEYBOARD_DESC);
        assert_eq!(read("functions/hid.usb1/report_length"), b"7");
        assert_eq!(read("functions/hid.usb2/protocol"), b"2");
        assert_eq!(read("UDC"), b"dummy_udc.0");
        assert!(fs::read_link(g.join("configs/c.1/hid.usb2")).is_ok());
        let lun = "functions/mass_storage.usb0/lun.0";
        assert_eq!(read(&format!("{lun}/cdrom")), b"1");
        assert_eq!(read(&format!("{lun}/ro")), b"1");
        assert_eq!(read(&format!("{lun}/removable")), b"1");
        assert_eq!(read(&format!("{lun}/inquiry_string")), b"PiKVM   Optical Drive   1.00");
        assert!(fs::read_link(g.join("configs/c.1/mass_storage.usb0")).is_ok());
        assert!(!start(&p, Some(&msd)).unwrap_or(true), "a bound gadget is left alone");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn clear_errors_without_configfs_or_udc() {
        let dir = std::env::temp_dir().join(format!("kvmd-otg-test-{}", std::process::id()));
        let p = Paths { configfs: dir.join("config"), udc_dir: dir.join("udc"), udc: String::new() };
        let e = start(&p, None).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("modprobe libcomposite"), "{e}");
        fs::create_dir_all(dir.join("config/usb_gadget")).unwrap_or_else(|e| panic!("{e}"));
        fs::create_dir_all(dir.join("udc")).unwrap_or_else(|e| panic!("{e}"));
        let e = start(&p, None).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("no USB device controller"), "{e}");
        let _ = fs::remove_dir_all(&dir);
    }
}
