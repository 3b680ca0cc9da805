//! The A/B rule, as a pure function of what the two slots hold and what the
//! generation guard remembers: which slot is current, or why the stored
//! state is refused. Owns [`Refusal`].
//!
//! - Both slots empty: no state ([`Refusal::NoState`]), unless the guard
//!   remembers one ([`Refusal::StateMissing`]).
//! - Either slot in a newer format (unknown version or flags): refused, so
//!   an older reader never falls back past a newer writer's state.
//! - Both authentic: the higher generation wins; equal generations must be
//!   the same state (a copy), or they conflict.
//! - One authentic: it wins; the other was torn or damaged (reported).
//! - None authentic: refused, naming the cause.
//! - Whatever wins must not be older than the guard's record.

use core::fmt;

use super::backend::SlotId;
use super::format::BlobError;
use super::key::{KeyId, StateKey};
use super::rollback::{self, RolledBack};
use super::seal::{self, Opened};

/// What one slot holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotContent {
    /// Never written.
    Empty,
    /// An authentic blob.
    Valid(Opened),
    /// Bytes that are not an authentic blob under our key.
    Invalid(BlobError),
}

/// Opens one slot's raw contents.
pub fn examine(key: &StateKey, raw: Option<&[u8]>) -> SlotContent {
    match raw {
        None => SlotContent::Empty,
        Some(bytes) => match seal::open(key, bytes) {
            Ok(opened) => SlotContent::Valid(opened),
            Err(e) => SlotContent::Invalid(e),
        },
    }
}

/// What the slot that lost holds, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtherSlot {
    /// Never written.
    Empty,
    /// An authentic older generation.
    Older {
        /// Its generation.
        generation: u64,
    },
    /// An identical copy of the winner.
    Duplicate,
    /// Not authentic (torn write or damage); the winner is the fallback.
    Invalid(BlobError),
}

/// The current state and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    /// Slot holding the current state.
    pub slot: SlotId,
    /// The current state.
    pub opened: Opened,
    /// What the other slot holds.
    pub other: OtherSlot,
}

/// Why the stored state cannot be used. The vTPM never starts on any of
/// these (in particular never with a fresh state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Both slots empty and the guard has no record: never provisioned.
    NoState,
    /// Both slots empty but the guard remembers this generation: the state
    /// was deleted.
    StateMissing {
        /// Generation on record.
        recorded: u64,
    },
    /// No authentic state; the stored state is sealed under another key.
    WrongKey {
        /// Identifier of the key given.
        expected: KeyId,
        /// Identifier in the stored blob.
        found: KeyId,
    },
    /// A slot holds a format version this code does not know.
    UnknownVersion {
        /// The slot.
        slot: SlotId,
        /// Its version.
        version: u16,
    },
    /// A slot holds an authentic blob with flags this code does not know.
    UnsupportedFlags {
        /// The slot.
        slot: SlotId,
        /// Its flags.
        flags: u32,
    },
    /// The only stored blob's header fails authentication.
    TamperedHeader {
        /// The slot.
        slot: SlotId,
    },
    /// The only stored blob's ciphertext fails authentication.
    TamperedCiphertext {
        /// The slot.
        slot: SlotId,
    },
    /// The only stored blob is damaged otherwise (torn, bad magic, ...).
    Corrupt {
        /// The slot.
        slot: SlotId,
        /// What is wrong with it.
        error: BlobError,
    },
    /// Both slots hold something and neither is authentic.
    BothCorrupt {
        /// What is wrong with slot A.
        a: BlobError,
        /// What is wrong with slot B.
        b: BlobError,
    },
    /// Both slots hold different authentic states of the same generation.
    GenerationConflict {
        /// The generation.
        generation: u64,
    },
    /// The newest authentic state is older than the guard's record.
    Rollback {
        /// Newest authentic generation on storage.
        found: u64,
        /// Generation on record.
        recorded: u64,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoState => write!(f, "no vTPM state stored (never provisioned)"),
            Refusal::StateMissing { recorded } => write!(
                f,
                "vTPM state missing from storage, but generation {recorded} was committed"
            ),
            Refusal::WrongKey { expected, found } => {
                write!(
                    f,
                    "vTPM state sealed under key {found}, not the given key {expected}"
                )
            }
            Refusal::UnknownVersion { slot, version } => {
                write!(f, "{slot} holds unknown state format version {version}")
            }
            Refusal::UnsupportedFlags { slot, flags } => {
                write!(f, "{slot} holds state with unsupported flags {flags:#x}")
            }
            Refusal::TamperedHeader { slot } => {
                write!(f, "{slot}: state header failed authentication")
            }
            Refusal::TamperedCiphertext { slot } => {
                write!(f, "{slot}: state ciphertext failed authentication")
            }
            Refusal::Corrupt { slot, error } => write!(f, "{slot}: corrupt state: {error}"),
            Refusal::BothCorrupt { a, b } => {
                write!(f, "both state slots corrupt: A: {a}; B: {b}")
            }
            Refusal::GenerationConflict { generation } => {
                write!(
                    f,
                    "both slots hold different states of generation {generation}"
                )
            }
            Refusal::Rollback { found, recorded } => write!(
                f,
                "rollback: newest stored state is generation {found}, \
                 but generation {recorded} was committed"
            ),
        }
    }
}

