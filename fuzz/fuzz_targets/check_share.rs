//! Fuzzes the stand-alone share checks (hash link, proof of work, targets, timestamps) on
//! whatever decodes: they must return an error or a share, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sharechain::params::NetworkParams;
use sharechain::share::CheckedShare;

fuzz_target!(|data: &[u8]| {
    for params in NetworkParams::all() {
        let _ = CheckedShare::from_bytes(data, params, 1_700_000_000);
    }
});
