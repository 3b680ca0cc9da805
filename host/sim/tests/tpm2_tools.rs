//! Real clients: the Debian `tpm2-tools` (mssim TCTI) against the real
//! `svtpm-sim` binary, through the TIS and the CRB register models.

mod harness;

use harness::{hex, pcr_from_output, unhex, yaml_value, Sim, Tools, Vtpm};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384};

/// A simulator and a tools directory, past `tpm2_startup -c`.
fn started(interface: &str) -> (Sim, Tools) {
    let sim = Sim::start(interface);
    let tools = Tools::new(&sim);
    tools.run("tpm2_startup", &["-c"]);
    (sim, tools)
}

fn getrandom(interface: &str) {
    let (_sim, t) = started(interface);
    t.run("tpm2_getrandom", &["32", "-o", "a.bin"]);
    t.run("tpm2_getrandom", &["32", "-o", "b.bin"]);
    let (a, b) = (t.read("a.bin"), t.read("b.bin"));
    assert_eq!((a.len(), b.len()), (32, 32));
    assert_ne!(a, b, "two random draws are equal");
    assert_ne!(a, [0u8; 32]);
}

#[test]
fn getrandom_tis() {
    getrandom("tis");
}

#[test]
fn getrandom_crb() {
    getrandom("crb");
}

/// H(old || digest) for each bank.
fn extend<D: Digest>(old: &[u8], digest: &[u8]) -> Vec<u8> {
    let mut h = D::new();
    h.update(old);
    h.update(digest);
    h.finalize().to_vec()
}

fn pcr_extend_and_read(interface: &str) {
    let (_sim, t) = started(interface);
    let read = |t: &Tools| t.run("tpm2_pcrread", &["sha1:10+sha256:10+sha384:10"]);
    let out = read(&t);
    let mut want1 = vec![0u8; 20];
    let mut want256 = vec![0u8; 32];
    let mut want384 = vec![0u8; 48];
    assert_eq!(pcr_from_output(&out, "sha1", 10), want1);
    assert_eq!(pcr_from_output(&out, "sha256", 10), want256);
    assert_eq!(pcr_from_output(&out, "sha384", 10), want384);
    for round in 0..2u8 {
        let d1 = Sha1::digest([b'a', round]).to_vec();
        let d256 = Sha256::digest([b'b', round]).to_vec();
        let d384 = Sha384::digest([b'c', round]).to_vec();
        t.run(
            "tpm2_pcrextend",
            &[&format!(
                "10:sha1={},sha256={},sha384={}",
                hex(&d1),
                hex(&d256),
                hex(&d384)
            )],
        );
        want1 = extend::<Sha1>(&want1, &d1);
        want256 = extend::<Sha256>(&want256, &d256);
        want384 = extend::<Sha384>(&want384, &d384);
        let out = read(&t);
        assert_eq!(pcr_from_output(&out, "sha1", 10), want1, "round {round}");
        assert_eq!(
            pcr_from_output(&out, "sha256", 10),
            want256,
            "round {round}"
        );
        assert_eq!(
            pcr_from_output(&out, "sha384", 10),
            want384,
            "round {round}"
        );
    }
    // Another PCR is untouched.
    let out = t.run("tpm2_pcrread", &["sha256:11"]);
    assert_eq!(pcr_from_output(&out, "sha256", 11), vec![0u8; 32]);
}

#[test]
fn pcr_extend_and_read_tis() {
    pcr_extend_and_read("tis");
}

#[test]
fn pcr_extend_and_read_crb() {
    pcr_extend_and_read("crb");
}

fn nv_define_write_read_undefine(interface: &str) {
    let (_sim, t) = started(interface);
    let data: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(37) ^ 0x5A).collect();
    t.write("data.bin", &data);
    t.run(
        "tpm2_nvdefine",
        &[
            "0x1500016",
            "-C",
            "o",
            "-s",
            "32",
            "-a",
            "ownerread|ownerwrite",
        ],
    );
    t.run("tpm2_nvwrite", &["0x1500016", "-C", "o", "-i", "data.bin"]);
    t.run(
        "tpm2_nvread",
        &["0x1500016", "-C", "o", "-s", "32", "-o", "out.bin"],
    );
    assert_eq!(t.read("out.bin"), data);
    t.run("tpm2_nvundefine", &["0x1500016", "-C", "o"]);
    let r = t.try_run("tpm2_nvread", &["0x1500016", "-C", "o", "-s", "32"]);
    assert!(!r.status.success(), "read of an undefined index succeeded");
}

