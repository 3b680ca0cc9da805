//! Fuzzes the SNP message layer from the host's side: arbitrary bytes and
//! mutations of one authentic firmware response given to
//! `GuestMessenger::open_response`, and arbitrary bytes to the report and
//! MSG_REPORT_RSP parsers. Nothing may panic; a response opens only if
//! every authenticated byte is the firmware's, and then yields exactly the
//! firmware's plaintext; a report never verifies without the signing key.
#![no_main]

use std::sync::OnceLock;

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit};
use libfuzzer_sys::fuzz_target;
use p384::ecdsa::SigningKey;
use svtpm::attest::snp::header::PAGE_LEN;
use svtpm::attest::snp::{
    parse_report_response, verify_report_signature, AttestationReport, GuestMessenger, SnpError,
};
use zeroize::Zeroizing;

const VMPCK: [u8; 32] = [0x5c; 32];

struct Fixture {
    /// The firmware's response to the first request (sequence number 2).
    response: Vec<u8>,
    /// Its plaintext.
    plaintext: Vec<u8>,
    /// A key that signed nothing the fuzzer sees.
    vcek: p384::ecdsa::VerifyingKey,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        // The response as the firmware lays it out (raw offsets).
        let mut plaintext = vec![0u8; 0x20 + 0x4A0];
        plaintext[4..8].copy_from_slice(&0x4A0u32.to_le_bytes());
        plaintext[0x20] = 3; // report version
        plaintext[0x20 + 0x34] = 1; // signature algorithm
        let mut page = vec![0u8; PAGE_LEN];
        page[0x20] = 2;
        page[0x30..0x38].copy_from_slice(&[1, 1, 0x60, 0, 6, 1, 0xC0, 0x04]);
        let mut body = plaintext.clone();
        let aad = page[0x30..0x60].to_vec();
        let mut nonce = [0u8; 12];
        nonce[0] = 2;
        let tag = Aes256Gcm::new(&VMPCK.into())
            .encrypt_in_place_detached(&nonce.into(), &aad, &mut body)
            .unwrap();
        page[..16].copy_from_slice(&tag);
        page[0x60..0x60 + body.len()].copy_from_slice(&body);
        let vcek = *SigningKey::from_bytes(&[0x21; 48].into())
            .unwrap()
            .verifying_key();
        Fixture {
            response: page,
            plaintext,
            vcek,
        }
    })
}

/// A messenger with the first request sealed, waiting for response 2.
fn waiting() -> GuestMessenger {
    let mut m = GuestMessenger::new(Zeroizing::new(VMPCK), 0, 1).unwrap();
    let mut page = [0u8; PAGE_LEN];
    m.seal_request(5, 1, &[0u8; 0x60], &mut page).unwrap();
    m
}

/// Bytes the AEAD covers or the messenger uses: all but AUTHTAG[16..32]
/// and the reserved 0x28..0x30.
fn authenticated_equal(a: &[u8], b: &[u8], size: usize) -> bool {
    a[..0x10] == b[..0x10]
        && a[0x20..0x28] == b[0x20..0x28]
        && a[0x30..0x60 + size] == b[0x30..0x60 + size]
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut out = vec![0u8; 4000];
    match mode % 4 {
        // Arbitrary bytes as the response.
        0 => {
            let mut m = waiting();
            let r = m.open_response(rest, &mut out);
            assert!(r.is_err(), "arbitrary bytes opened");
            assert!(m.is_disabled() && !m.has_key());
            assert_eq!(
                m.open_response(&f.response, &mut out),
                Err(SnpError::Disabled)
            );
        }
        // The authentic response with the input XORed over it.
        1 => {
            let mut rsp = f.response.clone();
            for (i, b) in rest.iter().enumerate().take(PAGE_LEN) {
                rsp[i] ^= b;
            }
            if rest.len() < PAGE_LEN {
                rsp.truncate(PAGE_LEN - (rest.len() % 64));
            }
            let mut m = waiting();
            match m.open_response(&rsp, &mut out) {
                Ok(n) => {
                    assert_eq!(&out[..n], &f.plaintext[..], "forged plaintext");
                    assert!(authenticated_equal(&rsp, &f.response, n));
                    assert_eq!(m.next_seqno(), 3);
                }
                Err(_) => assert!(m.is_disabled() && !m.has_key()),
            }
        }
        // Arbitrary reports: parse, then the signature must not verify.
        2 => {
            if let Ok(r) = AttestationReport::parse(rest) {
                assert!(verify_report_signature(r, &f.vcek).is_err());
            }
        }
        // Arbitrary MSG_REPORT_RSP payloads.
        _ => {
            if let Ok(r) = parse_report_response(rest) {
                assert!(verify_report_signature(&r, &f.vcek).is_err());
            }
        }
    }
});
