//! The accept loop: connection cap, first-byte deadline, and the stratum/HTTP split
//! (`{` first = stratum, anything else = HTTP; whitespace before it is skipped).

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinSet;
use tokio::time::timeout;
use tracing::{debug, warn};

use super::{stratum, Shared, WorkProvider, WorkerError};

/// Accept connections for ever. Connections run in a `JoinSet` owned by this future, so
/// dropping it (shutdown) aborts them all, at no cost per poll to the sessions.
pub(crate) async fn accept_loop<P: WorkProvider>(
    shared: Arc<Shared<P>>,
    listener: TcpListener,
    router: axum::Router,
) -> Result<(), WorkerError> {
    let mut consecutive_errors = 0u32;
    let mut connections = JoinSet::new();
    loop {
        let accepted = listener.accept().await;
        while connections.try_join_next().is_some() {}
        let stream = match accepted {
            Ok((stream, _)) => {
                consecutive_errors = 0;
                stream
            }
            Err(e) => {
                // Out of descriptors or a connection reset before accept: wait, then go on.
                consecutive_errors += 1;
                if consecutive_errors > 1000 {
                    return Err(WorkerError::Listener(e));
                }
                warn!(error = %e, "worker port accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&shared.slots).try_acquire_owned() else {
            shared.stats.refused();
            debug!("worker port full, closing new connection");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        connections.spawn(handle(Arc::clone(&shared), stream, router.clone(), permit));
    }
}

async fn handle<P: WorkProvider>(
    shared: Arc<Shared<P>>,
    stream: TcpStream,
    router: axum::Router,
    _permit: OwnedSemaphorePermit,
) {
    let first = timeout(shared.config.first_byte_timeout, first_byte(&stream)).await;
    let Ok(Some(first)) = first else {
        return;
    };
    if first == b'{' {
        stratum::session::run(shared, stream).await;
    } else {
        serve_http(stream, router, shared.config.http_header_timeout).await;
    }
}

/// Whitespace a client may send before its first request (some send a blank line first).
const MAX_LEADING_WHITESPACE: usize = 64;

/// The first byte that is not whitespace, left unread; the whitespace before it is consumed.
/// `None` when the connection closes or sends too much whitespace first.
async fn first_byte(stream: &TcpStream) -> Option<u8> {
    let mut skipped = 0;
    let mut buf = [0u8; MAX_LEADING_WHITESPACE];
    loop {
        let n = stream.peek(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        let blank = buf[..n]
            .iter()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
        if blank > 0 {
            // Consume exactly the peeked whitespace; the next peek waits for more data.
            let mut sink = [0u8; MAX_LEADING_WHITESPACE];
            let mut left = blank;
            while left > 0 {
                stream.readable().await.ok()?;
                match stream.try_read(&mut sink[..left]) {
                    Ok(0) => return None,
                    Ok(r) => left -= r,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return None,
                }
            }
            skipped += blank;
            if skipped > MAX_LEADING_WHITESPACE {
                return None;
            }
        }
        if blank < n {
            return Some(buf[blank]);
        }
    }
}

async fn serve_http(stream: TcpStream, router: axum::Router, header_timeout: Duration) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
    if let Err(e) = conn.await {
        debug!(error = %e, "http connection ended");
    }
}
