//! `svtpm-kbs`: the development key broker.
//!
//! ```text
//! svtpm-kbs provision --data-dir DIR [--vtpm-id ID]
//! svtpm-kbs serve --data-dir DIR --policy FILE [--port N] [--listen ADDR]
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use svtpm::attest::kbs::VtpmId;
use svtpm_kbs::policy::Policy;
use svtpm_kbs::server::{serve, Kbs};
use svtpm_kbs::store::DataDir;
use svtpm_kbs::verifier::{choose_signature_check, SnpVerifier};

/// Development key broker for svtpm (Trustee's KBS protocol, RCAR 0.4.0).
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Creates a vTPM identity with a fresh random 256-bit state key.
    /// Refuses an id that already exists. Prints the id.
    Provision {
        /// Data directory (created if missing).
        #[arg(long)]
        data_dir: PathBuf,
        /// The vTPM id (1-64 of A-Z a-z 0-9 _ . -); random if omitted.
        #[arg(long)]
        vtpm_id: Option<String>,
    },
    /// Serves the protocol over HTTP.
    Serve {
        /// Data directory (created if missing).
        #[arg(long)]
        data_dir: PathBuf,
        /// Policy file (JSON; see docs/kbs.md).
        #[arg(long)]
        policy: PathBuf,
        /// TCP port (0: any free port, printed at start).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Address to listen on. Loopback by default: the broker speaks
        /// plain HTTP.
        #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
        listen: IpAddr,
        /// Accept attestation reports WITHOUT checking their signature.
        /// Only for development without SNP hardware: anyone who can reach
        /// the broker can then obtain keys with forged evidence. Refused
        /// when the policy names trust anchors (the check is then on).
        #[arg(long)]
        insecure_unverified_reports: bool,
    },
}

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match Cli::parse().command {
        Command::Provision { data_dir, vtpm_id } => {
            let id = vtpm_id
                .map(|s| VtpmId::new(&s).map_err(|e| anyhow::anyhow!("vTPM id {s:?}: {e}")))
                .transpose()?;
            let data = DataDir::open(&data_dir)?;
            let id = data.provision(id)?;
            println!("{id}");
            Ok(())
        }
        Command::Serve {
            data_dir,
            policy,
            port,
            listen,
            insecure_unverified_reports,
        } => {
            let policy = Policy::load(&policy)?;
            if policy.allowed_measurements.is_empty() {
                bail!("the policy allows no launch measurement: every attestation would fail");
            }
            let check = choose_signature_check(&policy.trust_anchors, insecure_unverified_reports)
                .context("cannot start")?;
            let verifier = SnpVerifier::new(check);
            let data = DataDir::open(&data_dir)?;
            let kbs = Kbs::new(policy, Box::new(verifier), data).context("cannot start")?;
            let running = serve(Arc::new(kbs), SocketAddr::new(listen, port), 4)?;
            println!("listening on http://{}", running.addr());
            running.wait();
            Ok(())
        }
    }
}
