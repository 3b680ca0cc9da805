//! The development chain end to end: the guest messenger asks the
//! simulated PSP for a report, the report verifies against the generated
//! VCEK, the VCEK chains to the generated ARK; forged links are refused;
//! AMD's real Milan and Genoa roots work as trust anchors with the same
//! code; and the `sev` crate (virtee), an independent implementation,
//! parses our report and verifies our chain.
//!
//! RSA-4096 generation is the slow part: each chain is generated once per
//! test binary.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use svtpm::attest::snp::payload::KEY_SEL_DEFAULT;
use svtpm::attest::snp::{
    AttestationReport, GuestMessenger, GuestRequestTransport, SecretsPage, SnpError, TcbVersion,
    TransportError,
};
use svtpm_psp_sim::secrets::{self, SvsmFields};
use svtpm_psp_sim::{ChipIdentity, Psp, PspConfig, TestChain};
use svtpm_snp_verify::{verify_chain, verify_report, Cert, Role, TrustAnchor, VerifyError};
use zerocopy::IntoBytes;

struct Fixture {
    chip: ChipIdentity,
    chain: TestChain,
}

fn first() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let chip = ChipIdentity::random();
        let chain = TestChain::generate(&chip).unwrap();
        Fixture { chip, chain }
    })
}

fn second() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let chip = ChipIdentity::random();
        let chain = TestChain::generate(&chip).unwrap();
        Fixture { chip, chain }
    })
}

struct Direct<'a>(&'a mut Psp);

impl GuestRequestTransport for Direct<'_> {
    fn exchange(&mut self, request: &[u8], response: &mut [u8]) -> Result<(), TransportError> {
        self.0
            .handle(request, response)
            .map(|_| ())
            .map_err(|e| TransportError { code: e.code() })
    }
}

fn page() -> SecretsPage {
    secrets::generate(&SvsmFields {
        base: 0,
        size: 0,
        caa: 0,
        max_version: 1,
        guest_vmpl: 2,
    })
}

/// A report from the simulated PSP signing with `signer`'s VCEK and
/// reporting `config`, requested through the guest messenger.
fn report_from(signer: &Fixture, config: PspConfig, data: [u8; 64]) -> AttestationReport {
    let page = page();
    let mut psp = Psp::new(&page, config, signer.chain.vcek_key.clone());
    let mut m = GuestMessenger::new(page.vmpck(0).unwrap(), 0, 1).unwrap();
    m.request_report(&mut Direct(&mut psp), &data, 0, KEY_SEL_DEFAULT)
        .unwrap()
}

fn certs(f: &Fixture) -> (TrustAnchor, Cert, Cert) {
    (
        TrustAnchor::from_bytes(&f.chain.ark).unwrap(),
        Cert::from_der(Role::Ask, &f.chain.ask).unwrap(),
        Cert::from_der(Role::Vcek, &f.chain.vcek).unwrap(),
    )
}

#[test]
fn report_verifies_through_the_whole_chain() {
    let f = first();
    let mut config = PspConfig::for_chip(f.chip.clone());
    config.measurement = [0xA5; 48];
    let report = report_from(f, config.clone(), [0x42; 64]);

    let (anchor, ask, vcek) = certs(f);
    let vcek = verify_chain(&anchor, &ask, &vcek, SystemTime::now()).unwrap();
    assert_eq!(vcek.hwid(), &f.chip.chip_id);
    assert_eq!(vcek.tcb(), f.chip.reported_tcb);
    assert_eq!(vcek.product_name(), Some("Genoa-B1"));
    let checked = verify_report(report.as_bytes(), &vcek).unwrap();
    assert_eq!(checked.report_data, [0x42; 64]);
    assert_eq!(checked.measurement, [0xA5; 48]);
    assert_eq!(checked.vmpl.get(), 0);
    assert_eq!(checked.version.get(), 3);
    assert!(!checked.debug_allowed());
}

#[test]
fn a_report_signed_by_another_key_is_refused() {
    let (f, other) = (first(), second());
    // Same chip identity, but the other chain's VCEK key signs.
    let report = report_from(other, PspConfig::for_chip(f.chip.clone()), [1; 64]);
    let (anchor, ask, vcek) = certs(f);
    let vcek = verify_chain(&anchor, &ask, &vcek, SystemTime::now()).unwrap();
    assert_eq!(
        verify_report(report.as_bytes(), &vcek).unwrap_err(),
        VerifyError::Report(SnpError::SignatureInvalid)
    );
}

