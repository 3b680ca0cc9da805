//! [`BrokerGuard`]: the generation guard the running vTPM uses. It owns
//! the attested broker client and, when the broker says the session has
//! expired (HTTP 401), attests again with the same evidence source before
//! retrying once, so NV writes keep working for the life of the guest.

use alloc::vec::Vec;
use core::fmt;

use log::info;
use zeroize::Zeroizing;

use crate::attest::kbs::VtpmId;
use crate::attest::kbs::{exchange, EvidenceSource, KbsClient, KbsError, KbsGuard, Transport};
use crate::nvstate::{EntropySource, GenerationGuard, GuardError};

/// The broker-backed guard of one vTPM, with re-attestation.
pub struct BrokerGuard<T: Transport, V: EvidenceSource, E: EntropySource> {
    client: KbsClient,
    transport: T,
    evidence: V,
    entropy: E,
    id: VtpmId,
    state_key: Zeroizing<Vec<u8>>,
}

impl<T: Transport, V: EvidenceSource, E: EntropySource> fmt::Debug for BrokerGuard<T, V, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerGuard")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<T: Transport, V: EvidenceSource, E: EntropySource> BrokerGuard<T, V, E> {
    /// The guard for vTPM `id` on `client`'s attested session; the
    /// generation record is authenticated with a key derived from
    /// `state_key`.
    pub fn new(
        client: KbsClient,
        transport: T,
        evidence: V,
        entropy: E,
        id: VtpmId,
        state_key: Zeroizing<Vec<u8>>,
    ) -> Self {
        Self {
            client,
            transport,
            evidence,
            entropy,
            id,
            state_key,
        }
    }

    /// The vTPM's id.
    pub fn id(&self) -> &VtpmId {
        &self.id
    }

    fn once<R, F>(&mut self, op: &F) -> Result<R, KbsError>
    where
        F: Fn(&mut KbsGuard<'_, &mut T, &mut E>) -> Result<R, KbsError>,
    {
        let mut guard = KbsGuard::new(
            &self.client,
            &mut self.transport,
            &mut self.entropy,
            self.id.clone(),
            &self.state_key,
        );
        op(&mut guard)
    }

    /// Runs `op`; if the broker no longer knows the session, attests again
    /// and runs it once more.
    fn with_session<R, F>(&mut self, op: F) -> Result<R, KbsError>
    where
        F: Fn(&mut KbsGuard<'_, &mut T, &mut E>) -> Result<R, KbsError>,
    {
        match self.once(&op) {
            Err(KbsError::Refused { status: 401, .. }) => {
                info!(
                    "kbs: session of vTPM {} expired; attesting again",
                    self.id.as_str()
                );
                exchange::attest(&mut self.client, &mut self.transport, &mut self.evidence)?;
                self.once(&op)
            }
            other => other,
        }
    }

    /// The broker's record, with the precise error.
    pub fn read(&mut self) -> Result<Option<u64>, KbsError> {
        self.with_session(|g| g.read())
    }
}

impl<T: Transport, V: EvidenceSource, E: EntropySource> GenerationGuard for BrokerGuard<T, V, E> {
    fn recorded(&mut self) -> Result<Option<u64>, GuardError> {
        let result = self.read();
        exchange::guard_recorded(&self.id, result)
    }

    fn record(&mut self, generation: u64) -> Result<(), GuardError> {
        let result = self.with_session(|g| g.write(generation));
        exchange::guard_record(&self.id, generation, result)
    }
}
