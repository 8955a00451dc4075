//! One stratum V1 session: subscribe/authorize handshake, jobs, submits, vardiff.
//!
//! Each session has a task: lines are handled in order (pipelined requests are answered in
//! order, replies batched into one write), the re-notify timer interleaves with reads, and every
//! wait has a deadline. New work does not wake the task: once the session is ready it is
//! registered with the port's fan-out ([`super::fanout`]), which issues jobs and writes notifies
//! under the session's lock.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::{ScriptBuf, Target};
use parking_lot::Mutex;
use serde_json::{Map, Value};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::{interval_at, sleep_until, MissedTickBehavior};
use tracing::debug;

mod submit;

pub(crate) use submit::PendingFound;

use super::code;
use super::codec::{
    parse_difficulty, parse_hex_u32, parse_request, parse_target_difficulty, write_error,
    write_result, write_set_difficulty, LineError, LineReader, Request,
};
use crate::worker::job::{
    difficulty_to_target, easier, format_difficulty, target_to_difficulty, wire_difficulty,
    Extranonce1, PreparedJob,
};
use crate::worker::stats::Reject;
use crate::worker::username::parse_username;
use crate::worker::vardiff::Vardiff;
use crate::worker::{Miner, NoWork, Shared, WorkProvider};

/// Jobs a session remembers (older ones answer "job not found").
const MAX_JOBS: usize = 8;
/// Accepted submits remembered per job for duplicate detection (bounds a session's memory to
/// `MAX_JOBS · MAX_SEEN` hashes; a job that fills up is replaced by a fresh one).
const MAX_SEEN: usize = 1024;
/// Unwritten bytes past which a session gets no more new work (it has stopped reading).
const MAX_BACKLOG: usize = 256 * 1024;
/// Pseudo-shares a second a miner is held to when blocks are easier than that (see
/// `Session::difficulty_for`).
const MAX_SUBMITS_PER_SEC: f64 = 50.0;
/// Size of extranonce2 (extranonce1 is 4 bytes; together the 8-byte last_txout_nonce).
const EXTRANONCE2_SIZE: usize = 4;

/// A job as handed to this session, with the pseudo-share target it was handed out with.
struct Issued {
    id: u64,
    job: Arc<PreparedJob>,
    target: Target,
    difficulty: f64,
    seen: HashSet<u128>,
}

pub(crate) struct Session<P> {
    shared: Arc<Shared<P>>,
    /// Bytes not yet written to the socket.
    out: Vec<u8>,
    close: bool,
    /// The task has ended: the fan-out leaves the connection alone.
    ended: bool,
    extranonce1: Option<Extranonce1>,
    miner: Option<Arc<Miner>>,
    version_mask: u32,
    vardiff: Vardiff,
    sent_difficulty: Option<f64>,
    jobs: VecDeque<Issued>,
    current: Option<Arc<PreparedJob>>,
    /// Notify lines in `out`.
    notifies: u64,
}

/// A stratum connection as its task and the port's fan-out ([`super::fanout`]) share it. Every
/// write to the socket happens under `state`'s lock, so lines never interleave.
pub(crate) struct Conn<P> {
    state: Mutex<Session<P>>,
    writer: OwnedWriteHalf,
    /// A fan-out left bytes in `out` that did not fit the socket: the task flushes them.
    pending: Notify,
}

impl<P: WorkProvider> Conn<P> {
    /// Issue the provider's current job if it is new to this session, and write it. Returns
    /// the notify lines completely written (the rest is left to the task).
    pub(crate) fn push_update(&self, clean: bool, memo: &mut JobMemo) -> u64 {
        let mut session = self.state.lock();
        if session.ended || !session.ready() || session.out.len() >= MAX_BACKLOG {
            // A miner this far behind on reading is closed by its task at the write timeout.
            return 0;
        }
        session.on_update(clean, Some(memo));
        if session.out.is_empty() {
            return 0;
        }
        match session.write_out(&self.writer) {
            Ok(Some(n)) => n,
            Ok(None) | Err(()) => {
                drop(session);
                self.pending.notify_one();
                0
            }
        }
    }

