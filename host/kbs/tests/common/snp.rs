//! SEV-SNP test platforms: generated ARK -> ASK -> VCEK chains, the
//! simulated PSP behind a host that returns a certificate table with every
//! answer, and a guest's VMPCK0 messenger.

use std::sync::OnceLock;

use sev::firmware::host::{CertTableEntry as SevEntry, CertType};
use svtpm::attest::snp::{
    CertTableSource, GuestMessenger, GuestRequestTransport, SecretsPage, SnpEvidence,
    TransportError,
};
use svtpm_psp_sim::secrets::{self, SvsmFields};
use svtpm_psp_sim::{ChipIdentity, Psp, PspConfig, TestChain};

use super::GOOD_MEASUREMENT;

/// A generated chain and the chip it certifies.
pub struct Chain {
    pub certs: TestChain,
    pub chip: ChipIdentity,
}

pub fn generate() -> Chain {
    let chip = ChipIdentity::random();
    let certs = TestChain::generate(&chip).unwrap();
    Chain { certs, chip }
}

/// The chain the broker trusts.
pub fn trusted() -> &'static Chain {
    static C: OnceLock<Chain> = OnceLock::new();
    C.get_or_init(generate)
}

/// A chain under another ARK (same names, other keys).
pub fn foreign() -> &'static Chain {
    static C: OnceLock<Chain> = OnceLock::new();
    C.get_or_init(generate)
}

/// A certificate table built by the `sev` crate (an implementation
/// independent of svtpm's parser).
pub fn table(entries: &[(CertType, &[u8])]) -> Vec<u8> {
    let entries: Vec<SevEntry> = entries
        .iter()
        .map(|(t, d)| SevEntry::new(t.clone(), d.to_vec()))
        .collect();
    SevEntry::cert_table_to_vec_bytes(&entries).unwrap()
}

pub fn full_table(c: &Chain) -> Vec<u8> {
    table(&[
        (CertType::VCEK, &c.certs.vcek),
        (CertType::ASK, &c.certs.ask),
        (CertType::ARK, &c.certs.ark),
    ])
}

/// The host side of the guest request: the simulated PSP and the
/// certificate table the host hands out with every answer.
pub struct Host {
    pub psp: Psp,
    pub table: Vec<u8>,
    pub pending: Vec<u8>,
}

impl GuestRequestTransport for Host {
    fn exchange(&mut self, request: &[u8], response: &mut [u8]) -> Result<(), TransportError> {
        self.psp
            .handle(request, response)
            .map_err(|e| TransportError { code: e.code() })?;
        self.pending = self.table.clone();
        Ok(())
    }
}

impl CertTableSource for Host {
    fn take_cert_table(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }
}

/// A launched guest: its VMPCK0 messenger and its host.
pub struct Platform {
    pub messenger: GuestMessenger,
    pub secrets: SecretsPage,
    pub host: Host,
}

impl Platform {
    /// A guest with the allowed measurement on `chain`'s chip, whose
    /// host returns `chain`'s full table.
    pub fn on(chain: &Chain) -> Self {
        let secrets = secrets::generate(&SvsmFields {
            base: 0x1_0000_0000,
            size: 0x100_0000,
            caa: 0x1_0000_1000,
            max_version: 1,
            guest_vmpl: 1,
        });
        let mut config = PspConfig::for_chip(chain.chip.clone());
        config.measurement = GOOD_MEASUREMENT;
        let psp = Psp::new(&secrets, config, chain.certs.vcek_key.clone());
        let messenger =
            GuestMessenger::new(secrets.vmpck(0).unwrap(), 0, GuestMessenger::FIRST_SEQNO).unwrap();
        Platform {
            messenger,
            secrets,
            host: Host {
                psp,
                table: full_table(chain),
                pending: Vec::new(),
            },
        }
    }

    pub fn config(&mut self) -> &mut PspConfig {
        self.host.psp.config_mut()
    }

    pub fn evidence(&mut self) -> SnpEvidence<'_, Host> {
        SnpEvidence::new(&mut self.messenger, &mut self.host)
    }
}
