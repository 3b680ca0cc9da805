//! `cargo xtask bench`: builds svtpm-bench in release mode and runs it, then
//! the guest benchmark ([`crate::guestbench`]): OVMF + Linux booted with the
//! svtpm image and with the swtpm baseline, TIS and CRB; then the attested
//! boot's phases up to the guest's start ([`crate::bootbench`]).

use std::path::PathBuf;

use anyhow::Result;

use crate::bootbench;
use crate::elf;
use crate::guest;
use crate::guestbench;
use crate::packages::{self, Group};
use crate::steps::{self, Outcome, Steps};
use crate::workspace::Workspace;

/// The Debian packages the host benchmark needs (swtpm is one of the measured TPMs).
pub const NEEDS: &[Group] = &[Group::Build, Group::Test];
/// The Debian packages the guest benchmark needs as well.
pub const GUEST_NEEDS: &[Group] = &[Group::Build, Group::Test, Group::Guest];

/// Options of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Also write svtpm-bench's results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// svtpm-bench's iterations per command (CreatePrimary runs a tenth as many).
    #[arg(long)]
    pub iterations: Option<u32>,
    /// Skip the guest and boot benchmarks (QEMU TCG boots, a few minutes).
    #[arg(long, conflicts_with_all = ["guest_only", "boot_only"])]
    pub no_guest: bool,
    /// Run only the guest and boot benchmarks.
    #[arg(long, conflicts_with_all = ["json", "iterations"])]
    pub guest_only: bool,
    /// Iterations of each loop in the guest benchmark.
    #[arg(long, value_name = "N", default_value_t = guestbench::DEFAULT_ITERATIONS)]
    pub guest_iterations: u32,
    /// Skip the boot benchmark (the attested boot's phases; 1 + 2N boots
    /// to OVMF's shell).
    #[arg(long, conflicts_with = "boot_only")]
    pub no_boot: bool,
    /// Run only the boot benchmark.
    #[arg(long, conflicts_with_all = ["json", "iterations", "guest_only"])]
    pub boot_only: bool,
    /// Boots of each kind (attested, in-memory) in the boot benchmark.
    #[arg(long, value_name = "N", default_value_t = bootbench::DEFAULT_RUNS,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub boot_runs: u32,
}

/// Runs svtpm-bench (forwarding `--json` and `--iterations`) and the guest
/// benchmark, as the flags say.
pub fn bench(ws: &Workspace, args: &BenchArgs) -> Result<()> {
    let mut s = Steps::new("bench");
    let needs = if args.no_guest { NEEDS } else { GUEST_NEEDS };
    s.run("Debian packages", || packages::ensure(needs))?;
    if !args.guest_only && !args.boot_only {
        host_bench(ws, args, &mut s)?;
    }
    if !args.no_guest {
        guest_bench(ws, args, &mut s)?;
    }
    s.finish();
    Ok(())
}

fn host_bench(ws: &Workspace, args: &BenchArgs, s: &mut Steps) -> Result<()> {
    s.run("build svtpm-bench (release)", || {
        steps::run(
            ws.cargo()
                .args(["build", "--release", "--package", "svtpm-bench"]),
        )?;
        Ok(Outcome::Done)
    })?;
    s.run("run svtpm-bench", || {
        let mut cmd = ws.cargo();
        cmd.args([
            "run",
            "--quiet",
            "--release",
            "--package",
            "svtpm-bench",
            "--",
        ]);
        if let Some(path) = &args.json {
            // The benchmark runs in the workspace root; keep relative paths
            // relative to where xtask was started.
            let path = std::env::current_dir()?.join(path);
            cmd.arg("--json").arg(path);
        }
        if let Some(n) = args.iterations {
            cmd.arg("--iterations").arg(n.to_string());
        }
        steps::run(&mut cmd)?;
        Ok(Outcome::Done)
    })
}

fn guest_bench(ws: &Workspace, args: &BenchArgs, s: &mut Steps) -> Result<()> {
    let image = elf::image_step(ws, s, "svtpm image (release)")?;
    if !args.boot_only {
        let medium = guest::medium_step(ws, s, "guest boot medium")?;
        let mut runs = Vec::new();
        s.run(
            "guest benchmark (svtpm and swtpm, TIS and CRB, under QEMU TCG)",
            || {
                runs = guestbench::run_all(
                    ws,
                    &medium,
                    image.as_deref().map_err(String::as_str),
                    args.guest_iterations,
                )?;
                println!("\n{}", guestbench::table(&runs, args.guest_iterations));
                guestbench::check(&runs)?;
                Ok(Outcome::Done)
            },
        )?;
    }
    s.run(
        &format!(
            "boot benchmark (attested boot phases: 1 provisioning + {n} attested + {n} \
             in-memory boots)",
            n = args.boot_runs
        ),
        || {
            if args.no_boot {
                return Ok(Outcome::Skipped("--no-boot".into()));
            }
            let image = match &image {
                Ok(p) => p,
                Err(why) => return Ok(Outcome::Skipped(why.clone())),
            };
            let boots = bootbench::run(ws, image, args.boot_runs)?;
            println!("\n{}", bootbench::table(&boots));
            Ok(Outcome::Done)
        },
    )
}

/// The median of `v` (the mean of the middle two for an even count).
pub fn median(mut v: Vec<u64>) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2
    })
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn medians_of_odd_and_even_counts_and_none_of_nothing() {
        assert_eq!(median(vec![3, 1, 2]), Some(2));
        assert_eq!(median(vec![4, 1, 2, 3]), Some(2));
        assert_eq!(median(vec![]), None);
    }
}
