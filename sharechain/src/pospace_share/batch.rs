//! Checking many shares' signatures at once: one multi-pairing over all of them instead of one
//! pairing check per share, with the per-share work (hashing to G2, Miller loops) spread over
//! threads by the curve library.
//!
//! Every signature is weighted by a 64-bit scalar before the check. Without the weights, two
//! invalid signatures whose errors cancel (`s₁ + D`, `s₂ − D`) would pass together and fail one
//! by one, so nodes that batch and nodes that do not would disagree about the same shares. The
//! scalars are derived from a hash of every key, message and signature of the batch (no clock,
//! no randomness source): they are fixed only after the signatures are, so cancelling errors
//! would need about 2^64 attempts. When a batch fails, each signature is checked alone with
//! chia-bls, so a batch never changes which shares are valid.

use bitcoin::hashes::{sha256, Hash, HashEngine};
use blst::min_pk::{PublicKey as BlstPublicKey, Signature as BlstSignature};
use blst::{blst_scalar, BLST_ERROR};
use chia_bls::{PublicKey, Signature};

/// The augmented scheme's domain separation tag (chia's `AugSchemeMPL`).
const AUG_DST: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_AUG_";
/// Bits of each batch weight.
const WEIGHT_BITS: usize = 64;

/// A key and a signature in the curve library's own types, kept beside chia-bls's so that a
/// batch does not decompress points a second time.
#[derive(Debug, Clone, PartialEq)]
pub struct CurvePoints {
    key: BlstPublicKey,
    signature: BlstSignature,
    /// Compressed encodings (compressing again costs a field inversion per point).
    key_bytes: [u8; 48],
    signature_bytes: [u8; 96],
}

impl CurvePoints {
    /// The points of an already validated key and signature (curve and subgroup checks are
    /// not repeated).
    pub fn new(key: &PublicKey, signature: &Signature) -> Option<CurvePoints> {
        let (key_bytes, signature_bytes) = (key.to_bytes(), signature.to_bytes());
        Some(CurvePoints {
            key: BlstPublicKey::uncompress(&key_bytes).ok()?,
            signature: BlstSignature::uncompress(&signature_bytes).ok()?,
            key_bytes,
            signature_bytes,
        })
    }

    /// Validates a compressed signature once for both libraries: the chia-bls signature and
    /// these points. `None` for bytes that are not a point of the G2 subgroup.
    /// `key_bytes` is the compressed encoding of a key already validated.
    pub fn validate_signature(
        key_bytes: &[u8; 48],
        bytes: &[u8; 96],
    ) -> Option<(Signature, CurvePoints)> {
        let signature = BlstSignature::sig_validate(bytes, false).ok()?;
        // Deserializing affine coordinates skips the square root and the subgroup check done
        // just above.
        let chia = Signature::from_uncompressed(&signature.serialize()).ok()?;
        let key = BlstPublicKey::uncompress(key_bytes).ok()?;
        let points = CurvePoints {
            key,
            signature,
            key_bytes: *key_bytes,
            signature_bytes: *bytes,
        };
        Some((chia, points))
    }
}

/// One signature to check: AugSchemeMPL `signature` of `message` by `key`.
#[derive(Debug, Clone, Copy)]
pub struct SignatureCheck<'a> {
    /// The signer's G1 public key (for a share: its plot public key).
    pub key: &'a PublicKey,
    /// The signed bytes (for a share: SHA-256 of [`super::wire::MESSAGE_DOMAIN`], the network's
    /// identity and the share's bytes before the signature).
    pub message: &'a [u8],
    /// The G2 signature to verify.
    pub signature: &'a Signature,
    /// The same key and signature for the batch.
    pub points: &'a CurvePoints,
}

impl SignatureCheck<'_> {
    /// chia-bls's `AugSchemeMPL.verify` on this one signature.
    pub fn verify(&self) -> bool {
        chia_bls::verify(self.signature, self.key, self.message)
    }
}

