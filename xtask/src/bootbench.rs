//! The boot section of `cargo xtask bench`: how long the attested boot
//! takes from power-on to the guest's first instruction, and where the
//! time goes (host channel, attestation, key release, opening the sealed
//! state, starting the engine), from the image's `boot-time` lines.
//!
//! On a stack directory of its own (`target/svtpm-bench/`, a new vTPM each
//! run) it boots the image with OVMF and a tiny disk whose `startup.nsh`
//! ends the run through isa-debug-exit as soon as OVMF's shell runs, so
//! every boot ends cleanly after the guest started: first the boot that
//! provisions the vTPM, then N boots that open its state, then N boots of
//! the in-memory TPM (`svtpm.state=ephemeral`) for the engine's start
//! without a sealed state. Medians of the N boots, one table.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::bench::median;
use crate::hosttools::{self, HostTools};
use crate::imagelog::{ImageBoot, PHASES};
use crate::interrupt;
use crate::qemu::{self, Tpm};
use crate::run::Interface;
use crate::stack::{self, Stack, StackDir};
use crate::steps;
use crate::workspace::Workspace;

/// Boots per kind unless told otherwise.
pub const DEFAULT_RUNS: u32 = 3;
/// One boot to OVMF's shell takes well under this.
const TIMEOUT: Duration = Duration::from_secs(240);
/// QEMU's status when the guest ends the run through isa-debug-exit.
const GUEST_EXIT: i32 = 33;
/// The shell line that writes 0x10 to isa-debug-exit.
const EXIT_LINE: &str = "mm F4 10 -w 1 -IO -n";

/// Every boot of the section.
#[derive(Debug, Default)]
pub struct Boots {
    /// The boot that provisioned the vTPM.
    pub provision: Option<ImageBoot>,
    /// The boots that opened its state.
    pub attested: Vec<ImageBoot>,
    /// The in-memory TPM's boots.
    pub ephemeral: Vec<ImageBoot>,
}

/// Runs the boots (`runs` of each kind after the provisioning one).
pub fn run(ws: &Workspace, image: &Path, runs: u32) -> Result<Boots> {
    interrupt::install()?;
    let tools = HostTools::build(ws, hosttools::ALL)?;
    let dir = StackDir::new(ws.target_dir().join("svtpm-bench"));
    if dir.root().exists() {
        std::fs::remove_dir_all(dir.root())
            .with_context(|| format!("clearing {}", dir.root().display()))?;
    }
    dir.ensure_base(&tools)?;
    dir.write_policy(&[tools.measure(image)?])?;
    let (id, _) = dir.ensure_vtpm(&tools, None)?;
    let esp = dir.root().join("esp");
    steps::run(
        ws.command("bash")
            .arg(ws.path("tests/image/make-esp.sh"))
            .arg(&esp)
            .arg("--")
            .arg(EXIT_LINE),
    )?;
    let disk = vec![
        "-drive".to_string(),
        format!(
            "if=virtio,format=raw,readonly=on,file=fat:{}",
            esp.display()
        ),
    ];
    let mut boots = Boots::default();
    let total = 1 + 2 * runs;
    for n in 0..total {
        interrupt::check()?;
        let attested = n <= runs;
        let what = match n {
            0 => "provisioning boot".to_string(),
            n if attested => format!("attested boot {n}/{runs}"),
            n => format!("in-memory TPM boot {}/{runs}", n - runs),
        };
        println!("\n== boot bench: {what} ==");
        let logs = dir.root().join(format!("boot{n}"));
        let b = if attested {
            let cfg = stack::Config {
                logs: logs.clone(),
                ..stack::Config::on(&dir, image, &id)
            };
            let mut stack = Stack::start(&tools, &cfg)?;
            let r = qemu::boot_into(
                ws,
                &qemu::Boot {
                    image: Some(image),
                    append: stack::attested_cmdline(&id),
                    hostchan: Some(stack.hostchan()),
                    epoch: Some(stack.epoch),
                    ..qemu::Boot::new(Tpm::Svtpm, Interface::Crb, TIMEOUT)
                },
                &logs,
                &disk,
            )?;
            stack.stop();
            checked(&r, &what)?
        } else {
            let r = qemu::boot_into(
                ws,
                &qemu::Boot {
                    image: Some(image),
                    append: vec![qemu::EPHEMERAL.to_string()],
                    ..qemu::Boot::new(Tpm::Svtpm, Interface::Crb, TIMEOUT)
                },
                &logs,
                &disk,
            )?;
            checked(&r, &what)?
        };
        println!("{}", b.summary());
        match n {
            0 => boots.provision = Some(b),
            _ if attested => boots.attested.push(b),
            _ => boots.ephemeral.push(b),
        }
    }
    Ok(boots)
}

