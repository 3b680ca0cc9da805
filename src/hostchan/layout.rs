//! The region layout, version 1: field offsets, the payload areas, the
//! message types and the response statuses. Numbers only; nothing here
//! touches memory. The table is in `docs/hostchan.md`.

use core::fmt;

/// `magic` at offset 0 (host).
pub const MAGIC: [u8; 8] = *b"SVTPMHC1";
/// The layout version this code speaks.
pub const VERSION: u32 = 1;

/// Header field offsets (host-written).
pub const OFF_MAGIC: usize = 0x000;
/// `version` (u32).
pub const OFF_VERSION: usize = 0x008;
/// `region_len` (u32).
pub const OFF_REGION_LEN: usize = 0x00C;
/// `host_ready` (u32, 1 while a proxy serves the channel).
pub const OFF_HOST_READY: usize = 0x010;
/// Bytes of the header the guest copies and checks.
pub const HEADER_LEN: usize = 0x14;

/// Request descriptor (guest-written), starting with `req.seq`.
pub const OFF_REQ: usize = 0x040;
/// Response descriptor (host-written), starting with `resp.seq`.
pub const OFF_RESP: usize = 0x080;
/// Offsets inside either descriptor.
pub const DESC_SEQ: usize = 0x00;
/// `type` (u16).
pub const DESC_TYPE: usize = 0x04;
/// `reserved` (u16, request) or `status` (u16, response).
pub const DESC_STATUS: usize = 0x06;
/// `request_id` (u64).
pub const DESC_REQUEST_ID: usize = 0x08;
/// `payload_len` (u32).
pub const DESC_PAYLOAD_LEN: usize = 0x10;
/// Bytes of one descriptor.
pub const DESC_LEN: usize = 0x14;

/// Where the request payload area starts.
pub const PAYLOAD_BASE: usize = 0x1000;
/// `resp.type` = `req.type | RESPONSE_BIT`.
pub const RESPONSE_BIT: u16 = 0x8000;

/// Smallest region accepted (64 KiB).
pub const MIN_REGION_LEN: usize = 64 * 1024;
/// Largest region accepted (16 MiB).
pub const MAX_REGION_LEN: usize = 16 * 1024 * 1024;
/// Region sizes are whole 4 KiB pages.
pub const REGION_ALIGN: usize = 4096;

// The header and the descriptors stay inside the first page and apart.
const _: () = assert!(HEADER_LEN <= OFF_REQ);
const _: () = assert!(OFF_REQ + DESC_LEN <= OFF_RESP && OFF_RESP + DESC_LEN <= PAYLOAD_BASE);

/// Whether `len` is a region size this layout accepts.
pub fn region_len_ok(len: usize) -> bool {
    (MIN_REGION_LEN..=MAX_REGION_LEN).contains(&len) && len.is_multiple_of(REGION_ALIGN)
}

/// Size of each payload area for a region of `region_len` bytes:
/// `(region_len - 0x1000) / 2` (0 for a region too small to have one).
pub fn area_len(region_len: usize) -> usize {
    region_len.saturating_sub(PAYLOAD_BASE) / 2
}

/// Offset of the request payload area.
pub fn request_area(_region_len: usize) -> usize {
    PAYLOAD_BASE
}

/// Offset of the response payload area.
pub fn response_area(region_len: usize) -> usize {
    PAYLOAD_BASE + area_len(region_len)
}

/// What a request asks for (`req.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MsgType {
    /// Version negotiation and names.
    Hello,
    /// A line for the host's log.
    Log,
    /// One SNP guest request message for the (real or simulated) PSP.
    SnpGuestRequest,
    /// An HTTP exchange with the key broker.
    Http,
    /// Read a state slot.
    SlotRead,
    /// Replace a state slot.
    SlotWrite,
    /// Make completed slot writes durable.
    SlotFlush,
}

impl MsgType {
    /// Every type, in code order.
    pub const ALL: [MsgType; 7] = [
        MsgType::Hello,
        MsgType::Log,
        MsgType::SnpGuestRequest,
        MsgType::Http,
        MsgType::SlotRead,
        MsgType::SlotWrite,
        MsgType::SlotFlush,
    ];

