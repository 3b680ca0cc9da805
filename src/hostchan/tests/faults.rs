//! Every way the host can misbehave, injected through a scripted host or
//! by writing the region directly; each must end in its own error, with
//! nothing panicking and nothing read twice.

use super::super::layout::{OFF_REGION_LEN, OFF_VERSION};
use super::super::wire::Descriptor;
use super::super::HostchanError;
use super::*;

const SECOND: u64 = 1_000_000_000;

fn attach_err(region: Scripted) -> HostchanError {
    Channel::attach(region, fake_clock, 1, SECOND).unwrap_err()
}

#[test]
fn attach_refuses_a_region_of_the_wrong_size() {
    for len in [4096, 64 * 1024 - 4096, 64 * 1024 + 8, 32 * 1024 * 1024] {
        let (guest, _host) = shared_pair(len);
        assert_eq!(
            Channel::attach(guest, fake_clock, 1, SECOND).unwrap_err(),
            HostchanError::RegionSize { len }
        );
    }
}

#[test]
fn attach_waits_for_a_host_then_gives_up() {
    // No header at all.
    let (region, _) = scripted_parts(LEN, false);
    let rings = region.rings.clone();
    let e = attach_err(region);
    assert!(
        matches!(e, HostchanError::NotReady { waited_ms } if waited_ms >= 1000),
        "{e}"
    );
    assert_eq!(
        rings.get(),
        0,
        "nothing is sent to a host that is not there"
    );
    // A header, but host_ready = 0.
    let (region, _) = scripted_parts(LEN, true);
    region.server.borrow_mut().set_ready(false);
    assert!(matches!(attach_err(region), HostchanError::NotReady { .. }));
    // Garbage magic, for the whole wait.
    let (region, _) = scripted_parts(LEN, true);
    region
        .server
        .borrow_mut()
        .region_mut()
        .write(0, b"SVTPMHC2");
    assert_eq!(
        attach_err(region),
        HostchanError::BadMagic {
            found: *b"SVTPMHC2"
        }
    );
}

#[test]
fn attach_refuses_a_ready_host_with_another_layout_at_once() {
    let (region, _) = scripted_parts(LEN, true);
    region
        .server
        .borrow_mut()
        .region_mut()
        .write_u32(OFF_VERSION, 2);
    let before = fake_clock();
    assert_eq!(attach_err(region), HostchanError::WrongVersion { found: 2 });
    assert!(fake_clock() - before < 10_000_000, "no waiting");

    let (region, _) = scripted_parts(LEN, true);
    region
        .server
        .borrow_mut()
        .region_mut()
        .write_u32(OFF_REGION_LEN, 2 * LEN as u32);
    assert_eq!(
        attach_err(region),
        HostchanError::RegionLenMismatch {
            found: 2 * LEN as u32,
            expected: LEN as u32
        }
    );
}

#[test]
fn attach_checks_the_hello_answer() {
    let reply = |version: u32, name: &[u8]| [&version.to_le_bytes()[..], name].concat();
    let cases: Vec<(Vec<u8>, u16, HostchanError)> = vec![
        (
            reply(2, b"p"),
            0,
            HostchanError::VersionRefused { chosen: 2 },
        ),
        (
            vec![1, 0],
            0,
            HostchanError::Malformed {
                kind: MsgType::Hello,
                what: "shorter than a version",
            },
        ),
        (
            reply(1, &[0xc0, 0x80]),
            0,
            HostchanError::Malformed {
                kind: MsgType::Hello,
                what: "proxy name is not UTF-8 text of at most 256 bytes",
            },
        ),
        (
            vec![],
            2,
            HostchanError::Status {
                kind: MsgType::Hello,
                status: Status::UnsupportedType,
            },
        ),
        (
            reply(1, &[b'a'; 300]),
            0,
            HostchanError::ResponseTooLarge {
                kind: MsgType::Hello,
                len: 304,
                max: 260,
            },
        ),
    ];
    for (payload, status, err) in cases {
        let (mut region, _) = scripted_parts(LEN, true);
        region.ring = Rc::new(RefCell::new(Box::new(move |s: &mut Server<MemRegion>| {
            let req = s.poll().unwrap().unwrap();
            s.respond_raw(
                req.seq,
                0x8001,
                status,
                req.request_id,
                payload.len() as u32,
                &payload,
            );
        })));
        assert_eq!(attach_err(region), err);
    }
}