impl From<RolledBack> for Refusal {
    fn from(r: RolledBack) -> Self {
        Refusal::Rollback {
            found: r.found,
            recorded: r.recorded,
        }
    }
}

/// Refusal for a single unusable blob in `slot`.
fn refuse_one(slot: SlotId, error: BlobError) -> Refusal {
    match error {
        BlobError::WrongKey { expected, found } => Refusal::WrongKey { expected, found },
        BlobError::UnknownVersion(version) => Refusal::UnknownVersion { slot, version },
        BlobError::UnsupportedFlags(flags) => Refusal::UnsupportedFlags { slot, flags },
        BlobError::TamperedHeader => Refusal::TamperedHeader { slot },
        BlobError::TamperedCiphertext => Refusal::TamperedCiphertext { slot },
        error => Refusal::Corrupt { slot, error },
    }
}

/// Applies the A/B rule (module docs) to the two slots and the guard's
/// record.
pub fn select(a: SlotContent, b: SlotContent, recorded: Option<u64>) -> Result<Chosen, Refusal> {
    // A newer writer's blob in either slot stops everything.
    for (slot, content) in [(SlotId::A, &a), (SlotId::B, &b)] {
        if let SlotContent::Invalid(
            e @ (BlobError::UnknownVersion(_) | BlobError::UnsupportedFlags(_)),
        ) = content
        {
            return Err(refuse_one(slot, e.clone()));
        }
    }
    let chosen = match (a, b) {
        (SlotContent::Empty, SlotContent::Empty) => {
            return Err(match recorded {
                Some(recorded) => Refusal::StateMissing { recorded },
                None => Refusal::NoState,
            })
        }
        (SlotContent::Valid(x), SlotContent::Valid(y)) => {
            if x.generation == y.generation {
                if x != y {
                    return Err(Refusal::GenerationConflict {
                        generation: x.generation,
                    });
                }
                Chosen {
                    slot: SlotId::A,
                    opened: x,
                    other: OtherSlot::Duplicate,
                }
            } else if x.generation > y.generation {
                let other = OtherSlot::Older {
                    generation: y.generation,
                };
                Chosen {
                    slot: SlotId::A,
                    opened: x,
                    other,
                }
            } else {
                let other = OtherSlot::Older {
                    generation: x.generation,
                };
                Chosen {
                    slot: SlotId::B,
                    opened: y,
                    other,
                }
            }
        }
        (SlotContent::Valid(x), rest) => Chosen {
            slot: SlotId::A,
            opened: x,
            other: loser(rest),
        },
        (rest, SlotContent::Valid(y)) => Chosen {
            slot: SlotId::B,
            opened: y,
            other: loser(rest),
        },
        (SlotContent::Invalid(e), SlotContent::Empty) => return Err(refuse_one(SlotId::A, e)),
        (SlotContent::Empty, SlotContent::Invalid(e)) => return Err(refuse_one(SlotId::B, e)),
        (SlotContent::Invalid(ea), SlotContent::Invalid(eb)) => {
            return Err(match (ea, eb) {
                (BlobError::WrongKey { expected, found }, BlobError::WrongKey { .. }) => {
                    Refusal::WrongKey { expected, found }
                }
                (a, b) => Refusal::BothCorrupt { a, b },
            })
        }
    };
    rollback::check(chosen.opened.generation, recorded)?;
    Ok(chosen)
}

