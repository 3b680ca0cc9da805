//! Shared helpers for the integration tests: TPM 2.0 command builders and
//! response parsing, written from the TPM 2.0 Library spec part 3 layouts.
#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard};

/// libtpms is a process-wide singleton, so only one `Engine` may run at a
/// time: every test of a binary that starts one holds this lock.
static ENGINE_LOCK: Mutex<()> = Mutex::new(());

/// Takes [`ENGINE_LOCK`], also after a test that held it panicked.
pub fn engine_lock() -> MutexGuard<'static, ()> {
    ENGINE_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// TPM_ST_NO_SESSIONS.
pub const ST_NO_SESSIONS: u16 = 0x8001;
/// TPM_ST_SESSIONS.
pub const ST_SESSIONS: u16 = 0x8002;
/// TPM_RC_SUCCESS.
pub const RC_SUCCESS: u32 = 0;
/// TPM_RC_INITIALIZE: the TPM has not been started up.
pub const RC_INITIALIZE: u32 = 0x100;
/// TPM_RC_BAD_TAG.
pub const RC_BAD_TAG: u32 = 0x1E;
/// TPM_SU_CLEAR.
pub const SU_CLEAR: u16 = 0;
/// TPM_SU_STATE.
pub const SU_STATE: u16 = 1;
/// TPM_RH_PLATFORM, used as the PCR auth in tests.
pub const RS_PW: u32 = 0x4000_0009;
/// TPM_ALG_SHA1 / SHA256 / SHA384.
pub const ALG_SHA1: u16 = 0x0004;
pub const ALG_SHA256: u16 = 0x000B;
pub const ALG_SHA384: u16 = 0x000C;

/// Builds a command: tag, size, command code, then `body`.
pub fn command(tag: u16, code: u32, body: &[u8]) -> Vec<u8> {
    let mut c = Vec::with_capacity(10 + body.len());
    c.extend_from_slice(&tag.to_be_bytes());
    c.extend_from_slice(&((10 + body.len()) as u32).to_be_bytes());
    c.extend_from_slice(&code.to_be_bytes());
    c.extend_from_slice(body);
    c
}

/// TPM2_Startup(startup_type).
pub fn startup(su: u16) -> Vec<u8> {
    command(ST_NO_SESSIONS, 0x144, &su.to_be_bytes())
}

/// TPM2_Shutdown(shutdown_type).
pub fn shutdown(su: u16) -> Vec<u8> {
    command(ST_NO_SESSIONS, 0x145, &su.to_be_bytes())
}

/// TPM2_SelfTest(fullTest).
pub fn self_test(full: bool) -> Vec<u8> {
    command(ST_NO_SESSIONS, 0x143, &[full as u8])
}

/// TPM2_GetRandom(bytesRequested).
pub fn get_random(n: u16) -> Vec<u8> {
    command(ST_NO_SESSIONS, 0x17B, &n.to_be_bytes())
}

/// TPM2_GetCapability(capability, property, propertyCount).
pub fn get_capability(cap: u32, property: u32, count: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&cap.to_be_bytes());
    b.extend_from_slice(&property.to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    command(ST_NO_SESSIONS, 0x17A, &b)
}

/// TPM2_PCR_Extend(pcr, password session with empty auth, one digest of `alg`).
pub fn pcr_extend(pcr: u32, alg: u16, digest: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&pcr.to_be_bytes());
    // Authorization area: one TPMS_AUTH_COMMAND for TPM_RS_PW with empty auth.
    b.extend_from_slice(&9u32.to_be_bytes());
    b.extend_from_slice(&RS_PW.to_be_bytes());
    b.extend_from_slice(&0u16.to_be_bytes()); // nonce
    b.push(0); // session attributes
    b.extend_from_slice(&0u16.to_be_bytes()); // hmac
                                              // TPML_DIGEST_VALUES with one entry.
    b.extend_from_slice(&1u32.to_be_bytes());
    b.extend_from_slice(&alg.to_be_bytes());
    b.extend_from_slice(digest);
    command(ST_SESSIONS, 0x182, &b)
}

