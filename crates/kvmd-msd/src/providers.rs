//! Storage providers: where images for the virtual drive come from, for `write_remote`
//! (the Kasm-style API's `create_storage_provider` and `get_storage_providers`, spec
//! `compat-blikvm-kasm.md` B.4.2). A provider is a base URL (`http`, or a WebDAV or
//! Nextcloud share, fetched with a plain GET) or a directory of the device (`local`, e.g. a
//! mounted USB stick or NFS share); `write_remote?provider=<id>&url=<file>` then takes the
//! file's path inside it, which can never leave it. The list is kept in one JSON file
//! (written whole, atomically). The suite keeps no secret of a provider: a URL with
//! credentials in it is refused.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use kvmd_core::ApiError;
use kvmd_core::valid;
use serde::{Deserialize, Serialize};

/// At most this many providers.
pub const MAX: usize = 64;

/// What a provider is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Files under an `http://` or `https://` base URL.
    Http,
    /// A WebDAV share (files fetched with GET under its URL).
    Webdav,
    /// A Nextcloud share (the same, under `nextcloud_url`).
    Nextcloud,
    /// A directory of the device.
    Local,
}

impl Kind {
    /// Every kind, by its name.
    pub const NAMES: &[&str] = &["http", "webdav", "nextcloud", "local"];

    /// The kind named `s`.
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "http" => Some(Kind::Http),
            "webdav" => Some(Kind::Webdav),
            "nextcloud" => Some(Kind::Nextcloud),
            "local" => Some(Kind::Local),
            _ => None,
        }
    }
}

/// One provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provider {
    /// 32 hex digits.
    pub id: String,
    /// What it is.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// Its name.
    pub name: String,
    /// Whether `write_remote` may use it.
    pub enabled: bool,
    /// The base URL (ending in `/`) of a URL provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The directory of a `local` one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

/// Where `write_remote` reads a provider's file from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// This URL.
    Url(String),
    /// This file.
    File(PathBuf),
}

/// The providers, and the file that keeps them.
#[derive(Debug)]
pub struct Providers {
    path: PathBuf,
    list: Mutex<Vec<Provider>>,
}

fn bad(value: &str, what: &str) -> ApiError {
    valid::invalid_error(value, what)
}

