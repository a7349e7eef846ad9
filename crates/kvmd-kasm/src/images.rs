//! The targets this KVM controls, as Kasm's "images": one today (the machine behind it),
//! with a random id made on first start and the metadata `update_image` sets, kept in one
//! small JSON file (written atomically: `kvmd_core::fs::write_atomic`).

use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// A target's metadata.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Image {
    /// 32 lowercase hex.
    pub image_id: String,
    /// Its name for people.
    pub friendly_name: String,
    /// A short name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Whether it is offered.
    pub enabled: bool,
    /// Kasm's, stored and echoed (a physical machine cannot be resized).
    pub cores: u64,
    /// Kasm's, stored and echoed.
    pub memory: u64,
    /// The KVM port it is on.
    pub kvm_port: u32,
}

impl Image {
    fn first() -> Self {
        let mut raw = [0u8; 16];
        if getrandom::fill(&mut raw).is_err() {
            panic!("the operating system gave no random bytes");
        }
        Self {
            image_id: hex::encode(raw),
            friendly_name: "The target machine".into(),
            name: "kvm-port-1".into(),
            description: String::new(),
            enabled: true,
            cores: 0,
            memory: 0,
            kvm_port: 1,
        }
    }
}

/// The images, in memory and in their file.
#[derive(Debug)]
pub struct Images {
    path: PathBuf,
    images: Mutex<Vec<Image>>,
}

impl Images {
    /// Reads `path`, or makes the first image (and writes it) when there is none.
    pub fn open(path: PathBuf) -> Self {
        let read = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Vec<Image>>(&b).ok());
        let images = match read {
            Some(v) if !v.is_empty() => v,
            _ => vec![Image::first()],
        };
        let me = Self { path, images: Mutex::new(images) };
        me.persist();
        me
    }

    /// Every image.
    pub fn list(&self) -> Vec<Image> {
        self.images.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Image `id`.
    pub fn get(&self, id: &str) -> Option<Image> {
        self.list().into_iter().find(|i| i.image_id == id)
    }

    /// Changes image `id` with `change`; the image after it, or `None` for an unknown id.
    pub fn update(&self, id: &str, change: impl FnOnce(&mut Image)) -> Option<Image> {
        let out = {
            let mut images = self.images.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let image = images.iter_mut().find(|i| i.image_id == id)?;
            change(image);
            image.clone()
        };
        self.persist();
        Some(out)
    }

    fn persist(&self) {
        let bytes = serde_json::to_vec_pretty(&self.list()).unwrap_or_default();
        let result = self
            .path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| kvmd_core::fs::write_atomic(&self.path, &bytes));
        if let Err(e) = result {
            tracing::error!(path = %self.path.display(), error = %e, "cannot write the images; changes live in memory only");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_image_is_made_once_and_changes_survive() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("images.json");
        let a = Images::open(path.clone());
        let id = a.list()[0].image_id.clone();
        assert_eq!(id.len(), 32);
        assert!(a.update(&id, |i| i.friendly_name = "Build server".into()).is_some());
        assert!(a.update("nope", |_| {}).is_none());
        let b = Images::open(path);
        assert_eq!((b.list().len(), b.get(&id).map(|i| i.friendly_name)), (1, Some("Build server".into())));
    }
}
