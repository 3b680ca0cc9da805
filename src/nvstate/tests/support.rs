//! Shared fixtures: keys, sample states, and the OS entropy source.
pub use crate::nvstate::entropy::test_sources::{FailingEntropy, OsEntropy, StuckEntropy};
use crate::nvstate::{StateBlobs, StateKey};

pub fn key(byte: u8) -> StateKey {
    StateKey::new(&[byte; 32]).unwrap()
}

/// A state resembling the engine's: a permanent blob of `len` bytes whose
/// contents depend on `seed`, and optionally a volatile one.
pub fn blobs(seed: u8, len: usize, volatile: bool) -> StateBlobs {
    let mut s = StateBlobs::new();
    let perm: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect();
    s.insert("permall", &perm).unwrap();
    if volatile {
        s.insert("volatilestate", &[seed; 24]).unwrap();
    }
    s
}
