//! The JSON-RPC server: HTTP, basic auth, envelopes, batches and named parameters, as bitcoind.
//!
//! Follows Core's `httprpc.cpp`/`request.cpp`: only `POST` (405 otherwise), basic auth against
//! the cookie or `--rpc-user`/`--rpc-password` (401 with `WWW-Authenticate` otherwise), legacy
//! `{"result","error","id"}` replies with HTTP 400/404/500 for errors, JSON-RPC 2.0 replies (HTTP
//! 200, notifications get 204) when the request says `"jsonrpc":"2.0"`, batches as arrays, and
//! parameters by position or by name. The methods themselves live in `methods.rs`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::api::{code, Params, RpcError};
use super::methods::{self, RpcContext};

/// Largest request body accepted (a block of 4 MB weight is < 8 MB of hex).
const MAX_BODY: usize = 32 * 1024 * 1024;
/// Requests executed at once, as Core's `-rpcthreads` default.
pub const RPC_THREADS: usize = 16;
/// Requests waiting for an executor, as Core's `-rpcworkqueue` default; more get HTTP 503.
pub const RPC_WORK_QUEUE: usize = 64;

/// Core's work queue: a request is executed by one of [`RPC_THREADS`], waits among at most
/// [`RPC_WORK_QUEUE`] others, or is refused with `503 Work queue depth exceeded` at once —
/// a flood is told so instead of every caller waiting into its own timeout.
#[derive(Debug)]
struct WorkQueue {
    executors: tokio::sync::Semaphore,
    admitted: std::sync::atomic::AtomicUsize,
    /// Executors plus waiting places.
    capacity: usize,
}

impl WorkQueue {
    fn new(threads: usize, queue: usize) -> Self {
        let threads = threads.max(1);
        Self {
            executors: tokio::sync::Semaphore::new(threads),
            admitted: std::sync::atomic::AtomicUsize::new(0),
            capacity: threads + queue,
        }
    }

    /// A place in the queue, or `None` when it is full.
    fn admit(self: &Arc<Self>) -> Option<Admitted> {
        use std::sync::atomic::Ordering;
        let before = self.admitted.fetch_add(1, Ordering::AcqRel);
        if before >= self.capacity {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Admitted(Arc::clone(self)))
    }
}

/// A request admitted to the [`WorkQueue`]; leaves it when dropped.
struct Admitted(Arc<WorkQueue>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0
            .admitted
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Serve JSON-RPC on `listener` until `shutdown` turns true, executing at most `threads`
/// requests at once with `queue` more waiting (Core's `-rpcthreads`, `-rpcworkqueue`).
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<RpcContext>,
    (threads, queue): (usize, usize),
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let queue = Arc::new(WorkQueue::new(threads, queue));
    let full_log = Arc::new(p2pool_common::logging::RateLimited::new(
        std::time::Duration::from_secs(10),
    ));
    loop {
        tokio::select! {
            _ = super::wait_stop(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let ctx = ctx.clone();
                    let queue = Arc::clone(&queue);
                    let full_log = Arc::clone(&full_log);
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let ctx = ctx.clone();
                            let queue = Arc::clone(&queue);
                            let full_log = Arc::clone(&full_log);
                            async move {
                                let Some(_admitted) = queue.admit() else {
                                    p2pool_common::log_limited!(full_log, warn, %peer, "rpc: work queue depth exceeded");
                                    let mut response = reply(
                                        StatusCode::SERVICE_UNAVAILABLE,
                                        "Work queue depth exceeded".into(),
                                    );
                                    response.headers_mut().remove(CONTENT_TYPE);
                                    return Ok::<_, Infallible>(response);
                                };
                                // Never closed, so this always holds an executor.
                                let _executor = queue.executors.acquire().await.ok();
                                Ok::<_, Infallible>(handle(req, ctx, peer).await)
                            }
                        });
                        if let Err(e) = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await
                        {
                            tracing::debug!(%peer, error = %e, "rpc connection ended");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "rpc accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn authorized(req: &Request<Incoming>, ctx: &RpcContext) -> bool {
    let Some(value) = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let expected = format!("{}:{}", ctx.user, ctx.password);
    constant_time_eq(&decoded, expected.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn handle(
    req: Request<Incoming>,
    ctx: Arc<RpcContext>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    if req.method() != Method::POST {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "JSONRPC server handles only POST requests".into(),
        );
    }
    if !authorized(&req, &ctx) {
        tracing::warn!(%peer, "rpc: incorrect password attempt");
        let mut response = reply(StatusCode::UNAUTHORIZED, String::new());
        response.headers_mut().remove(CONTENT_TYPE);
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"jsonrpc\""),
        );
        return response;
    }
    let path = req.uri().path().to_owned();
    if path != "/" && !path.starts_with("/wallet/") {
        return reply(StatusCode::NOT_FOUND, String::new());
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => {
            tracing::debug!(%peer, error = %e, "rpc: body not read");
            return reply(StatusCode::BAD_REQUEST, String::new());
        }
    };
    let (status, body) = handle_body(&body, &ctx).await;
    match body {
        Some(body) => reply(status, format!("{body}\n")),
        None => {
            let mut response = reply(status, String::new());
            response.headers_mut().remove(CONTENT_TYPE);
            response
        }
    }
}

/// The reply to one HTTP body: status and JSON (none for a 2.0 notification).
async fn handle_body(body: &[u8], ctx: &RpcContext) -> (StatusCode, Option<Value>) {
    let parsed: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => {
            let error = RpcError::new(code::PARSE_ERROR, "Parse error");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Some(json!({"result": null, "error": error.to_json(), "id": null})),
            );
        }
    };
    match parsed {
        Value::Object(_) => {
            let (status, reply) = handle_one(parsed, ctx).await;
            match reply {
                Some(reply) => (status, Some(reply)),
                None => (StatusCode::NO_CONTENT, None),
            }
        }
        Value::Array(requests) => {
            let mut replies = Vec::with_capacity(requests.len());
            for request in requests {
                if let (_, Some(reply)) = handle_one(request, ctx).await {
                    replies.push(reply);
                }
            }
            (StatusCode::OK, Some(Value::Array(replies)))
        }
        _ => {
            let error = RpcError::new(code::PARSE_ERROR, "Top-level object parse error");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Some(json!({"result": null, "error": error.to_json(), "id": null})),
            )
        }
    }
}

