//! Fuzzes the CRB register model with random guest access sequences and a
//! small fake backend, checking after every access that the interface
//! keeps its invariants: no panic, START and CTRL_REQ read 0 once a write
//! returned, the buffer registers keep describing each page's own buffer,
//! LOC_STATE/LOC_STS agree with the active locality, the backend only ever
//! sees whole commands that fit the buffer, and every response left in the
//! buffer is a whole TPM response that fits it (unless the guest has written
//! into the buffer since: it is the guest's memory to scribble on).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use svtpm::backend::{TpmBackend, TpmMmio};
use svtpm::crb::{regs, Crb, LocalitySupport, State};

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
    /// Any access inside (or just past) the window.
    Read {
        offset: u16,
        size: u8,
    },
    Write {
        offset: u16,
        size: u8,
        value: u64,
    },
    /// An access anywhere in the 64-bit offset space.
    FarRead {
        offset: u64,
        size: u8,
    },
    FarWrite {
        offset: u64,
        size: u8,
        value: u64,
    },
    /// A 32-bit write to a control-area register of `locality`, with a
    /// value biased towards single bits.
    Control {
        locality: u8,
        reg: u8,
        bit: u8,
        raw: Option<u32>,
    },
    /// Fill the data buffer of `locality` with a command and START it.
    Command {
        locality: u8,
        body: Vec<u8>,
        size_field: Option<u32>,
        reply: Reply,
    },
    /// Platform events.
    Reset,
    Fatal,
    Established,
}

#[derive(Arbitrary, Debug)]
struct Input {
    zero_only: bool,
    ops: Vec<Op>,
}

/// Answers with the configured reply; asserts what it is given.
struct Fake {
    reply: Reply,
    calls: u64,
}

impl TpmBackend for Fake {
    fn execute(&mut self, locality: u8, command: &[u8]) -> Vec<u8> {
        assert!(locality < 5);
        assert!(command.len() >= 10 && command.len() <= regs::DATA_BUFFER_SIZE);
        let size = u32::from_be_bytes([command[2], command[3], command[4], command[5]]);
        assert_eq!(
            size as usize,
            command.len(),
            "backend got a partial command"
        );
        self.calls += 1;
        match self.reply {
            Reply::Ok { body } => {
                let len = 10 + usize::from(body);
                let mut r = vec![0x80, 0x01];
                r.extend_from_slice(&(len as u32).to_be_bytes());
                r.extend_from_slice(&0u32.to_be_bytes());
                r.resize(len, 0x5A);
                r
            }
            Reply::Raw { len, size_field } => {
                let mut r = vec![0u8; usize::from(len)];
                if r.len() >= 6 {
                    r[2..6].copy_from_slice(&size_field.to_be_bytes());
                }
                r
            }
        }
    }
}

fn page(locality: u8) -> u64 {
    u64::from(locality) * regs::PAGE_SIZE
}

/// Whether an access of `size` bytes at `offset` touches any locality's
/// data buffer (the guest may write anything there, responses included).
fn touches_buffer(offset: u64, size: u8) -> bool {
    let end = offset.saturating_add(u64::from(size.max(1)));
    (0..5u8).any(|l| {
        let start = page(l) + u64::from(regs::DATA_BUFFER);
        let stop = start + regs::DATA_BUFFER_SIZE as u64;
        offset < stop && end > start
    })
}

/// `guest_wrote`: the guest wrote into a data buffer since the last command
/// ran or was refused, so the buffer need not hold a whole response.
fn check_invariants(crb: &mut Crb, guest_wrote: bool) {
    let pages = match crb.support() {
        LocalitySupport::All => 5u8,
        LocalitySupport::ZeroOnly => 1,
    };
    let active = crb.active_locality();
    assert!(active.is_none_or(|l| l < pages));
    for l in 0..pages {
        let p = page(l);
        let r32 = |crb: &mut Crb, reg: u16| crb.read(p + u64::from(reg), 4);
        assert_eq!(r32(crb, regs::CTRL_START), 0);
        assert_eq!(r32(crb, regs::CTRL_REQ), 0);
        assert_eq!(r32(crb, regs::LOC_CTRL), 0);
        assert_eq!(r32(crb, regs::CMD_SIZE), regs::DATA_BUFFER_SIZE as u64);
        assert_eq!(r32(crb, regs::RSP_SIZE), regs::DATA_BUFFER_SIZE as u64);
        let buf = regs::buffer_address(l);
        assert_eq!(r32(crb, regs::CMD_LADDR), buf & 0xFFFF_FFFF);
        assert_eq!(r32(crb, regs::CMD_HADDR), buf >> 32);
        assert_eq!(crb.read(p + u64::from(regs::RSP_ADDR_LO), 8), buf);

        let state = r32(crb, regs::LOC_STATE);
        assert_eq!(state & 0x80, 0x80, "regValid");
        assert_eq!(state & 0xFFFF_FF60, 0, "reserved bits");
        assert_eq!(state & 1 == 0, crb.established());
        match active {
            Some(a) => assert_eq!(state & 0x1E, 0x2 | (u64::from(a) << 2)),
            None => assert_eq!(state & 0x1E, 0),
        }
        let sts = r32(crb, regs::LOC_STS);
        assert_eq!(sts & !3, 0);
        assert_eq!(sts & 1 == 1, active == Some(l));

        let ctrl_sts = r32(crb, regs::CTRL_STS);
        assert_eq!(ctrl_sts & !3, 0);
        assert_eq!(ctrl_sts & 2 != 0, crb.state() == State::Idle);

        if active != Some(l) {
            assert_eq!(crb.read(p + u64::from(regs::DATA_BUFFER), 8), u64::MAX);
        }
    }
    for l in pages..5 {
        assert_eq!(crb.read(page(l), 4), 0xFFFF_FFFF, "unimplemented page");
    }
    // Whatever sits in the buffer after a command is a whole response.
    if let (false, Some(a), State::Completion) = (guest_wrote, active, crb.state()) {
        let base = page(a) + u64::from(regs::DATA_BUFFER);
        let head: Vec<u8> = (0..6).map(|i| crb.read(base + i, 1) as u8).collect();
        let size = u32::from_be_bytes([head[2], head[3], head[4], head[5]]) as usize;
        assert!(
            (10..=regs::DATA_BUFFER_SIZE).contains(&size),
            "response size {size}"
        );
    }
}

