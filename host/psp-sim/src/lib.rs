//! svtpm-psp-sim: a development stand-in for the AMD PSP's guest request
//! service, for platforms without SEV-SNP (QEMU TCG as an SVM hypervisor).
//!
//! - [`secrets`]: a secrets page image with fresh VMPCKs;
//! - [`chain`]: a generated ARK -> ASK -> VCEK chain shaped like AMD's;
//! - [`cert_table`]: the certificate table a host returns with an
//!   extended guest request;
//! - [`measure`]: the SNP launch digest of the svtpm image;
//! - [`config`]: what the simulated platform reports (measurement,
//!   policy, chip ID, TCB, ...);
//! - [`psp`]: [`Psp`], which answers encrypted MSG_REPORT_REQ messages as
//!   the firmware does, with reports signed by the VCEK.
//!
//! The guest side is `svtpm::attest::snp::GuestMessenger`, the same code
//! that talks to the real PSP. What the simulator does and does not model
//! is in `docs/attestation-snp.md`.
//!
//! DEVELOPMENT ONLY. Its keys are generated on the host, which is the
//! party SEV-SNP protects against; a report it signs proves nothing about
//! a real machine, and no key broker may trust its ARK in production.

pub mod cert_table;
pub mod chain;
pub mod config;
pub mod measure;
pub mod psp;
pub mod secrets;

pub use chain::TestChain;
pub use config::{ChipIdentity, PspConfig};
pub use measure::launch_digest;
pub use psp::{Psp, PspError};
