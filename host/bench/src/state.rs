//! The cost of the sealed vTPM state (`svtpm::nvstate`, what every NV change
//! of the TPM becomes): sealing a `permall` blob, committing it through the
//! in-memory store and through `svtpm-store`'s `DirStore` (which fsyncs the
//! slot file and the directory), with and without the file generation guard
//! the simulator uses, and opening the state; the sizes of a fresh and of a
//! used TPM's `permall`, plain and sealed; commits per second.
//!
//! The blobs come from the real engine: a freshly manufactured TPM, and the
//! same TPM after defining NV indices and persisting keys.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use svtpm::engine::{Engine, MemStorage};
use svtpm::nvstate::entropy::Nonce;
use svtpm::nvstate::memory::MemoryStore;
use svtpm::nvstate::{
    seal, EntropySource, GenerationGuard, MemoryGuard, SlotStore, StateBlobs, StateKey, VtpmState,
};
use svtpm_store::{DirStore, FileGuard, OsEntropy};

use crate::commands as cmd;
use crate::stats;

/// NV indices the "used" TPM gets, each [`cmd::BENCH_NV_SIZE`] bytes.
const USED_NV_INDICES: u32 = 4;
/// Persistent keys the "used" TPM gets.
const USED_PERSISTENT: [u32; 2] = [0x8100_0001, 0x8100_0002];

/// One TPM's `permall`, plain and sealed.
#[derive(Debug, Clone, Serialize)]
pub struct SizeRow {
    /// "fresh" or "used".
    pub permall: &'static str,
    /// What "used" means.
    pub contents: String,
    /// The engine's blob.
    pub permall_bytes: usize,
    /// The sealed slot written to storage.
    pub sealed_bytes: usize,
}

/// One timed state operation.
#[derive(Debug, Clone, Serialize)]
pub struct StateRow {
    /// "seal", "commit" or "open".
    pub operation: &'static str,
    /// "fresh" or "used".
    pub permall: &'static str,
    /// Where the slots are.
    pub store: &'static str,
    pub iterations: u32,
    pub median_us: f64,
    pub p90_us: f64,
    /// Back-to-back operations per second over the whole timed loop.
    pub per_second: f64,
}

/// Everything measured here.
#[derive(Debug, Clone, Serialize)]
pub struct StateReport {
    /// Directory the `DirStore` rows wrote to.
    pub commit_dir: String,
    /// Its filesystem type (from /proc/mounts), if found.
    pub filesystem: Option<String>,
    pub sizes: Vec<SizeRow>,
    pub rows: Vec<StateRow>,
}

/// The two `permall` blobs of a real engine.
struct Permalls {
    fresh: Vec<u8>,
    used: Vec<u8>,
}

fn run(e: &mut Engine, command: &[u8]) -> Result<Vec<u8>> {
    let r = e.execute(0, command);
    cmd::expect_success(&r)?;
    Ok(r)
}

/// Manufactures a TPM on in-memory storage and takes its `permall`, then
/// uses it (NV indices written, keys made persistent) and takes it again.
fn permalls() -> Result<Permalls> {
    let storage = MemStorage::new();
    let mut e = Engine::start(Box::new(storage.clone())).context("starting the engine")?;
    run(&mut e, &cmd::startup_clear()).context("Startup")?;
    let fresh = storage
        .get("permall")
        .context("the manufactured TPM stored no permall")?;
    for i in 0..USED_NV_INDICES {
        let index = cmd::BENCH_NV_INDEX + 1 + i;
        run(&mut e, &cmd::nv_define_space(index, cmd::BENCH_NV_SIZE)).context("NV define")?;
        for (n, off) in (0..usize::from(cmd::BENCH_NV_SIZE))
            .step_by(cmd::NV_CHUNK)
            .enumerate()
        {
            let fill = [(i as u8) << 4 | n as u8; cmd::NV_CHUNK];
            run(&mut e, &cmd::nv_write(index, off as u16, &fill)).context("NV write")?;
        }
    }
    for p in USED_PERSISTENT {
        let h = cmd::created_handle(&e.execute(0, &cmd::create_primary_ecc_p256()))?;
        run(&mut e, &cmd::evict_control(h, p)).context("EvictControl")?;
        run(&mut e, &cmd::flush_context(h)).context("FlushContext")?;
    }
    let used = storage.get("permall").context("no permall after use")?;
    drop(e.stop());
    Ok(Permalls { fresh, used })
}

