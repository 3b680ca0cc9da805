//! Fuzzes the certificate table a host returns with an extended guest
//! request (`attest::snp::parse_cert_table`): arbitrary bytes must never
//! panic, every accepted certificate must be non-empty and lie inside the
//! buffer, and no kind may appear twice.
#![no_main]

use libfuzzer_sys::fuzz_target;
use svtpm::attest::snp::parse_cert_table;

fuzz_target!(|data: &[u8]| {
    let Ok(entries) = parse_cert_table(data) else {
        return;
    };
    let base = data.as_ptr() as usize;
    let mut kinds = Vec::new();
    for e in &entries {
        let start = e.data.as_ptr() as usize - base;
        assert!(start + e.data.len() <= data.len());
        assert!(!e.data.is_empty());
        assert!(!kinds.contains(&e.kind), "a kind appears twice");
        kinds.push(e.kind);
    }
});
