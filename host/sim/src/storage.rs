//! The simulator's NV storage: the sealed, crash-safe, rollback-aware state
//! of `svtpm::nvstate` (the format the component itself uses), kept by
//! `svtpm-store`'s [`DirStore`] as two slot files in the state directory,
//! with the newest generation remembered by a [`FileGuard`] in another
//! directory (on the real platform the key broker holds that record).
//!
//! Opening never writes the state and never makes a fresh TPM: an empty
//! directory is refused unless provisioning (manufacture) was asked for,
//! provisioning refuses an existing state, and every other refusal of
//! `nvstate` (wrong key, tampered, rollback, ...) is reported with its own
//! message. The engine sees only [`NvStorage`]; each changed blob it stores
//! is one durable commit.

use std::fmt;
use std::path::PathBuf;

use svtpm::engine::{NvStorage, StorageError};
use svtpm::nvstate::slots::OtherSlot;
use svtpm::nvstate::state::StateError;
use svtpm::nvstate::{Refusal, StateBlobs, StateKey, VtpmState};
use svtpm_store::{DirStore, FileGuard, OsEntropy};

/// The sealed state on disk.
pub type DiskState = VtpmState<DirStore, FileGuard, OsEntropy>;

/// Where a vTPM's state and its generation record live.
#[derive(Debug, Clone)]
pub struct Location {
    /// The state directory (slot files).
    pub dir: PathBuf,
    /// The generation guard file, outside `dir`.
    pub guard_file: PathBuf,
}

/// Why the state could not be opened or provisioned.
#[derive(Debug)]
pub enum OpenError {
    /// The stored state (or the request to provision) is refused; nothing
    /// was written.
    Refused(String),
    /// Something else failed (I/O, an unreadable guard file).
    Failed(String),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Refused(m) | OpenError::Failed(m) => f.write_str(m),
        }
    }
}

/// What a refusal means for whoever runs the simulator.
fn hint(refusal: &Refusal) -> &'static str {
    match refusal {
        Refusal::NoState => "",
        Refusal::StateMissing { .. } => {
            "; the slot files were deleted or moved, and the generation guard remembers them"
        }
        Refusal::WrongKey { .. } => "; wrong --key-file for this state?",
        Refusal::UnknownVersion { .. } | Refusal::UnsupportedFlags { .. } => {
            "; written by a newer svtpm, and an older slot is never used in its place"
        }
        Refusal::TamperedHeader { .. }
        | Refusal::TamperedCiphertext { .. }
        | Refusal::Corrupt { .. }
        | Refusal::BothCorrupt { .. } => "; the state was altered or damaged",
        Refusal::GenerationConflict { .. } => "; the slots come from two different histories",
        Refusal::Rollback { .. } => "; an older copy of the state was put back",
    }
}

/// The message for a refused stored state.
fn refused(loc: &Location, refusal: &Refusal) -> OpenError {
    OpenError::Refused(match refusal {
        Refusal::NoState => format!(
            "no vTPM state in {}; pass --provision to create a new vTPM",
            loc.dir.display()
        ),
        r => format!(
            "refusing the vTPM state in {} (guard {}): {r}{}",
            loc.dir.display(),
            loc.guard_file.display(),
            hint(r)
        ),
    })
}

fn guard(loc: &Location) -> Result<FileGuard, OpenError> {
    FileGuard::open(&loc.guard_file).map_err(|e| OpenError::Failed(e.to_string()))
}

fn describe_other(other: &OtherSlot) -> String {
    match other {
        OtherSlot::Empty => "empty".into(),
        OtherSlot::Older { generation } => format!("generation {generation}"),
        OtherSlot::Duplicate => "a copy".into(),
        OtherSlot::Invalid(e) => format!("damaged ({e})"),
    }
}

/// Opens the stored state. An empty or missing directory is refused.
pub fn open(loc: &Location, key: StateKey) -> Result<SealedStorage, OpenError> {
    let guard = guard(loc)?;
    if !loc.dir.exists() {
        // Report what opening an empty directory would, without creating it.
        let refusal = match guard.read() {
            Ok(Some(recorded)) => Refusal::StateMissing { recorded },
            Ok(None) => Refusal::NoState,
            Err(e) => return Err(OpenError::Failed(e.to_string())),
        };
        return Err(refused(loc, &refusal));
    }
    let store = DirStore::open(&loc.dir)
        .map_err(|e| OpenError::Failed(format!("state directory {}: {e}", loc.dir.display())))?;
    match VtpmState::open(key, store, guard, OsEntropy) {
        Ok(state) => {
            let info = state.open_info();
            let text = format!(
                "state {}: generation {} from {}, other slot {}; holds {}",
                loc.dir.display(),
                info.generation,
                info.slot,
                describe_other(&info.other),
                blob_list(state.blobs())
            );
            if matches!(info.other, OtherSlot::Invalid(_)) {
                log::warn!("{text}; the damaged slot is replaced by the next commit");
            } else {
                log::info!("{text}");
            }
            Ok(SealedStorage { state })
        }
        Err(StateError::Refused(r)) => Err(refused(loc, &r)),
        Err(StateError::Guard(e)) => Err(OpenError::Failed(format!(
            "generation guard {}: {e}",
            loc.guard_file.display()
        ))),
        Err(e) => Err(OpenError::Failed(format!(
            "cannot open the state in {}: {e}",
            loc.dir.display()
        ))),
    }
}

