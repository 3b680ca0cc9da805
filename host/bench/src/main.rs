//! svtpm-bench: per-command TPM latency along each path a command can take.
//!
//! For a fixed sequence of commands ([`workload::Op`]) it measures the median
//! and 90th percentile latency of:
//! - `engine`: the svtpm engine (libtpms) called directly;
//! - `tis`: the same engine behind the TIS register model, driven access by
//!   access by the Linux tpm_tis driver model;
//! - `crb`: the same behind the CRB register model and the Linux tpm_crb model;
//! - `swtpm`: Debian's swtpm, over its TCP server socket.
//!
//! It prints a table with each path's ratio to the engine alone and the MMIO
//! reads and writes per command of the TIS and CRB paths (each of which is a
//! VM exit in a real guest), and optionally writes the same as JSON.
//!
//! Then ([`state`]) it measures the sealed vTPM state: sealing and committing
//! a `permall` blob in memory and on disk with fsync, opening it, the blob
//! sizes of a fresh and a used TPM, and commits per second.

mod commands;
mod state;
mod stats;
mod swtpm;
mod targets;
mod workload;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use serde::Serialize;

use targets::Tpm;
use workload::Op;

/// What the numbers include, printed with them and stored in the JSON.
const NOTE: &str = "engine, tis and crb run in this process on the same statically linked \
libtpms, with in-memory NV storage; tis and crb add the register model and the Linux driver \
model, but not the VM exits a guest pays per MMIO access (see the MMIO columns). swtpm is \
Debian's swtpm (its own libtpms, a separate process): its times include a loopback TCP round \
trip per command and, for NV writes, writing its state file.";

/// Per-command TPM latency: engine direct, TIS and CRB under the Linux driver models, swtpm.
#[derive(Debug, Parser)]
#[command(name = "svtpm-bench")]
struct Cli {
    /// Iterations per command (CreatePrimary runs a tenth as many).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    iterations: u32,
    /// Paths to measure, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Backend::ALL)]
    backends: Vec<Backend>,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Directory for the sealed-state commit measurements (they fsync; use
    /// the disk the state will live on) [default: the system temp dir].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Skip the sealed-state measurements.
    #[arg(long)]
    no_state: bool,
}

/// A path a command can take to a TPM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Backend {
    /// The engine called directly.
    Engine,
    /// TIS register model + Linux tpm_tis driver model.
    Tis,
    /// CRB register model + Linux tpm_crb driver model.
    Crb,
    /// Debian's swtpm over TCP.
    Swtpm,
}

impl Backend {
    const ALL: [Backend; 4] = [Backend::Engine, Backend::Tis, Backend::Crb, Backend::Swtpm];

    fn name(self) -> &'static str {
        match self {
            Backend::Engine => "engine",
            Backend::Tis => "tis",
            Backend::Crb => "crb",
            Backend::Swtpm => "swtpm",
        }
    }

    fn start(self) -> Result<Box<dyn Tpm>> {
        Ok(match self {
            Backend::Engine => Box::new(targets::Direct::start()?),
            Backend::Tis => Box::new(targets::ViaTis::start()?),
            Backend::Crb => Box::new(targets::ViaCrb::start()?),
            Backend::Swtpm => Box::new(swtpm::Swtpm::start()?),
        })
    }
}

/// One command on one path.
#[derive(Debug, Clone, Serialize)]
struct Row {
    command: &'static str,
    backend: Backend,
    iterations: u32,
    median_us: f64,
    p90_us: f64,
    /// Median over the engine's median for the same command.
    ratio_to_engine: Option<f64>,
    /// MMIO accesses per operation (TIS and CRB only).
    mmio_reads: Option<f64>,
    mmio_writes: Option<f64>,
}

