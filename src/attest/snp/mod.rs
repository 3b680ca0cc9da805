//! SEV-SNP attestation: guest request messages and attestation reports.
