//! Fuzzes the `ShareInfo` decoder: never panics, and whatever decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sharechain::encode::{Decode, Encode};
use sharechain::share::ShareInfo;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = ShareInfo::from_bytes(data) {
        assert_eq!(value.to_bytes(), data, "encoding is canonical");
    }
});
