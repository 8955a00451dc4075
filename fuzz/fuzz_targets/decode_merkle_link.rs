//! Fuzzes the `MerkleLink` decoder: never panics, and whatever decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sharechain::encode::{Decode, Encode};
use sharechain::share::MerkleLink;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = MerkleLink::from_bytes(data) {
        assert_eq!(value.to_bytes(), data, "encoding is canonical");
    }
});
