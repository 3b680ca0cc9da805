//! The guest messenger against the simulated PSP: report round trips, the
//! sequence-number rules, and every way the host can tamper with a
//! response. No RSA chain is needed here: the VCEK is a fresh P-384 key.

use svtpm::attest::snp::payload::{
    KEY_SEL_DEFAULT, KEY_SEL_VLEK, STATUS_INVALID_KEY, STATUS_INVALID_PARAM,
};
use svtpm::attest::snp::{
    verify_report_signature, GuestMessenger, GuestRequestTransport, SecretsPage, SnpError,
    TransportError,
};
use svtpm_psp_sim::secrets::{self, SvsmFields};
use svtpm_psp_sim::{ChipIdentity, Psp, PspConfig, PspError};

type Tamper = Box<dyn FnMut(&mut [u8])>;

/// Carries messages to the simulator; optionally rewrites responses like a
/// hostile host, and keeps every response it delivered.
struct Host {
    psp: Psp,
    tamper: Option<Tamper>,
    replay: Option<Vec<u8>>,
    delivered: Vec<Vec<u8>>,
}

impl GuestRequestTransport for Host {
    fn exchange(&mut self, request: &[u8], response: &mut [u8]) -> Result<(), TransportError> {
        self.psp
            .handle(request, response)
            .map_err(|e| TransportError { code: e.code() })?;
        if let Some(old) = self.replay.take() {
            response.copy_from_slice(&old);
        }
        if let Some(t) = self.tamper.as_mut() {
            t(response);
        }
        self.delivered.push(response.to_vec());
        Ok(())
    }
}

fn page() -> SecretsPage {
    secrets::generate(&SvsmFields {
        base: 0x1_0000_0000,
        size: 0x100_0000,
        caa: 0x1_0000_1000,
        max_version: 1,
        guest_vmpl: 2,
    })
}

fn setup() -> (GuestMessenger, Host, p384::ecdsa::VerifyingKey) {
    let page = page();
    let vcek = p384::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let public = *vcek.verifying_key();
    let mut config = PspConfig::for_chip(ChipIdentity::random());
    config.measurement = [0x3C; 48];
    config.host_data = [0x77; 32];
    let psp = Psp::new(&page, config, vcek);
    let m = GuestMessenger::new(page.vmpck(0).unwrap(), 0, GuestMessenger::FIRST_SEQNO).unwrap();
    let host = Host {
        psp,
        tamper: None,
        replay: None,
        delivered: Vec::new(),
    };
    (m, host, public)
}

#[test]
fn reports_round_trip_and_verify() {
    let (mut m, mut host, vcek) = setup();
    for i in 0..4u8 {
        let data = [i; 64];
        let r = m
            .request_report(&mut host, &data, 0, KEY_SEL_DEFAULT)
            .unwrap();
        assert_eq!(r.report_data, data);
        assert_eq!(r.vmpl.get(), 0);
        assert_eq!(r.measurement, [0x3C; 48]);
        assert_eq!(r.host_data, [0x77; 32]);
        assert_eq!(r.chip_id, host.psp.config().chip.chip_id);
        assert_eq!(r.reported_tcb, host.psp.config().chip.reported_tcb);
        verify_report_signature(&r, &vcek).unwrap();
        assert_eq!(m.next_seqno(), 1 + 2 * (u64::from(i) + 1));
    }
    // Sequence numbers on the wire: responses 2, 4, 6, 8.
    let seqnos: Vec<u64> = host
        .delivered
        .iter()
        .map(|r| u64::from_le_bytes(r[0x20..0x28].try_into().unwrap()))
        .collect();
    assert_eq!(seqnos, [2, 4, 6, 8]);
}

#[test]
fn a_report_for_a_less_privileged_vmpl_carries_that_vmpl() {
    let (mut m, mut host, _) = setup();
    let r = m
        .request_report(&mut host, &[1; 64], 2, KEY_SEL_DEFAULT)
        .unwrap();
    assert_eq!(r.vmpl.get(), 2);
}

#[test]
fn firmware_refusals_keep_the_key_and_the_sequence() {
    let (mut m, mut host, _) = setup();
    // VMPL above 3 and a VLEK selection (the simulator has no VLEK).
    assert_eq!(
        m.request_report(&mut host, &[0; 64], 4, KEY_SEL_DEFAULT)
            .unwrap_err(),
        SnpError::ReportStatus(STATUS_INVALID_PARAM)
    );
    assert_eq!(
        m.request_report(&mut host, &[0; 64], 0, KEY_SEL_VLEK)
            .unwrap_err(),
        SnpError::ReportStatus(STATUS_INVALID_KEY)
    );
    assert!(m.has_key());
    assert_eq!(m.next_seqno(), 5);
    m.request_report(&mut host, &[0; 64], 0, KEY_SEL_DEFAULT)
        .unwrap();
}

