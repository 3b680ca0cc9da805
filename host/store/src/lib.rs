//! svtpm-store: the host side of the vTPM's persistent state.
//!
//! - [`DirStore`]: the two state slots as files in a directory, each
//!   replaced atomically (temporary file, fsync, rename, fsync of the
//!   directory), implementing `svtpm::nvstate::SlotStore`.
//! - [`OsEntropy`]: the operating system's generator as a nonce source.
//! - [`FileGuard`]: the generation guard as a file beside the state, the
//!   development stand-in for the key broker's record.
//! - [`keyfile`]: the state key as a file of 64 hex digits.
//! - [`swtpm`]: decoding swtpm's state files (plain or AES-CBC encrypted).
//! - [`import`]: turning an swtpm state directory into a sealed svtpm state.
//!
//! Everything here handles only sealed blobs, except [`swtpm`] and
//! [`import`], which run where the guest owner's swtpm state and keys are.

pub mod dir;
pub mod entropy;
pub mod guard;
pub mod import;
pub mod keyfile;
pub mod swtpm;

pub use dir::{DirLock, DirStore};
pub use entropy::OsEntropy;
pub use guard::FileGuard;
