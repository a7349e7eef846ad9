//! The users' database: users made through the API (Kasm's `create_user`, kvmd-auth's
//! `/auth/users/create`) with their password hashes, and every user's role, flags (locked,
//! disabled) and profile, in SQLite beside the keys. The htpasswd file stays what it is
//! today: read-only to kvmd-auth, and the source of the password of every user it names.
//!
//! [`UserStore`] is the [`CredentialStore`] kvmd-auth checks passwords against: the file's
//! users and the database's, a user named by both having the file's password and the
//! database's role and flags. On first start (an empty database) every user of the file
//! gets a row with its role from auth.toml's `roles` (a user it does not name: admin), so
//! the database holds every user from then on; a user added to the file later gets a row
//! when first seen. A locked or disabled user has no password: every login is refused and
//! their sessions end.

use std::collections::HashMap;
use std::path::Path;

use kvmd_core::role::Role;
use rusqlite::{Connection, params};
use serde::Serialize;

use crate::store::{CredentialStore, HtpasswdFile};

/// One user's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserRow {
    /// The name (the list shows it as `username`).
    #[serde(skip)]
    pub name: String,
    /// The password hash, for a user the database holds the password of (none for one of
    /// the htpasswd file).
    #[serde(skip)]
    pub hash: Option<String>,
    /// The role (the list shows it beside the name).
    #[serde(skip)]
    pub role: Role,
    /// Locked: refused until unlocked.
    pub locked: bool,
    /// Disabled: refused until enabled.
    pub disabled: bool,
    /// Profile fields (Kasm's), free text.
    pub first_name: String,
    /// See `first_name`.
    pub last_name: String,
    /// See `first_name`.
    pub phone: String,
    /// See `first_name`.
    pub organization: String,
    /// When the row was made (unix seconds).
    pub created: i64,
}

impl UserRow {
    /// A row for `name` with `role` and nothing else.
    pub fn new(name: &str, role: Role) -> Self {
        Self {
            name: name.to_owned(),
            hash: None,
            role,
            locked: false,
            disabled: false,
            first_name: String::new(),
            last_name: String::new(),
            phone: String::new(),
            organization: String::new(),
            created: i64::try_from(crate::sessions::unix_now()).unwrap_or(i64::MAX),
        }
    }

    /// Whether the user may log in.
    pub fn active(&self) -> bool {
        !self.locked && !self.disabled
    }
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY NOT NULL,
    hash TEXT,
    role TEXT NOT NULL,
    locked INTEGER NOT NULL DEFAULT 0,
    disabled INTEGER NOT NULL DEFAULT 0,
    first_name TEXT NOT NULL DEFAULT '',
    last_name TEXT NOT NULL DEFAULT '',
    phone TEXT NOT NULL DEFAULT '',
    organization TEXT NOT NULL DEFAULT '',
    created INTEGER NOT NULL
)";

/// The database.
pub struct UserDb {
    conn: Connection,
    rows: HashMap<String, UserRow>,
    version: i64,
    /// Changed by this connection since the last reload (SQLite's `data_version` counts
    /// only other connections' commits).
    dirty: bool,
    /// When `data_version` was last asked: at most every [`LOOK_EVERY`] (a password check
    /// reloads the users several times; kvmd-auth is the database's only writer but for
    /// someone editing it by hand).
    looked: Option<std::time::Instant>,
}

const LOOK_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

impl std::fmt::Debug for UserDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserDb").field("users", &self.rows.len()).finish_non_exhaustive()
    }
}

