//! The accept loop: connection cap, first-byte deadline, and the stratum/HTTP split
//! (`{` first = stratum, anything else = HTTP).

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{stratum, Shared, WorkProvider, WorkerError};

/// Accept connections until `cancel` fires.
pub(crate) async fn accept_loop<P: WorkProvider>(
    shared: Arc<Shared<P>>,
    listener: TcpListener,
    router: axum::Router,
    cancel: CancellationToken,
) -> Result<(), WorkerError> {
    let mut consecutive_errors = 0u32;
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            a = listener.accept() => a,
        };
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
        tokio::spawn(handle(
            Arc::clone(&shared),
            stream,
            router.clone(),
            cancel.child_token(),
            permit,
        ));
    }
}

async fn handle<P: WorkProvider>(
    shared: Arc<Shared<P>>,
    stream: TcpStream,
    router: axum::Router,
    cancel: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let mut first = [0u8; 1];
    let peeked = tokio::select! {
        () = cancel.cancelled() => return,
        p = timeout(shared.config.first_byte_timeout, stream.peek(&mut first)) => p,
    };
    match peeked {
        Ok(Ok(1)) => {}
        _ => return,
    }
    if first[0] == b'{' {
        stratum::session::run(shared, stream, cancel).await;
    } else {
        serve_http(stream, router, shared.config.http_header_timeout, cancel).await;
    }
}

async fn serve_http(
    stream: TcpStream,
    router: axum::Router,
    header_timeout: Duration,
    cancel: CancellationToken,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                debug!(error = %e, "http connection ended");
            }
        }
        () = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = timeout(Duration::from_secs(1), conn).await;
        }
    }
}
