//! The only code that calls libtpms: exclusive access to the process-wide
//! library ([`Token`]), the callbacks libtpms calls back into (NV storage,
//! locality), and thin wrappers that turn its pointer-and-length calls into
//! slices and vectors.
//!
//! libtpms is a global singleton and not thread-safe. Every call goes through
//! a `&mut Token`, and at most one `Token` exists in the process, so two calls
//! can never overlap. The callbacks reach the current [`NvStorage`] through
//! [`CONTEXT`]; they run synchronously inside the library calls made here.
// FFI into libtpms and OpenSSL, and C callbacks that receive raw pointers.
#![allow(unsafe_code)]

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ffi::{c_char, CStr};
use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering};

use libtpms_sys as sys;

use super::storage::{NvStorage, StorageError};

/// What the callbacks need: where NV blobs go and the current locality.
struct Context {
    storage: Option<Box<dyn NvStorage + Send>>,
    locality: u8,
}

/// Shared between the engine (outside library calls) and the callbacks
/// (inside them). Callbacks only `try_lock`, so a bug can make them fail but
/// never deadlock.
static CONTEXT: spin::Mutex<Context> = spin::Mutex::new(Context {
    storage: None,
    locality: 0,
});

/// Whether a [`Token`] exists.
static CLAIMED: AtomicBool = AtomicBool::new(false);

/// Proof of exclusive use of libtpms in this process. Dropping it releases
/// the claim (it does not stop the TPM; the owner does that first).
#[derive(Debug)]
pub(super) struct Token {
    _private: (),
}

impl Token {
    /// The token, unless one already exists.
    pub(super) fn claim() -> Option<Token> {
        CLAIMED
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| Token { _private: () })
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        CLAIMED.store(false, Ordering::Release);
    }
}

/// Hands `storage` to the callbacks.
pub(super) fn install_storage(_token: &mut Token, storage: Box<dyn NvStorage + Send>) {
    CONTEXT.lock().storage = Some(storage);
}

/// Takes the storage back from the callbacks.
pub(super) fn take_storage(_token: &mut Token) -> Option<Box<dyn NvStorage + Send>> {
    CONTEXT.lock().storage.take()
}

/// Initialises OpenSSL without reading a configuration file; must come
/// before libtpms first uses OpenSSL.
pub(super) fn init_openssl(_token: &mut Token) -> bool {
    // SAFETY: no pointers are passed (NULL settings is allowed); OpenSSL's
    // initialisation is idempotent.
    unsafe { sys::OPENSSL_init_crypto(sys::OPENSSL_INIT_NO_LOAD_CONFIG, ptr::null()) == 1 }
}

/// Whether OpenSSL's DRBG produces output, i.e. it found entropy to seed
/// from. libtpms ignores `RAND_bytes` failures (it would take uninitialised
/// bytes as entropy), so the engine checks before starting the TPM.
pub(super) fn openssl_random_works(_token: &mut Token) -> bool {
    let mut probe = [0u8; 32];
    // SAFETY: `probe` is writable for its length, which fits a c_int.
    unsafe { sys::RAND_bytes(probe.as_mut_ptr(), probe.len() as i32) == 1 }
}

/// Selects TPM 2.0 (libtpms defaults to 1.2).
pub(super) fn choose_tpm2(_token: &mut Token) -> sys::TPM_RESULT {
    // SAFETY: plain value argument; the token rules out concurrent calls.
    unsafe { sys::TPMLIB_ChooseTPMVersion(sys::TPMLIB_TPM_VERSION_2) }
}

/// Registers this module's callbacks.
pub(super) fn register_callbacks(_token: &mut Token) -> sys::TPM_RESULT {
    let mut callbacks = sys::libtpms_callbacks {
        sizeOfStruct: core::mem::size_of::<sys::libtpms_callbacks>() as i32,
        tpm_nvram_init: Some(nvram_init),
        tpm_nvram_loaddata: Some(nvram_loaddata),
        tpm_nvram_storedata: Some(nvram_storedata),
        tpm_nvram_deletename: Some(nvram_deletename),
        tpm_io_init: Some(io_init),
        tpm_io_getlocality: Some(io_getlocality),
        tpm_io_getphysicalpresence: Some(io_getphysicalpresence),
    };
    // SAFETY: `callbacks` is a valid, correctly sized struct that libtpms
    // copies before returning; the functions in it live for the program.
    unsafe { sys::TPMLIB_RegisterCallbacks(&mut callbacks) }
}

