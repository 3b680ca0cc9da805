//! Host tests of the channel: the codecs, a guest and a host on two
//! threads over one shared buffer, every host fault injected through a
//! scripted host, and the adapters against a host backed by an in-memory
//! store, an HTTP echo and a page-echoing PSP stand-in.

mod adapters;
mod codec;
mod exchange;
mod faults;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Instant;

use super::http;
use super::layout::{area_len, response_area, Status, OFF_REQ, OFF_RESP};
use super::messages::{self, Hello, HelloReply, SnpReply};
use super::region::{shared_pair, MemRegion, Region};
use super::server::{Request, Server};
use super::{Channel, MsgType};
use crate::attest::kbs::HttpResponse;
use crate::nvstate::memory::MemoryStore;
use crate::nvstate::SlotStore;

/// Region size used by most tests (the smallest allowed).
pub const LEN: usize = 64 * 1024;
/// Its payload area.
pub const AREA: usize = (LEN - 0x1000) / 2;

thread_local! {
    static FAKE_NS: Cell<u64> = const { Cell::new(0) };
}

/// A clock that advances 1 ms each time it is read (per thread), so
/// timeouts pass at once.
pub fn fake_clock() -> u64 {
    FAKE_NS.with(|c| {
        let v = c.get() + 1_000_000;
        c.set(v);
        v
    })
}

/// Real time since the first read.
pub fn real_clock() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Builds an SNP response page from a request message.
pub type Firmware = fn(&[u8]) -> Vec<u8>;

/// What the reference host does with requests.
#[derive(Debug, Default)]
pub struct Host {
    pub store: MemoryStore,
    /// Nonzero: every SNP request gets this firmware error.
    pub snp_fw_error: u64,
    /// Returned with every SNP response.
    pub certs: Vec<u8>,
    /// Builds the SNP response page from the request message (default:
    /// every byte + 1).
    pub firmware: Option<Firmware>,
    /// Requests handled.
    pub handled: Vec<(u32, u16, u64)>,
}

impl Host {
    /// The status and payload answering `req`.
    pub fn handle(&mut self, req: &Request) -> (Status, Vec<u8>) {
        self.handled.push((req.seq, req.kind, req.request_id));
        let Some(kind) = req.msg_type() else {
            return (Status::UnsupportedType, Vec::new());
        };
        let bad = (Status::BadRequest, Vec::new());
        let io = (Status::StorageError, Vec::new());
        match kind {
            MsgType::Hello => match Hello::decode(&req.payload) {
                Ok(h) if h.min_version <= 1 && h.max_version >= 1 => (
                    Status::Ok,
                    HelloReply {
                        version: 1,
                        name: "test-proxy".into(),
                    }
                    .encode(),
                ),
                _ => bad,
            },
            MsgType::Log => match messages::decode_log(&req.payload) {
                Ok(_) => (Status::Ok, Vec::new()),
                Err(_) => bad,
            },
            MsgType::SlotRead => match messages::decode_slot_read(&req.payload) {
                Ok(slot) => match self.store.read_slot(slot) {
                    Ok(d) => (Status::Ok, messages::encode_slot_read_reply(d.as_deref())),
                    Err(_) => io,
                },
                Err(_) => bad,
            },
            MsgType::SlotWrite => match messages::decode_slot_write(&req.payload) {
                Ok((slot, data)) => match self.store.write_slot(slot, data) {
                    Ok(()) => (Status::Ok, Vec::new()),
                    Err(_) => io,
                },
                Err(_) => bad,
            },
            MsgType::SlotFlush if req.payload.is_empty() => match self.store.flush() {
                Ok(()) => (Status::Ok, Vec::new()),
                Err(_) => io,
            },
            MsgType::SlotFlush => bad,
            MsgType::Http => match http::decode_request(&req.payload) {
                Ok(r) if r.path.contains("unreachable") => {
                    (Status::UpstreamUnavailable, Vec::new())
                }
                Ok(r) => {
                    let mut headers = r.headers.clone();
                    headers.push(("X-Path".into(), r.path.clone()));
                    headers.push(("X-Method".into(), r.method.as_str().into()));
                    let resp = HttpResponse {
                        status: 200,
                        headers,
                        body: r.body,
                    };
                    (Status::Ok, http::encode_response(&resp).unwrap())
                }
                Err(_) => bad,
            },
            MsgType::SnpGuestRequest => match messages::decode_snp_request(&req.payload) {
                // The "firmware" echoes the request with every byte + 1.
                Ok(msg) => {
                    let page: Vec<u8> = match self.firmware {
                        Some(f) => f(msg),
                        None => msg.iter().map(|b| b.wrapping_add(1)).collect(),
                    };
                    (
                        Status::Ok,
                        SnpReply::encode(self.snp_fw_error, &page, &self.certs),
                    )
                }
                Err(_) => bad,
            },
        }
    }
}

