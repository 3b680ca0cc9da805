//! svtpm-sim: serves the svtpm stack on the TCG TPM simulator TCP protocol,
//! so that `tpm2-tools` (mssim TCTI) and other simulator clients can drive it.
//!
//! Every command goes through a register model (TIS by default, or CRB),
//! pushed access by access by a model of the Linux driver, into the libtpms
//! engine; NV state lives in `--state-dir` and survives restarts.

mod device;
mod protocol;
mod server;
mod storage;

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::thread;

use anyhow::{bail, Context};
use clap::Parser;
use svtpm::engine::NvStorage;
use svtpm_drivers::CopyMode;

use crate::device::{Config, Interface};
use crate::storage::FileStorage;

/// How the CRB driver model moves buffer bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum CrbCopy {
    /// `rep movsl` string copies (ordinary guests).
    String,
    /// One byte access per byte (SEV-SNP and TDX guests).
    Unrolled,
}

/// Serves the svtpm stack (libtpms engine behind the TIS or CRB register
/// model, driven by a Linux driver model) on the TPM simulator TCP protocol
/// used by tpm2-tss's mssim TCTI.
#[derive(Debug, Parser)]
#[command(name = "svtpm-sim", version)]
struct Args {
    /// TPM command port; the platform port is this + 1. 0 picks a free pair
    /// and prints `listening on ADDR:PORT` on stdout.
    #[arg(long, default_value_t = 2321)]
    port: u16,
    /// Address to listen on (loopback unless you mean otherwise).
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Register interface the commands go through.
    #[arg(long, value_enum, default_value_t = Interface::Tis)]
    interface: Interface,
    /// How the CRB driver copies buffers.
    #[arg(long, value_enum, default_value_t = CrbCopy::String)]
    crb_copy: CrbCopy,
    /// Directory holding the TPM's NV state (created if missing).
    #[arg(long)]
    state_dir: PathBuf,
}

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .target(env_logger::Target::Stderr)
        .init();
    let args = Args::parse();

    let existing = FileStorage::open(&args.state_dir)
        .with_context(|| format!("cannot open state dir {}", args.state_dir.display()))?;
    let blobs = existing.names().context("cannot list the state dir")?;
    log::info!(
        "state dir {} ({})",
        args.state_dir.display(),
        if blobs.is_empty() {
            "empty: a new TPM will be manufactured".to_string()
        } else {
            format!("holds {}", blobs.join(", "))
        }
    );
    let dir = args.state_dir.clone();
    let mut first = Some(existing);
    let opener: device::StorageOpener = Box::new(move || {
        let s = match first.take() {
            Some(s) => s,
            None => FileStorage::open(&dir)
                .map_err(|e| format!("cannot open {}: {e}", dir.display()))?,
        };
        Ok(Box::new(s) as Box<dyn NvStorage + Send>)
    });

    let config = Config {
        interface: args.interface,
        crb_copy: match args.crb_copy {
            CrbCopy::String => CopyMode::StringOps,
            CrbCopy::Unrolled => CopyMode::Unrolled,
        },
    };
    let (cmd, platform) = server::bind(args.bind, args.port)
        .with_context(|| format!("cannot listen on {}:{}", args.bind, args.port))?;
    let cmd_addr = cmd.local_addr()?;
    let platform_addr = platform.local_addr()?;
    log::info!("interface {:?} (Linux driver model), command port {cmd_addr}, platform port {platform_addr}", args.interface);

    let (handle, device) = match device::spawn(config, opener) {
        Ok(d) => d,
        Err(e) => bail!("TPM did not power on: {e}"),
    };

    let h = handle.clone();
    thread::Builder::new()
        .name("platform-accept".into())
        .spawn(move || server::accept_loop(platform, h, true))?;
    thread::Builder::new()
        .name("command-accept".into())
        .spawn(move || server::accept_loop(cmd, handle, false))?;

    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on {cmd_addr}")?;
    out.flush()?;
    drop(out);

    // The device thread ends on STOP; the accept threads die with the process.
    let _ = device.join();
    log::info!("exiting");
    Ok(())
}
