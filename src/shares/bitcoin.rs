//! The Bitcoin share kind: p2pool header shares ([`CheckedShare`]) under [`ShareVerifier`], in
//! the store's `shares` table, on the share network's original names (so existing peers and
//! existing stores keep working).

use std::sync::Arc;

use bitcoin::BlockHash;
use sharechain::build::{prepare, BuildError, WorkBase};
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
    type View = BitcoinView;

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

    fn view(
        params: &'static NetworkParams,
        tracker: &KindTracker<Self>,
        previous: Option<&BitcoinView>,
    ) -> BitcoinView {
        let best = tracker.best();
        if let Some(prev) = previous.filter(|p| p.best_hash() == best && p.work.is_ok()) {
            return prev.clone();
        }
        let chain = tracker.chain();
        let recent = match best {
            Some(b) => chain
                .ancestors(&b)
                .take(recent_len(params))
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        BitcoinView {
            work: prepare(chain, params, best).map(Arc::new),
            recent: Arc::new(recent),
        }
    }
}

/// Shares of the best chain the view keeps: an hour of shares and one more (the pool rate and
/// stale figures of the status page).
pub fn recent_len(params: &NetworkParams) -> usize {
    (3600 / params.share_period.max(1)) as usize + 1
}

/// The Bitcoin kind's published view of the chain: what work building and the HTTP API read,
/// derived once per change of the best share by the share worker.
#[derive(Debug, Clone)]
pub struct BitcoinView {
    /// The best share prepared for building on (`sharechain::prepare`): each miner's template
    /// is `work.template(&request)`. Also what a block found now would pay (`/current_payouts`,
    /// `/users`). An error when the best share's history is incomplete.
    pub work: Result<Arc<WorkBase>, BuildError>,
    /// The best share and its ancestors, newest first: an hour of shares and one more
    /// ([`recent_len`]). Empty without a best share.
    pub recent: Arc<Vec<Arc<CheckedShare>>>,
}

impl BitcoinView {
    /// The best share's hash.
    pub fn best_hash(&self) -> Option<ShareHash> {
        self.recent.first().map(|s| s.hash())
    }

    /// The best share.
    pub fn best_share(&self) -> Option<&Arc<CheckedShare>> {
        self.recent.first()
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
