//! Caps on what a client can hold open or in flight (WebSocket sessions, MJPEG clients,
//! log followers, print bodies): a taken [`Permit`] is one place, given back when dropped;
//! when every place is taken the request is refused at once with kvmd's 503
//! `UnavailableError` (never queued). [`PerKey`] adds a cap per user under the total one.
//! Built on tokio's semaphore.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// A cap of `n` places (0 = no place at all).
#[derive(Debug, Clone)]
pub struct Limit {
    places: Arc<Semaphore>,
    what: &'static str,
}

/// One taken place; dropping it gives it back.
#[derive(Debug)]
pub struct Permit {
    _total: OwnedSemaphorePermit,
    _key: Option<KeyPlace>,
}

impl Limit {
    /// A cap of `n` places for `what` (named in the log when full).
    pub fn new(n: usize, what: &'static str) -> Self {
        Self { places: Arc::new(Semaphore::new(n.min(Semaphore::MAX_PERMITS))), what }
    }

    /// Takes a place, or kvmd's 503 when none is free.
    pub fn take(&self) -> Result<Permit, ApiError> {
        match self.places.clone().try_acquire_owned() {
            Ok(p) => Ok(Permit { _total: p, _key: None }),
            Err(_) => {
                tracing::warn!("too many {}: refused", self.what);
                Err(ApiError::unavailable())
            }
        }
    }

    /// The places free now.
    pub fn free(&self) -> usize {
        self.places.available_permits()
    }
}

/// A total cap and a cap per key (a user) under it.
#[derive(Debug, Clone)]
pub struct PerKey {
    total: Limit,
    per_key: usize,
    held: Arc<Mutex<HashMap<String, usize>>>,
}

/// A key's place, given back when dropped.
#[derive(Debug)]
struct KeyPlace {
    key: String,
    held: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for KeyPlace {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = held.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.key);
            }
        }
    }
}

impl PerKey {
    /// `total` places, at most `per_key` of them for one key.
    pub fn new(total: usize, per_key: usize, what: &'static str) -> Self {
        Self { total: Limit::new(total, what), per_key, held: Arc::default() }
    }

    /// Takes a place for `key`, or kvmd's 503 when the key's or the total cap is reached.
    pub fn take(&self, key: &str) -> Result<Permit, ApiError> {
        let place = {
            let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let n = held.entry(key.to_owned()).or_insert(0);
            if *n >= self.per_key {
                tracing::warn!(key, "too many {} of one user: refused", self.total.what);
                return Err(ApiError::unavailable());
            }
            *n += 1;
            KeyPlace { key: key.to_owned(), held: self.held.clone() }
        };
        // A refusal here drops `place`, which gives the key's place back.
        let permit = self.total.take()?;
        Ok(Permit { _key: Some(place), ..permit })
    }
}

/// `stream`, holding `permit` until the stream is dropped (a response body: until its
/// client has gone).
pub fn holding<S: futures_util::Stream>(
    stream: S,
    permit: Option<Permit>,
) -> impl futures_util::Stream<Item = S::Item> {
    use futures_util::StreamExt;
    stream.map(move |item| {
        let _held = &permit;
        item
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_refused_when_taken_and_come_back_when_dropped() {
        let l = Limit::new(2, "things");
        let a = l.take();
        let b = l.take();
        assert!(a.is_ok() && b.is_ok());
        let c = l.take().err().map(|e| (e.status().as_u16(), e.name));
        assert_eq!(c, Some((503, "UnavailableError".into())));
        drop(a);
        assert!(l.take().is_ok());
        assert!(Limit::new(0, "nothing").take().is_err());
    }

    #[test]
    fn one_key_cannot_take_every_place() {
        let l = PerKey::new(3, 2, "prints");
        let a1 = l.take("alice");
        let a2 = l.take("alice");
        assert!(a1.is_ok() && a2.is_ok());
        assert!(l.take("alice").is_err(), "alice's own cap");
        let b1 = l.take("bob");
        assert!(b1.is_ok());
        assert!(l.take("carol").is_err(), "the total cap");
        assert!(l.take("alice").is_err());
        drop(a1);
        // alice's place came back, and the total's: the key's count was not left behind.
        let a3 = l.take("alice");
        assert!(a3.is_ok());
        drop((a2, a3, b1));
        assert!(l.held.lock().map(|h| h.is_empty()).unwrap_or(false));
        let (x, y, z) = (l.take("x"), l.take("y"), l.take("z"));
        assert!(x.is_ok() && y.is_ok() && z.is_ok());
    }
}
