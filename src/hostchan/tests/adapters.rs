//! The adapters over real exchanges: the state slots (down to a full
//! VtpmState provision / commit / open cycle), HTTP through an echoing
//! host, SNP guest requests through a stand-in firmware; and how each maps
//! host refusals and channel faults onto its seam's errors.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit};
use spin::Mutex;
use zeroize::Zeroizing;

use super::super::adapters::snp::{CHANNEL_CODE_BASE, STATUS_CODE_BASE};
use super::super::adapters::{is_broker_unreachable, BROKER_UNREACHABLE};
use super::super::{ChannelGuestRequest, ChannelHttp, ChannelSlots, HostchanError};
use super::*;
use crate::attest::kbs::{HttpRequest, KbsError, Method, Transport};
use crate::attest::snp::{GuestMessenger, GuestRequestTransport, TransportError};
use crate::nvstate::backend::StoreOp;
use crate::nvstate::entropy::test_sources::OsEntropy;
use crate::nvstate::{MemoryGuard, SlotId, StateBlobs, StateKey, StoreError, VtpmState};

fn blobs(seed: u8, len: usize) -> StateBlobs {
    let mut s = StateBlobs::new();
    let perm: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(7) ^ seed).collect();
    s.insert("permall", &perm).unwrap();
    s.insert("volatilestate", &[seed; 40]).unwrap();
    s
}

fn key() -> StateKey {
    StateKey::new(&[0x42; 32]).unwrap()
}

#[test]
fn slots_read_write_flush_through_the_host() {
    let (chan, thread) = threaded(LEN, Host::default(), 0);
    let chan = Mutex::new(chan);
    let mut slots = ChannelSlots::new(&chan);
    assert_eq!(slots.read_slot(SlotId::A), Ok(None));
    assert_eq!(slots.read_slot(SlotId::B), Ok(None));
    slots.write_slot(SlotId::A, b"sealed A").unwrap();
    slots.write_slot(SlotId::B, b"").unwrap();
    slots.flush().unwrap();
    assert_eq!(slots.read_slot(SlotId::A), Ok(Some(b"sealed A".to_vec())));
    assert_eq!(slots.read_slot(SlotId::B), Ok(Some(vec![])));
    // Data that cannot fit the request area never leaves the guest.
    assert_eq!(
        slots.write_slot(SlotId::A, &vec![0; AREA]),
        Err(StoreError::TooLarge {
            len: AREA,
            max: AREA - 1
        })
    );
    assert!(matches!(
        slots.last_error(),
        Some(HostchanError::OverArea {
            what: "request",
            ..
        })
    ));
    let host = thread.stop();
    assert_eq!(host.store.medium(SlotId::A), Some(&b"sealed A"[..]));
    assert_eq!(host.handled.len(), 1 + 7);
}

#[test]
fn a_vtpm_state_lives_on_the_host_through_the_channel() {
    let len = 1024 * 1024;
    let (chan, thread) = threaded(len, Host::default(), 0);
    let chan = Mutex::new(chan);
    let mut guard = MemoryGuard::new();
    {
        let mut s = VtpmState::provision(
            key(),
            ChannelSlots::new(&chan),
            &mut guard,
            OsEntropy,
            blobs(0, 5000),
        )
        .unwrap();
        for g in 1..=3u8 {
            s.commit(blobs(g, 5000 + usize::from(g) * 1000)).unwrap();
        }
        assert_eq!(s.generation(), 4);
    }
    // A new boot: open over a fresh adapter.
    let s = VtpmState::open(key(), ChannelSlots::new(&chan), &mut guard, OsEntropy).unwrap();
    assert_eq!(s.generation(), 4);
    assert_eq!(s.blobs(), &blobs(3, 8000));
    assert_eq!(s.current_slot(), SlotId::B);
    drop(s);
    // What the host stored is exactly what a local store would hold.
    let mut host = thread.stop();
    let local = VtpmState::open(key(), &mut host.store, &mut guard, OsEntropy).unwrap();
    assert_eq!((local.generation(), local.blobs()), (4, &blobs(3, 8000)));
    // Provisioning over a channel whose host holds state is refused.
    let (guest, hostside) = shared_pair(len);
    let thread = HostThread::spawn(hostside, host, 0);
    let chan = Mutex::new(Channel::attach(guest, real_clock, 5, 5_000_000_000).unwrap());
    assert!(VtpmState::provision(
        key(),
        ChannelSlots::new(&chan),
        &mut MemoryGuard::new(),
        OsEntropy,
        blobs(9, 10)
    )
    .is_err());
    drop(thread);
}

