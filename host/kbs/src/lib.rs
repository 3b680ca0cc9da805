//! svtpm-kbs: a development key broker for svtpm.
//!
//! It speaks Trustee's KBS protocol (RCAR, version 0.4.0) over plain HTTP,
//! on loopback by default, so svtpm's client can be developed and tested
//! against it and a real Trustee KBS can take its place (see
//! `docs/kbs.md`). What it adds for svtpm is the per-vTPM state key as a
//! resource (`svtpm/<vtpm-id>/state-key`) and the generation record.
//!
//! Parts:
//! - [`store`]: the data directory (state keys, generation records, the
//!   token key) and provisioning;
//! - [`policy`]: the policy file and the checks over a verified report;
//! - [`report`]: the parsed SEV-SNP attestation report;
//! - [`verifier`]: the [`AttestationVerifier`](verifier::AttestationVerifier)
//!   seam and the SNP evidence verifier with its signature hook;
//! - [`chain_check`]: the signature hook for real: the AMD certificate
//!   chain up to the policy's ARKs, and the report against its VCEK;
//! - [`session`]: RCAR sessions (nonces, cookies, expiry);
//! - [`token`]: the attestation token (a JWT signed by the broker);
//! - [`jwe`]: wrapping resources to the TEE key;
//! - [`refusal`]: refusals as Trustee's `ErrorInformation`;
//! - [`server`]: the HTTP server and its handlers;
//! - [`relay`]: a plain HTTP/1.1 client, the host side of svtpm's
//!   `Transport` for development and tests.

pub mod chain_check;
pub mod jwe;
pub mod policy;
pub mod refusal;
pub mod relay;
pub mod report;
pub mod server;
pub mod session;
pub mod store;
pub mod token;
pub mod verifier;

/// Fills `buf` from the operating system's generator.
pub fn random(buf: &mut [u8]) -> anyhow::Result<()> {
    getrandom::fill(buf).map_err(|e| anyhow::anyhow!("OS random generator failed: {e}"))
}