/// The JSON document.
#[derive(Debug, Serialize)]
struct Report<'a> {
    iterations: u32,
    note: &'static str,
    results: &'a [Row],
    /// The sealed-state measurements, unless skipped.
    state: Option<&'a state::StateReport>,
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("svtpm-bench: error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    let mut rows = Vec::new();
    for &backend in &cli.backends {
        let t = Instant::now();
        eprintln!("measuring {} ...", backend.name());
        rows.extend(
            measure_backend(backend, cli.iterations)
                .with_context(|| format!("measuring {}", backend.name()))?,
        );
        eprintln!(
            "measured {} in {:.1}s",
            backend.name(),
            t.elapsed().as_secs_f64()
        );
    }
    fill_ratios(&mut rows);
    print_table(&rows);
    let state = if cli.no_state {
        None
    } else {
        let t = Instant::now();
        eprintln!("measuring the sealed state ...");
        let dir = cli.state_dir.clone().unwrap_or_else(std::env::temp_dir);
        let r = state::measure(cli.iterations, &dir).context("measuring the sealed state")?;
        eprintln!(
            "measured the sealed state in {:.1}s",
            t.elapsed().as_secs_f64()
        );
        state::print(&r);
        Some(r)
    };
    if let Some(path) = &cli.json {
        let report = Report {
            iterations: cli.iterations,
            note: NOTE,
            results: &rows,
            state: state.as_ref(),
        };
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        println!("results written to {}", path.display());
    }
    Ok(())
}

/// Runs the whole sequence on a freshly started TPM of `backend`.
fn measure_backend(backend: Backend, iterations: u32) -> Result<Vec<Row>> {
    let mut tpm = backend.start()?;
    workload::prepare(tpm.as_mut())?;
    Op::ALL
        .iter()
        .map(|&op| measure(tpm.as_mut(), backend, op, iterations).with_context(|| op.name()))
        .collect()
}

/// Times `op` on `tpm`: a few warm-up runs, then the measured ones. Every
/// response must be a success, or the run fails.
fn measure(tpm: &mut dyn Tpm, backend: Backend, op: Op, configured: u32) -> Result<Row> {
    let n = op.iterations(configured);
    let warmup = (n / 20).clamp(1, 10);
    let mut samples: Vec<Duration> = Vec::with_capacity(n as usize);
    let (mut reads, mut writes) = (0u64, 0u64);
    for i in 0..warmup + n {
        let commands = op.commands(i);
        let before = tpm.mmio_counts();
        let start = Instant::now();
        let mut responses = Vec::with_capacity(commands.len());
        for c in &commands {
            responses.push(tpm.transact(c)?);
        }
        let took = start.elapsed();
        let after = tpm.mmio_counts();
        for r in &responses {
            commands::expect_success(r)?;
        }
        for c in op.cleanup(&responses)? {
            commands::expect_success(&tpm.transact(&c)?).context("cleanup")?;
        }
        if i >= warmup {
            samples.push(took);
            if let (Some(b), Some(a)) = (before, after) {
                reads += a.reads - b.reads;
                writes += a.writes - b.writes;
            }
        }
    }
    let s = stats::summarize(&samples).context("no samples")?;
    let per_op = |total: u64| tpm.mmio_counts().map(|_| total as f64 / f64::from(n));
    Ok(Row {
        command: op.name(),
        backend,
        iterations: n,
        median_us: s.median_us,
        p90_us: s.p90_us,
        ratio_to_engine: None,
        mmio_reads: per_op(reads),
        mmio_writes: per_op(writes),
    })
}

