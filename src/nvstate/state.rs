//! [`VtpmState`]: the vTPM's persistent state as a whole. Opening applies
//! the A/B and rollback rules; provisioning (manufacture) is a separate,
//! explicit step that refuses to overwrite anything; every change is one
//! crash-safe commit. Owns [`StateError`].
//!
//! A commit seals the new state as the next generation with a fresh nonce,
//! writes it to the slot that does not hold the current state, flushes, and
//! only then (the write being durable) moves the current state over and tells
//! the generation guard. A crash at any point leaves the previous state or
//! the new one readable, never neither.

use core::fmt;

use super::backend::{SlotId, SlotStore, StoreError};
use super::entropy::{EntropyError, EntropySource, Nonce, NONCE_LEN};
use super::key::StateKey;
use super::payload::{PayloadError, StateBlobs};
use super::rollback::{GenerationGuard, GuardError};
use super::seal::{self, SealError};
use super::slots::{self, OtherSlot, Refusal};

/// Why opening, provisioning or committing failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateError {
    /// The stored state is refused (see [`Refusal`]); includes "no state".
    Refused(Refusal),
    /// Provisioning refused: the slot already holds something.
    SlotOccupied {
        /// The slot.
        slot: SlotId,
    },
    /// Provisioning refused: the guard remembers a provisioned state.
    AlreadyProvisioned {
        /// Generation on record.
        recorded: u64,
    },
    /// The generation counter is at its maximum.
    GenerationExhausted,
    /// The entropy source produced a nonce already used in a slot: it is
    /// stuck, and sealing with it would reuse a GCM nonce.
    NonceRepeated,
    /// The new state does not fit the payload limits.
    Payload(PayloadError),
    /// Sealing failed.
    Seal(SealError),
    /// The storage failed; the commit's outcome is unknown.
    Store(StoreError),
    /// The generation guard failed before anything was written.
    Guard(GuardError),
    /// The commit is durable as `generation`, but the guard did not record
    /// it. The state has moved on; rollback protection lags until a later
    /// commit or open records it.
    Unrecorded {
        /// The durable generation.
        generation: u64,
        /// The guard's error.
        error: GuardError,
    },
    /// No nonce could be drawn.
    Entropy(EntropyError),
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::Refused(r) => write!(f, "{r}"),
            StateError::SlotOccupied { slot } => {
                write!(f, "refusing to provision: {slot} already holds data")
            }
            StateError::AlreadyProvisioned { recorded } => write!(
                f,
                "refusing to provision: generation {recorded} of a state was committed"
            ),
            StateError::GenerationExhausted => write!(f, "generation counter exhausted"),
            StateError::NonceRepeated => {
                write!(f, "entropy source repeated a nonce; refusing to seal")
            }
            StateError::Payload(e) => write!(f, "{e}"),
            StateError::Seal(e) => write!(f, "{e}"),
            StateError::Store(e) => write!(f, "{e}"),
            StateError::Guard(e) => write!(f, "{e}"),
            StateError::Unrecorded { generation, error } => {
                write!(
                    f,
                    "generation {generation} is durable but not recorded: {error}"
                )
            }
            StateError::Entropy(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for StateError {}

impl From<Refusal> for StateError {
    fn from(r: Refusal) -> Self {
        StateError::Refused(r)
    }
}
impl From<StoreError> for StateError {
    fn from(e: StoreError) -> Self {
        StateError::Store(e)
    }
}
impl From<PayloadError> for StateError {
    fn from(e: PayloadError) -> Self {
        StateError::Payload(e)
    }
}
impl From<SealError> for StateError {
    fn from(e: SealError) -> Self {
        StateError::Seal(e)
    }
}
impl From<EntropyError> for StateError {
    fn from(e: EntropyError) -> Self {
        StateError::Entropy(e)
    }
}

/// Where the opened state came from, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenInfo {
    /// Slot holding the state that was opened.
    pub slot: SlotId,
    /// Its generation.
    pub generation: u64,
    /// What the other slot held (an invalid one means a fallback happened).
    pub other: OtherSlot,
}

/// The outcome of a change request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// Nothing changed, nothing written.
    Unchanged,
    /// Durable as this generation.
    Committed(u64),
}

/// The vTPM's persistent state on a [`SlotStore`], guarded against rollback.
pub struct VtpmState<S: SlotStore, G: GenerationGuard, E: EntropySource> {
    key: StateKey,
    store: S,
    guard: G,
    entropy: E,
    blobs: StateBlobs,
    generation: u64,
    current: SlotId,
    /// Nonces a new seal must not repeat: those of the authentic blobs in
    /// slots A and B as far as known, and the last one drawn.
    nonces: [Option<[u8; NONCE_LEN]>; 3],
    opened: OpenInfo,
}

impl<S: SlotStore, G: GenerationGuard, E: EntropySource> fmt::Debug for VtpmState<S, G, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VtpmState")
            .field("key", &self.key)
            .field("generation", &self.generation)
            .field("current", &self.current)
            .field("blobs", &self.blobs)
            .finish_non_exhaustive()
    }
}

