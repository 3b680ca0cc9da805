//! The payload layouts of each message type, for both ends: the guest
//! encodes requests and decodes responses, the proxy the reverse. Decoders
//! take untrusted bytes, check every length and refuse trailing bytes.
//! (HTTP payloads are in [`http`](super::http).)

use alloc::string::String;
use alloc::vec::Vec;

use super::error::HostchanError;
use super::layout::MsgType;
use crate::nvstate::SlotId;

/// Longest software or proxy name in a HELLO.
pub const MAX_NAME: usize = 256;
/// Longest LOG text.
pub const MAX_LOG: usize = 4096;
/// Size of an SNP guest message page.
pub const SNP_PAGE: usize = 4096;
/// Longest SNP guest request message.
pub const MAX_SNP_REQUEST: usize = SNP_PAGE;
/// Largest certificate table accepted with an SNP response.
pub const MAX_CERT_TABLE: usize = 64 * 1024;
/// Largest SNP_GUEST_REQUEST response payload.
pub const MAX_SNP_RESPONSE: usize = 8 + SNP_PAGE + MAX_CERT_TABLE;

fn bad_response(kind: MsgType, what: &'static str) -> HostchanError {
    HostchanError::Malformed { kind, what }
}

fn bad_request(kind: MsgType, what: &'static str) -> HostchanError {
    HostchanError::BadRequestPayload { kind, what }
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn name(bytes: &[u8]) -> Option<String> {
    if bytes.len() > MAX_NAME {
        return None;
    }
    let s = core::str::from_utf8(bytes).ok()?;
    (!s.chars().any(|c| c.is_control())).then(|| String::from(s))
}

/// A HELLO request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Oldest layout version the guest speaks.
    pub min_version: u32,
    /// Newest layout version the guest speaks.
    pub max_version: u32,
    /// The guest software's name.
    pub name: String,
}

impl Hello {
    /// The request payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.name.len());
        out.extend_from_slice(&self.min_version.to_le_bytes());
        out.extend_from_slice(&self.max_version.to_le_bytes());
        out.extend_from_slice(self.name.as_bytes());
        out
    }

    /// Decodes a request payload (host side).
    pub fn decode(payload: &[u8]) -> Result<Hello, HostchanError> {
        let k = MsgType::Hello;
        let (min_version, max_version) = u32_at(payload, 0)
            .zip(u32_at(payload, 4))
            .ok_or(bad_request(k, "shorter than two versions"))?;
        if min_version > max_version {
            return Err(bad_request(k, "min_version above max_version"));
        }
        let name = name(&payload[8..]).ok_or(bad_request(k, "name is not short UTF-8 text"))?;
        Ok(Hello {
            min_version,
            max_version,
            name,
        })
    }
}

/// A HELLO response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloReply {
    /// The version the host chose.
    pub version: u32,
    /// The proxy's name.
    pub name: String,
}

impl HelloReply {
    /// The response payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.name.len());
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(self.name.as_bytes());
        out
    }

    /// Decodes a response payload (guest side).
    pub fn decode(payload: &[u8]) -> Result<HelloReply, HostchanError> {
        let k = MsgType::Hello;
        let version = u32_at(payload, 0).ok_or(bad_response(k, "shorter than a version"))?;
        let name = name(&payload[4..]).ok_or(bad_response(
            k,
            "proxy name is not UTF-8 text of at most 256 bytes",
        ))?;
        Ok(HelloReply { version, name })
    }
}

