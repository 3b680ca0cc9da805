//! Soak: thousands of NV writes through svtpm-sim's sealed state and dozens
//! of restarts, most of them a `kill -9` in the middle of a write. After
//! every restart each NV index must hold exactly what the TPM acknowledged
//! last, or the write that was in flight when the process died (nothing
//! else: no older value, no mixture, no refusal of the state). Most writes
//! and checks use a raw simulator-protocol client; tpm2-tools reads the
//! indices back every few restarts and at the end.
//!
//! Bounded in time: it stops starting new rounds after [`BUDGET`], and
//! fails if that left fewer than [`MIN_WRITES`] writes or
//! [`MIN_RESTARTS`] restarts. It prints what it did.

#[path = "../../../tests/common/mod.rs"]
mod common;
mod harness;

use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use harness::{Mssim, Sim, Tools, Vtpm};

/// Time after which no new round starts.
const BUDGET: Duration = Duration::from_secs(120);
/// Writes and restarts aimed for.
const TARGET_WRITES: u64 = 3000;
const TARGET_RESTARTS: u64 = 40;
/// Below these the run proves too little: fail.
const MIN_WRITES: u64 = 1000;
const MIN_RESTARTS: u64 = 20;

/// The NV indices written, each [`SIZE`] bytes.
const INDICES: [u32; 4] = [0x0150_1000, 0x0150_1001, 0x0150_1002, 0x0150_1003];
const SIZE: usize = 64;

const RC_RETRY: u32 = 0x922;
const STOP: u32 = 21;

/// xorshift64*: reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// TPM2_NV_DefineSpace: owner read/write, not subject to dictionary-attack
/// lockout (a `kill -9` is an unorderly shutdown, which counts against DA).
fn define(index: u32) -> Vec<u8> {
    let mut public = Vec::new();
    public.extend_from_slice(&index.to_be_bytes());
    public.extend_from_slice(&ALG_SHA256.to_be_bytes());
    // OWNERWRITE | OWNERREAD | NO_DA.
    public.extend_from_slice(&0x0202_0002u32.to_be_bytes());
    public.extend_from_slice(&0u16.to_be_bytes());
    public.extend_from_slice(&(SIZE as u16).to_be_bytes());
    let mut p = Vec::new();
    p.extend_from_slice(&0u16.to_be_bytes());
    p.extend_from_slice(&(public.len() as u16).to_be_bytes());
    p.extend_from_slice(&public);
    session_command(0x12A, &[RH_OWNER], &p)
}

/// TPM2_NV_Write of the whole index with owner authorization.
fn write(index: u32, data: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&(data.len() as u16).to_be_bytes());
    p.extend_from_slice(data);
    p.extend_from_slice(&0u16.to_be_bytes());
    session_command(0x137, &[RH_OWNER, index], &p)
}

/// TPM2_NV_Read of the whole index with owner authorization.
fn read(index: u32) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&(SIZE as u16).to_be_bytes());
    p.extend_from_slice(&0u16.to_be_bytes());
    session_command(0x14E, &[RH_OWNER, index], &p)
}

/// The value of write number `seq`: the number, then a pattern made from it.
fn value(seq: u64) -> Vec<u8> {
    let mut v = seq.to_le_bytes().to_vec();
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while v.len() < SIZE {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push(x as u8);
    }
    v
}

/// Sends `cmd`, resending on TPM_RC_RETRY; the response must be success.
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

/// What each index must hold: the last acknowledged value, or the one in
/// flight when the simulator was killed.
#[derive(Clone)]
struct Expected {
    acked: Vec<u8>,
    in_flight: Option<Vec<u8>>,
}

#[derive(Default, Debug)]
struct Counts {
    writes: u64,
    restarts: u64,
    kills_mid_write: u64,
    kills_idle: u64,
    clean_stops: u64,
    in_flight_durable: u64,
    in_flight_lost: u64,
    tool_checks: u64,
}

/// Checks every index against `model` through the raw client and settles
/// the writes that were in flight.
fn verify_raw(c: &mut Mssim, model: &mut [Expected], counts: &mut Counts, round: u64) {
    for (i, &index) in INDICES.iter().enumerate() {
        let got = nv_read_data(&send_ok(c, &read(index)));
        let e = &mut model[i];
        if got == e.acked {
            if e.in_flight.take().is_some() {
                counts.in_flight_lost += 1;
            }
        } else if e.in_flight.as_deref() == Some(&got[..]) {
            counts.in_flight_durable += 1;
            e.acked = e.in_flight.take().unwrap();
        } else {
            panic!(
                "round {round}: index {index:#x} holds write #{} but the last acknowledged \
                 was #{} (in flight: {:?})",
                u64::from_le_bytes(got[..8].try_into().unwrap()),
                u64::from_le_bytes(e.acked[..8].try_into().unwrap()),
                e.in_flight
                    .as_ref()
                    .map(|v| u64::from_le_bytes(v[..8].try_into().unwrap()))
            );
        }
    }
}

/// Reads every index with tpm2-tools and compares with `model` (settled).
fn verify_tools(t: &Tools, model: &[Expected], counts: &mut Counts) {
    for (i, &index) in INDICES.iter().enumerate() {
        let idx = format!("{index:#x}");
        t.run(
            "tpm2_nvread",
            &[&idx, "-C", "o", "-s", &SIZE.to_string(), "-o", "nv.bin"],
        );
        assert_eq!(t.read("nv.bin"), model[i].acked, "tpm2_nvread {idx}");
    }
    counts.tool_checks += 1;
}

