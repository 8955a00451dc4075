//! Wire format: golden hex vectors for every share type (checked in under `tests/vectors/`),
//! round trips, and a specific error for each kind of malformed input.
//!
//! `BLESS=1 cargo test -p sharechain --test wire` rewrites the vectors after a deliberate format
//! change; review the diff before committing it.

use std::collections::BTreeMap;

use bitcoin::hashes::Hash;
use bitcoin::{Amount, BlockHash, CompactTarget, ScriptBuf};
use sharechain::encode::{Decode, DecodeError, Encode};
use sharechain::params::NetworkParams;
use sharechain::share::{
    CheckedShare, HashLink, MerkleLink, SegwitData, Share, ShareData, ShareError, ShareHash,
    ShareInfo, SmallBlockHeader, StaleInfo,
};
use sharechain::testkit::{build_chain, easy_params, p2wpkh};

/// The golden vectors, in cargo's package directory at run time (a binary built in another
/// checkout that shares the target directory must read this checkout's file).
fn vectors_path() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(
            || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")),
            std::path::PathBuf::from,
        )
        .join("tests/vectors/wire.txt")
}

fn header() -> SmallBlockHeader {
    SmallBlockHeader {
        version: 0x2000_0000,
        previous_block: BlockHash::from_byte_array([0x11; 32]),
        timestamp: 1_700_000_000,
        bits: CompactTarget::from_consensus(0x1703_a30c),
        nonce: 0xdead_beef,
    }
}

fn link(n: u8) -> MerkleLink {
    MerkleLink {
        branch: (0..n).map(|i| [i; 32]).collect(),
    }
}

fn share_data() -> ShareData {
    ShareData {
        previous_share_hash: Some(ShareHash::from_byte_array([0x22; 32])),
        coinbase: vec![0x03, 0x40, 0xd1, 0x0c, b'p', b'2'],
        nonce: 7,
        payout_script: ScriptBuf::from_bytes([&[0x51, 0x20][..], &[0x33; 32]].concat()),
        subsidy: Amount::from_sat(312_500_000),
        donation: 50,
        stale_info: StaleInfo::DeadOnArrival,
        desired_version: 1,
    }
}

fn segwit() -> SegwitData {
    SegwitData {
        txid_merkle_link: link(2),
        wtxid_merkle_root: [0x44; 32],
    }
}

fn share_info() -> ShareInfo {
    ShareInfo {
        share_data: share_data(),
        segwit_data: segwit(),
        far_share_hash: None,
        max_bits: CompactTarget::from_consensus(0x1d00_ffff),
        bits: CompactTarget::from_consensus(0x1c7f_ffff),
        timestamp: 1_700_000_001,
        absheight: 8641,
        abswork: 0x0123_4567_89ab_cdef_0011_2233_4455_6677,
    }
}

fn hash_link() -> HashLink {
    HashLink {
        state: [0x55; 32],
        extra_data: vec![1, 2, 3],
        length: 195,
    }
}

fn share() -> Share {
    Share {
        version: 1,
        min_header: header(),
        share_info: share_info(),
        ref_merkle_link: MerkleLink::default(),
        last_txout_nonce: 0x0102_0304_0506_0708,
        hash_link: hash_link(),
        merkle_link: link(2),
    }
}

/// A real share: the 3rd of a mined chain, so every field is what a node produces.
fn mined_share() -> Share {
    let params = easy_params(&NetworkParams::REGTEST, 100, 10);
    let (_, shares) = build_chain(params, 3, &[p2wpkh(1), p2wpkh(2)]);
    shares[2].share().clone()
}

fn round_trip<T: Encode + Decode + PartialEq + std::fmt::Debug>(value: &T) -> String {
    let bytes = value.to_bytes();
    assert_eq!(
        &T::from_bytes(&bytes).expect("decodes"),
        value,
        "round trip"
    );
    hex::encode(bytes)
}

fn encodings() -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("small_block_header", round_trip(&header())),
        ("merkle_link_empty", round_trip(&MerkleLink::default())),
        ("merkle_link_3", round_trip(&link(3))),
        ("hash_link", round_trip(&hash_link())),
        ("share_data", round_trip(&share_data())),
        ("segwit_data", round_trip(&segwit())),
        ("share_info", round_trip(&share_info())),
        ("share", round_trip(&share())),
        ("mined_share", round_trip(&mined_share())),
    ])
}

#[test]
fn golden_vectors() {
    let got = encodings();
    if std::env::var_os("BLESS").is_some() {
        let text: String = got.iter().map(|(k, v)| format!("{k} {v}\n")).collect();
        std::fs::write(vectors_path(), text).expect("write vectors");
        return;
    }
    let text = std::fs::read_to_string(vectors_path()).expect("vectors are checked in");
    let want: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once(' ')).collect();
    assert_eq!(want.len(), got.len(), "one vector per type");
    for (name, hex) in &got {
        assert_eq!(Some(&hex.as_str()), want.get(name), "vector {name}");
    }
    // The mined share still passes its stand-alone checks and keeps its hash.
    let bytes = hex::decode(want["mined_share"]).expect("hex");
    let params = easy_params(&NetworkParams::REGTEST, 100, 10);
    let checked = CheckedShare::from_bytes(&bytes, params, u64::MAX / 2).expect("valid");
    assert_eq!(
        checked.hash(),
        CheckedShare::check(mined_share(), params, u64::MAX / 2)
            .unwrap()
            .hash()
    );
}

fn decode_err(share: &Share) -> DecodeError {
    Share::from_bytes(&share.to_bytes()).expect_err("must not decode")
}

