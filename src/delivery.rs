//! How the node's found blocks leave it: [`NodeDelivery`] sends a block to bitcoind (RPC and
//! P2P) and, for our own, to every peer; [`FoundBlocks`] is the gate in front of it (once per
//! parent); [`NodeWork`] is the work builder that feeds it.
//!
//! Kept out of `node` so that modules the node starts (the HTTP API holds a [`NodeWork`]) can
//! name these types without depending on the node itself.

use bitcoin::Block;

use crate::p2p::P2pHandle;
use crate::shares::ShareService;
use crate::submit::gate::{BlockGate, Deliver, Origin, StillUseful, Verdict};
use crate::submit::BlockSubmitter;
use crate::work::{BlockSink, WorkBuilder};

/// How found blocks reach bitcoind (RPC and P2P) and, for our own, every peer, whose nodes
/// submit them to their own bitcoinds. The [`BlockGate`] in front decides which blocks go.
#[derive(Debug, Clone)]
pub struct NodeDelivery {
    pub(crate) submitter: BlockSubmitter,
    pub(crate) peers: P2pHandle,
}

impl Deliver for NodeDelivery {
    fn deliver(
        &self,
        block: Block,
        origin: Origin,
        still_useful: StillUseful,
    ) -> impl std::future::Future<Output = Verdict> + Send {
        let this = self.clone();
        async move {
            let gossip = async {
                if origin == Origin::Local {
                    this.peers.publish_block(&block).await;
                }
            };
            // Our bitcoind must not wait on the share network's queue, nor peers on our bitcoind.
            let (_, outcome) = tokio::join!(
                gossip,
                this.submitter.submit_while(block.clone(), &*still_useful)
            );
            match outcome.accepted {
                Some(true) => Verdict::Accepted,
                Some(false) => Verdict::Rejected,
                None => Verdict::Unknown,
            }
        }
    }
}

/// Found blocks, once per parent, to bitcoind and peers.
pub type FoundBlocks = BlockGate<NodeDelivery>;

impl BlockSink for FoundBlocks {
    fn submit_block(&self, block: Block) {
        self.offer(block, Origin::Local);
    }

    fn wants(&self, parent: &bitcoin::BlockHash) -> bool {
        self.wants_local(parent)
    }
}

/// The work builder of a running node.
pub type NodeWork = WorkBuilder<ShareService, FoundBlocks>;
