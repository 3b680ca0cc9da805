//! Why the unlock sequence stopped: [`UnlockError`], naming the [`Stage`]
//! that failed and the precise reason from the layer below.

use alloc::string::String;
use core::fmt;

use crate::attest::kbs::KbsError;
use crate::nvstate::key::KeyError;
use crate::nvstate::{GuardError, StateError};

/// The steps of the sequence, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Reaching the host (the channel to the proxy).
    HostChannel,
    /// Proving the image to the key broker.
    Attestation,
    /// Obtaining the state key.
    Key,
    /// Opening (or provisioning) the sealed state.
    State,
}

impl Stage {
    /// The stage's name as the console shows it.
    pub fn name(self) -> &'static str {
        match self {
            Stage::HostChannel => "host channel",
            Stage::Attestation => "attestation",
            Stage::Key => "key release",
            Stage::State => "state",
        }
    }
}

/// Why the sequence stopped. Nothing was written when it did: the state
/// is as it was.
#[derive(Debug)]
pub enum UnlockError {
    /// The host channel could not be set up.
    HostChannel(String),
    /// The broker refused the evidence (final; not retried).
    AttestationRefused(KbsError),
    /// Attestation failed on every attempt.
    AttestationFailed {
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error.
        last: KbsError,
    },
    /// The broker refused to release the state key (final).
    KeyRefused(KbsError),
    /// Fetching the key failed on every attempt.
    KeyFailed {
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error.
        last: KbsError,
    },
    /// No random bytes for the TEE key.
    Entropy(KbsError),
    /// The released key is not a state key.
    BadKey(KeyError),
    /// The broker's generation record could not be read.
    Record {
        /// Attempts made.
        attempts: u32,
        /// The last error.
        last: KbsError,
    },
    /// The stored state was refused (tampered, rolled back, wrong key,
    /// missing, ...), or provisioning was refused.
    State(StateError),
}

impl UnlockError {
    /// The stage that failed.
    pub fn stage(&self) -> Stage {
        match self {
            UnlockError::HostChannel(_) => Stage::HostChannel,
            UnlockError::Entropy(_)
            | UnlockError::AttestationRefused(_)
            | UnlockError::AttestationFailed { .. } => Stage::Attestation,
            UnlockError::KeyRefused(_) | UnlockError::KeyFailed { .. } | UnlockError::BadKey(_) => {
                Stage::Key
            }
            UnlockError::Record { .. } | UnlockError::State(_) => Stage::State,
        }
    }
}

impl fmt::Display for UnlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnlockError::HostChannel(why) => write!(f, "{why}"),
            UnlockError::AttestationRefused(e) => write!(f, "the key broker refused: {e}"),
            UnlockError::AttestationFailed { attempts, last } => {
                write!(f, "gave up after {attempts} attempts; last: {e}", e = last)
            }
            UnlockError::KeyRefused(e) => {
                write!(f, "the key broker refused to release the state key: {e}")
            }
            UnlockError::KeyFailed { attempts, last } => write!(
                f,
                "state key not obtained after {attempts} attempts; last: {last}"
            ),
            UnlockError::Entropy(e) => write!(f, "no TEE key: {e}"),
            UnlockError::BadKey(e) => write!(f, "the released state key is unusable: {e:?}"),
            UnlockError::Record { attempts, last } => write!(
                f,
                "the broker's generation record is unavailable after {attempts} attempts; last: {last}"
            ),
            UnlockError::State(StateError::Guard(GuardError::Unavailable)) => write!(
                f,
                "the broker's generation record is unavailable (see the warning above)"
            ),
            UnlockError::State(e) => write!(f, "{e}"),
        }
    }
}