impl<S: SlotStore, G: GenerationGuard, E: EntropySource> VtpmState<S, G, E> {
    /// Opens the stored state, or says why it cannot be used. Never creates
    /// a state: an empty store is [`Refusal::NoState`].
    pub fn open(key: StateKey, mut store: S, mut guard: G, entropy: E) -> Result<Self, StateError> {
        let recorded = guard.recorded().map_err(StateError::Guard)?;
        let raw_a = store.read_slot(SlotId::A)?;
        let raw_b = store.read_slot(SlotId::B)?;
        let a = slots::examine(&key, raw_a.as_deref());
        let b = slots::examine(&key, raw_b.as_deref());
        let mut nonces = [None, None, None];
        for (i, c) in [&a, &b].into_iter().enumerate() {
            if let slots::SlotContent::Valid(o) = c {
                nonces[i] = Some(o.nonce);
            }
        }
        let chosen = slots::select(a, b, recorded)?;
        let generation = chosen.opened.generation;
        if recorded.is_none_or(|r| r < generation) {
            guard.record(generation).map_err(StateError::Guard)?;
        }
        Ok(Self {
            key,
            store,
            guard,
            entropy,
            blobs: chosen.opened.blobs,
            generation,
            current: chosen.slot,
            nonces,
            opened: OpenInfo {
                slot: chosen.slot,
                generation,
                other: chosen.other,
            },
        })
    }

    /// Provisions (manufactures) a new state holding `initial` as generation
    /// 1 in slot A. Refuses if either slot holds anything at all (even
    /// garbage) or the guard remembers a state: an existing state is never
    /// replaced by a fresh one.
    pub fn provision(
        key: StateKey,
        mut store: S,
        mut guard: G,
        mut entropy: E,
        initial: StateBlobs,
    ) -> Result<Self, StateError> {
        if let Some(recorded) = guard.recorded().map_err(StateError::Guard)? {
            return Err(StateError::AlreadyProvisioned { recorded });
        }
        for slot in SlotId::ALL {
            if store.read_slot(slot)?.is_some() {
                return Err(StateError::SlotOccupied { slot });
            }
        }
        let generation = 1;
        let nonce = Nonce::draw(&mut entropy)?;
        let blob = seal::seal(&key, generation, &nonce, &initial)?;
        store.write_slot(SlotId::A, &blob)?;
        store.flush()?;
        guard
            .record(generation)
            .map_err(|error| StateError::Unrecorded { generation, error })?;
        Ok(Self {
            key,
            store,
            guard,
            entropy,
            blobs: initial,
            generation,
            current: SlotId::A,
            nonces: [Some(*nonce.bytes()), None, None],
            opened: OpenInfo {
                slot: SlotId::A,
                generation,
                other: OtherSlot::Empty,
            },
        })
    }

    /// The current set of blobs.
    pub fn blobs(&self) -> &StateBlobs {
        &self.blobs
    }

    /// The current blob called `name`.
    pub fn blob(&self, name: &str) -> Option<&[u8]> {
        self.blobs.get(name)
    }

    /// The current generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The slot holding the current state.
    pub fn current_slot(&self) -> SlotId {
        self.current
    }

    /// Where the state came from when it was opened or provisioned.
    pub fn open_info(&self) -> &OpenInfo {
        &self.opened
    }

    /// The store (e.g. to inspect it in tests).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, mutably (e.g. to inject faults in tests).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// The guard.
    pub fn guard(&self) -> &G {
        &self.guard
    }

    /// The guard, mutably (e.g. to inject faults in tests).
    pub fn guard_mut(&mut self) -> &mut G {
        &mut self.guard
    }

    /// Replaces the whole set of blobs in one atomic commit and returns the
    /// new generation. Returns only once the new state is durable; on error
    /// the current state is unchanged (except [`StateError::Unrecorded`],
    /// where it is durable and current).
    pub fn commit(&mut self, next: StateBlobs) -> Result<u64, StateError> {
        let generation = self
            .generation
            .checked_add(1)
            .ok_or(StateError::GenerationExhausted)?;
        let nonce = Nonce::draw(&mut self.entropy)?;
        if self.nonces.contains(&Some(*nonce.bytes())) {
            return Err(StateError::NonceRepeated);
        }
        self.nonces[2] = Some(*nonce.bytes());
        let blob = seal::seal(&self.key, generation, &nonce, &next)?;
        let target = self.current.other();
        self.store.write_slot(target, &blob)?;
        self.store.flush()?;
        self.nonces[target.index()] = Some(*nonce.bytes());
        self.blobs = next;
        self.generation = generation;
        self.current = target;
        self.guard
            .record(generation)
            .map_err(|error| StateError::Unrecorded { generation, error })?;
        Ok(generation)
    }

    /// Sets the blob `name` to `data` (one commit), unless it already holds
    /// exactly that.
    pub fn put(&mut self, name: &str, data: &[u8]) -> Result<Commit, StateError> {
        if self.blobs.get(name) == Some(data) {
            return Ok(Commit::Unchanged);
        }
        let mut next = self.blobs.clone();
        next.insert(name, data)?;
        self.commit(next).map(Commit::Committed)
    }

    /// Removes the blob `name` (one commit), if present.
    pub fn delete(&mut self, name: &str) -> Result<Commit, StateError> {
        if self.blobs.get(name).is_none() {
            return Ok(Commit::Unchanged);
        }
        let mut next = self.blobs.clone();
        next.remove(name);
        self.commit(next).map(Commit::Committed)
    }

    /// Gives back the key, store, guard and entropy source.
    pub fn into_parts(self) -> (StateKey, S, G, E) {
        (self.key, self.store, self.guard, self.entropy)
    }
}