#[test]
fn report_must_match_the_vceks_chip_and_tcb() {
    let f = first();
    let (anchor, ask, vcek) = certs(f);
    let vcek = verify_chain(&anchor, &ask, &vcek, SystemTime::now()).unwrap();

    let mut config = PspConfig::for_chip(f.chip.clone());
    config.chip.chip_id[0] ^= 1;
    let report = report_from(f, config, [0; 64]);
    assert_eq!(
        verify_report(report.as_bytes(), &vcek).unwrap_err(),
        VerifyError::ChipIdMismatch
    );

    let mut config = PspConfig::for_chip(f.chip.clone());
    config.chip.reported_tcb = TcbVersion::new(7, 0, 13, 72);
    let report = report_from(f, config, [0; 64]);
    assert!(matches!(
        verify_report(report.as_bytes(), &vcek).unwrap_err(),
        VerifyError::TcbMismatch { .. }
    ));

    // A report claiming a VLEK signature is not accepted under a VCEK.
    let mut report = report_from(f, PspConfig::for_chip(f.chip.clone()), [0; 64]);
    report.flags.set(1 << 2);
    assert_eq!(
        verify_report(report.as_bytes(), &vcek).unwrap_err(),
        VerifyError::NotVcekSigned
    );
}

#[test]
fn a_chain_with_a_wrong_ark_is_refused() {
    let (f, other) = (first(), second());
    let (_, ask, vcek) = certs(f);
    let wrong = TrustAnchor::from_bytes(&other.chain.ark).unwrap();
    // Same names, different key: the ASK's signature does not verify.
    assert_eq!(
        verify_chain(&wrong, &ask, &vcek, SystemTime::now()).unwrap_err(),
        VerifyError::Signature(Role::Ask)
    );
    // An ARK shipped with the evidence must be the anchor itself.
    let (anchor, _, _) = certs(f);
    let presented = Cert::from_der(Role::Ark, &other.chain.ark).unwrap();
    assert_eq!(
        anchor.check_presented(&presented).unwrap_err(),
        VerifyError::ArkNotAnchor
    );
    anchor
        .check_presented(&Cert::from_der(Role::Ark, &f.chain.ark).unwrap())
        .unwrap();
}

#[test]
fn a_vcek_not_signed_by_the_ask_is_refused() {
    let (f, other) = (first(), second());
    let (anchor, ask, _) = certs(f);
    let foreign = Cert::from_der(Role::Vcek, &other.chain.vcek).unwrap();
    assert_eq!(
        verify_chain(&anchor, &ask, &foreign, SystemTime::now()).unwrap_err(),
        VerifyError::Signature(Role::Vcek)
    );
    // A VCEK presented in the ASK's place is no CA and has no RSA key.
    let (_, _, vcek) = certs(f);
    let as_ask = Cert::from_der(Role::Ask, vcek.der()).unwrap();
    assert_eq!(
        verify_chain(&anchor, &as_ask, &vcek, SystemTime::now()).unwrap_err(),
        VerifyError::RsaKey(Role::Ask)
    );
}

#[test]
fn tampered_certificates_are_refused() {
    let f = first();
    let (anchor, ask, vcek) = certs(f);
    // Flip one byte of the VCEK's hwID inside its signed TBS bytes.
    let mut der = vcek.der().to_vec();
    let at = der
        .windows(16)
        .position(|w| w == &f.chip.chip_id[..16])
        .unwrap();
    der[at] ^= 1;
    let forged = Cert::from_der(Role::Vcek, &der).unwrap();
    assert_eq!(
        verify_chain(&anchor, &ask, &forged, SystemTime::now()).unwrap_err(),
        VerifyError::Signature(Role::Vcek)
    );
    // Outside the validity window.
    let far = SystemTime::now() + Duration::from_secs(30 * 365 * 24 * 3600);
    assert_eq!(
        verify_chain(&anchor, &ask, &vcek, far).unwrap_err(),
        VerifyError::Validity(Role::Ark)
    );
    let later = SystemTime::now() + Duration::from_secs(8 * 365 * 24 * 3600);
    assert_eq!(
        verify_chain(&anchor, &ask, &vcek, later).unwrap_err(),
        VerifyError::Validity(Role::Vcek)
    );
    // The VCEK is not a self-signed RSA CA: refused as an anchor.
    assert_eq!(
        TrustAnchor::from_bytes(&f.chain.vcek).unwrap_err(),
        VerifyError::RsaKey(Role::Ark)
    );
    // Non-certificates.
    assert!(matches!(
        TrustAnchor::from_bytes(b"not a certificate").unwrap_err(),
        VerifyError::Decode { .. }
    ));
}

