//! Where the users and their password hashes come from: the [`CredentialStore`] trait, and
//! the htpasswd file ([`HtpasswdFile`]) that implements it.
//!
//! The [`Manager`](crate::manager::Manager) keeps one store behind its lock, asks it to
//! [`reload`](CredentialStore::reload) on every check and drops its credential cache when
//! that reports a change; another kind of store (a database of users) plugs in beside the
//! file with [`Manager::with_store`](crate::manager::Manager::with_store).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::htpasswd::Htpasswd;

/// A source of users and their password hashes.
pub trait CredentialStore: Send {
    /// Brings the users up to date: the first call reads them, later ones read them again
    /// only when they changed. Returns whether they may have changed (the manager then
    /// drops its verified credentials). A store that cannot be read keeps serving what it
    /// last had, or nothing; it never fails.
    fn reload(&mut self) -> bool;

    /// The stored password hash of `user` (in any scheme [`crate::hash`] knows), or `None`
    /// when there is no such user.
    fn hash(&self, user: &str) -> Option<String>;

    /// Every user's name, when the store knows them all (`None`: it cannot tell now, e.g.
    /// its file could not be read). Sessions of users who vanish from this list end.
    fn users(&self) -> Option<Vec<String>> {
        None
    }

    /// Whether `user` exists.
    fn contains(&self, user: &str) -> bool {
        self.hash(user).is_some()
    }

    /// `user`'s role, when the store keeps roles (else auth.toml's `roles` decide).
    fn role(&self, _user: &str) -> Option<kvmd_core::role::Role> {
        None
    }

    /// Every user's row (role, flags, profile), when the store keeps them.
    fn rows(&self) -> Vec<crate::users::UserRow> {
        Vec::new()
    }

    /// The users' database, for an admin's changes (`None`: this store cannot be changed).
    fn db(&mut self) -> Option<&mut crate::users::UserDb> {
        None
    }

    /// Whether `user`'s password is in the htpasswd file (read-only to kvmd-auth).
    fn in_file(&self, _user: &str) -> bool {
        false
    }

    /// Some user's stored hash, which an unknown user's password is checked against so
    /// that a refusal costs the same either way; `None` when there are no users.
    fn sample_hash(&self) -> Option<String> {
        None
    }
}

/// What identifies a version of a file without reading it.
pub(crate) type Stamp = Option<(u64, u64, u64, i64, i64, i64, i64)>;

/// The version of the file at `path` (`None` when it cannot be `stat`ed).
pub(crate) fn stamp(path: &Path) -> Stamp {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec()))
}

/// The htpasswd file as a store: `stat`ed on every reload and read again only when it
/// changed. A corrupt file keeps the last good copy (or, with none, no users); a file that
/// cannot be read means no users.
#[derive(Debug)]
pub struct HtpasswdFile {
    path: PathBuf,
    stamp: Stamp,
    users: Htpasswd,
    loaded: bool,
    /// The last read succeeded (or found no file): the users are known.
    known: bool,
}

impl HtpasswdFile {
    /// The store of the file at `path`; nothing is read before the first reload.
    pub fn new(path: PathBuf) -> Self {
        Self { path, stamp: None, users: Htpasswd::default(), loaded: false, known: false }
    }
}

impl CredentialStore for HtpasswdFile {
    fn reload(&mut self) -> bool {
        let hs = stamp(&self.path);
        if self.loaded && hs == self.stamp {
            return false;
        }
        self.loaded = true;
        self.stamp = hs;
        match std::fs::read_to_string(&self.path) {
            Ok(text) => match Htpasswd::parse(&text) {
                Ok(h) => {
                    self.users = h;
                    self.known = true;
                }
                Err(e) => tracing::error!(path = %self.path.display(), error = %e,
                    "invalid htpasswd file; keeping the previous users"),
            },
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "cannot read the htpasswd file");
                self.users = Htpasswd::default();
                // A deleted file deletes its users; one that cannot be read says nothing.
                self.known = e.kind() == std::io::ErrorKind::NotFound;
            }
        }
        if self.users.users().is_empty() {
            tracing::warn!(path = %self.path.display(),
                "no users: every login is refused; create one with `kvmd-htpasswd add admin`");
        }
        true
    }

    fn hash(&self, user: &str) -> Option<String> {
        self.users.get(user).map(str::to_owned)
    }

    fn users(&self) -> Option<Vec<String>> {
        self.known.then(|| self.users.users().into_iter().map(str::to_owned).collect())
    }

    fn sample_hash(&self) -> Option<String> {
        self.users.users().first().and_then(|u| self.hash(u))
    }

    fn contains(&self, user: &str) -> bool {
        self.users.get(user).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_read_again_only_when_it_changed_and_a_corrupt_one_keeps_the_users() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("htpasswd");
        std::fs::write(&path, "admin:x\n").unwrap_or_else(|e| panic!("{e}"));
        let mut s = HtpasswdFile::new(path.clone());
        assert!(!s.contains("admin"), "nothing read before the first reload");
        assert!(s.reload());
        assert_eq!(s.hash("admin").as_deref(), Some("x"));
        assert!(!s.reload(), "unchanged");
        std::fs::write(&path, "admin:y\nbob:z\n").unwrap_or_else(|e| panic!("{e}"));
        assert!(s.reload());
        assert_eq!((s.hash("admin").as_deref(), s.contains("bob")), (Some("y"), true));
        std::fs::write(&path, "not a line\n").unwrap_or_else(|e| panic!("{e}"));
        assert!(s.reload());
        assert!(s.contains("bob"), "a corrupt file keeps the last good users");
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(s.reload());
        assert!(!s.contains("admin"), "a missing file: no users");
        assert!(!s.reload());
    }
}
