//! Runs the client's steps over a [`Transport`]: attestation, resource
//! fetches, and the broker-backed [`GenerationGuard`]. One attempt each;
//! retries (bounded) are the caller's.

use core::fmt;

use log::warn;

use super::generation::{self, GenerationKey, Outcome, CHALLENGE_LEN};
use super::{EvidenceSource, KbsClient, KbsError, ResourcePath, Secret, Transport, VtpmId};
use crate::nvstate::{EntropySource, GenerationGuard, GuardError};

/// Runs `auth` and `attest`; on success the client holds a token.
pub fn attest(
    client: &mut KbsClient,
    transport: &mut dyn Transport,
    evidence: &mut dyn EvidenceSource,
) -> Result<(), KbsError> {
    let request = client.auth_request();
    let response = transport.exchange(&request)?;
    client.handle_auth_response(&response)?;
    let request = client.attest_request(evidence)?;
    let response = transport.exchange(&request)?;
    client.handle_attest_response(&response)
}

/// Fetches and opens one resource on the client's attested session.
pub fn fetch(
    client: &KbsClient,
    transport: &mut dyn Transport,
    path: &ResourcePath,
) -> Result<Secret, KbsError> {
    let request = client.resource_request(path)?;
    let response = transport.exchange(&request)?;
    client.handle_resource_response(&response)
}

/// The broker as the vTPM's generation guard (see
/// [`generation`](super::generation)). Failures that are not an
/// authenticated regression are [`GuardError::Unavailable`], with the
/// reason logged.
pub struct KbsGuard<'a, T: Transport, E: EntropySource> {
    client: &'a KbsClient,
    transport: T,
    entropy: E,
    id: VtpmId,
    key: GenerationKey,
}

impl<T: Transport, E: EntropySource> fmt::Debug for KbsGuard<'_, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KbsGuard")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<'a, T: Transport, E: EntropySource> KbsGuard<'a, T, E> {
    /// A guard for vTPM `id` on `client`'s attested session, with the
    /// generation key derived from the vTPM's `state_key`; challenges come
    /// from `entropy`.
    pub fn new(
        client: &'a KbsClient,
        transport: T,
        entropy: E,
        id: VtpmId,
        state_key: &[u8],
    ) -> Self {
        Self {
            client,
            transport,
            entropy,
            id,
            key: GenerationKey::derive(state_key),
        }
    }

    fn challenge(&mut self) -> Result<[u8; CHALLENGE_LEN], KbsError> {
        let mut c = [0u8; CHALLENGE_LEN];
        self.entropy.fill(&mut c).map_err(|_| KbsError::Entropy)?;
        Ok(c)
    }

    /// The record, with the precise error.
    pub fn read(&mut self) -> Result<Option<u64>, KbsError> {
        let c = self.challenge()?;
        let request = generation::read_request(self.client, &self.id, &c)?;
        let response = self.transport.exchange(&request)?;
        generation::handle_read_reply(self.client, &response, &self.key, &self.id, &c)
    }

    /// Records `offered`, with the precise error; returns the outcome and
    /// the broker's record.
    pub fn write(&mut self, offered: u64) -> Result<(Outcome, u64), KbsError> {
        let c = self.challenge()?;
        let request = generation::record_request(self.client, &self.key, &self.id, &c, offered)?;
        let response = self.transport.exchange(&request)?;
        generation::handle_record_reply(&response, &self.key, &self.id, &c, offered)
    }
}

impl<T: Transport, E: EntropySource> GenerationGuard for KbsGuard<'_, T, E> {
    fn recorded(&mut self) -> Result<Option<u64>, GuardError> {
        let result = self.read();
        guard_recorded(&self.id, result)
    }

    fn record(&mut self, generation: u64) -> Result<(), GuardError> {
        let result = self.write(generation);
        guard_record(&self.id, generation, result)
    }
}

/// A broker guard's [`GenerationGuard::recorded`] from the precise result
/// of reading vTPM `id`'s record: any failure is
/// [`GuardError::Unavailable`], with the reason logged.
pub(crate) fn guard_recorded(
    id: &VtpmId,
    result: Result<Option<u64>, KbsError>,
) -> Result<Option<u64>, GuardError> {
    result.map_err(|e| {
        warn!("kbs: generation record of {id} unavailable: {e}");
        GuardError::Unavailable
    })
}

/// A broker guard's [`GenerationGuard::record`] from the precise result of
/// offering `generation` for vTPM `id`: an authenticated regression is
/// [`GuardError::Regression`], any failure [`GuardError::Unavailable`].
pub(crate) fn guard_record(
    id: &VtpmId,
    generation: u64,
    result: Result<(Outcome, u64), KbsError>,
) -> Result<(), GuardError> {
    match result {
        Ok((Outcome::Recorded, _)) => Ok(()),
        Ok((Outcome::Regression, recorded)) => {
            warn!("kbs: broker holds generation {recorded} for {id}, refuses {generation}");
            Err(GuardError::Regression {
                recorded,
                offered: generation,
            })
        }
        Err(e) => {
            warn!("kbs: cannot record generation {generation} of {id}: {e}");
            Err(GuardError::Unavailable)
        }
    }
}
