//! A guest and a host on two threads over one shared buffer: many calls
//! of every type; sequence numbers and ids; a late response ignored;
//! server restarts and header upkeep.

use super::*;
use crate::attest::kbs::{HttpRequest, Method};
use crate::hostchan::client::next_seq;
use crate::hostchan::layout::MAGIC;
use crate::hostchan::region::shared_views;
use crate::nvstate::SlotId;

const SECOND: u64 = 1_000_000_000;

#[test]
fn many_calls_of_every_type_across_two_threads() {
    let len = 256 * 1024;
    let area = area(len);
    let host = Host {
        certs: b"cert table".to_vec(),
        ..Host::default()
    };
    let (mut chan, thread) = threaded(len, host, 0);
    assert_eq!(chan.proxy_name(), "test-proxy");
    assert_eq!(chan.area_len(), area);
    let mut written: [Option<Vec<u8>>; 2] = [None, None];
    for i in 0..400usize {
        let kind = MsgType::ALL[i % MsgType::ALL.len()];
        let fill = (i as u8).wrapping_mul(13);
        match kind {
            MsgType::Hello => {
                let req = Hello {
                    min_version: 1,
                    max_version: 1,
                    name: format!("guest {i}"),
                };
                let r = chan.call(kind, &req.encode(), 300, SECOND).unwrap();
                assert_eq!(r.status, Status::Ok);
                assert_eq!(HelloReply::decode(&r.payload).unwrap().name, "test-proxy");
            }
            MsgType::Log => chan.log(&format!("line {i}")).unwrap(),
            MsgType::SnpGuestRequest => {
                let msg = vec![fill; 96 + i % 4000];
                let r = chan.call(kind, &msg, 1 << 20, SECOND).unwrap();
                let reply = SnpReply::decode(&r.ok(kind).unwrap()).unwrap();
                assert_eq!(reply.fw_error, 0);
                assert_eq!(
                    reply.page[..msg.len()],
                    vec![fill.wrapping_add(1); msg.len()]
                );
                assert_eq!(reply.certs, b"cert table");
            }
            MsgType::Http => {
                let req = HttpRequest {
                    method: if i % 2 == 0 {
                        Method::Get
                    } else {
                        Method::Post
                    },
                    path: format!("/kbs/v0/resource/{i}"),
                    headers: vec![("X-I".into(), i.to_string())],
                    body: vec![fill; i * 97 % 20_000],
                };
                let r = chan
                    .call(kind, &http::encode_request(&req).unwrap(), area, SECOND)
                    .unwrap();
                let resp = http::decode_response(&r.ok(kind).unwrap()).unwrap();
                assert_eq!(resp.status, 200);
                assert_eq!(resp.body, req.body);
                assert_eq!(resp.header("x-i"), Some(i.to_string().as_str()));
                assert_eq!(resp.header("x-path"), Some(req.path.as_str()));
                assert_eq!(resp.header("x-method"), Some(req.method.as_str()));
            }
            MsgType::SlotWrite => {
                let slot = SlotId::ALL[i / 7 % 2];
                // Up to the whole area (the slot byte included).
                let n = if i % 3 == 0 { area - 1 } else { i * 131 % 5000 };
                let data = vec![fill; n];
                let payload = messages::encode_slot_write(slot, &data);
                let r = chan.call(kind, &payload, 0, SECOND).unwrap();
                assert_eq!(r.status, Status::Ok);
                assert!(r.payload.is_empty());
                written[slot.index()] = Some(data);
            }
            MsgType::SlotRead => {
                let slot = SlotId::ALL[i / 7 % 2];
                let r = chan
                    .call(kind, &messages::encode_slot_read(slot), area, SECOND)
                    .unwrap();
                let got = messages::decode_slot_read_reply(&r.ok(kind).unwrap()).unwrap();
                assert_eq!(got, written[slot.index()]);
            }
            MsgType::SlotFlush => {
                let r = chan.call(kind, &[], 0, SECOND).unwrap();
                assert_eq!(
                    r,
                    crate::hostchan::Response {
                        status: Status::Ok,
                        payload: vec![]
                    }
                );
            }
        }
    }
    // A request one byte over the area never reaches the host.
    assert_eq!(
        chan.call(MsgType::Log, &vec![0; area + 1], 0, SECOND),
        Err(HostchanError::OverArea {
            what: "request",
            len: area + 1,
            area
        })
    );
    // A slot of area - 1 bytes: its read response fills the area exactly.
    let full = messages::encode_slot_write(SlotId::A, &vec![1; area - 1]);
    assert_eq!(
        chan.call(MsgType::SlotWrite, &full, 0, SECOND)
            .unwrap()
            .status,
        Status::Ok
    );
    written[0] = Some(vec![1; area - 1]);
    let r = chan
        .call(
            MsgType::SlotRead,
            &messages::encode_slot_read(SlotId::A),
            area,
            SECOND,
        )
        .unwrap();
    assert_eq!((r.status, r.payload.len()), (Status::Ok, area));
    let host = thread.stop();
    assert_eq!(host.handled.len(), 403, "HELLO + 400 + 2");
    let store = host.store;
    assert_eq!(store.medium(SlotId::A).map(|d| d.to_vec()), written[0]);
}

