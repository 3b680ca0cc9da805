//! Fuzzes the TIS/FIFO register model with random guest access sequences
//! and a fake backend whose answer the input chooses, checking after every
//! access that the interface keeps its invariants: no panic; in the active
//! locality the STS bits that must read 0 do, tpmFamily reads TPM 2.0,
//! commandReady/Expect/dataAvail agree with the state, and burstCount never
//! exceeds the data left (in Completion it is exactly the response bytes
//! still to read, and reading them yields the response's tail); other
//! localities read STS as all-ones; ACCESS shows exactly one active
//! locality and never Seize; space outside the window floats; the backend
//! only ever sees commands of 10..=4096 bytes from the active locality.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use svtpm::backend::{TpmBackend, TpmMmio, MAX_BUFFER_SIZE};
use svtpm::tis::{State, Tis};

/// What the fake backend answers.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Reply {
    /// A well-formed response with this many body bytes (may overflow the
    /// buffer).
    Ok { body: u16 },
    /// This many bytes, header size field as given (may be malformed).
    Raw { len: u16, size_field: u32 },
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// An access at `offset` in locality page `page` (5 is past the window).
    Read {
        page: u8,
        offset: u16,
        width: u8,
    },
    Write {
        page: u8,
        offset: u16,
        width: u8,
        value: u64,
    },
    /// An access anywhere in the 64-bit offset space.
    FarRead {
        offset: u64,
        width: u8,
    },
    FarWrite {
        offset: u64,
        width: u8,
        value: u64,
    },
    /// A byte write to ACCESS or STS of `locality`: the control paths.
    Access {
        locality: u8,
        bits: u8,
    },
    Status {
        locality: u8,
        bits: u8,
    },
    /// commandReady, then a header (size field as given) and `body`, byte
    /// by byte, then tpmGo: reaches Completion often.
    Command {
        locality: u8,
        size_field: Option<u32>,
        body: Vec<u8>,
        reply: Reply,
    },
    /// `count` FIFO reads of `width` bytes from `locality`, at DATA_FIFO or
    /// XDATA_FIFO: partial, whole and excess response reads.
    FifoReads {
        locality: u8,
        count: u8,
        width: u8,
        xdata: bool,
    },
    /// Changes what the backend answers next.
    SetReply(Reply),
}

#[derive(Arbitrary, Debug)]
struct Input {
    established: bool,
    ops: Vec<Op>,
}

/// The response a 10-byte TPM_RC_FAILURE (what the model substitutes for a
/// backend answer it cannot carry).
const FAILURE: [u8; 10] = [0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x01];

/// Answers with the configured reply; checks what it is given.
struct Fake {
    reply: Reply,
    /// The locality allowed to run a command during the current access.
    expected_locality: Option<u8>,
    /// What the guest should read back for the last command.
    delivered: Vec<u8>,
}

impl Fake {
    fn answer(&self) -> Vec<u8> {
        let (len, size_field) = match self.reply {
            Reply::Ok { body } => {
                let len = 10 + usize::from(body);
                (len, len as u32)
            }
            Reply::Raw { len, size_field } => (usize::from(len), size_field),
        };
        let mut r: Vec<u8> = (0..len).map(|i| i as u8).collect();
        if let Some(h) = r.get_mut(0..2) {
            h.copy_from_slice(&[0x80, 0x01]);
        }
        if let Some(h) = r.get_mut(2..6) {
            h.copy_from_slice(&size_field.to_be_bytes());
        }
        r
    }
}

impl TpmBackend for Fake {
    fn execute(&mut self, locality: u8, command: &[u8]) -> Vec<u8> {
        assert!(
            (10..=MAX_BUFFER_SIZE).contains(&command.len()),
            "backend got a {}-byte command",
            command.len()
        );
        assert_eq!(Some(locality), self.expected_locality, "wrong locality");
        let r = self.answer();
        self.delivered = if (10..=MAX_BUFFER_SIZE).contains(&r.len()) {
            r.clone()
        } else {
            FAILURE.to_vec()
        };
        r
    }
}

/// Maps the fuzzer's width byte onto mostly valid widths.
fn width(w: u8) -> u8 {
    if w < 200 {
        [1, 2, 4, 8][usize::from(w % 4)]
    } else {
        w
    }
}

fn ones(size: u8) -> u64 {
    match size {
        0 => 0,
        1..=7 => (1u64 << (8 * u32::from(size))) - 1,
        _ => u64::MAX,
    }
}

