//! The Bitcoin share kind: p2pool header shares ([`CheckedShare`]) under [`ShareVerifier`], in
//! the store's `shares` table, on the share network's original names (so existing peers and
//! existing stores keep working).

use bitcoin::BlockHash;
use sharechain::chain::Chain;
use sharechain::encode::Encode;
use sharechain::share::ShareError;
use sharechain::{new_tracker, CheckedShare, NetworkParams, ShareHash, ShareVerifier, VerifyError};

use super::kind::{KindTracker, Refusal, ShareKind};
use crate::p2p::Names;

/// The Bitcoin share kind.
#[derive(Debug, Clone, Copy)]
pub struct Bitcoin;

impl ShareKind for Bitcoin {
    const NAME: &'static str = "bitcoin";
    const TABLE: &'static str = "shares";

    type Params = NetworkParams;
    type Tip = BlockHash;
    type Share = CheckedShare;
    type Verifier = ShareVerifier;
    type VerifyError = VerifyError;
    type DecodeError = ShareError;

    fn network_name(params: &NetworkParams) -> &'static str {
        params.name
    }

    fn new_tracker(params: &'static NetworkParams) -> KindTracker<Self> {
        new_tracker(params)
    }

    fn encode(share: &CheckedShare) -> Vec<u8> {
        share.share().to_bytes()
    }

    fn decode(
        bytes: &[u8],
        params: &'static NetworkParams,
        now: u64,
    ) -> Result<CheckedShare, ShareError> {
        CheckedShare::from_bytes(bytes, params, now)
    }

    fn refusal(error: &ShareError) -> Refusal {
        match error {
            ShareError::FutureTimestamp { .. } => Refusal::Early,
            ShareError::Decode(_) => Refusal::Malformed,
            _ => Refusal::Invalid,
        }
    }

    /// The absolute height the share carries.
    fn height(chain: &Chain<CheckedShare>, hash: &ShareHash) -> u32 {
        chain
            .get(hash)
            .map(|s| s.share().share_info.absheight)
            .unwrap_or(0)
    }

    fn names(params: &NetworkParams) -> Names {
        Names::new(params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Existing peers and stores keep working: the Bitcoin kind's wire names and table are the
    /// ones the node used before share kinds.
    #[test]
    fn the_bitcoin_kind_keeps_the_original_names_and_table() {
        for params in NetworkParams::all() {
            let names = Bitcoin::names(params);
            let base = format!(
                "p2pool/{}-{}/v{}",
                params.name,
                hex::encode(params.identifier),
                params.current_share_version()
            );
            assert_eq!(names.shares_topic, format!("{base}/shares"));
            assert_eq!(names.sync.as_ref(), format!("/{base}/sync/1"));
            assert_eq!(names.identify_version(), format!("/{base}/1"));
        }
        assert_eq!(Bitcoin::TABLE, crate::store::DEFAULT_TABLE);
        assert_eq!(Bitcoin::TABLE, "shares");
    }
}
