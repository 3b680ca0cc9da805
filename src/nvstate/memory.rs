//! An in-memory [`SlotStore`] that can lose power at any byte: the medium
//! used by tests to prove that commits are crash-safe.
//!
//! Every byte written and every flush is one "step". A power budget of `n`
//! steps lets exactly `n` steps happen; the step that would exceed it does
//! not, the operation in progress returns [`StoreError::Unavailable`] and so
//! does everything after it. [`MemoryStore::reboot`] then gives what survived.
//!
//! Two cache models:
//! - write-through: bytes reach the medium as they are written, so a cut
//!   write leaves a torn slot ([`Torn::OverOld`]: new prefix over the old
//!   bytes, as an in-place overwrite; [`Torn::Truncated`]: just the prefix,
//!   as truncate-then-write);
//! - write-back: writes sit in a cache until `flush`; a cut before the flush
//!   loses them all.

use alloc::vec::Vec;

use super::backend::{SlotId, SlotStore, StoreError, StoreOp};

/// What a write cut short leaves on a write-through medium.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Torn {
    /// The written prefix over the old contents.
    OverOld,
    /// Only the written prefix.
    Truncated,
}

/// How writes reach the medium.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cache {
    /// Byte by byte, torn as described by [`Torn`] when cut.
    WriteThrough(Torn),
    /// Whole slots at `flush`; lost if the power goes before it.
    WriteBack,
}

/// The in-memory store.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    medium: [Option<Vec<u8>>; 2],
    cache: [Option<Vec<u8>>; 2],
    mode: Cache,
    budget: Option<u64>,
    lost: bool,
    steps: u64,
    writes: u64,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(Cache::WriteThrough(Torn::OverOld))
    }
}

impl MemoryStore {
    /// An empty store with unlimited power.
    pub fn new(mode: Cache) -> Self {
        Self {
            medium: [None, None],
            cache: [None, None],
            mode,
            budget: None,
            lost: false,
            steps: 0,
            writes: 0,
        }
    }

    /// Lets only `steps` more steps happen before the power goes.
    pub fn cut_after(&mut self, steps: u64) {
        self.budget = Some(steps);
    }

    /// Whether the power went.
    pub fn lost_power(&self) -> bool {
        self.lost
    }

    /// Steps taken so far (bytes written + flushes).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Number of `write_slot` calls that completed.
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// A fresh store holding what the medium kept: unflushed cached writes
    /// are gone, power is unlimited again.
    pub fn reboot(&self) -> Self {
        Self {
            medium: self.medium.clone(),
            cache: [None, None],
            mode: self.mode,
            budget: None,
            lost: false,
            steps: 0,
            writes: 0,
        }
    }

    /// The medium's copy of a slot (what a reboot would read).
    pub fn medium(&self, slot: SlotId) -> Option<&[u8]> {
        self.medium[slot.index()].as_deref()
    }

    /// Replaces the medium's copy of a slot directly, as a hostile host
    /// could (`None` deletes it).
    pub fn set_medium(&mut self, slot: SlotId, data: Option<Vec<u8>>) {
        self.medium[slot.index()] = data;
        self.cache[slot.index()] = None;
    }

    /// Takes up to `n` steps; returns how many were allowed.
    fn spend(&mut self, n: u64) -> u64 {
        let allowed = match &mut self.budget {
            None => n,
            Some(b) => {
                let a = n.min(*b);
                *b -= a;
                a
            }
        };
        self.steps += allowed;
        if allowed < n {
            self.lost = true;
        }
        allowed
    }
}

impl SlotStore for MemoryStore {
    fn read_slot(&mut self, slot: SlotId) -> Result<Option<Vec<u8>>, StoreError> {
        if self.lost {
            return Err(StoreError::Unavailable { op: StoreOp::Read });
        }
        let i = slot.index();
        Ok(self.cache[i].clone().or_else(|| self.medium[i].clone()))
    }

    fn write_slot(&mut self, slot: SlotId, data: &[u8]) -> Result<(), StoreError> {
        if self.lost {
            return Err(StoreError::Unavailable { op: StoreOp::Write });
        }
        let i = slot.index();
        let allowed = self.spend(data.len() as u64) as usize;
        match self.mode {
            Cache::WriteBack => {
                if allowed == data.len() {
                    self.cache[i] = Some(data.to_vec());
                }
            }
            Cache::WriteThrough(torn) => {
                if allowed == data.len() {
                    self.medium[i] = Some(data.to_vec());
                } else {
                    let mut now = match (torn, self.medium[i].take()) {
                        (Torn::OverOld, Some(old)) => old,
                        _ => Vec::new(),
                    };
                    if now.len() < allowed {
                        now.resize(allowed, 0);
                    }
                    now[..allowed].copy_from_slice(&data[..allowed]);
                    self.medium[i] = Some(now);
                }
            }
        }
        if self.lost {
            return Err(StoreError::Unavailable { op: StoreOp::Write });
        }
        self.writes += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        if self.lost || self.spend(1) == 0 {
            return Err(StoreError::Unavailable { op: StoreOp::Flush });
        }
        for i in 0..2 {
            if let Some(d) = self.cache[i].take() {
                self.medium[i] = Some(d);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn cut_write_through_tears_as_configured() {
        for (torn, expect) in [
            (Torn::OverOld, vec![9, 9, 3, 4]),
            (Torn::Truncated, vec![9, 9]),
        ] {
            let mut s = MemoryStore::new(Cache::WriteThrough(torn));
            s.write_slot(SlotId::A, &[1, 2, 3, 4]).unwrap();
            s.cut_after(2);
            assert_eq!(
                s.write_slot(SlotId::A, &[9, 9, 9]),
                Err(StoreError::Unavailable { op: StoreOp::Write })
            );
            assert!(s.lost_power());
            assert!(s.read_slot(SlotId::A).is_err());
            let mut r = s.reboot();
            assert_eq!(r.read_slot(SlotId::A).unwrap(), Some(expect));
            assert_eq!(r.read_slot(SlotId::B).unwrap(), None);
        }
    }

    #[test]
    fn write_back_loses_unflushed_writes() {
        let mut s = MemoryStore::new(Cache::WriteBack);
        s.write_slot(SlotId::B, &[1]).unwrap();
        s.flush().unwrap();
        s.write_slot(SlotId::B, &[2]).unwrap();
        assert_eq!(s.read_slot(SlotId::B).unwrap(), Some(vec![2]));
        s.cut_after(0);
        assert!(s.flush().is_err());
        assert_eq!(s.reboot().read_slot(SlotId::B).unwrap(), Some(vec![1]));
    }

    #[test]
    fn a_budget_exactly_covering_a_write_cuts_before_the_flush() {
        let mut s = MemoryStore::new(Cache::WriteThrough(Torn::Truncated));
        s.cut_after(3);
        s.write_slot(SlotId::A, &[1, 2, 3]).unwrap();
        assert!(s.flush().is_err());
        assert_eq!(s.steps(), 3);
        assert_eq!(s.reboot().medium(SlotId::A), Some(&[1u8, 2, 3][..]));
    }
}
