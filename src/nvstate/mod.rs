//! Persistent, encrypted, rollback-aware vTPM state.
//!
//! The engine's named state blobs (`permall`, `volatilestate`) are kept as
//! one set, sealed with AES-256-GCM under a key only the key broker
//! releases, and written alternately to two slots on storage the host
//! controls. The newest authentic slot wins; a torn or damaged slot falls
//! back to the other; a generation counter, remembered by a guard the host
//! cannot forge, refuses rollbacks. Every refusal is an explicit error: the
//! vTPM never starts on a fresh state unless it is provisioned on purpose.
//! The byte layout and the rules are in `docs/state-format.md`.
//!
//! Parts:
//! - [`key`]: the state key and what is derived from it;
//! - [`entropy`]: nonce sources;
//! - [`payload`]: the set of named blobs and its encoding;
//! - [`format`]: the sealed blob's layout and structural checks;
//! - [`seal`]: sealing and opening one blob;
//! - [`backend`]: the two-slot storage seam; [`memory`]: an in-memory store
//!   that can lose power at any byte;
//! - [`rollback`]: the generation guard;
//! - [`slots`]: the A/B selection rule;
//! - [`state`]: [`VtpmState`], open / provision / commit;
//! - [`adapter`]: [`VtpmState`] as the engine's `NvStorage`.

pub mod adapter;
pub mod backend;
pub mod entropy;
pub mod format;
pub mod key;
pub mod memory;
pub mod payload;
pub mod rollback;
pub mod seal;
pub mod slots;
pub mod state;

#[cfg(test)]
pub(crate) mod tests;

pub use backend::{SlotId, SlotStore, StoreError};
pub use entropy::{EntropyError, EntropySource};
pub use format::BlobError;
pub use key::{KeyId, StateKey};
pub use payload::StateBlobs;
pub use rollback::{GenerationGuard, GuardError, MemoryGuard};
pub use slots::Refusal;
pub use state::{Commit, StateError, VtpmState};
