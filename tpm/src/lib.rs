//! Raw bindings to libtpms 0.9 (the TCG reference TPM 2.0 code as packaged by
//! Debian `libtpms-dev`) and the one OpenSSL call needed before it runs.
//!
//! The declarations mirror `<libtpms/tpm_library.h>`, `<libtpms/tpm_memory.h>`
//! and `<openssl/crypto.h>`. Hosted builds link the shared system libraries;
//! freestanding builds (`target_os = "none"`) link the static archives plus
//! the C library subset they need, implemented in [`shim`]. See `build.rs`.
//!
//! Nothing here is safe to call without reading libtpms' own rules: the
//! library is a process-wide singleton, not thread-safe, and owns the buffers
//! it returns (free them with [`TPM_Free`]). The safe wrapper lives in the
//! `svtpm` crate (`svtpm::engine`).
#![cfg_attr(not(test), no_std)]
// The shim is written in terms of C's byte-wise primitives; keep the compiler
// from turning its loops back into calls to those same primitives.
#![no_builtins]
#![allow(non_camel_case_types, non_snake_case)]

extern crate alloc;

pub mod shim;

use core::ffi::{c_char, c_int, c_uint};

/// `TPM_RESULT`: a libtpms / TPM return code (0 is success).
pub type TPM_RESULT = u32;
/// `TPM_BOOL`: 0 or 1.
pub type TPM_BOOL = u8;
/// `TPM_MODIFIER_INDICATOR`: the locality of a command.
pub type TPM_MODIFIER_INDICATOR = u32;

/// `TPM_SUCCESS`.
pub const TPM_SUCCESS: TPM_RESULT = 0;
/// `TPM_BAD_PARAMETER`.
pub const TPM_BAD_PARAMETER: TPM_RESULT = 3;
/// `TPM_FAIL`: the operation failed.
pub const TPM_FAIL: TPM_RESULT = 9;
/// `TPM_SIZE`: not enough space.
pub const TPM_SIZE: TPM_RESULT = 23;
/// `TPM_RETRY`: returned by the load callback when no state exists yet.
pub const TPM_RETRY: TPM_RESULT = 0x800;

/// `TPMLIB_TPMVersion`: which TPM implementation libtpms runs.
pub type TPMLIB_TPMVersion = c_uint;
/// TPM 1.2 (libtpms' default).
pub const TPMLIB_TPM_VERSION_1_2: TPMLIB_TPMVersion = 0;
/// TPM 2.0.
pub const TPMLIB_TPM_VERSION_2: TPMLIB_TPMVersion = 1;

/// `enum TPMLIB_StateType`: the state blobs of `TPMLIB_GetState`/`SetState`.
pub type TPMLIB_StateType = c_uint;
/// Permanent state (`permall`).
pub const TPMLIB_STATE_PERMANENT: TPMLIB_StateType = 1 << 0;
/// Volatile state (`volatilestate`).
pub const TPMLIB_STATE_VOLATILE: TPMLIB_StateType = 1 << 1;
/// Save state (`savestate`, TPM 1.2 only).
pub const TPMLIB_STATE_SAVE_STATE: TPMLIB_StateType = 1 << 2;

/// `enum TPMLIB_InfoFlags` for [`TPMLIB_GetInfo`].
pub type TPMLIB_InfoFlags = c_uint;
/// Specification family, level and revision.
pub const TPMLIB_INFO_TPMSPECIFICATION: TPMLIB_InfoFlags = 1;
/// Manufacturer, version and model.
pub const TPMLIB_INFO_TPMATTRIBUTES: TPMLIB_InfoFlags = 2;
/// Implementation features (buffer sizes, RSA key sizes).
pub const TPMLIB_INFO_TPMFEATURES: TPMLIB_InfoFlags = 4;