impl Providers {
    /// The providers kept at `path` (none when it does not exist; a file that cannot be read
    /// is logged and starts empty, and is only replaced by the next change).
    pub fn open(path: PathBuf) -> Self {
        let list = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::error!(path = %path.display(), error = %e, "unreadable storage providers; starting without");
                Vec::new()
            }),
            Err(_) => Vec::new(),
        };
        Self { path, list: Mutex::new(list) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Provider>> {
        self.list.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every provider.
    pub fn list(&self) -> Vec<Provider> {
        self.lock().clone()
    }

    /// Adds a provider of `kind` named `name` at `location` (a URL, or a directory for
    /// `local`); `storage` is the image storage, which no `local` provider may be in.
    pub fn create(
        &self,
        kind: Kind,
        name: Option<&str>,
        location: &str,
        enabled: bool,
        storage: &Path,
    ) -> Result<Provider, ApiError> {
        let (url, path) = match kind {
            Kind::Local => (None, Some(directory(location, storage)?)),
            _ => (Some(base_url(location)?), None),
        };
        let name = match name.map(str::trim).filter(|n| !n.is_empty()) {
            Some(n) if n.chars().count() > 128 || n.chars().any(char::is_control) => {
                return Err(bad(n, "storage provider name"));
            }
            Some(n) => n.to_owned(),
            None => location.trim().to_owned(),
        };
        let mut raw = [0u8; 16];
        getrandom::fill(&mut raw).map_err(ApiError::internal)?;
        let p = Provider { id: hex::encode(raw), kind, name, enabled, url, path };
        let mut list = self.lock();
        if list.len() >= MAX {
            return Err(ApiError::operation("StorageProvidersFullError", format!("At most {MAX} storage providers")));
        }
        list.push(p.clone());
        let text = serde_json::to_vec_pretty(&*list).map_err(ApiError::internal)?;
        if let Err(e) = kvmd_core::fs::write_atomic(&self.path, &text) {
            list.pop();
            return Err(ApiError::internal(format!("cannot write {}: {e}", self.path.display())));
        }
        tracing::info!(id = %p.id, kind = ?p.kind, "storage provider added");
        Ok(p)
    }

    /// Where file `file` of provider `id` is: never outside the provider.
    pub fn resolve(&self, id: &str, file: &str) -> Result<Source, ApiError> {
        let p = self.lock().iter().find(|p| p.id == id).cloned().ok_or_else(|| bad(id, "storage provider"))?;
        if !p.enabled {
            return Err(ApiError::operation("StorageProviderDisabledError", "This storage provider is disabled"));
        }
        let rel = file.trim();
        let ok = !rel.is_empty()
            && !rel.starts_with('/')
            && !rel.contains('\0')
            && !rel.contains('\\')
            && rel.split('/').all(|s| !s.is_empty() && s != "." && s != "..");
        if !ok {
            return Err(bad(rel, "file of the storage provider"));
        }
        match (&p.url, &p.path) {
            (Some(base), _) => {
                let encoded: Vec<String> = rel.split('/').map(kvmd_core::query::encode).collect();
                // A form's encoding writes a space as `+`; a path wants `%20`.
                Ok(Source::Url(format!("{base}{}", encoded.join("/").replace('+', "%20"))))
            }
            (None, Some(dir)) => {
                let full = dir.join(rel).canonicalize().map_err(|_| bad(rel, "file of the storage provider"))?;
                if !full.starts_with(dir) || !full.is_file() {
                    return Err(bad(rel, "file of the storage provider"));
                }
                Ok(Source::File(full))
            }
            (None, None) => Err(ApiError::internal("a provider with no location")),
        }
    }
}

/// A provider's base URL: http or https, no credentials, ending in `/`.
fn base_url(location: &str) -> Result<String, ApiError> {
    let v = crate::name::url(Some(location))?;
    let u = reqwest::Url::parse(&v).map_err(|_| bad(&v, "HTTP|HTTPS URL"))?;
    if !u.username().is_empty() || u.password().is_some() || u.query().is_some() || u.fragment().is_some() {
        return Err(bad(&v, "storage provider URL without credentials, query or fragment"));
    }
    let mut s = u.to_string();
    if !s.ends_with('/') {
        s.push('/');
    }
    Ok(s)
}

/// A `local` provider's directory: absolute, existing, and not the image storage or in it.
fn directory(location: &str, storage: &Path) -> Result<PathBuf, ApiError> {
    let v = location.trim();
    let p = Path::new(v);
    if !p.is_absolute() {
        return Err(bad(v, "absolute directory"));
    }
    let dir = p.canonicalize().map_err(|_| bad(v, "existing directory"))?;
    if !dir.is_dir() {
        return Err(bad(v, "existing directory"));
    }
    let store = storage.canonicalize().unwrap_or_else(|_| storage.to_path_buf());
    if dir.starts_with(&store) || store.starts_with(&dir) {
        return Err(bad(v, "directory outside the image storage"));
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_are_kept_validated_and_confined() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let storage = t.path().join("msd");
        let isos = t.path().join("isos");
        for d in [&storage, &isos.join("sub")] {
            std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(isos.join("sub/a b.iso"), b"x").unwrap_or_else(|e| panic!("{e}"));
        let file = t.path().join("providers.json");
        let ps = Providers::open(file.clone());
        let web = ps.create(Kind::Nextcloud, None, "https://cloud.example.com/s/x", true, &storage);
        let web = web.unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(web.url.as_deref(), Some("https://cloud.example.com/s/x/"));
        assert_eq!(web.name, "https://cloud.example.com/s/x");
        let local = ps.create(Kind::Local, Some("ISOs"), isos.to_str().unwrap_or(""), true, &storage);
        let local = local.unwrap_or_else(|e| panic!("{e:?}"));
        // Kept across a restart.
        assert_eq!(Providers::open(file).list(), vec![web.clone(), local.clone()]);
        assert_eq!(
            ps.resolve(&web.id, "sub/a b.iso"),
            Ok(Source::Url("https://cloud.example.com/s/x/sub/a%20b.iso".into()))
        );
        assert!(matches!(ps.resolve(&local.id, "sub/a b.iso"), Ok(Source::File(_))));
        for escape in ["../x", "/etc/passwd", "sub/../../x", "", "sub//a", "missing.iso"] {
            assert!(ps.resolve(&local.id, escape).is_err(), "{escape}");
        }
        assert!(ps.resolve("nope", "x").is_err());
        for (kind, at) in [
            (Kind::Http, "ftp://x"),
            (Kind::Http, "https://user:pw@x/"),
            (Kind::Http, "https://x/?token=1"),
            (Kind::Local, "relative"),
            (Kind::Local, "/no/such/dir"),
            (Kind::Local, storage.to_str().unwrap_or("")),
            (Kind::Local, t.path().to_str().unwrap_or("")),
        ] {
            assert!(ps.create(kind, None, at, true, &storage).is_err(), "{kind:?} {at}");
        }
        let off = ps.create(Kind::Http, Some("off"), "http://mirror.local/isos", false, &storage);
        let off = off.unwrap_or_else(|e| panic!("{e:?}"));
        assert!(ps.resolve(&off.id, "x.iso").is_err(), "a disabled provider is used");
    }
}
