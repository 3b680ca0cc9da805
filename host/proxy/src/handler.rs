//! What the proxy does with each request: HELLO, LOG, the state slots on a
//! [`DirStore`], HTTP to the key broker, and SNP guest requests to the
//! simulated PSP. Each request yields an [`Outcome`]: the status and
//! payload to answer with, and the words for the log line. Payload-level
//! faults are applied here; channel-level ones (drop, reorder, header) by
//! the serving loop.
//!
//! Nothing here trusts the payloads: every one is decoded with the bounded
//! decoders of `svtpm::hostchan`, and the log never shows blob or message
//! bytes, only sizes and the plaintext fields of headers.

use log::warn;
use svtpm::attest::kbs::{HttpResponse, Method};
use svtpm::hostchan::http::{decode_request, encode_response};
use svtpm::hostchan::layout::VERSION;
use svtpm::hostchan::messages::{
    decode_log, decode_slot_read, decode_slot_write, encode_slot_read_reply, Hello, HelloReply,
    SnpReply, MAX_SNP_REQUEST, SNP_PAGE,
};
use svtpm::hostchan::{MsgType, Request, Status};
use svtpm::nvstate::{SlotId, SlotStore};
use svtpm_psp_sim::Psp;
use svtpm_store::DirStore;

use crate::faults::{self, Fault, Faults};
use crate::relay::{Relay, RelayError};

/// What to answer and what to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `resp.status`.
    pub status: Status,
    /// The response payload.
    pub payload: Vec<u8>,
    /// What happened, for the log (no payload bytes).
    pub summary: String,
    /// Send no response at all (`drop-http`).
    pub drop: bool,
}

impl Outcome {
    fn new(status: Status, payload: Vec<u8>, summary: String) -> Outcome {
        Outcome {
            status,
            payload,
            summary,
            drop: false,
        }
    }

    fn refuse(status: Status, summary: String) -> Outcome {
        Outcome::new(status, Vec::new(), summary)
    }
}

/// The request handlers and what they need.
#[derive(Debug)]
pub struct Handler {
    name: String,
    store: DirStore,
    relay: Relay,
    psp: Psp,
    cert_table: Vec<u8>,
    faults: Faults,
}

fn slot_name(slot: SlotId) -> &'static str {
    match slot {
        SlotId::A => "A",
        SlotId::B => "B",
    }
}

/// Guest text made safe for one log line: control characters escaped.
pub fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

impl Handler {
    /// Handlers over `store`, `relay` and `psp`; `cert_table` goes with
    /// every successful SNP guest request.
    pub fn new(
        store: DirStore,
        relay: Relay,
        psp: Psp,
        cert_table: Vec<u8>,
        faults: Faults,
    ) -> Handler {
        Handler {
            name: format!("svtpm-proxy {}", env!("CARGO_PKG_VERSION")),
            store,
            relay,
            psp,
            cert_table,
            faults,
        }
    }

    /// The name HELLO answers with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Handles one request.
    pub fn handle(&mut self, req: &Request) -> Outcome {
        let Some(kind) = req.msg_type() else {
            return Outcome::refuse(
                Status::UnsupportedType,
                format!("type {:#06x} (unknown)", req.kind),
            );
        };
        match kind {
            MsgType::Hello => self.hello(&req.payload),
            MsgType::Log => log_message(&req.payload),
            MsgType::SlotRead => self.slot_read(&req.payload),
            MsgType::SlotWrite => self.slot_write(&req.payload),
            MsgType::SlotFlush => self.slot_flush(&req.payload),
            MsgType::Http => self.http(&req.payload),
            MsgType::SnpGuestRequest => self.snp(&req.payload),
        }
    }

    fn hello(&self, payload: &[u8]) -> Outcome {
        let hello = match Hello::decode(payload) {
            Ok(h) => h,
            Err(e) => return Outcome::refuse(Status::BadRequest, format!("HELLO refused: {e}")),
        };
        let who = printable(&hello.name);
        if !(hello.min_version..=hello.max_version).contains(&VERSION) {
            return Outcome::refuse(
                Status::BadRequest,
                format!(
                    "HELLO from {who:?} for versions {}..={}: version {VERSION} only",
                    hello.min_version, hello.max_version
                ),
            );
        }
        let reply = HelloReply {
            version: VERSION,
            name: self.name.clone(),
        };
        Outcome::new(
            Status::Ok,
            reply.encode(),
            format!("HELLO from {who:?}, version {VERSION}"),
        )
    }

    fn slot_read(&mut self, payload: &[u8]) -> Outcome {
        let slot = match decode_slot_read(payload) {
            Ok(s) => s,
            Err(e) => return Outcome::refuse(Status::BadRequest, format!("SLOT_READ: {e}")),
        };
        let name = slot_name(slot);
        match self.store.read_slot(slot) {
            Ok(data) => {
                let what = match &data {
                    Some(d) => format!("{} bytes", d.len()),
                    None => "empty".to_string(),
                };
                let mut reply = encode_slot_read_reply(data.as_deref());
                let mut summary = format!("SLOT_READ {name}: {what}");
                if self.faults.has(&Fault::CorruptSlot) && reply.len() > 1 {
                    faults::corrupt_slot_reply(&mut reply);
                    summary.push_str(" [fault corrupt-slot: one bit flipped]");
                }
                Outcome::new(Status::Ok, reply, summary)
            }
            Err(e) => Outcome::refuse(Status::StorageError, format!("SLOT_READ {name}: {e}")),
        }
    }

