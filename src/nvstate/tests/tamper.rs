//! Every header field and every ciphertext byte altered, truncations,
//! extensions, splices and wrong keys: each is refused with the error that
//! names it, and nothing is released.
use super::support::*;
use crate::nvstate::entropy::Nonce;
use crate::nvstate::format::{self, BlobError, HEADER_LEN, MACED_LEN};
use crate::nvstate::seal::{open, seal};
use crate::nvstate::StateBlobs;

fn sealed(generation: u64) -> Vec<u8> {
    let nonce = Nonce::draw(&mut OsEntropy).unwrap();
    seal(&key(1), generation, &nonce, &blobs(3, 200, true)).unwrap()
}

/// The error a flipped bit in header byte `off` must produce.
fn expected_for_header_byte(off: usize, blob: &[u8], flipped: &[u8]) -> BlobError {
    match off {
        0..=7 => BlobError::BadMagic,
        8..=9 => BlobError::UnknownVersion(u16::from_le_bytes([flipped[8], flipped[9]])),
        10..=11 => BlobError::BadLength,
        24..=39 => BlobError::WrongKey {
            expected: key(1).id(),
            found: crate::nvstate::KeyId(flipped[24..40].try_into().unwrap()),
        },
        52..=55 => {
            let declared = u32::from_le_bytes(flipped[52..56].try_into().unwrap()) as usize;
            let actual = blob.len() - HEADER_LEN;
            if declared > actual && declared <= crate::nvstate::payload::MAX_PAYLOAD_LEN + 16 {
                BlobError::Truncated {
                    len: blob.len(),
                    needed: HEADER_LEN + declared,
                }
            } else {
                BlobError::BadLength
            }
        }
        // flags, generation, nonce, header MAC: caught by the header MAC.
        _ => BlobError::TamperedHeader,
    }
}

#[test]
fn round_trip() {
    let b = blobs(9, 300, true);
    let nonce = Nonce::draw(&mut OsEntropy).unwrap();
    let blob = seal(&key(1), 42, &nonce, &b).unwrap();
    assert_eq!(blob.len(), HEADER_LEN + b.encoded_len() + 16);
    let o = open(&key(1), &blob).unwrap();
    assert_eq!((o.generation, &o.blobs, o.nonce), (42, &b, *nonce.bytes()));
    let empty = seal(&key(1), 1, &nonce, &StateBlobs::new()).unwrap();
    assert_eq!(open(&key(1), &empty).unwrap().blobs, StateBlobs::new());
}

#[test]
fn plaintext_never_appears_and_nonces_differ() {
    let b = blobs(0, 64, false);
    let secret = b.get("permall").unwrap().to_vec();
    let x = seal(&key(1), 1, &Nonce::draw(&mut OsEntropy).unwrap(), &b).unwrap();
    let y = seal(&key(1), 1, &Nonce::draw(&mut OsEntropy).unwrap(), &b).unwrap();
    assert_ne!(x[40..52], y[40..52], "nonce reused");
    assert_ne!(x[HEADER_LEN..], y[HEADER_LEN..]);
    for blob in [&x, &y] {
        assert!(!blob.windows(16).any(|w| secret.windows(16).any(|s| s == w)));
        assert!(
            !blob.windows(7).any(|w| w == b"permall"),
            "names must be encrypted too"
        );
    }
}

#[test]
fn every_header_bit_flip_is_refused_with_the_fields_error() {
    let blob = sealed(7);
    let mut cases = 0;
    for off in 0..HEADER_LEN {
        for bit in 0..8 {
            let mut t = blob.clone();
            t[off] ^= 1 << bit;
            let want = expected_for_header_byte(off, &blob, &t);
            assert_eq!(open(&key(1), &t), Err(want), "byte {off} bit {bit}");
            cases += 1;
        }
    }
    assert_eq!(cases, HEADER_LEN * 8);
    println!("header bit flips refused: {cases}");
}