use super::super::HostchanError;

#[test]
fn sequence_numbers_never_repeat_or_hit_zero_and_ids_are_per_boot() {
    let mut rig = Rig::with_seed(99);
    rig.chan.set_last_seq(u32::MAX - 2);
    for _ in 0..5 {
        rig.chan.log("x").unwrap();
    }
    let handled = rig.host.borrow().handled.clone();
    let seqs: Vec<u32> = handled.iter().map(|h| h.0).collect();
    assert_eq!(&seqs[1..], [u32::MAX - 1, u32::MAX, 1, 2, 3]);
    let ids: Vec<u64> = handled.iter().map(|h| h.2).collect();
    for w in ids.windows(2) {
        assert_eq!(w[1], w[0].wrapping_add(1), "base + counter");
    }
    assert_eq!((next_seq(0), next_seq(u32::MAX), next_seq(5)), (1, 1, 6));

    // Another boot (seed) starts elsewhere in both spaces.
    let other = Rig::with_seed(100);
    let first = other.host.borrow().handled[0];
    assert_ne!(first.0, handled[0].0);
    assert_ne!(first.2, handled[0].2);
    assert_ne!(first.0, 0);
    // Same seed, same start: the seed is the only source.
    let again = Rig::with_seed(99);
    assert_eq!(again.host.borrow().handled[0], handled[0]);
}

#[test]
fn a_late_response_to_a_timed_out_request_is_ignored() {
    // The host holds its first answer 300 ms; the guest waits 50 ms.
    let (mut chan, thread) = threaded(LEN, Host::default(), 300);
    let slot_a = messages::encode_slot_read(SlotId::A);
    let e = chan
        .call(MsgType::SlotRead, &slot_a, 100, SECOND / 20)
        .unwrap_err();
    assert!(
        matches!(
            e,
            HostchanError::Timeout {
                kind: MsgType::SlotRead,
                ..
            }
        ),
        "{e}"
    );
    // The next request is answered by its own response, even though the
    // late one for the abandoned request lands in between.
    chan.log("after").unwrap();
    let w = messages::encode_slot_write(SlotId::B, b"new");
    assert_eq!(
        chan.call(MsgType::SlotWrite, &w, 0, SECOND).unwrap().status,
        Status::Ok
    );
    let r = chan
        .call(
            MsgType::SlotRead,
            &messages::encode_slot_read(SlotId::B),
            100,
            SECOND,
        )
        .unwrap();
    assert_eq!(
        messages::decode_slot_read_reply(&r.payload).unwrap(),
        Some(b"new".to_vec())
    );
    let host = thread.stop();
    assert_eq!(host.handled.len(), 5);
}

