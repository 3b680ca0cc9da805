//! Locality arbitration through `TPM_ACCESS_x` (PTP, "Locality" and the
//! `TPM_ACCESS_x` register definition): which locality owns the TPM, who is
//! waiting for it, who had it seized, and the `tpmEstablishment` flag.
//!
//! Rules (the PTP's, with QEMU's tpm-tis as the behavioural reference where
//! the text leaves room):
//! - At most one locality is active. `requestUse` makes the writer active at
//!   once when none is; otherwise it stays pending (`requestUse` reads 1 in
//!   the requester, `pendingRequest` reads 1 in every other locality).
//! - Writing `activeLocality` from the active locality relinquishes it; the
//!   highest locality with a pending request is then granted. From a
//!   non-active locality it withdraws that locality's pending request.
//! - `Seize` from a locality higher than the active one (or when none is
//!   active) takes the TPM at once; the loser reads `beenSeized` until it
//!   writes 1 to that bit. A write with `Seize` set ignores its
//!   `requestUse`/`activeLocality` bits. `Seize` from a lower or equal
//!   locality is ignored.
//! - `tpmEstablishment` reads 1 while no dynamic root of trust has been
//!   established; `TPM_STS_x.resetEstablishment` from locality 3 or 4 sets it
//!   back to 1.

use super::regs::{Access, LOCALITY_COUNT};

/// Bit of `locality` in a per-locality mask; 0 for an out-of-range locality.
fn bit(locality: u8) -> u8 {
    if locality < LOCALITY_COUNT {
        1 << locality
    } else {
        0
    }
}

/// The locality arbiter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arbiter {
    /// The active locality, if any.
    active: Option<u8>,
    /// Localities with a pending `requestUse` (bit per locality).
    requests: u8,
    /// Localities that had the TPM seized from them (bit per locality).
    seized: u8,
    /// A dynamic root of trust has been established (`tpmEstablishment`
    /// then reads 0).
    established: bool,
}

impl Arbiter {
    /// The state after reset: no locality active, nothing pending.
    pub fn new(established: bool) -> Self {
        Self {
            active: None,
            requests: 0,
            seized: 0,
            established,
        }
    }

    /// The active locality, if any.
    pub fn active(&self) -> Option<u8> {
        self.active
    }

    /// Whether `locality` is the active one.
    pub fn is_active(&self, locality: u8) -> bool {
        self.active == Some(locality)
    }

    /// Whether a dynamic root of trust is recorded as established.
    pub fn established(&self) -> bool {
        self.established
    }

    /// `TPM_ACCESS_x` as read from `locality`.
    pub fn read(&self, locality: u8) -> u8 {
        let mut v = Access::REG_VALID_STS;
        v.set(Access::ACTIVE_LOCALITY, self.is_active(locality));
        v.set(Access::BEEN_SEIZED, self.seized & bit(locality) != 0);
        v.set(Access::PENDING_REQUEST, self.requests & !bit(locality) != 0);
        v.set(Access::REQUEST_USE, self.requests & bit(locality) != 0);
        v.set(Access::TPM_ESTABLISHMENT, !self.established);
        v.bits()
    }

    /// A write of `value` to `TPM_ACCESS_x` from `locality`. Returns `true`
    /// when the TPM changed hands (released, granted or seized), so the
    /// caller aborts the command in flight and signals the change.
    pub fn write(&mut self, locality: u8, value: u8) -> bool {
        let me = bit(locality);
        if me == 0 {
            return false;
        }
        let v = Access::from_bits_truncate(value);
        let mut changed = false;
        if v.contains(Access::BEEN_SEIZED) {
            self.seized &= !me;
        }
        if v.contains(Access::SEIZE) {
            let allowed = match self.active {
                None => true,
                Some(a) => locality > a,
            };
            if allowed {
                if let Some(a) = self.active {
                    self.seized |= bit(a);
                }
                self.grant(locality);
                changed = true;
            }
            return changed;
        }
        if v.contains(Access::ACTIVE_LOCALITY) {
            if self.is_active(locality) {
                self.active = None;
                changed = true;
                if let Some(next) = self.highest_request() {
                    self.grant(next);
                }
            } else {
                self.requests &= !me;
            }
        }
        if v.contains(Access::REQUEST_USE) {
            match self.active {
                None => {
                    self.grant(locality);
                    changed = true;
                }
                Some(a) if a == locality => {}
                Some(_) => self.requests |= me,
            }
        }
        changed
    }

    /// `TPM_STS_x.resetEstablishment` written from `locality`: only
    /// localities 3 and 4 may clear the established flag.
    pub fn reset_establishment(&mut self, locality: u8) {
        if matches!(locality, 3 | 4) {
            self.established = false;
        }
    }

    /// Makes `locality` active and drops its own pending request.
    fn grant(&mut self, locality: u8) {
        self.active = Some(locality);
        self.requests &= !bit(locality);
    }

    /// The highest locality with a pending request.
    fn highest_request(&self) -> Option<u8> {
        (0..LOCALITY_COUNT)
            .rev()
            .find(|&l| self.requests & bit(l) != 0)
    }
}