    /// Write everything in `out`, waiting for the socket at most `limit`.
    async fn flush(&self, limit: Duration) -> Result<(), ()> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            {
                let mut session = self.state.lock();
                if let Some(notifies) = session.write_out(&self.writer)? {
                    if notifies > 0 {
                        session.shared.notified(notifies);
                    }
                    return Ok(());
                }
            }
            match tokio::time::timeout_at(deadline, self.writer.writable()).await {
                Ok(Ok(())) => {}
                _ => return Err(()),
            }
        }
    }
}

/// The prepared jobs one fan-out handed out, by what a job depends on (payout script and
/// requested share difficulty), so the sessions of one miner cost one provider call.
#[derive(Default)]
pub(crate) struct JobMemo {
    jobs: HashMap<JobKey, JobLookup>,
    /// The last look-up (consecutive sessions are often the same miner's).
    last: Option<(JobKey, JobLookup)>,
}

/// Payout script and requested share difficulty (as bits).
type JobKey = (ScriptBuf, Option<u64>);
type JobLookup = Result<Arc<PreparedJob>, NoWork>;

impl JobMemo {
    fn job<P: WorkProvider>(
        &mut self,
        shared: &Shared<P>,
        miner: &Miner,
    ) -> Result<Arc<PreparedJob>, NoWork> {
        let share = miner.share_difficulty.map(f64::to_bits);
        if let Some(((payout, s), job)) = &self.last {
            if *s == share && *payout == miner.payout {
                return job.clone();
            }
        }
        let key = (miner.payout.clone(), share);
        let job = match self.jobs.get(&key) {
            Some(job) => job.clone(),
            None => {
                let job = shared
                    .provider
                    .job(miner)
                    .map(|job| shared.jobs.prepare(job, || shared.next_job_id()));
                self.jobs.insert(key.clone(), job.clone());
                job
            }
        };
        self.last = Some((key, job.clone()));
        job
    }
}

enum Event {
    Line,
    Pending,
    Tick,
}

/// Removes a connection from the fan-out when its task ends (or is aborted).
struct Registered<'a, P> {
    shared: &'a Shared<P>,
    key: u64,
}

impl<P> Drop for Registered<'_, P> {
    fn drop(&mut self) {
        self.shared.fanout.remove(self.key);
    }
}

/// Serve one stratum connection until it closes or misbehaves (or its task is aborted).
pub(crate) async fn run<P: WorkProvider>(shared: Arc<Shared<P>>, stream: TcpStream) {
    let config = shared.config.clone();
    let (rd, writer) = stream.into_split();
    let mut reader = LineReader::new(rd, 1024, config.max_line);
    let start = Instant::now();
    let conn = Arc::new(Conn {
        state: Mutex::new(Session {
            vardiff: Vardiff::new(config.vardiff.clone(), start),
            shared: Arc::clone(&shared),
            out: Vec::new(),
            close: false,
            ended: false,
            extranonce1: None,
            miner: None,
            version_mask: 0,
            sent_difficulty: None,
            jobs: VecDeque::new(),
            current: None,
            notifies: 0,
        }),
        writer,
        pending: Notify::new(),
    });
    let mut registered: Option<Registered<'_, P>> = None;
    let authorize_deadline = sleep_until((start + config.authorize_timeout).into());
    tokio::pin!(authorize_deadline);
    let period = config.renotify_interval.max(Duration::from_millis(100));
    let mut renotify = interval_at((start + period).into(), period);
    renotify.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let far = Duration::from_secs(86_400 * 365);

    loop {
        let ready = registered.is_some();
        let line_deadline = reader
            .partial_since()
            .map(|t| t + config.line_timeout)
            .unwrap_or_else(|| start + far);
        let event = tokio::select! {
            read = reader.next_line() => match read {
                Ok(true) => Event::Line,
                Ok(false) => break,
                Err(LineError::TooLong(max)) => {
                    debug!(max, "stratum line too long, closing");
                    let mut session = conn.state.lock();
                    write_error(&mut session.out, &Value::Null, code::OTHER, "line too long", "null");
                    session.close = true;
                    Event::Pending
                }
                Err(LineError::Io(_)) => break,
            },
            () = conn.pending.notified() => Event::Pending,
            _ = renotify.tick() => Event::Tick,
            () = sleep_until(line_deadline.into()), if reader.partial_since().is_some() => {
                debug!("stratum line not completed in time, closing");
                break;
            }
            () = &mut authorize_deadline, if !ready => {
                debug!("stratum session not authorized in time, closing");
                break;
            }
        };
        match event {
            Event::Line => {
                let found = conn.state.lock().handle_line(reader.line());
                if let Some(PendingFound { found, reply }) = found {
                    let outcome = shared.provider.found(found).await;
                    conn.state.lock().finish_submit(reply, outcome);
                }
                if registered.is_none() && conn.state.lock().ready() {
                    // Register first, then look for work again: an update between the job
                    // handed out while authorizing and the registration is not missed.
                    registered = Some(Registered {
                        shared: &shared,
                        key: shared.fanout.insert(Arc::clone(&conn)),
                    });
                    conn.state.lock().on_update(false, None);
                }
                let batch = {
                    let session = conn.state.lock();
                    !session.close && reader.has_buffered_line() && session.out.len() < 16 * 1024
                };
                if batch {
                    continue;
                }
            }
            Event::Tick => conn.state.lock().on_tick(),
            Event::Pending => {}
        }
        if conn.flush(config.write_timeout).await.is_err() || conn.state.lock().close {
            break;
        }
    }
    let mut session = conn.state.lock();
    session.ended = true;
    if let Some(miner) = &session.miner {
        session
            .shared
            .stats
            .disconnected(&miner.address, &miner.worker);
    }
    drop(session);
    drop(registered);
}

