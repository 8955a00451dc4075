//! Fuzzes the PoSpace share decoder on every network (the first byte picks one): never panics,
//! whatever decodes re-encodes to the same bytes, and its stand-alone checks never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sharechain::pospace_share::{check_share, ChiaNetwork, KnownSignagePoints, PoSpaceShare, SignagePoint};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let network = ChiaNetwork::ALL[usize::from(pick) % ChiaNetwork::ALL.len()];
    if let Ok(share) = PoSpaceShare::decode(bytes, network) {
        assert_eq!(share.to_bytes(), bytes, "encoding is canonical");
        let c = share.content();
        let mut known = KnownSignagePoints::new();
        known.insert(SignagePoint {
            challenge_hash: c.challenge_hash,
            sp_hash: c.sp_hash,
            index: c.signage_point_index,
            peak_height: c.peak_height,
        });
        let _ = check_share(&share, network, &known);
    }
});