#[test]
fn amd_roots_are_trust_anchors_for_the_same_code() {
    // AMD's published ARK and ASK, as the `sev` crate ships them.
    for (name, ark, ask) in [
        (
            "Milan",
            sev::certs::snp::builtin::milan::ARK,
            sev::certs::snp::builtin::milan::ASK,
        ),
        (
            "Genoa",
            sev::certs::snp::builtin::genoa::ARK,
            sev::certs::snp::builtin::genoa::ASK,
        ),
    ] {
        let anchor = TrustAnchor::from_bytes(ark).unwrap_or_else(|e| panic!("{name} ARK: {e}"));
        let ask = Cert::from_bytes(Role::Ask, ask).unwrap();
        let key = ask.rsa_key().unwrap();
        ask.require_ca().unwrap();
        ask.check_signed_by(
            anchor.ark(),
            &TrustAnchor::from_bytes(ark)
                .unwrap()
                .ark()
                .rsa_key()
                .unwrap(),
        )
        .unwrap_or_else(|e| panic!("{name} ASK: {e}"));
        ask.check_validity(SystemTime::now()).unwrap();
        // Our generated VCEK does not chain to AMD.
        let ours = Cert::from_der(Role::Vcek, &first().chain.vcek).unwrap();
        assert!(ours.check_signed_by(&ask, &key).is_err());
    }
    // Milan's ASK under Genoa's ARK: issuer name differs.
    let genoa = TrustAnchor::from_bytes(sev::certs::snp::builtin::genoa::ARK).unwrap();
    let milan_ask = Cert::from_bytes(Role::Ask, sev::certs::snp::builtin::milan::ASK).unwrap();
    let vcek = Cert::from_der(Role::Vcek, &first().chain.vcek).unwrap();
    assert_eq!(
        verify_chain(&genoa, &milan_ask, &vcek, SystemTime::now()).unwrap_err(),
        VerifyError::IssuerMismatch(Role::Ask)
    );
}

#[test]
fn the_sev_crate_parses_our_report_and_verifies_our_chain() {
    use sev::certs::snp::{ca, Certificate, Chain, Verifiable};
    use sev::parser::ByteParser;

    let f = first();
    let mut config = PspConfig::for_chip(f.chip.clone());
    config.measurement = [0x5E; 48];
    config.host_data = [0x4B; 32];
    config.guest_svn = 7;
    config.image_id = [0x11; 16];
    let report = report_from(f, config.clone(), [0xD7; 64]);

    let parsed = sev::firmware::guest::AttestationReport::from_bytes(report.as_bytes()).unwrap();
    assert_eq!(parsed.version, 3);
    assert_eq!(parsed.guest_svn, 7);
    assert_eq!(parsed.vmpl, 0);
    assert_eq!(parsed.sig_algo, 1);
    assert_eq!(parsed.report_data, [0xD7; 64]);
    assert_eq!(parsed.measurement, [0x5E; 48]);
    assert_eq!(parsed.host_data, [0x4B; 32]);
    assert_eq!(parsed.image_id, [0x11; 16]);
    assert_eq!(parsed.chip_id, f.chip.chip_id);
    assert_eq!(parsed.report_id, config.report_id);
    assert_eq!(parsed.report_id_ma, [0xFF; 32]);
    assert_eq!(parsed.cpuid_fam_id, Some(0x19));
    assert_eq!(parsed.cpuid_mod_id, Some(0x11));
    assert_eq!(parsed.cpuid_step, Some(0x01));
    let tcb = f.chip.reported_tcb;
    assert_eq!(
        (
            parsed.reported_tcb.bootloader,
            parsed.reported_tcb.tee,
            parsed.reported_tcb.snp,
            parsed.reported_tcb.microcode
        ),
        (tcb.boot_loader(), tcb.tee(), tcb.snp(), tcb.microcode())
    );
    assert_eq!(
        (
            parsed.current.major,
            parsed.current.minor,
            parsed.current.build
        ),
        (1, 55, 21)
    );
    // The sev crate re-encodes its parsed report: byte-identical to ours.
    assert_eq!(&parsed.to_bytes().unwrap()[..], report.as_bytes());

    let chain = Chain {
        ca: ca::Chain {
            ark: Certificate::from_der(&f.chain.ark).unwrap(),
            ask: Certificate::from_der(&f.chain.ask).unwrap(),
        },
        vek: Certificate::from_der(&f.chain.vcek).unwrap(),
    };
    (&chain, &parsed).verify().unwrap();

    // And it refuses what we refuse: a report signed by another VCEK.
    let other = report_from(second(), PspConfig::for_chip(f.chip.clone()), [0; 64]);
    let other = sev::firmware::guest::AttestationReport::from_bytes(other.as_bytes()).unwrap();
    assert!((&chain, &other).verify().is_err());
}