#[test]
fn nv_writes_survive_restarts_and_kills_in_the_middle_of_writes() {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("soak seed {seed:#x}");
    let mut rng = Rng(seed);
    let start = Instant::now();
    let vtpm = Vtpm::new();
    let mut counts = Counts::default();
    let mut seq = 0u64;

    // Round 0: provision, define the indices, write each once.
    let mut sim = Sim::provision(&vtpm, "tis");
    let mut c = sim.client();
    send_ok(&mut c, &startup(SU_CLEAR));
    let mut model = Vec::new();
    for &index in &INDICES {
        send_ok(&mut c, &define(index));
        seq += 1;
        send_ok(&mut c, &write(index, &value(seq)));
        model.push(Expected {
            acked: value(seq),
            in_flight: None,
        });
        counts.writes += 1;
    }
    let mut tools = Tools::new(&sim);
    verify_tools(&tools, &model, &mut counts);

    let per_round = TARGET_WRITES / TARGET_RESTARTS;
    let mut round = 0u64;
    loop {
        round += 1;
        // A burst of acknowledged writes.
        let mut n = per_round / 2 + rng.below(per_round);
        // On a slow machine, restarts come first: keep bursts short while
        // the rounds left in the budget would not reach MIN_RESTARTS.
        let per_round_time = start.elapsed() / (round as u32);
        let left = BUDGET.saturating_sub(start.elapsed());
        if counts.restarts < MIN_RESTARTS
            && (left.as_secs_f64() / per_round_time.as_secs_f64().max(1e-3))
                < (MIN_RESTARTS - counts.restarts) as f64 * 1.5
        {
            n = n.min(10);
        }
        for _ in 0..n {
            let i = rng.below(INDICES.len() as u64) as usize;
            seq += 1;
            send_ok(&mut c, &write(INDICES[i], &value(seq)));
            model[i].acked = value(seq);
            counts.writes += 1;
        }
        // End the round: mostly a kill during a write.
        match rng.below(10) {
            0..=5 => {
                let i = rng.below(INDICES.len() as u64) as usize;
                seq += 1;
                let mut frame = 8u32.to_be_bytes().to_vec();
                frame.push(0);
                let cmd = write(INDICES[i], &value(seq));
                frame.extend_from_slice(&(cmd.len() as u32).to_be_bytes());
                frame.extend_from_slice(&cmd);
                c.cmd.write_all(&frame).unwrap();
                // Somewhere before, during or after the commit.
                std::thread::sleep(Duration::from_micros(rng.below(8000)));
                sim.kill();
                model[i].in_flight = Some(value(seq));
                counts.kills_mid_write += 1;
            }
            6..=7 => {
                sim.kill();
                counts.kills_idle += 1;
            }
            _ => {
                send_ok(&mut c, &shutdown(SU_CLEAR));
                c.platform.write_all(&STOP.to_be_bytes()).unwrap();
                let st = sim
                    .wait_exit(Duration::from_secs(30))
                    .expect("svtpm-sim exits on STOP");
                assert!(st.success(), "{st}");
                counts.clean_stops += 1;
            }
        }
        drop(c);
        drop(sim);
        counts.restarts += 1;

        let interface = if round.is_multiple_of(2) {
            "tis"
        } else {
            "crb"
        };
        sim = Sim::start_on(&vtpm, interface);
        c = sim.client();
        send_ok(&mut c, &startup(SU_CLEAR));
        verify_raw(&mut c, &mut model, &mut counts, round);
        if round.is_multiple_of(5) {
            tools.retarget(&sim);
            verify_tools(&tools, &model, &mut counts);
        }
        let done = counts.writes >= TARGET_WRITES && counts.restarts >= TARGET_RESTARTS;
        if done || start.elapsed() > BUDGET {
            break;
        }
    }
    tools.retarget(&sim);
    verify_tools(&tools, &model, &mut counts);
    let generation = vtpm.recorded().expect("guard records a generation");
    drop(c);
    drop(sim);

    let secs = start.elapsed().as_secs_f64();
    println!(
        "soak: {} acknowledged NV writes, {} restarts ({} kill -9 during a write, {} kill -9 \
         idle, {} clean STOP), in-flight writes found durable {} / lost {}, {} tpm2-tools \
         checks, state generation {generation}, {secs:.1} s ({:.0} writes/s)",
        counts.writes,
        counts.restarts,
        counts.kills_mid_write,
        counts.kills_idle,
        counts.clean_stops,
        counts.in_flight_durable,
        counts.in_flight_lost,
        counts.tool_checks,
        counts.writes as f64 / secs
    );
    assert!(
        counts.writes >= MIN_WRITES && counts.restarts >= MIN_RESTARTS,
        "too little done in {BUDGET:?}: {counts:?}"
    );
    assert!(
        generation >= counts.writes,
        "generation {generation} below the {} acknowledged writes",
        counts.writes
    );
    assert_eq!(
        counts.in_flight_durable + counts.in_flight_lost,
        counts.kills_mid_write,
        "every write in flight was settled"
    );
}
