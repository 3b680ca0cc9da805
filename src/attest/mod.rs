//! Attestation: proving what svtpm is to the guest owner's key broker.
//!
//! - [`snp`]: SEV-SNP guest request messages to the PSP (encrypted with a
//!   VMPCK from the secrets page), the attestation report, and its
//!   signature check.

pub mod kbs;
pub mod snp;
