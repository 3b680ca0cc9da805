//! The TPM 2.0 commands the benchmark sends, built from the TPM 2.0 Library
//! spec part 3 layouts, and the response checks.
//!
//! Every authorization uses a password session (TPM_RS_PW) with an empty
//! password: the hierarchies, PCR 16 and the benchmark's NV index all have
//! empty auth on a freshly manufactured TPM.

use anyhow::{bail, ensure, Result};

const ST_NO_SESSIONS: u16 = 0x8001;
const ST_SESSIONS: u16 = 0x8002;
const RS_PW: u32 = 0x4000_0009;
const RH_OWNER: u32 = 0x4000_0001;
const RH_NULL: u32 = 0x4000_0007;
const ALG_SHA256: u16 = 0x000B;
const ALG_AES: u16 = 0x0006;
const ALG_CFB: u16 = 0x0043;
const ALG_NULL: u16 = 0x0010;
const ALG_ECC: u16 = 0x0023;
const ECC_NIST_P256: u16 = 0x0003;
const SU_CLEAR: u16 = 0x0000;

/// TPM_RC_SUCCESS.
pub const RC_SUCCESS: u32 = 0;
/// TPM_RC_INITIALIZE: Startup when the TPM is already started.
pub const RC_INITIALIZE: u32 = 0x100;

/// TPM_CAP_TPM_PROPERTIES and TPM_PT_FIXED (the first fixed property).
pub const CAP_TPM_PROPERTIES: u32 = 6;
pub const PT_FIXED: u32 = 0x100;

/// The resettable debug PCR the benchmark extends.
pub const BENCH_PCR: u32 = 16;
/// The benchmark's NV index (owner range) and its size.
pub const BENCH_NV_INDEX: u32 = 0x0180_0042;
pub const BENCH_NV_SIZE: u16 = 2048;
/// TPM_PT_NV_BUFFER_MAX of libtpms: the largest NV_Write.
pub const NV_CHUNK: usize = 1024;

/// A command in the making: header placeholder, then handles, auth, parameters.
struct Builder(Vec<u8>);

impl Builder {
    fn new(tag: u16, code: u32) -> Self {
        let mut b = Vec::with_capacity(64);
        b.extend_from_slice(&tag.to_be_bytes());
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&code.to_be_bytes());
        Self(b)
    }
    fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    fn u16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// A TPM2B: u16 size then the bytes.
    fn sized(mut self, bytes: &[u8]) -> Self {
        let n = u16::try_from(bytes.len()).expect("benchmark buffers are below 64 KiB");
        self.0.extend_from_slice(&n.to_be_bytes());
        self.0.extend_from_slice(bytes);
        self
    }
    /// The authorization area: one password session with an empty password.
    fn password_auth(self) -> Self {
        self.u32(9) // authorizationSize
            .u32(RS_PW)
            .sized(&[]) // nonceCaller
            .u8(0) // sessionAttributes
            .sized(&[]) // hmac (the password)
    }
    fn finish(mut self) -> Vec<u8> {
        let n = self.0.len() as u32;
        self.0[2..6].copy_from_slice(&n.to_be_bytes());
        self.0
    }
}

/// TPM2_Startup(TPM_SU_CLEAR).
pub fn startup_clear() -> Vec<u8> {
    Builder::new(ST_NO_SESSIONS, 0x144).u16(SU_CLEAR).finish()
}

/// TPM2_GetRandom(bytesRequested).
pub fn get_random(n: u16) -> Vec<u8> {
    Builder::new(ST_NO_SESSIONS, 0x17B).u16(n).finish()
}

/// TPM2_PCR_Extend of one SHA-256 digest into `pcr`.
pub fn pcr_extend_sha256(pcr: u32, digest: &[u8; 32]) -> Vec<u8> {
    let mut b = Builder::new(ST_SESSIONS, 0x182)
        .u32(pcr)
        .password_auth()
        .u32(1) // TPML_DIGEST_VALUES count
        .u16(ALG_SHA256);
    b.0.extend_from_slice(digest);
    b.finish()
}

/// TPM2_PCR_Read of `pcr` in the SHA-256 bank.
pub fn pcr_read_sha256(pcr: u32) -> Vec<u8> {
    let mut select = [0u8; 3];
    select[(pcr / 8) as usize % 3] |= 1 << (pcr % 8);
    Builder::new(ST_NO_SESSIONS, 0x17E)
        .u32(1) // TPML_PCR_SELECTION count
        .u16(ALG_SHA256)
        .u8(3) // sizeofSelect
        .u8(select[0])
        .u8(select[1])
        .u8(select[2])
        .finish()
}

/// TPM2_GetCapability(capability, property, propertyCount).
pub fn get_capability(cap: u32, property: u32, count: u32) -> Vec<u8> {
    Builder::new(ST_NO_SESSIONS, 0x17A)
        .u32(cap)
        .u32(property)
        .u32(count)
        .finish()
}

/// TPM2_Hash of `data` with SHA-256, no ticket hierarchy (TPM_RH_NULL).
pub fn hash_sha256(data: &[u8]) -> Vec<u8> {
    Builder::new(ST_NO_SESSIONS, 0x17D)
        .sized(data)
        .u16(ALG_SHA256)
        .u32(RH_NULL)
        .finish()
}