#[test]
fn every_ciphertext_and_tag_byte_is_authenticated() {
    let blob = sealed(7);
    let mut x: u32 = 0x9e37_79b9;
    for off in HEADER_LEN..blob.len() {
        // A pseudo-random non-zero change per byte, plus the top bit alone.
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        for delta in [(x as u8) | 1, 0x80] {
            let mut t = blob.clone();
            t[off] ^= delta;
            assert_eq!(
                open(&key(1), &t),
                Err(BlobError::TamperedCiphertext),
                "byte {off}"
            );
        }
    }
}

#[test]
fn truncations_and_extensions_are_refused() {
    let blob = sealed(3);
    for len in 0..blob.len() {
        let err = open(&key(1), &blob[..len]).unwrap_err();
        let ok = matches!(err, BlobError::Truncated { .. });
        assert!(ok, "len {len}: {err:?}");
    }
    let mut longer = blob.clone();
    longer.push(0);
    assert_eq!(open(&key(1), &longer), Err(BlobError::BadLength));
    assert_eq!(
        open(&key(1), b"SVTPMN"),
        Err(BlobError::Truncated {
            len: 6,
            needed: HEADER_LEN
        })
    );
    assert_eq!(open(&key(1), b"swtpm"), Err(BlobError::BadMagic));
}

#[test]
fn splicing_header_and_body_of_two_blobs_is_refused() {
    let a = sealed(5);
    let b = sealed(5);
    assert_eq!(a.len(), b.len());
    let mut spliced = a[..HEADER_LEN].to_vec();
    spliced.extend_from_slice(&b[HEADER_LEN..]);
    assert_eq!(open(&key(1), &spliced), Err(BlobError::TamperedCiphertext));
}

#[test]
fn wrong_key_is_named_as_such() {
    let blob = sealed(1);
    assert_eq!(
        open(&key(2), &blob),
        Err(BlobError::WrongKey {
            expected: key(2).id(),
            found: key(1).id()
        })
    );
    // Claiming the other key's id does not help either.
    let mut relabeled = blob.clone();
    relabeled[24..40].copy_from_slice(&key(2).id().0);
    assert_eq!(open(&key(2), &relabeled), Err(BlobError::TamperedHeader));
}

#[test]
fn inspect_reads_the_unauthenticated_header() {
    let blob = sealed(11);
    let info = format::inspect(&blob).unwrap();
    assert_eq!(
        (info.generation, info.key_id, info.len),
        (11, key(1).id(), blob.len())
    );
}

/// Re-seals `blob` after `edit` changes its header, with valid MAC and tag:
/// what only a holder of the key could produce.
pub(super) fn reseal_with(blob: &[u8], edit: impl FnOnce(&mut [u8])) -> Vec<u8> {
    use aes_gcm::aead::AeadInPlace;
    use aes_gcm::{Aes256Gcm, KeyInit};
    use hmac::{Hmac, Mac};
    let k = key(1);
    let opened = open(&k, blob).unwrap();
    let mut out = blob[..HEADER_LEN].to_vec();
    edit(&mut out);
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(k.header_mac_key()).unwrap();
    mac.update(&out[..MACED_LEN]);
    let tag = mac.finalize().into_bytes();
    out[MACED_LEN..HEADER_LEN].copy_from_slice(&tag);
    let mut body = opened.blobs.encode().to_vec();
    let nonce: [u8; 12] = out[40..52].try_into().unwrap();
    let t = Aes256Gcm::new(k.aead_key().into())
        .encrypt_in_place_detached((&nonce).into(), &out, &mut body)
        .unwrap();
    out.extend_from_slice(&body);
    out.extend_from_slice(&t);
    out
}

#[test]
fn authentic_blobs_with_unknown_flags_or_bad_payload_are_refused() {
    let blob = sealed(2);
    assert!(
        open(&key(1), &reseal_with(&blob, |_| {})).is_ok(),
        "helper reproduces seal"
    );
    let flagged = reseal_with(&blob, |h| h[12] = 1);
    assert_eq!(open(&key(1), &flagged), Err(BlobError::UnsupportedFlags(1)));
}