    /// The request type code.
    pub fn code(self) -> u16 {
        match self {
            MsgType::Hello => 0x0001,
            MsgType::Log => 0x0002,
            MsgType::SnpGuestRequest => 0x0010,
            MsgType::Http => 0x0020,
            MsgType::SlotRead => 0x0030,
            MsgType::SlotWrite => 0x0031,
            MsgType::SlotFlush => 0x0032,
        }
    }

    /// The response type code (`code() | 0x8000`).
    pub fn response_code(self) -> u16 {
        self.code() | RESPONSE_BIT
    }

    /// The type with request code `code`, if any.
    pub fn from_code(code: u16) -> Option<MsgType> {
        MsgType::ALL.into_iter().find(|t| t.code() == code)
    }

    /// The upper-case name used in logs and the documentation.
    pub fn name(self) -> &'static str {
        match self {
            MsgType::Hello => "HELLO",
            MsgType::Log => "LOG",
            MsgType::SnpGuestRequest => "SNP_GUEST_REQUEST",
            MsgType::Http => "HTTP",
            MsgType::SlotRead => "SLOT_READ",
            MsgType::SlotWrite => "SLOT_WRITE",
            MsgType::SlotFlush => "SLOT_FLUSH",
        }
    }
}

impl fmt::Display for MsgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the host handled a request (`resp.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Done; the payload is the type's response.
    Ok,
    /// The request payload was not valid for its type.
    BadRequest,
    /// The host does not handle this type.
    UnsupportedType,
    /// The key broker or the PSP could not be reached.
    UpstreamUnavailable,
    /// The host's storage failed.
    StorageError,
    /// A payload exceeds what the host (or the area) accepts.
    TooLarge,
    /// Any other host failure.
    Internal,
}

impl Status {
    /// Every status, in code order.
    pub const ALL: [Status; 7] = [
        Status::Ok,
        Status::BadRequest,
        Status::UnsupportedType,
        Status::UpstreamUnavailable,
        Status::StorageError,
        Status::TooLarge,
        Status::Internal,
    ];

    /// The status code.
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 0,
            Status::BadRequest => 1,
            Status::UnsupportedType => 2,
            Status::UpstreamUnavailable => 3,
            Status::StorageError => 4,
            Status::TooLarge => 5,
            Status::Internal => 6,
        }
    }

    /// The status with code `code`, if any.
    pub fn from_code(code: u16) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.code() == code)
    }

    /// The upper-case name used in logs and the documentation.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadRequest => "BAD_REQUEST",
            Status::UnsupportedType => "UNSUPPORTED_TYPE",
            Status::UpstreamUnavailable => "UPSTREAM_UNAVAILABLE",
            Status::StorageError => "STORAGE_ERROR",
            Status::TooLarge => "TOO_LARGE",
            Status::Internal => "INTERNAL",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_distinct() {
        for t in MsgType::ALL {
            assert_eq!(MsgType::from_code(t.code()), Some(t));
            assert_eq!(t.response_code() & !RESPONSE_BIT, t.code());
            assert_eq!(MsgType::from_code(t.response_code()), None);
        }
        for s in Status::ALL {
            assert_eq!(Status::from_code(s.code()), Some(s));
        }
        assert_eq!(Status::from_code(7), None);
        assert_eq!(MsgType::from_code(0), None);
    }

    #[test]
    fn areas_split_the_region_after_the_first_page() {
        let len = 0x20_0000;
        assert_eq!(area_len(len), (len - 0x1000) / 2);
        assert_eq!(response_area(len), 0x1000 + area_len(len));
        assert!(response_area(len) + area_len(len) <= len);
        assert!(region_len_ok(len));
        assert!(region_len_ok(MIN_REGION_LEN) && region_len_ok(MAX_REGION_LEN));
        assert!(!region_len_ok(MIN_REGION_LEN - REGION_ALIGN));
        assert!(!region_len_ok(MAX_REGION_LEN + REGION_ALIGN));
        assert!(!region_len_ok(len + 1));
    }
}
