//! The development certificate chain: ARK (RSA-4096, self-signed) -> ASK
//! (RSA-4096) -> VCEK (EC P-384), shaped like AMD's: RSASSA-PSS with
//! SHA-384 / MGF1-SHA-384 / salt 48 on every link, CA key usages and basic
//! constraints on ARK and ASK, and on the VCEK AMD's structVersion,
//! productName, SPL and hwID extensions. Keys come from the operating
//! system's generator at run time; nothing private is ever committed.
//!
//! FOR DEVELOPMENT ONLY: anyone holding these files can forge reports. A
//! key broker must never trust this ARK outside development and CI.

use std::fs;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Context, Result};
use p384::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use rand_core::OsRng;
use rsa::pss::SigningKey as PssSigningKey;
use rsa::signature::{Keypair, RandomizedSigner, SignatureEncoding};
use rsa::RsaPrivateKey;
use sha2::Sha384;
use svtpm_snp_verify::vcek::{
    OID_BL_SPL, OID_HWID, OID_PRODUCT_NAME, OID_SNP_SPL, OID_SPL_4_TO_7, OID_STRUCT_VERSION,
    OID_TEE_SPL, OID_UCODE_SPL,
};
use x509_cert::der::asn1::{BitString, Ia5String, OctetString};
use x509_cert::der::oid::{AssociatedOid, ObjectIdentifier};
use x509_cert::der::pem::LineEnding;
use x509_cert::der::referenced::OwnedToRef;
use x509_cert::der::Encode;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{DynSignatureAlgorithmIdentifier, SubjectPublicKeyInfoOwned};
use x509_cert::time::Validity;
use x509_cert::{Certificate, TbsCertificate, Version};

use crate::config::ChipIdentity;

/// RSA modulus size of the ARK and ASK.
const RSA_BITS: usize = 4096;

const ORG: &str = "OU=Engineering,C=US,L=Santa Clara,ST=CA,O=svtpm development chain - NOT AMD";

/// A generated chain and the VCEK private key the simulator signs with.
pub struct TestChain {
    /// ARK certificate, DER.
    pub ark: Vec<u8>,
    /// ASK certificate, DER.
    pub ask: Vec<u8>,
    /// VCEK certificate, DER.
    pub vcek: Vec<u8>,
    /// The VCEK's private key.
    pub vcek_key: p384::ecdsa::SigningKey,
}

impl std::fmt::Debug for TestChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestChain").finish_non_exhaustive()
    }
}

fn extension<T: Encode + ?Sized>(
    oid: ObjectIdentifier,
    critical: bool,
    value: &T,
) -> Result<Extension> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

fn standard<T: Encode + AssociatedOid>(critical: bool, value: &T) -> Result<Extension> {
    extension(T::OID, critical, value)
}

/// Signs `tbs` (whose `signature` field is filled here) with `signer`.
fn issue(mut tbs: TbsCertificate, signer: &PssSigningKey<Sha384>) -> Result<Certificate> {
    let alg = signer.signature_algorithm_identifier()?;
    tbs.signature = alg.clone();
    let sig = signer.try_sign_with_rng(&mut OsRng, &tbs.to_der()?)?;
    Ok(Certificate {
        tbs_certificate: tbs,
        signature_algorithm: alg,
        signature: BitString::from_bytes(&sig.to_bytes())?,
    })
}

fn tbs(
    serial: u8,
    issuer: &Name,
    subject: &Name,
    years: u64,
    spki: SubjectPublicKeyInfoOwned,
    extensions: Vec<Extension>,
) -> Result<TbsCertificate> {
    Ok(TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(&[0x02, 0x00, serial])?,
        signature: spki.algorithm.clone(), // replaced by issue()
        issuer: issuer.clone(),
        validity: Validity::from_now(Duration::from_secs(years * 365 * 24 * 3600))?,
        subject: subject.clone(),
        subject_public_key_info: spki,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions),
    })
}

fn rsa_pss_key() -> Result<PssSigningKey<Sha384>> {
    let key = RsaPrivateKey::new(&mut OsRng, RSA_BITS).context("RSA-4096 key generation")?;
    Ok(PssSigningKey::<Sha384>::new(key))
}