/// `TPM_PERMANENT_ALL_NAME`: the name of the permanent state blob.
pub const TPM_PERMANENT_ALL_NAME: &str = "permall";
/// `TPM_VOLATILESTATE_NAME`: the name of the volatile state blob.
pub const TPM_VOLATILESTATE_NAME: &str = "volatilestate";
/// `TPM_SAVESTATE_NAME`: the name of the save-state blob (TPM 1.2).
pub const TPM_SAVESTATE_NAME: &str = "savestate";

/// `OPENSSL_INIT_NO_LOAD_CONFIG`: do not read `openssl.cnf`.
pub const OPENSSL_INIT_NO_LOAD_CONFIG: u64 = 0x0000_0080;

/// `tpm_nvram_init` callback.
pub type NvramInitFn = unsafe extern "C" fn() -> TPM_RESULT;
/// `tpm_nvram_loaddata` callback: on success `*data` must be allocated with
/// `TPM_Malloc` (libtpms frees it with `TPM_Free`).
pub type NvramLoadDataFn = unsafe extern "C" fn(
    data: *mut *mut u8,
    length: *mut u32,
    tpm_number: u32,
    name: *const c_char,
) -> TPM_RESULT;
/// `tpm_nvram_storedata` callback.
pub type NvramStoreDataFn = unsafe extern "C" fn(
    data: *const u8,
    length: u32,
    tpm_number: u32,
    name: *const c_char,
) -> TPM_RESULT;
/// `tpm_nvram_deletename` callback.
pub type NvramDeleteNameFn =
    unsafe extern "C" fn(tpm_number: u32, name: *const c_char, must_exist: TPM_BOOL) -> TPM_RESULT;
/// `tpm_io_init` callback.
pub type IoInitFn = unsafe extern "C" fn() -> TPM_RESULT;
/// `tpm_io_getlocality` callback.
pub type IoGetLocalityFn =
    unsafe extern "C" fn(locality: *mut TPM_MODIFIER_INDICATOR, tpm_number: u32) -> TPM_RESULT;
/// `tpm_io_getphysicalpresence` callback.
pub type IoGetPhysicalPresenceFn =
    unsafe extern "C" fn(physical_presence: *mut TPM_BOOL, tpm_number: u32) -> TPM_RESULT;

/// `struct libtpms_callbacks`. Unset callbacks (`None`) make libtpms fall back
/// to its built-in behaviour (for NV: files in `TPM_PATH`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct libtpms_callbacks {
    /// `sizeof(struct libtpms_callbacks)`.
    pub sizeOfStruct: c_int,
    pub tpm_nvram_init: Option<NvramInitFn>,
    pub tpm_nvram_loaddata: Option<NvramLoadDataFn>,
    pub tpm_nvram_storedata: Option<NvramStoreDataFn>,
    pub tpm_nvram_deletename: Option<NvramDeleteNameFn>,
    pub tpm_io_init: Option<IoInitFn>,
    pub tpm_io_getlocality: Option<IoGetLocalityFn>,
    pub tpm_io_getphysicalpresence: Option<IoGetPhysicalPresenceFn>,
}

/// `OPENSSL_INIT_SETTINGS` (opaque).
#[repr(C)]
#[derive(Debug)]
pub struct OPENSSL_INIT_SETTINGS {
    _opaque: [u8; 0],
}

