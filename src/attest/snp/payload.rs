//! Plaintext payloads of the report messages (SEV-SNP ABI 56860,
//! "MSG_REPORT_REQ Message Structure" and "MSG_REPORT_RSP Message
//! Structure").
//!
//! ```text
//! MSG_REPORT_REQ (0x60)          MSG_REPORT_RSP (0x20 + report)
//! 0x00 64 REPORT_DATA            0x00 4 STATUS       0 = success
//! 0x40  4 VMPL                   0x04 4 REPORT_SIZE  0x4A0
//! 0x44  4 KEY_SEL (bits 1:0)     0x08 24 reserved
//! 0x48 24 reserved               0x20  . REPORT
//! ```

use zerocopy::byteorder::little_endian::U32;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::error::SnpError;
use super::report::{AttestationReport, REPORT_LEN};

/// Length of MSG_REPORT_REQ.
pub const REPORT_REQ_LEN: usize = core::mem::size_of::<ReportRequest>();

/// Length of the MSG_REPORT_RSP fields before the report.
pub const REPORT_RSP_HEADER_LEN: usize = core::mem::size_of::<ReportResponseHeader>();

/// `KEY_SEL`: the VLEK if one is installed, else the VCEK.
pub const KEY_SEL_DEFAULT: u32 = 0;
/// `KEY_SEL`: the VCEK.
pub const KEY_SEL_VCEK: u32 = 1;
/// `KEY_SEL`: the VLEK.
pub const KEY_SEL_VLEK: u32 = 2;

/// `STATUS`: success.
pub const STATUS_SUCCESS: u32 = 0;
/// `STATUS`: invalid parameters (SEV status INVALID_PARAM).
pub const STATUS_INVALID_PARAM: u32 = 0x16;
/// `STATUS`: the selected key is not available (SEV status INVALID_KEY).
pub const STATUS_INVALID_KEY: u32 = 0x27;

/// MSG_REPORT_REQ.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Debug)]
#[repr(C)]
pub struct ReportRequest {
    /// Guest data bound into the report.
    pub report_data: [u8; 64],
    /// VMPL the report attests; at least the requester's VMPL.
    pub vmpl: U32,
    /// Signing key selection, bits 1:0; the rest reserved.
    pub key_sel: U32,
    /// Reserved, zero.
    pub reserved: [u8; 24],
}

/// The fixed part of MSG_REPORT_RSP; the report follows at 0x20.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Debug)]
#[repr(C)]
pub struct ReportResponseHeader {
    /// Firmware status, [`STATUS_SUCCESS`] or an error.
    pub status: U32,
    /// Size of the report that follows.
    pub report_size: U32,
    /// Reserved.
    pub reserved: [u8; 24],
}

const _: () = assert!(REPORT_REQ_LEN == 0x60);
const _: () = assert!(REPORT_RSP_HEADER_LEN == 0x20);

impl ReportRequest {
    /// A request for a report of `vmpl` binding `report_data`, signed with
    /// the key `key_sel` selects.
    pub fn new(report_data: [u8; 64], vmpl: u32, key_sel: u32) -> Self {
        ReportRequest {
            report_data,
            vmpl: U32::new(vmpl),
            key_sel: U32::new(key_sel),
            reserved: [0; 24],
        }
    }
}

/// The report in a decrypted MSG_REPORT_RSP payload. A non-zero status is
/// returned as [`SnpError::ReportStatus`] before any length is looked at
/// (a refusal carries no report). Bytes after the report, if the firmware
/// pads the payload, are ignored.
pub fn parse_report_response(payload: &[u8]) -> Result<AttestationReport, SnpError> {
    let expected = REPORT_RSP_HEADER_LEN + REPORT_LEN;
    let (head, rest) =
        ReportResponseHeader::read_from_prefix(payload).map_err(|_| SnpError::PayloadLength {
            len: payload.len(),
            expected,
        })?;
    let status = head.status.get();
    if status != STATUS_SUCCESS {
        return Err(SnpError::ReportStatus(status));
    }
    let size = head.report_size.get();
    if usize::try_from(size).ok() != Some(REPORT_LEN) {
        return Err(SnpError::ReportSize(size));
    }
    let bytes = rest.get(..REPORT_LEN).ok_or(SnpError::PayloadLength {
        len: payload.len(),
        expected,
    })?;
    AttestationReport::parse(bytes).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn report_request_offsets() {
        assert_eq!(offset_of!(ReportRequest, report_data), 0x00);
        assert_eq!(offset_of!(ReportRequest, vmpl), 0x40);
        assert_eq!(offset_of!(ReportRequest, key_sel), 0x44);
        assert_eq!(offset_of!(ReportRequest, reserved), 0x48);
        assert_eq!(core::mem::size_of::<ReportRequest>(), 0x60);
    }

    #[test]
    fn report_response_offsets() {
        assert_eq!(offset_of!(ReportResponseHeader, status), 0x00);
        assert_eq!(offset_of!(ReportResponseHeader, report_size), 0x04);
        assert_eq!(offset_of!(ReportResponseHeader, reserved), 0x08);
        assert_eq!(core::mem::size_of::<ReportResponseHeader>(), 0x20);
    }

    fn response(status: u32, size: u32, report_version: u32, len: usize) -> alloc::vec::Vec<u8> {
        let mut p = alloc::vec![0u8; len];
        p[0..4].copy_from_slice(&status.to_le_bytes());
        p[4..8].copy_from_slice(&size.to_le_bytes());
        if len >= 0x24 {
            p[0x20..0x24].copy_from_slice(&report_version.to_le_bytes());
        }
        if len >= 0x58 {
            p[0x54] = 1; // SIGNATURE_ALGO
        }
        p
    }

    #[test]
    fn report_response_is_bounds_checked() {
        let full = 0x20 + REPORT_LEN;
        let r = parse_report_response(&response(0, 0x4A0, 3, full)).unwrap();
        assert_eq!(r.version.get(), 3);
        // Trailing padding is ignored.
        assert!(parse_report_response(&response(0, 0x4A0, 3, full + 16)).is_ok());
        assert_eq!(
            parse_report_response(&response(0, 0x4A0, 3, full - 1)).unwrap_err(),
            SnpError::PayloadLength {
                len: full - 1,
                expected: full
            }
        );
        assert_eq!(
            parse_report_response(&response(0, 0x4A1, 3, full)).unwrap_err(),
            SnpError::ReportSize(0x4A1)
        );
        assert_eq!(
            parse_report_response(&response(0, 0x4A0, 9, full)).unwrap_err(),
            SnpError::ReportVersion(9)
        );
        assert_eq!(
            parse_report_response(&[0u8; 0x1F]).unwrap_err(),
            SnpError::PayloadLength {
                len: 0x1F,
                expected: full
            }
        );
    }

    #[test]
    fn firmware_refusal_is_reported_before_lengths() {
        assert_eq!(
            parse_report_response(&response(STATUS_INVALID_PARAM, 0, 0, 0x20)).unwrap_err(),
            SnpError::ReportStatus(0x16)
        );
    }

    #[test]
    fn request_encodes_little_endian() {
        let r = ReportRequest::new([0xAB; 64], 0x0102_0304, KEY_SEL_VCEK);
        let b = r.as_bytes();
        assert_eq!(&b[0x40..0x44], &[4, 3, 2, 1]);
        assert_eq!(&b[0x44..0x48], &[1, 0, 0, 0]);
        assert!(b[0x48..].iter().all(|&x| x == 0));
    }
}
