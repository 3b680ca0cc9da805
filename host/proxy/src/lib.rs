//! svtpm-proxy: the host end of svtpm's host channel.
//!
//! svtpm (inside the VM) reaches everything outside through a 2 MiB shared
//! mailbox (`svtpm::hostchan`); this daemon serves the other end:
//!
//! - [`chanfile`]: the channel file QEMU maps as guest memory, mapped
//!   shared here;
//! - [`serve`]: the polling loop, publishing answers and logging each
//!   request;
//! - [`handler`]: HELLO, LOG, the sealed state slots (`svtpm_store::DirStore`),
//!   HTTP to the key broker, SNP guest requests to the simulated PSP;
//! - [`relay`]: the key broker's base URL and the HTTP exchange;
//! - [`faults`]: fault injection for negative tests.
//!
//! As a relay it only handles what svtpm lets the host see: sealed
//! (encrypted and authenticated) state blobs, key broker messages whose
//! secrets are encrypted to svtpm's ephemeral key, and SNP messages
//! encrypted under the VMPCK. The simulated PSP is the exception, and a
//! development-only one: it holds the secrets page and the test VCEK key,
//! standing in for hardware the host cannot reach on SEV-SNP. See
//! `docs/proxy.md`.

pub mod chanfile;
pub mod faults;
pub mod handler;
pub mod relay;
pub mod serve;
