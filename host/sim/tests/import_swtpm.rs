//! An swtpm state imported into svtpm's sealed format is the same TPM:
//! `swtpm_setup --tpm2 --createek` makes an (encrypted) state, swtpm serves
//! it and an NV index is written through it with tpm2-tools, then the state
//! is imported exactly as `svtpm-import-swtpm` does, and svtpm-sim serving
//! the imported state gives the same EK public areas (RSA at 0x81010001 and
//! ECC at 0x81010016, where swtpm_setup persists them) and the same NV
//! contents as swtpm did on the original.

mod harness;

use std::fs;
use std::path::Path;
use std::process::Command;

use harness::{hex, require, Sim, Swtpm, Tools, Vtpm};
use svtpm_store::import::import_to_dir;
use svtpm_store::keyfile::read_state_key;
use svtpm_store::swtpm::SwtpmKey;

const EK_RSA: &str = "0x81010001";
const EK_ECC: &str = "0x81010016";
const NV_INDEX: &str = "0x1500020";

/// `tpm2_readpublic` of `handle`: its printed description and the
/// TPM2B_PUBLIC it writes.
fn read_public(t: &Tools, handle: &str, file: &str) -> (String, Vec<u8>) {
    let text = t.run("tpm2_readpublic", &["-c", handle, "-o", file]);
    (text, t.read(file))
}

/// Every file in `dir` with its contents.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn imported_swtpm_state_serves_the_same_eks_and_nv_as_swtpm() {
    require("swtpm_setup", "swtpm-tools");
    require("swtpm_ioctl", "swtpm-tools");
    require("swtpm", "swtpm");
    let tmp = tempfile::tempdir().unwrap();
    let sw_dir = tmp.path().join("swtpm-state");
    fs::create_dir(&sw_dir).unwrap();
    let mut raw = [0u8; 16];
    getrandom(&mut raw);
    let sw_key = tmp.path().join("swtpm.key");
    fs::write(&sw_key, hex(&raw)).unwrap();
    let setup_log = tmp.path().join("setup.log");
    let st = Command::new("swtpm_setup")
        .args(["--tpm2", "--createek", "--tpmstate"])
        .arg(&sw_dir)
        .arg("--keyfile")
        .arg(&sw_key)
        .arg("--logfile")
        .arg(&setup_log)
        .status()
        .unwrap();
    let log = fs::read_to_string(&setup_log).unwrap_or_default();
    assert!(st.success(), "swtpm_setup failed: {log}");
    for h in [EK_RSA, EK_ECC] {
        assert!(log.contains(&format!("handle {h}")), "{log}");
    }

    // swtpm on the original state: read the EKs, write an NV index.
    let sw = Swtpm::serve(&sw_dir, Some(&sw_key));
    let t = Tools::for_tcti(sw.tcti());
    t.run("tpm2_startup", &["-c"]);
    let sw_rsa = read_public(&t, EK_RSA, "sw-rsa.pub");
    let sw_ecc = read_public(&t, EK_ECC, "sw-ecc.pub");
    let mut nv = [0u8; 48];
    getrandom(&mut nv);
    t.write("nv.bin", &nv);
    t.run(
        "tpm2_nvdefine",
        &[
            NV_INDEX,
            "-C",
            "o",
            "-s",
            "48",
            "-a",
            "ownerread|ownerwrite",
        ],
    );
    t.run("tpm2_nvwrite", &[NV_INDEX, "-C", "o", "-i", "nv.bin"]);
    t.run("tpm2_shutdown", &[]);
    sw.stop();
    let original = files(&sw_dir);

    // The import, as svtpm-import-swtpm does it.
    let vtpm = Vtpm::new();
    let swtpm_key = SwtpmKey::from_hex(&fs::read_to_string(&sw_key).unwrap()).unwrap();
    let done = import_to_dir(
        &sw_dir,
        Some(&swtpm_key),
        read_state_key(&vtpm.key_file()).unwrap(),
        &vtpm.state_dir(),
        &vtpm.guard_file(),
    )
    .unwrap();
    assert_eq!(done.generation, 1);
    assert_eq!(vtpm.recorded(), Some(1));
    assert!(done.blobs.iter().any(|(n, _)| n == "permall"), "{done:?}");
    assert_eq!(
        files(&sw_dir),
        original,
        "the import changed the swtpm state"
    );
    let sealed = fs::read(vtpm.slot('a')).unwrap();
    assert!(
        !sealed.windows(16).any(|w| w == &nv[..16]),
        "NV data in the clear"
    );

    // svtpm-sim on the imported state answers as swtpm did.
    let sim = Sim::start_on(&vtpm, "tis");
    let mut t = t;
    t.retarget(&sim);
    t.run("tpm2_startup", &["-c"]);
    let ours_rsa = read_public(&t, EK_RSA, "sim-rsa.pub");
    let ours_ecc = read_public(&t, EK_ECC, "sim-ecc.pub");
    assert!(sw_rsa.0.contains("rsa"), "{}", sw_rsa.0);
    assert_eq!(ours_rsa, sw_rsa, "RSA EK differs from swtpm's");
    assert_eq!(ours_ecc, sw_ecc, "ECC EK differs from swtpm's");
    t.run(
        "tpm2_nvread",
        &[NV_INDEX, "-C", "o", "-s", "48", "-o", "out.bin"],
    );
    assert_eq!(t.read("out.bin"), nv, "NV contents differ");
    assert!(
        sim.log().contains("generation 1 from slot A"),
        "{}",
        sim.log()
    );
}

fn getrandom(buf: &mut [u8]) {
    use std::io::Read;
    fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(buf)
        .unwrap();
}
