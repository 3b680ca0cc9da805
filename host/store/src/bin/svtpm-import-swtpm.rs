//! svtpm-import-swtpm: seals an swtpm TPM 2.0 state directory into a new
//! svtpm state directory (`cargo xtask import-swtpm` runs it).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use svtpm_store::guard::default_guard_path;
use svtpm_store::import::import_to_dir;
use svtpm_store::keyfile::{loose_permissions, read_state_key};
use svtpm_store::swtpm::SwtpmKey;
use zeroize::Zeroizing;

/// How swtpm's key file is written (swtpm's `--key file=...,format=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SwtpmKeyFormat {
    /// 32 or 64 hex digits, optional `0x` (swtpm's default).
    Hex,
    /// 16 or 32 raw bytes.
    Binary,
}

/// Seals an swtpm TPM 2.0 state directory (`tpm2-00.permall`, and
/// `tpm2-00.volatilestate` if present) into a new svtpm state directory,
/// as generation 1 under the svtpm state key. The TPM keeps its seeds, EKs,
/// persistent objects and NV indices. The swtpm state is only read.
///
/// Encrypted swtpm state (`swtpm --key file=...` or `swtpm_setup --keyfile`,
/// AES-128/256-CBC) needs --swtpm-key; passphrase-derived keys
/// (`--key pwdfile=`) are not supported.
#[derive(Debug, Parser)]
#[command(name = "svtpm-import-swtpm", version)]
struct Args {
    /// The swtpm state directory (swtpm's `--tpmstate dir=`).
    #[arg(long, value_name = "DIR")]
    state_dir: PathBuf,
    /// The svtpm state key: a file of 64 hex digits (`openssl rand -hex 32`).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// swtpm's state key file, if its state is encrypted.
    #[arg(long, value_name = "FILE")]
    swtpm_key: Option<PathBuf>,
    /// Format of --swtpm-key.
    #[arg(long, value_enum, default_value_t = SwtpmKeyFormat::Hex)]
    swtpm_key_format: SwtpmKeyFormat,
    /// The new svtpm state directory (created; must not hold a state).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Generation guard file [default: OUT.guard beside OUT].
    #[arg(long, value_name = "FILE")]
    guard_file: Option<PathBuf>,
}

fn read_swtpm_key(path: &PathBuf, format: SwtpmKeyFormat) -> Result<SwtpmKey> {
    let raw = Zeroizing::new(
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
    );
    let key = match format {
        SwtpmKeyFormat::Hex => std::str::from_utf8(&raw)
            .map_err(|_| svtpm_store::swtpm::SwtpmError::BadKey)
            .and_then(SwtpmKey::from_hex),
        SwtpmKeyFormat::Binary => SwtpmKey::from_bytes(&raw),
    };
    key.with_context(|| format!("swtpm key file {}", path.display()))
}

fn run(args: &Args) -> Result<()> {
    if !args.state_dir.is_dir() {
        bail!("{} is not a directory", args.state_dir.display());
    }
    let state_key = read_state_key(&args.key)?;
    if let Ok(Some(mode)) = loose_permissions(&args.key) {
        eprintln!(
            "warning: key file {} is accessible by group or others (mode {mode:03o})",
            args.key.display()
        );
    }
    let swtpm_key = args
        .swtpm_key
        .as_ref()
        .map(|p| read_swtpm_key(p, args.swtpm_key_format))
        .transpose()?;
    let guard_file = match &args.guard_file {
        Some(g) => g.clone(),
        None => default_guard_path(&args.out)?,
    };
    let done = import_to_dir(
        &args.state_dir,
        swtpm_key.as_ref(),
        state_key,
        &args.out,
        &guard_file,
    )
    .with_context(|| format!("importing {}", args.state_dir.display()))?;
    println!(
        "imported {} into {}: generation {}, sealed under key {}, {} bytes",
        args.state_dir.display(),
        args.out.display(),
        done.generation,
        done.key_id,
        done.sealed_len
    );
    for (name, len) in &done.blobs {
        println!("  {name}: {len} bytes");
    }
    println!("generation guard: {}", guard_file.display());
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("svtpm-import-swtpm: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
