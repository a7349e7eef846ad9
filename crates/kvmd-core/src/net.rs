//! Unix-socket listeners and peer credentials.
//!
//! Every service listens on its own unix socket. Under systemd the `.socket` unit owns the
//! path, owner and mode and passes the listener as fd 3; otherwise (demo, tests) the
//! service binds it itself, refusing to delete anything that is not a socket (actix's
//! `bind_uds` would delete whatever is at the path).
//!
//! kvmd lets trusted local processes in without credentials by reading `SO_PEERCRED`
//! ("usc", spec `auth.md` section 11). actix hands each new connection to
//! [`on_connect`], which stores the peer's [`PeerCred`] in the connection data.
//!
//! The same credentials decide whose identity header a service believes: nginx sends the
//! user kvmd-auth accepted, and only a peer whose uid is the front's ([`FrontConfig`],
//! resolved once into [`FrontTrust`]) may. From any other peer the header is ignored and
//! the request is authenticated by its own credentials (or refused).

use std::any::Any;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::Path;

use actix_web::dev::Extensions;
use serde::{Deserialize, Serialize};

/// Where and how a service listens.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SocketConfig {
    /// The socket path (ignored under socket activation).
    pub path: std::path::PathBuf,
    /// The mode set on a socket the service binds itself.
    pub mode: u32,
    /// The group given to a socket the service binds itself (the nginx worker's group);
    /// empty keeps the process's group.
    pub group: String,
}

impl SocketConfig {
    /// A socket at `path`, mode 0660, the process's group.
    pub fn at(path: &str) -> Self {
        Self { path: path.into(), mode: 0o660, group: String::new() }
    }
}

/// The listener: socket activation first, otherwise bound here.
pub fn unix_listener(cfg: &SocketConfig) -> io::Result<UnixListener> {
    if let Some(fd) = sd_notify::listen_fds()?.next() {
        return Ok(adopt_fd(fd));
    }
    match fs::symlink_metadata(&cfg.path) {
        Ok(m) if m.file_type().is_socket() => fs::remove_file(&cfg.path)?,
        Ok(_) => {
            return Err(io::Error::other(format!("{} exists and is not a socket", cfg.path.display())));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(dir) = cfg.path.parent() {
        fs::create_dir_all(dir)?;
    }
    let listener = UnixListener::bind(&cfg.path)?;
    set_owner_mode(&cfg.path, &cfg.group, cfg.mode)?;
    Ok(listener)
}

fn set_owner_mode(path: &Path, group: &str, mode: u32) -> io::Result<()> {
    if !group.is_empty() {
        let g = nix::unistd::Group::from_name(group)
            .map_err(io::Error::from)?
            .ok_or_else(|| io::Error::other(format!("no such group {group:?}")))?;
        nix::unistd::chown(path, None, Some(g.gid)).map_err(io::Error::from)?;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[allow(unsafe_code)]
fn adopt_fd(fd: std::os::fd::RawFd) -> UnixListener {
    use std::os::fd::FromRawFd;
    // SAFETY: systemd passed this descriptor to us (LISTEN_FDS); nothing else owns it.
    unsafe { UnixListener::from_raw_fd(fd) }
}

/// The credentials of the process on the other end of a unix connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    /// Its user id.
    pub uid: u32,
    /// Its group id.
    pub gid: u32,
    /// Its pid, when the kernel could tell it (another pid namespace gives none).
    pub pid: Option<i32>,
}

/// The descriptor of a connection, for [`disconnected`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnFd(pub std::os::fd::RawFd);

/// actix `on_connect` hook: stores the peer credentials and the descriptor of unix
/// connections.
pub fn on_connect(conn: &dyn Any, ext: &mut Extensions) {
    if let Some(stream) = conn.downcast_ref::<actix_web::rt::net::UnixStream>() {
        use std::os::fd::AsRawFd;
        ext.insert(ConnFd(stream.as_raw_fd()));
        if let Ok(cred) = stream.peer_cred() {
            ext.insert(PeerCred { uid: cred.uid(), gid: cred.gid(), pid: cred.pid() });
        }
    }
}

/// Whether the peer of `fd` has hung up: a non-blocking peek reads end-of-stream (or the
/// connection is broken).
fn peer_gone(fd: std::os::fd::RawFd) -> bool {
    use nix::sys::socket::{MsgFlags, recv};
    let mut byte = [0u8; 1];
    match recv(fd, &mut byte, MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT) {
        Ok(0) => true,
        Ok(_) => false,
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => false,
        Err(_) => true,
    }
}

/// Resolves when the client of a long response goes away.
///
/// actix notices a closed connection only when it next writes, so an idle infinite
/// response (`/log?follow=1` with nothing new) would keep its reader alive forever after
/// its client left. Long responses select on this instead; it checks the connection twice
/// a second. Without a descriptor (tests without a socket) it never resolves.
pub async fn disconnected(fd: Option<ConnFd>) {
    let Some(ConnFd(fd)) = fd else { return std::future::pending().await };
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        if peer_gone(fd) {
            return;
        }
    }
}

/// Which peers may tell a service who the user is (the front, nginx): their identity header
/// is believed. Not a kvmd key: kvmd is one process and has no such header.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FrontConfig {
    /// User names, or numeric uids, of the front's processes (default `kvmd-nginx`).
    pub users: Vec<String>,
}

impl Default for FrontConfig {
    fn default() -> Self {
        Self { users: vec!["kvmd-nginx".into()] }
    }
}

/// [`FrontConfig`] resolved to uids, once at start (a lookup per request would read
/// `/etc/passwd`), for the app data of every service behind the front.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrontTrust {
    uids: Vec<u32>,
}

