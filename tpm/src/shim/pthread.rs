//! The pthread calls OpenSSL's threading layer makes. The image runs the
//! library on one thread, so: `pthread_once` runs its routine once,
//! thread-specific keys are one value per key, and read/write locks always
//! succeed at once (no other thread can hold them).

use core::ffi::{c_int, c_uint, c_ulong, c_void};
use core::sync::atomic::{AtomicI32, Ordering};

use super::errno::{EAGAIN, EINVAL};

/// `pthread_once_t` states: 0 (`PTHREAD_ONCE_INIT`), running, done.
const ONCE_RUNNING: i32 = 1;
const ONCE_DONE: i32 = 2;

/// `int pthread_once(pthread_once_t *once, void (*init)(void))`.
///
/// # Safety
/// `once` points to a live, aligned `pthread_once_t` (an `int`) initialised
/// to `PTHREAD_ONCE_INIT`; `init` is a valid function or NULL.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn pthread_once(
    once: *mut c_int,
    init: Option<unsafe extern "C" fn()>,
) -> c_int {
    if once.is_null() {
        return EINVAL;
    }
    // SAFETY: per the contract, an aligned int that lives for the call.
    let state = unsafe { AtomicI32::from_ptr(once) };
    if state
        .compare_exchange(0, ONCE_RUNNING, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
    {
        if let Some(init) = init {
            // SAFETY: per the contract, a valid C function.
            unsafe { init() };
        }
        state.store(ONCE_DONE, Ordering::Release);
    }
    // Already done, or a recursive call from inside `init` (which glibc would
    // deadlock on): either way there is nothing to wait for here.
    0
}

/// How many keys can exist at once (OpenSSL uses a handful).
pub const KEYS_MAX: usize = 64;

#[derive(Clone, Copy)]
struct KeySlot {
    used: bool,
    value: usize,
}

static KEYS: spin::Mutex<[KeySlot; KEYS_MAX]> = spin::Mutex::new(
    [KeySlot {
        used: false,
        value: 0,
    }; KEYS_MAX],
);

/// `int pthread_key_create(pthread_key_t *key, void (*destructor)(void *))`.
/// Destructors never run: the one thread never exits.
///
/// # Safety
/// `key` is writable.
#[cfg_attr(target_os = "none", no_mangle)]
pub unsafe extern "C" fn pthread_key_create(
    key: *mut c_uint,
    _destructor: Option<unsafe extern "C" fn(*mut c_void)>,
) -> c_int {
    if key.is_null() {
        return EINVAL;
    }
    let mut keys = KEYS.lock();
    let Some(index) = keys.iter().position(|k| !k.used) else {
        return EAGAIN;
    };
    keys[index] = KeySlot {
        used: true,
        value: 0,
    };
    // SAFETY: per the contract; index < KEYS_MAX fits a c_uint.
    unsafe { *key = index as c_uint };
    0
}

/// `int pthread_key_delete(pthread_key_t key)`.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn pthread_key_delete(key: c_uint) -> c_int {
    match KEYS.lock().get_mut(key as usize) {
        Some(slot) if slot.used => {
            *slot = KeySlot {
                used: false,
                value: 0,
            };
            0
        }
        _ => EINVAL,
    }
}

/// `void *pthread_getspecific(pthread_key_t key)`: NULL for unknown keys.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn pthread_getspecific(key: c_uint) -> *mut c_void {
    match KEYS.lock().get(key as usize) {
        Some(slot) if slot.used => slot.value as *mut c_void,
        _ => core::ptr::null_mut(),
    }
}

/// `int pthread_setspecific(pthread_key_t key, const void *value)`.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn pthread_setspecific(key: c_uint, value: *const c_void) -> c_int {
    match KEYS.lock().get_mut(key as usize) {
        Some(slot) if slot.used => {
            slot.value = value as usize;
            0
        }
        _ => EINVAL,
    }
}

/// `pthread_t pthread_self(void)`: the one thread.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn pthread_self() -> c_ulong {
    1
}