fuzz_target!(|input: Input| {
    let support = if input.zero_only {
        LocalitySupport::ZeroOnly
    } else {
        LocalitySupport::All
    };
    let mut crb = Crb::new(support);
    let mut fake = Fake {
        reply: Reply::Ok { body: 0 },
        calls: 0,
    };
    let mut guest_wrote = false;
    for op in input.ops.iter().take(256) {
        let ran_before = (fake.calls, crb.stats().rejected_commands);
        match op {
            Op::Read { offset, size } => {
                let v = crb.read(u64::from(*offset), *size);
                assert!(*size >= 8 || v >> (8 * u32::from(*size)) == 0);
            }
            Op::Write {
                offset,
                size,
                value,
            } => {
                guest_wrote |= touches_buffer(u64::from(*offset), *size);
                crb.write(&mut fake, u64::from(*offset), *size, *value);
            }
            Op::FarRead { offset, size } => {
                let v = crb.read(*offset, *size);
                assert!(*size >= 8 || v >> (8 * u32::from(*size)) == 0);
            }
            Op::FarWrite {
                offset,
                size,
                value,
            } => {
                guest_wrote |= touches_buffer(*offset, *size);
                crb.write(&mut fake, *offset, *size, *value);
            }
            Op::Control {
                locality,
                reg,
                bit,
                raw,
            } => {
                let offset = page(locality % 5) + u64::from(reg % 0x20) * 4;
                let value = raw.unwrap_or(1u32 << (bit % 32));
                crb.write(&mut fake, offset, 4, u64::from(value));
            }
            Op::Command {
                locality,
                body,
                size_field,
                reply,
            } => {
                let l = locality % 5;
                let base = page(l) + u64::from(regs::DATA_BUFFER);
                let len = (10 + body.len()).min(regs::DATA_BUFFER_SIZE);
                let size = size_field.unwrap_or(len as u32);
                let mut cmd = vec![0x80, 0x01];
                cmd.extend_from_slice(&size.to_be_bytes());
                cmd.extend_from_slice(&0x17Bu32.to_be_bytes());
                cmd.extend_from_slice(body);
                cmd.truncate(len);
                guest_wrote = true;
                for (i, chunk) in cmd.chunks(4).enumerate() {
                    let mut w = [0u8; 8];
                    w[..chunk.len()].copy_from_slice(chunk);
                    let v = u64::from_le_bytes(w);
                    if chunk.len() == 4 {
                        crb.write(&mut fake, base + 4 * i as u64, 4, v);
                    } else {
                        for (j, b) in chunk.iter().enumerate() {
                            crb.write(&mut fake, base + 4 * i as u64 + j as u64, 1, u64::from(*b));
                        }
                    }
                }
                fake.reply = *reply;
                let before = (fake.calls, crb.stats().rejected_commands);
                let fatal = crb.read(u64::from(regs::CTRL_STS), 4) & 1 == 1;
                let accepted =
                    crb.active_locality() == Some(l) && crb.state() != State::Idle && !fatal;
                crb.write(&mut fake, page(l) + u64::from(regs::CTRL_START), 4, 1);
                let after = (fake.calls, crb.stats().rejected_commands);
                if accepted {
                    assert_ne!(before, after, "an accepted START ran nothing");
                    assert_eq!(crb.state(), State::Completion);
                } else {
                    assert_eq!(before, after, "a refused START ran a command");
                }
            }
            Op::Reset => crb.reset(),
            Op::Fatal => crb.enter_fatal(),
            Op::Established => crb.set_established(),
        }
        // A command that ran (or was refused) left its response last.
        if (fake.calls, crb.stats().rejected_commands) != ran_before {
            guest_wrote = false;
        }
        check_invariants(&mut crb, guest_wrote);
    }
});