/// Checks every signature; the answer for each is what [`SignatureCheck::verify`] says.
pub fn verify_signatures(checks: &[SignatureCheck<'_>]) -> Vec<bool> {
    if checks.len() < 2 {
        return checks.iter().map(SignatureCheck::verify).collect();
    }
    if batch_holds(checks) {
        return vec![true; checks.len()];
    }
    checks.iter().map(SignatureCheck::verify).collect()
}

/// True when the weighted multi-pairing over all signatures holds.
fn batch_holds(checks: &[SignatureCheck<'_>]) -> bool {
    let mut seed = sha256::Hash::engine();
    seed.input(b"p2pool-rs signature batch weights");
    let mut messages: Vec<Vec<u8>> = Vec::with_capacity(checks.len());
    for c in checks {
        let key = c.points.key_bytes;
        seed.input(&key);
        seed.input(&(c.message.len() as u64).to_be_bytes());
        seed.input(c.message);
        seed.input(&c.points.signature_bytes);
        // The augmented scheme signs `key ‖ message`.
        let mut m = key.to_vec();
        m.extend_from_slice(c.message);
        messages.push(m);
    }
    let seed = sha256::Hash::from_engine(seed).to_byte_array();
    let weights: Vec<blst_scalar> = (0..checks.len() as u64)
        .map(|i| {
            let mut e = sha256::Hash::engine();
            e.input(&seed);
            e.input(&i.to_be_bytes());
            let h = sha256::Hash::from_engine(e).to_byte_array();
            let mut b = [0u8; 32];
            // Little-endian scalar of 64 bits; never zero (a zero weight would drop a check).
            b[..8].copy_from_slice(&h[..8]);
            b[0] |= 1;
            blst_scalar { b }
        })
        .collect();
    let msg_refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let key_refs: Vec<&BlstPublicKey> = checks.iter().map(|c| &c.points.key).collect();
    let sig_refs: Vec<&BlstSignature> = checks.iter().map(|c| &c.points.signature).collect();
    BlstSignature::verify_multiple_aggregate_signatures(
        &msg_refs,
        AUG_DST,
        &key_refs,
        false,
        &sig_refs,
        false,
        &weights,
        WEIGHT_BITS,
    ) == BLST_ERROR::BLST_SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use chia_bls::SecretKey;

    #[test]
    fn batch_agrees_with_single_checks() {
        let sks: Vec<SecretKey> = (0u8..6).map(|i| SecretKey::from_seed(&[i; 32])).collect();
        let pks: Vec<PublicKey> = sks.iter().map(SecretKey::public_key).collect();
        let msgs: Vec<[u8; 32]> = (0u8..6).map(|i| [i + 100; 32]).collect();
        let mut sigs: Vec<Signature> = sks
            .iter()
            .zip(&msgs)
            .map(|(sk, m)| chia_bls::sign(sk, m))
            .collect();
        let checks = |sigs: &[Signature]| -> Vec<bool> {
            let points: Vec<CurvePoints> = (0..6)
                .map(|i| CurvePoints::new(&pks[i], &sigs[i]).unwrap())
                .collect();
            let c: Vec<SignatureCheck<'_>> = (0..6)
                .map(|i| SignatureCheck {
                    key: &pks[i],
                    message: &msgs[i],
                    signature: &sigs[i],
                    points: &points[i],
                })
                .collect();
            verify_signatures(&c)
        };
        assert_eq!(checks(&sigs), vec![true; 6]);
        // Errors that cancel in a plain sum must still fail one by one.
        let d = chia_bls::sign(&sks[0], b"anything");
        sigs[1] = sigs[1].clone() + &d;
        sigs[2] = sigs[2].clone() + &(-d);
        let plain_sum = chia_bls::aggregate(&sigs);
        let pairs: Vec<(&PublicKey, &[u8])> = pks.iter().zip(msgs.iter().map(|m| &m[..])).collect();
        assert!(
            chia_bls::aggregate_verify(&plain_sum, pairs),
            "the unweighted sum passes"
        );
        assert_eq!(checks(&sigs), vec![true, false, false, true, true, true]);
    }
}