#[test]
fn a_lower_vmpl_key_cannot_ask_for_a_more_privileged_report() {
    let page = page();
    let vcek = p384::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let mut host = Host {
        psp: Psp::new(&page, PspConfig::for_chip(ChipIdentity::random()), vcek),
        tamper: None,
        replay: None,
        delivered: Vec::new(),
    };
    let mut m1 = GuestMessenger::new(page.vmpck(2).unwrap(), 2, 1).unwrap();
    assert_eq!(
        m1.request_report(&mut host, &[0; 64], 0, KEY_SEL_DEFAULT)
            .unwrap_err(),
        SnpError::ReportStatus(STATUS_INVALID_PARAM)
    );
    let r = m1
        .request_report(&mut host, &[0; 64], 3, KEY_SEL_DEFAULT)
        .unwrap();
    assert_eq!(r.vmpl.get(), 3);
    // Each VMPCK has its own counter: VMPCK0 still starts at 1.
    let mut m0 = GuestMessenger::new(page.vmpck(0).unwrap(), 0, 1).unwrap();
    m0.request_report(&mut host, &[0; 64], 0, KEY_SEL_DEFAULT)
        .unwrap();
}

/// Runs one report request through a host that applies `tamper` to the
/// response, and checks the error and that the key is gone for good.
fn refused_with(tamper: impl FnMut(&mut [u8]) + 'static, expected: SnpError) {
    let (mut m, mut host, _) = setup();
    m.request_report(&mut host, &[9; 64], 0, KEY_SEL_DEFAULT)
        .unwrap();
    host.tamper = Some(Box::new(tamper));
    assert_eq!(
        m.request_report(&mut host, &[9; 64], 0, KEY_SEL_DEFAULT)
            .unwrap_err(),
        expected
    );
    assert!(m.is_disabled());
    assert!(!m.has_key(), "VMPCK wiped");
    host.tamper = None;
    assert_eq!(
        m.request_report(&mut host, &[9; 64], 0, KEY_SEL_DEFAULT)
            .unwrap_err(),
        SnpError::Disabled
    );
}

#[test]
fn every_header_field_is_checked() {
    refused_with(|r| r[0x30] = 2, SnpError::Algorithm(2));
    refused_with(|r| r[0x31] = 2, SnpError::HeaderVersion(2));
    refused_with(|r| r[0x32] = 0x61, SnpError::HeaderSize(0x61));
    refused_with(
        |r| r[0x34] = 5,
        SnpError::MsgType {
            expected: 6,
            found: 5,
        },
    );
    refused_with(
        |r| r[0x35] = 2,
        SnpError::MsgVersion {
            expected: 1,
            found: 2,
        },
    );
    refused_with(
        |r| r[0x3C] = 1,
        SnpError::VmpckMismatch {
            expected: 0,
            found: 1,
        },
    );
    refused_with(|r| r[0x38] = 1, SnpError::ReservedNonZero { offset: 0x38 });
    refused_with(|r| r[0x5F] = 1, SnpError::ReservedNonZero { offset: 0x5F });
}

#[test]
fn sequence_number_tampering_is_refused() {
    // The second exchange: request 3, response 4.
    refused_with(
        |r| r[0x20] = 6,
        SnpError::Seqno {
            expected: 4,
            found: 6,
        },
    );
    refused_with(|r| r[0x20] = 2, SnpError::Replayed { found: 2 });
}

#[test]
fn a_replayed_response_is_refused() {
    let (mut m, mut host, _) = setup();
    m.request_report(&mut host, &[1; 64], 0, KEY_SEL_DEFAULT)
        .unwrap();
    // The host answers the next request with the first, authentic,
    // response.
    host.replay = Some(host.delivered[0].clone());
    assert_eq!(
        m.request_report(&mut host, &[2; 64], 0, KEY_SEL_DEFAULT)
            .unwrap_err(),
        SnpError::Replayed { found: 2 }
    );
    assert!(!m.has_key());
}

#[test]
fn size_ciphertext_and_tag_are_authenticated() {
    refused_with(
        |r| r[0x36..0x38].copy_from_slice(&4001u16.to_le_bytes()),
        SnpError::MsgSize {
            size: 4001,
            max: 4000,
        },
    );
    // A smaller MSG_SIZE is in range but changes the AAD.
    refused_with(|r| r[0x36] ^= 1, SnpError::Authentication);
    refused_with(|r| r[0x60 + 0x100] ^= 0x80, SnpError::Authentication);
    refused_with(|r| r[0x00] ^= 1, SnpError::Authentication);
    refused_with(|r| r[0x0F] ^= 1, SnpError::Authentication);
}

