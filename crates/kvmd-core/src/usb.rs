//! Facts of the USB gadget shared by kvmd-otg (which makes it) and kvmd-msd (which drives its
//! mass-storage LUN): kvmd's SCSI inquiry strings (spec `atx-msd-gpio-redfish.md` 3.5).

/// The gadget's manufacturer, the inquiry strings' vendor.
pub const VENDOR: &str = "PiKVM";

/// kvmd's inquiry string: vendor padded or cut to 8, product to 16, revision to 4.
pub fn inquiry(vendor: &str, product: &str, revision: &str) -> String {
    let cut = |s: &str, n: usize| format!("{:<n$}", s.chars().take(n).collect::<String>());
    format!("{}{}{}", cut(vendor, 8), cut(product, 16), cut(revision, 4))
}

/// The drive's inquiry string in CD-ROM or flash mode.
pub fn drive_inquiry(cdrom: bool) -> String {
    inquiry(VENDOR, if cdrom { "Optical Drive" } else { "Flash Drive" }, "1.00")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inquiry_strings_are_kvmds() {
        assert_eq!(drive_inquiry(false), "PiKVM   Flash Drive     1.00");
        assert_eq!(drive_inquiry(true), "PiKVM   Optical Drive   1.00");
        assert_eq!(inquiry("A very long vendor", "x", "12345"), "A very lx               1234");
    }
}
