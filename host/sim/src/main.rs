//! svtpm-sim: serves the svtpm stack on the TCG TPM simulator TCP protocol,
//! so that `tpm2-tools` (mssim TCTI) and other simulator clients can drive it.
//!
//! Every command goes through a register model (TIS by default, or CRB),
//! pushed access by access by a model of the Linux driver, into the libtpms
//! engine. NV state is sealed (AES-256-GCM, A/B slots, rollback guard) in
//! `--state-dir` under the key in `--key-file`, and survives restarts.
//!
//! Exit status: 0 after STOP; 3 when the stored state is refused (or
//! `--provision` is); 1 for any other error.

mod device;
mod protocol;
mod server;
mod storage;

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::thread;

use anyhow::{anyhow, Context};
use clap::Parser;
use svtpm::engine::NvStorage;
use svtpm_drivers::CopyMode;
use svtpm_store::guard::{check_outside, default_guard_path};
use svtpm_store::keyfile::{loose_permissions, read_state_key};
use svtpm_store::DirStore;

use crate::device::{Config, Interface};
use crate::storage::{Location, OpenError};

/// Exit status when the stored state (or provisioning) is refused.
const EXIT_REFUSED: u8 = 3;

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
    /// Directory holding the TPM's sealed NV state (two slot files).
    #[arg(long, value_name = "DIR")]
    state_dir: PathBuf,
    /// The state key: a file of exactly 64 hex digits (a 256-bit key, e.g.
    /// from `openssl rand -hex 32`), optionally followed by a newline. The
    /// key is never printed; logs show only its identifier.
    #[arg(long, value_name = "PATH")]
    key_file: PathBuf,
    /// Manufacture a new vTPM in an empty (or missing) state directory.
    /// Refused if a state exists; without it, an empty directory is refused.
    #[arg(long)]
    provision: bool,
    /// File recording the newest state generation, so that an older copy
    /// of the state directory put back is refused across restarts. It must
    /// lie outside the state directory [default: DIR.guard beside DIR]. On
    /// the real platform the key broker holds this record.
    #[arg(long, value_name = "PATH")]
    guard_file: Option<PathBuf>,
}

/// How the simulator failed to run.
enum Failure {
    /// The state is refused: exit status [`EXIT_REFUSED`].
    Refused(String),
    /// Anything else: exit status 1.
    Error(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Error(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Error(e.into())
    }
}

impl From<OpenError> for Failure {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Refused(m) => Failure::Refused(m),
            OpenError::Failed(m) => Failure::Error(anyhow!(m)),
        }
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .target(env_logger::Target::Stderr)
        .init();
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused(m)) => {
            log::error!("{m}");
            ExitCode::from(EXIT_REFUSED)
        }
        Err(Failure::Error(e)) => {
            log::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Failure> {
    let key = read_state_key(&args.key_file).map_err(|e| anyhow!(e))?;
    if let Ok(Some(mode)) = loose_permissions(&args.key_file) {
        log::warn!(
            "key file {} is accessible by group or others (mode {mode:03o})",
            args.key_file.display()
        );
    }
    let guard_file = match &args.guard_file {
        Some(g) => g.clone(),
        None => default_guard_path(&args.state_dir).map_err(|e| anyhow!(e))?,
    };
    check_outside(&guard_file, &args.state_dir).map_err(|e| anyhow!(e))?;
    let loc = Location {
        dir: args.state_dir.clone(),
        guard_file,
    };
    log::info!(
        "state key {} (identifier), state dir {}, generation guard {}",
        key.id(),
        loc.dir.display(),
        loc.guard_file.display()
    );
    // One process per state: held until exit. Taken before anything is
    // read, and only on a directory that exists (or is being provisioned).
    let lock = if args.provision || loc.dir.is_dir() {
        let store = if args.provision {
            DirStore::create(&loc.dir)
        } else {
            DirStore::open(&loc.dir)
        }
        .with_context(|| format!("state directory {}", loc.dir.display()))?;
        Some(
            store
                .lock()
                .with_context(|| format!("cannot lock {}", loc.dir.display()))?,
        )
    } else {
        None
    };
    let first = if args.provision {
        storage::provision(&loc, key.clone())?
    } else {
        storage::open(&loc, key.clone())?
    };
    // Every later power-on reads the state from disk again, as a reboot does.
    let mut first = Some(first);
    let opener: device::StorageOpener = Box::new(move || {
        let s = match first.take() {
            Some(s) => s,
            None => storage::open(&loc, key.clone()).map_err(|e| e.to_string())?,
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

    let (handle, device) =
        device::spawn(config, opener).map_err(|e| anyhow!("TPM did not power on: {e}"))?;

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
    drop(lock);
    log::info!("exiting");
    Ok(())
}
