//! Fuzzes the guest end of the host channel with what a hostile host could
//! write: the header before attach, and for every request a response
//! descriptor (each field either forced right or left to the fuzzer),
//! a payload and, now and then, a scribbled header; the requests come from
//! the three adapters, LOG and raw calls. Also the HTTP and payload
//! decoders on the raw bytes, whose accepted inputs must re-encode to the
//! same bytes. Nothing may panic, and every length must stay bounded.
#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;
use spin::Mutex;
use svtpm::attest::kbs::{HttpRequest, Method, Transport};
use svtpm::attest::snp::GuestRequestTransport;
use svtpm::hostchan::layout::{response_area, MAGIC, OFF_REQ, OFF_RESP};
use svtpm::hostchan::{
    http, messages, Channel, ChannelGuestRequest, ChannelHttp, ChannelSlots, MsgType, Region,
};
use svtpm::nvstate::{SlotId, SlotStore};

const LEN: usize = 64 * 1024;

/// Advances 1 ms per read, so every wait ends after a few polls.
fn clock() -> u64 {
    static NOW: AtomicU64 = AtomicU64::new(0);
    NOW.fetch_add(1_000_000, Ordering::Relaxed)
}

/// The fuzz input, consumed from the front.
struct Script<'a> {
    rest: &'a [u8],
}

impl Script<'_> {
    fn byte(&mut self) -> u8 {
        let (&b, rest) = self.rest.split_first().unwrap_or((&0, &[]));
        self.rest = rest;
        b
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.rest.len());
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        head.to_vec()
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }
}

/// Plain memory whose host side runs inside the guest's doorbell store.
struct FuzzRegion<'a> {
    mem: Vec<u8>,
    script: Script<'a>,
}

impl FuzzRegion<'_> {
    fn get_u32(&self, off: usize) -> u32 {
        u32::from_le_bytes(self.mem[off..off + 4].try_into().unwrap())
    }

    /// The host's answer to the request just rung.
    fn answer(&mut self) {
        let c = self.script.byte();
        if c & 0x80 != 0 {
            // Scribble over the header.
            let n = usize::from(self.script.byte() % 0x14);
            let b = self.script.bytes(n);
            self.mem[..b.len()].copy_from_slice(&b);
        }
        let req_seq = self.get_u32(OFF_REQ);
        let req_type = u16::from_le_bytes([self.mem[OFF_REQ + 4], self.mem[OFF_REQ + 5]]);
        let req_id = u64::from_le_bytes(self.mem[OFF_REQ + 8..OFF_REQ + 16].try_into().unwrap());
        let payload_len = usize::from(self.script.u16());
        let payload = self.script.bytes(payload_len);
        let (seq, kind, status, id, len) = (
            self.script.u32(),
            self.script.u16(),
            self.script.u16(),
            self.script.u64(),
            self.script.u32(),
        );
        let seq = if c & 1 != 0 { req_seq } else { seq };
        let kind = if c & 2 != 0 { req_type | 0x8000 } else { kind };
        let status = if c & 4 != 0 { status % 8 } else { status };
        let id = if c & 8 != 0 { req_id } else { id };
        let len = if c & 16 != 0 {
            payload.len() as u32
        } else {
            len
        };
        let base = response_area(LEN);
        let n = payload.len().min(LEN - base);
        self.mem[base..base + n].copy_from_slice(&payload[..n]);
        let d = OFF_RESP;
        self.mem[d + 4..d + 6].copy_from_slice(&kind.to_le_bytes());
        self.mem[d + 6..d + 8].copy_from_slice(&status.to_le_bytes());
        self.mem[d + 8..d + 16].copy_from_slice(&id.to_le_bytes());
        self.mem[d + 16..d + 20].copy_from_slice(&len.to_le_bytes());
        self.mem[d..d + 4].copy_from_slice(&seq.to_le_bytes());
    }
}

