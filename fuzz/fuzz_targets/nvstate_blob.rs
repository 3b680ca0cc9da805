//! Fuzzes the sealed-state parser: arbitrary bytes, mutations of one
//! authentic blob, and arbitrary slot contents given to `VtpmState::open`.
//! Nothing may panic, and nothing but the authentic blob itself may open.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use svtpm::nvstate::entropy::Nonce;
use svtpm::nvstate::memory::MemoryStore;
use svtpm::nvstate::{
    format, seal, EntropyError, EntropySource, MemoryGuard, SlotId, StateBlobs, StateKey, VtpmState,
};

/// Fixed bytes: the harness must be deterministic (never used outside it).
struct FixedEntropy;

impl EntropySource for FixedEntropy {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), EntropyError> {
        dest.iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = i as u8 + 1);
        Ok(())
    }
}

struct Fixture {
    key: StateKey,
    blobs: StateBlobs,
    sealed: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let key = StateKey::new(&[0x3c; 32]).unwrap();
        let mut blobs = StateBlobs::new();
        blobs.insert("permall", &[0xa5; 64]).unwrap();
        blobs.insert("volatilestate", b"volatile").unwrap();
        let nonce = Nonce::draw(&mut FixedEntropy).unwrap();
        let sealed = seal::seal(&key, 7, &nonce, &blobs).unwrap();
        Fixture { key, blobs, sealed }
    })
}

/// Opens `bytes`; only the authentic blob may succeed, with its contents.
fn check_open(bytes: &[u8]) {
    let f = fixture();
    let _ = format::inspect(bytes);
    let _ = StateBlobs::decode(bytes);
    match seal::open(&f.key, bytes) {
        Ok(o) => {
            assert_eq!(bytes, &f.sealed[..], "forged blob opened");
            assert_eq!((o.generation, &o.blobs), (7, &f.blobs));
        }
        Err(_) => assert_ne!(bytes, &f.sealed[..], "authentic blob refused"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    match mode % 3 {
        // Arbitrary bytes.
        0 => check_open(rest),
        // The authentic blob with (offset, xor) edits, then cut or extended.
        1 => {
            let mut blob = f.sealed.clone();
            let mut edits = rest.chunks_exact(3);
            for e in &mut edits {
                let off = usize::from(u16::from_le_bytes([e[0], e[1]])) % blob.len();
                blob[off] ^= e[2];
            }
            match edits.remainder() {
                [n] => blob.truncate(usize::from(*n) * blob.len() / 256),
                [n, x] => blob.extend(std::iter::repeat_n(*x, usize::from(*n))),
                _ => {}
            }
            check_open(&blob);
        }
        // Two slots from the input (A, B: empty, authentic or arbitrary).
        _ => {
            let Some((&choice, rest)) = rest.split_first() else {
                return;
            };
            let mid = rest.len() / 2;
            let pick = |c: u8, raw: &[u8]| match c % 3 {
                0 => None,
                1 => Some(f.sealed.clone()),
                _ => Some(raw.to_vec()),
            };
            let a = pick(choice, &rest[..mid]);
            let b = pick(choice / 3, &rest[mid..]);
            let authentic = [&a, &b].iter().any(|s| s.as_deref() == Some(&f.sealed[..]));
            let mut store = MemoryStore::default();
            store.set_medium(SlotId::A, a);
            store.set_medium(SlotId::B, b);
            let guard = MemoryGuard::new();
            if let Ok(s) = VtpmState::open(f.key.clone(), store, guard, FixedEntropy) {
                assert!(authentic, "state opened without an authentic blob");
                assert_eq!((s.generation(), s.blobs()), (7, &f.blobs));
            }
        }
    }
});
