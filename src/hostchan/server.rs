//! [`Server`]: the host's end, used by the svtpm-proxy daemon (and by the
//! tests as a scripted host). It keeps the header written, notices new
//! requests by their sequence number, copies each one out once, and
//! publishes responses payload first, sequence number last.

use alloc::vec;
use alloc::vec::Vec;

use super::error::HostchanError;
use super::layout::{
    area_len, request_area, response_area, MsgType, Status, MAGIC, OFF_HOST_READY, OFF_REQ,
    OFF_RESP,
};
use super::region::Region;
use super::wire::{Descriptor, Header};

/// A request copied out of the region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Its sequence number.
    pub seq: u32,
    /// Its type code (possibly one this end does not know).
    pub kind: u16,
    /// Its id.
    pub request_id: u64,
    /// Its payload.
    pub payload: Vec<u8>,
}

impl Request {
    /// The message type, if the code is a known one.
    pub fn msg_type(&self) -> Option<MsgType> {
        MsgType::from_code(self.kind)
    }
}

/// The host's end of the host channel.
#[derive(Debug)]
pub struct Server<R: Region> {
    region: R,
    area: usize,
    /// Sequence number of the last request taken.
    last_seq: u32,
}

impl<R: Region> Server<R> {
    /// Serves `region`: writes the header with `host_ready` = 1. A request
    /// left unanswered (by an earlier server that stopped) is served; one
    /// already answered is not served again.
    pub fn new(region: R) -> Self {
        let mut s = Server {
            area: area_len(region.len()),
            region,
            last_seq: 0,
        };
        s.write_header();
        let req = s.region.load_u32_acquire(OFF_REQ);
        let resp = s.region.load_u32_acquire(OFF_RESP);
        s.last_seq = if req != 0 && req == resp { req } else { 0 };
        s
    }

    fn write_header(&mut self) {
        Header::for_region(self.region.len()).write(&mut self.region);
    }

    /// Rewrites the header if its magic is missing or any field differs
    /// from what this server wrote (the memory was cleared or scribbled).
    pub fn ensure_header(&mut self) {
        let h = Header::read(&self.region);
        if h.magic != MAGIC || h != Header::for_region(self.region.len()) {
            self.write_header();
        }
    }

    /// Sets `host_ready` (0 when the proxy stops serving).
    pub fn set_ready(&mut self, ready: bool) {
        self.region.write_u32(OFF_HOST_READY, u32::from(ready));
    }

    /// Size of each payload area.
    pub fn area_len(&self) -> usize {
        self.area
    }

    /// A new request, if the guest rang since the last one. A request
    /// whose descriptor is invalid is answered with BAD_REQUEST here and
    /// reported as the error.
    pub fn poll(&mut self) -> Option<Result<Request, HostchanError>> {
        let seq = self.region.load_u32_acquire(OFF_REQ);
        if seq == 0 || seq == self.last_seq {
            return None;
        }
        self.last_seq = seq;
        let desc = Descriptor::read(&self.region, OFF_REQ);
        let len = usize::try_from(desc.payload_len).unwrap_or(usize::MAX);
        let fault = if desc.status != 0 {
            Some(HostchanError::ReservedNonZero(desc.status))
        } else if len > self.area {
            Some(HostchanError::OverArea {
                what: "request",
                len,
                area: self.area,
            })
        } else {
            None
        };
        if let Some(e) = fault {
            let empty = Request {
                seq,
                kind: desc.kind,
                request_id: desc.request_id,
                payload: Vec::new(),
            };
            self.publish(&empty, Status::BadRequest, &[]);
            return Some(Err(e));
        }
        let mut payload = vec![0u8; len];
        self.region
            .read(request_area(self.region.len()), &mut payload);
        Some(Ok(Request {
            seq,
            kind: desc.kind,
            request_id: desc.request_id,
            payload,
        }))
    }

    /// Answers `req`. A payload larger than the area is refused (nothing
    /// is written); answer TOO_LARGE instead.
    pub fn respond(
        &mut self,
        req: &Request,
        status: Status,
        payload: &[u8],
    ) -> Result<(), HostchanError> {
        if payload.len() > self.area {
            return Err(HostchanError::OverArea {
                what: "response",
                len: payload.len(),
                area: self.area,
            });
        }
        self.publish(req, status, payload);
        Ok(())
    }

    fn publish(&mut self, req: &Request, status: Status, payload: &[u8]) {
        self.respond_raw(
            req.seq,
            req.kind | super::layout::RESPONSE_BIT,
            status.code(),
            req.request_id,
            payload.len() as u32,
            payload,
        );
    }

    /// Writes any response (fault injection): the payload (cut to the
    /// area), the descriptor fields as given, then `resp.seq`.
    pub fn respond_raw(
        &mut self,
        seq: u32,
        kind: u16,
        status: u16,
        request_id: u64,
        payload_len: u32,
        payload: &[u8],
    ) {
        let n = payload.len().min(self.area);
        self.region
            .write(response_area(self.region.len()), &payload[..n]);
        Descriptor {
            seq,
            kind,
            status,
            request_id,
            payload_len,
        }
        .publish(&mut self.region, OFF_RESP);
    }

    /// The region (for tests and fault injection).
    pub fn region_mut(&mut self) -> &mut R {
        &mut self.region
    }
}