impl TestChain {
    /// Generates a fresh chain certifying `chip`. Takes seconds (two
    /// RSA-4096 keys).
    pub fn generate(chip: &ChipIdentity) -> Result<TestChain> {
        let ark_key = rsa_pss_key()?;
        let ask_key = rsa_pss_key()?;
        let vcek_key = p384::ecdsa::SigningKey::random(&mut OsRng);

        let ark_name = Name::from_str(&format!("CN=ARK-Genoa,{ORG}"))?;
        let ask_name = Name::from_str(&format!("CN=SEV-Genoa,{ORG}"))?;
        let vcek_name = Name::from_str(&format!("CN=SEV-VCEK,{ORG}"))?;

        let ark_spki = SubjectPublicKeyInfoOwned::from_key(ark_key.verifying_key())?;
        let ask_spki = SubjectPublicKeyInfoOwned::from_key(ask_key.verifying_key())?;
        let vcek_spki = SubjectPublicKeyInfoOwned::try_from(
            vcek_key.verifying_key().to_public_key_der()?.as_bytes(),
        )?;
        let ark_ski = SubjectKeyIdentifier::try_from(ark_spki.owned_to_ref())?;
        let ask_ski = SubjectKeyIdentifier::try_from(ask_spki.owned_to_ref())?;
        let aki = AuthorityKeyIdentifier {
            key_identifier: Some(ark_ski.0.clone()),
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        };

        let ark = issue(
            tbs(
                0,
                &ark_name,
                &ark_name,
                25,
                ark_spki,
                vec![
                    standard(true, &KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign))?,
                    standard(false, &ark_ski)?,
                    standard(
                        true,
                        &BasicConstraints {
                            ca: true,
                            path_len_constraint: None,
                        },
                    )?,
                ],
            )?,
            &ark_key,
        )?;
        let ask = issue(
            tbs(
                2,
                &ark_name,
                &ask_name,
                25,
                ask_spki,
                vec![
                    standard(false, &ask_ski)?,
                    standard(false, &aki)?,
                    standard(
                        true,
                        &BasicConstraints {
                            ca: true,
                            path_len_constraint: Some(0),
                        },
                    )?,
                    standard(true, &KeyUsage(KeyUsages::KeyCertSign.into()))?,
                ],
            )?,
            &ark_key,
        )?;
        let tcb = chip.reported_tcb;
        let mut vcek_ext = vec![
            extension(OID_STRUCT_VERSION, false, &1u8)?,
            extension(
                OID_PRODUCT_NAME,
                false,
                &Ia5String::new(&chip.product_name)?,
            )?,
            extension(OID_BL_SPL, false, &tcb.boot_loader())?,
            extension(OID_TEE_SPL, false, &tcb.tee())?,
            extension(OID_SNP_SPL, false, &tcb.snp())?,
        ];
        for (i, oid) in OID_SPL_4_TO_7.iter().enumerate() {
            vcek_ext.push(extension(*oid, false, &tcb.0[2 + i])?);
        }
        vcek_ext.push(extension(OID_UCODE_SPL, false, &tcb.microcode())?);
        // hwID is the 64 raw bytes, not a DER value.
        vcek_ext.push(Extension {
            extn_id: OID_HWID,
            critical: false,
            extn_value: OctetString::new(chip.chip_id.to_vec())?,
        });
        let vcek = issue(
            tbs(1, &ask_name, &vcek_name, 7, vcek_spki, vcek_ext)?,
            &ask_key,
        )?;