    fn slot_write(&mut self, payload: &[u8]) -> Outcome {
        let (slot, data) = match decode_slot_write(payload) {
            Ok(s) => s,
            Err(e) => return Outcome::refuse(Status::BadRequest, format!("SLOT_WRITE: {e}")),
        };
        let name = slot_name(slot);
        match self.store.write_slot(slot, data) {
            Ok(()) => Outcome::new(
                Status::Ok,
                Vec::new(),
                format!("SLOT_WRITE {name}: {} bytes", data.len()),
            ),
            Err(e) => Outcome::refuse(
                Status::StorageError,
                format!("SLOT_WRITE {name} ({} bytes): {e}", data.len()),
            ),
        }
    }

    fn slot_flush(&mut self, payload: &[u8]) -> Outcome {
        if !payload.is_empty() {
            return Outcome::refuse(Status::BadRequest, "SLOT_FLUSH with a payload".into());
        }
        match self.store.flush() {
            Ok(()) => Outcome::new(Status::Ok, Vec::new(), "SLOT_FLUSH".into()),
            Err(e) => Outcome::refuse(Status::StorageError, format!("SLOT_FLUSH: {e}")),
        }
    }

    fn http(&mut self, payload: &[u8]) -> Outcome {
        let mut req = match decode_request(payload) {
            Ok(r) => r,
            Err(e) => return Outcome::refuse(Status::BadRequest, format!("HTTP refused: {e}")),
        };
        let mut what = format!("HTTP {} {}", req.method.as_str(), printable(&req.path));
        if self.faults.has(&Fault::DropHttp) {
            return Outcome {
                drop: true,
                ..Outcome::refuse(Status::Ok, format!("{what} [fault drop-http: no response]"))
            };
        }
        let is_attest =
            req.method == Method::Post && req.path.split('?').next() == Some("/kbs/v0/attest");
        if is_attest {
            self.attest_faults(&mut req.body, &mut what);
        }
        let resp = match self.relay.forward(&req) {
            Ok(r) => r,
            Err(e @ RelayError::Path(_)) => {
                return Outcome::refuse(Status::BadRequest, format!("{what} refused: {e}"))
            }
            Err(e @ RelayError::Unavailable(_)) => {
                return Outcome::refuse(Status::UpstreamUnavailable, format!("{what} -> {e}"))
            }
        };
        let summary = format!("{what} -> {}", resp.status);
        self.http_reply(resp, summary)
    }

    /// Encodes the broker's answer, applying `corrupt-http` and
    /// `truncate-http`.
    fn http_reply(&self, resp: HttpResponse, mut summary: String) -> Outcome {
        let mut encoded = match encode_response(&resp) {
            Ok(e) => e,
            Err(e) => {
                return Outcome::refuse(
                    Status::TooLarge,
                    format!("{summary}: the answer does not fit the channel: {e}"),
                )
            }
        };
        if self.faults.has(&Fault::CorruptHttp) {
            faults::corrupt_http(&mut encoded, resp.body.len());
            summary.push_str(" [fault corrupt-http]");
        }
        if self.faults.has(&Fault::TruncateHttp) {
            faults::truncate_http(&mut encoded);
            summary.push_str(" [fault truncate-http]");
        }
        Outcome::new(Status::Ok, encoded, summary)
    }

    fn attest_faults(&self, body: &mut Vec<u8>, what: &mut String) {
        if let Some(path) = self.faults.record_attest() {
            match std::fs::write(path, &body) {
                Ok(()) => what.push_str(" [fault record-attest: saved]"),
                Err(e) => warn!("record-attest: writing {}: {e}", path.display()),
            }
        }
        if let Some(saved) = self.faults.replay_body() {
            *body = saved.to_vec();
            what.push_str(" [fault replay-attest: saved body sent]");
        }
        if self.faults.has(&Fault::TamperReport) {
            match faults::tamper_report(body) {
                Ok(t) => {
                    *body = t;
                    what.push_str(" [fault tamper-report: measurement byte flipped]");
                }
                Err(why) => warn!("tamper-report: body sent unchanged: {why}"),
            }
        }
    }

    fn snp(&mut self, request: &[u8]) -> Outcome {
        if request.len() > MAX_SNP_REQUEST {
            return Outcome::refuse(
                Status::BadRequest,
                format!(
                    "SNP_GUEST_REQUEST of {} bytes (a message is at most a page)",
                    request.len()
                ),
            );
        }
        // The plaintext header fields, for the log.
        let field = |off: usize| request.get(off).copied().unwrap_or(0);
        let seqno = request
            .get(0x20..0x28)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
            .unwrap_or(0);
        let what = format!(
            "SNP_GUEST_REQUEST msg_type {} seqno {seqno} vmpck {}",
            field(0x34),
            field(0x3C)
        );
        let mut page = vec![0u8; SNP_PAGE];
        match self.psp.handle(request, &mut page) {
            Ok(_) => Outcome::new(
                Status::Ok,
                SnpReply::encode(0, &page, &self.cert_table),
                format!(
                    "{what} -> report signed, {} certificate table bytes",
                    self.cert_table.len()
                ),
            ),
            Err(e) => Outcome::new(
                Status::Ok,
                SnpReply::encode(e.code(), &[], &[]),
                format!("{what} -> firmware error {}: {e}", e.code()),
            ),
        }
    }
}

fn log_message(payload: &[u8]) -> Outcome {
    match decode_log(payload) {
        Ok(text) => {
            for line in text.lines() {
                log::info!("guest: {}", printable(line));
            }
            Outcome::new(Status::Ok, Vec::new(), format!("LOG {} bytes", text.len()))
        }
        Err(e) => Outcome::refuse(Status::BadRequest, format!("LOG refused: {e}")),
    }
}