fn loser(content: SlotContent) -> OtherSlot {
    match content {
        SlotContent::Empty => OtherSlot::Empty,
        SlotContent::Invalid(e) => OtherSlot::Invalid(e),
        // Both-valid is handled before this is called.
        SlotContent::Valid(o) => OtherSlot::Older {
            generation: o.generation,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nvstate::payload::StateBlobs;

    fn valid(generation: u64, tag: u8) -> SlotContent {
        let mut blobs = StateBlobs::new();
        blobs.insert("permall", &[tag]).unwrap();
        SlotContent::Valid(Opened {
            generation,
            nonce: [tag; 12],
            blobs,
        })
    }

    fn chosen(r: Result<Chosen, Refusal>) -> (SlotId, u64) {
        let c = r.unwrap();
        (c.slot, c.opened.generation)
    }

    #[test]
    fn higher_generation_wins_either_way_round() {
        assert_eq!(
            chosen(select(valid(4, 1), valid(5, 2), None)),
            (SlotId::B, 5)
        );
        assert_eq!(
            chosen(select(valid(7, 1), valid(6, 2), Some(6))),
            (SlotId::A, 7)
        );
    }

    #[test]
    fn fallback_to_the_authentic_slot() {
        let torn = SlotContent::Invalid(BlobError::Truncated { len: 3, needed: 88 });
        let c = select(torn.clone(), valid(3, 1), Some(3)).unwrap();
        assert_eq!(
            (c.slot, c.other),
            (
                SlotId::B,
                OtherSlot::Invalid(BlobError::Truncated { len: 3, needed: 88 })
            )
        );
        assert_eq!(chosen(select(valid(3, 1), torn, None)), (SlotId::A, 3));
        assert_eq!(
            chosen(select(SlotContent::Empty, valid(1, 1), None)),
            (SlotId::B, 1)
        );
    }

    #[test]
    fn rollback_even_when_the_slot_is_authentic() {
        assert_eq!(
            select(valid(4, 1), valid(3, 2), Some(5)),
            Err(Refusal::Rollback {
                found: 4,
                recorded: 5
            })
        );
        let tampered = SlotContent::Invalid(BlobError::TamperedCiphertext);
        assert_eq!(
            select(tampered, valid(4, 1), Some(5)),
            Err(Refusal::Rollback {
                found: 4,
                recorded: 5
            })
        );
    }

    #[test]
    fn empty_is_not_corrupt() {
        assert_eq!(
            select(SlotContent::Empty, SlotContent::Empty, None),
            Err(Refusal::NoState)
        );
        assert_eq!(
            select(SlotContent::Empty, SlotContent::Empty, Some(9)),
            Err(Refusal::StateMissing { recorded: 9 })
        );
        let torn = BlobError::Truncated { len: 0, needed: 88 };
        assert_eq!(
            select(SlotContent::Invalid(torn.clone()), SlotContent::Empty, None),
            Err(Refusal::Corrupt {
                slot: SlotId::A,
                error: torn.clone()
            })
        );
        assert_eq!(
            select(
                SlotContent::Invalid(torn.clone()),
                SlotContent::Invalid(BlobError::BadMagic),
                None
            ),
            Err(Refusal::BothCorrupt {
                a: torn,
                b: BlobError::BadMagic
            })
        );
    }

    #[test]
    fn newer_format_is_never_skipped() {
        let newer = SlotContent::Invalid(BlobError::UnknownVersion(2));
        assert_eq!(
            select(valid(3, 1), newer, None),
            Err(Refusal::UnknownVersion {
                slot: SlotId::B,
                version: 2
            })
        );
        let flags = SlotContent::Invalid(BlobError::UnsupportedFlags(4));
        assert_eq!(
            select(flags, valid(3, 1), None),
            Err(Refusal::UnsupportedFlags {
                slot: SlotId::A,
                flags: 4
            })
        );
    }

    #[test]
    fn equal_generations_must_be_identical() {
        let c = select(valid(2, 1), valid(2, 1), None).unwrap();
        assert_eq!(c.other, OtherSlot::Duplicate);
        assert_eq!(
            select(valid(2, 1), valid(2, 2), None),
            Err(Refusal::GenerationConflict { generation: 2 })
        );
    }
}
