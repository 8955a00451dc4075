//! Fuzzes what a chia full node sends the node's link: a message frame whose payload is decoded
//! as `new_signage_point` and turned into a signage point, and (the same bytes) a
//! `get_blockchain_state` answer; every input is a value or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2pool::chia::protocol::{Frame, NewSignagePoint};

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = Frame::decode(data) {
        if let Ok(m) = frame.payload::<NewSignagePoint>("new_signage_point") {
            let _ = p2pool::chia::full_node::peer::source_point(0, &m);
        }
    }
    let _ = p2pool::chia::full_node::rpc::parse_blockchain_state(data);
});
