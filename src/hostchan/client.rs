//! [`Channel`]: the guest's end. It sends one request at a time and treats
//! everything the host writes as hostile: the header, the response
//! descriptor and the payload are copied out once into private memory and
//! checked there before anything uses them; every length is bounded by the
//! payload area and the caller's maximum; a late answer to an abandoned
//! request can never be taken for the answer to a new one (sequence number
//! and request id must both match).

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::error::HostchanError;
use super::layout::{
    area_len, request_area, response_area, MsgType, Status, OFF_REQ, OFF_RESP, VERSION,
};
use super::messages::{self, Hello, HelloReply};
use super::region::Region;
use super::wire::{check_region_len, Descriptor, Header};

/// Name the guest gives itself in HELLO.
pub const SOFTWARE_NAME: &str = "svtpm";
/// Default per-request timeout for the adapters (15 s).
pub const DEFAULT_TIMEOUT_NS: u64 = 15_000_000_000;
/// Longest HELLO response accepted.
const MAX_HELLO_RESPONSE: usize = 4 + messages::MAX_NAME;

/// A response that passed every check. A status other than
/// [`Status::Ok`] is a valid answer: the host refused the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The host's status.
    pub status: Status,
    /// The payload, copied out of the region.
    pub payload: Vec<u8>,
}

impl Response {
    /// The payload if the status is OK, else [`HostchanError::Status`].
    pub fn ok(self, kind: MsgType) -> Result<Vec<u8>, HostchanError> {
        match self.status {
            Status::Ok => Ok(self.payload),
            status => Err(HostchanError::Status { kind, status }),
        }
    }
}

/// splitmix64: spreads the boot seed over the sequence and id bases.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The sequence number after `seq`: wraps and skips 0.
pub fn next_seq(seq: u32) -> u32 {
    match seq.wrapping_add(1) {
        0 => 1,
        n => n,
    }
}

/// The guest's end of the host channel.
#[derive(Debug)]
pub struct Channel<R: Region> {
    region: R,
    region_len: usize,
    area: usize,
    clock_ns: fn() -> u64,
    /// Sequence number of the last request sent.
    seq: u32,
    id_base: u64,
    id_counter: u64,
    timeout_ns: u64,
    proxy_name: String,
}

impl<R: Region> Channel<R> {
    /// Waits up to `wait_ns` for a host to serve the channel (valid header,
    /// `host_ready` = 1), then says HELLO. `seed` is random per boot: the
    /// first sequence number and the request-id base come from it.
    pub fn attach(
        region: R,
        clock_ns: fn() -> u64,
        seed: u64,
        wait_ns: u64,
    ) -> Result<Self, HostchanError> {
        let region_len = region.len();
        check_region_len(region_len)?;
        let start = clock_ns();
        loop {
            let header = Header::read(&region);
            let fault = match header.check_layout(region_len) {
                Ok(()) if header.host_ready == 1 => break,
                Ok(()) => None,
                // A host that wrote the right magic and says it is ready
                // but speaks another layout will not change its mind.
                Err(
                    e @ (HostchanError::WrongVersion { .. }
                    | HostchanError::RegionLenMismatch { .. }),
                ) if header.host_ready == 1 => return Err(e),
                Err(HostchanError::BadMagic { found }) if found == [0; 8] => None,
                Err(e) => Some(e),
            };
            let waited = clock_ns().saturating_sub(start);
            if waited >= wait_ns {
                return Err(fault.unwrap_or(HostchanError::NotReady {
                    waited_ms: waited / 1_000_000,
                }));
            }
            core::hint::spin_loop();
        }
        let first = mix(seed);
        let mut chan = Channel {
            region,
            region_len,
            area: area_len(region_len),
            clock_ns,
            // The first request uses next_seq(seq): never 0.
            seq: first as u32,
            id_base: mix(first ^ 0x5356_5450_4d48_4331),
            id_counter: 0,
            timeout_ns: DEFAULT_TIMEOUT_NS,
            proxy_name: String::new(),
        };
        chan.hello(wait_ns)?;
        Ok(chan)
    }

    fn hello(&mut self, timeout_ns: u64) -> Result<(), HostchanError> {
        let req = Hello {
            min_version: VERSION,
            max_version: VERSION,
            name: SOFTWARE_NAME.into(),
        };
        let k = MsgType::Hello;
        let payload = self
            .call(k, &req.encode(), MAX_HELLO_RESPONSE, timeout_ns)?
            .ok(k)?;
        let reply = HelloReply::decode(&payload)?;
        if reply.version != VERSION {
            return Err(HostchanError::VersionRefused {
                chosen: reply.version,
            });
        }
        self.proxy_name = reply.name;
        Ok(())
    }

