//! Files written whole: [`write_atomic`], for every state file of the suite (htpasswd,
//! sessions, the TOTP secret, kvmd-kasm's images), so that a crash never leaves half a file.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Replaces `path` with `contents` atomically: a temporary file in the same directory with
/// the owner and mode of the old file (0600 for a new one), synced, then renamed over it.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let old = fs::metadata(path).ok();
    let result = (|| {
        let mut f = fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        let mode = old.as_ref().map_or(0o600, |m| m.permissions().mode() & 0o7777);
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        if let Some(m) = &old {
            // Keep the owner when we may (root tools); an unprivileged rewrite keeps ours.
            let _ = nix::unistd::fchown(&f, Some(m.uid().into()), Some(m.gid().into()));
        }
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_keeps_mode() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path().join("htpasswd");
        write_atomic(&p, b"a:b\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fs::metadata(&p).map(|m| m.permissions().mode() & 0o777).unwrap_or(0), 0o600);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap_or_else(|e| panic!("{e}"));
        write_atomic(&p, b"a:c\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fs::read_to_string(&p).unwrap_or_default(), "a:c\n");
        assert_eq!(fs::metadata(&p).map(|m| m.permissions().mode() & 0o777).unwrap_or(0), 0o640);
        assert_eq!(fs::read_dir(dir.path()).map(|d| d.count()).unwrap_or(0), 1, "no temporary file left");
    }
}
