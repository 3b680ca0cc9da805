//! Messenger tests against a stand-in firmware written from the
//! specification's byte offsets (not from [`MsgHeader`]), plus a known
//! answer computed with an independent AES-GCM implementation.

use super::*;
use aes_gcm::aead::AeadInPlace;
use alloc::vec::Vec;

const KEY: [u8; 32] = {
    let mut k = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        k[i] = i as u8;
        i += 1;
    }
    k
};

fn messenger() -> GuestMessenger {
    GuestMessenger::new(Zeroizing::new(KEY), 0, GuestMessenger::FIRST_SEQNO).unwrap()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A response as the firmware builds it, from raw offsets.
fn firmware_response(seqno: u64, msg_type: u8, vmpck: u8, payload: &[u8]) -> Vec<u8> {
    let mut page = alloc::vec![0u8; PAGE_LEN];
    page[0x20..0x28].copy_from_slice(&seqno.to_le_bytes());
    page[0x30] = 1;
    page[0x31] = 1;
    page[0x32..0x34].copy_from_slice(&0x60u16.to_le_bytes());
    page[0x34] = msg_type;
    page[0x35] = 1;
    page[0x36..0x38].copy_from_slice(&(payload.len() as u16).to_le_bytes());
    page[0x3C] = vmpck;
    let mut nonce = [0u8; 12];
    nonce[..8].copy_from_slice(&seqno.to_le_bytes());
    let mut body = payload.to_vec();
    let aad = page[0x30..0x60].to_vec();
    let tag = Aes256Gcm::new(&KEY.into())
        .encrypt_in_place_detached(&nonce.into(), &aad, &mut body)
        .unwrap();
    page[0..16].copy_from_slice(&tag);
    page[0x60..0x60 + body.len()].copy_from_slice(&body);
    page
}

fn seal(m: &mut GuestMessenger, payload: &[u8]) -> Vec<u8> {
    let mut out = alloc::vec![0u8; PAGE_LEN];
    let n = m.seal_request(5, 1, payload, &mut out).unwrap();
    out.truncate(n);
    out
}

#[test]
fn request_matches_an_independent_aes_gcm() {
    // Generated with Python's `cryptography` AESGCM: key 00..1f, IV =
    // seqno 1 LE in 12 bytes, AAD = header bytes 0x30..0x60, payload a
    // MSG_REPORT_REQ with REPORT_DATA = 0x11 * 64, VMPL 0, KEY_SEL 0.
    let payload = [&[0x11u8; 64][..], &[0u8; 32]].concat();
    let sealed = seal(&mut messenger(), &payload);
    assert_eq!(sealed.len(), 0x60 + 0x60);
    assert_eq!(sealed[..16], hex("092a111e606cf48a7bac9661f3582a00"));
    assert_eq!(sealed[16..32], [0u8; 16]);
    assert_eq!(
        sealed[0x60..],
        hex(concat!(
            "f33d932eb5befd165b1514d22dd099dadd70de3f6db97a035f0e4cef0c379661",
            "fdede1d831b3bfdec9cc0cc25f181199e1c4df95f4614b869299f16306a53956",
            "bcafa49213c0f2445044cd48be94fd5eb5f3e8b761e80896f353185b4abd740d"
        ))
    );
    // The header fields, by offset.
    assert_eq!(sealed[0x20..0x28], 1u64.to_le_bytes());
    assert_eq!(sealed[0x30..0x38], [1, 1, 0x60, 0, 5, 1, 0x60, 0]);
    assert_eq!(sealed[0x3C], 0);
}

#[test]
fn round_trip_advances_the_sequence_number_by_two() {
    let mut m = messenger();
    let mut out = [0u8; 64];
    for round in 0..3u64 {
        let seqno = 1 + 2 * round;
        let req = seal(&mut m, b"ping");
        assert_eq!(req[0x20..0x28], seqno.to_le_bytes());
        let rsp = firmware_response(seqno + 1, 6, 0, b"pong!");
        assert_eq!(m.open_response(&rsp, &mut out).unwrap(), 5);
        assert_eq!(&out[..5], b"pong!");
        assert_eq!(m.next_seqno(), seqno + 2);
    }
}

#[test]
fn state_machine_refuses_out_of_order_use() {
    let mut m = messenger();
    let mut out = [0u8; 64];
    assert_eq!(
        m.open_response(&firmware_response(2, 6, 0, b""), &mut out)
            .unwrap_err(),
        SnpError::NoRequestPending
    );
    assert!(m.has_key(), "nothing was sent: the key stays");
    seal(&mut m, b"a");
    let mut buf = [0u8; PAGE_LEN];
    assert_eq!(
        m.seal_request(5, 1, b"b", &mut buf).unwrap_err(),
        SnpError::RequestPending
    );
    m.abandon();
    assert!(!m.has_key());
    assert_eq!(
        m.seal_request(5, 1, b"b", &mut buf).unwrap_err(),
        SnpError::Disabled
    );
}

#[test]
fn a_failed_response_wipes_the_key_for_good() {
    let mut m = messenger();
    seal(&mut m, b"x");
    let mut rsp = firmware_response(2, 6, 0, b"reply");
    rsp[0x60] ^= 1;
    let mut out = [0u8; 64];
    assert_eq!(
        m.open_response(&rsp, &mut out).unwrap_err(),
        SnpError::Authentication
    );
    assert!(m.is_disabled());
    assert!(!m.has_key());
    assert_eq!(
        out[..5],
        [0u8; 5],
        "no unauthenticated plaintext left behind"
    );
    // Even the genuine response is refused now.
    assert_eq!(
        m.open_response(&firmware_response(2, 6, 0, b"reply"), &mut out)
            .unwrap_err(),
        SnpError::Disabled
    );
}

#[test]
fn construction_checks() {
    assert_eq!(
        GuestMessenger::new(Zeroizing::new([0; 32]), 0, 1).unwrap_err(),
        SnpError::VmpckEmpty
    );
    assert_eq!(
        GuestMessenger::new(Zeroizing::new(KEY), 4, 1).unwrap_err(),
        SnpError::VmpckId(4)
    );
    assert_eq!(
        GuestMessenger::new(Zeroizing::new(KEY), 0, 0).unwrap_err(),
        SnpError::SeqnoExhausted
    );
    assert_eq!(
        GuestMessenger::new(Zeroizing::new(KEY), 0, u64::MAX).unwrap_err(),
        SnpError::SeqnoExhausted
    );
    let text = alloc::format!("{:?}", messenger());
    assert!(!text.contains("31"), "key bytes never printed: {text}");
}

#[test]
fn sealing_bounds() {
    let mut m = messenger();
    let mut page = [0u8; PAGE_LEN];
    assert_eq!(
        m.seal_request(5, 1, &[0u8; MAX_PAYLOAD_LEN + 1], &mut page)
            .unwrap_err(),
        SnpError::PayloadTooLarge {
            len: MAX_PAYLOAD_LEN + 1,
            max: MAX_PAYLOAD_LEN
        }
    );
    let mut small = [0u8; 0x60 + 3];
    assert_eq!(
        m.seal_request(5, 1, b"four", &mut small).unwrap_err(),
        SnpError::BufferTooSmall {
            needed: 0x64,
            have: 0x63
        }
    );
    // Neither failure released a request or touched the key.
    assert!(m.has_key());
    assert_eq!(
        m.seal_request(5, 1, &[7u8; MAX_PAYLOAD_LEN], &mut page)
            .unwrap(),
        PAGE_LEN
    );
}

#[test]
fn last_sequence_number_pair_then_exhausted() {
    let mut m = GuestMessenger::new(Zeroizing::new(KEY), 0, u64::MAX - 1).unwrap();
    seal(&mut m, b"x");
    let mut out = [0u8; 8];
    m.open_response(&firmware_response(u64::MAX, 6, 0, b"y"), &mut out)
        .unwrap();
    let mut page = [0u8; PAGE_LEN];
    assert_eq!(
        m.seal_request(5, 1, b"z", &mut page).unwrap_err(),
        SnpError::SeqnoExhausted
    );
}

struct Loopback;

impl GuestRequestTransport for Loopback {
    fn exchange(&mut self, request: &[u8], response: &mut [u8]) -> Result<(), TransportError> {
        let seqno = u64::from_le_bytes(request[0x20..0x28].try_into().unwrap());
        let rsp = firmware_response(seqno + 1, request[0x34] + 1, request[0x3C], b"ok");
        response.copy_from_slice(&rsp);
        Ok(())
    }
}

struct Failing;

impl GuestRequestTransport for Failing {
    fn exchange(&mut self, _: &[u8], _: &mut [u8]) -> Result<(), TransportError> {
        Err(TransportError {
            code: 0x1_0000_0000,
        })
    }
}

#[test]
fn exchange_through_a_transport() {
    let mut m = messenger();
    let mut out = [0u8; 16];
    let n = m
        .exchange(&mut Loopback, MsgType::KeyReq, 1, b"req", &mut out)
        .unwrap();
    assert_eq!(&out[..n], b"ok");
    assert_eq!(
        m.exchange(&mut Failing, MsgType::KeyReq, 1, b"req", &mut out)
            .unwrap_err(),
        SnpError::Transport(TransportError {
            code: 0x1_0000_0000
        })
    );
    assert!(
        !m.has_key(),
        "a released request with no answer wipes the key"
    );
}