    /// The proxy's name from HELLO.
    pub fn proxy_name(&self) -> &str {
        &self.proxy_name
    }

    /// Size of each payload area.
    pub fn area_len(&self) -> usize {
        self.area
    }

    /// The adapters' per-request timeout.
    pub fn timeout_ns(&self) -> u64 {
        self.timeout_ns
    }

    /// Sets the adapters' per-request timeout.
    pub fn set_timeout_ns(&mut self, ns: u64) {
        self.timeout_ns = ns;
    }

    /// The clock the channel waits with.
    pub fn now_ns(&self) -> u64 {
        (self.clock_ns)()
    }

    /// Sends `text` (cut to 4096 bytes) to the host's log.
    pub fn log(&mut self, text: &str) -> Result<(), HostchanError> {
        let k = MsgType::Log;
        let t = self.timeout_ns;
        let payload = self
            .call(k, messages::log_text(text).as_bytes(), 0, t)?
            .ok(k)?;
        messages::expect_empty(k, &payload)
    }

    /// Sends one request and waits up to `timeout_ns` for its response,
    /// accepting at most `max_response` payload bytes. Every field of the
    /// response is checked; a non-OK status is returned as a valid
    /// [`Response`].
    pub fn call(
        &mut self,
        kind: MsgType,
        payload: &[u8],
        max_response: usize,
        timeout_ns: u64,
    ) -> Result<Response, HostchanError> {
        if payload.len() > self.area {
            return Err(HostchanError::OverArea {
                what: "request",
                len: payload.len(),
                area: self.area,
            });
        }
        // The host may have restarted or gone; refuse a broken header now
        // rather than wait for a timeout.
        Header::read(&self.region).check_layout(self.region_len)?;

        let seq = next_seq(self.seq);
        self.seq = seq;
        let request_id = self.id_base.wrapping_add(self.id_counter);
        self.id_counter = self.id_counter.wrapping_add(1);
        self.region.write(request_area(self.region_len), payload);
        Descriptor {
            seq,
            kind: kind.code(),
            status: 0,
            request_id,
            // payload.len() <= area < 16 MiB.
            payload_len: payload.len() as u32,
        }
        .publish(&mut self.region, OFF_REQ);

        let start = self.now_ns();
        loop {
            if self.region.load_u32_acquire(OFF_RESP) == seq {
                break;
            }
            let waited = self.now_ns().saturating_sub(start);
            if waited >= timeout_ns {
                return Err(HostchanError::Timeout {
                    kind,
                    seq,
                    waited_ms: waited / 1_000_000,
                });
            }
            core::hint::spin_loop();
        }

        // Copy everything once, then check only the copies.
        let header = Header::read(&self.region);
        let desc = Descriptor::read(&self.region, OFF_RESP);
        header.check_layout(self.region_len)?;
        let status = self.check(&desc, kind, seq, request_id, max_response)?;
        // check() bounded payload_len by the area.
        let mut out = vec![0u8; desc.payload_len as usize];
        self.region.read(response_area(self.region_len), &mut out);
        Ok(Response {
            status,
            payload: out,
        })
    }

    fn check(
        &self,
        desc: &Descriptor,
        kind: MsgType,
        seq: u32,
        request_id: u64,
        max_response: usize,
    ) -> Result<Status, HostchanError> {
        if desc.seq != seq {
            return Err(HostchanError::SeqMismatch {
                expected: seq,
                found: desc.seq,
            });
        }
        if desc.request_id != request_id {
            return Err(HostchanError::RequestIdMismatch {
                expected: request_id,
                found: desc.request_id,
            });
        }
        if desc.kind != kind.response_code() {
            return Err(HostchanError::WrongResponseType {
                expected: kind.response_code(),
                found: desc.kind,
            });
        }
        let status =
            Status::from_code(desc.status).ok_or(HostchanError::UnknownStatus(desc.status))?;
        let len = usize::try_from(desc.payload_len).unwrap_or(usize::MAX);
        if len > self.area {
            return Err(HostchanError::OverArea {
                what: "response",
                len,
                area: self.area,
            });
        }
        if len > max_response {
            return Err(HostchanError::ResponseTooLarge {
                kind,
                len,
                max: max_response,
            });
        }
        Ok(status)
    }

    /// Makes the next request use `next_seq(seq)` (tests of the wrap).
    #[cfg(test)]
    pub(crate) fn set_last_seq(&mut self, seq: u32) {
        self.seq = seq;
    }

    /// The region (for diagnostics and tests).
    pub fn region(&self) -> &R {
        &self.region
    }
}
