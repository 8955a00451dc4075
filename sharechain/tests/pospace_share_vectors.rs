//! PoSpace shares against golden vectors made by Chia's own tools (chiapos plots and proofs,
//! chia_rs `ProofOfSpace` encoding and AugSchemeMPL signatures; see
//! `tests/vectors/chia/make_share_vectors.py`), and every field of a valid share mutated.

use bitcoin::hashes::Hash;
use chia_bls::{SecretKey, Signature};
use chia_protocol::Bytes32;
use chia_traits::Streamable;
use sharechain::pospace::PosError;
use sharechain::pospace_share::check::check_signature;
use sharechain::pospace_share::{
    check_share, check_time, new_pospace_tracker, ChiaNetwork, DecodeError, KnownSignagePoints,
    PoSpaceShare, Quality, ShareContent, ShareError, SignagePoint,
};
use sharechain::ShareHash;

const SHARES: &str = include_str!("vectors/chia/pospace_shares.csv");

struct Vector {
    name: String,
    network: &'static ChiaNetwork,
    share: Vec<u8>,
    pos: Vec<u8>,
    plot_id: String,
    message: String,
    hash: String,
    quality: String,
    outcome: String,
}

fn vectors() -> Vec<Vector> {
    SHARES
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            Vector {
                name: f[0].into(),
                network: ChiaNetwork::by_name(f[1]).expect("network"),
                share: hex::decode(f[2]).unwrap(),
                pos: hex::decode(f[3]).unwrap(),
                plot_id: f[4].into(),
                message: f[5].into(),
                hash: f[6].into(),
                quality: f[7].into(),
                outcome: f[8].into(),
            }
        })
        .collect()
}

fn vector(name: &str) -> Vector {
    vectors()
        .into_iter()
        .find(|v| v.name == name)
        .expect("vector")
}

fn sp_of(c: &ShareContent) -> SignagePoint {
    SignagePoint {
        challenge_hash: c.challenge_hash,
        sp_hash: c.sp_hash,
        index: c.signage_point_index,
        peak_height: c.peak_height,
    }
}

fn known(c: &ShareContent) -> KnownSignagePoints {
    let mut k = KnownSignagePoints::new();
    k.insert(sp_of(c));
    k
}

#[test]
fn valid_vectors_decode_round_trip_and_verify() {
    let mut valid = 0;
    for v in vectors()
        .into_iter()
        .filter(|v| v.outcome.parse::<u64>().is_ok())
    {
        let share =
            PoSpaceShare::decode(&v.share, v.network).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert_eq!(share.to_bytes(), v.share, "{}", v.name);
        // chia-protocol encodes the proof of space exactly as chia_rs did.
        assert_eq!(
            share.content().proof_of_space.to_bytes().unwrap(),
            v.pos,
            "{}",
            v.name
        );
        assert_eq!(hex::encode(share.plot_id()), v.plot_id, "{}", v.name);
        assert_eq!(hex::encode(share.message()), v.message, "{}", v.name);
        assert_eq!(
            hex::encode(share.hash().as_ref() as &[u8]),
            v.hash,
            "{}",
            v.name
        );
        let got = check_share(&share, v.network, &known(share.content()));
        let quality: [u8; 32] = hex::decode(&v.quality).unwrap().try_into().unwrap();
        assert_eq!(
            got,
            Ok(Quality {
                quality,
                iters: v.outcome.parse().unwrap()
            }),
            "{}",
            v.name
        );
        // Verified as the first share of a chain (their difficulty is the initial one).
        if share.content().prev_share.is_none() {
            let mut tracker = new_pospace_tracker(v.network);
            tracker
                .verifier_mut()
                .signage_points_mut()
                .insert(sp_of(share.content()));
            let changes = tracker.insert(share.clone()).unwrap();
            assert_eq!(changes.verified, vec![share.hash()], "{}", v.name);
        }
        valid += 1;
    }
    assert_eq!(valid, 4);
}

#[test]
fn refused_vectors_name_their_reason() {
    let mut refused = 0;
    for v in vectors()
        .into_iter()
        .filter(|v| v.outcome.parse::<u64>().is_err())
    {
        let err = PoSpaceShare::decode(&v.share, v.network).expect_err(&v.name);
        let ok = match v.outcome.as_str() {
            "PoolTarget" => err == DecodeError::PoolTarget,
            "PlotSize" => matches!(err, DecodeError::PlotSize { .. }),
            "ProofLength" => matches!(err, DecodeError::ProofLength { .. }),
            "V2Proof" => {
                err == DecodeError::V2Proof && err.to_string() == "v2 proofs not supported yet"
            }
            other => panic!("unknown outcome {other}"),
        };
        assert!(ok, "{}: {err:?}", v.name);
        refused += 1;
    }
    assert_eq!(refused, 7);
}