/// Answers one request the way a well-behaved proxy does.
pub fn serve_one(server: &mut Server<MemRegion>, host: &mut Host) -> bool {
    match server.poll() {
        Some(Ok(req)) => {
            let (status, payload) = host.handle(&req);
            if server.respond(&req, status, &payload).is_err() {
                server.respond(&req, Status::TooLarge, &[]).unwrap();
            }
            true
        }
        Some(Err(_)) => true,
        None => false,
    }
}

/// A host serving on its own thread until dropped.
pub struct HostThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Host>>,
}

impl HostThread {
    /// Serves `region` with `host`; `delay_first` holds the answer to the
    /// first non-HELLO request back that long.
    pub fn spawn(region: MemRegion, mut host: Host, delay_first_ms: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut server = Server::new(region);
            let mut delayed = delay_first_ms == 0;
            while !flag.load(Ordering::Relaxed) {
                server.ensure_header();
                match server.poll() {
                    Some(Ok(req)) => {
                        if !delayed && req.msg_type() != Some(MsgType::Hello) {
                            delayed = true;
                            std::thread::sleep(std::time::Duration::from_millis(delay_first_ms));
                        }
                        let (status, payload) = host.handle(&req);
                        if server.respond(&req, status, &payload).is_err() {
                            server.respond(&req, Status::TooLarge, &[]).unwrap();
                        }
                    }
                    Some(Err(_)) => {}
                    None => std::thread::yield_now(),
                }
            }
            host
        });
        Self {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops the host and returns its state.
    pub fn stop(mut self) -> Host {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap()
    }
}

impl Drop for HostThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A guest channel attached (real clock) to a host thread.
pub fn threaded(len: usize, host: Host, delay_first_ms: u64) -> (Channel<MemRegion>, HostThread) {
    let (guest, hostside) = shared_pair(len);
    let thread = HostThread::spawn(hostside, host, delay_first_ms);
    let chan = Channel::attach(guest, real_clock, 0x1234_5678, 5_000_000_000).unwrap();
    (chan, thread)
}

/// What a scripted host does when the guest rings.
pub type Hook = Box<dyn FnMut(&mut Server<MemRegion>)>;

/// The guest's view of a region whose host runs synchronously, inside the
/// guest's doorbell store: deterministic fault injection on one thread.
/// It also counts the guest's reads of the response descriptor and area.
pub struct Scripted {
    guest: MemRegion,
    pub server: Rc<RefCell<Server<MemRegion>>>,
    ring: Rc<RefCell<Hook>>,
    /// Runs once, right after the guest's poll first sees its response.
    seen: Rc<RefCell<Option<Hook>>>,
    pub rings: Rc<Cell<u32>>,
    pub desc_reads: Rc<Cell<u32>>,
    pub payload_reads: Rc<Cell<u32>>,
}

impl std::fmt::Debug for Scripted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scripted").finish_non_exhaustive()
    }
}

impl Region for Scripted {
    fn len(&self) -> usize {
        self.guest.len()
    }
    fn read(&self, offset: usize, buf: &mut [u8]) {
        if offset == OFF_RESP {
            self.desc_reads.set(self.desc_reads.get() + 1);
        }
        if offset == response_area(self.guest.len()) {
            self.payload_reads.set(self.payload_reads.get() + 1);
        }
        self.guest.read(offset, buf)
    }
    fn write(&mut self, offset: usize, data: &[u8]) {
        self.guest.write(offset, data)
    }
    fn load_u32_acquire(&self, offset: usize) -> u32 {
        let v = self.guest.load_u32_acquire(offset);
        if offset == OFF_RESP && v == self.guest.load_u32_acquire(OFF_REQ) {
            if let Some(mut hook) = self.seen.borrow_mut().take() {
                hook(&mut self.server.borrow_mut());
            }
        }
        v
    }
    fn store_u32_release(&mut self, offset: usize, value: u32) {
        self.guest.store_u32_release(offset, value);
        if offset == OFF_REQ {
            self.rings.set(self.rings.get() + 1);
            (self.ring.borrow_mut())(&mut self.server.borrow_mut());
        }
    }
}

/// A guest channel over a [`Scripted`] host, and the handles to script it.
pub struct Rig {
    pub chan: Channel<Scripted>,
    pub ctl: Ctl,
}

