//! Where the engine's NV state goes: the [`NvStorage`] trait that libtpms'
//! NV callbacks are routed to, and [`MemStorage`], an in-memory store for
//! tests and for images without persistence.
//!
//! libtpms names its blobs (`permall` for the permanent state,
//! `volatilestate` for a suspended TPM); a store keeps them by name and
//! returns exactly the bytes it was given.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

/// Why a storage operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageError {
    /// `delete` of a blob that does not exist.
    NotFound,
    /// The store has no room for the blob.
    Full,
    /// The backing store failed; the text says how (for logs).
    Backend(String),
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::NotFound => write!(f, "no such blob"),
            StorageError::Full => write!(f, "storage full"),
            StorageError::Backend(why) => write!(f, "storage backend failed: {why}"),
        }
    }
}

impl core::error::Error for StorageError {}

/// Persistent storage for the TPM's named state blobs.
///
/// `store` must not return `Ok` before the blob is durable: the TPM
/// acknowledges NV writes to the guest only after `store` succeeded.
pub trait NvStorage {
    /// The blob called `name`, or `None` if it was never stored (or deleted).
    fn load(&mut self, name: &str) -> Result<Option<Vec<u8>>, StorageError>;
    /// Stores (replaces) the blob called `name`.
    fn store(&mut self, name: &str, data: &[u8]) -> Result<(), StorageError>;
    /// Deletes the blob called `name`; [`StorageError::NotFound`] if absent.
    fn delete(&mut self, name: &str) -> Result<(), StorageError>;
}

/// An in-memory [`NvStorage`]. Clones share the same blobs, so a test can
/// keep a handle to inspect the state or to start a new engine on it after
/// a power cycle.
#[derive(Debug, Clone, Default)]
pub struct MemStorage {
    blobs: Arc<spin::Mutex<BTreeMap<String, Vec<u8>>>>,
}

impl MemStorage {
    /// An empty store (a TPM that was never manufactured).
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the blob called `name`, if stored.
    pub fn get(&self, name: &str) -> Option<Vec<u8>> {
        self.blobs.lock().get(name).cloned()
    }

    /// The names of the stored blobs, sorted.
    pub fn names(&self) -> Vec<String> {
        self.blobs.lock().keys().cloned().collect()
    }

    /// Stores `data` as `name` directly (e.g. to plant a damaged blob).
    pub fn insert(&self, name: &str, data: &[u8]) {
        self.blobs.lock().insert(name.to_string(), data.to_vec());
    }

    /// Removes every blob.
    pub fn clear(&self) {
        self.blobs.lock().clear();
    }
}

impl NvStorage for MemStorage {
    fn load(&mut self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.get(name))
    }

    fn store(&mut self, name: &str, data: &[u8]) -> Result<(), StorageError> {
        self.insert(name, data);
        Ok(())
    }

    fn delete(&mut self, name: &str) -> Result<(), StorageError> {
        match self.blobs.lock().remove(name) {
            Some(_) => Ok(()),
            None => Err(StorageError::NotFound),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_load_delete_round_trip() {
        let mut s = MemStorage::new();
        assert_eq!(s.load("permall"), Ok(None));
        s.store("permall", b"abc").unwrap();
        assert_eq!(s.load("permall"), Ok(Some(b"abc".to_vec())));
        s.store("permall", b"de").unwrap();
        assert_eq!(s.load("permall"), Ok(Some(b"de".to_vec())));
        s.delete("permall").unwrap();
        assert_eq!(s.load("permall"), Ok(None));
        assert_eq!(s.delete("permall"), Err(StorageError::NotFound));
    }

    #[test]
    fn clones_share_blobs() {
        let mut a = MemStorage::new();
        let b = a.clone();
        a.store("volatilestate", &[1, 2, 3]).unwrap();
        assert_eq!(b.get("volatilestate"), Some(vec![1, 2, 3]));
        assert_eq!(b.names(), vec!["volatilestate".to_string()]);
        b.clear();
        assert_eq!(a.load("volatilestate"), Ok(None));
    }
}