#[test]
fn a_silent_host_times_out_quickly_with_a_fake_clock() {
    let mut rig = Rig::new();
    rig.silent();
    let start = fake_clock();
    let e = rig
        .chan
        .call(MsgType::SlotFlush, &[], 0, 2 * SECOND)
        .unwrap_err();
    match e {
        HostchanError::Timeout {
            kind: MsgType::SlotFlush,
            seq,
            waited_ms,
        } => {
            assert!((2000..2010).contains(&waited_ms), "{waited_ms}");
            assert_eq!(seq, rig.host.borrow().handled.last().unwrap().0 + 1);
        }
        other => panic!("{other}"),
    }
    assert!(fake_clock() - start < 3 * SECOND);
    assert_eq!(rig.payload_reads.get(), 1, "only HELLO's payload was read");
}

/// Runs one LOG call against a host that alters its response with
/// `tamper`, and returns the error.
fn tampered(tamper: impl FnMut(&Request, &mut Raw) + 'static) -> HostchanError {
    let mut rig = Rig::new();
    rig.tamper(tamper);
    rig.chan.log("x").unwrap_err()
}

#[test]
fn each_bad_response_field_has_its_own_error() {
    assert!(matches!(
        tampered(|_, r| r.request_id = r.request_id.wrapping_sub(1)),
        HostchanError::RequestIdMismatch { expected, found } if found == expected.wrapping_sub(1)
    ));
    assert_eq!(
        tampered(|_, r| r.kind = 0x0002),
        HostchanError::WrongResponseType {
            expected: 0x8002,
            found: 0x0002
        }
    );
    assert_eq!(
        tampered(|_, r| r.kind = 0x8031),
        HostchanError::WrongResponseType {
            expected: 0x8002,
            found: 0x8031
        }
    );
    assert_eq!(
        tampered(|_, r| r.status = 7),
        HostchanError::UnknownStatus(7)
    );
    assert_eq!(
        tampered(|_, r| r.status = 0xffff),
        HostchanError::UnknownStatus(0xffff)
    );
    assert_eq!(
        tampered(|_, r| r.payload_len = AREA as u32 + 1),
        HostchanError::OverArea {
            what: "response",
            len: AREA + 1,
            area: AREA
        }
    );
    assert_eq!(
        tampered(|_, r| r.payload_len = u32::MAX),
        HostchanError::OverArea {
            what: "response",
            len: u32::MAX as usize,
            area: AREA
        }
    );
    // LOG accepts no payload at all: one byte is over the caller's max.
    assert_eq!(
        tampered(|_, r| {
            r.payload = vec![1];
            r.payload_len = 1
        }),
        HostchanError::ResponseTooLarge {
            kind: MsgType::Log,
            len: 1,
            max: 0
        }
    );
    // A refusal is an answer, reported as such by log().
    assert_eq!(
        tampered(|_, r| r.status = Status::Internal.code()),
        HostchanError::Status {
            kind: MsgType::Log,
            status: Status::Internal
        }
    );
}

#[test]
fn every_status_is_returned_as_a_valid_response_by_call() {
    let mut rig = Rig::new();
    for st in Status::ALL {
        rig.tamper(move |_, r| {
            r.status = st.code();
            r.payload = vec![st.code() as u8; 3];
            r.payload_len = 3;
        });
        let resp = rig.chan.call(MsgType::Http, b"", 3, SECOND).unwrap();
        assert_eq!(resp.status, st);
        assert_eq!(resp.payload, vec![st.code() as u8; 3]);
    }
}

#[test]
fn a_header_broken_while_answering_is_caught() {
    type Breaker = fn(&mut MemRegion);
    let cases: [(Breaker, HostchanError); 3] = [
        (
            |m| m.write(0, b"XXXXXXXX"),
            HostchanError::BadMagic {
                found: *b"XXXXXXXX",
            },
        ),
        (
            |m| m.write_u32(OFF_VERSION, 9),
            HostchanError::WrongVersion { found: 9 },
        ),
        (
            |m| m.write_u32(OFF_REGION_LEN, 1),
            HostchanError::RegionLenMismatch {
                found: 1,
                expected: LEN as u32,
            },
        ),
    ];
    for (breaker, err) in cases {
        let mut rig = Rig::new();
        let host = rig.host.clone();
        rig.on_ring(move |s| {
            serve_one(s, &mut host.borrow_mut());
            breaker(s.region_mut());
        });
        assert_eq!(rig.chan.log("x").unwrap_err(), err);
        // The next call refuses before ringing.
        let rings = rig.rings.get();
        assert_eq!(rig.chan.log("y").unwrap_err(), err);
        assert_eq!(rig.rings.get(), rings);
    }
}

