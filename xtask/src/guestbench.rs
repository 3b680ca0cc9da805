//! The guest section of `cargo xtask bench`: the same medium booted with
//! svtpm and with the swtpm baseline, TIS and CRB, in one run, and one
//! table comparing them.
//!
//! Each boot runs the guest's usual checks and then the check script's
//! benchmark (`svtpm.bench=<N>`, handed over as an SMBIOS OEM string so the
//! medium stays the same): back-to-back clock reads, `tpm2_pcrextend`
//! processes, and raw TPM2_PCR_Extend commands on `/dev/tpmrm0`. From the
//! console come the boot milestones (seconds from QEMU's start), the loops'
//! medians, and for svtpm the image's own lines: one per TPM command with
//! the exits since the previous command and the handling time, which the
//! benchmark's begin/end markers assign to a loop (svtpm writes them while
//! the guest is stopped, so the console keeps their order), and the exit
//! summary at the end of the run.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::acpi;
use crate::bench::median;
use crate::console::{self, BenchLoop, Event};
use crate::guest::Medium;
use crate::qemu::{self, Report, Tpm};
use crate::run::Interface;
use crate::steps;
use crate::workspace::Workspace;

/// Iterations per benchmark loop unless told otherwise.
pub const DEFAULT_ITERATIONS: u32 = 20;
/// The time limit of one benchmark boot.
const TIMEOUT: Duration = Duration::from_secs(420);
/// TPM2_CC_PCR_Extend.
const CC_PCR_EXTEND: u32 = 0x182;
/// The size of the raw loop's command (one sha256 digest, password session).
const RAW_EXTEND_BYTES: u32 = 65;

/// The set-ups in the order they boot: svtpm and its baseline alternate, so
/// a change in the machine's load hits both sides of a ratio alike.
pub const SETUPS: [(Tpm, Interface); 4] = [
    (Tpm::Svtpm, Interface::Tis),
    (Tpm::Swtpm, Interface::Tis),
    (Tpm::Svtpm, Interface::Crb),
    (Tpm::Swtpm, Interface::Crb),
];

/// One line svtpm logs per TPM command it executes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLog {
    /// The command code.
    pub cc: u32,
    /// The command's size in bytes.
    pub bytes: u32,
    /// The response code.
    pub rc: u32,
    /// Exits into the TPM window since the previous command executed (the
    /// previous response's read-out, this command's send and polling).
    pub exits: u64,
    /// Time svtpm spent in the exit that executed the command.
    pub us: u64,
}

/// The exit summary svtpm logs when the guest ends the run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExitTotals {
    /// Every exit of the run.
    pub all: u64,
    /// The run's length as svtpm measured it.
    pub run_ms: u64,
    /// Time spent handling exits.
    pub handling_ms: u64,
    /// Of which in the TPM window.
    pub window_ms: u64,
    /// Exits into the TPM window.
    pub window: u64,
}

/// `svtpm: TPM command 0x182 at locality 0: 65 bytes -> rc 0x0, 19 bytes;
/// 106 exits since the previous command; 320 us in the exit`.
pub fn parse_command_log(line: &str) -> Option<CommandLog> {
    let rest = &line[line.find("svtpm: TPM command 0x")? + "svtpm: TPM command 0x".len()..];
    let (cc, rest) = rest.split_once(" at locality ")?;
    let (_, rest) = rest.split_once(": ")?;
    let (bytes, rest) = rest.split_once(" bytes -> rc 0x")?;
    let (rc, rest) = rest.split_once(", ")?;
    let (_, rest) = rest.split_once(" bytes; ")?;
    let (exits, rest) = rest.split_once(" exits since the previous command; ")?;
    let (us, _) = rest.split_once(" us in the exit")?;
    Some(CommandLog {
        cc: u32::from_str_radix(cc, 16).ok()?,
        bytes: bytes.parse().ok()?,
        rc: u32::from_str_radix(rc, 16).ok()?,
        exits: exits.parse().ok()?,
        us: us.parse().ok()?,
    })
}

/// `svtpm: exits: 92488 in 38798 ms (handling 9121 ms, of which TPM window
/// 1919 ms); TPM window 79847, svtpm slot 0, ...`.
pub fn parse_exit_totals(line: &str) -> Option<ExitTotals> {
    let rest = &line[line.find("svtpm: exits: ")? + "svtpm: exits: ".len()..];
    let (all, rest) = rest.split_once(" in ")?;
    let (run_ms, rest) = rest.split_once(" ms (handling ")?;
    let (handling_ms, rest) = rest.split_once(" ms, of which TPM window ")?;
    let (window_ms, rest) = rest.split_once(" ms); TPM window ")?;
    let window = rest.split(',').next()?;
    Some(ExitTotals {
        all: all.parse().ok()?,
        run_ms: run_ms.parse().ok()?,
        handling_ms: handling_ms.parse().ok()?,
        window_ms: window_ms.parse().ok()?,
        window: window.trim().parse().ok()?,
    })
}

