//! Rollback protection: the [`GenerationGuard`] hook through which a party
//! the host cannot forge (the key broker) remembers the newest durable
//! generation, the in-memory [`MemoryGuard`] for tests, and the rule itself.
//!
//! The rule: a state whose newest authentic generation is below the guard's
//! record is a rollback and is refused. The guard is told a generation only
//! after it is durable on storage, so after a crash storage can be ahead of
//! the guard (fine: the guard catches up on the next open) but never behind
//! it unless someone replaced the storage.

use core::fmt;

/// Why the guard could not answer or record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardError {
    /// The guard (e.g. the key broker) could not be reached.
    Unavailable,
    /// Asked to record a generation below the one it holds.
    Regression {
        /// Generation on record.
        recorded: u64,
        /// Generation that was offered.
        offered: u64,
    },
}

impl fmt::Display for GuardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardError::Unavailable => write!(f, "generation guard unavailable"),
            GuardError::Regression { recorded, offered } => write!(
                f,
                "generation guard holds {recorded}, refuses to go back to {offered}"
            ),
        }
    }
}

impl core::error::Error for GuardError {}

/// Remembers the newest durable generation of one vTPM's state.
pub trait GenerationGuard {
    /// The newest generation on record; `None` if nothing was ever recorded
    /// (the state was never provisioned).
    fn recorded(&mut self) -> Result<Option<u64>, GuardError>;
    /// Records `generation` as durable. Must refuse a generation below the
    /// record ([`GuardError::Regression`]); recording the same one again is
    /// fine.
    fn record(&mut self, generation: u64) -> Result<(), GuardError>;
}

impl<T: GenerationGuard + ?Sized> GenerationGuard for &mut T {
    fn recorded(&mut self) -> Result<Option<u64>, GuardError> {
        (**self).recorded()
    }
    fn record(&mut self, generation: u64) -> Result<(), GuardError> {
        (**self).record(generation)
    }
}

/// A guard held in memory: for tests, and as the model of the broker-backed
/// one.
#[derive(Debug, Clone, Default)]
pub struct MemoryGuard {
    latest: Option<u64>,
    fail: bool,
}

impl MemoryGuard {
    /// A guard with no record.
    pub fn new() -> Self {
        Self::default()
    }

    /// A guard whose record is `generation`.
    pub fn with_record(generation: u64) -> Self {
        Self {
            latest: Some(generation),
            fail: false,
        }
    }

    /// The record, without the fallible trait call.
    pub fn latest(&self) -> Option<u64> {
        self.latest
    }

    /// Makes every call fail with [`GuardError::Unavailable`] (or work again).
    pub fn set_unavailable(&mut self, fail: bool) {
        self.fail = fail;
    }
}

impl GenerationGuard for MemoryGuard {
    fn recorded(&mut self) -> Result<Option<u64>, GuardError> {
        if self.fail {
            return Err(GuardError::Unavailable);
        }
        Ok(self.latest)
    }

    fn record(&mut self, generation: u64) -> Result<(), GuardError> {
        if self.fail {
            return Err(GuardError::Unavailable);
        }
        match self.latest {
            Some(recorded) if generation < recorded => Err(GuardError::Regression {
                recorded,
                offered: generation,
            }),
            _ => {
                self.latest = Some(generation);
                Ok(())
            }
        }
    }
}

/// A state of generation `found` was offered where `recorded` is on record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RolledBack {
    /// Newest authentic generation on storage.
    pub found: u64,
    /// Generation on record.
    pub recorded: u64,
}

/// The rollback rule: `found` must not be older than the record.
pub fn check(found: u64, recorded: Option<u64>) -> Result<(), RolledBack> {
    match recorded {
        Some(recorded) if found < recorded => Err(RolledBack { found, recorded }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule() {
        assert_eq!(check(5, None), Ok(()));
        assert_eq!(check(5, Some(5)), Ok(()));
        assert_eq!(check(6, Some(5)), Ok(()));
        assert_eq!(
            check(4, Some(5)),
            Err(RolledBack {
                found: 4,
                recorded: 5
            })
        );
        assert_eq!(
            check(0, Some(u64::MAX)),
            Err(RolledBack {
                found: 0,
                recorded: u64::MAX
            })
        );
    }

    #[test]
    fn memory_guard_never_goes_back() {
        let mut g = MemoryGuard::new();
        assert_eq!(g.recorded(), Ok(None));
        g.record(3).unwrap();
        g.record(3).unwrap();
        assert_eq!(
            g.record(2),
            Err(GuardError::Regression {
                recorded: 3,
                offered: 2
            })
        );
        assert_eq!(g.recorded(), Ok(Some(3)));
        g.set_unavailable(true);
        assert_eq!(g.recorded(), Err(GuardError::Unavailable));
        assert_eq!(g.record(4), Err(GuardError::Unavailable));
        g.set_unavailable(false);
        g.record(9).unwrap();
        assert_eq!(g.latest(), Some(9));
    }
}