#[test]
fn a_response_rewritten_after_it_was_seen_is_refused_from_the_copy() {
    // resp.seq changes between the poll and the copy.
    let mut rig = Rig::new();
    rig.on_seen(|s| {
        let mut d = Descriptor::read(s.region_mut(), OFF_RESP);
        d.seq = d.seq.wrapping_add(5);
        d.publish(s.region_mut(), OFF_RESP);
    });
    match rig.chan.log("x").unwrap_err() {
        HostchanError::SeqMismatch { expected, found } => {
            assert_eq!(found, expected.wrapping_add(5))
        }
        e => panic!("{e}"),
    }
    // The length grows after the descriptor was copied: the copy rules,
    // and the payload is read once with the copied length.
    let mut rig = Rig::new();
    let before = (rig.desc_reads.get(), rig.payload_reads.get());
    let host = rig.host.clone();
    rig.on_ring(move |s| {
        let req = s.poll().unwrap().unwrap();
        let (st, _) = host.borrow_mut().handle(&req);
        s.respond(&req, st, &messages::encode_slot_read_reply(Some(b"abc")))
            .unwrap();
    });
    rig.on_seen(|s| {
        let _ = s;
    });
    let r = rig.chan.call(MsgType::SlotRead, &[0], 100, SECOND).unwrap();
    assert_eq!(r.payload, [1, b'a', b'b', b'c']);
    assert_eq!(
        (rig.desc_reads.get(), rig.payload_reads.get()),
        (before.0 + 1, before.1 + 1),
        "descriptor and payload are each copied once"
    );
}

#[test]
fn a_stale_answer_with_the_right_seq_but_an_old_id_is_refused() {
    let mut rig = Rig::new();
    let prev = std::rc::Rc::new(std::cell::Cell::new(None::<u64>));
    let p = prev.clone();
    let host = rig.host.clone();
    // The "reorder" fault: each answer carries the previous request's id.
    rig.on_ring(move |s| {
        let req = s.poll().unwrap().unwrap();
        let (st, payload) = host.borrow_mut().handle(&req);
        let id = p.replace(Some(req.request_id)).unwrap_or(0);
        s.respond_raw(
            req.seq,
            req.kind | 0x8000,
            st.code(),
            id,
            payload.len() as u32,
            &payload,
        );
    });
    assert!(matches!(
        rig.chan.log("a").unwrap_err(),
        HostchanError::RequestIdMismatch { found: 0, .. }
    ));
    match rig.chan.log("b").unwrap_err() {
        HostchanError::RequestIdMismatch { expected, found } => {
            assert_eq!(found.wrapping_add(1), expected)
        }
        e => panic!("{e}"),
    }
}

#[test]
fn every_error_has_a_distinct_code_and_reason() {
    use crate::hostchan::http::CodecError;
    let all = [
        HostchanError::RegionSize { len: 0 },
        HostchanError::BadMagic { found: [0; 8] },
        HostchanError::WrongVersion { found: 0 },
        HostchanError::RegionLenMismatch {
            found: 0,
            expected: 0,
        },
        HostchanError::NotReady { waited_ms: 0 },
        HostchanError::Timeout {
            kind: MsgType::Log,
            seq: 0,
            waited_ms: 0,
        },
        HostchanError::SeqMismatch {
            expected: 0,
            found: 0,
        },
        HostchanError::RequestIdMismatch {
            expected: 0,
            found: 0,
        },
        HostchanError::WrongResponseType {
            expected: 0,
            found: 0,
        },
        HostchanError::UnknownStatus(0),
        HostchanError::OverArea {
            what: "x",
            len: 0,
            area: 0,
        },
        HostchanError::ResponseTooLarge {
            kind: MsgType::Log,
            len: 0,
            max: 0,
        },
        HostchanError::ReservedNonZero(0),
        HostchanError::Status {
            kind: MsgType::Log,
            status: Status::Ok,
        },
        HostchanError::Malformed {
            kind: MsgType::Log,
            what: "x",
        },
        HostchanError::BadRequestPayload {
            kind: MsgType::Log,
            what: "x",
        },
        HostchanError::VersionRefused { chosen: 0 },
        HostchanError::Http(CodecError::PathPrefix),
    ];
    let mut codes: Vec<u16> = all.iter().map(|e| e.code()).collect();
    let mut reasons: Vec<&str> = all.iter().map(|e| e.reason()).collect();
    codes.sort();
    codes.dedup();
    reasons.sort();
    reasons.dedup();
    assert_eq!(codes.len(), all.len());
    assert_eq!(reasons.len(), all.len());
    assert!(!codes.contains(&0));
    let texts: Vec<String> = all.iter().map(|e| e.to_string()).collect();
    assert!(texts.iter().all(|t| !t.is_empty()));
}