#[test]
fn every_truncation_is_an_error_never_a_panic() {
    let bytes = share().to_bytes();
    for n in 0..bytes.len() {
        match Share::from_bytes(&bytes[..n]) {
            Err(DecodeError::UnexpectedEnd { .. }) => {}
            other => panic!("prefix of {n} bytes: {other:?}"),
        }
    }
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut bytes = share().to_bytes();
    bytes.push(0);
    assert_eq!(
        Share::from_bytes(&bytes),
        Err(DecodeError::TrailingBytes { count: 1 })
    );
}

#[test]
fn malformed_fields_get_specific_errors() {
    let mut s = share();
    s.version = 99;
    assert_eq!(decode_err(&s), DecodeError::UnknownVersion(99));

    let mut s = share();
    s.share_info.share_data.coinbase = vec![0x51];
    assert_eq!(
        decode_err(&s),
        DecodeError::TooShort {
            field: "share_data.coinbase",
            len: 1,
            min: 2
        }
    );
    s.share_info.share_data.coinbase = vec![0; 101];
    assert_eq!(
        decode_err(&s),
        DecodeError::TooLong {
            field: "share_data.coinbase",
            len: 101,
            max: 100
        }
    );

    let mut s = share();
    s.share_info.share_data.payout_script = ScriptBuf::from_bytes(vec![0; 43]);
    assert_eq!(
        decode_err(&s),
        DecodeError::TooLong {
            field: "share_data.payout_script",
            len: 43,
            max: 42
        }
    );
    s.share_info.share_data.payout_script = ScriptBuf::new();
    assert_eq!(
        decode_err(&s),
        DecodeError::TooShort {
            field: "share_data.payout_script",
            len: 0,
            min: 1
        }
    );

    let mut s = share();
    s.share_info.share_data.subsidy = Amount::MAX_MONEY + Amount::from_sat(1);
    assert!(matches!(
        decode_err(&s),
        DecodeError::OutOfRange {
            field: "share_data.subsidy",
            ..
        }
    ));

    let mut s = share();
    s.merkle_link = link(33);
    assert_eq!(
        decode_err(&s),
        DecodeError::TooLong {
            field: "merkle_link.branch",
            len: 33,
            max: 32
        }
    );

    let mut s = share();
    s.hash_link.extra_data = vec![0; 64];
    assert_eq!(
        decode_err(&s),
        DecodeError::TooLong {
            field: "hash_link.extra_data",
            len: 64,
            max: 63
        }
    );
    let mut s = share();
    s.hash_link.length = 1_000_001;
    assert_eq!(
        decode_err(&s),
        DecodeError::OutOfRange {
            field: "hash_link.length",
            value: 1_000_001
        }
    );

    // stale_info is a single byte after donation: replace it in the encoding.
    let mut bytes = share_data().to_bytes();
    let at = bytes.len() - 2;
    assert_eq!(bytes[at], 254);
    bytes[at] = 7;
    assert_eq!(
        ShareData::from_bytes(&bytes),
        Err(DecodeError::OutOfRange {
            field: "share_data.stale_info",
            value: 7
        })
    );

    // A version written as a 3-byte CompactSize is not canonical.
    let mut bytes = share().to_bytes();
    bytes.splice(0..1, [0xfd, 0x01, 0x00]);
    assert_eq!(
        Share::from_bytes(&bytes),
        Err(DecodeError::NonCanonicalVarInt { field: "version" })
    );
}

#[test]
fn stand_alone_checks_reject_bad_shares() {
    let params = easy_params(&NetworkParams::REGTEST, 100, 10);
    let good = mined_share();
    let now = u64::from(good.share_info.timestamp);
    assert!(CheckedShare::check(good.clone(), params, now).is_ok());

    let mut s = good.clone();
    s.min_header.nonce ^= 0xffff_ffff;
    s.share_info.bits = CompactTarget::from_consensus(0x0300_0001);
    s.share_info.max_bits = s.share_info.bits;
    assert!(matches!(
        CheckedShare::check(s, params, now),
        Err(ShareError::HighHash { .. })
    ));

    let mut s = good.clone();
    s.share_info.share_data.payout_script = ScriptBuf::from_bytes(vec![0x6a, 0x01, 0x00]);
    assert_eq!(
        CheckedShare::check(s, params, now),
        Err(ShareError::PayoutScript)
    );

    assert!(matches!(
        CheckedShare::check(good.clone(), params, now - 601),
        Err(ShareError::FutureTimestamp { .. })
    ));

    let mut s = good.clone();
    s.min_header.timestamp += 7201;
    assert!(matches!(
        CheckedShare::check(s, params, now),
        Err(ShareError::HeaderTime { .. })
    ));

    let mut s = good.clone();
    s.merkle_link = link(1);
    assert_eq!(
        CheckedShare::check(s, params, now),
        Err(ShareError::SegwitLink)
    );

    let mut s = good.clone();
    s.hash_link.extra_data.push(0);
    assert!(matches!(
        CheckedShare::check(s, params, now),
        Err(ShareError::HashLink(_))
    ));

    let mut s = good.clone();
    s.version = 1;
    let mainnet_like = &NetworkParams::MAINNET;
    assert_eq!(
        CheckedShare::check(s, mainnet_like, now),
        Err(ShareError::TargetAboveNetworkMax),
        "a regtest-easy share is far too easy for mainnet"
    );

    let mut s = good;
    s.share_info.bits = CompactTarget::from_consensus(0x2080_0000);
    assert_eq!(
        CheckedShare::check(s, params, now),
        Err(ShareError::Bits(0x2080_0000))
    );
}
