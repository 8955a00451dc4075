//! Fuzzes the classification of a bitcoind HTTP reply (the first two bytes pick the status, the
//! rest is the body): every reply is a value or a classified error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((status, body)) = data.split_first_chunk::<2>() else {
        return;
    };
    let status = 100 + u16::from_le_bytes(*status) % 500;
    if let Some(Err(e)) = p2pool::bitcoind::parse_http_reply(status, body) {
        let _ = (e.is_transient(), e.code(), e.to_string());
    }
});
