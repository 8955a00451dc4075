//! The devchain's Bitcoin P2P side over loopback: handshake, ping, announcements of new tips,
//! `getheaders`/`getdata`, block relay, mutated blocks, and garbage that must not hurt the node.

#![cfg(feature = "devchain")]

mod common;

use bitcoin::hashes::Hash;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::{GetHeadersMessage, Inventory};
use bitcoin::BlockHash;
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_ping_and_announcements() {
    let devchain = start().await;
    let rpc = Rpc::new(&devchain);
    let mut peer = P2p::connect(devchain.p2p_addr()).await;
    peer.handshake().await;
    peer.send(NetworkMessage::Ping(99)).await;
    let pong = peer
        .recv_until(|m| match m {
            NetworkMessage::Pong(n) => Some(*n),
            _ => None,
        })
        .await;
    assert_eq!(pong, 99);

    // Without sendheaders a new tip is announced by inv.
    let mined = rpc
        .call(
            "generatetoaddress",
            json!([1, op_true_address().to_string()]),
        )
        .await;
    let announced = peer
        .recv_until(|m| match m {
            NetworkMessage::Inv(items) => items.iter().find_map(|i| match i {
                Inventory::Block(h) => Some(*h),
                _ => None,
            }),
            _ => None,
        })
        .await;
    assert_eq!(json!([announced.to_string()]), mined);

    // After sendheaders it is announced by headers.
    peer.send(NetworkMessage::SendHeaders).await;
    // A ping round trip makes sure sendheaders was processed before mining.
    peer.send(NetworkMessage::Ping(1)).await;
    peer.recv_until(|m| matches!(m, NetworkMessage::Pong(1)).then_some(()))
        .await;
    let mined = rpc
        .call(
            "generatetoaddress",
            json!([1, op_true_address().to_string()]),
        )
        .await;
    let headers = peer
        .recv_until(|m| match m {
            NetworkMessage::Headers(h) if !h.is_empty() => Some(h.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        json!([headers.last().unwrap().block_hash().to_string()]),
        mined
    );

    // getheaders from genesis returns the whole chain; getdata returns the block.
    let genesis = rpc.call("getblockhash", json!([0])).await;
    let genesis: BlockHash = genesis.as_str().unwrap().parse().unwrap();
    peer.send(NetworkMessage::GetHeaders(GetHeadersMessage::new(
        vec![genesis],
        BlockHash::all_zeros(),
    )))
    .await;
    let headers = peer
        .recv_until(|m| match m {
            NetworkMessage::Headers(h) => Some(h.clone()),
            _ => None,
        })
        .await;
    assert_eq!(headers.len(), 2);
    let tip = headers[1].block_hash();
    peer.send(NetworkMessage::GetData(vec![Inventory::WitnessBlock(tip)]))
        .await;
    let block = peer
        .recv_until(|m| match m {
            NetworkMessage::Block(b) => Some(b.clone()),
            _ => None,
        })
        .await;
    assert_eq!(block.block_hash(), tip);
    timed("shutdown", devchain.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_relayed_over_p2p_moves_the_tip() {
    let devchain = start().await;
    let rpc = Rpc::new(&devchain);
    let mut peer = P2p::connect(devchain.p2p_addr()).await;
    peer.handshake().await;

    // Over P2P a committing coinbase without its reserved value is mutated: the tip stays.
    let gbt = template(&rpc).await;
    let mut mutated = block_from_template(&gbt, |cb| cb.input[0].witness.clear());
    grind(&mut mutated.header, true);
    peer.send(NetworkMessage::Block(mutated)).await;
    peer.send(NetworkMessage::Ping(5)).await;
    peer.recv_until(|m| matches!(m, NetworkMessage::Pong(5)).then_some(()))
        .await;
    assert_eq!(rpc.call("getblockcount", json!([])).await, json!(0));

    // The same block with the reserved value is accepted and becomes the tip.
    let mut block = block_from_template(&gbt, |_| {});
    grind(&mut block.header, true);
    let hash = block.block_hash();
    peer.send(NetworkMessage::Block(block)).await;
    wait_height(&rpc, 1).await;
    assert_eq!(
        rpc.call("getbestblockhash", json!([])).await,
        json!(hash.to_string())
    );
    // The block is not announced back to the peer that sent it.
    peer.send(NetworkMessage::Ping(6)).await;
    loop {
        match peer.recv().await.expect("connection open") {
            NetworkMessage::Pong(6) => break,
            NetworkMessage::Inv(items) => {
                assert!(!items.contains(&Inventory::Block(hash)), "echoed inv")
            }
            NetworkMessage::Headers(headers) => {
                assert!(
                    headers.iter().all(|h| h.block_hash() != hash),
                    "echoed headers"
                )
            }
            _ => {}
        }
    }
    timed("shutdown", devchain.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devchains_sync_over_p2p() {
    // A second chain learns blocks announced by the first: it is told of them by inv/headers
    // and fetches them with getdata. Here the test relays between them by hand.
    let a = start().await;
    let b = start().await;
    let rpc_a = Rpc::new(&a);
    let rpc_b = Rpc::new(&b);
    rpc_a
        .call(
            "generatetoaddress",
            json!([2, op_true_address().to_string()]),
        )
        .await;
    let mut from_a = P2p::connect(a.p2p_addr()).await;
    from_a.handshake().await;
    let mut to_b = P2p::connect(b.p2p_addr()).await;
    to_b.handshake().await;
    // A block whose parent b lacks: b asks for the headers in between.
    let hash2: BlockHash = rpc_a
        .call("getblockhash", json!([2]))
        .await
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    from_a
        .send(NetworkMessage::GetData(vec![Inventory::WitnessBlock(
            hash2,
        )]))
        .await;
    let block2 = from_a
        .recv_until(|m| match m {
            NetworkMessage::Block(b) => Some(b.clone()),
            _ => None,
        })
        .await;
    to_b.send(NetworkMessage::Block(block2)).await;
    let request = to_b
        .recv_until(|m| match m {
            NetworkMessage::GetHeaders(r) => Some(r.clone()),
            _ => None,
        })
        .await;
    let genesis: BlockHash = rpc_b
        .call("getblockhash", json!([0]))
        .await
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(request.locator_hashes, vec![genesis]);

    for height in 1..=2 {
        let hash: BlockHash = rpc_a
            .call("getblockhash", json!([height]))
            .await
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        from_a
            .send(NetworkMessage::GetData(vec![Inventory::WitnessBlock(hash)]))
            .await;
        let block = from_a
            .recv_until(|m| match m {
                NetworkMessage::Block(b) => Some(b.clone()),
                _ => None,
            })
            .await;
        // Announce to b; b asks for the block with getdata.
        to_b.send(NetworkMessage::Inv(vec![Inventory::Block(hash)]))
            .await;
        let wanted = to_b
            .recv_until(|m| match m {
                NetworkMessage::GetData(items) => Some(items.clone()),
                _ => None,
            })
            .await;
        assert_eq!(wanted, vec![Inventory::WitnessBlock(hash)]);
        to_b.send(NetworkMessage::Block(block)).await;
    }
    wait_height(&rpc_b, 2).await;
    assert_eq!(
        rpc_b.call("getbestblockhash", json!([])).await,
        rpc_a.call("getbestblockhash", json!([])).await
    );
    timed("shutdown a", a.shutdown()).await.unwrap();
    timed("shutdown b", b.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_wire_drops_only_that_connection() {
    let devchain = start().await;
    let rpc = Rpc::new(&devchain);

    // Wrong magic: the connection is closed.
    let mut bad = P2p::connect(devchain.p2p_addr()).await;
    bad.send_bytes(&[0xde; 64]).await;
    assert!(bad.recv().await.is_none());

    // Right magic, a known command, a payload that does not decode (bad checksum): skipped.
    let mut peer = P2p::connect(devchain.p2p_addr()).await;
    peer.handshake().await;
    let mut frame = bitcoin::p2p::Magic::REGTEST.to_bytes().to_vec();
    frame.extend_from_slice(b"block\0\0\0\0\0\0\0");
    frame.extend_from_slice(&3u32.to_le_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(&[1, 2, 3]);
    peer.send_bytes(&frame).await;
    peer.send(NetworkMessage::Ping(7)).await;
    peer.recv_until(|m| matches!(m, NetworkMessage::Pong(7)).then_some(()))
        .await;

    // The node is fine.
    rpc.call(
        "generatetoaddress",
        json!([1, op_true_address().to_string()]),
    )
    .await;
    assert_eq!(rpc.call("getblockcount", json!([])).await, json!(1));
    timed("shutdown", devchain.shutdown()).await.unwrap();
}