impl FrontTrust {
    /// Resolves the names of `cfg`; a name that is not a user is left out, with a warning
    /// (then that peer is treated as any other).
    pub fn resolve(cfg: &FrontConfig) -> Self {
        let mut uids = Vec::new();
        for name in &cfg.users {
            let uid = match name.parse::<u32>() {
                Ok(uid) => Some(uid),
                Err(_) => nix::unistd::User::from_name(name).ok().flatten().map(|u| u.uid.as_raw()),
            };
            match uid {
                Some(uid) => uids.push(uid),
                None => tracing::warn!("front user {name:?} does not exist: no identity header is trusted from it"),
            }
        }
        Self { uids }
    }

    /// Whether the peer `peer` is the front.
    pub fn is_front(&self, peer: &PeerCred) -> bool {
        self.uids.contains(&peer.uid)
    }
}

/// Marks a request as the front's without a socket: for an in-process caller (the test
/// kit), which inserts it into the request's extensions. A client cannot set it.
#[derive(Debug, Clone, Copy)]
pub struct FromFront;

/// Who is trusted through peer credentials (kvmd `kvmd.auth.usc.*`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UscConfig {
    /// Trusted user names (kvmd's `usc.users` ∪ `usc.kvmd_users`, default `root`).
    pub users: Vec<String>,
    /// Users in these groups are trusted (default `kvmd-selfauth`).
    pub groups: Vec<String>,
}

impl Default for UscConfig {
    fn default() -> Self {
        Self { users: vec!["root".into()], groups: vec!["kvmd-selfauth".into()] }
    }
}

impl UscConfig {
    /// The trusted user name of `peer`, or `None`. A peer whose pid is unknown (another
    /// pid namespace) is never trusted, as in kvmd.
    pub fn trusted(&self, peer: &PeerCred) -> Option<String> {
        peer.pid.filter(|&p| p > 0)?;
        let user = nix::unistd::User::from_uid(peer.uid.into()).ok().flatten()?;
        if self.users.contains(&user.name) {
            return Some(user.name);
        }
        for name in &self.groups {
            if let Ok(Some(g)) = nix::unistd::Group::from_name(name)
                && (g.gid == user.gid || g.mem.contains(&user.name))
            {
                return Some(user.name);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_with_mode_and_replaces_only_sockets() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("s.sock");
        let cfg = SocketConfig { path: path.clone(), mode: 0o600, group: String::new() };
        let l = unix_listener(&cfg).unwrap_or_else(|e| panic!("{e}"));
        drop(l);
        let mode = fs::metadata(&path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
        assert_eq!(mode, 0o600);
        // A stale socket is replaced.
        assert!(unix_listener(&cfg).is_ok());
        // A regular file is never deleted.
        let file = dir.path().join("f");
        fs::write(&file, b"keep").unwrap_or_else(|e| panic!("{e}"));
        let cfg = SocketConfig { path: file.clone(), ..cfg };
        assert!(unix_listener(&cfg).is_err());
        assert_eq!(fs::read(&file).unwrap_or_default(), b"keep");
    }

    #[test]
    fn the_front_is_its_users_uids_only() {
        let me = nix::unistd::geteuid().as_raw();
        let name = nix::unistd::User::from_uid(me.into()).ok().flatten().map(|u| u.name).unwrap_or_default();
        let peer = |uid| PeerCred { uid, gid: 0, pid: Some(1) };
        let by_name = FrontTrust::resolve(&FrontConfig { users: vec![name, "no-such-user-kvmd".into()] });
        assert!(by_name.is_front(&peer(me)));
        assert!(!by_name.is_front(&peer(me.wrapping_add(1))));
        let by_uid = FrontTrust::resolve(&FrontConfig { users: vec!["4242".into()] });
        assert!(by_uid.is_front(&peer(4242)) && !by_uid.is_front(&peer(me)) || me == 4242);
        // The default names a user this machine need not have: then nobody is the front.
        let none = FrontTrust::resolve(&FrontConfig { users: vec!["no-such-user-kvmd".into()] });
        assert!(!none.is_front(&peer(0)) && !none.is_front(&peer(me)));
    }

    #[test]
    fn root_is_trusted_by_default_and_nobody_is_not() {
        let usc = UscConfig::default();
        assert_eq!(usc.trusted(&PeerCred { uid: 0, gid: 0, pid: Some(1) }).as_deref(), Some("root"));
        assert_eq!(usc.trusted(&PeerCred { uid: 0, gid: 0, pid: None }), None);
        assert_eq!(usc.trusted(&PeerCred { uid: 65534, gid: 65534, pid: Some(1) }), None);
    }
}
