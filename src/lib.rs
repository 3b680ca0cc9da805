//! svtpm: a secure, persistent vTPM for AMD SEV-SNP confidential VMs.
//!
//! This crate is the component itself. It is `no_std` (with `alloc`) so the same
//! code runs inside the freestanding image and in host tests; `std` is only used
//! under `cfg(test)`.
//!
//! Module map:
//! - [`backend`]: the seam between TPM front ends and whatever executes commands.
//! - [`engine`]: the safe wrapper over the libtpms TPM 2.0 engine.
//! - [`tis`]: the TPM FIFO (TIS/PTP) interface as a pure register model.
//! - [`crb`]: the TPM CRB interface as a pure register model.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod arch;
pub mod attest;
pub mod backend;
pub mod crb;
pub mod engine;
pub mod hostchan;
pub mod mmio;
pub mod nvstate;
pub mod platform;
pub mod tis;
pub mod unlock;