#[test]
fn slot_faults_map_onto_store_errors() {
    let Rig { chan, ctl } = Rig::new();
    let chan = Mutex::new(chan);
    let mut slots = ChannelSlots::new(&chan);

    ctl.tamper(|_, r| r.status = Status::StorageError.code());
    assert_eq!(
        slots.write_slot(SlotId::B, b"x"),
        Err(StoreError::Io {
            op: StoreOp::Write,
            slot: Some(SlotId::B),
            code: 4
        })
    );
    assert_eq!(
        slots.last_error(),
        Some(HostchanError::Status {
            kind: MsgType::SlotWrite,
            status: Status::StorageError
        })
    );
    ctl.tamper(|_, r| r.status = Status::TooLarge.code());
    assert_eq!(
        slots.write_slot(SlotId::A, b"abc"),
        Err(StoreError::TooLarge {
            len: 3,
            max: AREA - 1
        })
    );
    ctl.silent();
    assert_eq!(
        slots.flush(),
        Err(StoreError::Unavailable { op: StoreOp::Flush })
    );
    assert!(matches!(
        slots.last_error(),
        Some(HostchanError::Timeout {
            kind: MsgType::SlotFlush,
            ..
        })
    ));
    // SLOT_READ payloads that are not `present` + data.
    for (payload, what) in [
        (vec![], "no present byte"),
        (vec![2, 0], "present byte is not 0 or 1"),
        (vec![0, 0], "bytes for an absent slot"),
    ] {
        ctl.tamper(move |_, r| {
            r.payload = payload.clone();
            r.payload_len = payload.len() as u32;
        });
        assert_eq!(
            slots.read_slot(SlotId::A),
            Err(StoreError::Io {
                op: StoreOp::Read,
                slot: Some(SlotId::A),
                code: -15
            })
        );
        assert_eq!(
            slots.last_error(),
            Some(HostchanError::Malformed {
                kind: MsgType::SlotRead,
                what
            })
        );
    }
    // Any payload on a write or flush answer.
    ctl.tamper(|_, r| {
        r.payload = vec![0];
        r.payload_len = 1;
    });
    assert!(matches!(
        slots.flush(),
        Err(StoreError::Io {
            op: StoreOp::Flush,
            slot: None,
            code: -12
        })
    ));
    // A header gone: unavailable.
    ctl.behave();
    ctl.on_ring(|s| s.region_mut().write(0, &[0; 8]));
    assert_eq!(
        slots.read_slot(SlotId::B),
        Err(StoreError::Unavailable { op: StoreOp::Read })
    );
    // Other stale answers: an I/O error naming the channel fault.
    ctl.server.borrow_mut().ensure_header();
    ctl.tamper(|_, r| r.request_id ^= 1);
    assert_eq!(
        slots.read_slot(SlotId::A),
        Err(StoreError::Io {
            op: StoreOp::Read,
            slot: Some(SlotId::A),
            code: -8
        })
    );
    ctl.behave();
    // The write refused with TOO_LARGE above had in fact been stored: after
    // an error the outcome of a write is unknown, as the store contract says.
    assert_eq!(slots.read_slot(SlotId::A), Ok(Some(b"abc".to_vec())));
}

#[test]
fn http_goes_through_the_echoing_host() {
    let (chan, thread) = threaded(LEN, Host::default(), 0);
    let chan = Mutex::new(chan);
    let mut t = ChannelHttp::new(&chan);
    let req = HttpRequest {
        method: Method::Post,
        path: "/kbs/v0/auth".into(),
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: br#"{"version":"0.4.0"}"#.to_vec(),
    };
    let resp = t.exchange(&req).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, req.body);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.header("x-path"), Some("/kbs/v0/auth"));

    let unreachable = HttpRequest {
        path: "/kbs/v0/unreachable".into(),
        ..req.clone()
    };
    let e = t.exchange(&unreachable).unwrap_err();
    assert!(is_broker_unreachable(&e), "{e}");
    assert_eq!(
        e,
        KbsError::Transport {
            reason: BROKER_UNREACHABLE
        }
    );
    assert!(e.to_string().contains("cannot reach the key broker"));

    let outside = HttpRequest {
        path: "/admin".into(),
        ..req.clone()
    };
    let e = t.exchange(&outside).unwrap_err();
    assert!(!is_broker_unreachable(&e));
    assert_eq!(
        t.last_error(),
        Some(HostchanError::Http(
            crate::hostchan::http::CodecError::PathPrefix
        ))
    );
    let host = thread.stop();
    assert_eq!(host.handled.len(), 3, "the refused request never left");
}

#[test]
fn http_faults_are_transport_errors_with_their_own_reasons() {
    let Rig { chan, ctl } = Rig::new();
    let chan = Mutex::new(chan);
    let mut t = ChannelHttp::new(&chan);
    let req = HttpRequest {
        method: Method::Get,
        path: "/kbs/v0/resource/a/b/c".into(),
        headers: vec![],
        body: vec![],
    };
    let mut reasons = Vec::new();
    let mut check = |e: KbsError, last: Option<HostchanError>| {
        let KbsError::Transport { reason } = e else {
            panic!("{e:?}")
        };
        assert!(!is_broker_unreachable(&KbsError::Transport { reason }));
        assert!(last.is_some());
        reasons.push(reason);
    };
    ctl.tamper(|_, r| {
        r.payload.truncate(r.payload.len() - 1);
        r.payload_len -= 1;
    });
    let e = t.exchange(&req).unwrap_err();
    check(e, t.last_error());
    assert!(matches!(
        t.last_error(),
        Some(HostchanError::Http(
            crate::hostchan::http::CodecError::Truncated { .. }
        ))
    ));
    ctl.tamper(|_, r| r.status = Status::BadRequest.code());
    check(t.exchange(&req).unwrap_err(), t.last_error());
    ctl.tamper(|_, r| r.kind = 0x8030);
    check(t.exchange(&req).unwrap_err(), t.last_error());
    ctl.silent();
    check(t.exchange(&req).unwrap_err(), t.last_error());
    reasons.sort();
    reasons.dedup();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    ctl.behave();
    assert_eq!(t.exchange(&req).unwrap().status, 200);
}

