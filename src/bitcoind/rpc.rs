//! Async JSON-RPC client for bitcoind over HTTP/1.1 (hyper), with typed replies.
//!
//! One connection per call: calls never queue behind a long poll, and a dead connection never
//! outlives the call. Every call is bounded by a timeout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bitcoin::consensus::encode::serialize_hex;
use bitcoin::{Block, BlockHash};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{header, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio::net::TcpStream;

use super::auth::{AuthError, Credentials};
use super::types::{BlockTemplate, BlockchainInfo, NetworkInfo, SubmitBlockResult, TypeError};

/// Default bound on one call.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on a long poll: bitcoind answers within minutes (mempool changes after one).
const LONGPOLL_TIMEOUT: Duration = Duration::from_secs(600);
/// Largest reply accepted (a full template of a 4 MWU block is about 10 MB of JSON).
const MAX_REPLY: usize = 64 << 20;

/// Core's `RPC_IN_WARMUP`.
const RPC_IN_WARMUP: i64 = -28;
/// Core's `RPC_CLIENT_NOT_CONNECTED` / `RPC_CLIENT_IN_INITIAL_DOWNLOAD`.
const RPC_CLIENT_NOT_CONNECTED: i64 = -9;
const RPC_CLIENT_IN_INITIAL_DOWNLOAD: i64 = -10;

/// Why an RPC call failed. [`RpcError::is_transient`] says whether to retry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// The URL is not `http://host:port/`; holds it.
    #[error("invalid rpc url {0:?} (expected http://host:port/)")]
    BadUrl(String),
    /// The TCP connection to bitcoind failed (transient).
    #[error("cannot connect to bitcoind at {addr}: {source}")]
    Connect {
        /// The `host:port` dialled.
        addr: String,
        /// The connect error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange failed (transient unless the peer is not an HTTP server).
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    /// The reply exceeded the size limit; holds the limit in bytes.
    #[error("reply larger than {0} bytes")]
    TooLarge(usize),
    /// No reply within the call's bound (transient); holds the bound.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// HTTP 401 or 403: wrong credentials; holds the status.
    #[error("bitcoind refused the rpc credentials (http {0})")]
    Unauthorized(u16),
    /// Another HTTP status without a JSON-RPC error (transient for 5xx).
    #[error("http status {status}: {body}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The reply body, as text.
        body: String,
    },
    /// A JSON-RPC error object from bitcoind (transient for warm-up and initial download codes).
    #[error("bitcoind error {code}: {message}")]
    Rpc {
        /// The JSON-RPC error `code` (Core's `RPC_*` values, e.g. -28 `RPC_IN_WARMUP`).
        code: i64,
        /// The error `message`.
        message: String,
    },
    /// The `result` does not have the shape the method's reply must have.
    #[error("bad reply to {method}: {source}")]
    BadReply {
        /// The RPC method called.
        method: String,
        /// What is wrong with the result.
        #[source]
        source: TypeError,
    },
    /// Credentials could not be read (transient for a missing cookie).
    #[error(transparent)]
    Credentials(#[from] AuthError),
}

impl RpcError {
    /// Worth retrying: the connection failed, timed out or bitcoind is busy or starting.
    /// Persistent errors (credentials, unknown method, bad reply) need the user.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Timeout(_) => true,
            // Something that is not an HTTP server answered: a wrong port, not a hiccup.
            Self::Http(e) => !e.is_parse(),
            Self::Status { status, .. } => *status >= 500,
            Self::Rpc { code, .. } => matches!(
                *code,
                RPC_IN_WARMUP | RPC_CLIENT_NOT_CONNECTED | RPC_CLIENT_IN_INITIAL_DOWNLOAD
            ),
            // A missing cookie: bitcoind has not written it yet (or is restarting).
            Self::Credentials(AuthError::CookieRead { .. }) => true,
            _ => false,
        }
    }

    /// The JSON-RPC error code, for errors bitcoind reported.
    pub fn code(&self) -> Option<i64> {
        match self {
            Self::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// A bitcoind JSON-RPC client; cheap to clone.
#[derive(Debug, Clone)]
pub struct RpcClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    url: String,
    /// `host:port`.
    authority: String,
    path: String,
    credentials: Credentials,
    timeout: Duration,
    next_id: AtomicU64,
    /// Replies `503` (bitcoind's RPC work queue was full), over every clone of this client.
    busy: Arc<AtomicU64>,
}

impl RpcClient {
    /// A client for `url` (`http://host:port/[path]`); nothing is sent until the first call.
    pub fn new(url: &str, credentials: Credentials) -> Result<Self, RpcError> {
        let bad = || RpcError::BadUrl(url.to_owned());
        let uri: Uri = url.parse().map_err(|_| bad())?;
        if uri.scheme_str() != Some("http") {
            return Err(bad());
        }
        let authority = uri.authority().ok_or_else(bad)?;
        let host = authority.host();
        let port = authority.port_u16().unwrap_or(80);
        // `user:password@host` in the URL, as bitcoin-cli's users sometimes write it.
        let credentials = match authority.as_str().rsplit_once('@') {
            Some((userinfo, _)) if credentials == Credentials::None => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                Credentials::UserPassword {
                    user: user.to_owned(),
                    password: password.to_owned(),
                }
            }
            _ => credentials,
        };
        let path = match uri.path() {
            "" => "/".to_owned(),
            p => p.to_owned(),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                url: format!("http://{host}:{port}{path}"),
                authority: format!("{host}:{port}"),
                path,
                credentials,
                timeout: CALL_TIMEOUT,
                next_id: AtomicU64::new(1),
                busy: Arc::new(AtomicU64::new(0)),
            }),
        })
    }

    /// The same client with another per-call timeout.
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        let inner = &self.inner;
        Self {
            inner: Arc::new(Inner {
                url: inner.url.clone(),
                authority: inner.authority.clone(),
                path: inner.path.clone(),
                credentials: inner.credentials.clone(),
                timeout,
                next_id: AtomicU64::new(1),
                busy: Arc::clone(&inner.busy),
            }),
        }
    }

    /// How many calls bitcoind refused with `503` (its RPC work queue full) so far.
    pub fn busy_replies(&self) -> u64 {
        self.inner.busy.load(Ordering::Relaxed)
    }

    /// `http://host:port/path` (no credentials).
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// Call `method` and parse its result as `T`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        params: Value,
    ) -> Result<T, RpcError> {
        let value = self.call_value(method, params, self.inner.timeout).await?;
        serde_json::from_value(value).map_err(|e| RpcError::BadReply {
            method: method.to_owned(),
            source: e.into(),
        })
    }

    /// `getblocktemplate` with the segwit rule (and signet's, which bitcoind requires there).
    /// With `longpollid`, waits until bitcoind has a newer template (BIP22 long polling).
    pub async fn get_block_template(
        &self,
        longpollid: Option<&str>,
    ) -> Result<BlockTemplate, RpcError> {
        let mut request = json!({"rules": ["segwit", "signet"]});
        let timeout = match longpollid {
            Some(id) => {
                request["longpollid"] = json!(id);
                LONGPOLL_TIMEOUT
            }
            None => self.inner.timeout,
        };
        let value = self
            .call_value("getblocktemplate", json!([request]), timeout)
            .await?;
        BlockTemplate::from_json(value).map_err(|source| RpcError::BadReply {
            method: "getblocktemplate".into(),
            source,
        })
    }

    /// `submitblock`: the block as it is (bitcoind adds a missing coinbase witness itself).
    pub async fn submit_block(&self, block: &Block) -> Result<SubmitBlockResult, RpcError> {
        let value = self
            .call_value(
                "submitblock",
                json!([serialize_hex(block)]),
                self.inner.timeout,
            )
            .await?;
        SubmitBlockResult::from_json(value).map_err(|source| RpcError::BadReply {
            method: "submitblock".into(),
            source,
        })
    }

    /// `getblockchaininfo`.
    pub async fn get_blockchain_info(&self) -> Result<BlockchainInfo, RpcError> {
        self.call("getblockchaininfo", json!([])).await
    }

    /// `getnetworkinfo`.
    pub async fn get_network_info(&self) -> Result<NetworkInfo, RpcError> {
        self.call("getnetworkinfo", json!([])).await
    }

    /// `getbestblockhash`: the hash of the tip of bitcoind's active chain.
    pub async fn get_best_block_hash(&self) -> Result<BlockHash, RpcError> {
        self.call("getbestblockhash", json!([])).await
    }

    /// `getblockcount`: the height of the tip of bitcoind's active chain.
    pub async fn get_block_count(&self) -> Result<u64, RpcError> {
        self.call("getblockcount", json!([])).await
    }

    /// One call, bounded by `timeout`; the raw `result`.
    async fn call_value(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, RpcError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "1.0", "id": id, "method": method, "params": params});
        let exchange = self.exchange(body.to_string());
        let (status, bytes) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| RpcError::Timeout(timeout))??;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            self.inner.busy.fetch_add(1, Ordering::Relaxed);
        }
        let result = parse_reply(method, status, &bytes);
        if let Err(e) = &result {
            tracing::debug!(method, error = %e, "rpc call failed");
        }
        result
    }

    /// POST `body`; the status and the whole reply body.
    async fn exchange(&self, body: String) -> Result<(StatusCode, Bytes), RpcError> {
        let inner = &self.inner;
        let auth = inner.credentials.user_password().await?;
        let stream = TcpStream::connect(&inner.authority)
            .await
            .map_err(|source| RpcError::Connect {
                addr: inner.authority.clone(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        let (mut sender, mut conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let mut request = Request::post(&inner.path)
            .header(header::HOST, &inner.authority)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some((user, password)) = auth {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            request = request.header(header::AUTHORIZATION, format!("Basic {token}"));
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| RpcError::BadUrl(inner.url.clone()))?;
        let exchange = async move {
            let response = sender.send_request(request).await?;
            let status = response.status();
            let bytes = Limited::new(response.into_body(), MAX_REPLY)
                .collect()
                .await
                .map_err(|e| match e.downcast::<hyper::Error>() {
                    Ok(e) => RpcError::Http(*e),
                    Err(_) => RpcError::TooLarge(MAX_REPLY),
                })?
                .to_bytes();
            Ok::<_, RpcError>((status, bytes))
        };
        tokio::pin!(exchange);
        // The connection is driven here, and dropped with the call.
        tokio::select! {
            biased;
            result = &mut exchange => result,
            closed = &mut conn => match closed {
                Err(e) => Err(e.into()),
                Ok(()) => exchange.await,
            },
        }
    }
}

/// [`parse_reply`] with the HTTP status as a number (`None` if it is not one): the entry point of
/// the reply fuzz target in `fuzz/`.
#[doc(hidden)]
pub fn parse_http_reply(status: u16, body: &[u8]) -> Option<Result<Value, RpcError>> {
    let status = StatusCode::from_u16(status).ok()?;
    Some(parse_reply("fuzz", status, body))
}

/// Interpret a reply: bitcoind sends JSON-RPC errors with HTTP 404/500 (1.0 mode), and plain
/// text for HTTP-level failures (401, 503 "work queue depth exceeded").
fn parse_reply(method: &str, status: StatusCode, bytes: &[u8]) -> Result<Value, RpcError> {
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(RpcError::Unauthorized(status.as_u16()));
    }
    let envelope = serde_json::from_slice::<Value>(bytes)
        .ok()
        .filter(|v| v.get("result").is_some() || v.get("error").is_some());
    let Some(mut envelope) = envelope else {
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
        return Err(if status.is_success() {
            RpcError::BadReply {
                method: method.to_owned(),
                source: TypeError::Field {
                    field: "envelope",
                    reason: format!("not a json-rpc reply: {text:?}"),
                },
            }
        } else {
            RpcError::Status {
                status: status.as_u16(),
                body: text,
            }
        });
    };
    match envelope.get_mut("error").map(Value::take) {
        None | Some(Value::Null) => Ok(envelope
            .get_mut("result")
            .map(Value::take)
            .unwrap_or(Value::Null)),
        Some(error) => Err(RpcError::Rpc {
            code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
            message: error
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| error.to_string(), str::to_owned),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_and_their_classes() {
        let ok = parse_reply("m", StatusCode::OK, br#"{"result":5,"error":null,"id":1}"#);
        assert_eq!(ok.unwrap(), json!(5));
        let warmup = parse_reply(
            "m",
            StatusCode::INTERNAL_SERVER_ERROR,
            br#"{"result":null,"error":{"code":-28,"message":"Loading block index..."},"id":1}"#,
        )
        .unwrap_err();
        assert!(warmup.is_transient());
        let missing = parse_reply(
            "m",
            StatusCode::NOT_FOUND,
            br#"{"result":null,"error":{"code":-32601,"message":"Method not found"},"id":1}"#,
        )
        .unwrap_err();
        assert!(!missing.is_transient());
        let busy = parse_reply(
            "m",
            StatusCode::SERVICE_UNAVAILABLE,
            b"Work queue depth exceeded",
        );
        assert!(busy.unwrap_err().is_transient());
        let auth = parse_reply("m", StatusCode::UNAUTHORIZED, b"");
        assert!(!auth.unwrap_err().is_transient());
        let garbage = parse_reply("m", StatusCode::OK, b"\xff{[");
        assert!(!garbage.unwrap_err().is_transient());
    }

    #[test]
    fn urls() {
        let c = RpcClient::new("http://127.0.0.1:18443", Credentials::None).unwrap();
        assert_eq!(c.url(), "http://127.0.0.1:18443/");
        let c = RpcClient::new("http://u:p@localhost:1/wallet/x", Credentials::None).unwrap();
        assert_eq!(c.url(), "http://localhost:1/wallet/x");
        assert!(matches!(
            c.inner.credentials,
            Credentials::UserPassword { ref user, .. } if user == "u"
        ));
        for bad in ["", "https://h:1/", "127.0.0.1:1", "http://"] {
            assert!(RpcClient::new(bad, Credentials::None).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        /// Any body with any status is classified, never a panic.
        #[test]
        fn any_body_is_classified(
            status in 100u16..600,
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        ) {
            if let Ok(status) = StatusCode::from_u16(status) {
                if let Err(e) = parse_reply("m", status, &body) {
                    let _ = e.is_transient();
                }
            }
        }
    }
}
