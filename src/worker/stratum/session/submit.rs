//! `mining.submit`: rebuild the header, check it, count it, hand shares and blocks over.

use std::sync::Arc;
use std::time::Instant;

use bitcoin::hashes::Hash;
use serde_json::Value;

use super::{Session, EXTRANONCE2_SIZE, MAX_SEEN};
use crate::worker::job::{meets, ntime_ok};
use crate::worker::stats::Reject;
use crate::worker::stratum::code;
use crate::worker::stratum::codec::{parse_hex_u32, write_error, write_result};
use crate::worker::{Found, FoundOutcome, Miner, Via, WorkProvider};

/// A submit meeting the share or block target, waiting for the provider's verdict.
pub(crate) struct PendingFound {
    pub(crate) found: Found,
    pub(crate) reply: FoundReply,
}

/// What answering a [`PendingFound`] needs once the provider has its [`Found`].
pub(crate) struct FoundReply {
    id: Value,
    miner: Arc<Miner>,
    meets_share: bool,
    meets_block: bool,
    /// The difficulty of the job the submit was for.
    difficulty: f64,
}

impl<P: WorkProvider> Session<P> {
    /// Check a submit and answer it, or hand it back when the provider must see it first.
    pub(super) fn submit(&mut self, id: &Value, params: &[Value]) -> Option<PendingFound> {
        let Some(en1) = self.extranonce1.as_ref().map(|e| e.value) else {
            write_error(
                &mut self.out,
                id,
                code::NOT_SUBSCRIBED,
                "not subscribed",
                "false",
            );
            return None;
        };
        let Some(miner) = self.miner.clone() else {
            write_error(
                &mut self.out,
                id,
                code::UNAUTHORIZED,
                "unauthorized worker",
                "false",
            );
            return None;
        };
        if params.len() < 5 || params.iter().take(6).any(|p| !p.is_string()) {
            return self.refuse(
                id,
                Reject::Invalid,
                code::OTHER,
                "invalid submit parameters",
            );
        }
        let job_id = params[1]
            .as_str()
            .filter(|s| !s.is_empty() && s.len() <= 16)
            .and_then(|s| u64::from_str_radix(s, 16).ok());
        let Some(index) = job_id.and_then(|j| self.jobs.iter().position(|i| i.id == j)) else {
            return self.refuse(id, Reject::Stale, code::JOB_NOT_FOUND, "job not found");
        };
        let en2 = params[2].as_str().and_then(|s| hex::decode(s).ok());
        let Some(en2) = en2.filter(|e| e.len() == EXTRANONCE2_SIZE) else {
            let message = format!("extranonce2 must be {EXTRANONCE2_SIZE} bytes");
            return self.refuse(id, Reject::Invalid, code::OTHER, &message);
        };
        let (Some(ntime), Some(nonce)) =
            (parse_hex_u32(params.get(3)), parse_hex_u32(params.get(4)))
        else {
            return self.refuse(id, Reject::Invalid, code::OTHER, "invalid ntime or nonce");
        };
        let job = Arc::clone(&self.jobs[index].job);
        let mask = self.version_mask;
        let version = match params.get(5) {
            None => job.job.version,
            Some(v) => match parse_hex_u32(Some(v)) {
                Some(bits) if bits & !mask == 0 => (job.job.version & !mask) | bits,
                _ => {
                    let message = format!("version bits outside the allowed mask {mask:08x}");
                    return self.refuse(id, Reject::Invalid, code::OTHER, &message);
                }
            },
        };
        if !ntime_ok(&job.job, ntime) {
            return self.refuse(id, Reject::Invalid, code::OTHER, "ntime out of range");
        }
        let mut extranonce = [0u8; 8];
        extranonce[..4].copy_from_slice(&en1.to_be_bytes());
        extranonce[4..].copy_from_slice(&en2);
        let header = job.header(&extranonce, ntime, nonce, version);
        let hash = header.block_hash();
        let issued = &mut self.jobs[index];
        if !meets(&hash, &issued.target) {
            return self.refuse(
                id,
                Reject::LowDifficulty,
                code::LOW_DIFFICULTY,
                "low difficulty share",
            );
        }
        let key = u128::from_le_bytes(hash.to_byte_array()[..16].try_into().unwrap_or_default());
        if issued.seen.contains(&key) {
            return self.refuse(id, Reject::Duplicate, code::DUPLICATE, "duplicate share");
        }
        if issued.seen.len() >= MAX_SEEN {
            return self.refuse(
                id,
                Reject::Stale,
                code::JOB_NOT_FOUND,
                "job exhausted, take the next one",
            );
        }
        issued.seen.insert(key);
        let difficulty = issued.difficulty;
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.job.prev_hash != job.job.prev_hash)
        {
            // Work done on a job of an older block still measures the miner's hash rate.
            self.after_share(difficulty);
            return self.refuse(id, Reject::Stale, code::JOB_NOT_FOUND, "stale job");
        }
        self.shared
            .stats
            .pseudo_share(&miner.address, &miner.worker, difficulty);

        let meets_share = meets(&hash, &job.job.share_target);
        let meets_block = meets(&hash, &job.job.block_target);
        if meets_share || meets_block {
            let found = Found {
                job: Arc::clone(&job.job),
                miner,
                header,
                coinbase: job.coinbase(&extranonce),
                extranonce,
                hash,
                meets_share,
                meets_block,
                via: Via::Stratum,
            };
            let reply = FoundReply {
                id: id.clone(),
                miner: Arc::clone(&found.miner),
                meets_share,
                meets_block,
                difficulty,
            };
            return Some(PendingFound { found, reply });
        }
        write_result(&mut self.out, id, "true");
        self.after_share(difficulty);
        None
    }

    /// Answer a submit the provider has judged.
    pub(crate) fn finish_submit(&mut self, reply: FoundReply, outcome: FoundOutcome) {
        let FoundReply {
            id,
            miner,
            meets_share,
            meets_block,
            difficulty,
        } = reply;
        match outcome {
            FoundOutcome::Accepted => {
                self.shared
                    .stats
                    .found(&miner.address, &miner.worker, meets_share, meets_block);
                write_result(&mut self.out, &id, "true");
            }
            FoundOutcome::Stale { reason } => {
                self.reject(&id, Reject::Stale, code::JOB_NOT_FOUND, &reason);
            }
            FoundOutcome::Rejected { reason } => {
                self.reject(&id, Reject::Invalid, code::OTHER, &reason);
            }
            FoundOutcome::Failed { reason } => {
                write_error(&mut self.out, &id, code::OTHER, &reason, "false");
            }
        }
        self.after_share(difficulty);
    }

    /// Count a refused submit and answer it.
    fn refuse(
        &mut self,
        id: &Value,
        reason: Reject,
        code: i32,
        message: &str,
    ) -> Option<PendingFound> {
        self.reject(id, reason, code, message);
        None
    }

    /// Vardiff after a pseudo-share found at `found_at`, the difficulty of the job it was for
    /// (a miner takes a new difficulty only with its next job, so submits for older jobs were
    /// found at theirs); a new difficulty goes out with the current job.
    fn after_share(&mut self, found_at: f64) {
        if self.vardiff.on_share(Instant::now(), found_at).is_some() && self.difficulty_changed() {
            self.reissue();
        }
    }
}