/// Caches a state blob for the next [`main_init`].
pub(super) fn set_state(
    _token: &mut Token,
    kind: sys::TPMLIB_StateType,
    blob: &[u8],
) -> sys::TPM_RESULT {
    let Ok(len) = u32::try_from(blob.len()) else {
        return sys::TPM_SIZE;
    };
    if blob.is_empty() {
        // A NULL buffer would mean "clear the cached state", not "empty".
        return sys::TPM_BAD_PARAMETER;
    }
    // SAFETY: `blob` is valid for `len` bytes; libtpms copies it.
    unsafe { sys::TPMLIB_SetState(kind, blob.as_ptr(), len) }
}

/// Starts the TPM (loads or manufactures its state through the callbacks).
pub(super) fn main_init(_token: &mut Token) -> sys::TPM_RESULT {
    // SAFETY: no arguments; callbacks are registered and CONTEXT is set up.
    unsafe { sys::TPMLIB_MainInit() }
}

/// Stops the TPM and frees its memory.
pub(super) fn terminate(_token: &mut Token) {
    // SAFETY: no arguments; safe to call whether or not MainInit succeeded.
    unsafe { sys::TPMLIB_Terminate() }
}

/// The command/response buffer size libtpms is using.
pub(super) fn buffer_size(_token: &mut Token) -> u32 {
    // SAFETY: 0 queries the size; NULL min/max pointers are allowed.
    unsafe { sys::TPMLIB_SetBufferSize(0, ptr::null_mut(), ptr::null_mut()) }
}

/// Asks libtpms to use a `bytes`-sized command/response buffer from the next
/// [`main_init`] on; it clamps the value to its own minimum and maximum.
pub(super) fn set_buffer_size(_token: &mut Token, bytes: u32) {
    // SAFETY: a non-zero size sets the buffer size; NULL min/max pointers
    // are allowed. libtpms only records the value here.
    unsafe { sys::TPMLIB_SetBufferSize(bytes, ptr::null_mut(), ptr::null_mut()) };
}

/// Copies a libtpms-owned buffer into a vector and frees it.
///
/// # Safety
/// `buf` is NULL or a libtpms allocation valid for `len` bytes that nothing
/// else uses or frees.
unsafe fn take_buffer(buf: *mut u8, len: usize) -> Vec<u8> {
    if buf.is_null() {
        return Vec::new();
    }
    // SAFETY: per the contract, `buf` is valid for `len` bytes.
    let v = unsafe { core::slice::from_raw_parts(buf, len) }.to_vec();
    // SAFETY: per the contract, `buf` came from libtpms' allocator and is
    // not used after this.
    unsafe { sys::TPM_Free(buf) };
    v
}

/// Runs one command at `locality`; the response, or libtpms' error code.
pub(super) fn process(
    _token: &mut Token,
    locality: u8,
    command: &[u8],
) -> Result<Vec<u8>, sys::TPM_RESULT> {
    let len = u32::try_from(command.len()).map_err(|_| sys::TPM_SIZE)?;
    CONTEXT.lock().locality = locality;
    // libtpms takes a mutable command pointer; give it a private copy.
    let mut cmd = command.to_vec();
    let mut resp: *mut u8 = ptr::null_mut();
    let mut resp_size: u32 = 0;
    let mut resp_cap: u32 = 0;
    // SAFETY: `cmd` is valid for `len` bytes; the out-pointers are valid;
    // libtpms allocates `resp` (starting from NULL) with its allocator.
    let rc = unsafe {
        sys::TPMLIB_Process(
            &mut resp,
            &mut resp_size,
            &mut resp_cap,
            cmd.as_mut_ptr(),
            len,
        )
    };
    // libtpms never reports more than the buffer it allocated; clamp anyway.
    let n = resp_size.min(resp_cap) as usize;
    // SAFETY: `resp` is NULL or libtpms' response buffer of `resp_cap` bytes,
    // owned by us now.
    let out = unsafe { take_buffer(resp, n) };
    if rc == sys::TPM_SUCCESS {
        Ok(out)
    } else {
        Err(rc)
    }
}

