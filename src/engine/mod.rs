//! The TPM 2.0 engine: a safe wrapper over libtpms.
//!
//! libtpms is a process-wide singleton, so at most one [`Engine`] exists at a
//! time ([`EngineError::AlreadyRunning`] otherwise). An engine owns an
//! [`NvStorage`] that receives the TPM's NV blobs as libtpms writes them;
//! [`Engine::stop`] hands it back so the same state can be started again
//! (a power cycle). Commands run through [`Engine::execute`] (or the
//! [`TpmBackend`] impl), which always returns a well-formed TPM response.
//!
//! Start-up order (see `docs/engine.md`): OpenSSL is initialised without a
//! config file and its random generator must produce output, TPM 2.0 is
//! selected (libtpms defaults to 1.2), callbacks are registered, optional
//! state blobs are set, then the TPM is started.

mod library;
pub mod response;
pub mod storage;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

use libtpms_sys as sys;

use crate::backend::TpmBackend;
use library::Token;
pub use storage::{MemStorage, NvStorage, StorageError};

/// Why the engine could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineError {
    /// Another [`Engine`] exists in this process (libtpms is global).
    AlreadyRunning,
    /// `OPENSSL_init_crypto` failed.
    OpensslInit,
    /// OpenSSL's random generator has no entropy (on the freestanding image:
    /// no entropy source registered, or it failed). The TPM would otherwise
    /// generate its seeds from garbage, so it is not started.
    NoEntropy,
    /// A libtpms call failed with the given libtpms/TPM return code.
    Library {
        /// The libtpms function.
        call: &'static str,
        /// Its return code.
        rc: u32,
    },
    /// libtpms refused a state blob given to [`EngineBuilder::state`].
    InvalidState {
        /// Which blob.
        kind: StateKind,
        /// libtpms' return code.
        rc: u32,
    },
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::AlreadyRunning => {
                write!(f, "a TPM engine is already running in this process")
            }
            EngineError::OpensslInit => write!(f, "OpenSSL initialisation failed"),
            EngineError::NoEntropy => write!(f, "no entropy for the TPM's random generator"),
            EngineError::Library { call, rc } => write!(f, "{call} failed with {rc:#x}"),
            EngineError::InvalidState { kind, rc } => {
                write!(f, "libtpms refused the {kind:?} state blob ({rc:#x})")
            }
        }
    }
}

impl core::error::Error for EngineError {}

/// The state blobs libtpms can export and import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateKind {
    /// The permanent state (`permall`): seeds, NV indices, persistent objects.
    Permanent,
    /// The volatile state (`volatilestate`): PCRs, sessions, loaded objects;
    /// lets a TPM resume without a new Startup.
    Volatile,
    /// The TPM 1.2 save state; always empty for TPM 2.0.
    SaveState,
}

impl StateKind {
    fn raw(self) -> sys::TPMLIB_StateType {
        match self {
            StateKind::Permanent => sys::TPMLIB_STATE_PERMANENT,
            StateKind::Volatile => sys::TPMLIB_STATE_VOLATILE,
            StateKind::SaveState => sys::TPMLIB_STATE_SAVE_STATE,
        }
    }
}

/// Starts an [`Engine`] with options; [`Engine::start`] is the plain case.
pub struct EngineBuilder {
    storage: Box<dyn NvStorage + Send>,
    states: Vec<(StateKind, Vec<u8>)>,
    buffer_size: Option<u32>,
}

impl fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineBuilder")
            .field(
                "states",
                &self
                    .states
                    .iter()
                    .map(|(k, b)| (*k, b.len()))
                    .collect::<Vec<_>>(),
            )
            .field("buffer_size", &self.buffer_size)
            .finish_non_exhaustive()
    }
}

impl EngineBuilder {
    /// Starts from the given state blob instead of what `storage` holds for
    /// it (applied before the TPM starts; libtpms then writes the permanent
    /// state to `storage`). A volatile blob needs the permanent state it
    /// belongs to, given here or already in `storage`, and resumes the TPM
    /// without a new Startup.
    pub fn state(mut self, kind: StateKind, blob: Vec<u8>) -> Self {
        self.states.push((kind, blob));
        self
    }

