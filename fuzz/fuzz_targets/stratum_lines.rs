//! Fuzzes the stratum side of the worker port: a byte stream split into bounded lines as a
//! session reads it, each parsed as a request with the parameters its method takes (username,
//! difficulty, target, hex fields). Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    p2pool::worker::fuzz::stratum_lines(data);
});