/// A state blob of the running TPM.
pub(super) fn get_state(
    _token: &mut Token,
    kind: sys::TPMLIB_StateType,
) -> Result<Vec<u8>, sys::TPM_RESULT> {
    let mut buf: *mut u8 = ptr::null_mut();
    let mut len: u32 = 0;
    // SAFETY: the out-pointers are valid; libtpms allocates `buf`.
    let rc = unsafe { sys::TPMLIB_GetState(kind, &mut buf, &mut len) };
    // SAFETY: on success `buf` holds `len` bytes from libtpms' allocator; on
    // failure it is NULL or still ours to free (take_buffer handles both; the
    // length is only trusted on success).
    let blob = unsafe {
        take_buffer(
            buf,
            if rc == sys::TPM_SUCCESS {
                len as usize
            } else {
                0
            },
        )
    };
    if rc == sys::TPM_SUCCESS {
        Ok(blob)
    } else {
        Err(rc)
    }
}

/// The `tpmEstablished` flag.
pub(super) fn established(_token: &mut Token) -> Result<bool, sys::TPM_RESULT> {
    let mut flag: sys::TPM_BOOL = 0;
    // SAFETY: the out-pointer is valid.
    let rc = unsafe { sys::TPM_IO_TpmEstablished_Get(&mut flag) };
    if rc == sys::TPM_SUCCESS {
        Ok(flag != 0)
    } else {
        Err(rc)
    }
}

/// Clears `tpmEstablished` as a request from `locality`.
pub(super) fn reset_established(_token: &mut Token, locality: u8) -> sys::TPM_RESULT {
    CONTEXT.lock().locality = locality;
    // SAFETY: no arguments; the locality comes through the callback.
    unsafe { sys::TPM_IO_TpmEstablished_Reset() }
}

/// Runs a whole `_TPM_Hash_Start` / `_TPM_Hash_Data` / `_TPM_Hash_End`
/// sequence over `data`.
pub(super) fn hash_sequence(_token: &mut Token, data: &[u8]) -> sys::TPM_RESULT {
    // SAFETY: no arguments.
    let rc = unsafe { sys::TPM_IO_Hash_Start() };
    if rc != sys::TPM_SUCCESS {
        return rc;
    }
    for chunk in data.chunks(4096) {
        // SAFETY: `chunk` is valid for its length (at most 4096, fits u32).
        let rc = unsafe { sys::TPM_IO_Hash_Data(chunk.as_ptr(), chunk.len() as u32) };
        if rc != sys::TPM_SUCCESS {
            return rc;
        }
    }
    // SAFETY: no arguments.
    unsafe { sys::TPM_IO_Hash_End() }
}

/// The NUL-terminated blob name libtpms passes, if it is valid UTF-8.
///
/// # Safety
/// `name` is NULL or points to a NUL-terminated string valid for the call.
unsafe fn blob_name<'a>(name: *const c_char) -> Option<&'a str> {
    if name.is_null() {
        return None;
    }
    // SAFETY: per the contract, `name` is a valid C string.
    unsafe { CStr::from_ptr(name) }.to_str().ok()
}

extern "C" fn nvram_init() -> sys::TPM_RESULT {
    sys::TPM_SUCCESS
}

/// # Safety
/// Called by libtpms with valid out-pointers and a C string name.
unsafe extern "C" fn nvram_loaddata(
    data: *mut *mut u8,
    length: *mut u32,
    _tpm_number: u32,
    name: *const c_char,
) -> sys::TPM_RESULT {
    if data.is_null() || length.is_null() {
        return sys::TPM_FAIL;
    }
    // SAFETY: libtpms passes a C string (or NULL, handled).
    let Some(name) = (unsafe { blob_name(name) }) else {
        return sys::TPM_FAIL;
    };
    let Some(mut ctx) = CONTEXT.try_lock() else {
        return sys::TPM_FAIL;
    };
    let Some(storage) = ctx.storage.as_mut() else {
        return sys::TPM_FAIL;
    };
    let blob = match storage.load(name) {
        Ok(Some(blob)) => blob,
        Ok(None) => return sys::TPM_RETRY,
        Err(err) => {
            log::error!("engine: loading NV blob {name} failed: {err}");
            return sys::TPM_FAIL;
        }
    };
    let Ok(len) = u32::try_from(blob.len()) else {
        log::error!("engine: NV blob {name} is too large ({} bytes)", blob.len());
        return sys::TPM_SIZE;
    };
    let mut buf: *mut u8 = ptr::null_mut();
    // SAFETY: valid out-pointer; at least one byte so the buffer is never NULL.
    let rc = unsafe { sys::TPM_Malloc(&mut buf, len.max(1)) };
    if rc != sys::TPM_SUCCESS || buf.is_null() {
        return sys::TPM_SIZE;
    }
    // SAFETY: `buf` has room for `len` bytes and does not overlap `blob`;
    // `data`/`length` are valid out-pointers (checked non-NULL above), and
    // libtpms takes ownership of `buf` (freed with TPM_Free/free).
    unsafe {
        ptr::copy_nonoverlapping(blob.as_ptr(), buf, blob.len());
        *data = buf;
        *length = len;
    }
    sys::TPM_SUCCESS
}

