//! JWE interoperability with an independent implementation (the `josekit`
//! crate, which uses OpenSSL): what josekit wraps to svtpm's TEE key, svtpm
//! opens; what the development broker wraps, josekit opens.

mod common;

use common::Os;
use josekit::jwe::{JweHeaderSet, ECDH_ES_A256KW};
use josekit::jwk::alg::ec::EcCurve;
use josekit::jwk::Jwk;
use svtpm::attest::kbs::{jwe, KbsError, TeeKeyPair};

fn josekit_wrap(
    key: &TeeKeyPair,
    payload: &[u8],
    apu: Option<&[u8]>,
    apv: Option<&[u8]>,
) -> String {
    let jwk = Jwk::from_bytes(serde_json::to_vec(&key.jwk()).unwrap()).unwrap();
    let encrypter = ECDH_ES_A256KW.encrypter_from_jwk(&jwk).unwrap();
    let mut header = JweHeaderSet::new();
    header.set_content_encryption("A256GCM", true);
    if let Some(u) = apu {
        header.set_agreement_partyuinfo(u, true);
    }
    if let Some(v) = apv {
        header.set_agreement_partyvinfo(v, true);
    }
    josekit::jwe::serialize_flattened_json(payload, Some(&header), None, None, &encrypter).unwrap()
}

#[test]
fn svtpm_opens_josekit_jwe() {
    let key = TeeKeyPair::generate(&mut Os).unwrap();
    let secret: Vec<u8> = (0u8..32).collect();
    for (apu, apv) in [
        (None, None),
        (Some(&b"Alice"[..]), Some(&b"Bob"[..])),
        (Some(&b"svtpm-kbs"[..]), None),
    ] {
        let wire = josekit_wrap(&key, &secret, apu, apv);
        let opened = jwe::open(wire.as_bytes(), &key).unwrap();
        assert_eq!(opened.expose(), &secret[..], "apu {apu:?} apv {apv:?}");
    }
    // Not for another key.
    let other = TeeKeyPair::generate(&mut Os).unwrap();
    let wire = josekit_wrap(&key, &secret, None, None);
    assert_eq!(
        jwe::open(wire.as_bytes(), &other).unwrap_err(),
        KbsError::JweDecrypt {
            stage: "key unwrap"
        }
    );
}

#[test]
fn josekit_opens_the_brokers_jwe() {
    let private = Jwk::generate_ec_key(EcCurve::P256).unwrap();
    let mut public: serde_json::Value =
        serde_json::from_str(&private.to_public_key().unwrap().to_string()).unwrap();
    public["alg"] = "ECDH-ES+A256KW".into();
    let tee: kbs_types::TeePubKey = serde_json::from_value(public).unwrap();
    let payload = b"vTPM state key: 32 bytes of it..";
    let response = svtpm_kbs::jwe::encrypt(&tee, payload).unwrap();
    let wire = serde_json::to_string(&response).unwrap();
    let decrypter = ECDH_ES_A256KW.decrypter_from_jwk(&private).unwrap();
    let (opened, header) = josekit::jwe::deserialize_json(&wire, &decrypter).unwrap();
    assert_eq!(opened, payload);
    assert_eq!(header.algorithm(), Some("ECDH-ES+A256KW"));
    assert_eq!(header.content_encryption(), Some("A256GCM"));
}