/// Sets each row's ratio to the engine row of the same command, if measured.
fn fill_ratios(rows: &mut [Row]) {
    let engine: Vec<(&'static str, f64)> = rows
        .iter()
        .filter(|r| r.backend == Backend::Engine)
        .map(|r| (r.command, r.median_us))
        .collect();
    for r in rows.iter_mut() {
        r.ratio_to_engine = engine
            .iter()
            .find(|(c, _)| *c == r.command)
            .filter(|(_, m)| *m > 0.0)
            .map(|(_, m)| r.median_us / m);
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "\n{:<26} {:<7} {:>6} {:>11} {:>11} {:>8} {:>10} {:>10}",
        "command", "path", "iters", "median us", "p90 us", "x engine", "MMIO rd", "MMIO wr"
    );
    let opt = |v: Option<f64>, prec: usize| v.map_or("-".to_string(), |v| format!("{v:.prec$}"));
    for op in Op::ALL {
        for r in rows.iter().filter(|r| r.command == op.name()) {
            println!(
                "{:<26} {:<7} {:>6} {:>11.1} {:>11.1} {:>8} {:>10} {:>10}",
                r.command,
                r.backend.name(),
                r.iterations,
                r.median_us,
                r.p90_us,
                opt(r.ratio_to_engine, 2),
                opt(r.mmio_reads, 0),
                opt(r.mmio_writes, 0),
            );
        }
    }
    println!("\nMMIO rd/wr: register accesses per operation (each is a VM exit in a guest).");
    println!("{}", textwrap(NOTE, 100));
}

/// Breaks `text` into lines of at most `width` characters at spaces.
fn textwrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = 0;
    for word in text.split_whitespace() {
        if line > 0 && line + 1 + word.len() > width {
            out.push('\n');
            line = 0;
        } else if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(word);
        line += word.len();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(command: &'static str, backend: Backend, median_us: f64) -> Row {
        Row {
            command,
            backend,
            iterations: 1,
            median_us,
            p90_us: median_us,
            ratio_to_engine: None,
            mmio_reads: None,
            mmio_writes: None,
        }
    }

    #[test]
    fn ratios_are_to_the_engine_row_of_the_same_command() {
        let mut rows = vec![
            row("a", Backend::Engine, 10.0),
            row("b", Backend::Engine, 4.0),
            row("a", Backend::Tis, 25.0),
            row("b", Backend::Swtpm, 2.0),
            row("c", Backend::Crb, 1.0),
        ];
        fill_ratios(&mut rows);
        let ratios: Vec<Option<f64>> = rows.iter().map(|r| r.ratio_to_engine).collect();
        assert_eq!(ratios, [Some(1.0), Some(1.0), Some(2.5), Some(0.5), None]);
    }

    #[test]
    fn wrapping_keeps_words_and_width() {
        let w = textwrap("aaa bbb ccc ddd", 7);
        assert_eq!(w, "aaa bbb\nccc ddd");
    }

    #[test]
    fn every_command_succeeds_on_the_in_process_paths_and_mmio_is_counted() {
        // One test for all three: only one engine may run at a time.
        let _l = targets::ENGINE_LOCK
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut by_backend = Vec::new();
        for backend in [Backend::Engine, Backend::Tis, Backend::Crb] {
            let rows = measure_backend(backend, 3).unwrap();
            assert_eq!(rows.len(), Op::ALL.len());
            by_backend.push(rows);
        }
        let hash = Op::ALL.iter().position(|&o| o == Op::Hash1KiB).unwrap();
        let hash_len = Op::Hash1KiB.commands(0)[0].len() as f64;
        let [engine, tis, crb] = &by_backend[..] else {
            unreachable!()
        };
        assert!(engine.iter().all(|r| r.mmio_reads.is_none()));
        // tpm_tis writes the FIFO one byte at a time: at least one write per byte.
        let tis_writes = tis[hash].mmio_writes.unwrap();
        assert!(tis_writes >= hash_len, "{tis_writes} < {hash_len}");
        // tpm_crb copies with rep movsl: far fewer writes than bytes.
        let crb_writes = crb[hash].mmio_writes.unwrap();
        assert!(crb_writes < hash_len / 2.0, "{crb_writes}");
        assert!(tis.iter().chain(crb).all(|r| r.mmio_reads.unwrap() > 0.0));
    }

    #[test]
    fn every_command_succeeds_on_swtpm() {
        let rows = measure_backend(Backend::Swtpm, 3).unwrap();
        assert_eq!(rows.len(), Op::ALL.len());
        assert!(rows
            .iter()
            .all(|r| r.median_us > 0.0 && r.p90_us >= r.median_us));
    }
}