impl UserDb {
    /// Opens (creating it and its table when missing) the database at `path`.
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        let mut db = Self { conn, rows: HashMap::new(), version: -1, dirty: true, looked: None };
        db.refresh();
        Ok(db)
    }

    /// Reads the rows again when another connection changed them, or this one did.
    /// Returns whether they were read.
    pub fn refresh(&mut self) -> bool {
        if !self.dirty && self.looked.is_some_and(|t| t.elapsed() < LOOK_EVERY) {
            return false;
        }
        self.looked = Some(std::time::Instant::now());
        let version: i64 = self.conn.query_row("PRAGMA data_version", [], |r| r.get(0)).unwrap_or(-1);
        if !self.dirty && version == self.version {
            return false;
        }
        match self.read_all() {
            Ok(rows) => {
                self.rows = rows.into_iter().map(|r| (r.name.clone(), r)).collect();
                self.version = version;
                self.dirty = false;
            }
            Err(e) => tracing::error!(error = %e, "the users' database cannot be read"),
        }
        true
    }

    fn read_all(&self) -> rusqlite::Result<Vec<UserRow>> {
        let mut st = self.conn.prepare(
            "SELECT name, hash, role, locked, disabled, first_name, last_name, phone, organization, created FROM users",
        )?;
        let rows = st.query_map([], |r| {
            let role: String = r.get(2)?;
            Ok(UserRow {
                name: r.get(0)?,
                hash: r.get(1)?,
                // A row the service cannot read is the narrowest user there is.
                role: Role::parse(&role).unwrap_or(Role::Viewer),
                locked: r.get(3)?,
                disabled: r.get(4)?,
                first_name: r.get(5)?,
                last_name: r.get(6)?,
                phone: r.get(7)?,
                organization: r.get(8)?,
                created: r.get(9)?,
            })
        })?;
        rows.collect()
    }

    /// Row `name`.
    pub fn get(&self, name: &str) -> Option<&UserRow> {
        self.rows.get(name)
    }

    /// Every row.
    pub fn rows(&self) -> impl Iterator<Item = &UserRow> {
        self.rows.values()
    }

    /// Whether the database has no row yet (a first start).
    pub fn is_empty(&self) -> bool {
        self.conn.query_row("SELECT COUNT(*) FROM users", [], |r| r.get::<_, i64>(0)).map_or(true, |n| n == 0)
    }

    /// Writes `row` (made or replaced).
    pub fn put(&mut self, row: &UserRow) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT INTO users (name, hash, role, locked, disabled, first_name, last_name, phone, organization, created)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT(name) DO UPDATE SET hash = ?2, role = ?3, locked = ?4, disabled = ?5, first_name = ?6,
                 last_name = ?7, phone = ?8, organization = ?9",
            params![
                row.name,
                row.hash,
                row.role.as_str(),
                row.locked,
                row.disabled,
                row.first_name,
                row.last_name,
                row.phone,
                row.organization,
                row.created
            ],
        )?;
        self.dirty = true;
        Ok(())
    }

    /// Deletes row `name`; whether there was one.
    pub fn delete(&mut self, name: &str) -> rusqlite::Result<bool> {
        let n = self.conn.execute("DELETE FROM users WHERE name = ?1", params![name])?;
        self.dirty = true;
        Ok(n > 0)
    }
}

/// The users kvmd-auth checks: the htpasswd file (read-only, its users' passwords) and the
/// database (every user's role and flags, the passwords of the users made through the API).
#[derive(Debug)]
pub struct UserStore {
    file: HtpasswdFile,
    db: Option<UserDb>,
    /// The role of a user who has no row yet (auth.toml's `roles`, else admin).
    roles: std::collections::BTreeMap<String, Role>,
}

impl UserStore {
    /// The store of the htpasswd file `file` and the database `db` (`None`: the file alone,
    /// roles from `roles`).
    pub fn new(file: HtpasswdFile, db: Option<UserDb>, roles: std::collections::BTreeMap<String, Role>) -> Self {
        Self { file, db, roles }
    }

    /// `name`'s row (the database's, or one made from the config for a user without one).
    pub fn row(&self, name: &str) -> Option<UserRow> {
        if let Some(r) = self.db.as_ref().and_then(|d| d.get(name)) {
            return (self.file.contains(name) || r.hash.is_some()).then(|| r.clone());
        }
        self.file.contains(name).then(|| UserRow::new(name, self.roles.get(name).copied().unwrap_or_default()))
    }

    /// Gives every user of the file without a row one (the first start's migration, and a
    /// user added to the file since), with the config's role.
    fn adopt(&mut self) {
        let Some(db) = self.db.as_mut() else { return };
        let first = db.is_empty();
        let names = self.file.users().unwrap_or_default();
        let mut made = 0;
        let missing: Vec<&String> = names.iter().filter(|n| db.get(n).is_none()).collect();
        for name in missing {
            let row = UserRow::new(name, self.roles.get(name).copied().unwrap_or_default());
            match db.put(&row) {
                Ok(()) => made += 1,
                Err(e) => tracing::error!(user = %name, error = %e, "cannot record a user of the htpasswd file"),
            }
        }
        if made > 0 {
            db.refresh();
            if first {
                tracing::info!(
                    users = made,
                    "the htpasswd file's users are in the users' database (roles from auth.toml)"
                );
            }
        }
    }
}