/// `int pthread_rwlock_init(pthread_rwlock_t *, const pthread_rwlockattr_t *)`.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn pthread_rwlock_init(_lock: *mut c_void, _attr: *const c_void) -> c_int {
    0
}

/// `int pthread_rwlock_destroy(pthread_rwlock_t *)`.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn pthread_rwlock_destroy(_lock: *mut c_void) -> c_int {
    0
}

/// `int pthread_rwlock_rdlock(pthread_rwlock_t *)`: uncontended by design.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn pthread_rwlock_rdlock(_lock: *mut c_void) -> c_int {
    0
}

/// `int pthread_rwlock_wrlock(pthread_rwlock_t *)`: uncontended by design.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn pthread_rwlock_wrlock(_lock: *mut c_void) -> c_int {
    0
}

/// `int pthread_rwlock_unlock(pthread_rwlock_t *)`.
#[cfg_attr(target_os = "none", no_mangle)]
pub extern "C" fn pthread_rwlock_unlock(_lock: *mut c_void) -> c_int {
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    static RUNS: AtomicUsize = AtomicUsize::new(0);
    static mut NESTED_ONCE: c_int = 0;

    extern "C" fn count() {
        RUNS.fetch_add(1, Ordering::SeqCst);
    }

    extern "C" fn recurse() {
        RUNS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: a live, aligned once variable; a recursive call must not
        // run the routine again nor hang.
        let rc = unsafe { pthread_once(&raw mut NESTED_ONCE, Some(recurse)) };
        assert_eq!(rc, 0);
    }

    #[test]
    fn once_runs_exactly_once() {
        let mut once: c_int = 0;
        let before = RUNS.load(Ordering::SeqCst);
        for _ in 0..3 {
            // SAFETY: `once` is a live, aligned int starting at 0.
            assert_eq!(unsafe { pthread_once(&mut once, Some(count)) }, 0);
        }
        assert_eq!(once, ONCE_DONE);
        // SAFETY: as above.
        unsafe { pthread_once(&raw mut NESTED_ONCE, Some(recurse)) };
        assert_eq!(
            RUNS.load(Ordering::SeqCst) - before,
            2,
            "count once + recurse once"
        );
    }

    #[test]
    fn keys_store_values_per_key() {
        let _g = crate::shim::test_lock();
        let (mut a, mut b) = (0, 0);
        // SAFETY: valid out-pointers.
        unsafe {
            assert_eq!(pthread_key_create(&mut a, None), 0);
            assert_eq!(pthread_key_create(&mut b, None), 0);
        }
        assert_ne!(a, b);
        assert!(pthread_getspecific(a).is_null(), "new keys hold NULL");
        assert_eq!(pthread_setspecific(a, 0x1234 as *const c_void), 0);
        assert_eq!(pthread_setspecific(b, 0x5678 as *const c_void), 0);
        assert_eq!(pthread_getspecific(a) as usize, 0x1234);
        assert_eq!(pthread_getspecific(b) as usize, 0x5678);
        assert_eq!(pthread_key_delete(a), 0);
        assert_eq!(pthread_key_delete(a), EINVAL);
        assert!(pthread_getspecific(a).is_null());
        assert_eq!(pthread_setspecific(a, 0x99 as *const c_void), EINVAL);
        assert_eq!(
            pthread_setspecific(KEYS_MAX as c_uint, 0x99 as *const c_void),
            EINVAL
        );
        assert_eq!(pthread_key_delete(b), 0);
    }

    #[test]
    fn keys_run_out_with_eagain() {
        let _g = crate::shim::test_lock();
        let mut made = Vec::new();
        loop {
            let mut k = 0;
            // SAFETY: valid out-pointer.
            match unsafe { pthread_key_create(&mut k, None) } {
                0 => made.push(k),
                rc => {
                    assert_eq!(rc, EAGAIN);
                    break;
                }
            }
            assert!(made.len() <= KEYS_MAX);
        }
        for k in made {
            assert_eq!(pthread_key_delete(k), 0);
        }
    }
}