/// The handles that script a [`Scripted`] host (usable after the channel
/// was moved into an adapter's mutex).
pub struct Ctl {
    pub server: Rc<RefCell<Server<MemRegion>>>,
    pub host: Rc<RefCell<Host>>,
    ring: Rc<RefCell<Hook>>,
    seen: Rc<RefCell<Option<Hook>>>,
    pub rings: Rc<Cell<u32>>,
    pub desc_reads: Rc<Cell<u32>>,
    pub payload_reads: Rc<Cell<u32>>,
}

impl std::ops::Deref for Rig {
    type Target = Ctl;
    fn deref(&self) -> &Ctl {
        &self.ctl
    }
}

/// The parts of a response, as a well-behaved host would write them, for
/// a test to alter before they are written.
#[derive(Debug, Clone)]
pub struct Raw {
    pub seq: u32,
    pub kind: u16,
    pub status: u16,
    pub request_id: u64,
    pub payload_len: u32,
    pub payload: Vec<u8>,
}

impl Raw {
    pub fn write(&self, s: &mut Server<MemRegion>) {
        s.respond_raw(
            self.seq,
            self.kind,
            self.status,
            self.request_id,
            self.payload_len,
            &self.payload,
        );
    }
}

/// Scripted parts before attach: the guest region and the host server.
pub fn scripted_parts(len: usize, seed_header: bool) -> (Scripted, Rc<RefCell<Host>>) {
    let (guest, hostside) = shared_pair(len);
    let mut server = Server::new(hostside);
    if !seed_header {
        server.region_mut().write(0, &[0; 0x14]);
    }
    let host = Rc::new(RefCell::new(Host::default()));
    let h = host.clone();
    let ring: Hook = Box::new(move |s| {
        serve_one(s, &mut h.borrow_mut());
    });
    let region = Scripted {
        guest,
        server: Rc::new(RefCell::new(server)),
        ring: Rc::new(RefCell::new(ring)),
        seen: Rc::new(RefCell::new(None)),
        rings: Rc::new(Cell::new(0)),
        desc_reads: Rc::new(Cell::new(0)),
        payload_reads: Rc::new(Cell::new(0)),
    };
    (region, host)
}

impl Rig {
    /// A channel attached (fake clock) to a well-behaved scripted host.
    pub fn new() -> Rig {
        Self::with_seed(7)
    }

    pub fn with_seed(seed: u64) -> Rig {
        let (region, host) = scripted_parts(LEN, true);
        let server = region.server.clone();
        let ring = region.ring.clone();
        let seen = region.seen.clone();
        let (rings, desc_reads, payload_reads) = (
            region.rings.clone(),
            region.desc_reads.clone(),
            region.payload_reads.clone(),
        );
        let chan = Channel::attach(region, fake_clock, seed, 1_000_000_000).unwrap();
        Rig {
            chan,
            ctl: Ctl {
                server,
                host,
                ring,
                seen,
                rings,
                desc_reads,
                payload_reads,
            },
        }
    }
}

impl Ctl {
    /// Replaces what the host does on each ring.
    pub fn on_ring(&self, hook: impl FnMut(&mut Server<MemRegion>) + 'static) {
        *self.ring.borrow_mut() = Box::new(hook);
    }

    /// Runs `hook` once right after the guest sees its response.
    pub fn on_seen(&self, hook: impl FnMut(&mut Server<MemRegion>) + 'static) {
        *self.seen.borrow_mut() = Some(Box::new(hook));
    }

    /// On each ring: take the request, build the well-behaved response,
    /// let `tamper` change it, write it.
    pub fn tamper(&self, mut tamper: impl FnMut(&Request, &mut Raw) + 'static) {
        let host = self.host.clone();
        self.on_ring(move |s| {
            if let Some(Ok(req)) = s.poll() {
                let (status, payload) = host.borrow_mut().handle(&req);
                let mut raw = Raw {
                    seq: req.seq,
                    kind: req.kind | 0x8000,
                    status: status.code(),
                    request_id: req.request_id,
                    payload_len: payload.len() as u32,
                    payload,
                };
                tamper(&req, &mut raw);
                raw.write(s);
            }
        });
    }

    /// The host never answers.
    pub fn silent(&self) {
        self.on_ring(|s| {
            let _ = s.poll();
        });
    }

    /// Back to a well-behaved host.
    pub fn behave(&self) {
        let h = self.host.clone();
        self.on_ring(move |s| {
            serve_one(s, &mut h.borrow_mut());
        });
    }
}

/// Area of a test region of `len` bytes.
pub fn area(len: usize) -> usize {
    area_len(len)
}
