//! `svtpm-proxy`: serves svtpm's host channel beside QEMU.
//!
//! ```text
//! svtpm-proxy --channel FILE --state-dir DIR --kbs http://127.0.0.1:PORT
//!             --psp-chain DIR --secrets FILE --image ELF
//!             [--guest-policy 0x30000] [--fault KIND]...
//! ```
//!
//! Prints `svtpm-proxy: serving FILE` on stdout once the channel is
//! served; logs every request on stderr; exits 0 on SIGTERM or SIGINT.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Parser;
use log::{info, warn};
use svtpm::attest::snp::report::POLICY_RESERVED_ONE;
use svtpm::attest::snp::SecretsPage;
use svtpm_proxy::chanfile::ChannelFile;
use svtpm_proxy::faults::{Fault, Faults};
use svtpm_proxy::handler::Handler;
use svtpm_proxy::relay::{KbsUrl, Relay};
use svtpm_proxy::serve::Loop;
use svtpm_psp_sim::{measure, Psp, PspConfig, TestChain};
use svtpm_store::DirStore;
use zeroize::Zeroizing;

/// Host end of svtpm's host channel: state slots, key broker relay,
/// simulated PSP.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// The channel file (QEMU's memory-backend-file mem-path, share=on);
    /// created at 2 MiB if missing.
    #[arg(long)]
    channel: PathBuf,
    /// Directory of the sealed state slots (created if missing; locked
    /// while served).
    #[arg(long)]
    state_dir: PathBuf,
    /// Base URL of the key broker, http://HOST[:PORT][/PREFIX].
    #[arg(long)]
    kbs: String,
    /// Directory of the simulated PSP's chain (svtpm-psp-sim gen-chain).
    #[arg(long)]
    psp_chain: PathBuf,
    /// The secrets page image the guest was given (svtpm-psp-sim
    /// secrets-page); the simulated PSP holds the same VMPCKs.
    #[arg(long)]
    secrets: PathBuf,
    /// The svtpm image ELF; its launch digest is the reported MEASUREMENT.
    #[arg(long)]
    image: PathBuf,
    /// Guest policy reported (bit 17 must be set; bit 19 = debug).
    #[arg(long, default_value = "0x30000", value_parser = parse_u64)]
    guest_policy: u64,
    /// Inject a fault into every matching message (negative tests):
    /// corrupt-http, truncate-http, drop-http, reorder, corrupt-header,
    /// corrupt-slot, tamper-report, record-attest=FILE, replay-attest=FILE.
    #[arg(long = "fault")]
    faults: Vec<Fault>,
}

fn parse_u64(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("{s:?}: {e}"))
}

fn read(path: &Path, what: &str) -> Result<Zeroizing<Vec<u8>>> {
    std::fs::read(path)
        .map(Zeroizing::new)
        .with_context(|| format!("{what} {}", path.display()))
}

/// The simulated PSP for the guest launched with `cli`'s secrets page and
/// image, and the certificate table of its chain.
fn simulated_psp(cli: &Cli) -> Result<(Psp, Vec<u8>)> {
    let page_bytes = read(&cli.secrets, "reading the secrets page")?;
    let page = SecretsPage::read(&page_bytes).map_err(|e| {
        anyhow::anyhow!(
            "the secrets page {} is not a 4096-byte secrets page image: {e:?}",
            cli.secrets.display()
        )
    })?;
    if page.vmpck(0).map_or(true, |k| k.iter().all(|&b| b == 0)) {
        bail!("the secrets page {} holds no VMPCK0", cli.secrets.display());
    }
    let chain = TestChain::load(&cli.psp_chain)
        .with_context(|| format!("loading the PSP chain from {}", cli.psp_chain.display()))?;
    let image = read(&cli.image, "reading the image")?;
    let measurement = measure::launch_digest(&image)
        .with_context(|| format!("measuring the image {}", cli.image.display()))?;
    if cli.guest_policy & POLICY_RESERVED_ONE == 0 {
        bail!(
            "guest policy {:#x}: bit 17 is reserved and must be set (e.g. 0x30000)",
            cli.guest_policy
        );
    }
    let mut config = PspConfig::for_chip(chain.chip()?);
    config.measurement = measurement;
    config.policy = cli.guest_policy;
    info!(
        "simulated PSP: measurement {} of {}, policy {:#x}, chip {}",
        measure::to_hex(&measurement),
        cli.image.display(),
        cli.guest_policy,
        config.chip.product_name
    );
    let table = chain.cert_table()?;
    Ok((Psp::new(&page, config, chain.vcek_key), table))
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_target(false)
        .init();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("svtpm-proxy: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }

    let url = KbsUrl::parse(&cli.kbs).map_err(|e| anyhow::anyhow!("--kbs {e}"))?;
    let relay = Relay::new(url);
    match relay.probe() {
        Ok(()) => info!("key broker {} is reachable", relay.url()),
        Err(e) => warn!(
            "key broker {} is not reachable now ({e}); HTTP requests get \
             UPSTREAM_UNAVAILABLE until it is",
            relay.url()
        ),
    }
    let (psp, cert_table) = simulated_psp(&cli)?;
    let store = DirStore::create(&cli.state_dir)
        .with_context(|| format!("state directory {}", cli.state_dir.display()))?;
    let _lock = store
        .lock()
        .with_context(|| format!("locking the state directory {}", cli.state_dir.display()))?;
    let faults = Faults::new(cli.faults.clone())?;
    for f in faults.list() {
        warn!("fault injection: {f}");
    }

    let mut chan = ChannelFile::open(&cli.channel)?;
    let path = chan.path().display().to_string();
    let mut handler = Handler::new(store, relay, psp, cert_table, faults.clone());
    info!(
        "serving {path} for the image as {:?}; state in {}",
        handler.name(),
        cli.state_dir.display()
    );
    if stop.load(std::sync::atomic::Ordering::Relaxed) {
        info!("stopped by a signal during start-up");
        return Ok(());
    }
    let mut serving = Loop::new(chan.region(), &mut handler, faults);
    println!("svtpm-proxy: serving {path}");
    std::io::stdout().flush().ok();
    let stats = serving.run(&stop);
    info!(
        "stopping on a signal: served {} requests ({}); host_ready cleared",
        stats.total(),
        stats.summary()
    );
    Ok(())
}
