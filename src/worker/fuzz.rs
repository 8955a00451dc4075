//! Entry points for the fuzz targets in `fuzz/`: the worker port's decoders run on arbitrary
//! bytes, without a session, a provider or a socket. Not an API: hidden from the docs.

use bitcoin::Network;
use serde_json::Value;

use super::getwork::{decode_data, encode_data, parse_request as parse_getwork, Call};
use super::stratum::codec::{
    parse_difficulty, parse_hex_u32, parse_request, parse_target_difficulty, LineReader,
};
use super::username::parse_username;

/// Longest line in the fuzzed stream: short, so the length limit is reached often.
const MAX_LINE: usize = 1024;

/// Split `data` into stratum lines as a session reads them (a tiny read buffer, so lines cross
/// buffer boundaries), then parse every request and the parameters its method takes.
pub fn stratum_lines(data: &[u8]) {
    let mut reader = LineReader::new(data, 7, MAX_LINE);
    // A slice is always ready: no runtime is needed to drive the reader.
    while let Ok(true) = futures::executor::block_on(reader.next_line()) {
        let line = reader.line();
        assert!(line.len() <= MAX_LINE, "lines are bounded");
        assert!(!line.contains(&b'\n'), "one line at a time");
        let Ok(request) = parse_request(line) else {
            continue;
        };
        let first = request.params.first();
        match request.method.as_deref() {
            Some("mining.authorize") => {
                if let Some(user) = first.and_then(Value::as_str) {
                    let _ = parse_username(user, Network::Bitcoin);
                }
            }
            Some("mining.suggest_difficulty") => {
                if let Some(d) = parse_difficulty(first) {
                    assert!(d.is_finite() && d > 0.0);
                }
            }
            Some("mining.suggest_target") => {
                if let Some(d) = parse_target_difficulty(first) {
                    assert!(d.is_finite() && d > 0.0);
                }
            }
            _ => request.params.iter().for_each(|p| {
                let _ = parse_hex_u32(Some(p));
            }),
        }
    }
}

/// Parse `data` as a getwork request body, and decode the `data` of a submission; a header that
/// decodes encodes back to the same first 80 bytes.
pub fn getwork_body(data: &[u8]) {
    let (_, call) = parse_getwork(data);
    if let Ok(Call::Submit(work)) = call {
        if let Some(header) = decode_data(&work) {
            let again = encode_data(&header);
            assert_eq!(decode_data(&again), Some(header), "encoding round-trips");
        }
    }
}
