//! Fuzzes the getwork request body: the JSON-RPC parse and the decoding of a submitted `data`
//! (a decoded header encodes back to itself). Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    p2pool::worker::fuzz::getwork_body(data);
});
