//! Importing an swtpm TPM 2.0 state directory: its `permall` (and
//! `volatilestate` / `savestate` when present) are decoded with
//! [`swtpm::decode`](crate::swtpm::decode) and provisioned, as one set, into a
//! sealed svtpm state on any `SlotStore`. Provisioning refuses a store that
//! already holds a state, so an import never replaces one.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use svtpm::nvstate::payload::PayloadError;
use svtpm::nvstate::state::{StateError, VtpmState};
use svtpm::nvstate::{EntropySource, GenerationGuard, SlotStore, StateBlobs, StateKey};

use crate::swtpm::{self, SwtpmError, SwtpmKey};

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
