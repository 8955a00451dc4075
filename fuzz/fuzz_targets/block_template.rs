//! Fuzzes `BlockTemplate::from_json` on any JSON a `getblocktemplate` reply could hold: a
//! template or a typed error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2pool::bitcoind::BlockTemplate;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(template) = BlockTemplate::from_json(value) {
            let _ = template.has_rule("segwit");
        }
    }
});