/// What an expected refusal must look like.
type Reason = fn(&ShareError) -> bool;

/// Re-encodes mutated content with the original signature.
fn resigned(
    content: &ShareContent,
    sig: &Signature,
    net: &ChiaNetwork,
) -> Result<PoSpaceShare, DecodeError> {
    content.sign(sig, net)
}

#[test]
fn every_field_mutation_is_refused_with_its_reason() {
    let v = vector("regtest_og");
    let net = v.network;
    let share = PoSpaceShare::decode(&v.share, net).unwrap();
    let sig = share.signature().clone();
    let base = share.content().clone();
    let k = known(&base);
    let other_key = SecretKey::from_seed(&[9; 32]).public_key();
    let check = |c: &ShareContent| -> Result<Quality, ShareError> {
        check_share(&resigned(c, &sig, net).expect("decodes"), net, &k)
    };
    let mutated = |f: &dyn Fn(&mut ShareContent)| {
        let mut c = base.clone();
        f(&mut c);
        c
    };

    assert!(check(&base).is_ok());
    let cases: Vec<(&str, ShareContent, Reason)> = vec![
        (
            "parent",
            mutated(&|c| c.prev_share = Some(ShareHash::from_byte_array([1; 32]))),
            |e| *e == ShareError::Signature,
        ),
        (
            "challenge hash",
            mutated(&|c| c.challenge_hash[0] ^= 1),
            |e| e.is_pending(),
        ),
        ("sp hash", mutated(&|c| c.sp_hash[0] ^= 1), |e| {
            e.is_pending()
        }),
        ("sp index", mutated(&|c| c.signage_point_index ^= 1), |e| {
            matches!(e, ShareError::SignagePointMismatch { .. })
        }),
        ("peak height", mutated(&|c| c.peak_height += 1), |e| {
            matches!(e, ShareError::SignagePointMismatch { .. })
        }),
        (
            "pos challenge",
            mutated(&|c| c.proof_of_space.challenge = Bytes32::new([7; 32])),
            |e| *e == ShareError::Proof(PosError::ChallengeNotDerived),
        ),
        (
            "pool key",
            mutated(&|c| c.proof_of_space.pool_public_key = Some(other_key)),
            |e| *e == ShareError::Proof(PosError::ChallengeNotDerived),
        ),
        (
            "plot key",
            mutated(&|c| c.proof_of_space.plot_public_key = other_key),
            |e| *e == ShareError::Proof(PosError::ChallengeNotDerived),
        ),
        (
            "proof",
            mutated(&|c| {
                let mut p = c.proof_of_space.proof.to_vec();
                p[10] ^= 0x10;
                c.proof_of_space.proof = p.into();
            }),
            |e| matches!(e, ShareError::Proof(PosError::Proof(_))),
        ),
        ("payout", mutated(&|c| c.payout_puzzle_hash[5] ^= 1), |e| {
            *e == ShareError::Signature
        }),
        ("difficulty", mutated(&|c| c.difficulty = 1_000_000), |e| {
            matches!(e, ShareError::TooManyIterations { .. })
        }),
        (
            "difficulty, still passing",
            mutated(&|c| c.difficulty = 2),
            |e| *e == ShareError::Signature,
        ),
        ("timestamp", mutated(&|c| c.timestamp += 1), |e| {
            *e == ShareError::Signature
        }),
    ];
    for (name, c, expected) in cases {
        let got = check(&c).expect_err(name);
        assert!(expected(&got), "{name}: {got:?}");
    }

    // Fields refused by decoding.
    let bytes = |c: &ShareContent| {
        let mut b = Vec::new();
        c.encode(&mut b);
        b.extend_from_slice(&sig.to_bytes());
        b
    };
    let mut b = bytes(&base);
    b[0] = 2;
    assert_eq!(
        PoSpaceShare::decode(&b, net),
        Err(DecodeError::UnknownVersion(2))
    );
    assert_eq!(
        resigned(&mutated(&|c| c.proof_of_space.size = 19), &sig, net),
        Err(DecodeError::ProofLength {
            k: 19,
            expected: 152,
            got: 144
        })
    );
    assert_eq!(
        resigned(
            &mutated(&|c| c.proof_of_space.pool_contract_puzzle_hash = Some(Bytes32::new([4; 32]))),
            &sig,
            net
        ),
        Err(DecodeError::PoolTarget)
    );
    assert_eq!(
        resigned(
            &mutated(&|c| c.proof_of_space.pool_public_key = None),
            &sig,
            net
        ),
        Err(DecodeError::PoolTarget)
    );
    assert_eq!(
        resigned(&mutated(&|c| c.proof_of_space.version = 1), &sig, net),
        Err(DecodeError::V2Proof)
    );
    let mut b = bytes(&base);
    let last = b.len() - 1;
    b[last] ^= 0x55;
    assert_eq!(
        PoSpaceShare::decode(&b, net),
        Err(DecodeError::SignatureEncoding)
    );
    let mut b = bytes(&base);
    b.push(0);
    assert_eq!(
        PoSpaceShare::decode(&b, net),
        Err(DecodeError::TrailingBytes(1))
    );
    for cut in [0, 1, 40, 200, b.len() - 2] {
        assert_eq!(
            PoSpaceShare::decode(&b[..cut], net),
            Err(DecodeError::Truncated),
            "cut {cut}"
        );
    }

    // Another valid signature, and the same share on another network (identity in the message).
    let wrong = chia_bls::sign(&SecretKey::from_seed(&[3; 32]), share.message());
    assert_eq!(
        check_share(&resigned(&base, &wrong, net).unwrap(), net, &k),
        Err(ShareError::Signature)
    );
    let testnet = PoSpaceShare::decode(&v.share, &ChiaNetwork::TESTNET11).unwrap();
    assert_ne!(testnet.message(), share.message());
    assert_eq!(check_signature(&testnet), Err(ShareError::Signature));
    // testnet11's 8-bit plot filter is not passed by this regtest (0-bit filter) signage point.
    assert_eq!(
        check_share(&testnet, &ChiaNetwork::TESTNET11, &k),
        Err(ShareError::Proof(PosError::PlotFilter))
    );

    // A share from the future is refused on arrival.
    let ts = base.timestamp;
    assert_eq!(check_time(&share, net, ts - net.max_future_secs), Ok(()));
    assert_eq!(
        check_time(&share, net, ts - net.max_future_secs - 1),
        Err(ShareError::FutureTimestamp {
            got: ts,
            now: ts - net.max_future_secs - 1,
            max: net.max_future_secs
        })
    );

    // The chain's difficulty is not the farmer's to choose.
    let mut tracker = new_pospace_tracker(net);
    tracker
        .verifier_mut()
        .signage_points_mut()
        .insert(sp_of(&base));
    let farmer_choice = resigned(&mutated(&|c| c.difficulty = 2), &sig, net).unwrap();
    let changes = tracker.insert(farmer_choice).unwrap();
    assert_eq!(
        changes.invalid[0].error,
        ShareError::FarmerDifficulty {
            got: 2,
            required: 1
        }
    );
}

/// Signing checked content (no curve point validated again) gives exactly the share its bytes
/// decode to: the same bytes, hash, message, plot id, signature and batch points.
#[test]
fn signing_content_equals_decoding_its_bytes() {
    let mut n = 0;
    for v in vectors()
        .into_iter()
        .filter(|v| v.outcome.parse::<u64>().is_ok())
    {
        let decoded = PoSpaceShare::decode(&v.share, v.network).unwrap();
        let signed = decoded
            .content()
            .sign(decoded.signature(), v.network)
            .unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert_eq!(signed.to_bytes(), v.share, "{}", v.name);
        assert_eq!(signed.hash(), decoded.hash(), "{}", v.name);
        assert_eq!(signed.message(), decoded.message(), "{}", v.name);
        assert_eq!(signed.plot_id(), decoded.plot_id(), "{}", v.name);
        assert_eq!(signed.signature(), decoded.signature(), "{}", v.name);
        assert_eq!(signed.curve_points(), decoded.curve_points(), "{}", v.name);
        assert_eq!(signed.content(), decoded.content(), "{}", v.name);
        n += 1;
    }
    assert!(n > 0, "no valid vector");
}