fn blobs_of(permall: &[u8]) -> Result<StateBlobs> {
    let mut b = StateBlobs::new();
    b.insert("permall", permall)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(b)
}

/// A fixed, non-zero benchmark key (it protects nothing).
fn bench_key() -> StateKey {
    StateKey::new(&[0xB3; 32]).expect("a non-zero key")
}

/// Times `n` calls of `op` (after a few untimed ones).
fn time_loop(n: u32, mut op: impl FnMut(u32) -> Result<()>) -> Result<(stats::Summary, f64)> {
    for i in 0..(n / 20).clamp(1, 5) {
        op(i)?;
    }
    let mut samples = Vec::with_capacity(n as usize);
    let all = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        op(i)?;
        samples.push(t.elapsed());
    }
    let total = all.elapsed().max(Duration::from_nanos(1));
    let s = stats::summarize(&samples).context("no samples")?;
    Ok((s, f64::from(n) / total.as_secs_f64()))
}

/// Commits alternately `a` and `b` (so every commit changes the state).
fn commits<S: SlotStore, G: GenerationGuard, E: EntropySource>(
    state: &mut VtpmState<S, G, E>,
    a: &[u8],
    b: &[u8],
    n: u32,
) -> Result<(stats::Summary, f64)> {
    time_loop(n, |i| {
        let data = if i % 2 == 0 { a } else { b };
        state
            .put("permall", data)
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("commit: {e}"))
    })
}

/// A scratch directory removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
        let _ = fs::remove_file(self.0.with_extension("guard"));
    }
}

/// The filesystem type of the mount holding `dir`, from /proc/mounts.
fn filesystem_of(dir: &Path) -> Option<String> {
    let dir = fs::canonicalize(dir).ok()?;
    let mounts = fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let (_, point, fstype) = (f.next()?, f.next()?, f.next()?);
            let point = point.replace("\\040", " ");
            dir.starts_with(&point)
                .then(|| (point.len(), fstype.to_string()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, t)| t)
}

fn row(
    operation: &'static str,
    permall: &'static str,
    store: &'static str,
    n: u32,
    (s, per_second): (stats::Summary, f64),
) -> StateRow {
    StateRow {
        operation,
        permall,
        store,
        iterations: n,
        median_us: s.median_us,
        p90_us: s.p90_us,
        per_second,
    }
}