#[test]
fn chain_files_round_trip_and_the_vcek_key_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let f = first();
    let dir = tempfile::tempdir().unwrap();
    f.chain.write(dir.path()).unwrap();
    let mode = std::fs::metadata(dir.path().join("vcek-key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "vcek-key.pem mode {mode:o}");
    let loaded = TestChain::load(dir.path()).unwrap();
    assert_eq!(loaded.ark, f.chain.ark);
    assert_eq!(loaded.vcek_key, f.chain.vcek_key);
    assert_eq!(loaded.chip().unwrap(), f.chip);
    // The key broker's configuration: the ARK as a PEM file.
    let anchor = TrustAnchor::from_file(&dir.path().join("ark.pem")).unwrap();
    let ask = Cert::from_file(Role::Ask, &dir.path().join("ask.pem")).unwrap();
    let vcek = Cert::from_file(Role::Vcek, &dir.path().join("vcek.der")).unwrap();
    verify_chain(&anchor, &ask, &vcek, SystemTime::now()).unwrap();
    let bundle = std::fs::read_to_string(dir.path().join("cert_chain.pem")).unwrap();
    assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 2);
}

#[test]
fn cli_gen_chain_and_secrets_page() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("chain");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_svtpm-psp-sim"))
        .args(["gen-chain", "--out"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let chain = TestChain::load(&out).unwrap();
    let anchor = TrustAnchor::from_file(&out.join("ark.der")).unwrap();
    let vcek = verify_chain(
        &anchor,
        &Cert::from_der(Role::Ask, &chain.ask).unwrap(),
        &Cert::from_der(Role::Vcek, &chain.vcek).unwrap(),
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!(vcek.key(), chain.vcek_key.verifying_key());

    let page_path = dir.path().join("secrets.bin");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_svtpm-psp-sim"))
        .args(["secrets-page", "--svsm-base", "0x80000000", "--out"])
        .arg(&page_path)
        .status()
        .unwrap();
    assert!(status.success());
    let image = std::fs::read(&page_path).unwrap();
    let page = SecretsPage::read(&image).unwrap();
    assert_eq!(page.svsm_base.get(), 0x8000_0000);
    assert_eq!(page.svsm_guest_vmpl, 2);
    for id in 0..4 {
        assert!(page.vmpck(id).unwrap().iter().any(|&b| b != 0));
    }
    // A simulator loaded from these files answers a guest holding the page.
    let mut psp = Psp::new(
        &page,
        PspConfig::for_chip(chain.chip().unwrap()),
        chain.vcek_key.clone(),
    );
    let mut m = GuestMessenger::new(page.vmpck(0).unwrap(), 0, 1).unwrap();
    let report = m
        .request_report(&mut Direct(&mut psp), &[3; 64], 0, KEY_SEL_DEFAULT)
        .unwrap();
    verify_report(report.as_bytes(), &vcek).unwrap();
}

#[test]
fn pss_parameters_are_enforced() {
    // AMD's Genoa ASK with its PSS salt length (INTEGER 48 under [2])
    // rewritten to 32: refused on the parameters, before any signature
    // work; rewritten in the outer algorithm only: the two algorithm
    // identifiers disagree.
    let anchor = TrustAnchor::from_bytes(sev::certs::snp::builtin::genoa::ARK).unwrap();
    let ask = Cert::from_bytes(Role::Ask, sev::certs::snp::builtin::genoa::ASK).unwrap();
    let der = ask.der().to_vec();
    let salt = [0xA2, 0x03, 0x02, 0x01, 0x30];
    let at: Vec<usize> = der
        .windows(salt.len())
        .enumerate()
        .filter(|(_, w)| *w == salt)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(at.len(), 2, "salt in the TBS and the outer algorithm");
    let key = anchor.ark().rsa_key().unwrap();

    let mut both = der.clone();
    for &i in &at {
        both[i + 4] = 0x20;
    }
    let both = Cert::from_der(Role::Ask, &both).unwrap();
    assert_eq!(
        both.check_signed_by(anchor.ark(), &key).unwrap_err(),
        VerifyError::PssParameters(Role::Ask)
    );

    let mut outer = der.clone();
    outer[at[1] + 4] = 0x20;
    let outer = Cert::from_der(Role::Ask, &outer).unwrap();
    assert_eq!(
        outer.check_signed_by(anchor.ark(), &key).unwrap_err(),
        VerifyError::SignatureAlgorithm(Role::Ask)
    );
    ask.check_signed_by(anchor.ark(), &key).unwrap();
}

#[test]
fn the_cert_table_is_the_one_the_sev_crate_builds_and_parses() {
    use sev::firmware::host::{CertTableEntry, CertType};
    let f = first();
    let ours = f.chain.cert_table().unwrap();
    let theirs = CertTableEntry::cert_table_to_vec_bytes(&[
        CertTableEntry::new(CertType::VCEK, f.chain.vcek.clone()),
        CertTableEntry::new(CertType::ASK, f.chain.ask.clone()),
        CertTableEntry::new(CertType::ARK, f.chain.ark.clone()),
    ])
    .unwrap();
    assert_eq!(ours, theirs);
    let mut bytes = ours.clone();
    let parsed = CertTableEntry::vec_bytes_to_cert_table(&mut bytes).unwrap();
    let kinds: Vec<_> = parsed.iter().map(|e| e.cert_type.clone()).collect();
    assert_eq!(kinds, [CertType::VCEK, CertType::ASK, CertType::ARK]);
    assert_eq!(parsed[0].data(), &f.chain.vcek[..]);
    assert_eq!(parsed[2].data(), &f.chain.ark[..]);
    // And our own reader agrees.
    let entries = svtpm_psp_sim::cert_table::parse(&ours).unwrap();
    assert_eq!(
        entries[1],
        (svtpm_psp_sim::cert_table::ASK_GUID, f.chain.ask.clone())
    );
}

#[test]
fn load_reads_pem_only_chains_and_refuses_mismatched_files() {
    let (f, g) = (first(), second());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    f.chain.write(d).unwrap();
    let chip_text = std::fs::read_to_string(d.join("chip-id.hex")).unwrap();
    assert_eq!(chip_text.trim().len(), 128);
    for name in ["ark.der", "ask.der", "vcek.der"] {
        std::fs::remove_file(d.join(name)).unwrap();
    }
    let loaded = TestChain::load(d).unwrap();
    assert_eq!(
        (&loaded.ark, &loaded.ask, &loaded.vcek),
        (&f.chain.ark, &f.chain.ask, &f.chain.vcek)
    );
    assert_eq!(loaded.chip().unwrap(), f.chip);

    let err = |d: &std::path::Path| format!("{:#}", TestChain::load(d).unwrap_err());
    // Another chip ID than the VCEK's.
    std::fs::write(d.join("chip-id.hex"), "00".repeat(64)).unwrap();
    assert!(err(d).contains("hwID"), "{}", err(d));
    std::fs::write(d.join("chip-id.hex"), &chip_text).unwrap();
    // Another chain's signing key.
    let other = tempfile::tempdir().unwrap();
    g.chain.write(other.path()).unwrap();
    std::fs::copy(other.path().join("vcek-key.pem"), d.join("vcek-key.pem")).unwrap();
    assert!(err(d).contains("vcek-key.pem"), "{}", err(d));
    f.chain.write(d).unwrap();
    // Another chain's ARK.
    std::fs::copy(other.path().join("ark.der"), d.join("ark.der")).unwrap();
    assert!(err(d).contains("does not verify"), "{}", err(d));
    // A missing file is named.
    std::fs::remove_file(d.join("vcek-key.pem")).unwrap();
    assert!(err(d).contains("vcek-key.pem"), "{}", err(d));
}

#[test]
fn cli_measure_prints_the_launch_digest() {
    let dir = tempfile::tempdir().unwrap();
    // The test binary itself is an ELF with PT_LOAD segments.
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_svtpm-psp-sim"))
        .args(["measure", "--image"])
        .arg(&exe)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let expected = svtpm_psp_sim::measure::to_hex(
        &svtpm_psp_sim::launch_digest(&std::fs::read(&exe).unwrap()).unwrap(),
    );
    assert_eq!(text.trim(), expected);
    assert_eq!(expected.len(), 96);
    let bad = dir.path().join("not-elf");
    std::fs::write(&bad, b"text").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_svtpm-psp-sim"))
        .args(["measure", "--image"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an ELF"));
}
