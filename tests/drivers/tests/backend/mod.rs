//! Test doubles for driver tests: a backend that records the commands it
//! gets and answers with a response derived from them, and register models
//! that never become ready.
#![allow(dead_code)]

use svtpm_drivers::{TpmBackend, TpmMmio};

/// Records every command and answers with `rsp_len` bytes: a success header
/// followed by a pattern derived from the command, so a test can tell that
/// the response belongs to its command.
#[derive(Debug, Default)]
pub struct Recorder {
    /// (locality, command) in arrival order.
    pub seen: Vec<(u8, Vec<u8>)>,
    /// Length of the responses given (at least 10).
    pub rsp_len: usize,
}

impl Recorder {
    pub fn new(rsp_len: usize) -> Self {
        Self {
            seen: Vec::new(),
            rsp_len: rsp_len.max(10),
        }
    }
}

/// The response [`Recorder`] gives to `command`.
pub fn expected_response(command: &[u8], rsp_len: usize) -> Vec<u8> {
    let mut r = Vec::with_capacity(rsp_len);
    r.extend_from_slice(&0x8001u16.to_be_bytes());
    r.extend_from_slice(&(rsp_len as u32).to_be_bytes());
    r.extend_from_slice(&0u32.to_be_bytes());
    let seed = command
        .iter()
        .fold(0u8, |a, &b| a.wrapping_mul(31).wrapping_add(b));
    r.extend((10..rsp_len).map(|i| seed.wrapping_add((i * 7) as u8)));
    r
}

impl TpmBackend for Recorder {
    fn execute(&mut self, locality: u8, command: &[u8]) -> Vec<u8> {
        self.seen.push((locality, command.to_vec()));
        expected_response(command, self.rsp_len)
    }
}

/// A command of `len` bytes with a consistent header and a body pattern.
pub fn command(len: usize, salt: u8) -> Vec<u8> {
    let mut c = Vec::with_capacity(len);
    c.extend_from_slice(&0x8001u16.to_be_bytes());
    c.extend_from_slice(&(len as u32).to_be_bytes());
    c.extend_from_slice(&0x17Bu32.to_be_bytes());
    c.extend((10..len).map(|i| (i as u8).wrapping_mul(13).wrapping_add(salt)));
    c
}

/// A register model whose every read returns `value` and which ignores
/// writes: `0` never grants anything, all-ones is an empty bus.
#[derive(Debug)]
pub struct Stuck {
    pub value: u64,
    pub reads: u64,
}

impl Stuck {
    pub fn new(value: u64) -> Self {
        Self { value, reads: 0 }
    }
}

impl TpmMmio for Stuck {
    fn read(&mut self, _offset: u64, size: u8) -> u64 {
        self.reads += 1;
        match size {
            1..=7 => self.value & ((1u64 << (size * 8)) - 1),
            _ => self.value,
        }
    }

    fn write(&mut self, _backend: &mut dyn TpmBackend, _offset: u64, _size: u8, _value: u64) {}
}