#[test]
fn bytes_outside_the_aead_do_not_change_what_is_accepted() {
    // AUTHTAG[16..32] and the reserved bytes 0x28..0x30 are neither
    // authenticated nor used: changing them changes nothing.
    let (mut m, mut host, vcek) = setup();
    host.tamper = Some(Box::new(|r: &mut [u8]| {
        r[0x10..0x20].fill(0xAA);
        r[0x28..0x30].fill(0x55);
    }));
    let r = m
        .request_report(&mut host, &[4; 64], 0, KEY_SEL_DEFAULT)
        .unwrap();
    verify_report_signature(&r, &vcek).unwrap();
    assert_eq!(r.report_data, [4; 64]);
}

#[test]
fn psp_refusals_reach_the_guest_as_transport_errors_and_wipe() {
    let page = page();
    let vcek = p384::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let mut host = Host {
        psp: Psp::new(&page, PspConfig::for_chip(ChipIdentity::random()), vcek),
        tamper: None,
        replay: None,
        delivered: Vec::new(),
    };
    let mut m = GuestMessenger::new(page.vmpck(0).unwrap(), 0, 1).unwrap();
    m.request_report(&mut host, &[1; 64], 0, KEY_SEL_DEFAULT)
        .unwrap();
    // A second user of VMPCK0 that starts again at 1 (a lost counter) is
    // refused by the firmware, which has seen sequence number 2.
    let mut stale = GuestMessenger::new(page.vmpck(0).unwrap(), 0, 1).unwrap();
    let code = PspError::Seqno {
        expected: 3,
        found: 1,
    }
    .code();
    assert_eq!(
        stale
            .request_report(&mut host, &[2; 64], 0, KEY_SEL_DEFAULT)
            .unwrap_err(),
        SnpError::Transport(TransportError { code })
    );
    assert!(!stale.has_key());
    // The refusal consumed nothing on the firmware side.
    m.request_report(&mut host, &[3; 64], 0, KEY_SEL_DEFAULT)
        .unwrap();
}

#[test]
fn the_simulator_refuses_bad_requests_like_the_firmware() {
    let page = page();
    let vcek = p384::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let mut psp = Psp::new(&page, PspConfig::for_chip(ChipIdentity::random()), vcek);
    let mut m = GuestMessenger::new(page.vmpck(0).unwrap(), 0, 1).unwrap();
    let req = svtpm::attest::snp::ReportRequest::new([0; 64], 0, 0);
    let mut sealed = vec![0u8; 4096];
    let n = m
        .seal_request(5, 1, zerocopy::IntoBytes::as_bytes(&req), &mut sealed)
        .unwrap();
    let sealed = &sealed[..n];
    let mut rsp = vec![0u8; 4096];

    let mut bad = sealed.to_vec();
    bad[0x60] ^= 1;
    assert_eq!(psp.handle(&bad, &mut rsp), Err(PspError::Authentication));
    let mut bad = sealed.to_vec();
    bad[0x3C] = 3; // another VMPCK: authentication fails under its key
    assert_eq!(psp.handle(&bad, &mut rsp), Err(PspError::Authentication));
    let mut bad = sealed.to_vec();
    bad[0x20] = 3;
    assert_eq!(
        psp.handle(&bad, &mut rsp),
        Err(PspError::Seqno {
            expected: 1,
            found: 3
        })
    );
    let mut bad = sealed.to_vec();
    bad[0x3C] = 4;
    assert_eq!(psp.handle(&bad, &mut rsp), Err(PspError::Vmpck(4)));
    assert_eq!(psp.handle(&sealed[..0x5F], &mut rsp), Err(PspError::Length));
    assert_eq!(
        psp.handle(&sealed[..0x60 + 0x5F], &mut rsp),
        Err(PspError::Length)
    );
    // Refusals consumed nothing: the genuine request is still accepted,
    // once.
    let len = psp.handle(sealed, &mut rsp).unwrap();
    assert_eq!(len, 0x60 + 0x20 + 0x4A0);
    assert_eq!(
        psp.handle(sealed, &mut rsp),
        Err(PspError::Seqno {
            expected: 3,
            found: 1
        })
    );
    let mut out = vec![0u8; 4000];
    let n = m.open_response(&rsp, &mut out).unwrap();
    let report = svtpm::attest::snp::parse_report_response(&out[..n]).unwrap();
    assert_eq!(report.report_data, [0; 64]);
}