        Ok(TestChain {
            ark: ark.to_der()?,
            ask: ask.to_der()?,
            vcek: vcek.to_der()?,
            vcek_key,
        })
    }

    /// Writes the chain to `dir`: `ark.der`, `ask.der`, `vcek.der`, their
    /// PEM twins, `cert_chain.pem` (ASK then ARK, as AMD's KDS serves it)
    /// and `vcek-key.pem` (PKCS#8, mode 0600: the simulator's signing key).
    pub fn write(&self, dir: &Path) -> Result<()> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let pem = |der: &[u8]| -> Result<String> {
            Ok(x509_cert::der::Document::try_from(der)?.to_pem("CERTIFICATE", LineEnding::LF)?)
        };
        for (name, der) in [("ark", &self.ark), ("ask", &self.ask), ("vcek", &self.vcek)] {
            fs::write(dir.join(format!("{name}.der")), der)?;
            fs::write(dir.join(format!("{name}.pem")), pem(der)?)?;
        }
        fs::write(
            dir.join("cert_chain.pem"),
            pem(&self.ask)? + &pem(&self.ark)?,
        )?;
        let key_path = dir.join("vcek-key.pem");
        let key_pem = self.vcek_key.to_pkcs8_pem(LineEnding::LF)?;
        write_private(&key_path, key_pem.as_bytes())?;
        fs::write(dir.join(CHIP_ID_FILE), hex(&self.chip()?.chip_id) + "\n")?;
        Ok(())
    }

    /// The certificate table a host returns with an extended guest
    /// request for this chain (VCEK, ASK, ARK).
    pub fn cert_table(&self) -> Result<Vec<u8>> {
        crate::cert_table::cert_table(&self.ark, &self.ask, &self.vcek)
    }

    /// The chip identity the VCEK certifies (hwID, TCB, product name), so
    /// a simulator loaded from files reports what its VCEK says.
    pub fn chip(&self) -> Result<ChipIdentity> {
        let cert = svtpm_snp_verify::Cert::from_der(svtpm_snp_verify::Role::Vcek, &self.vcek)?;
        let vcek = svtpm_snp_verify::Vcek::from_cert(&cert)?;
        Ok(ChipIdentity {
            chip_id: *vcek.hwid(),
            reported_tcb: vcek.tcb(),
            product_name: vcek.product_name().unwrap_or_default().to_string(),
        })
    }

    /// Reads a chain written by [`TestChain::write`]: each certificate from
    /// its `.der` file, or its `.pem` file when there is no `.der`; the VCEK
    /// key from `vcek-key.pem`. The certificates must form a chain the
    /// VCEK key belongs to, and `chip-id.hex`, when present, must be the
    /// VCEK's hwID.
    pub fn load(dir: &Path) -> Result<TestChain> {
        let read = |name: &str| {
            fs::read(dir.join(name))
                .with_context(|| format!("reading {}", dir.join(name).display()))
        };
        use svtpm_snp_verify::{Cert, Role};
        let cert = |role: Role, name: &str| -> Result<Cert> {
            let der = dir.join(format!("{name}.der"));
            let path = if der.exists() {
                der
            } else {
                dir.join(format!("{name}.pem"))
            };
            Cert::from_file(role, &path).map_err(|e| anyhow!("{}: {e}", path.display()))
        };
        let (ark, ask, vcek) = (
            cert(Role::Ark, "ark")?,
            cert(Role::Ask, "ask")?,
            cert(Role::Vcek, "vcek")?,
        );
        let key_pem = String::from_utf8(read("vcek-key.pem")?)
            .map_err(|_| anyhow!("vcek-key.pem is not text"))?;
        let vcek_key = p384::ecdsa::SigningKey::from_pkcs8_pem(&key_pem)
            .map_err(|e| anyhow!("vcek-key.pem: {e}"))?;
        let anchor = svtpm_snp_verify::TrustAnchor::new(ark.clone())
            .map_err(|e| anyhow!("{}: ark: {e}", dir.display()))?;
        let certified = svtpm_snp_verify::verify_chain(&anchor, &ask, &vcek, SystemTime::now())
            .map_err(|e| anyhow!("{}: the chain does not verify: {e}", dir.display()))?;
        if certified.key() != vcek_key.verifying_key() {
            bail!(
                "{}: vcek-key.pem is not the key vcek's certificate holds",
                dir.display()
            );
        }
        let chain = TestChain {
            ark: ark.der().to_vec(),
            ask: ask.der().to_vec(),
            vcek: vcek.der().to_vec(),
            vcek_key,
        };
        let chip_file = dir.join(CHIP_ID_FILE);
        if chip_file.exists() {
            let text = fs::read_to_string(&chip_file)
                .with_context(|| format!("reading {}", chip_file.display()))?;
            if text.trim() != hex(&chain.chip()?.chip_id) {
                bail!("{} does not match the VCEK's hwID", chip_file.display());
            }
        }
        Ok(chain)
    }
}

/// The file holding the chip ID (128 hex digits), for people and scripts;
/// the VCEK's hwID is authoritative.
pub const CHIP_ID_FILE: &str = "chip-id.hex";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}