/// What svtpm logged during one benchmark loop.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoopExits {
    /// Every command executed between the loop's markers.
    pub commands: Vec<CommandLog>,
}

impl LoopExits {
    /// Median exits and handling time of the successful commands `cc` of
    /// `bytes` bytes.
    pub fn median_of(&self, cc: u32, bytes: u32) -> Option<(u64, u64)> {
        let pick: Vec<&CommandLog> = self
            .commands
            .iter()
            .filter(|c| c.cc == cc && c.bytes == bytes && c.rc == 0)
            .collect();
        let exits = median(pick.iter().map(|c| c.exits).collect())?;
        let us = median(pick.iter().map(|c| c.us).collect())?;
        Some((exits, us))
    }

    /// Commands and exits per iteration of an `n`-iteration loop.
    pub fn per_iteration(&self, n: u64) -> Option<(f64, f64)> {
        if n == 0 || self.commands.is_empty() {
            return None;
        }
        let exits: u64 = self.commands.iter().map(|c| c.exits).sum();
        Some((
            self.commands.len() as f64 / n as f64,
            exits as f64 / n as f64,
        ))
    }
}

fn secs(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64())
}

/// svtpm's command lines between each loop's begin and end markers.
pub fn loop_exits(lines: &[String], name: &str) -> LoopExits {
    let mut inside = false;
    let mut out = LoopExits::default();
    for line in lines {
        match console::parse(line) {
            Some(Event::BenchMark { begin, name: n }) if n == name => inside = begin,
            _ if inside => out.commands.extend(parse_command_log(line)),
            _ => {}
        }
    }
    out
}

/// One boot's results.
#[derive(Debug)]
pub struct Run {
    /// The boot.
    pub report: Report,
    /// Whether every guest check passed (the error otherwise).
    pub verdict: Result<(), String>,
}

impl Run {
    fn bench(&self, name: &str) -> Option<&BenchLoop> {
        self.report.summary.bench.iter().find(|b| b.name == name)
    }

    /// A loop's median minus the median of its control loop (`clock`: the
    /// two clock reads every sample includes; `raw-control`: those and the
    /// two `dd`s), in ms, negative when noise outweighs the difference;
    /// only when every iteration succeeded.
    fn net_ms(&self, name: &str, control: &str) -> Option<f64> {
        let b = self.bench(name).filter(|b| b.ok == b.n)?;
        let c = self.bench(control)?;
        Some((b.median_us as f64 - c.median_us as f64) / 1000.0)
    }

    fn exit_totals(&self) -> Option<ExitTotals> {
        self.report
            .lines
            .iter()
            .rev()
            .find_map(|l| parse_exit_totals(l))
    }
}

/// Boots every set-up of [`SETUPS`] with the benchmark on; an svtpm boot is
/// skipped (with the reason) when there is no image.
pub fn run_all(
    ws: &Workspace,
    medium: &Medium,
    image: Result<&Path, &str>,
    iterations: u32,
) -> Result<Vec<Run>> {
    let mut runs = Vec::new();
    for (tpm, interface) in SETUPS {
        let image = match (tpm, image) {
            (Tpm::Svtpm, Err(why)) => {
                println!("skipping svtpm {}: {why}", interface.as_arg());
                continue;
            }
            (Tpm::Svtpm, Ok(p)) => Some(p),
            (Tpm::Swtpm, _) => None,
        };
        let tables = match tpm {
            Tpm::Svtpm => Some(acpi::write_tables(
                &ws.target_dir().join("guest/acpi"),
                interface,
            )?),
            Tpm::Swtpm => None,
        };
        println!("\n== guest bench: {} {} ==", tpm.name(), interface.as_arg());
        let report = qemu::boot_with(
            ws,
            &qemu::Boot {
                medium: Some(medium),
                image,
                acpi: tables.as_ref(),
                append: match tpm {
                    Tpm::Svtpm => vec![qemu::EPHEMERAL.to_string()],
                    Tpm::Swtpm => Vec::new(),
                },
                ..qemu::Boot::new(tpm, interface, TIMEOUT)
            },
            "bench",
            &[
                "-smbios".to_string(),
                format!("type=11,value=svtpm.bench={iterations}"),
            ],
        )?;
        println!("{}", report.timing_line());
        let verdict = report
            .verdict(&qemu::required_checks(interface))
            .map_err(|e| format!("{e:#}"));
        runs.push(Run { report, verdict });
    }
    Ok(runs)
}

