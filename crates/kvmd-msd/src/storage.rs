//! The image storage: one directory, scanned as kvmd scans it (spec
//! `atx-msd-gpio-redfish.md` 3.3, 3.4).
//!
//! An image is a regular file whose name does not start with `.` (nor `lost+found`),
//! reached without symlinks. Incomplete images follow kvmd's marker: `.__<file
//! name>.incomplete` beside the file. Unlike kvmd, an upload writes its bytes **into** that
//! marker and renames it to the image's name once every byte is there and synced, so a
//! crash or a cut connection never leaves a file under the image's name that is not
//! complete; a marker with no file beside it is shown as the incomplete image itself.
//! (A marker left by kvmd, empty beside its file, reads the same way.)

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::Serialize;

/// An image as the state shows it (`storage.images.<name>`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Image {
    /// No marker: every byte is there.
    pub complete: bool,
    /// It may be removed.
    pub removable: bool,
    /// It may be attached read-write (never an ISO).
    pub writable: bool,
    /// Bytes.
    pub size: u64,
    /// Modification time, seconds.
    pub mod_ts: f64,
}

/// A partition of the storage (`storage.parts.<name>`): the root (`""`) and any file
/// system mounted inside it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Part {
    /// Bytes in all.
    pub size: u64,
    /// Bytes free for the service.
    pub free: u64,
    /// Images may be written there.
    pub writable: bool,
}

/// A map serialized in the order of its entries (kvmd's insertion order).
#[derive(Debug, Clone, PartialEq)]
pub struct Ordered<T>(pub Vec<(String, T)>);

impl<T> Default for Ordered<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T: Serialize> Serialize for Ordered<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<T> Ordered<T> {
    /// The entry named `name`.
    pub fn get(&self, name: &str) -> Option<&T> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
}

/// An image found by a scan: its state and where its bytes are.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// What the state shows.
    pub image: Image,
    /// The file holding the bytes (the marker, for an image still being written).
    pub data: PathBuf,
    /// The marker, if any.
    pub marker: Option<PathBuf>,
}

/// What a scan found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Index {
    /// The images, in kvmd's scan order.
    pub images: Ordered<Found>,
    /// The partitions, the root first.
    pub parts: Ordered<Part>,
}

impl Index {
    /// The images as the state shows them.
    pub fn images(&self) -> Ordered<Image> {
        Ordered(self.images.0.iter().map(|(n, f)| (n.clone(), f.image.clone())).collect())
    }
}

/// The marker of the file `path`: `.__<file name>.incomplete` beside it.
pub fn marker_of(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".__{name}.incomplete"))
}

/// The image name of a marker's file name, if it is one.
fn marked_name(file_name: &str) -> Option<&str> {
    file_name.strip_prefix(".__")?.strip_suffix(".incomplete").filter(|n| !n.is_empty() && !n.starts_with('.'))
}

fn skipped(name: &str) -> bool {
    name.starts_with('.') || name == "lost+found"
}

fn mod_ts(m: &fs::Metadata) -> f64 {
    m.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0.0, |d| d.as_secs_f64())
}

fn writable_dir(dir: &Path) -> bool {
    nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK).is_ok()
}

/// `f_blocks × f_frsize` and `f_bavail × f_frsize` of the file system holding `dir`.
pub fn space(dir: &Path) -> io::Result<(u64, u64)> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(io::Error::from)?;
    let frsize = st.fragment_size() as u64;
    Ok((st.blocks() as u64 * frsize, st.blocks_available() as u64 * frsize))
}

/// The storage at its root directory.
#[derive(Debug, Clone)]
pub struct Storage {
    root: PathBuf,
}