    /// Limits the command/response buffer to `bytes` (libtpms clamps it to
    /// its supported range; [`Engine::buffer_size`] tells what it chose). The
    /// TPM then reports this size as TPM_PT_MAX_COMMAND_SIZE and
    /// TPM_PT_MAX_RESPONSE_SIZE, so a front end with a smaller buffer than
    /// libtpms' default (CRB's 0xF80 bytes) sets it to keep well-behaved
    /// clients from sending commands that cannot fit. Without it the engine
    /// uses the largest size libtpms supports.
    pub fn buffer_size(mut self, bytes: u32) -> Self {
        self.buffer_size = Some(bytes);
        self
    }

    /// Starts the TPM. On failure the storage is dropped (libtpms did not
    /// start, so it wrote nothing to it unless the failure came later than
    /// manufacturing).
    pub fn start(self) -> Result<Engine, EngineError> {
        let mut token = Token::claim().ok_or(EngineError::AlreadyRunning)?;
        library::install_storage(&mut token, self.storage);
        match Engine::boot(&mut token, &self.states, self.buffer_size) {
            Ok(buffer_size) => Ok(Engine {
                token: Some(token),
                buffer_size,
            }),
            Err(err) => {
                library::terminate(&mut token);
                drop(library::take_storage(&mut token));
                Err(err)
            }
        }
    }
}

/// The running TPM. See the module documentation.
#[derive(Debug)]
pub struct Engine {
    /// `None` only after the TPM was stopped.
    token: Option<Token>,
    /// Largest command libtpms accepts, in bytes.
    buffer_size: usize,
}

impl Engine {
    /// Starts the TPM on `storage` (manufacturing a new TPM if it holds no
    /// state). The TPM then waits for TPM2_Startup like a freshly powered one.
    pub fn start(storage: Box<dyn NvStorage + Send>) -> Result<Engine, EngineError> {
        Engine::builder(storage).start()
    }

    /// A builder for starting with state blobs.
    pub fn builder(storage: Box<dyn NvStorage + Send>) -> EngineBuilder {
        EngineBuilder {
            storage,
            states: Vec::new(),
            buffer_size: None,
        }
    }

