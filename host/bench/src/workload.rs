//! The fixed command sequence the benchmark times, and how each TPM is
//! prepared for it.

use anyhow::{bail, Context, Result};

use crate::commands::{self as cmd, BENCH_NV_INDEX, BENCH_NV_SIZE, BENCH_PCR, NV_CHUNK};
use crate::targets::Tpm;

/// One timed operation: one or more TPM commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    GetRandom32,
    PcrExtendSha256,
    PcrReadSha256,
    GetCapability,
    Hash1KiB,
    NvWrite2KiB,
    CreatePrimaryEccP256,
}

impl Op {
    /// Every operation, in the order they run.
    pub const ALL: [Op; 7] = [
        Op::GetRandom32,
        Op::PcrExtendSha256,
        Op::PcrReadSha256,
        Op::GetCapability,
        Op::Hash1KiB,
        Op::NvWrite2KiB,
        Op::CreatePrimaryEccP256,
    ];

    /// The name in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Op::GetRandom32 => "GetRandom 32",
            Op::PcrExtendSha256 => "PCR_Extend sha256",
            Op::PcrReadSha256 => "PCR_Read sha256",
            Op::GetCapability => "GetCapability 16 props",
            Op::Hash1KiB => "Hash sha256 1 KiB",
            Op::NvWrite2KiB => "NV write 2 KiB (2 cmds)",
            Op::CreatePrimaryEccP256 => "CreatePrimary ECC P-256",
        }
    }

    /// Iterations out of the configured count (key generation is slow).
    pub fn iterations(self, configured: u32) -> u32 {
        match self {
            Op::CreatePrimaryEccP256 => (configured / 10).max(1),
            _ => configured,
        }
    }

    /// The commands of timed run number `run` of the operation. NV writes
    /// change the data every run: the TPM skips committing unchanged NV
    /// contents, and the benchmark measures real writes.
    pub fn commands(self, run: u32) -> Vec<Vec<u8>> {
        match self {
            Op::GetRandom32 => vec![cmd::get_random(32)],
            Op::PcrExtendSha256 => vec![cmd::pcr_extend_sha256(BENCH_PCR, &[0x5A; 32])],
            Op::PcrReadSha256 => vec![cmd::pcr_read_sha256(BENCH_PCR)],
            Op::GetCapability => {
                vec![cmd::get_capability(
                    cmd::CAP_TPM_PROPERTIES,
                    cmd::PT_FIXED,
                    16,
                )]
            }
            Op::Hash1KiB => vec![cmd::hash_sha256(&[0xA5; 1024])],
            Op::NvWrite2KiB => (0..usize::from(BENCH_NV_SIZE) / NV_CHUNK)
                .map(|i| {
                    let fill = (run as usize * 2 + i) as u8;
                    cmd::nv_write(BENCH_NV_INDEX, (i * NV_CHUNK) as u16, &[fill; NV_CHUNK])
                })
                .collect(),
            Op::CreatePrimaryEccP256 => vec![cmd::create_primary_ecc_p256()],
        }
    }

    /// Untimed follow-up commands that undo what a run left behind (the
    /// transient object of CreatePrimary), given the run's responses.
    pub fn cleanup(self, responses: &[Vec<u8>]) -> Result<Vec<Vec<u8>>> {
        match self {
            Op::CreatePrimaryEccP256 => responses
                .iter()
                .map(|r| Ok(cmd::flush_context(cmd::created_handle(r)?)))
                .collect(),
            _ => Ok(Vec::new()),
        }
    }
}

/// Brings a TPM to where the sequence can run: started (TPM2_Startup(CLEAR)
/// unless already started) and with the benchmark's NV index defined.
pub fn prepare(tpm: &mut dyn Tpm) -> Result<()> {
    let resp = tpm.transact(&cmd::startup_clear())?;
    match cmd::response_code(&resp)? {
        cmd::RC_SUCCESS | cmd::RC_INITIALIZE => {}
        rc => bail!("TPM2_Startup failed with rc {rc:#x}"),
    }
    let resp = tpm.transact(&cmd::nv_define_space(BENCH_NV_INDEX, BENCH_NV_SIZE))?;
    cmd::expect_success(&resp).context("TPM2_NV_DefineSpace of the benchmark index")
}
