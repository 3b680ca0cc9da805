//! The header and the two descriptors as private copies: read once out of
//! the region, then checked; or built privately, then written. The only
//! code that knows field offsets besides [`layout`](super::layout).

use super::error::HostchanError;
use super::layout::{
    region_len_ok, DESC_LEN, DESC_PAYLOAD_LEN, DESC_REQUEST_ID, DESC_SEQ, DESC_STATUS, DESC_TYPE,
    HEADER_LEN, MAGIC, OFF_HOST_READY, OFF_MAGIC, OFF_REGION_LEN, OFF_VERSION, VERSION,
};
use super::region::Region;

/// A copy of the host-written header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// `magic`.
    pub magic: [u8; 8],
    /// `version`.
    pub version: u32,
    /// `region_len`.
    pub region_len: u32,
    /// `host_ready`.
    pub host_ready: u32,
}

impl Header {
    /// Copies the header out of `region` (once).
    pub fn read<R: Region + ?Sized>(region: &R) -> Header {
        let mut b = [0u8; HEADER_LEN];
        region.read(OFF_MAGIC, &mut b);
        let word = |off: usize| u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]]);
        let mut magic = [0u8; 8];
        magic.copy_from_slice(&b[..8]);
        Header {
            magic,
            version: word(OFF_VERSION),
            region_len: word(OFF_REGION_LEN),
            host_ready: word(OFF_HOST_READY),
        }
    }

    /// The header a host serving `region_len` bytes writes.
    pub fn for_region(region_len: usize) -> Header {
        Header {
            magic: MAGIC,
            version: VERSION,
            region_len: u32::try_from(region_len).unwrap_or(u32::MAX),
            host_ready: 1,
        }
    }

    /// Writes the header into `region`.
    pub fn write<R: Region + ?Sized>(&self, region: &mut R) {
        let mut b = [0u8; HEADER_LEN];
        b[..8].copy_from_slice(&self.magic);
        b[OFF_VERSION..OFF_VERSION + 4].copy_from_slice(&self.version.to_le_bytes());
        b[OFF_REGION_LEN..OFF_REGION_LEN + 4].copy_from_slice(&self.region_len.to_le_bytes());
        b[OFF_HOST_READY..OFF_HOST_READY + 4].copy_from_slice(&self.host_ready.to_le_bytes());
        region.write(OFF_MAGIC, &b);
    }

    /// Checks magic, version and region_len against a region of
    /// `region_len` bytes (not `host_ready`).
    pub fn check_layout(&self, region_len: usize) -> Result<(), HostchanError> {
        if self.magic != MAGIC {
            return Err(HostchanError::BadMagic { found: self.magic });
        }
        if self.version != VERSION {
            return Err(HostchanError::WrongVersion {
                found: self.version,
            });
        }
        let expected = u32::try_from(region_len).unwrap_or(u32::MAX);
        if self.region_len != expected {
            return Err(HostchanError::RegionLenMismatch {
                found: self.region_len,
                expected,
            });
        }
        Ok(())
    }
}

/// Checks a region's own size.
pub fn check_region_len(len: usize) -> Result<(), HostchanError> {
    if region_len_ok(len) {
        Ok(())
    } else {
        Err(HostchanError::RegionSize { len })
    }
}

/// A copy of one descriptor (request or response; `status` is the
/// request's `reserved`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptor {
    /// `seq`.
    pub seq: u32,
    /// `type`.
    pub kind: u16,
    /// `status` (response) or `reserved` (request).
    pub status: u16,
    /// `request_id`.
    pub request_id: u64,
    /// `payload_len`.
    pub payload_len: u32,
}

impl Descriptor {
    /// Copies the descriptor at `base` out of `region` (once).
    pub fn read<R: Region + ?Sized>(region: &R, base: usize) -> Descriptor {
        let mut b = [0u8; DESC_LEN];
        region.read(base, &mut b);
        let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let mut id = [0u8; 8];
        id.copy_from_slice(&b[DESC_REQUEST_ID..DESC_REQUEST_ID + 8]);
        Descriptor {
            seq: u32_at(DESC_SEQ),
            kind: u16_at(DESC_TYPE),
            status: u16_at(DESC_STATUS),
            request_id: u64::from_le_bytes(id),
            payload_len: u32_at(DESC_PAYLOAD_LEN),
        }
    }

    /// Writes every field but `seq`, then release-stores `seq` (the
    /// doorbell): the other end sees the fields once it sees the seq.
    pub fn publish<R: Region + ?Sized>(&self, region: &mut R, base: usize) {
        let mut b = [0u8; DESC_LEN - DESC_TYPE];
        let rel = |o: usize| o - DESC_TYPE;
        b[rel(DESC_TYPE)..rel(DESC_TYPE) + 2].copy_from_slice(&self.kind.to_le_bytes());
        b[rel(DESC_STATUS)..rel(DESC_STATUS) + 2].copy_from_slice(&self.status.to_le_bytes());
        b[rel(DESC_REQUEST_ID)..rel(DESC_REQUEST_ID) + 8]
            .copy_from_slice(&self.request_id.to_le_bytes());
        b[rel(DESC_PAYLOAD_LEN)..rel(DESC_PAYLOAD_LEN) + 4]
            .copy_from_slice(&self.payload_len.to_le_bytes());
        region.write(base + DESC_TYPE, &b);
        region.store_u32_release(base + DESC_SEQ, self.seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hostchan::layout::{OFF_REQ, OFF_RESP};
    use crate::hostchan::region::shared_pair;

    #[test]
    fn header_and_descriptor_round_trip_at_their_offsets() {
        let (mut a, b) = shared_pair(0x1000);
        Header::for_region(0x20_0000).write(&mut a);
        let mut raw = [0u8; 0x14];
        b.read(0, &mut raw);
        assert_eq!(&raw[..8], b"SVTPMHC1");
        assert_eq!(raw[8..12], 1u32.to_le_bytes());
        assert_eq!(raw[12..16], 0x20_0000u32.to_le_bytes());
        assert_eq!(raw[16..20], 1u32.to_le_bytes());
        let h = Header::read(&b);
        assert_eq!(h.check_layout(0x20_0000), Ok(()));
        assert_eq!(
            h.check_layout(0x10_0000),
            Err(HostchanError::RegionLenMismatch {
                found: 0x20_0000,
                expected: 0x10_0000
            })
        );

        let d = Descriptor {
            seq: 0x0102_0304,
            kind: 0x8031,
            status: 4,
            request_id: 0x1122_3344_5566_7788,
            payload_len: 0x99,
        };
        d.publish(&mut a, OFF_RESP);
        assert_eq!(Descriptor::read(&b, OFF_RESP), d);
        let mut raw = [0u8; 0x14];
        b.read(OFF_RESP, &mut raw);
        assert_eq!(raw[0..4], 0x0102_0304u32.to_le_bytes());
        assert_eq!(raw[4..6], 0x8031u16.to_le_bytes());
        assert_eq!(raw[6..8], 4u16.to_le_bytes());
        assert_eq!(raw[8..16], 0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(raw[16..20], 0x99u32.to_le_bytes());
        assert_eq!(Descriptor::read(&b, OFF_REQ).seq, 0);
    }
}
