//! The one task that owns the swarm: it turns commands from [`P2pHandle`]s into swarm calls and
//! swarm events into [`Inbound`] values, enforces rate and size limits, bans, and keeps the
//! address book. It never blocks on share verification or disk writes.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bitcoin::block::Header;
use bitcoin::hashes::{sha256, Hash};
use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageAuthenticity, MessageId};
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    allow_block_list, connection_limits, identify, kad, noise, ping, tcp, yamux, Multiaddr, PeerId,
    Swarm,
};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::handle::{Command, P2pHandle, PeerInfo, RequestError, Topic};
use super::peers::{self, AddressBook, Bans, Offence, RateLimits};
use super::protocol::{Names, SyncCodec, SyncResponse, MAX_GOSSIP_BYTES, MAX_SHARE_BYTES};
use super::{Inbound, P2pConfig, P2pError, ReplyChannel, Via};

#[derive(NetworkBehaviour)]
struct Behaviour {
    blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    limits: connection_limits::Behaviour,
    gossipsub: gossipsub::Behaviour,
    sync: request_response::Behaviour<SyncCodec>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
}

const COMMAND_QUEUE: usize = 1024;
const INBOUND_QUEUE: usize = 1024;

fn message_id(m: &gossipsub::Message) -> MessageId {
    data_id(&m.data)
}

/// The gossip id of a message's data (content-addressed: the same block or tip from two nodes
/// is one message).
fn data_id(data: &[u8]) -> MessageId {
    MessageId::from(&sha256::Hash::hash(data).to_byte_array()[..20])
}

/// Gossip ids this node received lately, newest last: publishing one of them again is refused
/// by gossipsub (with a warning of its own), and the network has it already.
#[derive(Debug, Default)]
struct RecentIds {
    order: std::collections::VecDeque<MessageId>,
    set: HashSet<MessageId>,
}

impl RecentIds {
    /// About a minute of blocks and tips on an easy chain; gossipsub keeps its own duplicate
    /// cache for a minute too.
    const CAP: usize = 4096;

