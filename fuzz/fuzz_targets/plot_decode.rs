//! Plot-file decoders: the header, a line-point park of any table, a C3 park, and a whole plot
//! opened from the bytes and asked a challenge. None may panic; a proof that comes back must
//! verify.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plotfile::format::{PlotHeader, Sizes};
use plotfile::park;
use plotfile::{MemStorage, Prover};

fuzz_target!(|data: &[u8]| {
    let _ = PlotHeader::parse(data);
    if data.len() < 4 {
        return;
    }
    let k = 18 + data[0] % 33;
    let table = 1 + data[1] % 6;
    let index = u64::from(u16::from_le_bytes([data[2], data[3]])) % 2048;
    let sizes = Sizes::new(k);
    let body = &data[4..];
    let _ = park::line_point(&sizes, table, body, index);
    let _ = park::c3_positions(k, 0, index, 0, body, 0);
    let _ = park::line_point_to_square(park::read_bits_u128(body, 0, 2 * u32::from(k)));
    if let Ok(prover) = Prover::open(MemStorage(data.to_vec())) {
        let challenge = [data[1]; 32];
        if let Ok(proved) = prover.prove(&challenge) {
            for p in proved.proofs {
                assert!(sharechain::pospace::validate_proof(
                    prover.id(),
                    prover.k(),
                    &challenge,
                    &p.proof
                )
                .is_ok());
            }
        }
    }
});
