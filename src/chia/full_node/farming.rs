//! The outcome of the node's block attempts ([`crate::chia::farmer::blocks`]), from the full
//! node's RPC: for each attempt still waiting, the blocks just above the peak its signage point
//! saw (`get_blocks`) are searched for its proof of space; found, the block's record
//! (`get_block_record`) gives its height and puzzle hashes; not found once the chain is
//! [`SEARCH_HEIGHTS`] past it (or after [`GIVE_UP`]), it was not included.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::chia::farmer::blocks::{Resolution, Waiting};
use crate::chia::farmer::Farmer;

use super::rpc::{RpcClient, RpcError};

/// Heights above the signage point's peak an attempt's block is looked for.
pub const SEARCH_HEIGHTS: u32 = 10;
/// Heights below it also searched (a block infused before the signage point's peak).
const SEARCH_BELOW: u32 = 2;
/// An attempt not in the chain after this long is not included, whatever the peak.
pub const GIVE_UP: Duration = Duration::from_secs(600);

/// `0x…` or bare hex as bytes.
fn hex_field(v: &Value) -> Option<Vec<u8>> {
    let s = v.as_str()?;
    hex::decode(s.strip_prefix("0x").unwrap_or(s)).ok()
}

fn hash_field(v: &Value) -> Option<[u8; 32]> {
    hex_field(v)?.try_into().ok()
}

/// The header hash of the block among `blocks` (`get_blocks`' answer) made with `w`'s proof.
pub fn find_block(blocks: &Value, w: &Waiting) -> Option<([u8; 32], u32)> {
    let proof = w.proof.proof.as_slice();
    let plot_pk = w.proof.plot_public_key.to_bytes();
    blocks["blocks"].as_array()?.iter().find_map(|b| {
        let pos = &b["reward_chain_block"]["proof_of_space"];
        let same = hex_field(&pos["proof"]).as_deref() == Some(proof)
            && hex_field(&pos["plot_public_key"]).as_deref() == Some(&plot_pk[..]);
        if !same {
            return None;
        }
        let height = u32::try_from(b["reward_chain_block"]["height"].as_u64()?).ok()?;
        Some((hash_field(&b["header_hash"])?, height))
    })
}

/// One attempt: in the chain, not included, or still open (`None`).
async fn outcome(rpc: &RpcClient, w: &Waiting, peak: u32) -> Result<Option<Resolution>, RpcError> {
    let from = w.sp_peak_height.saturating_sub(SEARCH_BELOW);
    let last = w.sp_peak_height.saturating_add(SEARCH_HEIGHTS).min(peak);
    if peak >= from {
        let blocks = rpc
            .call_json_with(
                "get_blocks",
                &json!({ "start": from, "end": last + 1, "exclude_header_hash": false, "exclude_reorged": true }),
            )
            .await?;
        if let Some((header_hash, height)) = find_block(&blocks, w) {
            let record = rpc
                .call_json_with(
                    "get_block_record",
                    &json!({ "header_hash": format!("0x{}", hex::encode(header_hash)) }),
                )
                .await
                .ok();
            let field = |name: &str| {
                record
                    .as_ref()
                    .and_then(|r| hash_field(&r["block_record"][name]))
            };
            return Ok(Some(Resolution::InChain {
                height,
                header_hash,
                farmer_puzzle_hash: field("farmer_puzzle_hash"),
                pool_puzzle_hash: field("pool_puzzle_hash"),
            }));
        }
    }
    let age = crate::chia::farmer::now_secs().saturating_sub(w.time);
    if peak >= w.sp_peak_height.saturating_add(SEARCH_HEIGHTS) {
        return Ok(Some(Resolution::NotIncluded(format!(
            "no block with this proof at heights {from} to {last} (peak {peak})"
        ))));
    }
    if age >= GIVE_UP.as_secs() {
        return Ok(Some(Resolution::NotIncluded(format!(
            "not in the chain after {age} s (peak {peak})"
        ))));
    }
    Ok(None)
}

/// Every `every`, the outcome of the attempts waiting.
pub(super) async fn run_outcomes(farmer: Arc<Farmer>, rpc: RpcClient, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let waiting = farmer.blocks().waiting();
        if waiting.is_empty() {
            continue;
        }
        let peak = match rpc.blockchain_state().await {
            Ok(state) => state.peak_height,
            Err(e) => {
                tracing::debug!(error = %e, "block outcomes: no blockchain state");
                continue;
            }
        };
        let Some(peak) = peak else { continue };
        for w in &waiting {
            match outcome(&rpc, w, peak).await {
                Ok(Some(resolution)) => farmer.resolve_block(w.id, resolution),
                Ok(None) => {}
                Err(e) => tracing::debug!(attempt = w.id, error = %e, "block outcome unknown yet"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chia_protocol::{Bytes32, ProofOfSpace};

    #[test]
    fn a_block_is_found_by_its_proof_and_plot_key() {
        let pk = chia_bls::SecretKey::from_seed(&[7; 32]).public_key();
        let proof = ProofOfSpace {
            challenge: Bytes32::new([1; 32]),
            pool_public_key: None,
            pool_contract_puzzle_hash: Some(Bytes32::new([2; 32])),
            plot_public_key: pk,
            version: 0,
            plot_index: 0,
            meta_group: 0,
            strength: 0,
            size: 18,
            proof: vec![0xab; 8 * 18].into(),
        };
        let w = Waiting {
            id: 1,
            stage: crate::chia::farmer::blocks::Stage::SignedValues,
            sp_peak_height: 5,
            time: 0,
            proof: proof.clone(),
        };
        let block = |proof_hex: String, height: u32| {
            json!({
                "header_hash": format!("0x{}", "cd".repeat(32)),
                "reward_chain_block": {
                    "height": height,
                    "proof_of_space": {
                        "proof": proof_hex,
                        "plot_public_key": format!("0x{}", hex::encode(pk.to_bytes())),
                    }
                }
            })
        };
        let theirs = block(format!("0x{}", "00".repeat(8 * 18)), 6);
        let ours = block(format!("0x{}", "ab".repeat(8 * 18)), 7);
        let answer = json!({ "blocks": [theirs.clone(), ours] });
        assert_eq!(find_block(&answer, &w), Some(([0xcd; 32], 7)));
        assert_eq!(find_block(&json!({ "blocks": [theirs] }), &w), None);
        assert_eq!(find_block(&json!({}), &w), None);
    }
}
