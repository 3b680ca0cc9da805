//! The simulator protocol itself, with a raw client: handshake, power
//! signals, localities, hash sequences, STOP, and bad input (which must
//! close the offending connection while the server and the TPM state carry
//! on).

#[path = "../../../tests/common/mod.rs"]
mod common;
mod harness;

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use common::*;
use harness::{closed_by_peer, read_u32, Mssim, Sim, Vtpm};
use sha2::{Digest, Sha256};

const POWER_ON: u32 = 1;
const POWER_OFF: u32 = 2;
const HASH_START: u32 = 5;
const HASH_DATA: u32 = 6;
const HASH_END: u32 = 7;
const NV_ON: u32 = 11;
const HANDSHAKE: u32 = 15;
const RESET: u32 = 17;
const STOP: u32 = 21;
/// TPM_RC_RETRY.
const RC_RETRY: u32 = 0x922;

/// Sends at locality 0 and expects success, resending on TPM_RC_RETRY as
/// TSS stacks do (the reference TPM answers some session commands after an
/// NV change with it; swtpm does the same, see the differential test).
fn send_ok(c: &mut Mssim, cmd: &[u8]) -> Vec<u8> {
    for _ in 0..5 {
        let r = c.send(0, cmd);
        if header(&r).rc != RC_RETRY {
            expect_ok(&r);
            return r;
        }
    }
    panic!("TPM_RC_RETRY five times");
}

/// A simulator with a raw client, past POWER_ON and Startup(CLEAR).
fn started(interface: &str) -> (Sim, Mssim) {
    let sim = Sim::start(interface);
    let mut c = sim.client();
    assert_eq!(c.signal(POWER_ON), 0);
    assert_eq!(c.signal(NV_ON), 0);
    expect_ok(&c.send(0, &startup(SU_CLEAR)));
    (sim, c)
}

fn raw_cmd_connection(sim: &Sim) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", sim.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

#[test]
fn handshake_reports_version_and_flags() {
    let sim = Sim::start("tis");
    let mut s = raw_cmd_connection(&sim);
    s.write_all(&HANDSHAKE.to_be_bytes()).unwrap();
    s.write_all(&1u32.to_be_bytes()).unwrap();
    assert_eq!(read_u32(&mut s), 1, "server version");
    assert_eq!(read_u32(&mut s), 0x0D, "platform available | raw mode | PP");
    assert_eq!(read_u32(&mut s), 0, "ack");
}

#[test]
fn bad_input_closes_only_that_connection_and_keeps_the_state() {
    let (mut sim, mut c) = started("tis");
    let digest = Sha256::digest(b"before the attack").to_vec();
    expect_ok(&c.send(0, &pcr_extend(16, ALG_SHA256, &digest)));
    let want = pcr_value(&c.send(0, &pcr_read(16, ALG_SHA256)));

    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    cases.push(("unknown command code", 99u32.to_be_bytes().to_vec()));
    let mut big = 8u32.to_be_bytes().to_vec();
    big.push(0);
    big.extend_from_slice(&4097u32.to_be_bytes());
    cases.push(("command of 4097 bytes", big));
    let mut huge = 8u32.to_be_bytes().to_vec();
    huge.push(0);
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    cases.push(("command of 4 GiB", huge));
    let mut truncated = 8u32.to_be_bytes().to_vec();
    truncated.push(0);
    truncated.extend_from_slice(&100u32.to_be_bytes());
    truncated.extend_from_slice(&[0x80, 0x01, 0, 0, 0, 100, 0, 0, 1, 0x7B]);
    cases.push(("truncated command", truncated));
    let mut bad_loc = 8u32.to_be_bytes().to_vec();
    bad_loc.push(7);
    bad_loc.extend_from_slice(&12u32.to_be_bytes());
    bad_loc.extend_from_slice(&get_random(8));
    cases.push(("locality 7", bad_loc));
    let mut shake0 = HANDSHAKE.to_be_bytes().to_vec();
    shake0.extend_from_slice(&0u32.to_be_bytes());
    cases.push(("client version 0", shake0));
    cases.push(("half a code", vec![0, 0]));
    cases.push(("garbage", (0..200u8).map(|i| i.wrapping_mul(151)).collect()));

    for (what, bytes) in &cases {
        let mut s = raw_cmd_connection(&sim);
        s.write_all(bytes).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        assert!(closed_by_peer(&mut s), "{what}: connection left open");
        assert!(sim.alive(), "{what}: server died");
    }
    // The platform port answers 1 to an unknown signal, then closes.
    let mut p = TcpStream::connect(("127.0.0.1", sim.port + 1)).unwrap();
    p.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    p.write_all(&99u32.to_be_bytes()).unwrap();
    assert_eq!(read_u32(&mut p), 1);
    assert!(closed_by_peer(&mut p));

    // The earlier client is still served, and the TPM was not restarted.
    assert_eq!(pcr_value(&c.send(0, &pcr_read(16, ALG_SHA256))), want);
    let mut fresh = sim.client();
    assert_eq!(pcr_value(&fresh.send(0, &pcr_read(16, ALG_SHA256))), want);
    let log = sim.log();
    for needle in [
        "unknown command code 99",
        "of 4097 bytes exceeds 4096",
        "in the middle of",
        "bad locality 7",
        "bad client version 0",
    ] {
        assert!(log.contains(needle), "log lacks {needle:?}:\n{log}");
    }
    assert_eq!(log.matches("power on #").count(), 1, "{log}");
}

