//! The current block template, kept fresh from three sources: `getblocktemplate` long polling,
//! an immediate refresh when the P2P link (or anyone holding a [`TemplateRefresh`]) reports a new
//! block, and a slow poll as a fallback. A failing bitcoind is retried with back-off; the last
//! good template stays published meanwhile.

use std::sync::Arc;
use std::time::Duration;

use bitcoin::BlockHash;
use tokio::sync::{mpsc, watch};

use super::rpc::{RpcClient, RpcError};
use super::types::BlockTemplate;
use super::{AbortOnDrop, Backoff};

/// How templates are fetched.
#[derive(Debug, Clone)]
pub struct TemplateConfig {
    /// Fetch a template at least this often, whatever else happens.
    pub slow_poll: Duration,
    /// Use BIP22 long polling.
    pub long_poll: bool,
    /// Between attempts while bitcoind fails.
    pub backoff: Backoff,
}

impl Default for TemplateConfig {
    fn default() -> Self {
        Self {
            slow_poll: Duration::from_secs(10),
            long_poll: true,
            backoff: Backoff::new(Duration::from_millis(250), Duration::from_secs(15)),
        }
    }
}

/// Asks the source for a fresh template now; cheap to clone. Requests made while one is pending
/// are merged.
#[derive(Debug, Clone)]
pub struct TemplateRefresh(mpsc::Sender<()>);

impl TemplateRefresh {
    /// Asks for a fresh template; does nothing if a request is already pending.
    pub fn refresh(&self) {
        let _ = self.0.try_send(());
    }
}

/// The latest template on a `watch`; the background task stops when this is dropped.
#[derive(Debug)]
pub struct TemplateSource {
    templates: watch::Receiver<Arc<BlockTemplate>>,
    refresh: TemplateRefresh,
    _task: AbortOnDrop,
}

impl TemplateSource {
    /// Fetch the first template (retrying transient errors with back-off; a persistent error is
    /// returned), then keep it fresh in the background. `tips` (from
    /// [`super::BitcoindP2p::tips`]) triggers a refresh on every announced block.
    pub async fn start(
        rpc: RpcClient,
        config: TemplateConfig,
        tips: Option<watch::Receiver<Option<BlockHash>>>,
    ) -> Result<Self, RpcError> {
        let mut backoff = config.backoff.clone();
        let first = loop {
            match rpc.get_block_template(None).await {
                Ok(template) => break template,
                Err(e) if e.is_transient() => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in = ?delay, "no block template yet");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        };
        tracing::info!(height = first.height, prev = %first.previous_block_hash, "first block template");
        let (publish, templates) = watch::channel(Arc::new(first));
        let (refresh_tx, refresh_rx) = mpsc::channel(1);
        let task = tokio::spawn(run(rpc, config, publish, refresh_rx, tips));
        Ok(Self {
            templates,
            refresh: TemplateRefresh(refresh_tx),
            _task: AbortOnDrop(task),
        })
    }

    /// The latest template; `changed()` fires on every new one.
    pub fn templates(&self) -> watch::Receiver<Arc<BlockTemplate>> {
        self.templates.clone()
    }

    /// The latest template.
    pub fn current(&self) -> Arc<BlockTemplate> {
        self.templates.borrow().clone()
    }

    /// A handle to ask for a fresh template.
    pub fn refresher(&self) -> TemplateRefresh {
        self.refresh.clone()
    }
}

type LongPoll = std::pin::Pin<Box<dyn std::future::Future<Output = LongPollResult> + Send>>;
type LongPollResult = Result<BlockTemplate, RpcError>;

/// A long poll for a template newer than `longpollid`; after a failure it waits `delay` first
/// so a dead bitcoind is not hammered.
fn long_poll(rpc: RpcClient, longpollid: String, delay: Duration) -> LongPoll {
    Box::pin(async move {
        tokio::time::sleep(delay).await;
        rpc.get_block_template(Some(&longpollid)).await
    })
}

async fn run(
    rpc: RpcClient,
    config: TemplateConfig,
    publish: watch::Sender<Arc<BlockTemplate>>,
    mut refresh: mpsc::Receiver<()>,
    mut tips: Option<watch::Receiver<Option<BlockHash>>>,
) {
    let mut poll_backoff = config.backoff.clone();
    let mut slow = tokio::time::interval(config.slow_poll);
    slow.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    slow.reset();
    let current_id = |p: &watch::Sender<Arc<BlockTemplate>>| p.borrow().longpollid.clone();
    let mut poll: Option<LongPoll> = config
        .long_poll
        .then(|| long_poll(rpc.clone(), current_id(&publish), Duration::ZERO));
    let mut failing = false;
    // Set when the long poll finished: re-armed once its template is published, so the next
    // one waits on the new `longpollid`.
    let mut rearm: Option<Duration> = None;
    loop {
        let fetched: Option<LongPollResult> = tokio::select! {
            result = async {
                match poll.as_mut() {
                    Some(poll) => poll.await,
                    None => std::future::pending().await,
                }
            }, if poll.is_some() => {
                let timed_out = matches!(result, Err(RpcError::Timeout(_)));
                let delay = match &result {
                    Ok(_) => { poll_backoff.reset(); Duration::ZERO }
                    // An idle chain: bitcoind may hold a long poll longer than our bound.
                    Err(_) if timed_out => Duration::ZERO,
                    Err(_) => poll_backoff.next_delay(),
                };
                if timed_out {
                    tracing::debug!("long poll timed out; polling again");
                    poll = Some(long_poll(rpc.clone(), current_id(&publish), delay));
                    continue;
                }
                poll = None;
                rearm = Some(delay);
                Some(result)
            }
            request = refresh.recv() => match request {
                Some(()) => None,
                None => return,
            },
            changed = async {
                match tips.as_mut() {
                    Some(tips) => tips.changed().await,
                    None => std::future::pending().await,
                }
            } => {
                if changed.is_err() {
                    tips = None;
                    continue;
                }
                None
            }
            _ = slow.tick() => None,
            () = publish.closed() => return,
        };
        let result = match fetched {
            Some(result) => result,
            None => rpc.get_block_template(None).await,
        };
        slow.reset();
        match result {
            Ok(template) => {
                if failing {
                    tracing::info!("block templates flow again");
                    failing = false;
                }
                let new = publish.send_if_modified(|current| {
                    let changed = current.longpollid != template.longpollid
                        || current.previous_block_hash != template.previous_block_hash;
                    if changed {
                        *current = Arc::new(template);
                    }
                    changed
                });
                if new {
                    let t = publish.borrow();
                    tracing::debug!(
                        height = t.height,
                        txs = t.transactions.len(),
                        "new block template"
                    );
                }
            }
            Err(e) => {
                // The long poll's own back-off paces retries; the slow poll keeps trying too.
                if e.is_transient() {
                    tracing::warn!(error = %e, "getblocktemplate failed; keeping the last template");
                } else {
                    tracing::error!(error = %e, "getblocktemplate failed; keeping the last template");
                }
                failing = true;
            }
        }
        if let Some(delay) = rearm.take() {
            poll = Some(long_poll(rpc.clone(), current_id(&publish), delay));
        }
    }
}
