//! `cargo xtask`: the developer and CI entry point of svtpm.
//!
//! Every task is one variant of [`Task`]; its doc comment is the `--help` text.
//! Tasks run as a sequence of named steps (see [`steps`]) that print progress
//! with elapsed times and name the step that failed. System prerequisites (Debian
//! packages, the Rust target of the image, the fuzzing toolchain) are checked by
//! the task that needs them and installed when possible (see [`packages`] and
//! [`toolchain`]).

mod acpi;
mod bench;
mod console;
mod cpio;
mod elf;
mod fuzz;
mod guest;
mod guestbench;
mod import;
mod packages;
mod qemu;
mod run;
mod steps;
mod test;
mod toolchain;
mod workspace;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Developer tasks for svtpm. Run from inside the repository as `cargo xtask <TASK>`.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Boot OVMF + Linux under QEMU TCG with a TPM and run the guest's TPM checks.
    ///
    /// Builds the svtpm image (release), the guest boot medium (a UKI with
    /// Debian's kernel and an initramfs of busybox + tpm2-tools, on a FAT
    /// image under target/guest/) and, for svtpm, the ACPI tables describing
    /// the TPM; then boots QEMU and streams the serial console. The guest's
    /// kernel binds its own tpm_tis or tpm_crb driver; a script reads random
    /// numbers and PCRs, replays the firmware event log against the PCRs, and
    /// seals and unseals a secret under a PCR policy. Exits non-zero unless
    /// every check passed. See docs/guest.md.
    ///
    /// `--sim` instead builds the workspace and runs svtpm-sim in the
    /// foreground on the TCG simulator ports (127.0.0.1:2321 commands, 2322
    /// platform), state under target/svtpm-state/, for tpm2-tools with
    /// `TPM2TOOLS_TCTI=mssim:host=127.0.0.1,port=2321`; stop it with Ctrl-C.
    Run {
        /// The guest's TPM: the svtpm image as SVM host, or QEMU's TPM device
        /// on Debian's swtpm (the baseline, no svtpm involved).
        #[arg(long, value_enum, default_value_t = qemu::Tpm::Svtpm)]
        tpm: qemu::Tpm,
        /// The TPM interface (Linux binds tpm_tis or tpm_crb).
        #[arg(long, value_enum, default_value_t = run::Interface::Tis)]
        interface: run::Interface,
        /// Kill QEMU after this many seconds.
        #[arg(long, default_value_t = 300, value_name = "SECONDS")]
        timeout: u64,
        /// Serve the vTPM stack to host tools with svtpm-sim instead of booting a guest.
        #[arg(long, conflicts_with_all = ["tpm", "timeout"])]
        sim: bool,
        /// With --sim: start from an empty TPM (delete the state directory first).
        #[arg(long, requires = "sim")]
        fresh: bool,
    },
    /// Run every check CI runs: packages, fmt, clippy, tests, image link check, fuzz build.
    ///
    /// Steps, in order: system packages and Rust target; `cargo fmt --check`;
    /// clippy on the workspace (host) and on the image (x86_64-unknown-none);
    /// `cargo test --workspace`; a release build of the freestanding image and a
    /// check that its ELF has no undefined symbols; a `cargo fuzz build` smoke
    /// test when nightly and cargo-fuzz are installed; the guest boot medium,
    /// then guest boots under QEMU (OVMF + Linux, TIS and CRB) with the swtpm
    /// baseline and with the svtpm image, each required to pass every guest
    /// check; the image's own checks (tests/image/check.sh), none of which
    /// may fail. Steps that cannot apply yet (no image, an image that cannot
    /// host a guest yet, no fuzz targets) are reported as skipped, with the
    /// reason.
    Test {
        /// Skip the formatting and clippy steps.
        #[arg(long)]
        quick: bool,
    },
    /// Fuzz each target (all of fuzz/fuzz_targets/*.rs by default) for a bounded time.
    ///
    /// Installs cargo-fuzz (`cargo install cargo-fuzz`) and the nightly
    /// toolchain when missing; when nightly cannot be installed, builds with the
    /// stable toolchain and RUSTC_BOOTSTRAP=1 instead. Reports executions per
    /// target and the path of any crash artifact; exits non-zero on a crash.
    Fuzz {
        /// Fuzz only this target (a file name under fuzz/fuzz_targets, without .rs).
        #[arg(long = "target", value_name = "NAME")]
        target: Option<String>,
        /// Seconds of fuzzing per target (libFuzzer -max_total_time).
        #[arg(long, default_value_t = 60)]
        seconds: u32,
    },
    /// Build (release) and run svtpm-bench: per-command TPM latency and MMIO counts.
    ///
    /// Measures the engine called directly, the TIS and CRB register models
    /// driven by the Linux driver models, and Debian's swtpm over its socket.
    /// Then the guest benchmark: the same medium booted under QEMU TCG with
    /// the svtpm image and with QEMU's TPM on swtpm, TIS and CRB; boot
    /// milestones, tpm2_pcrextend and raw PCR_Extend latency in the guest,
    /// and svtpm's exits per command, in one table with svtpm/swtpm ratios.
    Bench(bench::BenchArgs),
    /// Seal an swtpm TPM 2.0 state directory into a new svtpm state directory.
    ///
    /// Builds and runs svtpm-import-swtpm (crate svtpm-store): reads swtpm's
    /// tpm2-00.permall (and volatile state, if any), plain or encrypted with
    /// --swtpm-key, and provisions it as generation 1 in --out, sealed under
    /// --key (64 hex digits), with its generation guard beside it. The TPM
    /// keeps its seeds, EKs, persistent keys and NV indices; serve it with
    /// `svtpm-sim --state-dir OUT --key-file KEY`. Never replaces a state.
    ImportSwtpm(import::ImportArgs),
    /// Check the Debian packages, Rust target and components every task needs.
    ///
    /// Installs the missing ones when running as root (apt-get, rustup);
    /// otherwise prints the exact apt-get line to run and fails.
    Setup,
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("\nxtask: error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    let ws = workspace::Workspace::locate()?;
    match cli.task {
        Task::Run {
            tpm,
            interface,
            timeout,
            sim,
            fresh,
        } => run::run(
            &ws,
            run::Options {
                tpm,
                interface,
                sim,
                fresh,
                timeout,
            },
        ),
        Task::Test { quick } => test::test(&ws, quick),
        Task::Fuzz { target, seconds } => fuzz::fuzz(&ws, target.as_deref(), seconds),
        Task::Bench(args) => bench::bench(&ws, &args),
        Task::ImportSwtpm(args) => import::import_swtpm(&ws, &args),
        Task::Setup => setup(&ws),
    }
}

/// `cargo xtask setup`: every prerequisite of every task.
fn setup(ws: &workspace::Workspace) -> Result<()> {
    let mut steps = steps::Steps::new("setup");
    steps.run("Debian packages", || packages::ensure(packages::Group::ALL))?;
    steps.run("Rust target x86_64-unknown-none", || {
        toolchain::ensure_target(ws, toolchain::IMAGE_TARGET)
    })?;
    steps.run("Rust components rustfmt, clippy", || {
        toolchain::ensure_components(ws, toolchain::COMPONENTS)
    })?;
    steps.finish();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
