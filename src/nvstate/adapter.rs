//! The engine's NV seam on top of the sealed state: [`VtpmState`] is an
//! [`NvStorage`], so every blob libtpms stores or deletes becomes one
//! durable commit (or none, if the blob did not change), and a load returns
//! the current authentic blob.

use alloc::string::ToString;
use alloc::vec::Vec;

use super::backend::SlotStore;
use super::entropy::EntropySource;
use super::payload::PayloadError;
use super::rollback::GenerationGuard;
use super::state::{StateError, VtpmState};
use crate::engine::{NvStorage, StorageError};

fn storage_error(e: StateError) -> StorageError {
    match e {
        StateError::Payload(PayloadError::TooLarge { .. } | PayloadError::TooManyEntries) => {
            StorageError::Full
        }
        // Everything else, including a durable commit the guard did not
        // record: the TPM must not carry on as if all were well.
        e => StorageError::Backend(e.to_string()),
    }
}

impl<S: SlotStore, G: GenerationGuard, E: EntropySource> NvStorage for VtpmState<S, G, E> {
    fn load(&mut self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.blob(name).map(<[u8]>::to_vec))
    }

    fn store(&mut self, name: &str, data: &[u8]) -> Result<(), StorageError> {
        self.put(name, data).map(|_| ()).map_err(storage_error)
    }

    fn delete(&mut self, name: &str) -> Result<(), StorageError> {
        if self.blob(name).is_none() {
            return Err(StorageError::NotFound);
        }
        VtpmState::delete(self, name)
            .map(|_| ())
            .map_err(storage_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nvstate::memory::MemoryStore;
    use crate::nvstate::tests::support::{blobs, key, OsEntropy};
    use crate::nvstate::{MemoryGuard, StateBlobs};
    use alloc::vec;

    #[test]
    fn each_change_is_one_commit_and_survives_reopening() {
        let mut store = MemoryStore::default();
        let mut guard = MemoryGuard::new();
        {
            let mut s =
                VtpmState::provision(key(1), &mut store, &mut guard, OsEntropy, StateBlobs::new())
                    .unwrap();
            let nv: &mut dyn NvStorage = &mut s;
            assert_eq!(
                nv.load("permall"),
                Ok(None),
                "a provisioned TPM starts unmanufactured"
            );
            nv.store("permall", b"manufactured").unwrap();
            nv.store("permall", b"manufactured").unwrap(); // unchanged: no commit
            nv.store("volatilestate", b"suspended").unwrap();
            nv.delete("volatilestate").unwrap();
            assert_eq!(nv.delete("volatilestate"), Err(StorageError::NotFound));
            assert_eq!(s.generation(), 4);
        }
        let mut s = VtpmState::open(key(1), &mut store, &mut guard, OsEntropy).unwrap();
        assert_eq!(s.generation(), 4);
        assert_eq!(
            NvStorage::load(&mut s, "permall"),
            Ok(Some(b"manufactured".to_vec()))
        );
        assert_eq!(NvStorage::load(&mut s, "volatilestate"), Ok(None));
    }

    #[test]
    fn failures_reach_the_engine() {
        let mut store = MemoryStore::default();
        let mut guard = MemoryGuard::new();
        let mut s = VtpmState::provision(
            key(1),
            &mut store,
            &mut guard,
            OsEntropy,
            blobs(1, 10, false),
        )
        .unwrap();
        s.store_mut().cut_after(3);
        assert!(matches!(
            NvStorage::store(&mut s, "permall", b"x"),
            Err(StorageError::Backend(_))
        ));
        let mut store = MemoryStore::default();
        let mut s = VtpmState::provision(
            key(1),
            &mut store,
            MemoryGuard::new(),
            OsEntropy,
            StateBlobs::new(),
        )
        .unwrap();
        let huge = vec![0u8; crate::nvstate::payload::MAX_PAYLOAD_LEN];
        assert_eq!(
            NvStorage::store(&mut s, "permall", &huge),
            Err(StorageError::Full)
        );
        assert!(matches!(
            NvStorage::store(&mut s, "Bad", b"x"),
            Err(StorageError::Backend(_))
        ));
        s.guard_mut().set_unavailable(true);
        assert!(matches!(
            NvStorage::store(&mut s, "permall", b"y"),
            Err(StorageError::Backend(_))
        ));
    }
}