impl<P: WorkProvider> Session<P> {
    fn ready(&self) -> bool {
        self.extranonce1.is_some() && self.miner.is_some()
    }

    /// Write as much of `out` as the socket takes without waiting. `Some(notifies)` when all
    /// of it went (with the notify lines it held), `None` when some is left.
    fn write_out(&mut self, writer: &OwnedWriteHalf) -> Result<Option<u64>, ()> {
        if self.out.is_empty() {
            return Ok(Some(0));
        }
        let written = match writer.try_write(&self.out) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
            Err(_) => return Err(()),
        };
        if written < self.out.len() {
            self.out.drain(..written);
            return Ok(None);
        }
        self.out.clear();
        if self.out.capacity() > 16 * 1024 {
            self.out.shrink_to(1024);
        }
        Ok(Some(std::mem::take(&mut self.notifies)))
    }

    /// Handle one request line. A submit that found a share or block is returned for the
    /// provider (awaited without the session's lock), then passed to [`Self::finish_submit`].
    fn handle_line(&mut self, line: &[u8]) -> Option<PendingFound> {
        let request = match parse_request(line) {
            Ok(r) => r,
            Err(_) => {
                write_error(
                    &mut self.out,
                    &Value::Null,
                    code::OTHER,
                    "invalid JSON",
                    "null",
                );
                return None;
            }
        };
        let Request { id, method, params } = request;
        let Some(method) = method else {
            // A reply to nothing we asked, or junk: answer only if it carries an id.
            if !id.is_null() {
                write_error(&mut self.out, &id, code::OTHER, "missing method", "null");
            }
            return None;
        };
        if method == "mining.submit" {
            return self.submit(&id, &params);
        }
        match method.as_str() {
            "mining.subscribe" => self.subscribe(&id, &params),
            "mining.authorize" => self.authorize(&id, &params),
            "mining.configure" => self.configure(&id, &params),
            "mining.suggest_difficulty" => {
                self.suggest_difficulty(&id, parse_difficulty(params.first()));
            }
            "mining.suggest_target" => {
                self.suggest_difficulty(&id, parse_target_difficulty(params.first()));
            }
            "mining.extranonce.subscribe" => write_result(&mut self.out, &id, "true"),
            _ => {
                let message = format!("unknown method {method:?}");
                write_error(&mut self.out, &id, code::OTHER, &message, "null");
            }
        }
        None
    }

    fn subscribe(&mut self, id: &Value, params: &[Value]) {
        let en1 = match &self.extranonce1 {
            Some(e) => e.value,
            None => {
                let wanted = params
                    .get(1)
                    .and_then(Value::as_str)
                    .filter(|s| s.len() == 8)
                    .and_then(|s| u32::from_str_radix(s, 16).ok());
                let e = self.shared.extranonces.allocate(wanted);
                let v = e.value;
                self.extranonce1 = Some(e);
                v
            }
        };
        let result = format!(
            "[[[\"mining.set_difficulty\",\"{en1:08x}\"],[\"mining.notify\",\"{en1:08x}\"]],\"{en1:08x}\",{EXTRANONCE2_SIZE}]"
        );
        write_result(&mut self.out, id, &result);
        if self.ready() && self.current.is_none() {
            self.send_work(true);
        }
    }

    fn authorize(&mut self, id: &Value, params: &[Value]) {
        let Some(user) = params.first().and_then(Value::as_str) else {
            write_error(
                &mut self.out,
                id,
                code::UNAUTHORIZED,
                "missing username",
                "false",
            );
            return;
        };
        let miner = match parse_username(user, self.shared.provider.network()) {
            Ok(m) => Arc::new(m),
            Err(e) => {
                write_error(
                    &mut self.out,
                    id,
                    code::UNAUTHORIZED,
                    &e.to_string(),
                    "false",
                );
                return;
            }
        };
        let stats = &self.shared.stats;
        if let Some(old) = &self.miner {
            stats.disconnected(&old.address, &old.worker);
        }
        stats.connected(&miner.address, &miner.worker);
        if let Some(d) = miner.pseudo_difficulty {
            self.vardiff.set(d, true, Instant::now());
        }
        let first = self.miner.is_none();
        self.miner = Some(miner);
        write_result(&mut self.out, id, "true");
        if self.ready() {
            self.send_work(first);
        }
    }

    fn configure(&mut self, id: &Value, params: &[Value]) {
        let extensions = params.first().and_then(Value::as_array);
        let options = params.get(1).and_then(Value::as_object);
        let mut result = Map::new();
        for ext in extensions.into_iter().flatten().filter_map(Value::as_str) {
            if ext == "version-rolling" {
                let miner_mask = options
                    .and_then(|o| o.get("version-rolling.mask"))
                    .map_or(Some(u32::MAX), |m| parse_hex_u32(Some(m)))
                    .unwrap_or(0);
                let mask = miner_mask & self.shared.config.version_mask;
                self.version_mask = mask;
                result.insert(ext.to_owned(), Value::Bool(mask != 0));
                if mask != 0 {
                    result.insert(
                        "version-rolling.mask".to_owned(),
                        Value::String(format!("{mask:08x}")),
                    );
                }
            } else {
                result.insert(ext.to_owned(), Value::Bool(false));
            }
        }
        write_result(&mut self.out, id, &Value::Object(result).to_string());
    }

    /// `mining.suggest_difficulty`, or `mining.suggest_target` turned into a difficulty.
    fn suggest_difficulty(&mut self, id: &Value, suggested: Option<f64>) {
        let Some(d) = suggested else {
            write_error(
                &mut self.out,
                id,
                code::OTHER,
                "invalid difficulty",
                "false",
            );
            return;
        };
        write_result(&mut self.out, id, "true");
        let fixed = self
            .miner
            .as_ref()
            .is_some_and(|m| m.pseudo_difficulty.is_some());
        if !fixed {
            self.vardiff.set(d, false, Instant::now());
        }
        if self.ready() && self.current.is_some() {
            // Always answer a suggestion with a set_difficulty (and the notify that applies it).
            self.sent_difficulty = None;
            self.reissue();
        } else if !fixed && self.extranonce1.is_some() {
            // Answer with the (clamped) difficulty now; the notify follows authorization.
            // Never before the subscribe reply: cpuminer reads one line as that reply.
            let wire = wire_difficulty(self.vardiff.difficulty());
            write_set_difficulty(&mut self.out, &format_difficulty(wire));
            self.sent_difficulty = Some(wire);
        }
    }

    /// Fetch the miner's current job and hand it out.
    fn send_work(&mut self, clean: bool) {
        let Some(miner) = &self.miner else { return };
        match self.shared.provider.job(miner) {
            Ok(job) => {
                let prepared = self.shared.jobs.prepare(job, || self.shared.next_job_id());
                let clean = clean
                    || self
                        .current
                        .as_ref()
                        .is_some_and(|c| c.job.prev_hash != prepared.job.prev_hash);
                self.issue(prepared, clean);
            }
            Err(e) => {
                debug!(reason = %e.reason, "no work for miner");
                self.shared.stats.no_work(&e.reason);
            }
        }
    }

    /// Hand the current job out again (after a difficulty change), or fetch one.
    fn reissue(&mut self) {
        match self.current.clone() {
            Some(job) => self.issue(job, false),
            None => self.send_work(true),
        }
    }

    /// The difficulty to hand out with `job`: vardiff's, never above the share difficulty
    /// (every share must reach the node) nor the block difficulty — except where shares or
    /// blocks are so easy that a miner would send more than [`MAX_SUBMITS_PER_SEC`] for them
    /// (regtest, testnet4's difficulty-1 blocks, a share chain that has not yet retargeted to
    /// a big miner): there every submit is a block candidate on the same parent, one of them
    /// is all the chain needs, the share chain retargets within a few shares, and a miner
    /// flooding its own connection only makes its answers and its next job late.
    fn difficulty_for(&self, job: &PreparedJob) -> f64 {
        let vardiff = self.vardiff.difficulty();
        let share = target_to_difficulty(&job.job.share_target);
        let block = target_to_difficulty(&job.job.block_target);
        // A difficulty the miner chose is its own business: no share is held back from it.
        // Nor from a miner not yet measured: vardiff's guess may be far above its hash rate,
        // and its first `retarget_shares` submits measure it.
        let flood = if self.vardiff.chosen_by_miner() || !self.vardiff.measured() {
            0.0
        } else {
            vardiff / self.vardiff.flood_factor(MAX_SUBMITS_PER_SEC)
        };
        wire_difficulty(vardiff.min(share.min(block).max(flood)))
    }

    /// Whether the difficulty to hand out differs from the one the miner has.
    fn difficulty_changed(&self) -> bool {
        self.current
            .as_ref()
            .is_none_or(|c| Some(self.difficulty_for(c)) != self.sent_difficulty)
    }

    fn issue(&mut self, job: Arc<PreparedJob>, clean: bool) {
        let floor = job.floor_target;
        let difficulty = self.difficulty_for(&job);
        let target = easier(difficulty_to_target(difficulty), floor);
        if self.sent_difficulty != Some(difficulty) {
            write_set_difficulty(&mut self.out, &format_difficulty(difficulty));
            self.sent_difficulty = Some(difficulty);
        }
        let first = !self.jobs.iter().any(|i| Arc::ptr_eq(&i.job, &job));
        let id = if first && self.jobs.iter().all(|i| i.id != job.first_id) {
            self.out.extend_from_slice(job.first_notify(clean));
            job.first_id
        } else {
            let id = self.shared.next_job_id();
            job.write_notify(&mut self.out, id, clean);
            id
        };
        self.notifies += 1;
        if self.jobs.len() >= MAX_JOBS {
            self.jobs.pop_front();
        }
        self.jobs.push_back(Issued {
            id,
            job: Arc::clone(&job),
            target,
            difficulty,
            seen: HashSet::new(),
        });
        self.current = Some(job);
    }

    /// Issue the provider's current job if it differs from the one the miner has. `memo`
    /// carries look-ups across the sessions of one fan-out.
    fn on_update(&mut self, clean: bool, memo: Option<&mut JobMemo>) {
        let Some(miner) = &self.miner else { return };
        let prepared = match memo {
            Some(memo) => memo.job(&self.shared, miner),
            None => self
                .shared
                .provider
                .job(miner)
                .map(|job| self.shared.jobs.prepare(job, || self.shared.next_job_id())),
        };
        match prepared {
            Ok(prepared) => {
                if self
                    .current
                    .as_ref()
                    .is_some_and(|c| Arc::ptr_eq(&c.job, &prepared.job))
                {
                    return;
                }
                let clean = clean
                    || self
                        .current
                        .as_ref()
                        .is_none_or(|c| c.job.prev_hash != prepared.job.prev_hash);
                self.issue(prepared, clean);
            }
            Err(e) => {
                debug!(reason = %e.reason, "no work for miner");
                self.shared.stats.no_work(&e.reason);
            }
        }
    }

    fn on_tick(&mut self) {
        if !self.ready() {
            return;
        }
        self.vardiff.on_tick(Instant::now());
        self.send_work(false);
    }

    fn reject(&mut self, id: &Value, reason: Reject, code: i32, message: &str) {
        if let Some(m) = &self.miner {
            self.shared.stats.reject(&m.address, &m.worker, reason);
        }
        write_error(&mut self.out, id, code, message, "false");
    }
}
