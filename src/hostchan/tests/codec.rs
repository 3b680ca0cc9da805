//! The HTTP encoding and the per-type payload layouts: round trips, and
//! refusal of everything outside the rules.

use super::super::http::{
    decode_request, decode_response, encode_request, encode_response, CodecError, MAX_HEADERS,
    MAX_NAME, MAX_PATH, MAX_VALUE,
};
use super::super::messages::*;
use super::super::{HostchanError, MsgType};
use crate::attest::kbs::{HttpRequest, HttpResponse, Method};
use crate::nvstate::SlotId;

fn request() -> HttpRequest {
    HttpRequest {
        method: Method::Post,
        path: "/kbs/v0/attest?x=1".into(),
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            ("Cookie".into(), "kbs-session-id=abc".into()),
        ],
        body: b"{\"tee-pubkey\":{}}".to_vec(),
    }
}

fn response() -> HttpResponse {
    HttpResponse {
        status: 401,
        headers: vec![("Set-Cookie".into(), "kbs-session-id=x; Path=/".into())],
        body: vec![0, 1, 2, 255],
    }
}

#[test]
fn request_round_trips_with_the_documented_layout() {
    let r = request();
    let wire = encode_request(&r).unwrap();
    assert_eq!(decode_request(&wire).unwrap(), r);
    // u8 method, u16 path_len, path, u16 count, ...
    assert_eq!(wire[0], 1);
    assert_eq!(u16::from_le_bytes([wire[1], wire[2]]), 18);
    assert_eq!(&wire[3..21], b"/kbs/v0/attest?x=1");
    assert_eq!(u16::from_le_bytes([wire[21], wire[22]]), 2);
    assert_eq!(u16::from_le_bytes([wire[23], wire[24]]), 12);
    assert_eq!(&wire[25..37], b"Content-Type");
    let body_len = r.body.len();
    let n = wire.len();
    assert_eq!(&wire[n - body_len..], &r.body[..]);
    assert_eq!(
        u32::from_le_bytes(wire[n - body_len - 4..n - body_len].try_into().unwrap()) as usize,
        body_len
    );
    let get = HttpRequest {
        method: Method::Get,
        path: "/kbs/v0/auth".into(),
        headers: vec![],
        body: vec![],
    };
    let wire = encode_request(&get).unwrap();
    assert_eq!(
        wire,
        [&[0u8, 12, 0][..], b"/kbs/v0/auth", &[0, 0, 0, 0, 0, 0]].concat()
    );
    assert_eq!(decode_request(&wire).unwrap(), get);
}

#[test]
fn response_round_trips_with_the_documented_layout() {
    let r = response();
    let wire = encode_response(&r).unwrap();
    assert_eq!(decode_response(&wire).unwrap(), r);
    assert_eq!(&wire[..4], &[0x91, 0x01, 1, 0]);
    // Limits inclusive.
    let big = HttpResponse {
        status: 200,
        headers: (0..MAX_HEADERS)
            .map(|i| {
                (
                    format!("{i:0>width$}", width = MAX_NAME),
                    "v".repeat(MAX_VALUE),
                )
            })
            .collect(),
        body: vec![7; 100_000],
    };
    assert_eq!(
        decode_response(&encode_response(&big).unwrap()).unwrap(),
        big
    );
}

#[test]
fn every_truncation_and_any_trailing_byte_is_refused() {
    for wire in [
        encode_request(&request()).unwrap(),
        encode_response(&response()).unwrap(),
    ] {
        let is_req = wire[0] == 1;
        let decode = |b: &[u8]| {
            if is_req {
                decode_request(b).map(|_| ())
            } else {
                decode_response(b).map(|_| ())
            }
        };
        for cut in 0..wire.len() {
            assert!(
                matches!(decode(&wire[..cut]), Err(CodecError::Truncated { .. })),
                "cut at {cut}"
            );
        }
        let mut long = wire.clone();
        long.push(0);
        assert_eq!(decode(&long), Err(CodecError::TrailingBytes { count: 1 }));
    }
}

