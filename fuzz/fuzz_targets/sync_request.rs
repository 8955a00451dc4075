//! Fuzzes the share-sync request decoder: never panics, and whatever decodes re-encodes to the
//! same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2pool::p2p::protocol::SyncRequest;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = SyncRequest::decode(data) {
        assert_eq!(request.encode(), data, "encoding is canonical");
    }
});