/// Measures everything; `iterations` for in-memory work, a fifth of it
/// (at least 10) for work that fsyncs, in a scratch directory under
/// `commit_dir`.
pub fn measure(iterations: u32, commit_dir: &Path) -> Result<StateReport> {
    let p = permalls()?;
    let disk_n = (iterations / 5).max(10);
    let key = bench_key();
    let mut sizes = Vec::new();
    let mut rows = Vec::new();
    let scratch = Scratch(commit_dir.join(format!("svtpm-bench-state-{}", std::process::id())));
    for (name, permall) in [("fresh", &p.fresh), ("used", &p.used)] {
        let blobs = blobs_of(permall)?;
        let mut entropy = OsEntropy;
        let nonce = Nonce::draw(&mut entropy).map_err(|e| anyhow::anyhow!("{e}"))?;
        let sealed = seal::seal(&key, 1, &nonce, &blobs).map_err(|e| anyhow::anyhow!("{e}"))?;
        sizes.push(SizeRow {
            permall: name,
            contents: if name == "fresh" {
                "just manufactured".into()
            } else {
                format!(
                    "{USED_NV_INDICES} NV indices of {} bytes, {} persistent ECC keys",
                    cmd::BENCH_NV_SIZE,
                    USED_PERSISTENT.len()
                )
            },
            permall_bytes: permall.len(),
            sealed_bytes: sealed.len(),
        });

        rows.push(row(
            "seal",
            name,
            "-",
            iterations,
            time_loop(iterations, |_| {
                let nonce = Nonce::draw(&mut entropy).map_err(|e| anyhow::anyhow!("{e}"))?;
                seal::seal(&key, 2, &nonce, &blobs)
                    .map(drop)
                    .map_err(|e| anyhow::anyhow!("{e}"))
            })?,
        ));

        let mut other = permall.clone();
        if let Some(last) = other.last_mut() {
            *last ^= 1;
        }
        let mut mem = VtpmState::provision(
            key.clone(),
            MemoryStore::default(),
            MemoryGuard::new(),
            OsEntropy,
            blobs.clone(),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        rows.push(row(
            "commit",
            name,
            "memory",
            iterations,
            commits(&mut mem, &other, permall, iterations)?,
        ));

        for (store, with_guard) in [("dir (fsync)", false), ("dir + guard file", true)] {
            let _ = fs::remove_dir_all(&scratch.0);
            let _ = fs::remove_file(scratch.0.with_extension("guard"));
            let dir = DirStore::create(&scratch.0)
                .with_context(|| format!("creating {}", scratch.0.display()))?;
            let r = if with_guard {
                let guard = FileGuard::open(scratch.0.with_extension("guard"))?;
                let mut s = VtpmState::provision(key.clone(), dir, guard, OsEntropy, blobs.clone())
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                commits(&mut s, &other, permall, disk_n)?
            } else {
                let mut s = VtpmState::provision(
                    key.clone(),
                    dir,
                    MemoryGuard::new(),
                    OsEntropy,
                    blobs.clone(),
                )
                .map_err(|e| anyhow::anyhow!("{e}"))?;
                commits(&mut s, &other, permall, disk_n)?
            };
            rows.push(row("commit", name, store, disk_n, r));
        }

        // Both slots now hold a state: open reads and checks both.
        rows.push(row(
            "open (read + check 2 slots)",
            name,
            "dir",
            iterations,
            time_loop(iterations, |_| {
                let dir = DirStore::open(&scratch.0)?;
                VtpmState::open(key.clone(), dir, MemoryGuard::new(), OsEntropy)
                    .map(drop)
                    .map_err(|e| anyhow::anyhow!("open: {e}"))
            })?,
        ));
    }
    Ok(StateReport {
        commit_dir: commit_dir.display().to_string(),
        filesystem: filesystem_of(commit_dir),
        sizes,
        rows,
    })
}

/// Prints the report as two tables.
pub fn print(r: &StateReport) {
    println!("\nsealed state: sizes");
    println!(
        "{:<8} {:>14} {:>13} {:>9}  contents",
        "permall", "plain bytes", "sealed bytes", "overhead"
    );
    for s in &r.sizes {
        println!(
            "{:<8} {:>14} {:>13} {:>9}  {}",
            s.permall,
            s.permall_bytes,
            s.sealed_bytes,
            s.sealed_bytes as i64 - s.permall_bytes as i64,
            s.contents
        );
    }
    println!(
        "\nsealed state: operations (dir = {}, {})",
        r.commit_dir,
        r.filesystem.as_deref().unwrap_or("filesystem unknown")
    );
    println!(
        "{:<28} {:<8} {:<17} {:>6} {:>11} {:>11} {:>10}",
        "operation", "permall", "store", "iters", "median us", "p90 us", "per second"
    );
    for x in &r.rows {
        println!(
            "{:<28} {:<8} {:<17} {:>6} {:>11.1} {:>11.1} {:>10.0}",
            x.operation, x.permall, x.store, x.iterations, x.median_us, x.p90_us, x.per_second
        );
    }
    println!("commit = seal + write the other slot + flush (+ guard record). dir rows fsync the");
    println!("slot file and the directory; the guard file is the simulator's rollback record.");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_format_and_every_row_is_measured() {
        let _l = crate::targets::ENGINE_LOCK
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let tmp = std::env::temp_dir();
        let r = measure(10, &tmp).unwrap();
        let [fresh, used] = &r.sizes[..] else {
            panic!("{:?}", r.sizes)
        };
        assert!(used.permall_bytes > fresh.permall_bytes + 4 * 2048);
        for s in &r.sizes {
            // header 88 + tag 16 + count 2 + name length 1 + "permall" 7 +
            // data length 4.
            assert_eq!(s.sealed_bytes, s.permall_bytes + 88 + 16 + 2 + 1 + 7 + 4);
        }
        assert_eq!(r.rows.len(), 2 * 5);
        assert!(r
            .rows
            .iter()
            .all(|x| x.median_us > 0.0 && x.p90_us >= x.median_us && x.per_second > 0.0));
        assert!(r.filesystem.is_some());
        let leftovers = fs::read_dir(&tmp)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("svtpm-bench-state-{}", std::process::id()))
            })
            .count();
        assert_eq!(leftovers, 0, "scratch files left behind");
    }
}
