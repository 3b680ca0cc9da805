//! `cargo xtask fuzz`: runs the cargo-fuzz targets for a bounded time each and
//! reports executions and crash artifacts.
//!
//! libFuzzer's progress goes through a filter that drops the per-input NEW and
//! REDUCE lines (thousands in a fresh run) and keeps the rest; the execution
//! count and any artifact path are read from the same stream.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use anyhow::{bail, Context, Result};

use crate::packages::{self, Group};
use crate::steps::{self, Outcome, Steps};
use crate::toolchain::{self, FuzzToolchain};
use crate::workspace::Workspace;

/// The Debian packages fuzzing needs (the targets link libtpms).
pub const NEEDS: &[Group] = &[Group::Build];

/// Seconds libFuzzer lets one input run before reporting it as a hang.
const INPUT_TIMEOUT_SECS: u32 = 25;

/// The fuzz target names: `fuzz/fuzz_targets/*.rs`, sorted.
pub fn targets(ws: &Workspace) -> Result<Vec<String>> {
    targets_in(&ws.path("fuzz/fuzz_targets"))
}

/// The `*.rs` file stems in `dir`, sorted; none if `dir` does not exist.
fn targets_in(dir: &std::path::Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    for entry in entries {
        let path = entry
            .with_context(|| format!("listing {}", dir.display()))?
            .path();
        if path.extension().is_some_and(|e| e == "rs") {
            if let Some(stem) = path.file_stem() {
                names.push(stem.to_string_lossy().into_owned());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// What one fuzzing run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct RunReport {
    /// Inputs executed (the last count libFuzzer printed).
    execs: u64,
    /// Path of the crash/timeout/OOM input libFuzzer wrote, if any.
    artifact: Option<String>,
}

impl RunReport {
    /// Takes what it needs from one line of libFuzzer/cargo-fuzz output.
    fn observe(&mut self, line: &str) {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix('#') {
            if let Some(n) = rest.split_whitespace().next().and_then(|n| n.parse().ok()) {
                self.execs = n;
            }
        } else if let Some(rest) = line.strip_prefix("stat::number_of_executed_units:") {
            if let Ok(n) = rest.trim().parse() {
                self.execs = n;
            }
        } else if let Some(rest) = line.strip_prefix("Done ") {
            if let Some(n) = rest.split_whitespace().next().and_then(|n| n.parse().ok()) {
                self.execs = n;
            }
        }
        if let Some((_, path)) = line.split_once("Test unit written to ") {
            self.artifact = Some(path.trim().to_string());
        }
    }
}

/// Whether a line is per-input noise not worth printing.
fn is_noise(line: &str) -> bool {
    let Some(rest) = line.strip_prefix('#') else {
        return false;
    };
    let mut f = rest.split_whitespace();
    f.next().is_some_and(|n| n.parse::<u64>().is_ok()) && matches!(f.next(), Some("NEW" | "REDUCE"))
}

/// Builds and runs `only` (or every target) for `seconds` each.
pub fn fuzz(ws: &Workspace, only: Option<&str>, seconds: u32) -> Result<()> {
    let all = targets(ws)?;
    let chosen: Vec<String> = match only {
        Some(name) if all.iter().any(|t| t == name) => vec![name.to_string()],
        Some(name) => bail!(
            "no fuzz target `{name}`; fuzz/fuzz_targets has: {}",
            if all.is_empty() {
                "none".to_string()
            } else {
                all.join(", ")
            }
        ),
        None if all.is_empty() => bail!("fuzz/fuzz_targets has no targets yet"),
        None => all,
    };
    let mut s = Steps::new("fuzz");
    s.run("Debian packages", || packages::ensure(NEEDS))?;
    let mut tc = FuzzToolchain::Nightly;
    s.run("cargo-fuzz and a toolchain for it", || {
        tc = toolchain::ensure_fuzzing(ws)?;
        Ok(Outcome::Done)
    })?;
    s.run("build fuzz targets", || {
        let mut cmd = tc.cargo_fuzz(ws);
        cmd.arg("build");
        if let [one] = chosen.as_slice() {
            cmd.arg(one);
        }
        steps::run(&mut cmd)?;
        Ok(Outcome::Done)
    })?;
    let mut reports = Vec::new();
    for name in &chosen {
        let mut report = RunReport::default();
        let result = s.run(&format!("fuzz {name} for {seconds}s"), || {
            report = run_target(ws, tc, name, seconds)?;
            Ok(Outcome::Done)
        });
        reports.push((name.clone(), report, result));
    }
    println!("\nfuzz results ({seconds}s per target):");
    let mut failed = Vec::new();
    for (name, report, result) in &reports {
        let status = match (&report.artifact, result) {
            (Some(path), _) => format!("CRASH, input saved to {path}"),
            (None, Err(e)) => format!("FAILED: {e:#}"),
            (None, Ok(())) => "ok".to_string(),
        };
        println!("  {name:<20} {:>12} execs  {status}", report.execs);
        if report.artifact.is_some() || result.is_err() {
            failed.push(name.as_str());
        }
    }
    s.finish();
    if !failed.is_empty() {
        bail!("fuzzing found problems in: {}", failed.join(", "));
    }
    Ok(())
}

/// Runs one target, echoing filtered output; fails on a crash or a failed run.
fn run_target(ws: &Workspace, tc: FuzzToolchain, name: &str, seconds: u32) -> Result<RunReport> {
    let mut cmd = tc.cargo_fuzz(ws);
    cmd.args(["run", name, "--"])
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_SECS}"))
        .arg("-print_final_stats=1")
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped());
    let line = steps::describe(&cmd);
    println!("$ {line}");
    let mut child = cmd
        .spawn()
        .with_context(|| format!("could not start `{line}`"))?;
    let mut report = RunReport::default();
    if let Some(stderr) = child.stderr.take() {
        for l in BufReader::new(stderr).lines() {
            let l = l.context("reading the fuzzer's output")?;
            report.observe(&l);
            if !is_noise(&l) {
                eprintln!("{l}");
            }
        }
    }
    let status = child.wait().context("waiting for the fuzzer")?;
    if let Some(path) = &report.artifact {
        bail!(
            "{name} crashed after {} execs; input saved to {path}",
            report.execs
        );
    }
    if !status.success() {
        bail!("`{line}` failed ({status}) without writing a crash input");
    }
    println!("{name}: {} execs, no crash", report.execs);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_reads_execs_and_the_artifact() {
        let mut r = RunReport::default();
        for l in [
            "#2\tINITED cov: 14 ft: 14 corp: 1/1b exec/s: 0 rss: 33Mb",
            "#524288\tpulse  cov: 14 ft: 14 corp: 1/1b lim: 4096 exec/s: 262144 rss: 79Mb",
            "==4560== ERROR: libFuzzer: deadly signal",
            "artifact_prefix='/r/fuzz/artifacts/tis/'; Test unit written to /r/fuzz/artifacts/tis/crash-99",
        ] {
            r.observe(l);
        }
        assert_eq!(r.execs, 524288);
        assert_eq!(
            r.artifact.as_deref(),
            Some("/r/fuzz/artifacts/tis/crash-99")
        );
    }

    #[test]
    fn final_stats_win_over_the_last_progress_line() {
        let mut r = RunReport::default();
        r.observe("#848587\tDONE   cov: 14 ft: 14 corp: 1/1b lim: 4096 exec/s: 212146 rss: 103Mb");
        r.observe("Done 848590 runs in 4 second(s)");
        r.observe("stat::number_of_executed_units: 848591");
        assert_eq!(r.execs, 848591);
        assert_eq!(r.artifact, None);
    }

    #[test]
    fn only_per_input_lines_are_noise() {
        assert!(is_noise("#6\tNEW    cov: 15 ft: 15 corp: 2/2b lim: 4 exec/s: 0 rss: 33Mb L: 1/1 MS: 1 ChangeBit-"));
        assert!(is_noise("#50\tREDUCE cov: 20 ft: 20 corp: 3/3b"));
        assert!(!is_noise("#524288\tpulse  cov: 14 ft: 14"));
        assert!(!is_noise("#2\tINITED cov: 14"));
        assert!(!is_noise("==1== ERROR: libFuzzer: deadly signal"));
    }

    #[test]
    fn targets_are_the_rust_files_of_the_directory() {
        let dir = std::env::temp_dir().join(format!("xtask-fuzz-{}", std::process::id()));
        assert!(
            targets_in(&dir).unwrap().is_empty(),
            "a missing directory has no targets"
        );
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["tis.rs", "crb.rs", "README.md", "notes.rs.orig"] {
            std::fs::write(dir.join(f), "").unwrap();
        }
        let found = targets_in(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(found, ["crb", "tis"]);
    }
}