    /// Brings libtpms up; returns its buffer size.
    fn boot(
        token: &mut Token,
        states: &[(StateKind, Vec<u8>)],
        buffer_size: Option<u32>,
    ) -> Result<usize, EngineError> {
        if !library::init_openssl(token) {
            return Err(EngineError::OpensslInit);
        }
        if !library::openssl_random_works(token) {
            return Err(EngineError::NoEntropy);
        }
        let check = |call: &'static str, rc: u32| match rc {
            sys::TPM_SUCCESS => Ok(()),
            rc => Err(EngineError::Library { call, rc }),
        };
        check("TPMLIB_ChooseTPMVersion", library::choose_tpm2(token))?;
        check(
            "TPMLIB_RegisterCallbacks",
            library::register_callbacks(token),
        )?;
        // Always set: libtpms keeps the size across Terminate/MainInit, so an
        // engine started without the option must not inherit an earlier one.
        // libtpms clamps u32::MAX to its largest size, its own default.
        library::set_buffer_size(token, buffer_size.unwrap_or(u32::MAX));
        // libtpms needs the permanent state before it can check a volatile one.
        let ordered = states
            .iter()
            .filter(|(k, _)| *k == StateKind::Permanent)
            .chain(states.iter().filter(|(k, _)| *k != StateKind::Permanent));
        for (kind, blob) in ordered {
            match library::set_state(token, kind.raw(), blob) {
                sys::TPM_SUCCESS => {}
                rc => return Err(EngineError::InvalidState { kind: *kind, rc }),
            }
        }
        check("TPMLIB_MainInit", library::main_init(token))?;
        Ok(library::buffer_size(token) as usize)
    }

    /// Largest command (and response) the engine handles, in bytes.
    pub fn buffer_size(&self) -> usize {
        self.buffer_size
    }

    /// Executes one TPM command issued at `locality` and returns the
    /// response. Never panics: a command larger than [`Self::buffer_size`]
    /// gets `TPM_RC_COMMAND_SIZE`, a libtpms failure `TPM_RC_FAILURE`.
    pub fn execute(&mut self, locality: u8, command: &[u8]) -> Vec<u8> {
        if command.len() > self.buffer_size {
            return response::error_response(response::RC_COMMAND_SIZE);
        }
        let Some(token) = self.token.as_mut() else {
            return response::error_response(response::RC_FAILURE);
        };
        match library::process(token, locality, command) {
            Ok(resp) if response::is_well_formed(&resp) => resp,
            Ok(resp) => {
                log::error!(
                    "engine: libtpms returned a malformed response ({} bytes)",
                    resp.len()
                );
                response::error_response(response::RC_FAILURE)
            }
            Err(rc) => {
                log::error!("engine: TPMLIB_Process failed with {rc:#x}");
                response::error_response(response::RC_FAILURE)
            }
        }
    }

    /// Exports a state blob of the running TPM (e.g. for migration or to
    /// resume later through [`EngineBuilder::state`]).
    pub fn state(&mut self, kind: StateKind) -> Result<Vec<u8>, EngineError> {
        let token = self.token.as_mut().ok_or(EngineError::Library {
            call: "TPMLIB_GetState",
            rc: sys::TPM_FAIL,
        })?;
        library::get_state(token, kind.raw()).map_err(|rc| EngineError::Library {
            call: "TPMLIB_GetState",
            rc,
        })
    }

    /// The TPM's `tpmEstablished` flag (TIS ACCESS bit 0, CRB LOC_STATE
    /// bit 0): set by a DRTM sequence, cleared from locality 3 or 4.
    pub fn established(&mut self) -> Result<bool, EngineError> {
        let token = self.running_token("TPM_IO_TpmEstablished_Get")?;
        library::established(token).map_err(|rc| EngineError::Library {
            call: "TPM_IO_TpmEstablished_Get",
            rc,
        })
    }

    /// Clears `tpmEstablished` as requested from `locality`; libtpms refuses
    /// below locality 3.
    pub fn reset_established(&mut self, locality: u8) -> Result<(), EngineError> {
        let token = self.running_token("TPM_IO_TpmEstablished_Reset")?;
        match library::reset_established(token, locality) {
            sys::TPM_SUCCESS => Ok(()),
            rc => Err(EngineError::Library {
                call: "TPM_IO_TpmEstablished_Reset",
                rc,
            }),
        }
    }

    /// Runs a locality-4 `_TPM_Hash_Start/Data/End` sequence over `data`
    /// (the DRTM/H-CRTM measurement into PCR 17, or PCR 0 before Startup).
    pub fn hash_sequence(&mut self, data: &[u8]) -> Result<(), EngineError> {
        let token = self.running_token("TPM_IO_Hash")?;
        match library::hash_sequence(token, data) {
            sys::TPM_SUCCESS => Ok(()),
            rc => Err(EngineError::Library {
                call: "TPM_IO_Hash",
                rc,
            }),
        }
    }

    fn running_token(&mut self, call: &'static str) -> Result<&mut Token, EngineError> {
        self.token.as_mut().ok_or(EngineError::Library {
            call,
            rc: sys::TPM_FAIL,
        })
    }

    /// Stops the TPM (like a power loss: no Shutdown is sent) and returns its
    /// storage, which holds everything libtpms persisted.
    pub fn stop(mut self) -> Box<dyn NvStorage + Send> {
        // The token is always present here: only stop/drop take it.
        self.shutdown()
            .unwrap_or_else(|| Box::new(MemStorage::new()))
    }

    fn shutdown(&mut self) -> Option<Box<dyn NvStorage + Send>> {
        let mut token = self.token.take()?;
        library::terminate(&mut token);
        library::take_storage(&mut token)
        // `token` drops here, allowing the next engine.
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        drop(self.shutdown());
    }
}

impl TpmBackend for Engine {
    fn execute(&mut self, locality: u8, command: &[u8]) -> Vec<u8> {
        Engine::execute(self, locality, command)
    }
}