/// Provisions (manufactures) a new, empty vTPM state in `loc` (the
/// directory is created if missing); the engine manufactures the TPM on
/// its first start. Refuses if the directory holds a state or the guard
/// remembers one.
pub fn provision(loc: &Location, key: StateKey) -> Result<SealedStorage, OpenError> {
    let guard = guard(loc)?;
    let store = DirStore::create(&loc.dir)
        .map_err(|e| OpenError::Failed(format!("state directory {}: {e}", loc.dir.display())))?;
    // Checked here first so that a stored state is named as such even when
    // the guard remembers it too.
    let failed = |e: std::io::Error| {
        OpenError::Failed(format!("state directory {}: {e}", loc.dir.display()))
    };
    if store.holds_slots().map_err(failed)? {
        return Err(OpenError::Refused(format!(
            "--provision refused: {} already holds a vTPM state; start without \
             --provision to use it",
            loc.dir.display()
        )));
    }
    // A new vTPM goes only into an empty directory: other files may be a
    // state in another format, or belong to something else.
    let mut others: Vec<String> = std::fs::read_dir(&loc.dir)
        .map_err(failed)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()
        .map_err(failed)?;
    if !others.is_empty() {
        others.sort();
        others.truncate(5);
        return Err(OpenError::Refused(format!(
            "--provision refused: {} is not empty ({}); a new vTPM is provisioned only in an \
             empty directory",
            loc.dir.display(),
            others.join(", ")
        )));
    }
    match VtpmState::provision(key, store, guard, OsEntropy, StateBlobs::new()) {
        Ok(state) => {
            log::info!(
                "provisioned a new vTPM state in {} (generation {}, guard {})",
                loc.dir.display(),
                state.generation(),
                loc.guard_file.display()
            );
            Ok(SealedStorage { state })
        }
        Err(StateError::SlotOccupied { slot }) => Err(OpenError::Refused(format!(
            "--provision refused: {} already holds a vTPM state ({slot} exists); \
             start without --provision to use it",
            loc.dir.display()
        ))),
        Err(StateError::AlreadyProvisioned { recorded }) => Err(OpenError::Refused(format!(
            "--provision refused: the generation guard {} records generation {recorded} of a \
             vTPM provisioned for {}; its state is missing, and is not silently replaced by a \
             new vTPM (remove the guard file on purpose to start over)",
            loc.guard_file.display(),
            loc.dir.display()
        ))),
        Err(e) => Err(OpenError::Failed(format!(
            "cannot provision a state in {}: {e}",
            loc.dir.display()
        ))),
    }
}

fn blob_list(blobs: &StateBlobs) -> String {
    if blobs.is_empty() {
        return "no blobs yet (the engine manufactures the TPM)".into();
    }
    blobs
        .names()
        .map(|n| format!("{n} ({} bytes)", blobs.get(n).map_or(0, <[u8]>::len)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The sealed state as the engine's [`NvStorage`], logging every commit and
/// every failure.
#[derive(Debug)]
pub struct SealedStorage {
    state: DiskState,
}

impl SealedStorage {
    fn failed(&self, what: &str, name: &str, e: StorageError) -> StorageError {
        let detail = self
            .state
            .guard()
            .last_error()
            .map(|g| format!(" (guard: {g})"))
            .unwrap_or_default();
        log::error!("state: {what} {name} failed: {e}{detail}");
        e
    }
}

impl NvStorage for SealedStorage {
    fn load(&mut self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.state.load(name)
    }

    fn store(&mut self, name: &str, data: &[u8]) -> Result<(), StorageError> {
        let before = self.state.generation();
        match NvStorage::store(&mut self.state, name, data) {
            Ok(()) if self.state.generation() != before => {
                log::debug!(
                    "state: committed {name} ({} bytes) as generation {} in {}",
                    data.len(),
                    self.state.generation(),
                    self.state.current_slot()
                );
                Ok(())
            }
            Ok(()) => Ok(()),
            Err(e) => Err(self.failed("storing", name, e)),
        }
    }

    fn delete(&mut self, name: &str) -> Result<(), StorageError> {
        match NvStorage::delete(&mut self.state, name) {
            Ok(()) => {
                log::debug!(
                    "state: deleted {name} in generation {}",
                    self.state.generation()
                );
                Ok(())
            }
            Err(StorageError::NotFound) => Err(StorageError::NotFound),
            Err(e) => Err(self.failed("deleting", name, e)),
        }
    }
}