/// Fails unless every boot passed its checks and produced every loop with
/// all iterations successful.
pub fn check(runs: &[Run]) -> Result<()> {
    let mut problems = Vec::new();
    for r in runs {
        let who = format!("{} {}", r.report.tpm.name(), r.report.interface.as_arg());
        if let Err(e) = &r.verdict {
            problems.push(format!("{who}: {e}"));
        }
        for name in ["clock", "pcrextend", "raw-extend", "raw-control"] {
            match r.bench(name) {
                None => problems.push(format!("{who}: no result for the {name} loop")),
                Some(b) if b.ok != b.n => problems.push(format!(
                    "{who}: {name}: only {} of {} iterations succeeded",
                    b.ok, b.n
                )),
                Some(_) => {}
            }
        }
        if r.report.tpm == Tpm::Svtpm && r.exit_totals().is_none() {
            problems.push(format!("{who}: svtpm logged no exit summary"));
        }
    }
    if !problems.is_empty() {
        bail!("guest benchmark incomplete:\n  {}", problems.join("\n  "));
    }
    Ok(())
}

/// The comparison table: one row per measure, per interface svtpm, swtpm and
/// their ratio.
pub fn table(runs: &[Run], iterations: u32) -> String {
    let find = |tpm: Tpm, interface: Interface| {
        runs.iter()
            .find(|r| r.report.tpm == tpm && r.report.interface == interface)
    };
    type Measure = fn(&Run) -> Option<f64>;
    let timed: [(&str, Measure, u32); 8] = [
        (
            "UKI started by OVMF (s)",
            |r| secs(r.report.times.firmware_done),
            1,
        ),
        (
            "first userspace line (s)",
            |r| secs(r.report.times.userspace),
            1,
        ),
        (
            "checks summary (s)",
            |r| secs(r.report.times.checks_done),
            1,
        ),
        (
            "kernel uptime at userspace (s)",
            |r| r.report.summary.userspace_uptime,
            2,
        ),
        (
            "clock read pair, median (ms)",
            |r| r.bench("clock").map(|b| b.median_us as f64 / 1000.0),
            2,
        ),
        (
            "tpm2_pcrextend, median net (ms)",
            |r| r.net_ms("pcrextend", "clock"),
            2,
        ),
        (
            "dd pair, median (ms)",
            |r| r.bench("raw-control").map(|b| b.median_us as f64 / 1000.0),
            2,
        ),
        (
            "raw PCR_Extend, median net (ms)",
            |r| r.net_ms("raw-extend", "raw-control"),
            2,
        ),
    ];
    let svtpm_only: [(&str, Measure, u32); 6] = [
        (
            "raw PCR_Extend: window exits",
            |r| {
                loop_exits(&r.report.lines, "raw-extend")
                    .median_of(CC_PCR_EXTEND, RAW_EXTEND_BYTES)
                    .map(|(e, _)| e as f64)
            },
            0,
        ),
        (
            "raw PCR_Extend: svtpm time in exit (ms)",
            |r| {
                loop_exits(&r.report.lines, "raw-extend")
                    .median_of(CC_PCR_EXTEND, RAW_EXTEND_BYTES)
                    .map(|(_, us)| us as f64 / 1000.0)
            },
            2,
        ),
        (
            "tpm2_pcrextend: TPM commands",
            |r| {
                let n = r.bench("pcrextend")?.n;
                loop_exits(&r.report.lines, "pcrextend")
                    .per_iteration(n)
                    .map(|(c, _)| c)
            },
            1,
        ),
        (
            "tpm2_pcrextend: window exits",
            |r| {
                let n = r.bench("pcrextend")?.n;
                loop_exits(&r.report.lines, "pcrextend")
                    .per_iteration(n)
                    .map(|(_, e)| e)
            },
            0,
        ),
        (
            "whole run: window exits",
            |r| r.exit_totals().map(|t| t.window as f64),
            0,
        ),
        (
            "whole run: all exits",
            |r| r.exit_totals().map(|t| t.all as f64),
            0,
        ),
    ];
    let cell =
        |v: Option<f64>, prec: u32| v.map_or("-".to_string(), |v| format!("{v:.*}", prec as usize));
    let mut rows = vec![vec![
        "measure".to_string(),
        "svtpm TIS".into(),
        "swtpm TIS".into(),
        "ratio".into(),
        "svtpm CRB".into(),
        "swtpm CRB".into(),
        "ratio".into(),
    ]];
    for (name, f, prec) in timed {
        let mut row = vec![name.to_string()];
        for interface in [Interface::Tis, Interface::Crb] {
            let sv = find(Tpm::Svtpm, interface).and_then(f);
            let sw = find(Tpm::Swtpm, interface).and_then(f);
            let ratio = match (sv, sw) {
                (Some(a), Some(b)) if b > 0.0 => Some(a / b),
                _ => None,
            };
            row.push(cell(sv, prec));
            row.push(cell(sw, prec));
            row.push(ratio.map_or("-".to_string(), |r| format!("{r:.2}x")));
        }
        rows.push(row);
    }
    for (name, f, prec) in svtpm_only {
        let mut row = vec![format!("svtpm {name}")];
        for interface in [Interface::Tis, Interface::Crb] {
            row.push(cell(find(Tpm::Svtpm, interface).and_then(f), prec));
            row.push(String::new());
            row.push(String::new());
        }
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = format!(
        "guest benchmark: OVMF + Linux under QEMU TCG, same medium; times from QEMU's start; \
         loops of {iterations}; net = median minus the median of a control loop \
         (tpm2_pcrextend: the clock pair each sample includes; raw: clock pair and two dd's)\n"
    );
    for (i, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (j, c) in row.iter().enumerate() {
            if j == 0 {
                line.push_str(&format!("{c:<w$}", w = widths[j]));
            } else {
                line.push_str(&format!("  {c:>w$}", w = widths[j]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
        if i == 0 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
            out.push('\n');
        }
    }
    for r in runs {
        out.push_str(&format!(
            "{} {}: console log {} (QEMU ran {})\n",
            r.report.tpm.name(),
            r.report.interface.as_arg(),
            r.report.console_log.display(),
            steps::secs(r.report.times.end)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_and_summary_lines_parse() {
        let l = "svtpm: TPM command 0x182 at locality 0: 65 bytes -> rc 0x0, 19 bytes; \
                 106 exits since the previous command; 320 us in the exit";
        assert_eq!(
            parse_command_log(l),
            Some(CommandLog {
                cc: 0x182,
                bytes: 65,
                rc: 0,
                exits: 106,
                us: 320
            })
        );
        let l = "xx svtpm: TPM command 0x162 at locality 0: 14 bytes -> rc 0x910, 10 bytes; \
                 37 exits since the previous command; 125 us in the exit";
        assert_eq!(
            parse_command_log(l).map(|c| (c.cc, c.rc)),
            Some((0x162, 0x910))
        );
        // The per-code summary line is not a command line.
        assert_eq!(
            parse_command_log("svtpm: TPM command 0x182: 36 times, exits min 106 avg 407 max 431"),
            None
        );
        let l = "svtpm: exits: 92488 in 38798 ms (handling 9121 ms, of which TPM window 1919 ms); \
                 TPM window 79847, svtpm slot 0, CPUID 9831, MSR 51, I/O 2759, other 0";
        assert_eq!(
            parse_exit_totals(l),
            Some(ExitTotals {
                all: 92488,
                run_ms: 38798,
                handling_ms: 9121,
                window_ms: 1919,
                window: 79847
            })
        );
        assert_eq!(parse_exit_totals("svtpm: exits: many"), None);
    }

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn cmd(cc: u32, bytes: u32, exits: u64, us: u64) -> String {
        format!(
            "svtpm: TPM command {cc:#x} at locality 0: {bytes} bytes -> rc 0x0, 19 bytes; \
             {exits} exits since the previous command; {us} us in the exit"
        )
    }

    #[test]
    fn commands_are_assigned_to_the_loop_between_its_markers() {
        let l: Vec<String> = vec![
            cmd(0x182, 203, 431, 900),
            "SVTPM-BENCH begin raw-extend".into(),
            cmd(0x182, 65, 50, 300),
            cmd(0x182, 65, 30, 100),
            cmd(0x182, 65, 31, 200),
            cmd(0x17e, 20, 40, 100),
            "SVTPM-BENCH end raw-extend".into(),
            cmd(0x182, 65, 999, 999),
            "SVTPM-BENCH begin pcrextend".into(),
            cmd(0x17a, 22, 10, 1),
            cmd(0x182, 65, 20, 1),
            "SVTPM-BENCH end pcrextend".into(),
        ];
        let raw = loop_exits(&l, "raw-extend");
        assert_eq!(raw.commands.len(), 4);
        assert_eq!(raw.median_of(0x182, 65), Some((31, 200)));
        assert_eq!(raw.median_of(0x182, 203), None);
        let tools = loop_exits(&l, "pcrextend");
        assert_eq!(tools.per_iteration(1), Some((2.0, 30.0)));
        assert_eq!(tools.per_iteration(0), None);
        assert!(
            loop_exits(&lines(&["SVTPM-BENCH begin clock"]), "raw-extend")
                .commands
                .is_empty()
        );
    }
}