impl CredentialStore for UserStore {
    fn reload(&mut self) -> bool {
        let file = self.file.reload();
        let db = self.db.as_mut().is_some_and(UserDb::refresh);
        if file {
            self.adopt();
        }
        file || db
    }

    fn hash(&self, user: &str) -> Option<String> {
        let row = self.row(user)?;
        if !row.active() {
            return None;
        }
        self.file.hash(user).or(row.hash)
    }

    fn users(&self) -> Option<Vec<String>> {
        let mut names = self.file.users()?;
        if let Some(db) = &self.db {
            names.extend(db.rows().filter(|r| r.hash.is_some()).map(|r| r.name.clone()));
        }
        names.sort();
        names.dedup();
        Some(names)
    }

    fn contains(&self, user: &str) -> bool {
        self.row(user).is_some_and(|r| r.active())
    }

    fn sample_hash(&self) -> Option<String> {
        self.file.sample_hash().or_else(|| self.db.as_ref()?.rows().find_map(|r| r.hash.clone()))
    }

    fn role(&self, user: &str) -> Option<Role> {
        self.row(user).map(|r| r.role)
    }

    fn rows(&self) -> Vec<UserRow> {
        let mut names: Vec<String> = self.file.users().unwrap_or_default();
        if let Some(db) = &self.db {
            names.extend(db.rows().filter(|r| r.hash.is_some()).map(|r| r.name.clone()));
        }
        names.sort();
        names.dedup();
        names.iter().filter_map(|n| self.row(n)).collect()
    }

    fn db(&mut self) -> Option<&mut UserDb> {
        self.db.as_mut()
    }

    fn in_file(&self, user: &str) -> bool {
        self.file.contains(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path, file: &str, roles: &[(&str, Role)]) -> UserStore {
        std::fs::write(dir.join("htpasswd"), file).unwrap_or_else(|e| panic!("{e}"));
        let db = UserDb::open(&dir.join("users.db")).unwrap_or_else(|e| panic!("{e}"));
        let roles = roles.iter().map(|(n, r)| ((*n).to_owned(), *r)).collect();
        UserStore::new(HtpasswdFile::new(dir.join("htpasswd")), Some(db), roles)
    }

    #[test]
    fn the_files_users_are_adopted_with_their_roles_and_keep_the_files_passwords() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut s = store(dir.path(), "admin:x\nvic:y\n", &[("vic", Role::Viewer)]);
        assert!(s.reload());
        assert_eq!(s.role("vic"), Some(Role::Viewer));
        assert_eq!(s.role("admin"), Some(Role::Admin));
        assert_eq!(s.hash("vic").as_deref(), Some("y"));
        // A role set in the database wins over the config; the file keeps the password.
        if let Some(db) = s.db() {
            let mut r = UserRow::new("vic", Role::Operator);
            r.hash = Some("ignored".into());
            db.put(&r).unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(s.reload());
        assert_eq!((s.role("vic"), s.hash("vic").as_deref()), (Some(Role::Operator), Some("y")));
        // A user of the database alone; a locked one has no password.
        if let Some(db) = s.db() {
            let mut r = UserRow::new("bob", Role::Operator);
            r.hash = Some("z".into());
            db.put(&r).unwrap_or_else(|e| panic!("{e}"));
            let mut l = UserRow::new("admin", Role::Admin);
            l.locked = true;
            db.put(&l).unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(s.reload());
        assert_eq!(s.hash("bob").as_deref(), Some("z"));
        assert_eq!(s.hash("admin"), None, "locked");
        assert!(!s.contains("admin"));
        assert_eq!(s.users(), Some(vec!["admin".into(), "bob".into(), "vic".into()]));
        // Reopened: the same.
        drop(s);
        let mut s = store(dir.path(), "admin:x\nvic:y\n", &[]);
        s.reload();
        assert_eq!((s.role("vic"), s.hash("bob").as_deref(), s.hash("admin")), (Some(Role::Operator), Some("z"), None));
    }

    #[test]
    fn a_row_without_a_password_or_file_entry_is_no_user() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut s = store(dir.path(), "admin:x\n", &[]);
        s.reload();
        std::fs::write(dir.path().join("htpasswd"), "").unwrap_or_else(|e| panic!("{e}"));
        assert!(s.reload());
        assert_eq!(s.row("admin"), None, "removed from the file: gone, though its row remains");
        assert_eq!(s.users(), Some(vec![]));
    }
}
