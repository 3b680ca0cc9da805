//! `cargo xtask`: the developer and CI entry point of svtpm.
//!
//! Every task is one variant of [`Task`]; its doc comment is the `--help` text.
//! Tasks run as a sequence of named steps (see [`steps`]) that print progress
//! with elapsed times and name the step that failed. System prerequisites (Debian
//! packages, the Rust target of the image, the fuzzing toolchain) are checked by
//! the task that needs them and installed when possible (see [`packages`] and
//! [`toolchain`]).

mod bench;
mod elf;
mod fuzz;
mod packages;
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
    /// Build everything and serve the vTPM stack to host tools (the QEMU guest boot is not there yet).
    ///
    /// NOT YET the real thing: booting a guest (OVMF + Linux) under QEMU with the
    /// vTPM is a later work item. For now this builds the workspace and runs
    /// `svtpm-sim` in the foreground on the TCG simulator ports (127.0.0.1:2321
    /// commands, 2322 platform), with its state under `target/svtpm-state/`, so
    /// tpm2-tools can talk to it with
    /// `TPM2TOOLS_TCTI=mssim:host=127.0.0.1,port=2321`. Stop it with Ctrl-C.
    Run {
        /// Serve the register model of this interface (passed to svtpm-sim).
        #[arg(long, value_enum, default_value_t = run::Interface::Tis)]
        interface: run::Interface,
        /// Start from an empty TPM: delete the state directory first.
        #[arg(long)]
        fresh: bool,
    },
    /// Run every check CI runs: packages, fmt, clippy, tests, image link check, fuzz build.
    ///
    /// Steps, in order: system packages and Rust target; `cargo fmt --check`;
    /// clippy on the workspace (host) and on the image (x86_64-unknown-none);
    /// `cargo test --workspace`; a release build of the freestanding image and a
    /// check that its ELF has no undefined symbols; a `cargo fuzz build` smoke
    /// test when nightly and cargo-fuzz are installed. Steps that cannot apply yet
    /// (no image, no fuzz targets) are reported as skipped, with the reason.
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
    Bench {
        /// Also write the results as JSON to this file.
        #[arg(long, value_name = "FILE")]
        json: Option<std::path::PathBuf>,
        /// Iterations per command (CreatePrimary runs a tenth as many).
        #[arg(long)]
        iterations: Option<u32>,
    },
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
        Task::Run { interface, fresh } => run::run(&ws, interface, fresh),
        Task::Test { quick } => test::test(&ws, quick),
        Task::Fuzz { target, seconds } => fuzz::fuzz(&ws, target.as_deref(), seconds),
        Task::Bench { json, iterations } => bench::bench(&ws, json.as_deref(), iterations),
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
