//! The early-boot unlock sequence: attestation -> key -> sealed state.
//!
//! Before the engine starts, [`unlock`] proves the image to the guest
//! owner's key broker (Trustee's protocol, `attest::kbs`, with SNP evidence
//! from the PSP), fetches the vTPM's state key, reads the broker's
//! generation record and then either opens the sealed state or, only when
//! the broker has no record of this vTPM, provisions a new one (which
//! itself refuses if the store holds anything). The result is the
//! [`VtpmState`] the engine runs on, guarded by a [`BrokerGuard`] that
//! records every new generation with the broker for the life of the guest.
//!
//! Pure over its seams — a [`Transport`] to the broker, an
//! [`EvidenceSource`], a [`SlotStore`], an [`EntropySource`] and a
//! [`Clock`] — so it runs in host tests; the image plugs in the host
//! channel and the PSP. Transient failures (the broker or the way to it
//! unavailable, a garbled exchange) are retried a bounded number of times
//! with backoff; refusals are final. Whatever fails, nothing is written:
//! the state is untouched.

mod error;
mod guard;
pub mod retry;
#[cfg(test)]
mod tests;

use log::info;
use zeroize::Zeroizing;

pub use error::{Stage, UnlockError};
pub use guard::BrokerGuard;
use retry::Attempts;

use crate::attest::kbs::{exchange, EvidenceSource, KbsClient, KbsError, Transport, VtpmId};
use crate::nvstate::{EntropySource, SlotId, SlotStore, StateBlobs, StateKey, VtpmState};

/// Time, and waiting, for the backoff and the timings.
pub trait Clock {
    /// Milliseconds since an arbitrary start.
    fn now_ms(&self) -> u64;
    /// Waits `ms` milliseconds.
    fn sleep_ms(&self, ms: u64);
}

/// What to unlock and how hard to try.
#[derive(Clone, Debug)]
pub struct Config {
    /// The vTPM.
    pub id: VtpmId,
    /// Attempts per broker step (at least one).
    pub attempts: u32,
    /// The first wait between attempts, doubled each time.
    pub backoff_ms: u64,
}

/// How the state was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An existing state was opened.
    Opened {
        /// Its generation.
        generation: u64,
        /// The slot it came from.
        slot: SlotId,
    },
    /// The broker had no record of the vTPM and both slots were empty: a
    /// new vTPM was provisioned as generation 1.
    Provisioned,
}

/// Milliseconds spent in each stage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timings {
    /// Auth and attest, with retries.
    pub attestation_ms: u64,
    /// The state key's release.
    pub key_ms: u64,
    /// The generation record and opening (or provisioning) the state.
    pub state_ms: u64,
}

/// The sealed state as the engine uses it.
pub type SealedState<S, T, V, E> = VtpmState<S, BrokerGuard<T, V, E>, E>;

/// The result of a successful [`unlock`].
pub struct Unlocked<S: SlotStore, T: Transport, V: EvidenceSource, E: EntropySource> {
    /// The opened state.
    pub state: SealedState<S, T, V, E>,
    /// Opened or provisioned.
    pub outcome: Outcome,
    /// Where the time went.
    pub timings: Timings,
}

impl<S: SlotStore, T: Transport, V: EvidenceSource, E: EntropySource> core::fmt::Debug
    for Unlocked<S, T, V, E>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Unlocked")
            .field("outcome", &self.outcome)
            .field("timings", &self.timings)
            .finish_non_exhaustive()
    }
}

fn settle<R>(
    r: Attempts<R>,
    refused: fn(KbsError) -> UnlockError,
    failed: fn(u32, KbsError) -> UnlockError,
) -> Result<R, UnlockError> {
    match r {
        Attempts::Done(v) => Ok(v),
        Attempts::Final(e) => Err(refused(e)),
        Attempts::Exhausted { attempts, last } => Err(failed(attempts, last)),
    }
}

/// Runs the sequence; see the module documentation.
pub fn unlock<S, T, V, E>(
    config: &Config,
    clock: &dyn Clock,
    store: S,
    mut transport: T,
    mut evidence: V,
    mut entropy: E,
) -> Result<Unlocked<S, T, V, E>, UnlockError>
where
    S: SlotStore,
    T: Transport,
    V: EvidenceSource,
    E: EntropySource + Clone,
{
    let id = config.id.as_str();
    let t0 = clock.now_ms();
    let mut client = KbsClient::new(&mut entropy).map_err(UnlockError::Entropy)?;
    info!("attesting to the key broker as vTPM {id}");
    let attested = retry::attempts(
        "attestation",
        config.attempts,
        config.backoff_ms,
        clock,
        || exchange::attest(&mut client, &mut transport, &mut evidence),
    );
    settle(
        attested,
        UnlockError::AttestationRefused,
        |attempts, last| UnlockError::AttestationFailed { attempts, last },
    )?;
    let t1 = clock.now_ms();
    info!("attested in {} ms; asking for the state key", t1 - t0);

    let path = config.id.state_key_path();
    let fetched = retry::attempts(
        "state key",
        config.attempts,
        config.backoff_ms,
        clock,
        || exchange::fetch(&client, &mut transport, &path),
    );
    let secret = settle(fetched, UnlockError::KeyRefused, |attempts, last| {
        UnlockError::KeyFailed { attempts, last }
    })?;
    let key = StateKey::from_slice(secret.expose()).map_err(UnlockError::BadKey)?;
    let master = Zeroizing::new(secret.expose().to_vec());
    drop(secret);
    let t2 = clock.now_ms();
    info!("state key released in {} ms", t2 - t1);

    let mut guard = BrokerGuard::new(
        client,
        transport,
        evidence,
        entropy.clone(),
        config.id.clone(),
        master,
    );
    let read = retry::attempts(
        "generation record",
        config.attempts,
        config.backoff_ms,
        clock,
        || guard.read(),
    );
    let recorded = match read {
        Attempts::Done(r) => r,
        Attempts::Final(last) => return Err(UnlockError::Record { attempts: 1, last }),
        Attempts::Exhausted { attempts, last } => {
            return Err(UnlockError::Record { attempts, last })
        }
    };
    let (state, outcome) = match recorded {
        None => {
            info!("the broker has no generation record for vTPM {id}: provisioning a new vTPM");
            let state = VtpmState::provision(key, store, guard, entropy, StateBlobs::new())
                .map_err(UnlockError::State)?;
            (state, Outcome::Provisioned)
        }
        Some(generation) => {
            info!("the broker records generation {generation} for vTPM {id}; opening the state");
            let state = VtpmState::open(key, store, guard, entropy).map_err(UnlockError::State)?;
            let opened = state.open_info();
            let outcome = Outcome::Opened {
                generation: opened.generation,
                slot: opened.slot,
            };
            (state, outcome)
        }
    };
    let t3 = clock.now_ms();
    Ok(Unlocked {
        state,
        outcome,
        timings: Timings {
            attestation_ms: t1 - t0,
            key_ms: t2 - t1,
            state_ms: t3 - t2,
        },
    })
}