#[test]
fn power_off_drops_volatile_state_and_power_on_restarts() {
    let (sim, mut c) = started("crb");
    send_ok(&mut c, &nv_define_space(0x0150_0001, 8));
    send_ok(&mut c, &nv_write(0x0150_0001, b"nv stays", 0));
    send_ok(&mut c, &pcr_extend(16, ALG_SHA256, &[9u8; 32]));
    assert_eq!(c.signal(POWER_OFF), 0);
    assert!(
        c.send(0, &get_random(8)).is_empty(),
        "powered-off TPM answered"
    );
    assert_eq!(c.signal(POWER_ON), 0);
    assert_eq!(header(&c.send(0, &get_random(8))).rc, RC_INITIALIZE);
    expect_ok(&c.send(0, &startup(SU_CLEAR)));
    assert_eq!(
        pcr_value(&c.send(0, &pcr_read(16, ALG_SHA256))),
        vec![0u8; 32]
    );
    let r = send_ok(&mut c, &nv_read(0x0150_0001, 8, 0));
    assert_eq!(nv_read_data(&r), b"nv stays");
    // POWER_ON while on changes nothing (every mssim client sends it).
    assert_eq!(c.signal(POWER_ON), 0);
    assert_eq!(random_bytes(&c.send(0, &get_random(8))).len(), 8);
    // RESET is a _TPM_Init: Startup is needed again.
    assert_eq!(c.signal(RESET), 0);
    assert_eq!(header(&c.send(0, &get_random(8))).rc, RC_INITIALIZE);
    let log = sim.log();
    assert!(log.contains("power off"), "{log}");
    assert_eq!(log.matches("power on #").count(), 3, "{log}");
}

#[test]
fn locality_reaches_the_tpm() {
    for interface in ["tis", "crb"] {
        let (_sim, mut c) = started(interface);
        // PCR 17 (DRTM) cannot be extended from locality 0 but can from 4.
        let d = [0x17u8; 32];
        assert_eq!(
            header(&c.send(0, &pcr_extend(17, ALG_SHA256, &d))).rc,
            RC_LOCALITY,
            "{interface}"
        );
        expect_ok(&c.send(4, &pcr_extend(17, ALG_SHA256, &d)));
    }
}

#[test]
fn hash_sequence_measures_into_pcr17() {
    let (sim, mut c) = started("tis");
    let data = b"DRTM payload".repeat(100);
    let mut s = raw_cmd_connection(&sim);
    s.write_all(&HASH_START.to_be_bytes()).unwrap();
    assert_eq!(read_u32(&mut s), 0);
    for chunk in data.chunks(500) {
        s.write_all(&HASH_DATA.to_be_bytes()).unwrap();
        s.write_all(&(chunk.len() as u32).to_be_bytes()).unwrap();
        s.write_all(chunk).unwrap();
        assert_eq!(read_u32(&mut s), 0);
    }
    s.write_all(&HASH_END.to_be_bytes()).unwrap();
    assert_eq!(read_u32(&mut s), 0);
    // _TPM_Hash_Start resets PCR 17 to zero; _TPM_Hash_End extends the digest.
    let mut h = Sha256::new();
    h.update([0u8; 32]);
    h.update(Sha256::digest(&data));
    assert_eq!(
        pcr_value(&c.send(0, &pcr_read(17, ALG_SHA256))),
        h.finalize().to_vec()
    );
}