#[test]
fn nv_define_write_read_undefine_tis() {
    nv_define_write_read_undefine("tis");
}

#[test]
fn nv_define_write_read_undefine_crb() {
    nv_define_write_read_undefine("crb");
}

#[test]
fn createprimary_rsa2048_and_ecc_p256() {
    let (_sim, t) = started("tis");
    let out = t.run(
        "tpm2_createprimary",
        &["-C", "o", "-G", "rsa2048", "-c", "rsa.ctx"],
    );
    assert_eq!(yaml_value(&out, "bits").as_deref(), Some("2048"));
    assert_eq!(unhex(&yaml_value(&out, "rsa").unwrap()).len(), 256);
    t.run("tpm2_flushcontext", &["-t"]);
    let out = t.run(
        "tpm2_createprimary",
        &["-C", "o", "-G", "ecc256", "-c", "ecc.ctx"],
    );
    assert!(out.contains("NIST p256"), "{out}");
    assert_eq!(unhex(&yaml_value(&out, "x").unwrap()).len(), 32);
    assert_eq!(unhex(&yaml_value(&out, "y").unwrap()).len(), 32);
    t.run("tpm2_flushcontext", &["-t"]);
    // Primary keys come from the seed: the same template gives the same key.
    let again = t.run(
        "tpm2_createprimary",
        &["-C", "o", "-G", "ecc256", "-c", "ecc2.ctx"],
    );
    assert_eq!(yaml_value(&again, "x"), yaml_value(&out, "x"));
}

#[test]
fn createprimary_crb() {
    let (_sim, t) = started("crb");
    let out = t.run(
        "tpm2_createprimary",
        &["-C", "o", "-G", "rsa2048", "-c", "rsa.ctx"],
    );
    assert_eq!(yaml_value(&out, "bits").as_deref(), Some("2048"));
}

fn seal_and_unseal_under_a_pcr_policy(interface: &str) {
    let (_sim, t) = started(interface);
    t.run_flush("tpm2_createprimary", &["-C", "o", "-c", "prim.ctx"]);
    t.run_flush("tpm2_pcrread", &["-o", "pcr.bin", "sha256:7"]);
    t.run_flush(
        "tpm2_createpolicy",
        &[
            "--policy-pcr",
            "-l",
            "sha256:7",
            "-f",
            "pcr.bin",
            "-L",
            "pcr.policy",
        ],
    );
    t.write("secret.dat", b"the disk key");
    t.run_flush(
        "tpm2_create",
        &[
            "-C",
            "prim.ctx",
            "-L",
            "pcr.policy",
            "-i",
            "secret.dat",
            "-u",
            "seal.pub",
            "-r",
            "seal.priv",
        ],
    );
    t.run_flush(
        "tpm2_load",
        &[
            "-C",
            "prim.ctx",
            "-u",
            "seal.pub",
            "-r",
            "seal.priv",
            "-c",
            "seal.ctx",
        ],
    );
    let unseal = |t: &Tools| {
        t.run_flush(
            "tpm2_startauthsession",
            &["--policy-session", "-S", "s.ctx"],
        );
        t.run_flush("tpm2_policypcr", &["-S", "s.ctx", "-l", "sha256:7"]);
        let r = t.try_run_flush(
            "tpm2_unseal",
            &["-p", "session:s.ctx", "-c", "seal.ctx", "-o", "out.dat"],
        );
        t.run_flush("tpm2_flushcontext", &["s.ctx"]);
        r
    };
    let r = unseal(&t);
    assert!(r.status.success(), "unseal failed: {}", r.stderr);
    assert_eq!(t.read("out.dat"), b"the disk key");
    // Change PCR 7: the policy no longer holds.
    t.run_flush(
        "tpm2_pcrextend",
        &[&format!("7:sha256={}", hex(&[7u8; 32]))],
    );
    std::fs::remove_file(t.path("out.dat")).unwrap();
    let r = unseal(&t);
    assert!(!r.status.success(), "unseal succeeded with a changed PCR");
    assert!(
        r.stderr.contains("0x99d") || r.stderr.to_lowercase().contains("policy"),
        "{}",
        r.stderr
    );
}

