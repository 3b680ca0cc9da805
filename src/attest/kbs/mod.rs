//! The key broker client: how svtpm proves what it is to the guest owner's
//! KBS and receives the key that opens its sealed NV state.
//!
//! It speaks Trustee's KBS protocol (RCAR, version 0.4.0) so a real Trustee
//! KBS can stand in for the development one (`host/kbs`). The host only
//! relays HTTP: everything here that matters is either public (requests,
//! the TEE public key, the token, the session cookie) or protected end to
//! end (resources are JWE-wrapped to a TEE key that never leaves svtpm;
//! generation records are MACed under a key derived from the state key).
//! All of it is pure: no I/O, randomness from the caller, host-testable.
//! The protocol and the extension are described in `docs/kbs.md`.
//!
//! Parts:
//! - [`client`]: the handshake state machine ([`KbsClient`]);
//! - [`http`]: requests and responses as data, the session cookie, the
//!   [`Transport`] seam;
//! - [`evidence`]: the [`EvidenceSource`] seam and REPORT_DATA binding;
//! - [`canonical`]: RFC 8785 canonical JSON (what REPORT_DATA hashes);
//! - [`tee_key`]: the ephemeral P-256 TEE key and its JWK;
//! - [`jwe`]: opening resource responses (ECDH-ES+A256KW, A256GCM), with
//!   [`concat_kdf`] and [`base64url`];
//! - [`secret`]: released secrets ([`Secret`]);
//! - [`resource`]: resource paths and vTPM ids;
//! - [`generation`]: the generation-record extension;
//! - [`exchange`]: the steps run over a [`Transport`], and [`KbsGuard`];
//! - [`error`]: the error type, [`KbsError`].

pub mod base64url;
pub mod canonical;
pub mod client;
pub mod concat_kdf;
pub mod error;
pub mod evidence;
pub mod exchange;
pub mod generation;
pub mod http;
pub mod jwe;
pub mod resource;
pub mod secret;
pub mod tee_key;

#[cfg(test)]
mod tests;

pub use client::KbsClient;
pub use error::KbsError;
pub use evidence::EvidenceSource;
pub use exchange::KbsGuard;
pub use http::{HttpRequest, HttpResponse, Method, Transport};
pub use resource::{ResourcePath, VtpmId};
pub use secret::Secret;
pub use tee_key::TeeKeyPair;
