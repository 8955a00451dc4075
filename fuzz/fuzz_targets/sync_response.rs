//! Fuzzes the share-sync response decoder: never panics, whatever decodes re-encodes to the same
//! bytes, and no share it carries exceeds the size limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2pool::p2p::protocol::{SyncResponse, MAX_SHARE_BYTES};

fuzz_target!(|data: &[u8]| {
    if let Ok(response) = SyncResponse::decode(data) {
        assert_eq!(response.encode(), data, "encoding is canonical");
        if let SyncResponse::Shares { shares, .. } = &response {
            assert!(shares
                .iter()
                .all(|s| !s.is_empty() && s.len() <= MAX_SHARE_BYTES));
        }
    }
});