/// The image's lines of a boot that started the guest and ended cleanly.
fn checked(r: &qemu::Report, what: &str) -> Result<ImageBoot> {
    let b = ImageBoot::from_lines(&r.lines);
    let code = r.exit.and_then(|s| s.code());
    if b.guest_start_ms.is_none() || code != Some(GUEST_EXIT) || b.fatal.is_some() {
        bail!(
            "{what}: expected the guest to start and end the run (exit {GUEST_EXIT}); \
             exit {code:?}, {}\nlast console lines ({}):\n{}",
            b.summary(),
            r.console_log.display(),
            r.tail()
        );
    }
    Ok(b)
}

/// The median of `f` over `boots` (only the boots that have it).
fn median_of(boots: &[ImageBoot], f: impl Fn(&ImageBoot) -> Option<u64>) -> Option<u64> {
    median(boots.iter().filter_map(f).collect())
}

/// The table: one row per phase, the sum, the guest's start; columns for
/// the provisioning boot and the medians of the attested and in-memory
/// boots; then the engine's start compared.
pub fn table(b: &Boots) -> String {
    let cell = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    let prov: &[ImageBoot] = b.provision.as_slice();
    let sum = |x: &ImageBoot| -> Option<u64> {
        let known: Vec<u64> = PHASES.iter().filter_map(|p| x.phase_ms(p)).collect();
        (!known.is_empty()).then(|| known.iter().sum())
    };
    let mut rows: Vec<[String; 4]> = vec![[
        "ms".into(),
        "provisioning boot".into(),
        format!("attested, median of {}", b.attested.len()),
        format!("in-memory TPM, median of {}", b.ephemeral.len()),
    ]];
    for phase in PHASES {
        rows.push([
            phase.to_string(),
            cell(median_of(prov, |x| x.phase_ms(phase))),
            cell(median_of(&b.attested, |x| x.phase_ms(phase))),
            cell(median_of(&b.ephemeral, |x| x.phase_ms(phase))),
        ]);
    }
    rows.push([
        "sum of the phases".into(),
        cell(median_of(prov, sum)),
        cell(median_of(&b.attested, sum)),
        cell(median_of(&b.ephemeral, sum)),
    ]);
    rows.push([
        "guest start (from power-on)".into(),
        cell(median_of(prov, |x| x.guest_start_ms)),
        cell(median_of(&b.attested, |x| x.guest_start_ms)),
        cell(median_of(&b.ephemeral, |x| x.guest_start_ms)),
    ]);
    let widths: Vec<usize> = (0..4)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::from(
        "boot benchmark: power-on to the guest's first instruction, split by the image's \
         boot-time phases (QEMU TCG, CRB; attested = svtpm-proxy + development broker + \
         simulated PSP)\n",
    );
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect();
        out.push_str("  ");
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    let engine = (
        median_of(&b.attested, |x| x.phase_ms("engine")),
        median_of(&b.ephemeral, |x| x.phase_ms("engine")),
    );
    out.push_str(&match engine {
        (Some(a), Some(e)) if e > 0 => format!(
            "engine start: {a} ms on the opened sealed state vs {e} ms in memory ({:.2}x)\n",
            a as f64 / e as f64
        ),
        (a, e) => format!(
            "engine start: attested {}, in memory {} (ms)\n",
            cell(a),
            cell(e)
        ),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot(lines: &[&str]) -> ImageBoot {
        ImageBoot::from_lines(lines)
    }

    #[test]
    fn table_takes_medians_per_phase_and_compares_the_engine() {
        let attested = |att: u64, eng: u64, start: u64| {
            boot(&[
                "svtpm: boot-time phase=hostchan ms=2",
                &format!("svtpm: boot-time phase=attestation ms={att}"),
                "svtpm: boot-time phase=key ms=10",
                "svtpm: boot-time phase=state ms=20",
                &format!("svtpm: boot-time phase=engine ms={eng}"),
                &format!("svtpm: boot-time guest-start at_ms={start}"),
            ])
        };
        let b = Boots {
            provision: Some(attested(500, 900, 3000)),
            attested: vec![
                attested(300, 100, 2000),
                attested(310, 120, 2100),
                attested(900, 110, 2600),
            ],
            ephemeral: vec![
                boot(&[
                    "svtpm: boot-time phase=engine ms=50",
                    "svtpm: boot-time guest-start at_ms=700",
                ]),
                boot(&[
                    "svtpm: boot-time phase=engine ms=60",
                    "svtpm: boot-time guest-start at_ms=800",
                ]),
            ],
        };
        let t = table(&b);
        let row = |name: &str| -> Vec<String> {
            t.lines()
                .find(|l| l.trim_start().starts_with(name))
                .unwrap_or_else(|| panic!("no row {name} in\n{t}"))
                .split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect()
        };
        assert_eq!(row("attestation"), ["attestation", "500", "310", "-"]);
        assert_eq!(row("engine"), ["engine", "900", "110", "55"]);
        assert_eq!(row("sum of"), ["sum of the phases", "1432", "462", "55"]);
        assert_eq!(
            row("guest start"),
            ["guest start (from power-on)", "3000", "2100", "750"]
        );
        assert!(
            t.contains("110 ms on the opened sealed state vs 55 ms in memory (2.00x)"),
            "{t}"
        );
    }
}
