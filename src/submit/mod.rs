//! Found blocks on their way to bitcoind: [`gate`] decides which go when (one block per parent
//! with bitcoind at a time); the [`BlockSubmitter`] that sends them lives with the rest of the
//! bitcoind client (`bitcoind/submit.rs`) and is re-exported here.

pub mod gate;

pub use crate::bitcoind::{BlockSubmitter, FoundBlock, P2pOutcome, RpcOutcome, SubmitConfig};