fn quote_and_checkquote(interface: &str) {
    let (_sim, t) = started(interface);
    t.run_flush("tpm2_createprimary", &["-C", "o", "-c", "prim.ctx"]);
    t.run_flush(
        "tpm2_create",
        &[
            "-C",
            "prim.ctx",
            "-G",
            "ecc256:ecdsa-sha256:null",
            "-a",
            "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign",
            "-u",
            "ak.pub",
            "-r",
            "ak.priv",
        ],
    );
    t.run_flush(
        "tpm2_load",
        &[
            "-C", "prim.ctx", "-u", "ak.pub", "-r", "ak.priv", "-c", "ak.ctx",
        ],
    );
    t.run_flush(
        "tpm2_readpublic",
        &["-c", "ak.ctx", "-f", "pem", "-o", "ak.pem"],
    );
    t.run_flush(
        "tpm2_quote",
        &[
            "-c",
            "ak.ctx",
            "-l",
            "sha256:0,1,2,10",
            "-q",
            "c0ffee01",
            "-m",
            "quote.msg",
            "-s",
            "quote.sig",
            "-o",
            "quote.pcrs",
            "-g",
            "sha256",
        ],
    );
    let check = |nonce: &str| {
        t.try_run_flush(
            "tpm2_checkquote",
            &[
                "-u",
                "ak.pem",
                "-m",
                "quote.msg",
                "-s",
                "quote.sig",
                "-f",
                "quote.pcrs",
                "-g",
                "sha256",
                "-q",
                nonce,
            ],
        )
    };
    let r = check("c0ffee01");
    assert!(r.status.success(), "checkquote failed: {}", r.stderr);
    assert!(!check("c0ffee02").status.success(), "wrong nonce accepted");
}

fn hash_matches_sha_crates(interface: &str) {
    let (_sim, t) = started(interface);
    let data = b"measured boot, measured once".repeat(20);
    t.write("data.bin", &data);
    for (alg, want) in [
        ("sha1", Sha1::digest(&data).to_vec()),
        ("sha256", Sha256::digest(&data).to_vec()),
        ("sha384", Sha384::digest(&data).to_vec()),
    ] {
        t.run_flush(
            "tpm2_hash",
            &[
                "-C",
                "o",
                "-g",
                alg,
                "-o",
                "digest.bin",
                "-t",
                "ticket.bin",
                "data.bin",
            ],
        );
        assert_eq!(t.read("digest.bin"), want, "{alg}");
    }
}

fn sign_and_verifysignature(interface: &str) {
    let (_sim, t) = started(interface);
    t.run_flush("tpm2_createprimary", &["-C", "o", "-c", "prim.ctx"]);
    t.run_flush(
        "tpm2_create",
        &[
            "-C", "prim.ctx", "-G", "ecc256", "-u", "key.pub", "-r", "key.priv",
        ],
    );
    t.run_flush(
        "tpm2_load",
        &[
            "-C", "prim.ctx", "-u", "key.pub", "-r", "key.priv", "-c", "key.ctx",
        ],
    );
    t.write("msg.dat", b"attest this");
    t.write("other.dat", b"attest that");
    t.run_flush(
        "tpm2_sign",
        &["-c", "key.ctx", "-g", "sha256", "-o", "sig.bin", "msg.dat"],
    );
    let verify = |msg: &str| {
        t.try_run_flush(
            "tpm2_verifysignature",
            &["-c", "key.ctx", "-g", "sha256", "-m", msg, "-s", "sig.bin"],
        )
    };
    let r = verify("msg.dat");
    assert!(r.status.success(), "verify failed: {}", r.stderr);
    assert!(
        !verify("other.dat").status.success(),
        "wrong message verified"
    );
}

