//! Locality arbitration for the CRB interface (PTP `TPM_LOC_CTRL_x` /
//! `TPM_LOC_STS_x` / `TPM_LOC_STATE_x`): which locality owns the TPM, who
//! is waiting for it, and who had it taken away.
//!
//! Rules (PTP, same as the TIS access protocol):
//! - `requestAccess` from locality `l`: granted at once if no locality is
//!   active; a no-op if `l` is already active; otherwise `l` waits.
//! - `Relinquish` from the active locality frees the TPM and hands it to the
//!   highest waiting locality, if any. From a waiting locality it withdraws
//!   the request. From anyone else it does nothing.
//! - `Seize` from a locality higher than the active one takes the TPM over;
//!   the loser's `beenSeized` is set. A seize from a lower or equal locality
//!   is ignored; with no active locality it acts as a request.
//! - `beenSeized` of a locality clears when that locality requests again.

/// A change of the active locality, reported so the control area can drop
/// the previous owner's command/response and raise `localityChange`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handover {
    /// The locality that was active before (if any).
    pub from: Option<u8>,
    /// The locality active now (if any).
    pub to: Option<u8>,
}

/// The arbitration state for up to five localities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Localities {
    count: u8,
    active: Option<u8>,
    /// Bit `l` set: locality `l` asked for access and waits.
    pending: u8,
    /// Bit `l` set: locality `l` lost the TPM to a seize.
    seized: u8,
}

impl Localities {
    /// Arbitration over localities `0..count` (`count` is clamped to 1..=5),
    /// none active.
    pub fn new(count: u8) -> Self {
        Localities {
            count: count.clamp(1, super::regs::LOCALITY_COUNT),
            active: None,
            pending: 0,
            seized: 0,
        }
    }

    /// Number of implemented localities.
    pub fn count(&self) -> u8 {
        self.count
    }

    /// The active locality, if any.
    pub fn active(&self) -> Option<u8> {
        self.active
    }

    /// Whether `locality` is the active one (`TPM_LOC_STS_x.Granted`).
    pub fn is_active(&self, locality: u8) -> bool {
        self.active == Some(locality)
    }

    /// Whether `locality` lost the TPM to a seize (`beenSeized`).
    pub fn been_seized(&self, locality: u8) -> bool {
        locality < 8 && self.seized & (1 << locality) != 0
    }

    /// Whether `locality` waits for access.
    pub fn is_pending(&self, locality: u8) -> bool {
        locality < 8 && self.pending & (1 << locality) != 0
    }

    /// `requestAccess` written by `locality`.
    pub fn request(&mut self, locality: u8) -> Option<Handover> {
        if locality >= self.count {
            return None;
        }
        self.seized &= !(1 << locality);
        match self.active {
            None => self.hand_to(Some(locality)),
            Some(a) if a == locality => None,
            Some(_) => {
                self.pending |= 1 << locality;
                None
            }
        }
    }

    /// `Relinquish` written by `locality`.
    pub fn relinquish(&mut self, locality: u8) -> Option<Handover> {
        if locality >= self.count {
            return None;
        }
        self.pending &= !(1 << locality);
        if self.active != Some(locality) {
            return None;
        }
        let next = self.highest_pending();
        if let Some(n) = next {
            self.pending &= !(1 << n);
        }
        self.hand_to(next)
    }

    /// `Seize` written by `locality`.
    pub fn seize(&mut self, locality: u8) -> Option<Handover> {
        if locality >= self.count {
            return None;
        }
        match self.active {
            None => self.request(locality),
            Some(a) if locality > a => {
                self.seized |= 1 << a;
                self.seized &= !(1 << locality);
                self.pending &= !(1 << locality);
                self.hand_to(Some(locality))
            }
            Some(_) => None,
        }
    }

    fn highest_pending(&self) -> Option<u8> {
        (0..self.count).rev().find(|&l| self.is_pending(l))
    }

    fn hand_to(&mut self, to: Option<u8>) -> Option<Handover> {
        let from = self.active;
        self.active = to;
        (from != to).then_some(Handover { from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_grants_when_free_and_queues_when_busy() {
        let mut l = Localities::new(5);
        assert_eq!(
            l.request(0),
            Some(Handover {
                from: None,
                to: Some(0)
            })
        );
        assert!(l.is_active(0));
        assert_eq!(l.request(0), None, "re-request by the owner is a no-op");
        assert_eq!(l.request(2), None);
        assert!(l.is_pending(2));
        assert!(l.is_active(0));
    }

    #[test]
    fn relinquish_hands_to_highest_waiter() {
        let mut l = Localities::new(5);
        l.request(0);
        l.request(1);
        l.request(3);
        assert_eq!(
            l.relinquish(0),
            Some(Handover {
                from: Some(0),
                to: Some(3)
            })
        );
        assert!(!l.is_pending(3));
        assert_eq!(
            l.relinquish(3),
            Some(Handover {
                from: Some(3),
                to: Some(1)
            })
        );
        assert_eq!(
            l.relinquish(1),
            Some(Handover {
                from: Some(1),
                to: None
            })
        );
        assert_eq!(l.active(), None);
    }

    #[test]
    fn relinquish_by_non_owner_only_withdraws_its_request() {
        let mut l = Localities::new(5);
        l.request(0);
        l.request(2);
        assert_eq!(l.relinquish(2), None);
        assert!(!l.is_pending(2));
        assert_eq!(l.relinquish(4), None);
        assert!(l.is_active(0));
        assert_eq!(
            l.relinquish(0),
            Some(Handover {
                from: Some(0),
                to: None
            })
        );
    }

    #[test]
    fn seize_only_upwards() {
        let mut l = Localities::new(5);
        l.request(2);
        assert_eq!(l.seize(1), None);
        assert_eq!(l.seize(2), None);
        assert!(l.is_active(2));
        assert_eq!(
            l.seize(4),
            Some(Handover {
                from: Some(2),
                to: Some(4)
            })
        );
        assert!(l.been_seized(2));
        assert!(!l.been_seized(4));
        // A new request from the seized locality clears beenSeized and waits.
        assert_eq!(l.request(2), None);
        assert!(!l.been_seized(2));
        assert!(l.is_pending(2));
    }

    #[test]
    fn seize_with_no_owner_acts_as_request() {
        let mut l = Localities::new(5);
        assert_eq!(
            l.seize(3),
            Some(Handover {
                from: None,
                to: Some(3)
            })
        );
        assert!(!l.been_seized(3));
    }

    #[test]
    fn unimplemented_localities_are_ignored() {
        let mut l = Localities::new(1);
        assert_eq!(l.count(), 1);
        assert_eq!(l.request(1), None);
        assert_eq!(l.seize(4), None);
        assert_eq!(l.relinquish(7), None);
        assert_eq!(l.request(200), None);
        assert_eq!(l.active(), None);
        assert!(!l.is_pending(1));
        assert!(!l.been_seized(200));
        assert_eq!(Localities::new(0).count(), 1);
        assert_eq!(Localities::new(9).count(), 5);
    }
}