impl Storage {
    /// The storage in `root`.
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// Its root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the image `name` (validated) lives.
    pub fn path_of(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The image name of an absolute path inside the storage.
    pub fn name_of(&self, path: &Path) -> Option<String> {
        let rel = path.strip_prefix(&self.root).ok()?;
        let s = rel.to_str()?;
        (!s.is_empty()).then(|| s.to_owned())
    }

    /// Scans the storage; `Err` when its root cannot be read.
    pub fn scan(&self) -> io::Result<Index> {
        let meta = fs::metadata(&self.root)?;
        if !meta.is_dir() {
            return Err(io::Error::other(format!("{} is not a directory", self.root.display())));
        }
        let (size, free) = space(&self.root)?;
        let mut index = Index::default();
        index.parts.0.push((String::new(), Part { size, free, writable: true }));
        self.scan_dir(&self.root, meta.dev(), meta.dev(), true, &mut index)?;
        Ok(index)
    }

    fn scan_dir(&self, dir: &Path, root_dev: u64, dev: u64, dir_writable: bool, index: &mut Index) -> io::Result<()> {
        let on_root = dev == root_dev;
        let mut files = Vec::new();
        let mut markers = Vec::new();
        let mut dirs = Vec::new();
        for entry in fs::read_dir(dir)? {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name().to_string_lossy().into_owned();
            // `symlink_metadata`: a symlink is neither a file nor a directory here.
            let Ok(m) = fs::symlink_metadata(entry.path()) else { continue };
            if let Some(image) = marked_name(&name) {
                if m.is_file() {
                    markers.push((image.to_owned(), m));
                }
                continue;
            }
            if skipped(&name) {
                continue;
            }
            if m.is_file() {
                files.push((name, m));
            } else if m.is_dir() {
                dirs.push((name, m));
            }
        }
        // Files (and images only their marker holds yet) by name, then each directory.
        let mut images: Vec<(String, fs::Metadata, Option<PathBuf>, bool)> = Vec::new();
        for (name, m) in files {
            let marker = dir.join(format!(".__{name}.incomplete"));
            let has_marker = markers.iter().any(|(n, _)| *n == name);
            images.push((name, m, has_marker.then_some(marker), false));
        }
        for (name, m) in markers {
            if !images.iter().any(|(n, ..)| *n == name) {
                let marker = dir.join(format!(".__{name}.incomplete"));
                images.push((name, m, Some(marker), true));
            }
        }
        images.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, m, marker, in_marker) in images {
            let path = dir.join(&name);
            let data = if in_marker { marker.clone().unwrap_or_else(|| path.clone()) } else { path.clone() };
            let Some(rel) = self.name_of(&path) else { continue };
            let writable_file = on_root || nix::unistd::access(&data, nix::unistd::AccessFlags::W_OK).is_ok();
            let image = Image {
                complete: marker.is_none(),
                removable: on_root || dir_writable,
                writable: !name.to_lowercase().ends_with(".iso") && writable_file,
                size: m.len(),
                mod_ts: mod_ts(&m),
            };
            index.images.0.push((rel, Found { image, data, marker }));
        }
        dirs.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, m) in dirs {
            let sub = dir.join(&name);
            let sub_dev = m.dev();
            let writable = if sub_dev == root_dev { true } else { writable_dir(&sub) };
            if sub_dev != dev {
                // A file system mounted inside the storage: a partition of its own (a dead
                // mount, which cannot be asked, is skipped).
                let Ok((size, free)) = space(&sub) else { continue };
                let Some(rel) = self.name_of(&sub) else { continue };
                index.parts.0.push((rel, Part { size, free, writable }));
            }
            // A directory that cannot be read is left out, as kvmd does.
            let _ = self.scan_dir(&sub, root_dev, sub_dev, writable, index);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scan_orders_files_first_and_reads_markers_as_kvmd() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path();
        let w = |p: &str, n: usize| {
            let p = root.join(p);
            fs::create_dir_all(p.parent().unwrap_or(root)).unwrap_or_else(|e| panic!("{e}"));
            fs::write(p, vec![7u8; n]).unwrap_or_else(|e| panic!("{e}"));
        };
        w("b.img", 3);
        w("a.ISO", 2);
        w("win/flash.img", 5);
        w("win/.__flash.img.incomplete", 0);
        w(".__half.iso.incomplete", 9);
        w(".hidden", 1);
        w("lost+found/x", 1);
        std::os::unix::fs::symlink(root.join("b.img"), root.join("link.img")).unwrap_or_else(|e| panic!("{e}"));
        let s = Storage::new(root.to_owned());
        let index = s.scan().unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = index.images.0.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a.ISO", "b.img", "half.iso", "win/flash.img"]);
        let get = |n: &str| index.images.get(n).cloned().unwrap_or_else(|| panic!("{n}"));
        assert!(!get("a.ISO").image.writable, "an ISO is never writable");
        assert!(get("b.img").image.writable && get("b.img").image.complete);
        let half = get("half.iso");
        assert!(!half.image.complete);
        assert_eq!(half.image.size, 9, "the marker holds the bytes of an upload");
        assert_eq!(half.data, root.join(".__half.iso.incomplete"));
        let flash = get("win/flash.img");
        assert!(!flash.image.complete && flash.image.size == 5, "kvmd's empty marker beside its file");
        assert_eq!(flash.data, root.join("win/flash.img"));
        assert_eq!(index.parts.0.len(), 1);
        assert!(index.parts.0[0].0.is_empty() && index.parts.0[0].1.writable);
        assert_eq!(marker_of(&root.join("win/x.iso")), root.join("win/.__x.iso.incomplete"));
        assert_eq!(s.name_of(&root.join("win/x.iso")).as_deref(), Some("win/x.iso"));
        assert!(Storage::new(root.join("nope")).scan().is_err());
    }
}