/// Checks the invariants that must hold between accesses.
fn check(tis: &Tis, fake: &Fake) {
    let mut probe = tis.clone();
    let active = tis.active_locality();
    for l in 0..5u8 {
        let base = u64::from(l) * 0x1000;
        let access = probe.read(base, 1) as u8;
        assert_ne!(access & 0x80, 0, "tpmRegValidSts");
        assert_eq!(access & 0x08, 0, "Seize reads 0");
        assert_eq!(access & 0x20 != 0, active == Some(l), "activeLocality");
        let sts = probe.read(base + 0x18, 4) as u32;
        if active != Some(l) {
            assert_eq!(sts, 0xFFFF_FFFF, "STS of a non-active locality");
            assert_eq!(probe.read(base + 0x24, 1), 0xFF);
            continue;
        }
        assert_eq!(sts & 0x23, 0, "STS read-zero bits: {sts:#x}");
        assert_eq!(
            sts & 0xF300_0000,
            0,
            "STS reserved/write-only bits: {sts:#x}"
        );
        assert_eq!((sts >> 26) & 3, 1, "tpmFamily TPM 2.0");
        assert_ne!(sts & 0x80, 0, "stsValid");
        let burst = ((sts >> 8) & 0xFFFF) as usize;
        let state = tis.state();
        assert_eq!(sts & 0x40 != 0, state == State::Ready, "commandReady");
        if sts & 0x08 != 0 {
            assert_eq!(state, State::Reception, "Expect outside Reception");
        }
        assert_eq!(
            sts & 0x10 != 0,
            state == State::Completion && burst > 0,
            "dataAvail vs burstCount"
        );
        assert!(burst <= MAX_BUFFER_SIZE, "burstCount {burst}");
        if state == State::Completion {
            // burstCount is exactly the data left, at every position of the
            // rest of the response: read it out on the copy byte by byte.
            assert!(
                burst <= fake.delivered.len(),
                "burstCount beyond the response"
            );
            let tail = &fake.delivered[fake.delivered.len() - burst..];
            for (i, &expected) in tail.iter().enumerate() {
                let s = probe.read(base + 0x18, 4) as u32;
                assert_eq!(((s >> 8) & 0xFFFF) as usize, burst - i, "burstCount");
                assert_ne!(s & 0x10, 0, "dataAvail while bytes are left");
                assert_eq!(probe.read(base + 0x24, 1) as u8, expected, "response byte");
            }
            let s = probe.read(base + 0x18, 4) as u32;
            assert_eq!(s & 0x00FF_FF10, 0, "dataAvail/burstCount after the tail");
            assert_eq!(probe.read(base + 0x24, 1), 0xFF);
        }
    }
    assert_eq!(probe.read(0x5000, 4), 0xFFFF_FFFF, "past the window");
}

fuzz_target!(|input: Input| {
    let mut tis = Tis::with_established(input.established);
    let mut fake = Fake {
        reply: Reply::Ok { body: 4 },
        expected_locality: None,
        delivered: Vec::new(),
    };
    for op in input.ops.into_iter().take(4096) {
        fake.expected_locality = tis.active_locality();
        match op {
            Op::Read {
                page,
                offset,
                width: w,
            } => {
                let off = u64::from(page % 6) * 0x1000 + u64::from(offset & 0xFFF);
                let size = width(w);
                let v = tis.read(off, size);
                assert_eq!(v & !ones(size), 0, "value wider than the access");
                if off >= 0x5000 {
                    assert_eq!(v, ones(size));
                }
            }
            Op::Write {
                page,
                offset,
                width: w,
                value,
            } => {
                let off = u64::from(page % 6) * 0x1000 + u64::from(offset & 0xFFF);
                tis.write(&mut fake, off, width(w), value);
            }
            Op::FarRead { offset, width: w } => {
                let size = width(w);
                let v = tis.read(offset, size);
                if offset >= 0x5000 {
                    assert_eq!(v, ones(size), "outside the window");
                }
            }
            Op::FarWrite {
                offset,
                width: w,
                value,
            } => tis.write(&mut fake, offset, width(w), value),
            Op::Access { locality, bits } => {
                tis.write(&mut fake, u64::from(locality % 5) * 0x1000, 1, bits.into())
            }
            Op::Status { locality, bits } => {
                let base = u64::from(locality % 5) * 0x1000;
                tis.write(&mut fake, base + 0x18, 1, bits.into())
            }
            Op::Command {
                locality,
                size_field,
                body,
                reply,
            } => {
                fake.reply = reply;
                let base = u64::from(locality % 5) * 0x1000;
                tis.write(&mut fake, base + 0x18, 1, 0x40);
                let len = 10 + body.len();
                let size = size_field.unwrap_or(len as u32);
                let mut cmd = vec![0x80, 0x01];
                cmd.extend_from_slice(&size.to_be_bytes());
                cmd.extend_from_slice(&0x17Bu32.to_be_bytes());
                cmd.extend_from_slice(&body);
                for b in cmd {
                    tis.write(&mut fake, base + 0x24, 1, b.into());
                }
                tis.write(&mut fake, base + 0x18, 1, 0x20);
            }
            Op::FifoReads {
                locality,
                count,
                width: w,
                xdata,
            } => {
                let base = u64::from(locality % 5) * 0x1000;
                let off = if xdata { 0x80 } else { 0x24 };
                let size = [1u8, 2, 4, 8][usize::from(w % 4)];
                for _ in 0..count % 32 {
                    let v = tis.read(base + off, size);
                    assert_eq!(v & !ones(size), 0, "value wider than the access");
                }
            }
            Op::SetReply(r) => fake.reply = r,
        }
        check(&tis, &fake);
    }
});
