//! The storage seam: [`SlotStore`], two opaque slots on storage the host
//! controls, and [`StoreError`]. Implementations: `memory` (tests, with fault
//! injection), the host's directory store (`svtpm-store`), and the host
//! channel (the shared-page mailbox to the host proxy) implement the same
//! trait.
//!
//! Contract every implementation keeps:
//! - `read_slot` returns `None` for a slot that was never written and
//!   `Some(bytes)` otherwise (possibly empty or garbage: the caller validates).
//!   It may cap what it returns at [`MAX_BLOB_LEN`]` + 1` bytes.
//! - `write_slot` replaces a slot's whole contents. A crash during it may
//!   leave the slot torn (any prefix of the new bytes, over or without the old
//!   ones); it must never touch the other slot.
//! - `flush` returns only once every completed `write_slot` is durable (on
//!   the host: file data and directory entry synced). A commit is
//!   acknowledged only after `flush` returned `Ok`.
//! - Errors are reported, never hidden; after an error the outcome of the
//!   interrupted write is unknown (old, new or torn).
//!
//! [`MAX_BLOB_LEN`]: super::format::MAX_BLOB_LEN

use alloc::vec::Vec;
use core::fmt;

/// One of the two state slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SlotId {
    /// Slot A.
    A,
    /// Slot B.
    B,
}

impl SlotId {
    /// Both slots, A first.
    pub const ALL: [SlotId; 2] = [SlotId::A, SlotId::B];

    /// The other slot.
    pub fn other(self) -> SlotId {
        match self {
            SlotId::A => SlotId::B,
            SlotId::B => SlotId::A,
        }
    }

    /// 0 for A, 1 for B.
    pub fn index(self) -> usize {
        match self {
            SlotId::A => 0,
            SlotId::B => 1,
        }
    }

    /// Lower-case name ("a" or "b"), e.g. for file names.
    pub fn name(self) -> &'static str {
        match self {
            SlotId::A => "a",
            SlotId::B => "b",
        }
    }
}

impl fmt::Display for SlotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlotId::A => write!(f, "slot A"),
            SlotId::B => write!(f, "slot B"),
        }
    }
}

/// A storage operation, for error context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    /// `read_slot`.
    Read,
    /// `write_slot`.
    Write,
    /// `flush`.
    Flush,
}

/// Why a storage operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// The storage went away mid-operation (power cut, channel down); the
    /// store refuses everything until it is reopened.
    Unavailable {
        /// What was being done.
        op: StoreOp,
    },
    /// The medium reported an I/O error.
    Io {
        /// What was being done.
        op: StoreOp,
        /// The slot concerned, if any.
        slot: Option<SlotId>,
        /// Operating-system or transport error code (0 if none).
        code: i32,
    },
    /// The data exceeds what the store accepts.
    TooLarge {
        /// Size offered.
        len: usize,
        /// Largest size accepted.
        max: usize,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable { op } => write!(f, "storage unavailable during {op:?}"),
            StoreError::Io {
                op,
                slot: Some(s),
                code,
            } => {
                write!(f, "storage I/O error {code} during {op:?} of {s}")
            }
            StoreError::Io {
                op,
                slot: None,
                code,
            } => {
                write!(f, "storage I/O error {code} during {op:?}")
            }
            StoreError::TooLarge { len, max } => {
                write!(f, "{len} bytes exceed the store's limit of {max}")
            }
        }
    }
}

impl core::error::Error for StoreError {}

/// Two state slots on untrusted storage (see the module docs for the
/// contract).
pub trait SlotStore {
    /// The slot's contents; `None` if it was never written.
    fn read_slot(&mut self, slot: SlotId) -> Result<Option<Vec<u8>>, StoreError>;
    /// Replaces the slot's contents.
    fn write_slot(&mut self, slot: SlotId, data: &[u8]) -> Result<(), StoreError>;
    /// Makes every completed write durable.
    fn flush(&mut self) -> Result<(), StoreError>;
}

impl<T: SlotStore + ?Sized> SlotStore for &mut T {
    fn read_slot(&mut self, slot: SlotId) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).read_slot(slot)
    }
    fn write_slot(&mut self, slot: SlotId, data: &[u8]) -> Result<(), StoreError> {
        (**self).write_slot(slot, data)
    }
    fn flush(&mut self) -> Result<(), StoreError> {
        (**self).flush()
    }
}