impl Region for FuzzRegion<'_> {
    fn len(&self) -> usize {
        self.mem.len()
    }
    fn read(&self, offset: usize, buf: &mut [u8]) {
        // The channel must only ask for bytes inside the region.
        buf.copy_from_slice(&self.mem[offset..offset + buf.len()]);
    }
    fn write(&mut self, offset: usize, data: &[u8]) {
        self.mem[offset..offset + data.len()].copy_from_slice(data);
    }
    fn load_u32_acquire(&self, offset: usize) -> u32 {
        self.get_u32(offset)
    }
    fn store_u32_release(&mut self, offset: usize, value: u32) {
        self.mem[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
        if offset == OFF_REQ {
            self.answer();
        }
    }
}

fn decoders(data: &[u8]) {
    if let Ok(r) = http::decode_request(data) {
        assert_eq!(http::encode_request(&r).unwrap(), data);
    }
    if let Ok(r) = http::decode_response(data) {
        assert_eq!(http::encode_response(&r).unwrap(), data);
    }
    if let Ok(Some(d)) = messages::decode_slot_read_reply(data) {
        assert_eq!(d.len() + 1, data.len());
    }
    if let Ok(r) = messages::SnpReply::decode(data) {
        assert_eq!(r.page.len(), messages::SNP_PAGE);
        assert!(r.certs.len() <= messages::MAX_CERT_TABLE);
    }
    let _ = messages::HelloReply::decode(data);
    let _ = messages::Hello::decode(data);
    let _ = messages::decode_slot_write(data);
}

fuzz_target!(|data: &[u8]| {
    decoders(data);
    let mut script = Script { rest: data };
    let mode = script.byte();
    let mut mem = vec![0u8; LEN];
    if mode & 1 != 0 {
        // A well-formed header; otherwise the fuzzer's.
        mem[..8].copy_from_slice(&MAGIC);
        mem[8..12].copy_from_slice(&1u32.to_le_bytes());
        mem[12..16].copy_from_slice(&(LEN as u32).to_le_bytes());
        mem[16..20].copy_from_slice(&1u32.to_le_bytes());
    } else {
        let h = script.bytes(0x14);
        mem[..h.len()].copy_from_slice(&h);
    }
    let region = FuzzRegion { mem, script };
    let Ok(mut chan) = Channel::attach(region, clock, 1, 3_000_000) else {
        return;
    };
    assert!(chan.proxy_name().len() <= messages::MAX_NAME);
    chan.set_timeout_ns(3_000_000);
    let chan = Mutex::new(chan);
    for op in 0..4u8 {
        let sel = chan
            .lock()
            .region()
            .script
            .rest
            .first()
            .copied()
            .unwrap_or(0);
        if chan.lock().region().script.rest.is_empty() {
            break;
        }
        match (sel >> 4).wrapping_add(op) % 8 {
            0 => {
                let _ = ChannelSlots::new(&chan).read_slot(SlotId::A);
            }
            1 => {
                let _ = ChannelSlots::new(&chan).write_slot(SlotId::B, b"sealed");
            }
            2 => {
                let _ = ChannelSlots::new(&chan).flush();
            }
            3 => {
                let req = HttpRequest {
                    method: Method::Post,
                    path: "/kbs/v0/attest".into(),
                    headers: vec![("Content-Type".into(), "application/json".into())],
                    body: b"{}".to_vec(),
                };
                if let Ok(r) = ChannelHttp::new(&chan).exchange(&req) {
                    assert!(r.headers.len() <= http::MAX_HEADERS);
                }
            }
            4 => {
                let mut t = ChannelGuestRequest::new(&chan);
                let mut page = vec![0u8; 4096];
                if t.exchange(&[1; 96], &mut page).is_ok() {
                    assert!(t.take_cert_table().len() <= messages::MAX_CERT_TABLE);
                }
            }
            5 => {
                let _ = chan.lock().log("fuzz");
            }
            kind => {
                let max = usize::from(sel & 0x0f) * 97;
                let kind = MsgType::ALL[usize::from(kind) % MsgType::ALL.len()];
                let mut c = chan.lock();
                if let Ok(r) = c.call(kind, b"payload", max, 3_000_000) {
                    assert!(r.payload.len() <= max);
                }
            }
        }
    }
});