/// `text` cut to at most [`MAX_LOG`] bytes at a character boundary.
pub fn log_text(text: &str) -> &str {
    let mut end = text.len().min(MAX_LOG);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Decodes a LOG request payload (host side).
pub fn decode_log(payload: &[u8]) -> Result<&str, HostchanError> {
    if payload.len() > MAX_LOG {
        return Err(bad_request(MsgType::Log, "longer than 4096 bytes"));
    }
    core::str::from_utf8(payload).map_err(|_| bad_request(MsgType::Log, "not UTF-8"))
}

/// Checks that a response payload is empty (LOG, SLOT_WRITE, SLOT_FLUSH).
pub fn expect_empty(kind: MsgType, payload: &[u8]) -> Result<(), HostchanError> {
    if payload.is_empty() {
        Ok(())
    } else {
        Err(bad_response(kind, "payload must be empty"))
    }
}

/// The slot's wire code (0 = A, 1 = B).
pub fn slot_code(slot: SlotId) -> u8 {
    match slot {
        SlotId::A => 0,
        SlotId::B => 1,
    }
}

fn slot_from(kind: MsgType, code: Option<&u8>) -> Result<SlotId, HostchanError> {
    match code {
        Some(0) => Ok(SlotId::A),
        Some(1) => Ok(SlotId::B),
        Some(_) => Err(bad_request(kind, "slot is not 0 or 1")),
        None => Err(bad_request(kind, "no slot byte")),
    }
}

/// A SLOT_READ request payload.
pub fn encode_slot_read(slot: SlotId) -> [u8; 1] {
    [slot_code(slot)]
}

/// Decodes a SLOT_READ request payload (host side).
pub fn decode_slot_read(payload: &[u8]) -> Result<SlotId, HostchanError> {
    let k = MsgType::SlotRead;
    if payload.len() > 1 {
        return Err(bad_request(k, "bytes after the slot"));
    }
    slot_from(k, payload.first())
}

/// A SLOT_READ response payload: `present`, then the bytes.
pub fn encode_slot_read_reply(data: Option<&[u8]>) -> Vec<u8> {
    match data {
        None => alloc::vec![0],
        Some(d) => {
            let mut out = Vec::with_capacity(1 + d.len());
            out.push(1);
            out.extend_from_slice(d);
            out
        }
    }
}

/// Decodes a SLOT_READ response payload (guest side).
pub fn decode_slot_read_reply(payload: &[u8]) -> Result<Option<Vec<u8>>, HostchanError> {
    let k = MsgType::SlotRead;
    match payload.split_first() {
        None => Err(bad_response(k, "no present byte")),
        Some((0, [])) => Ok(None),
        Some((0, _)) => Err(bad_response(k, "bytes for an absent slot")),
        Some((1, data)) => Ok(Some(data.to_vec())),
        Some(_) => Err(bad_response(k, "present byte is not 0 or 1")),
    }
}

/// A SLOT_WRITE request payload: the slot, then the bytes.
pub fn encode_slot_write(slot: SlotId, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + data.len());
    out.push(slot_code(slot));
    out.extend_from_slice(data);
    out
}

/// Decodes a SLOT_WRITE request payload (host side).
pub fn decode_slot_write(payload: &[u8]) -> Result<(SlotId, &[u8]), HostchanError> {
    let slot = slot_from(MsgType::SlotWrite, payload.first())?;
    Ok((slot, payload.get(1..).unwrap_or(&[])))
}

/// An SNP_GUEST_REQUEST response: the firmware's error, the response
/// message page and the certificate table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpReply {
    /// Firmware (or VMM) error; 0 = ok.
    pub fw_error: u64,
    /// The response message page, [`SNP_PAGE`] bytes.
    pub page: Vec<u8>,
    /// The certificate table (may be empty).
    pub certs: Vec<u8>,
}

impl SnpReply {
    /// The response payload (`page` is padded or cut to [`SNP_PAGE`]).
    pub fn encode(fw_error: u64, page: &[u8], certs: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + SNP_PAGE + certs.len());
        out.extend_from_slice(&fw_error.to_le_bytes());
        let n = page.len().min(SNP_PAGE);
        out.extend_from_slice(&page[..n]);
        out.resize(8 + SNP_PAGE, 0);
        out.extend_from_slice(certs);
        out
    }

    /// Decodes a response payload (guest side).
    pub fn decode(payload: &[u8]) -> Result<SnpReply, HostchanError> {
        let k = MsgType::SnpGuestRequest;
        if payload.len() < 8 + SNP_PAGE {
            return Err(bad_response(
                k,
                "shorter than the firmware error and the response page",
            ));
        }
        let certs = &payload[8 + SNP_PAGE..];
        if certs.len() > MAX_CERT_TABLE {
            return Err(bad_response(k, "certificate table longer than 64 KiB"));
        }
        let mut e = [0u8; 8];
        e.copy_from_slice(&payload[..8]);
        Ok(SnpReply {
            fw_error: u64::from_le_bytes(e),
            page: payload[8..8 + SNP_PAGE].to_vec(),
            certs: certs.to_vec(),
        })
    }
}

/// Checks an SNP_GUEST_REQUEST request payload (host side): one message,
/// at most a page.
pub fn decode_snp_request(payload: &[u8]) -> Result<&[u8], HostchanError> {
    let k = MsgType::SnpGuestRequest;
    if payload.is_empty() {
        return Err(bad_request(k, "empty"));
    }
    if payload.len() > MAX_SNP_REQUEST {
        return Err(bad_request(k, "longer than a page"));
    }
    Ok(payload)
}
