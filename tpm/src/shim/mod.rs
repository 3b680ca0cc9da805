//! The C library subset that `libtpms.a` and `libcrypto.a` need on a
//! freestanding target, written in Rust.
//!
//! Each function has the C name and ABI. It is exported unmangled only when
//! `target_os = "none"` (`#[cfg_attr(target_os = "none", no_mangle)]`); on a
//! hosted target the same functions are ordinary Rust items, so host unit
//! tests exercise them without clashing with the system C library.
//!
//! What is real and what is a stub follows what the two archives use at run
//! time (see `docs/engine.md`):
//! - real: memory allocation ([`alloc`]), byte and string functions
//!   ([`string`]), character classes ([`ctype`]), `pthread_once`, thread keys
//!   and (single-threaded) locks ([`pthread`]), clocks through a registered
//!   time source ([`time`]), entropy through a registered entropy source
//!   ([`entropy`]), `setjmp`/`longjmp` ([`setjmp`]), `errno` ([`errno`]),
//!   `qsort`, `rand`, `getenv` returning NULL ([`stdlib`]);
//! - stubs that fail with `errno` set: files, stdio, sockets, dynamic
//!   loading, memory mapping, signals ([`stdio`], [`stubs`]).
//!
//! The image registers its hooks with [`set_entropy_source`] and
//! [`set_time_source`] before starting the engine.
// A C library: raw pointers in, raw pointers out, unmangled symbols.
#![allow(unsafe_code)]
#![allow(non_camel_case_types)]

pub mod alloc;
pub mod ctype;
pub mod entropy;
pub mod errno;
pub mod pthread;
pub mod setjmp;
pub mod stdio;
pub mod stdlib;
pub mod string;
pub mod stubs;
pub mod time;

pub use entropy::{has_entropy_source, set_entropy_source, EntropySource};
pub use time::{set_time_source, Clock, TimeSource};

/// Serialises host tests that touch the shim's global state (errno, hooks).
#[cfg(test)]
pub(crate) fn test_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