/// TPM2_CreatePrimary in the owner hierarchy of an ECC NIST P-256 storage
/// key (the template Linux uses for its null key: restricted decrypt,
/// AES-128-CFB, no DA).
pub fn create_primary_ecc_p256() -> Vec<u8> {
    // fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | noDA |
    // restricted | decrypt
    let attributes: u32 = 0x0000_0002 | 0x10 | 0x20 | 0x40 | 0x400 | 0x1_0000 | 0x2_0000;
    let public = Builder(Vec::new())
        .u16(ALG_ECC)
        .u16(ALG_SHA256)
        .u32(attributes)
        .sized(&[]) // authPolicy
        .u16(ALG_AES)
        .u16(128)
        .u16(ALG_CFB)
        .u16(ALG_NULL) // scheme
        .u16(ECC_NIST_P256)
        .u16(ALG_NULL) // kdf
        .sized(&[]) // unique.x
        .sized(&[]) // unique.y
        .0;
    Builder::new(ST_SESSIONS, 0x131)
        .u32(RH_OWNER)
        .password_auth()
        .sized(&[0, 0, 0, 0]) // TPM2B_SENSITIVE_CREATE: empty userAuth and data
        .sized(&public)
        .sized(&[]) // outsideInfo
        .u32(0) // creationPCR: no selection
        .finish()
}

/// TPM2_FlushContext(handle).
pub fn flush_context(handle: u32) -> Vec<u8> {
    Builder::new(ST_NO_SESSIONS, 0x165).u32(handle).finish()
}

/// TPM2_EvictControl: makes the transient object `object` persistent at
/// `persistent` (owner authorization).
pub fn evict_control(object: u32, persistent: u32) -> Vec<u8> {
    Builder::new(ST_SESSIONS, 0x120)
        .u32(RH_OWNER)
        .u32(object)
        .password_auth()
        .u32(persistent)
        .finish()
}

/// TPM2_NV_DefineSpace of an ordinary index with empty auth, readable and
/// writable with that auth, exempt from dictionary-attack counting.
pub fn nv_define_space(index: u32, size: u16) -> Vec<u8> {
    // TPMA_NV_AUTHWRITE | TPMA_NV_AUTHREAD | TPMA_NV_NO_DA
    let attributes: u32 = 0x0000_0004 | 0x0004_0000 | 0x0200_0000;
    let public = Builder(Vec::new())
        .u32(index)
        .u16(ALG_SHA256)
        .u32(attributes)
        .sized(&[]) // authPolicy
        .u16(size)
        .0;
    Builder::new(ST_SESSIONS, 0x12A)
        .u32(RH_OWNER)
        .password_auth()
        .sized(&[]) // auth
        .sized(&public)
        .finish()
}

/// TPM2_NV_Write of `data` at `offset`, authorized by the index's own auth.
pub fn nv_write(index: u32, offset: u16, data: &[u8]) -> Vec<u8> {
    Builder::new(ST_SESSIONS, 0x137)
        .u32(index) // authHandle
        .u32(index) // nvIndex
        .password_auth()
        .sized(data)
        .u16(offset)
        .finish()
}

/// The response code of a well-formed response (size field = length).
pub fn response_code(resp: &[u8]) -> Result<u32> {
    ensure!(
        resp.len() >= 10,
        "response shorter than a header: {resp:02x?}"
    );
    let size = u32::from_be_bytes([resp[2], resp[3], resp[4], resp[5]]) as usize;
    ensure!(
        size == resp.len(),
        "response size field {size} disagrees with its length {}",
        resp.len()
    );
    Ok(u32::from_be_bytes([resp[6], resp[7], resp[8], resp[9]]))
}

/// Fails unless `resp` is a well-formed success response.
pub fn expect_success(resp: &[u8]) -> Result<()> {
    match response_code(resp)? {
        RC_SUCCESS => Ok(()),
        rc => bail!("TPM returned rc {rc:#x}"),
    }
}

/// The object handle of a successful TPM2_CreatePrimary response.
pub fn created_handle(resp: &[u8]) -> Result<u32> {
    expect_success(resp)?;
    let h = resp
        .get(10..14)
        .ok_or_else(|| anyhow::anyhow!("CreatePrimary response has no handle"))?;
    Ok(u32::from_be_bytes([h[0], h[1], h[2], h[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_field_counts_the_whole_command() {
        for cmd in [
            startup_clear(),
            get_random(32),
            hash_sha256(&[0u8; 1024]),
            create_primary_ecc_p256(),
            nv_write(BENCH_NV_INDEX, 0, &[0u8; NV_CHUNK]),
        ] {
            let size = u32::from_be_bytes([cmd[2], cmd[3], cmd[4], cmd[5]]) as usize;
            assert_eq!(size, cmd.len());
        }
    }

    #[test]
    fn get_random_matches_the_spec_example_layout() {
        // TPM2_GetRandom(8): 80 01 | 00 00 00 0C | 00 00 01 7B | 00 08
        assert_eq!(
            get_random(8),
            [0x80, 0x01, 0, 0, 0, 0x0C, 0, 0, 0x01, 0x7B, 0, 8]
        );
    }

    #[test]
    fn pcr_read_selects_exactly_one_pcr() {
        let c = pcr_read_sha256(16);
        assert_eq!(&c[c.len() - 3..], &[0, 0, 1]);
        let c = pcr_read_sha256(0);
        assert_eq!(&c[c.len() - 3..], &[1, 0, 0]);
    }

    #[test]
    fn malformed_responses_are_rejected() {
        assert!(response_code(&[0x80, 0x01, 0, 0]).is_err());
        // Size field says 12, but 10 bytes arrived.
        assert!(response_code(&[0x80, 0x01, 0, 0, 0, 12, 0, 0, 0, 0]).is_err());
        let ok = [0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0];
        assert_eq!(response_code(&ok).unwrap(), RC_SUCCESS);
        let err = [0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x00];
        assert!(expect_success(&err).is_err());
    }
}
