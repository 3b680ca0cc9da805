//! Importing an swtpm TPM 2.0 state directory: its `permall` (and
//! `volatilestate` / `savestate` when present) are decoded with
//! [`swtpm::decode`](crate::swtpm::decode) and provisioned, as one set, into a
//! sealed svtpm state on any `SlotStore`. Provisioning refuses a store that
//! already holds a state, so an import never replaces one.
//!
//! [`import_to_dir`] is the whole job of the `svtpm-import-swtpm` tool (and
//! `cargo xtask import-swtpm`): a new state directory sealed under a state
//! key, with its generation guard file.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use svtpm::nvstate::payload::PayloadError;
use svtpm::nvstate::state::{StateError, VtpmState};
use svtpm::nvstate::{EntropySource, GenerationGuard, KeyId, SlotStore, StateBlobs, StateKey};

use crate::guard::{self, FileGuard, GuardFileError};
use crate::swtpm::{self, SwtpmError, SwtpmKey};
use crate::{DirStore, OsEntropy};

/// Blobs an swtpm TPM 2.0 directory may hold: (file, libtpms name, required).
const FILES: [(&str, &str, bool); 3] = [
    ("tpm2-00.permall", "permall", true),
    ("tpm2-00.volatilestate", "volatilestate", false),
    ("tpm2-00.savestate", "savestate", false),
];

/// Why an import failed.
#[derive(Debug)]
pub enum ImportError {
    /// A file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        error: io::Error,
    },
    /// The directory has no `tpm2-00.permall`.
    MissingPermall {
        /// The directory.
        dir: PathBuf,
        /// Whether it holds a TPM 1.2 state (`tpm-00.permall`) instead.
        tpm12: bool,
    },
    /// A file is not a valid swtpm blob (or the key is wrong).
    Swtpm {
        /// The file.
        path: PathBuf,
        /// Why.
        error: SwtpmError,
    },
    /// The decoded `permall` is not a libtpms permanent-state blob.
    NotPermall {
        /// The file.
        path: PathBuf,
    },
    /// The blobs do not fit svtpm's state limits.
    TooLarge(PayloadError),
    /// Provisioning the sealed state failed (e.g. the store is not empty).
    State(StateError),
    /// The generation guard file cannot be used.
    Guard(GuardFileError),
    /// The output directory already holds a state (a slot file).
    OutputNotEmpty {
        /// The directory.
        dir: PathBuf,
    },
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            ImportError::MissingPermall { dir, tpm12: true } => write!(
                f,
                "{} holds a TPM 1.2 swtpm state; only TPM 2.0 can be imported",
                dir.display()
            ),
            ImportError::MissingPermall { dir, tpm12: false } => {
                write!(f, "{} has no tpm2-00.permall", dir.display())
            }
            ImportError::Swtpm { path, error } => write!(f, "{}: {error}", path.display()),
            ImportError::NotPermall { path } => {
                write!(f, "{}: not a libtpms permanent state", path.display())
            }
            ImportError::TooLarge(e) => write!(f, "{e}"),
            ImportError::State(e) => write!(f, "{e}"),
            ImportError::Guard(e) => write!(f, "{e}"),
            ImportError::OutputNotEmpty { dir } => write!(
                f,
                "{} already holds a vTPM state; an import never replaces one",
                dir.display()
            ),
        }
    }
}

impl std::error::Error for ImportError {}

/// Reads and decodes the state blobs of the swtpm TPM 2.0 state directory
/// `dir`. `key` is the swtpm state key if the state is encrypted.
pub fn read_swtpm_dir(dir: &Path, key: Option<&SwtpmKey>) -> Result<StateBlobs, ImportError> {
    let mut blobs = StateBlobs::new();
    for (file, name, required) in FILES {
        let path = dir.join(file);
        let raw = match fs::read(&path) {
            Ok(raw) => raw,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !required => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let tpm12 = dir.join("tpm-00.permall").exists();
                return Err(ImportError::MissingPermall {
                    dir: dir.to_path_buf(),
                    tpm12,
                });
            }
            Err(error) => return Err(ImportError::Io { path, error }),
        };
        let blob = swtpm::decode(&raw, key).map_err(|error| ImportError::Swtpm {
            path: path.clone(),
            error,
        })?;
        if name == "permall" && !swtpm::looks_like_permall(&blob) {
            return Err(ImportError::NotPermall { path });
        }
        blobs.insert(name, &blob).map_err(ImportError::TooLarge)?;
    }
    Ok(blobs)
}

/// Imports the swtpm state in `dir` as a new sealed state (generation 1) on
/// `store`, sealed under `state_key`. Refuses if `store` or `guard` already
/// hold a state.
pub fn import_swtpm_dir<S: SlotStore, G: GenerationGuard, E: EntropySource>(
    dir: &Path,
    swtpm_key: Option<&SwtpmKey>,
    state_key: StateKey,
    store: S,
    guard: G,
    entropy: E,
) -> Result<VtpmState<S, G, E>, ImportError> {
    let blobs = read_swtpm_dir(dir, swtpm_key)?;
    VtpmState::provision(state_key, store, guard, entropy, blobs).map_err(ImportError::State)
}

/// What [`import_to_dir`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// Generation of the new state (always 1).
    pub generation: u64,
    /// Identifier of the key it is sealed under.
    pub key_id: KeyId,
    /// The blobs imported, with their sizes in bytes.
    pub blobs: Vec<(String, usize)>,
    /// Size of the sealed slot file.
    pub sealed_len: usize,
}

/// Imports the swtpm state in `swtpm_dir` into the new svtpm state
/// directory `out` (created if missing; it must hold no state), sealed
/// under `state_key`, recording generation 1 in `guard_file` (which must
/// not hold a record yet and must lie outside `out`).
pub fn import_to_dir(
    swtpm_dir: &Path,
    swtpm_key: Option<&SwtpmKey>,
    state_key: StateKey,
    out: &Path,
    guard_file: &Path,
) -> Result<Imported, ImportError> {
    let blobs = read_swtpm_dir(swtpm_dir, swtpm_key)?;
    let store = DirStore::create(out).map_err(|error| ImportError::Io {
        path: out.to_path_buf(),
        error,
    })?;
    let io = |error| ImportError::Io {
        path: out.to_path_buf(),
        error,
    };
    let _lock = store.lock().map_err(io)?;
    if store.holds_slots().map_err(io)? {
        return Err(ImportError::OutputNotEmpty {
            dir: out.to_path_buf(),
        });
    }
    guard::check_outside(guard_file, out).map_err(ImportError::Guard)?;
    let guard = FileGuard::open(guard_file).map_err(ImportError::Guard)?;
    let key_id = state_key.id();
    let state = VtpmState::provision(state_key, store, guard, OsEntropy, blobs)
        .map_err(ImportError::State)?;
    let sealed_len = fs::metadata(state.store().slot_path(state.current_slot()))
        .map_err(io)?
        .len() as usize;
    let blobs = state
        .blobs()
        .names()
        .map(|n| (n.to_string(), state.blob(n).map_or(0, <[u8]>::len)))
        .collect();
    Ok(Imported {
        generation: state.generation(),
        key_id,
        blobs,
        sealed_len,
    })
}
