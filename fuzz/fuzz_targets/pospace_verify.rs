//! Chia PoS v1 verifier: parse any text as a vector line and verify it, and verify raw bytes as
//! (plot id, k, challenge, proof). Neither may panic; an accepted proof must give a quality that
//! a second verification repeats.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sharechain::pospace::{validate_proof, VectorLine};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(line) = VectorLine::parse(text) {
            let _ = line.as_proof().validate();
        }
    }
    if data.len() >= 65 {
        let plot_id: [u8; 32] = data[..32].try_into().unwrap();
        let challenge: [u8; 32] = data[32..64].try_into().unwrap();
        let k = data[64];
        let proof = &data[65..];
        if let Ok(q) = validate_proof(&plot_id, k, &challenge, proof) {
            assert_eq!(validate_proof(&plot_id, k, &challenge, proof), Ok(q));
        }
    }
});
