//! Fuzzes `SubmitBlockResult::from_json` on any JSON a `submitblock` reply could hold: an
//! outcome or a typed error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2pool::bitcoind::SubmitBlockResult;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(result) = SubmitBlockResult::from_json(value) {
            let _ = result.is_accepted();
        }
    }
});