/// TPM2_PCR_Read of one PCR in one bank.
pub fn pcr_read(pcr: u32, alg: u16) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&1u32.to_be_bytes()); // TPML_PCR_SELECTION count
    b.extend_from_slice(&alg.to_be_bytes());
    b.push(3); // sizeofSelect
    let mut sel = [0u8; 3];
    sel[(pcr / 8) as usize] |= 1 << (pcr % 8);
    b.extend_from_slice(&sel);
    command(ST_NO_SESSIONS, 0x17E, &b)
}

/// The TPM 1.2 TPM_ORD_GetTicks command OVMF sends to probe for a TPM 1.2.
pub fn tpm12_get_ticks() -> Vec<u8> {
    vec![0x00, 0xC1, 0, 0, 0, 0x0A, 0, 0, 0, 0xF1]
}

/// A parsed response header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub tag: u16,
    pub size: u32,
    pub rc: u32,
}

/// Parses the 10-byte response header; panics (a test failure) if short or
/// inconsistent with the response length.
pub fn header(resp: &[u8]) -> Header {
    assert!(
        resp.len() >= 10,
        "response shorter than a header: {resp:02x?}"
    );
    let h = Header {
        tag: u16::from_be_bytes([resp[0], resp[1]]),
        size: u32::from_be_bytes([resp[2], resp[3], resp[4], resp[5]]),
        rc: u32::from_be_bytes([resp[6], resp[7], resp[8], resp[9]]),
    };
    assert_eq!(
        h.size as usize,
        resp.len(),
        "size field disagrees with length"
    );
    h
}

/// Asserts TPM_RC_SUCCESS and returns the parameter area (after the header).
pub fn expect_ok(resp: &[u8]) -> &[u8] {
    let h = header(resp);
    assert_eq!(h.rc, RC_SUCCESS, "TPM returned rc {:#x}", h.rc);
    &resp[10..]
}

/// The random bytes of a successful TPM2_GetRandom response.
pub fn random_bytes(resp: &[u8]) -> Vec<u8> {
    let p = expect_ok(resp);
    let n = u16::from_be_bytes([p[0], p[1]]) as usize;
    p[2..2 + n].to_vec()
}

/// The single digest of a successful one-PCR TPM2_PCR_Read response.
pub fn pcr_value(resp: &[u8]) -> Vec<u8> {
    let p = expect_ok(resp);
    // pcrUpdateCounter u32, TPML_PCR_SELECTION (count u32, alg u16, size u8, sel[size]),
    // TPML_DIGEST (count u32, then TPM2B_DIGEST).
    let sel_size = p[10] as usize;
    let mut i = 4 + 4 + 2 + 1 + sel_size;
    let count = u32::from_be_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
    assert_eq!(count, 1, "expected one digest");
    i += 4;
    let n = u16::from_be_bytes([p[i], p[i + 1]]) as usize;
    p[i + 2..i + 2 + n].to_vec()
}

/// TPM_RH_OWNER.
pub const RH_OWNER: u32 = 0x4000_0001;
/// TPM_RC_LOCALITY: the command is not allowed at this locality.
pub const RC_LOCALITY: u32 = 0x907;
/// TPM_RC_COMMAND_SIZE.
pub const RC_COMMAND_SIZE: u32 = 0x142;

/// An authorization area with one empty-password session (TPM_RS_PW).
pub fn password_auth() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&9u32.to_be_bytes());
    b.extend_from_slice(&RS_PW.to_be_bytes());
    b.extend_from_slice(&0u16.to_be_bytes()); // nonce
    b.push(0); // session attributes
    b.extend_from_slice(&0u16.to_be_bytes()); // hmac
    b
}

/// A session command: `handles`, an empty-password auth area, then `params`.
pub fn session_command(code: u32, handles: &[u32], params: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    for h in handles {
        b.extend_from_slice(&h.to_be_bytes());
    }
    b.extend_from_slice(&password_auth());
    b.extend_from_slice(params);
    command(ST_SESSIONS, code, &b)
}

/// TPM2_PCR_Reset(pcr) with an empty-password session.
pub fn pcr_reset(pcr: u32) -> Vec<u8> {
    session_command(0x13D, &[pcr], &[])
}

