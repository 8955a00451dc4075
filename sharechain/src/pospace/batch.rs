//! Verifying many proofs at once over several threads (scoped: no pool, nothing outlives the
//! call), for a node that receives many shares together or loads a chain.

use super::{validate_proof, VerifyError};

/// One proof to verify, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProofRef<'a> {
    /// The plot id.
    pub plot_id: &'a [u8; 32],
    /// The plot size.
    pub k: u8,
    /// The challenge the proof answers.
    pub challenge: &'a [u8; 32],
    /// 64 x-values of k bits, proof order.
    pub proof: &'a [u8],
}

impl ProofRef<'_> {
    /// [`validate_proof`] on this proof.
    pub fn validate(&self) -> Result<[u8; 32], VerifyError> {
        validate_proof(self.plot_id, self.k, self.challenge, self.proof)
    }
}

/// Verifies every proof, using up to `threads` threads (0 is taken as 1); results are in input
/// order. Each proof is independent, so the work is split into contiguous chunks.
pub fn validate_batch(
    proofs: &[ProofRef<'_>],
    threads: usize,
) -> Vec<Result<[u8; 32], VerifyError>> {
    let threads = threads.clamp(1, proofs.len().max(1));
    if threads == 1 {
        return proofs.iter().map(ProofRef::validate).collect();
    }
    let chunk = proofs.len().div_ceil(threads);
    let validate_all =
        |input: &[ProofRef<'_>]| -> Vec<_> { input.iter().map(ProofRef::validate).collect() };
    std::thread::scope(|scope| {
        let handles: Vec<_> = proofs
            .chunks(chunk)
            .map(|input| {
                let spawned = std::thread::Builder::new()
                    .name("pospace-verify".into())
                    .spawn_scoped(scope, move || validate_all(input));
                (input, spawned)
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|(input, spawned)| match spawned {
                // A thread that cannot be started (or died) costs speed, not results.
                Ok(handle) => handle.join().unwrap_or_else(|_| validate_all(input)),
                Err(_) => validate_all(input),
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_keeps_order_and_handles_edges() {
        let id = [1u8; 32];
        let ch = [2u8; 32];
        let bad_len = [0u8; 3];
        let zero = [0u8; 144];
        let proofs: Vec<ProofRef<'_>> = (0..7)
            .map(|i| ProofRef {
                plot_id: &id,
                k: if i % 2 == 0 { 18 } else { 60 },
                challenge: &ch,
                proof: if i % 3 == 0 { &bad_len } else { &zero },
            })
            .collect();
        let single = validate_batch(&proofs, 1);
        for threads in [0, 2, 3, 16] {
            assert_eq!(validate_batch(&proofs, threads), single);
        }
        assert!(validate_batch(&[], 4).is_empty());
        assert_eq!(single[1], Err(VerifyError::KOutOfRange(60)));
    }
}