/// # Safety
/// Called by libtpms with `data` valid for `length` bytes and a C string name.
unsafe extern "C" fn nvram_storedata(
    data: *const u8,
    length: u32,
    _tpm_number: u32,
    name: *const c_char,
) -> sys::TPM_RESULT {
    // SAFETY: libtpms passes a C string (or NULL, handled).
    let Some(name) = (unsafe { blob_name(name) }) else {
        return sys::TPM_FAIL;
    };
    let blob: &[u8] = if length == 0 {
        &[]
    } else if data.is_null() {
        return sys::TPM_FAIL;
    } else {
        // SAFETY: libtpms passes `length` valid bytes at `data`.
        unsafe { core::slice::from_raw_parts(data, length as usize) }
    };
    let Some(mut ctx) = CONTEXT.try_lock() else {
        return sys::TPM_FAIL;
    };
    let Some(storage) = ctx.storage.as_mut() else {
        return sys::TPM_FAIL;
    };
    match storage.store(name, blob) {
        Ok(()) => sys::TPM_SUCCESS,
        Err(err) => {
            // The TPM must not acknowledge a write that did not persist.
            log::error!("engine: storing NV blob {name} ({length} bytes) failed: {err}");
            sys::TPM_FAIL
        }
    }
}

/// # Safety
/// Called by libtpms with a C string name.
unsafe extern "C" fn nvram_deletename(
    _tpm_number: u32,
    name: *const c_char,
    must_exist: sys::TPM_BOOL,
) -> sys::TPM_RESULT {
    // SAFETY: libtpms passes a C string (or NULL, handled).
    let Some(name) = (unsafe { blob_name(name) }) else {
        return sys::TPM_FAIL;
    };
    let Some(mut ctx) = CONTEXT.try_lock() else {
        return sys::TPM_FAIL;
    };
    let Some(storage) = ctx.storage.as_mut() else {
        return sys::TPM_FAIL;
    };
    match storage.delete(name) {
        Ok(()) => sys::TPM_SUCCESS,
        Err(StorageError::NotFound) if must_exist == 0 => sys::TPM_SUCCESS,
        Err(err) => {
            log::error!("engine: deleting NV blob {name} failed: {err}");
            sys::TPM_FAIL
        }
    }
}

extern "C" fn io_init() -> sys::TPM_RESULT {
    sys::TPM_SUCCESS
}

/// # Safety
/// Called by libtpms with a valid out-pointer.
unsafe extern "C" fn io_getlocality(
    locality: *mut sys::TPM_MODIFIER_INDICATOR,
    _tpm_number: u32,
) -> sys::TPM_RESULT {
    if locality.is_null() {
        return sys::TPM_FAIL;
    }
    let current = CONTEXT.try_lock().map_or(0, |ctx| ctx.locality);
    // SAFETY: non-NULL out-pointer from libtpms.
    unsafe { *locality = sys::TPM_MODIFIER_INDICATOR::from(current) };
    sys::TPM_SUCCESS
}

/// # Safety
/// Called by libtpms with a valid out-pointer.
unsafe extern "C" fn io_getphysicalpresence(
    physical_presence: *mut sys::TPM_BOOL,
    _tpm_number: u32,
) -> sys::TPM_RESULT {
    if physical_presence.is_null() {
        return sys::TPM_FAIL;
    }
    // SAFETY: non-NULL out-pointer from libtpms.
    unsafe { *physical_presence = 0 };
    sys::TPM_SUCCESS
}
