//! The read-only web side of the node: the status page (embedded from `web/`), P2Pool's JSON
//! endpoints, `/web/graph_data` from the statistics store, and `/metrics` for Prometheus.
//! Served on the worker port next to getwork; no route changes node state.
//!
//! Every handler reads a snapshot (`snapshot.rs`) taken under short locks; nothing is held
//! across an `.await`.

mod api;
mod metrics;
mod snapshot;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use crate::bitcoind::{Bitcoind, BlockTemplate, RpcClient};
use crate::delivery::NodeWork;
use crate::stats::{SamplerConfig, Stats};
use crate::submit::BlockSubmitter;
use crate::worker::WorkerPort;

pub use snapshot::{ChainSummary, Peer};

/// The node's version as `/web/version` reports it.
pub const VERSION: &str = concat!("p2pool-rs/", env!("CARGO_PKG_VERSION"));

/// Where the page and the API learn about connected peers. The share network fills this in;
/// until then the node has none.
pub trait PeerSource: Send + Sync + std::fmt::Debug + 'static {
    /// The share-network peers connected now, in no particular order.
    fn peers(&self) -> Vec<Peer>;
}

/// No share network: no peers.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPeers;

impl PeerSource for NoPeers {
    fn peers(&self) -> Vec<Peer> {
        Vec::new()
    }
}

/// What the web side reads; cheap to clone.
#[derive(Debug, Clone)]
pub struct WebState {
    inner: Arc<Inner>,
}

struct Inner {
    work: Arc<NodeWork>,
    port: WorkerPort<NodeWork>,
    rpc: RpcClient,
    templates: watch::Receiver<Arc<BlockTemplate>>,
    submitter: BlockSubmitter,
    stats: Arc<Stats>,
    peers: RwLock<Arc<dyn PeerSource>>,
    started: Instant,
    fee_percent: f64,
    /// Accepted and stale pseudo-share counts at the last sample (for the dead hash rate).
    last_counts: Mutex<(u64, u64)>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebState")
            .field("stats", &self.stats)
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

impl WebState {
    /// The web side of a node; statistics persist in `datadir` when given.
    pub fn new(
        work: Arc<NodeWork>,
        port: WorkerPort<NodeWork>,
        bitcoind: &Bitcoind,
        datadir: Option<&Path>,
        fee_percent: f64,
    ) -> WebState {
        let stats = match datadir {
            Some(d) => Stats::open(d),
            None => Stats::in_memory(),
        };
        WebState {
            inner: Arc::new(Inner {
                work,
                port,
                rpc: bitcoind.rpc.clone(),
                templates: bitcoind.templates.templates(),
                submitter: bitcoind.submitter.clone(),
                stats: Arc::new(stats),
                peers: RwLock::new(Arc::new(NoPeers)),
                started: Instant::now(),
                fee_percent,
                last_counts: Mutex::new((0, 0)),
            }),
        }
    }

    /// Replaces the peer source (the share network, once it runs).
    pub fn set_peers(&self, peers: Arc<dyn PeerSource>) {
        *self.inner.peers.write() = peers;
    }

    /// The statistics store.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.inner.stats
    }

    /// Samples the node into the statistics store until `shutdown`, then saves it.
    pub async fn run_sampler(self, config: SamplerConfig, shutdown: watch::Receiver<bool>) {
        let stats = Arc::clone(&self.inner.stats);
        crate::stats::run_sampler(stats, config, move || self.sample(), shutdown).await;
    }
}

/// The router: the page, the JSON API and `/metrics`. Only GET routes; `POST /` stays getwork's.
pub fn router(state: WebState) -> Router {
    let routes = page_routes()
        .route("/kind", get(api::kind))
        .route("/rate", get(api::rate))
        .route("/difficulty", get(api::difficulty))
        .route("/users", get(api::users))
        .route("/fee", get(api::fee))
        .route("/current_payouts", get(api::current_payouts))
        .route("/global_stats", get(api::global_stats))
        .route("/local_stats", get(api::local_stats))
        .route("/peer_addresses", get(api::peer_addresses))
        .route("/recent_blocks", get(api::recent_blocks))
        .route("/uptime", get(api::uptime))
        .route("/web/version", get(api::version))
        .route("/web/best_share_hash", get(api::best_share_hash))
        .route("/web/heads", get(api::heads))
        .route("/web/verified_heads", get(api::verified_heads))
        .route("/web/share/{hash}", get(api::share))
        .route("/web/graph_data/{stream}/{period}", get(api::graph_data))
        .route("/web/node_status", get(api::node_status))
        .route("/web/peers", get(api::peers))
        .route("/metrics", get(metrics::metrics));
    api_layers(routes.with_state(state))
}

/// The status page and its files, the same for every share kind: the page asks `/kind` which
/// view to show.
pub fn page_routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/static/app.js", get(app_js))
        .route("/static/chia.js", get(chia_js))
        .route("/static/app.css", get(app_css))
}

/// What every JSON API router ends with: JSON 404s and any origin allowed.
pub fn api_layers(router: Router) -> Router {
    router
        .fallback(not_found)
        .layer(axum::middleware::map_response(allow_any_origin))
}

/// Serves `router` alone on `listener` (a separate web port) until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Dashboards on other origins read the API, as they do P2Pool's.
async fn allow_any_origin(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::HeaderValue::from_static("*"),
    );
    response
}

/// A JSON error with its status.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such endpoint")
}

const INDEX_HTML: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const APP_CSS: &str = include_str!("../../web/app.css");
const CHIA_JS: &str = include_str!("../../web/chia.js");

async fn index() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        INDEX_HTML,
    )
        .into_response()
}

async fn app_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        APP_JS,
    )
        .into_response()
}

async fn chia_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        CHIA_JS,
    )
        .into_response()
}

async fn app_css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], APP_CSS).into_response()
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_separate_port_serves_the_router_until_shutdown() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = axum::Router::new()
            .route("/", axum::routing::get(super::index))
            .fallback(super::not_found);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(super::serve(listener, router, async move {
            let _ = stopped.await;
        }));
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut text = String::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            s.read_to_string(&mut text),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(text.starts_with("HTTP/1.1 404"), "{text}");
        assert!(text.contains("no such endpoint"), "{text}");
        stop.send(()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(10), server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}