/// One request object: HTTP status (for a lone request) and the reply object.
async fn handle_one(request: Value, ctx: &RpcContext) -> (StatusCode, Option<Value>) {
    let Value::Object(mut request) = request else {
        let error = RpcError::new(code::INVALID_REQUEST, "Invalid Request object");
        return (
            StatusCode::BAD_REQUEST,
            Some(json!({"result": null, "error": error.to_json(), "id": null})),
        );
    };
    let id = request.remove("id");
    // As Core: no "jsonrpc" or "1.0" is the legacy protocol, "2.0" the strict one.
    let (v2, result) = match request.get("jsonrpc") {
        None => (false, None),
        Some(Value::String(v)) if v == "1.0" => (false, None),
        Some(Value::String(v)) if v == "2.0" => (true, None),
        Some(_) => (
            false,
            Some(Err(RpcError::new(
                code::INVALID_REQUEST,
                "JSON-RPC version not supported",
            ))),
        ),
    };
    let is_notification = v2 && id.is_none();
    let id = id.unwrap_or(Value::Null);
    let result = match result {
        Some(error) => error,
        None => parse_and_dispatch(&mut request, ctx).await,
    };
    if is_notification {
        return (StatusCode::NO_CONTENT, None);
    }
    match result {
        Ok(result) if v2 => (
            StatusCode::OK,
            Some(json!({"jsonrpc": "2.0", "result": result, "id": id})),
        ),
        Ok(result) => (
            StatusCode::OK,
            Some(json!({"result": result, "error": null, "id": id})),
        ),
        Err(error) if v2 => (
            StatusCode::OK,
            Some(json!({"jsonrpc": "2.0", "error": error.to_json(), "id": id})),
        ),
        Err(error) => {
            let status = match error.code {
                code::INVALID_REQUEST => StatusCode::BAD_REQUEST,
                code::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            (
                status,
                Some(json!({"result": null, "error": error.to_json(), "id": id})),
            )
        }
    }
}

async fn parse_and_dispatch(
    request: &mut serde_json::Map<String, Value>,
    ctx: &RpcContext,
) -> Result<Value, RpcError> {
    let method = match request.get("method") {
        None => return Err(RpcError::new(code::INVALID_REQUEST, "Missing method")),
        Some(Value::String(m)) => m.clone(),
        Some(_) => {
            return Err(RpcError::new(
                code::INVALID_REQUEST,
                "Method must be a string",
            ))
        }
    };
    let Some(spec) = methods::spec(&method) else {
        return Err(RpcError::new(code::METHOD_NOT_FOUND, "Method not found"));
    };
    let params = match request.remove("params") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(params)) => params,
        Some(Value::Object(named)) => named_to_positional(spec.args, named)?,
        Some(_) => {
            return Err(RpcError::new(
                code::INVALID_REQUEST,
                "Params must be an array or object",
            ))
        }
    };
    if params.len() > spec.args.len() || params.len() < spec.required {
        return Err(RpcError::new(code::MISC_ERROR, spec.usage(&method)));
    }
    tracing::debug!(%method, "rpc call");
    methods::dispatch(&method, Params(params), ctx).await
}

/// Core's `transformNamedArguments`: place named parameters by the method's argument names.
fn named_to_positional(
    names: &[&str],
    named: serde_json::Map<String, Value>,
) -> Result<Vec<Value>, RpcError> {
    let mut positional = vec![Value::Null; names.len()];
    let mut last = 0;
    for (name, value) in named {
        let Some(index) = names.iter().position(|n| *n == name) else {
            return Err(RpcError::new(
                code::INVALID_PARAMETER,
                format!("Unknown named parameter {name}"),
            ));
        };
        positional[index] = value;
        last = last.max(index + 1);
    }
    positional.truncate(last);
    Ok(positional)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_parameters_are_placed_by_name() {
        let named = json!({"verbosity": 2, "blockhash": "ab"});
        let Value::Object(named) = named else {
            unreachable!()
        };
        let params = named_to_positional(&["blockhash", "verbosity"], named).unwrap();
        assert_eq!(params, vec![json!("ab"), json!(2)]);
    }

    #[test]
    fn unknown_named_parameter_is_rejected() {
        let Value::Object(named) = json!({"nope": 1}) else {
            unreachable!()
        };
        let err = named_to_positional(&["height"], named).unwrap_err();
        assert_eq!(err.code, code::INVALID_PARAMETER);
    }
}