extern "C" {
    /// `(major << 16) | (minor << 8) | micro` of the linked libtpms.
    pub fn TPMLIB_GetVersion() -> u32;
    /// Selects TPM 1.2 or 2.0; only before [`TPMLIB_MainInit`].
    pub fn TPMLIB_ChooseTPMVersion(ver: TPMLIB_TPMVersion) -> TPM_RESULT;
    /// Starts the TPM: loads (or manufactures) state through the callbacks.
    pub fn TPMLIB_MainInit() -> TPM_RESULT;
    /// Stops the TPM and frees its state.
    pub fn TPMLIB_Terminate();
    /// Runs one command. `*respbuffer` (of capacity `*respbufsize`) is reused
    /// or reallocated by libtpms; the caller frees it with [`TPM_Free`].
    pub fn TPMLIB_Process(
        respbuffer: *mut *mut u8,
        resp_size: *mut u32,
        respbufsize: *mut u32,
        command: *mut u8,
        command_size: u32,
    ) -> TPM_RESULT;
    /// Serialises the volatile state into a buffer freed with [`TPM_Free`].
    pub fn TPMLIB_VolatileAll_Store(buffer: *mut *mut u8, buflen: *mut u32) -> TPM_RESULT;
    /// Cancels the running command (no-op for TPM 2.0).
    pub fn TPMLIB_CancelCommand() -> TPM_RESULT;
    /// A property of the chosen TPM implementation.
    pub fn TPMLIB_GetTPMProperty(prop: c_uint, result: *mut c_int) -> TPM_RESULT;
    /// A JSON description; the string is freed with `free` (hosted only: it
    /// formats with `asprintf`, which the freestanding shim does not provide).
    pub fn TPMLIB_GetInfo(flags: TPMLIB_InfoFlags) -> *mut c_char;
    /// Installs the callbacks; copied by libtpms.
    pub fn TPMLIB_RegisterCallbacks(callbacks: *mut libtpms_callbacks) -> TPM_RESULT;
    /// Sets the I/O buffer size (0 = query); returns the size in effect.
    pub fn TPMLIB_SetBufferSize(wanted_size: u32, min_size: *mut u32, max_size: *mut u32) -> u32;
    /// Checks that the state blobs of the types in `st` can be used.
    pub fn TPMLIB_ValidateState(st: TPMLIB_StateType, flags: c_uint) -> TPM_RESULT;
    /// Provides a state blob to be used by the next [`TPMLIB_MainInit`].
    pub fn TPMLIB_SetState(st: TPMLIB_StateType, buffer: *const u8, buflen: u32) -> TPM_RESULT;
    /// Returns a state blob in a buffer freed with [`TPM_Free`].
    pub fn TPMLIB_GetState(
        st: TPMLIB_StateType,
        buffer: *mut *mut u8,
        buflen: *mut u32,
    ) -> TPM_RESULT;
    /// libtpms' allocator (the one its callbacks' buffers must come from).
    pub fn TPM_Malloc(buffer: *mut *mut u8, size: u32) -> TPM_RESULT;
    /// Frees a buffer allocated by libtpms or by [`TPM_Malloc`].
    pub fn TPM_Free(buffer: *mut u8);

    /// OpenSSL library initialisation; returns 1 on success.
    pub fn OPENSSL_init_crypto(opts: u64, settings: *const OPENSSL_INIT_SETTINGS) -> c_int;
    /// Fills `buf` with `num` bytes from OpenSSL's DRBG; 1 on success, 0 if
    /// the DRBG could not be seeded.
    pub fn RAND_bytes(buf: *mut u8, num: c_int) -> c_int;
}

extern "C" {
    /// Starts a DRTM hash sequence (`_TPM_Hash_Start`, locality 4).
    pub fn TPM_IO_Hash_Start() -> TPM_RESULT;
    /// Feeds data to the DRTM hash sequence (`_TPM_Hash_Data`).
    pub fn TPM_IO_Hash_Data(data: *const u8, data_length: u32) -> TPM_RESULT;
    /// Ends the DRTM hash sequence (`_TPM_Hash_End`): extends PCR 17.
    pub fn TPM_IO_Hash_End() -> TPM_RESULT;
    /// Reads the `tpmEstablished` flag (set by a DRTM hash sequence).
    pub fn TPM_IO_TpmEstablished_Get(tpm_established: *mut TPM_BOOL) -> TPM_RESULT;
    /// Clears `tpmEstablished`; allowed from locality 3 or 4 only (asked
    /// through the `tpm_io_getlocality` callback).
    pub fn TPM_IO_TpmEstablished_Reset() -> TPM_RESULT;
}