#[test]
fn scripted_late_response_alone_is_not_taken() {
    let mut rig = Rig::new();
    // The host takes the request and never answers.
    let lost = std::rc::Rc::new(std::cell::Cell::new((0u32, 0u64)));
    let l = lost.clone();
    rig.on_ring(move |s| {
        if let Some(Ok(req)) = s.poll() {
            l.set((req.seq, req.request_id));
        }
    });
    let e = rig.chan.log("lost").unwrap_err();
    assert!(
        matches!(e, HostchanError::Timeout { kind: MsgType::Log, waited_ms, .. } if waited_ms >= 15_000),
        "{e}"
    );
    let (old_seq, old_id) = lost.get();
    assert_ne!(old_seq, 0);
    // On the next ring the host answers only the old request.
    let asked = std::rc::Rc::new(std::cell::Cell::new(0u32));
    let seen = asked.clone();
    rig.on_ring(move |s| {
        if let Some(Ok(req)) = s.poll() {
            seen.set(req.seq);
        }
        s.respond_raw(old_seq, 0x8002, 0, old_id, 0, &[]);
    });
    let e = rig.chan.log("next").unwrap_err();
    assert!(matches!(e, HostchanError::Timeout { .. }), "{e}");
    assert_eq!(asked.get(), next_seq(old_seq));
    // And once it answers properly, all is well again.
    rig.behave();
    rig.chan.log("again").unwrap();
}

#[test]
fn server_restarts_serve_a_pending_request_once() {
    let [mut guest, first, second, third] = shared_views(LEN);
    let _stopped = Server::new(first);
    // The guest rings; nobody answers; the server stops.
    guest.write(0x1000, b"hi");
    crate::hostchan::wire::Descriptor {
        seq: 41,
        kind: MsgType::Log.code(),
        status: 0,
        request_id: 9,
        payload_len: 2,
    }
    .publish(&mut guest, OFF_REQ);
    // That server is gone (never polls again).
    // A restarted server serves it...
    let mut restarted = Server::new(second);
    let req = restarted.poll().unwrap().unwrap();
    assert_eq!(
        (req.seq, req.request_id, &req.payload[..]),
        (41, 9, &b"hi"[..])
    );
    restarted.respond(&req, Status::Ok, &[]).unwrap();
    assert!(restarted.poll().is_none());
    // ...and the next restart does not serve it twice.
    let mut again = Server::new(third);
    assert!(again.poll().is_none());
}

#[test]
fn server_rewrites_a_cleared_header_and_refuses_bad_descriptors() {
    let (mut guest, hostside) = shared_pair(LEN);
    let mut server = Server::new(hostside);
    guest.write(0, &[0; 8]);
    server.ensure_header();
    let mut m = [0u8; 8];
    guest.read(0, &mut m);
    assert_eq!(m, MAGIC);
    server.set_ready(false);
    assert_eq!(guest.read_u32(0x10), 0);
    server.ensure_header();
    assert_eq!(guest.read_u32(0x10), 1);

    for (reserved, len, err) in [
        (3u16, 0u32, HostchanError::ReservedNonZero(3)),
        (
            0,
            AREA as u32 + 1,
            HostchanError::OverArea {
                what: "request",
                len: AREA + 1,
                area: AREA,
            },
        ),
    ] {
        let seq = guest.read_u32(OFF_REQ) + 1;
        crate::hostchan::wire::Descriptor {
            seq,
            kind: 2,
            status: reserved,
            request_id: 77,
            payload_len: len,
        }
        .publish(&mut guest, OFF_REQ);
        assert_eq!(server.poll(), Some(Err(err)));
        // Answered BAD_REQUEST on the spot, for this request.
        let d = crate::hostchan::wire::Descriptor::read(&guest, OFF_RESP);
        assert_eq!(
            (d.seq, d.kind, d.status, d.request_id, d.payload_len),
            (seq, 0x8002, 1, 77, 0)
        );
        assert_eq!(server.poll(), None);
    }
    // A response larger than the area is refused, nothing written.
    let req = Request {
        seq: 99,
        kind: 2,
        request_id: 1,
        payload: vec![],
    };
    assert!(server
        .respond(&req, Status::Ok, &vec![0; AREA + 1])
        .is_err());
    assert_ne!(guest.read_u32(OFF_RESP), 99);
}
