//! Unit tests of the TIS register model, driven through the [`TpmMmio`]
//! trait the way a guest would, against a recording backend.

mod bad_input;
mod locality;
mod registers;
mod state_machine;

use alloc::vec::Vec;

use super::Tis;
use crate::backend::{TpmBackend, TpmMmio, MAX_BUFFER_SIZE};

/// A backend that records every command and answers with a canned response.
#[derive(Debug, Default)]
pub struct Recorder {
    /// (locality, command) of every execute call, in order.
    pub commands: Vec<(u8, Vec<u8>)>,
    /// What every execute call returns.
    pub response: Vec<u8>,
}

impl Recorder {
    /// A recorder answering with `response`.
    pub fn answering(response: &[u8]) -> Self {
        Self {
            commands: Vec::new(),
            response: response.to_vec(),
        }
    }
}

impl TpmBackend for Recorder {
    fn execute(&mut self, locality: u8, command: &[u8]) -> Vec<u8> {
        self.commands.push((locality, command.to_vec()));
        self.response.clone()
    }
}

/// A response with tag TPM_ST_NO_SESSIONS, `rc`, then `body`.
pub fn response(rc: u32, body: &[u8]) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(&0x8001u16.to_be_bytes());
    r.extend_from_slice(&((10 + body.len()) as u32).to_be_bytes());
    r.extend_from_slice(&rc.to_be_bytes());
    r.extend_from_slice(body);
    r
}

/// A command with tag TPM_ST_NO_SESSIONS, `code`, then `body`.
pub fn command(code: u32, body: &[u8]) -> Vec<u8> {
    let mut c = Vec::new();
    c.extend_from_slice(&0x8001u16.to_be_bytes());
    c.extend_from_slice(&((10 + body.len()) as u32).to_be_bytes());
    c.extend_from_slice(&code.to_be_bytes());
    c.extend_from_slice(body);
    c
}

/// A header claiming `size` bytes, followed by nothing.
pub fn header_claiming(size: u32) -> Vec<u8> {
    let mut c = Vec::new();
    c.extend_from_slice(&0x8001u16.to_be_bytes());
    c.extend_from_slice(&size.to_be_bytes());
    c.extend_from_slice(&0x17Bu32.to_be_bytes());
    c
}

/// Register offsets inside locality `l`.
pub fn at(l: u8, reg: u16) -> u64 {
    u64::from(l) * 0x1000 + u64::from(reg)
}

/// A TIS model plus its backend, with guest-style helpers.
pub struct Rig {
    pub tis: Tis,
    pub be: Recorder,
}

impl Rig {
    /// A fresh model whose backend answers `response`.
    pub fn new(response: &[u8]) -> Self {
        Self {
            tis: Tis::new(),
            be: Recorder::answering(response),
        }
    }

    pub fn r8(&mut self, off: u64) -> u8 {
        self.tis.read(off, 1) as u8
    }

    pub fn r32(&mut self, off: u64) -> u32 {
        self.tis.read(off, 4) as u32
    }

    pub fn w8(&mut self, off: u64, v: u8) {
        self.tis.write(&mut self.be, off, 1, u64::from(v));
    }

    pub fn w32(&mut self, off: u64, v: u32) {
        self.tis.write(&mut self.be, off, 4, u64::from(v));
    }

    /// `TPM_STS_x` of locality `l` (32-bit read).
    pub fn sts(&mut self, l: u8) -> u32 {
        self.r32(at(l, 0x18))
    }

    /// burstCount of locality `l`.
    pub fn burst(&mut self, l: u8) -> u16 {
        (self.sts(l) >> 8) as u16
    }

    /// Requests locality `l` and checks it is granted.
    pub fn take(&mut self, l: u8) {
        self.w8(at(l, 0x00), 0x02);
        assert_eq!(
            self.r8(at(l, 0x00)) & 0xA2,
            0xA0,
            "locality {l} not granted"
        );
    }

    /// Writes commandReady in locality `l`.
    pub fn ready(&mut self, l: u8) {
        self.w8(at(l, 0x18), 0x40);
    }

    /// Writes tpmGo in locality `l`.
    pub fn go(&mut self, l: u8) {
        self.w8(at(l, 0x18), 0x20);
    }

    /// Writes `bytes` one at a time to the FIFO of locality `l`.
    pub fn send(&mut self, l: u8, bytes: &[u8]) {
        for &b in bytes {
            self.w8(at(l, 0x24), b);
        }
    }

    /// Reads `n` FIFO bytes of locality `l`.
    pub fn recv(&mut self, l: u8, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.r8(at(l, 0x24))).collect()
    }

    /// Takes locality `l`, runs `cmd` through it and returns the response
    /// read back byte by byte, using burstCount as a driver would.
    pub fn transact(&mut self, l: u8, cmd: &[u8]) -> Vec<u8> {
        self.take(l);
        self.ready(l);
        self.send(l, cmd);
        self.go(l);
        let mut out = Vec::new();
        loop {
            let n = usize::from(self.burst(l));
            if n == 0 {
                break;
            }
            out.extend(self.recv(l, n));
            assert!(out.len() <= MAX_BUFFER_SIZE, "burstCount never reaches 0");
        }
        out
    }
}
