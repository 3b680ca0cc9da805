//! `cargo xtask`: the developer and CI entry point of svtpm.
//!
//! Every task is one variant of [`Task`]; its doc comment is the `--help` text.
//! Tasks run as a sequence of named steps (see [`steps`]) that print progress
//! with elapsed times and name the step that failed. System prerequisites (Debian
//! packages, the Rust target of the image, the fuzzing toolchain) are checked by
//! the task that needs them and installed when possible (see [`packages`] and
//! [`toolchain`]).

mod acpi;
mod attested;
mod bench;
mod bootbench;
mod console;
mod cpio;
mod daemon;
mod devstack;
mod elf;
mod fuzz;
mod guest;
mod guestbench;
mod hosttools;
mod imagelog;
mod import;
mod interrupt;
mod packages;
mod qemu;
mod refusal;
mod run;
mod snapshot;
mod stack;
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
    /// numbers and PCRs, replays the firmware event log against the PCRs,
    /// seals and unseals a secret under a PCR policy, and writes (first
    /// boot) or reads back (later boots) an NV index. Exits non-zero unless
    /// every check passed. See docs/guest.md.
    ///
    /// The svtpm boot is attested: the development key broker (svtpm-kbs)
    /// and svtpm-proxy with its simulated PSP start beside QEMU, on the
    /// development directory target/svtpm-dev/ (test chain, secrets page,
    /// broker data and policy, the vTPM's sealed state, logs). The image
    /// proves itself to the broker, gets the vTPM's state key and opens its
    /// sealed state before the guest starts; a rerun boots the same vTPM.
    /// The policy's allowlist is regenerated from the image on every run
    /// (its launch digest changes with every build). The first run
    /// provisions the vTPM. Logs are streamed as `kbs:`, `proxy:` and the
    /// console, and kept in target/svtpm-dev/logs/.
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
        /// svtpm: keep the TPM in memory only (no broker, no proxy, no
        /// attestation), as before the attested boot existed.
        #[arg(long, conflicts_with_all = ["sim", "kbs", "vtpm_id"])]
        ephemeral: bool,
        /// svtpm: use the key broker at URL (e.g. `cargo xtask kbs` in
        /// another shell, or a Trustee KBS with the svtpm-generation plugin,
        /// see docs/kbs.md) instead of starting the development one.
        #[arg(long, value_name = "URL", conflicts_with = "sim")]
        kbs: Option<String>,
        /// svtpm: boot this vTPM instead of the development directory's
        /// (see `cargo xtask provision`).
        #[arg(long, value_name = "ID", conflicts_with = "sim")]
        vtpm_id: Option<String>,
    },
    /// Run the development key broker in the foreground.
    ///
    /// Sets up target/svtpm-dev/ as `cargo xtask run` does (test chain,
    /// policy allowing the image as built now, debug guests refused) and
    /// serves svtpm-kbs on 127.0.0.1:PORT with its data there; prints its
    /// URL, policy and data directory. `cargo xtask run --kbs URL` boots
    /// against it. Stop it with Ctrl-C.
    Kbs {
        /// The TCP port (0: any free one).
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
    /// Create a new vTPM identity and state key in the development broker.
    ///
    /// Runs `svtpm-kbs provision` on target/svtpm-dev/kbs/; refuses an id
    /// that exists; prints the id. The vTPM's TPM state is created on its
    /// first boot (`cargo xtask run --vtpm-id ID`). The first vTPM made
    /// becomes the one `cargo xtask run` boots by default.
    Provision {
        /// The id (1-64 of A-Z a-z 0-9 _ . -); random if omitted.
        #[arg(long, value_name = "ID")]
        vtpm_id: Option<String>,
    },
    /// Run every check CI runs: packages, fmt, clippy, tests, image link check, fuzz build.
    ///
    /// Steps, in order: system packages and Rust target; `cargo fmt --check`;
    /// clippy on the workspace (host) and on the image (x86_64-unknown-none);
    /// `cargo test --workspace`; a release build of the freestanding image and a
    /// check that its ELF has no undefined symbols; a `cargo fuzz build` smoke
    /// test when nightly and cargo-fuzz are installed; the guest boot medium,
    /// then guest boots under QEMU (OVMF + Linux, TIS and CRB) with the swtpm
    /// baseline and with the svtpm image on its in-memory TPM, each required
    /// to pass every guest check; the attested boot (svtpm-kbs, svtpm-proxy
    /// and the image, in target/svtpm-test/): a new vTPM provisioned and
    /// booted twice, its NV contents and EK surviving, then thirteen boots
    /// that must be refused before the guest runs (wrong measurement,
    /// tampered report, untrusted chain, replayed nonce, debug policy,
    /// corrupted/truncated/reordered/mistyped/dropped host channel messages,
    /// corrupted state slots, broker unreachable, rolled-back state), each
    /// leaving the stored state and the broker's record unchanged; the
    /// image's own checks (tests/image/check.sh), none of which may fail.
    /// Steps that cannot apply yet (no image, an image that cannot host a
    /// guest yet, no fuzz targets) are reported as skipped, with the reason.
    Test {
        /// Skip the formatting and clippy steps.
        #[arg(long)]
        quick: bool,
        /// Run only the attested boot's steps (two boots of a new vTPM and
        /// the refused boots), with the image and guest medium they need.
        #[arg(long)]
        attested: bool,
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
            ephemeral,
            kbs,
            vtpm_id,
        } => {
            if tpm == qemu::Tpm::Swtpm && (ephemeral || kbs.is_some() || vtpm_id.is_some()) {
                anyhow::bail!("--ephemeral, --kbs and --vtpm-id apply to --tpm svtpm only");
            }
            run::run(
                &ws,
                run::Options {
                    tpm,
                    interface,
                    sim,
                    fresh,
                    timeout,
                    ephemeral,
                    kbs,
                    vtpm_id,
                },
            )
        }
        Task::Kbs { port } => devstack::kbs(&ws, port),
        Task::Provision { vtpm_id } => devstack::provision(&ws, vtpm_id.as_deref()),
        Task::Test { quick, attested } => test::test(&ws, quick, attested),
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