#[test]
fn stop_ends_the_server_and_the_state_reloads() {
    let vtpm = Vtpm::new();
    let mut sim = Sim::provision(&vtpm, "tis");
    let mut c = sim.client();
    expect_ok(&c.send(0, &startup(SU_CLEAR)));
    let (h, public) = created_public(&c.send(0, &create_primary_ecc(RH_OWNER)));
    expect_ok(&c.send(0, &flush_context(h)));
    c.platform.write_all(&STOP.to_be_bytes()).unwrap();
    let status = sim
        .wait_exit(Duration::from_secs(10))
        .expect("server exits on STOP");
    assert!(status.success(), "{status}");
    assert!(vtpm.slot('a').is_file() && vtpm.slot('b').is_file());
    assert!(vtpm.recorded().unwrap() >= 2, "manufacture was committed");

    let sim = Sim::start_on(&vtpm, "crb");
    let mut c = sim.client();
    expect_ok(&c.send(0, &startup(SU_CLEAR)));
    let (_, again) = created_public(&c.send(0, &create_primary_ecc(RH_OWNER)));
    assert_eq!(again, public, "the owner seed changed across a restart");
}

#[test]
fn storage_failure_stops_the_tpm_and_a_power_cycle_resumes_the_durable_state() {
    let (mut sim, mut c) = started("tis");
    send_ok(&mut c, &nv_define_space(0x0150_0001, 4));
    send_ok(&mut c, &nv_write(0x0150_0001, b"abcd", 0));
    // Directories where the slot files' temporary copies must go make
    // every commit fail.
    let obstacles: Vec<_> = ["a", "b"]
        .iter()
        .map(|s| sim.state_dir.join(format!(".slot-{s}.svtpm.tmp")))
        .collect();
    for o in &obstacles {
        std::fs::create_dir(o).unwrap();
    }
    let r = c.send(0, &nv_define_space(0x0150_0002, 4));
    assert_eq!(header(&r).rc, 0x101, "TPM_RC_FAILURE after a failed store");
    assert_eq!(header(&c.send(0, &get_random(4))).rc, 0x101, "failure mode");
    assert!(sim.alive());
    let log = sim.log();
    assert!(log.contains("state: storing permall failed"), "{log}");

    for o in &obstacles {
        std::fs::remove_dir(o).unwrap();
    }
    assert_eq!(c.signal(POWER_OFF), 0);
    assert_eq!(c.signal(POWER_ON), 0);
    expect_ok(&c.send(0, &startup(SU_CLEAR)));
    let r = send_ok(&mut c, &nv_read(0x0150_0001, 4, 0));
    assert_eq!(nv_read_data(&r), b"abcd");
    let public = command(ST_NO_SESSIONS, 0x169, &0x0150_0002u32.to_be_bytes());
    assert_ne!(
        header(&c.send(0, &public)).rc,
        RC_SUCCESS,
        "the definition that was never stored exists"
    );
    // The power-on read the state from disk again.
    assert_eq!(sim.log().matches("other slot").count(), 1, "{}", sim.log());
}

#[test]
fn commands_beyond_the_crb_buffer_fail_in_the_driver_not_the_tpm() {
    // 4000 bytes: within the protocol's 4096 but beyond the CRB data buffer
    // (0xF80 bytes). A GetRandom with trailing bytes, so the TPM itself
    // would answer TPM_RC_SIZE.
    let cmd = command(ST_NO_SESSIONS, 0x17B, &vec![0u8; 3990]);
    assert_eq!(cmd.len(), 4000);
    let (sim, mut c) = started("crb");
    assert_eq!(header(&c.send(0, &cmd)).rc, RC_COMMAND_SIZE);
    assert!(sim.log().contains("does not fit"), "{}", sim.log());
    // The interface is still usable.
    assert_eq!(random_bytes(&c.send(0, &get_random(8))).len(), 8);
    // Through TIS the same command reaches the TPM.
    let (_sim, mut c) = started("tis");
    assert_eq!(
        header(&c.send(0, &cmd)).rc,
        0x95,
        "TPM_RC_SIZE from the TPM"
    );
}

/// TPM_PT_MAX_COMMAND_SIZE as the TPM reports it.
fn max_command_size(c: &mut Mssim) -> u32 {
    let p = expect_ok(&c.send(0, &get_capability(6, 0x11E, 1))).to_vec();
    // moreData u8, capability u32, count u32, property u32, value u32.
    assert_eq!(&p[9..13], &0x11Eu32.to_be_bytes(), "{p:02x?}");
    u32::from_be_bytes([p[13], p[14], p[15], p[16]])
}

#[test]
fn the_tpm_advertises_what_the_interface_carries() {
    // Clients size commands by TPM_PT_MAX_COMMAND_SIZE; behind CRB that must
    // not exceed the 0xF80-byte data buffer.
    let (_sim, mut c) = started("crb");
    assert_eq!(max_command_size(&mut c), 0xF80);
    let (_sim, mut c) = started("tis");
    assert!(max_command_size(&mut c) > 0xF80);
}