    fn insert(&mut self, id: MessageId) {
        if self.set.insert(id.clone()) {
            self.order.push_back(id);
            if self.order.len() > Self::CAP {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }

    fn contains(&self, id: &MessageId) -> bool {
        self.set.contains(id)
    }
}

fn build_swarm(
    config: &P2pConfig,
    keypair: libp2p::identity::Keypair,
    names: &Names,
) -> Result<Swarm<Behaviour>, P2pError> {
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established(Some(config.max_connections))
        .with_max_established_per_peer(Some(2))
        .with_max_pending_incoming(Some(32))
        .with_max_pending_outgoing(Some(32));
    let names = names.clone();
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| P2pError::Transport(e.to_string()))?
        .with_behaviour(|key| {
            let gossip_config = gossipsub::ConfigBuilder::default()
                .protocol_id_prefix(format!("/{}/meshsub", names.base))
                .heartbeat_interval(Duration::from_millis(500))
                .validation_mode(gossipsub::ValidationMode::Strict)
                .validate_messages()
                .message_id_fn(message_id)
                .max_transmit_size(MAX_GOSSIP_BYTES)
                .build()
                .map_err(|e| e.to_string())?;
            let gossipsub =
                gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), gossip_config)?;
            let sync = request_response::Behaviour::with_codec(
                SyncCodec,
                [(names.sync.clone(), ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(30))
                    .with_max_concurrent_streams(64),
            );
            let identify = identify::Behaviour::new(
                identify::Config::new(names.identify_version(), key.public())
                    .with_agent_version(format!("p2pool-rs/{}", env!("CARGO_PKG_VERSION"))),
            );
            let peer_id = key.public().to_peer_id();
            let mut kad = kad::Behaviour::with_config(
                peer_id,
                kad::store::MemoryStore::new(peer_id),
                kad::Config::new(names.kad.clone()),
            );
            kad.set_mode(Some(kad::Mode::Server));
            Ok(Behaviour {
                blocked: allow_block_list::Behaviour::default(),
                limits: connection_limits::Behaviour::new(limits),
                gossipsub,
                sync,
                identify,
                ping: ping::Behaviour::default(),
                kad,
            })
        })
        .map_err(|e| P2pError::Transport(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    Ok(swarm)
}

pub(super) async fn spawn(
    config: P2pConfig,
) -> Result<(P2pHandle, mpsc::Receiver<Inbound>), P2pError> {
    let keypair = match (&config.keypair, &config.datadir) {
        (Some(k), _) => k.clone(),
        (None, Some(dir)) => super::load_or_create_key(dir)?,
        (None, None) => libp2p::identity::Keypair::generate_ed25519(),
    };
    let names = config
        .names
        .clone()
        .unwrap_or_else(|| Names::new(config.params));
    let mut swarm = build_swarm(&config, keypair, &names)?;
    let topics = [
        (Topic::Shares, IdentTopic::new(names.shares_topic.clone())),
        (Topic::Blocks, IdentTopic::new(names.blocks_topic.clone())),
        (Topic::Tips, IdentTopic::new(names.tips_topic.clone())),
    ];
    for (_, t) in &topics {
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(t)
            .map_err(|e| P2pError::Transport(e.to_string()))?;
    }
    for addr in &config.listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| P2pError::Listen {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
    }
    // Wait for the listeners so `listen_addrs()` answers with real ports from the start.
    let mut listen_addrs = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while listen_addrs.len() < config.listen.len() {
        match tokio::time::timeout_at(deadline, swarm.select_next_some()).await {
            Ok(SwarmEvent::NewListenAddr { address, .. }) => listen_addrs.push(address),
            Ok(SwarmEvent::ListenerError { error, .. }) => {
                return Err(P2pError::Listen {
                    addr: config.listen[0].clone(),
                    reason: error.to_string(),
                })
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let peer_id = *swarm.local_peer_id();
    tracing::info!(%peer_id, network = config.params.name, addrs = ?listen_addrs, "share network listening");
    let (tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
    let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
    let (blocks, _) = broadcast::channel(16);
    let (tips, _) = broadcast::channel(16);
    let handle = P2pHandle {
        tx,
        peer_id,
        blocks: blocks.clone(),
        tips: tips.clone(),
        overflow: std::sync::Arc::new(super::handle::Overflow::new()),
    };
    let book_path = config.datadir.as_ref().map(|d| d.join("peers.txt"));
    let mut lp = EventLoop {
        rates: RateLimits::new(config.rate_per_sec, config.rate_burst),
        book: AddressBook::load(book_path.as_deref()),
        config,
        names,
        swarm,
        cmd_rx,
        inbound_tx,
        topics,
        blocks,
        tips,
        pending: HashMap::new(),
        bans: Bans::default(),
        connected: HashMap::new(),
        peer_meta: HashMap::new(),
        ready: HashSet::new(),
        foreign: HashSet::new(),
        listen_addrs,
        received: RecentIds::default(),
        saving: None,
    };
    lp.dial_known();
    tokio::spawn(lp.run());
    Ok((handle, inbound_rx))
}

struct EventLoop {
    config: P2pConfig,
    names: Names,
    swarm: Swarm<Behaviour>,
    cmd_rx: mpsc::Receiver<Command>,
    inbound_tx: mpsc::Sender<Inbound>,
    topics: [(Topic, IdentTopic); 3],
    blocks: broadcast::Sender<(PeerId, Vec<u8>)>,
    tips: broadcast::Sender<(PeerId, Header)>,
    pending: HashMap<OutboundRequestId, oneshot::Sender<Result<SyncResponse, RequestError>>>,
    bans: Bans,
    rates: RateLimits,
    book: AddressBook,
    /// Connected peers and the address of their first connection.
    connected: HashMap<PeerId, Multiaddr>,
    /// Per connected peer: whether it dialled us, and the agent version identify reported.
    peer_meta: HashMap<PeerId, (bool, Option<String>)>,
    /// Peers identify confirmed to be on our network.
    ready: HashSet<PeerId>,
    /// Peers of another network: never dialled again by this run.
    foreign: HashSet<PeerId>,
    listen_addrs: Vec<Multiaddr>,
    /// Gossip received lately (see [`RecentIds`]).
    received: RecentIds,
    /// The address book write in progress, off the event loop.
    saving: Option<tokio::task::JoinHandle<()>>,
}

impl EventLoop {
    async fn run(mut self) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut ticks: u64 = 0;
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event).await,
                cmd = self.cmd_rx.recv() => match cmd {
                    Some(Command::Shutdown) | None => break,
                    Some(cmd) => self.on_command(cmd),
                },
                _ = tick.tick() => {
                    ticks += 1;
                    self.on_tick(ticks);
                }
            }
        }
        if let Some(saving) = self.saving.take() {
            let _ = saving.await;
        }
        if let Err(e) = self.book.save() {
            tracing::warn!("saving the address book: {e}");
        }
        tracing::debug!("share network stopped");
    }

    fn on_tick(&mut self, ticks: u64) {
        for peer in self.bans.expire() {
            tracing::info!(%peer, "ban expired");
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
        }
        if ticks % 10 == 0 && self.connected.is_empty() {
            self.dial_known();
        }
        if ticks % 30 == 0 && self.saving.as_ref().is_none_or(|h| h.is_finished()) {
            // Disk writes never stall the swarm: the book is written on a blocking thread, one
            // write at a time.
            if let Some(write) = self.book.changes() {
                self.saving = Some(tokio::task::spawn_blocking(move || {
                    if let Err(e) = write.write() {
                        tracing::warn!("saving the address book: {e}");
                    }
                }));
            }
        }
        if ticks % 60 == 0 && !self.connected.is_empty() {
            let _ = self.swarm.behaviour_mut().kad.bootstrap();
        }
    }

    /// Dials the bootstrap peers and the address book.
    fn dial_known(&mut self) {
        let addrs: Vec<Multiaddr> = self
            .config
            .bootstrap
            .iter()
            .chain(self.book.addrs())
            .cloned()
            .collect();
        for addr in addrs {
            self.dial(addr);
        }
    }

    fn dial(&mut self, addr: Multiaddr) {
        if let Some(p) = peers::peer_of(&addr) {
            if p == *self.swarm.local_peer_id()
                || self.connected.contains_key(&p)
                || self.bans.is_banned(&p)
                || self.foreign.contains(&p)
            {
                return;
            }
        }
        if self.listen_addrs.contains(&addr) {
            return;
        }
        if let Err(e) = self.swarm.dial(addr.clone()) {
            tracing::debug!(%addr, "dial: {e}");
        }
    }

    fn topic_of(&self, hash: &gossipsub::TopicHash) -> Option<Topic> {
        self.topics
            .iter()
            .find(|(_, t)| t.hash() == *hash)
            .map(|(k, _)| *k)
    }

    fn topic(&self, topic: Topic) -> IdentTopic {
        self.topics
            .iter()
            .find(|(k, _)| *k == topic)
            .map(|(_, t)| t.clone())
            .expect("every topic is listed")
    }

    fn ban(&mut self, peer: PeerId, offence: &Offence) {
        if peer == *self.swarm.local_peer_id() {
            return;
        }
        tracing::warn!(%peer, "banning peer for {:?}: {offence}", self.config.ban_duration);
        self.bans.ban(peer, self.config.ban_duration);
        self.book.remove_peer(&peer);
        self.ready.remove(&peer);
        let b = self.swarm.behaviour_mut();
        b.blocked.block_peer(peer);
        b.kad.remove_peer(&peer);
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Publish { topic, data } => {
                if self.received.contains(&data_id(&data)) {
                    // A block or tip a peer told us first: the network has it.
                    tracing::trace!(?topic, "not publishing what a peer gossiped");
                    return;
                }
                let t = self.topic(topic);
                if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(t, data) {
                    tracing::debug!(?topic, "publish: {e}");
                }
            }
            Command::Validated {
                id,
                source,
                acceptance,
            } => {
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&id, &source, acceptance);
            }
            Command::Request {
                peer,
                request,
                reply,
            } => {
                if !self.connected.contains_key(&peer) {
                    let _ = reply.send(Err(RequestError::Failed("peer not connected".into())));
                    return;
                }
                let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
                self.pending.insert(id, reply);
            }
            Command::Respond { reply, response } => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_response(reply.0, response);
            }
            Command::Penalise { peer, offence } => self.ban(peer, &offence),
            Command::Dial(addr) => self.dial(addr),
            Command::Peers(reply) => {
                let peers = self
                    .connected
                    .iter()
                    .map(|(p, a)| {
                        let (incoming, agent) = self.peer_meta.get(p).cloned().unwrap_or_default();
                        PeerInfo {
                            peer: *p,
                            addr: a.clone(),
                            ready: self.ready.contains(p),
                            incoming,
                            agent_version: agent,
                        }
                    })
                    .collect();
                let _ = reply.send(peers);
            }
            Command::ListenAddrs(reply) => {
                let _ = reply.send(self.listen_addrs.clone());
            }
            Command::Shutdown => {}
        }
    }

    async fn deliver(&mut self, inbound: Inbound) {
        // Back-pressure: a slow share service slows the loop rather than growing a queue.
        let _ = self.inbound_tx.send(inbound).await;
    }

    async fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                self.listen_addrs.push(address);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                let addr = match &endpoint {
                    ConnectedPoint::Dialer { address, .. } => address.clone(),
                    ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr.clone(),
                };
                tracing::debug!(peer = %peer_id, %addr, "connected");
                self.connected.entry(peer_id).or_insert(addr);
                let incoming = matches!(endpoint, ConnectedPoint::Listener { .. });
                self.peer_meta.entry(peer_id).or_insert((incoming, None));
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                tracing::debug!(peer = %peer_id, "disconnected");
                self.connected.remove(&peer_id);
                self.peer_meta.remove(&peer_id);
                self.rates.forget(&peer_id);
                if self.ready.remove(&peer_id) {
                    self.deliver(Inbound::PeerGone(peer_id)).await;
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(peer = ?peer_id, "dial failed: {error}");
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event).await,
            _ => {}
        }
    }

    async fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                self.on_identify(peer_id, info).await;
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                self.on_gossip(propagation_source, message_id, message)
                    .await
            }
            BehaviourEvent::Sync(event) => self.on_sync(event).await,
            // Peers kad discovers fill the connection slots up to the target.
            BehaviourEvent::Kad(kad::Event::RoutingUpdated {
                peer, addresses, ..
            }) if self.connected.len() < self.config.target_peers
                && !self.connected.contains_key(&peer) =>
            {
                let addr = addresses.first().clone();
                self.dial(addr.with_p2p(peer).unwrap_or_else(|a| a));
            }
            _ => {}
        }
    }

    async fn on_identify(&mut self, peer: PeerId, info: identify::Info) {
        if info.protocol_version != self.names.identify_version() {
            tracing::info!(
                %peer,
                theirs = %info.protocol_version,
                ours = %self.names.identify_version(),
                "peer is on another network; disconnecting"
            );
            self.foreign.insert(peer);
            self.book.remove_peer(&peer);
            let _ = self.swarm.disconnect_peer_id(peer);
            return;
        }
        for addr in &info.listen_addrs {
            self.swarm
                .behaviour_mut()
                .kad
                .add_address(&peer, addr.clone());
        }
        if let Some(addr) = self.connected.get(&peer).cloned() {
            // Dialled addresses are known to work; for inbound peers use what they listen on.
            let dialled = self
                .swarm
                .behaviour()
                .sync
                .is_connected(&peer)
                .then_some(addr);
            let best = info
                .listen_addrs
                .iter()
                .find(|a| !a.to_string().contains("/tcp/0"))
                .cloned()
                .or(dialled);
            if let Some(a) = best {
                self.book.add(peer, &a);
            }
        }
        if let Some(meta) = self.peer_meta.get_mut(&peer) {
            meta.1 = Some(info.agent_version.clone());
        }
        if self.ready.insert(peer) {
            tracing::info!(%peer, agent = %info.agent_version, "peer ready");
            // Below the peer target: ask the new peer's routing table for more.
            if self.connected.len() < self.config.target_peers {
                let _ = self.swarm.behaviour_mut().kad.bootstrap();
            }
            self.deliver(Inbound::PeerReady(peer)).await;
        }
    }

    async fn on_gossip(&mut self, source: PeerId, id: MessageId, message: gossipsub::Message) {
        self.received.insert(id.clone());
        if !self.rates.allow(source) {
            self.reject(&id, &source);
            self.ban(source, &Offence::Flood);
            return;
        }
        match self.topic_of(&message.topic) {
            Some(Topic::Shares) => {
                if message.data.len() > MAX_SHARE_BYTES {
                    self.reject(&id, &source);
                    self.ban(source, &Offence::Undecodable("oversized share".into()));
                    return;
                }
                let inbound = Inbound::Shares {
                    from: source,
                    shares: vec![message.data],
                    via: Via::Gossip(id.clone()),
                };
                // A full queue means the service is busy: drop the message; the share comes
                // back as a missing parent or from the next gossip.
                if self.inbound_tx.try_send(inbound).is_err() {
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .report_message_validation_result(&id, &source, MessageAcceptance::Ignore);
                }
            }
            Some(Topic::Blocks) => {
                match bitcoin::consensus::deserialize::<bitcoin::Block>(&message.data) {
                    Ok(block)
                        if block.header.validate_pow(block.header.target()).is_ok()
                            && block.check_merkle_root() =>
                    {
                        self.accept(&id, &source);
                        tracing::info!(peer = %source, block = %block.block_hash(), "found block gossiped");
                        let _ = self.blocks.send((source, message.data));
                    }
                    Ok(_) => {
                        self.reject(&id, &source);
                        self.ban(
                            source,
                            &Offence::Undecodable("block without valid proof of work".into()),
                        );
                    }
                    Err(e) => {
                        self.reject(&id, &source);
                        self.ban(source, &Offence::Undecodable(format!("block: {e}")));
                    }
                }
            }
            Some(Topic::Tips) => match bitcoin::consensus::deserialize::<Header>(&message.data) {
                Ok(h) if h.validate_pow(h.target()).is_ok() => {
                    self.accept(&id, &source);
                    let _ = self.tips.send((source, h));
                }
                Ok(_) => {
                    self.reject(&id, &source);
                    self.ban(
                        source,
                        &Offence::Undecodable("tip without valid proof of work".into()),
                    );
                }
                Err(e) => {
                    self.reject(&id, &source);
                    self.ban(source, &Offence::Undecodable(format!("tip: {e}")));
                }
            },
            None => {
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&id, &source, MessageAcceptance::Ignore);
            }
        }
    }

    fn accept(&mut self, id: &MessageId, source: &PeerId) {
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(id, source, MessageAcceptance::Accept);
    }

    fn reject(&mut self, id: &MessageId, source: &PeerId) {
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(id, source, MessageAcceptance::Reject);
    }

    async fn on_sync(&mut self, event: request_response::Event<super::SyncRequest, SyncResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    if !self.rates.allow(peer) {
                        self.ban(peer, &Offence::Flood);
                        return;
                    }
                    self.deliver(Inbound::Request {
                        from: peer,
                        request,
                        reply: ReplyChannel(channel),
                    })
                    .await;
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some(reply) = self.pending.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                tracing::debug!(%peer, "sync request failed: {error}");
                if let request_response::OutboundFailure::Io(e) = &error {
                    if e.kind() == std::io::ErrorKind::InvalidData {
                        self.ban(peer, &Offence::Undecodable(e.to_string()));
                    }
                }
                if let Some(reply) = self.pending.remove(&request_id) {
                    let _ = reply.send(Err(RequestError::Failed(error.to_string())));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, "inbound sync request failed: {error}");
                if let request_response::InboundFailure::Io(e) = &error {
                    if e.kind() == std::io::ErrorKind::InvalidData {
                        self.ban(peer, &Offence::Undecodable(e.to_string()));
                    }
                }
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_ids_forget_the_oldest_beyond_the_cap() {
        let mut r = RecentIds::default();
        let ids: Vec<MessageId> = (0..=RecentIds::CAP as u32)
            .map(|i| data_id(&i.to_le_bytes()))
            .collect();
        for id in &ids {
            r.insert(id.clone());
            r.insert(id.clone());
        }
        assert!(!r.contains(&ids[0]));
        assert!(ids[1..].iter().all(|id| r.contains(id)));
        assert_eq!(r.order.len(), RecentIds::CAP);
    }
}
