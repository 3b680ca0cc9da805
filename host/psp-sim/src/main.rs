//! svtpm-psp-sim: development tools around the simulated PSP.
//!
//! DEVELOPMENT ONLY: the generated chain lets whoever holds it forge
//! attestation reports.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use svtpm_psp_sim::measure;
use svtpm_psp_sim::secrets::{self, SvsmFields};
use svtpm_psp_sim::{ChipIdentity, TestChain};

/// Development stand-in for the AMD PSP (never for production).
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a test ARK -> ASK -> VCEK chain (RSA-4096, RSA-4096, P-384)
    /// with a random chip ID, and write certificates and the VCEK key to DIR.
    GenChain {
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a secrets page image (4096 bytes) with random VMPCK0..3.
    SecretsPage {
        /// Output file (created with mode 0600).
        #[arg(long)]
        out: PathBuf,
        /// SVSM_BASE.
        #[arg(long, default_value_t = 0, value_parser = parse_u64)]
        svsm_base: u64,
        /// SVSM_SIZE.
        #[arg(long, default_value_t = 0, value_parser = parse_u64)]
        svsm_size: u64,
        /// SVSM_CAA.
        #[arg(long, default_value_t = 0, value_parser = parse_u64)]
        svsm_caa: u64,
        /// SVSM_GUEST_VMPL.
        #[arg(long, default_value_t = 2)]
        guest_vmpl: u8,
    },
    /// Print the SEV-SNP launch digest (96 hex digits) of the svtpm image
    /// as the simulated launch computes it: the ELF's PT_LOAD pages at
    /// their physical addresses, then the secrets page. The proxy's
    /// simulated PSP reports this value for the same image.
    Measure {
        /// The image ELF.
        #[arg(long)]
        image: PathBuf,
    },
}

fn parse_u64(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|e| e.to_string())
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::GenChain { out } => {
            let chip = ChipIdentity::random();
            let chain = TestChain::generate(&chip)?;
            chain.write(&out)?;
            eprintln!(
                "wrote a DEVELOPMENT chain to {} (never trust this ARK in production)",
                out.display()
            );
        }
        Command::SecretsPage {
            out,
            svsm_base,
            svsm_size,
            svsm_caa,
            guest_vmpl,
        } => {
            let page = secrets::generate(&SvsmFields {
                base: svsm_base,
                size: svsm_size,
                caa: svsm_caa,
                max_version: 1,
                guest_vmpl,
            });
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&out)
                .and_then(|mut f| f.write_all(secrets::image(&page)))
                .with_context(|| format!("writing {}", out.display()))?;
        }
        Command::Measure { image } => {
            let elf =
                std::fs::read(&image).with_context(|| format!("reading {}", image.display()))?;
            let digest = measure::launch_digest(&elf)
                .with_context(|| format!("measuring {}", image.display()))?;
            println!("{}", measure::to_hex(&digest));
        }
    }
    Ok(())
}