/// TPM2_NV_DefineSpace under the owner hierarchy: an ordinary index with
/// empty auth, readable and writable with its own auth or the owner's.
pub fn nv_define_space(index: u32, size: u16) -> Vec<u8> {
    let mut public = Vec::new();
    public.extend_from_slice(&index.to_be_bytes());
    public.extend_from_slice(&ALG_SHA256.to_be_bytes());
    // OWNERWRITE | AUTHWRITE | OWNERREAD | AUTHREAD.
    public.extend_from_slice(&0x0006_0006u32.to_be_bytes());
    public.extend_from_slice(&0u16.to_be_bytes()); // authPolicy
    public.extend_from_slice(&size.to_be_bytes());
    let mut p = Vec::new();
    p.extend_from_slice(&0u16.to_be_bytes()); // auth
    p.extend_from_slice(&(public.len() as u16).to_be_bytes());
    p.extend_from_slice(&public);
    session_command(0x12A, &[RH_OWNER], &p)
}

/// TPM2_NV_Write(index, data, offset) authorized by the index itself.
pub fn nv_write(index: u32, data: &[u8], offset: u16) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&(data.len() as u16).to_be_bytes());
    p.extend_from_slice(data);
    p.extend_from_slice(&offset.to_be_bytes());
    session_command(0x137, &[index, index], &p)
}

/// TPM2_NV_Read(index, size, offset) authorized by the index itself.
pub fn nv_read(index: u32, size: u16, offset: u16) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&size.to_be_bytes());
    p.extend_from_slice(&offset.to_be_bytes());
    session_command(0x14E, &[index, index], &p)
}

/// The data of a successful TPM2_NV_Read response.
pub fn nv_read_data(resp: &[u8]) -> Vec<u8> {
    let p = expect_ok(resp);
    // parameterSize u32, then TPM2B_MAX_NV_BUFFER.
    let n = u16::from_be_bytes([p[4], p[5]]) as usize;
    p[6..6 + n].to_vec()
}

/// TPM2_CreatePrimary of a restricted ECC P-256 storage key (AES-128-CFB)
/// under `hierarchy`, with empty auth and no creation PCRs.
pub fn create_primary_ecc(hierarchy: u32) -> Vec<u8> {
    let mut public = Vec::new();
    public.extend_from_slice(&0x0023u16.to_be_bytes()); // TPM_ALG_ECC
    public.extend_from_slice(&ALG_SHA256.to_be_bytes());
    // fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | restricted | decrypt.
    public.extend_from_slice(&0x0003_0072u32.to_be_bytes());
    public.extend_from_slice(&0u16.to_be_bytes()); // authPolicy
    public.extend_from_slice(&0x0006u16.to_be_bytes()); // TPM_ALG_AES
    public.extend_from_slice(&128u16.to_be_bytes());
    public.extend_from_slice(&0x0043u16.to_be_bytes()); // TPM_ALG_CFB
    public.extend_from_slice(&0x0010u16.to_be_bytes()); // scheme TPM_ALG_NULL
    public.extend_from_slice(&0x0003u16.to_be_bytes()); // TPM_ECC_NIST_P256
    public.extend_from_slice(&0x0010u16.to_be_bytes()); // kdf TPM_ALG_NULL
    public.extend_from_slice(&0u16.to_be_bytes()); // unique.x
    public.extend_from_slice(&0u16.to_be_bytes()); // unique.y
    let mut p = Vec::new();
    p.extend_from_slice(&4u16.to_be_bytes()); // TPM2B_SENSITIVE_CREATE
    p.extend_from_slice(&0u16.to_be_bytes()); // userAuth
    p.extend_from_slice(&0u16.to_be_bytes()); // data
    p.extend_from_slice(&(public.len() as u16).to_be_bytes());
    p.extend_from_slice(&public);
    p.extend_from_slice(&0u16.to_be_bytes()); // outsideInfo
    p.extend_from_slice(&0u32.to_be_bytes()); // creationPCR
    session_command(0x131, &[hierarchy], &p)
}

/// The object handle and the TPM2B_PUBLIC contents of a successful
/// TPM2_CreatePrimary response.
pub fn created_public(resp: &[u8]) -> (u32, Vec<u8>) {
    let p = expect_ok(resp);
    let handle = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
    // parameterSize u32 at 4, then TPM2B_PUBLIC.
    let n = u16::from_be_bytes([p[8], p[9]]) as usize;
    (handle, p[10..10 + n].to_vec())
}

/// TPM2_FlushContext(handle).
pub fn flush_context(handle: u32) -> Vec<u8> {
    command(ST_NO_SESSIONS, 0x165, &handle.to_be_bytes())
}