#[test]
fn requests_outside_the_rules_are_refused_both_ways() {
    let cases: Vec<(HttpRequest, CodecError)> = vec![
        (
            HttpRequest {
                path: "/other".into(),
                ..request()
            },
            CodecError::PathPrefix,
        ),
        (
            HttpRequest {
                path: format!("/kbs/v0/{}", "a".repeat(MAX_PATH)),
                ..request()
            },
            CodecError::PathTooLong { len: MAX_PATH + 8 },
        ),
        (
            HttpRequest {
                path: "/kbs/v0/a b".into(),
                ..request()
            },
            CodecError::BadCharacter { field: "path" },
        ),
        (
            HttpRequest {
                headers: vec![("X".into(), "a\r\nInjected: 1".into())],
                ..request()
            },
            CodecError::BadCharacter {
                field: "header value",
            },
        ),
        (
            HttpRequest {
                headers: vec![("X:Y".into(), "1".into())],
                ..request()
            },
            CodecError::BadCharacter {
                field: "header name",
            },
        ),
        (
            HttpRequest {
                headers: vec![(String::new(), "1".into())],
                ..request()
            },
            CodecError::NameLength { len: 0 },
        ),
        (
            HttpRequest {
                headers: vec![("a".repeat(MAX_NAME + 1), "1".into())],
                ..request()
            },
            CodecError::NameLength { len: MAX_NAME + 1 },
        ),
        (
            HttpRequest {
                headers: vec![("X".into(), "v".repeat(MAX_VALUE + 1))],
                ..request()
            },
            CodecError::ValueTooLong { len: MAX_VALUE + 1 },
        ),
        (
            HttpRequest {
                headers: vec![("X".into(), "1".into()); MAX_HEADERS + 1],
                ..request()
            },
            CodecError::TooManyHeaders {
                count: MAX_HEADERS + 1,
            },
        ),
    ];
    for (req, err) in cases {
        assert_eq!(encode_request(&req), Err(err), "{req:?}");
        // The same bytes produced by hand are refused by the decoder.
        let mut wire = vec![1u8];
        wire.extend_from_slice(&(req.path.len() as u16).to_le_bytes());
        wire.extend_from_slice(req.path.as_bytes());
        wire.extend_from_slice(&(req.headers.len() as u16).to_le_bytes());
        for (n, v) in &req.headers {
            wire.extend_from_slice(&(n.len() as u16).to_le_bytes());
            wire.extend_from_slice(n.as_bytes());
            wire.extend_from_slice(&(v.len() as u16).to_le_bytes());
            wire.extend_from_slice(v.as_bytes());
        }
        wire.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(decode_request(&wire), Err(err), "{req:?}");
    }
}

#[test]
fn decoder_refuses_unknown_methods_and_bad_utf8() {
    let mut wire = encode_request(&request()).unwrap();
    wire[0] = 2;
    assert_eq!(decode_request(&wire), Err(CodecError::UnknownMethod(2)));
    let mut wire = encode_request(&request()).unwrap();
    wire[3 + 8] = 0xff; // inside the path
    assert_eq!(
        decode_request(&wire),
        Err(CodecError::NotUtf8 { field: "path" })
    );
    let mut wire = encode_response(&response()).unwrap();
    wire[2 + 2 + 2] = 0xc3; // first byte of the header name, a lone lead byte
    assert_eq!(
        decode_response(&wire),
        Err(CodecError::NotUtf8 {
            field: "header name"
        })
    );
    // A huge declared body length is a truncation, not an allocation.
    let mut wire = encode_response(&HttpResponse {
        status: 200,
        headers: vec![],
        body: vec![],
    })
    .unwrap();
    let n = wire.len();
    wire[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        decode_response(&wire),
        Err(CodecError::Truncated { field: "body" })
    );
    // Every codec error has its own reason text.
    let reasons = [
        CodecError::Truncated { field: "x" },
        CodecError::TrailingBytes { count: 1 },
        CodecError::UnknownMethod(9),
        CodecError::PathPrefix,
        CodecError::PathTooLong { len: 1 },
        CodecError::TooManyHeaders { count: 1 },
        CodecError::NameLength { len: 1 },
        CodecError::ValueTooLong { len: 1 },
        CodecError::BodyTooLong { len: 1 },
        CodecError::NotUtf8 { field: "x" },
        CodecError::BadCharacter { field: "x" },
    ]
    .map(|e| e.reason());
    let mut uniq = reasons.to_vec();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), reasons.len());
}