const VMPCK: [u8; 32] = [0x33; 32];

/// A stand-in firmware: answers any message with "ok", sealed the way the
/// SEV-SNP ABI lays a response out (offsets written out here).
fn firmware(request: &[u8]) -> Vec<u8> {
    let seqno = u64::from_le_bytes(request[0x20..0x28].try_into().unwrap()) + 1;
    let mut page = vec![0u8; 4096];
    page[0x20..0x28].copy_from_slice(&seqno.to_le_bytes());
    page[0x30] = 1; // AES-256-GCM
    page[0x31] = 1; // header version
    page[0x32..0x34].copy_from_slice(&0x60u16.to_le_bytes());
    page[0x34] = request[0x34] + 1;
    page[0x35] = request[0x35];
    page[0x36..0x38].copy_from_slice(&2u16.to_le_bytes());
    page[0x3C] = request[0x3C];
    let mut nonce = [0u8; 12];
    nonce[..8].copy_from_slice(&seqno.to_le_bytes());
    let mut body = b"ok".to_vec();
    let aad = page[0x30..0x60].to_vec();
    let tag = Aes256Gcm::new(&VMPCK.into())
        .encrypt_in_place_detached(&nonce.into(), &aad, &mut body)
        .unwrap();
    page[..16].copy_from_slice(&tag);
    page[0x60..0x62].copy_from_slice(&body);
    page
}

#[test]
fn snp_guest_requests_reach_the_firmware_and_bring_back_certificates() {
    let host = Host {
        certs: b"GUID table".to_vec(),
        firmware: Some(firmware),
        ..Host::default()
    };
    let (chan, thread) = threaded(LEN, host, 0);
    let chan = Mutex::new(chan);
    let mut t = ChannelGuestRequest::new(&chan);
    let mut m = GuestMessenger::new(Zeroizing::new(VMPCK), 0, 1).unwrap();
    let mut out = [0u8; 16];
    for _ in 0..3 {
        let n = m
            .exchange(
                &mut t,
                crate::attest::snp::MsgType::KeyReq,
                1,
                b"req",
                &mut out,
            )
            .unwrap();
        assert_eq!(&out[..n], b"ok");
        assert_eq!(t.take_cert_table(), b"GUID table");
        assert!(t.take_cert_table().is_empty());
    }
    assert_eq!(m.next_seqno(), 7);
    drop(thread);
}

#[test]
fn snp_failures_carry_distinct_codes() {
    let Rig { chan, ctl } = Rig::new();
    ctl.host.borrow_mut().certs = b"certs".to_vec();
    let chan = Mutex::new(chan);
    let mut t = ChannelGuestRequest::new(&chan);
    let mut page = vec![0u8; 4096];
    // Firmware error, as the host reports it.
    ctl.host.borrow_mut().snp_fw_error = 0x2_0000_0000;
    assert_eq!(
        t.exchange(b"msg", &mut page),
        Err(TransportError {
            code: 0x2_0000_0000
        })
    );
    assert!(t.take_cert_table().is_empty());
    ctl.host.borrow_mut().snp_fw_error = 0;
    // Success: the page and the table.
    t.exchange(b"msg", &mut page).unwrap();
    assert_eq!(&page[..3], b"nth");
    assert_eq!(t.take_cert_table(), b"certs");
    // The host cannot reach the PSP.
    ctl.tamper(|_, r| r.status = Status::UpstreamUnavailable.code());
    assert_eq!(
        t.exchange(b"msg", &mut page),
        Err(TransportError {
            code: STATUS_CODE_BASE | 3
        })
    );
    // A payload shorter than error + page.
    ctl.tamper(|_, r| {
        r.payload.truncate(100);
        r.payload_len = 100;
    });
    assert_eq!(
        t.exchange(b"msg", &mut page),
        Err(TransportError {
            code: CHANNEL_CODE_BASE | 15
        })
    );
    assert!(matches!(
        t.last_error(),
        Some(HostchanError::Malformed {
            kind: MsgType::SnpGuestRequest,
            ..
        })
    ));
    // A request larger than a page never leaves.
    let rings = ctl.rings.get();
    assert_eq!(
        t.exchange(&[0; 4097], &mut page),
        Err(TransportError {
            code: CHANNEL_CODE_BASE | 11
        })
    );
    assert_eq!(ctl.rings.get(), rings);
    // Silence.
    ctl.silent();
    assert_eq!(
        t.exchange(b"msg", &mut page),
        Err(TransportError {
            code: CHANNEL_CODE_BASE | 6
        })
    );
}