fn encrypted_session(interface: &str) {
    let (_sim, t) = started(interface);
    t.run("tpm2_createprimary", &["-C", "o", "-c", "prim.ctx"]);
    // A salted HMAC session with command and response parameter encryption.
    t.run(
        "tpm2_startauthsession",
        &["--hmac-session", "-c", "prim.ctx", "-S", "enc.ctx"],
    );
    t.run(
        "tpm2_sessionconfig",
        &["enc.ctx", "--enable-encrypt", "--enable-decrypt"],
    );
    let cfg = t.run("tpm2_sessionconfig", &["enc.ctx"]);
    assert!(cfg.contains("encrypt") && cfg.contains("decrypt"), "{cfg}");
    t.run("tpm2_getrandom", &["-S", "enc.ctx", "-o", "r1.bin", "24"]);
    t.run("tpm2_getrandom", &["-S", "enc.ctx", "-o", "r2.bin", "24"]);
    let (a, b) = (t.read("r1.bin"), t.read("r2.bin"));
    assert_eq!((a.len(), b.len()), (24, 24));
    assert_ne!(a, b);
    // Parameter encryption of a command parameter: NV data written and read
    // back through the encrypted session.
    t.write("nv.bin", b"0123456789abcdef");
    t.run(
        "tpm2_nvdefine",
        &[
            "0x1500020",
            "-C",
            "o",
            "-s",
            "16",
            "-a",
            "ownerread|ownerwrite",
        ],
    );
    t.run(
        "tpm2_nvwrite",
        &[
            "0x1500020",
            "-C",
            "o",
            "-i",
            "nv.bin",
            "-P",
            "session:enc.ctx",
        ],
    );
    t.run(
        "tpm2_nvread",
        &[
            "0x1500020",
            "-C",
            "o",
            "-s",
            "16",
            "-o",
            "nvout.bin",
            "-P",
            "session:enc.ctx",
        ],
    );
    assert_eq!(t.read("nvout.bin"), b"0123456789abcdef");
    t.run("tpm2_flushcontext", &["enc.ctx"]);
}

#[test]
fn encrypted_session_tis() {
    encrypted_session("tis");
}

#[test]
fn encrypted_session_crb() {
    encrypted_session("crb");
}

/// Restarts keep NV contents and the seeds (same primary key); PCRs start
/// over, as after a power loss. The second run uses the other interface:
/// the state does not depend on it.
#[test]
fn restart_keeps_nv_and_primary_key() {
    let vtpm = Vtpm::new();
    let mut sim = Sim::provision(&vtpm, "tis");
    let mut t = Tools::new(&sim);
    t.run("tpm2_startup", &["-c"]);
    let before = t.run(
        "tpm2_createprimary",
        &["-C", "o", "-G", "rsa2048", "-c", "p.ctx"],
    );
    t.run("tpm2_flushcontext", &["-t"]);
    t.write("data.bin", b"survives restarts");
    t.run(
        "tpm2_nvdefine",
        &[
            "0x1500030",
            "-C",
            "o",
            "-s",
            "17",
            "-a",
            "ownerread|ownerwrite",
        ],
    );
    t.run("tpm2_nvwrite", &["0x1500030", "-C", "o", "-i", "data.bin"]);
    t.run(
        "tpm2_pcrextend",
        &[&format!("10:sha256={}", hex(&[1u8; 32]))],
    );
    sim.kill();
    drop(sim);

    for interface in ["tis", "crb"] {
        let sim = Sim::start_on(&vtpm, interface);
        t.retarget(&sim);
        t.run("tpm2_startup", &["-c"]);
        let after = t.run(
            "tpm2_createprimary",
            &["-C", "o", "-G", "rsa2048", "-c", "p.ctx"],
        );
        t.run("tpm2_flushcontext", &["-t"]);
        assert_eq!(
            yaml_value(&after, "rsa"),
            yaml_value(&before, "rsa"),
            "{interface}"
        );
        t.run(
            "tpm2_nvread",
            &["0x1500030", "-C", "o", "-s", "17", "-o", "out.bin"],
        );
        assert_eq!(t.read("out.bin"), b"survives restarts", "{interface}");
        let out = t.run("tpm2_pcrread", &["sha256:10"]);
        assert_eq!(pcr_from_output(&out, "sha256", 10), vec![0u8; 32]);
        assert!(sim.log().contains("holds permall"), "{}", sim.log());
    }
}

#[test]
fn seal_and_unseal_under_a_pcr_policy_tis() {
    seal_and_unseal_under_a_pcr_policy("tis");
}

#[test]
fn seal_and_unseal_under_a_pcr_policy_crb() {
    seal_and_unseal_under_a_pcr_policy("crb");
}

#[test]
fn quote_and_checkquote_tis() {
    quote_and_checkquote("tis");
}

#[test]
fn quote_and_checkquote_crb() {
    quote_and_checkquote("crb");
}

#[test]
fn hash_matches_sha_crates_tis() {
    hash_matches_sha_crates("tis");
}

#[test]
fn hash_matches_sha_crates_crb() {
    hash_matches_sha_crates("crb");
}

#[test]
fn sign_and_verifysignature_tis() {
    sign_and_verifysignature("tis");
}

#[test]
fn sign_and_verifysignature_crb() {
    sign_and_verifysignature("crb");
}