#[test]
fn hello_layouts() {
    let h = Hello {
        min_version: 1,
        max_version: 3,
        name: "svtpm".into(),
    };
    let wire = h.encode();
    assert_eq!(
        wire,
        [&1u32.to_le_bytes()[..], &3u32.to_le_bytes(), b"svtpm"].concat()
    );
    assert_eq!(Hello::decode(&wire).unwrap(), h);
    assert!(Hello::decode(&wire[..7]).is_err());
    let inverted = [&3u32.to_le_bytes()[..], &1u32.to_le_bytes()].concat();
    assert!(Hello::decode(&inverted).is_err());
    let r = HelloReply {
        version: 1,
        name: "proxy 1.0".into(),
    };
    assert_eq!(HelloReply::decode(&r.encode()).unwrap(), r);
    let k = MsgType::Hello;
    for (bad, what) in [
        (&[1u8, 0, 0][..], "shorter than a version"),
        (
            &[1, 0, 0, 0, 0xff][..],
            "proxy name is not UTF-8 text of at most 256 bytes",
        ),
        (
            &[1, 0, 0, 0, b'a', b'\n'][..],
            "proxy name is not UTF-8 text of at most 256 bytes",
        ),
    ] {
        assert_eq!(
            HelloReply::decode(bad),
            Err(HostchanError::Malformed { kind: k, what })
        );
    }
    let long = [&1u32.to_le_bytes()[..], &[b'a'; MAX_NAME + 1]].concat();
    assert!(HelloReply::decode(&long).is_err());
    let longest = [&1u32.to_le_bytes()[..], &[b'a'; MAX_NAME]].concat();
    assert!(HelloReply::decode(&longest).is_ok());
}

#[test]
fn slot_layouts() {
    assert_eq!(encode_slot_read(SlotId::A), [0]);
    assert_eq!(encode_slot_read(SlotId::B), [1]);
    assert_eq!(decode_slot_read(&[1]), Ok(SlotId::B));
    assert!(decode_slot_read(&[2]).is_err());
    assert!(decode_slot_read(&[]).is_err());
    assert!(decode_slot_read(&[0, 0]).is_err());
    assert_eq!(encode_slot_read_reply(None), [0]);
    assert_eq!(encode_slot_read_reply(Some(b"xy")), [1, b'x', b'y']);
    assert_eq!(decode_slot_read_reply(&[0]), Ok(None));
    assert_eq!(decode_slot_read_reply(&[1]), Ok(Some(vec![])));
    assert_eq!(decode_slot_read_reply(&[1, 9]), Ok(Some(vec![9])));
    let k = MsgType::SlotRead;
    for (bad, what) in [
        (&[][..], "no present byte"),
        (&[0, 1][..], "bytes for an absent slot"),
        (&[2, 1][..], "present byte is not 0 or 1"),
    ] {
        assert_eq!(
            decode_slot_read_reply(bad),
            Err(HostchanError::Malformed { kind: k, what })
        );
    }
    let w = encode_slot_write(SlotId::B, b"blob");
    assert_eq!(w, [1, b'b', b'l', b'o', b'b']);
    assert_eq!(decode_slot_write(&w), Ok((SlotId::B, &b"blob"[..])));
    assert_eq!(decode_slot_write(&[0]), Ok((SlotId::A, &[][..])));
    assert!(decode_slot_write(&[]).is_err());
    assert!(decode_slot_write(&[7, 1]).is_err());
}

#[test]
fn snp_and_log_layouts() {
    let wire = SnpReply::encode(0x1_0000_0000, &[5; 100], b"certs");
    assert_eq!(wire.len(), 8 + SNP_PAGE + 5);
    let r = SnpReply::decode(&wire).unwrap();
    assert_eq!(r.fw_error, 0x1_0000_0000);
    assert_eq!(&r.page[..100], &[5; 100]);
    assert!(r.page[100..].iter().all(|&b| b == 0));
    assert_eq!(r.page.len(), SNP_PAGE);
    assert_eq!(r.certs, b"certs");
    assert!(SnpReply::decode(&wire[..8 + SNP_PAGE - 1]).is_err());
    let mut huge = wire.clone();
    huge.resize(8 + SNP_PAGE + MAX_CERT_TABLE + 1, 0);
    assert!(SnpReply::decode(&huge).is_err());
    assert!(decode_snp_request(&[]).is_err());
    assert!(decode_snp_request(&[0; SNP_PAGE + 1]).is_err());
    assert!(decode_snp_request(&[0; SNP_PAGE]).is_ok());

    let s = "é".repeat(MAX_LOG); // 2 bytes per char
    let cut = log_text(&s);
    assert!(cut.len() <= MAX_LOG && cut.len() >= MAX_LOG - 1);
    assert_eq!(log_text("short"), "short");
    assert!(decode_log(&[b'a'; MAX_LOG + 1]).is_err());
    assert!(decode_log(&[0xff]).is_err());
    assert_eq!(decode_log(b"hi"), Ok("hi"));
    assert!(expect_empty(MsgType::Log, &[]).is_ok());
    assert_eq!(
        expect_empty(MsgType::Log, &[0]),
        Err(HostchanError::Malformed {
            kind: MsgType::Log,
            what: "payload must be empty"
        })
    );
}
