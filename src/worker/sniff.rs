//! The accept loop: connection caps (in all and per IP address), first-byte deadline, and the
//! stratum/HTTP/Chia split (`{` first = stratum, 0x16 (a TLS record: a chia harvester's
//! ClientHello) = the Chia farmer endpoint, anything else = HTTP; whitespace before it is
//! skipped).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use parking_lot::Mutex;
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
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                consecutive_errors = 0;
                accepted
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
            crate::log_limited!(
                REFUSED_FULL,
                warn,
                %peer,
                limit = shared.config.max_connections,
                "worker port full, closing new connections (raise --max-connections)"
            );
            drop(stream);
            continue;
        };
        let limit = shared.config.max_connections_per_ip;
        let Some(ip_slot) = PerIp::take(&shared.per_ip, peer.ip(), limit) else {
            shared.stats.refused();
            crate::log_limited!(
                REFUSED_PER_IP,
                warn,
                %peer,
                limit,
                "too many connections from one address, closing new ones (raise --max-connections-per-ip, 0 = no limit)"
            );
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let slots = (permit, ip_slot);
        connections.spawn(handle(
            Arc::clone(&shared),
            stream,
            peer,
            router.clone(),
            slots,
        ));
    }
}

static REFUSED_FULL: crate::logging::RateLimited =
    crate::logging::RateLimited::new(Duration::from_secs(10));
static REFUSED_PER_IP: crate::logging::RateLimited =
    crate::logging::RateLimited::new(Duration::from_secs(10));

/// Open connections per peer IP address (IPv4-mapped IPv6 counted as IPv4).
#[derive(Default)]
pub(crate) struct PerIp {
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerIp {
    /// A slot for one more connection from `ip`, unless it already has `limit` (0: no limit).
    fn take(this: &Arc<PerIp>, ip: IpAddr, limit: usize) -> Option<IpSlot> {
        let ip = ip.to_canonical();
        let mut open = this.open.lock();
        let n = open.entry(ip).or_insert(0);
        if limit > 0 && *n >= limit {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            per_ip: Arc::clone(this),
            ip,
        })
    }

    /// Open connections from `ip`.
    #[cfg(test)]
    fn open(&self, ip: IpAddr) -> usize {
        self.open.lock().get(&ip).copied().unwrap_or(0)
    }
}

/// One connection's place in [`PerIp`], given back on drop.
pub(crate) struct IpSlot {
    per_ip: Arc<PerIp>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.per_ip.open.lock();
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

async fn handle<P: WorkProvider>(
    shared: Arc<Shared<P>>,
    stream: TcpStream,
    peer: std::net::SocketAddr,
    router: axum::Router,
    _slots: (OwnedSemaphorePermit, IpSlot),
) {
    let first = timeout(shared.config.first_byte_timeout, first_byte(&stream)).await;
    let Ok(Some(first)) = first else {
        return;
    };
    if first == b'{' {
        stratum::session::run(shared, stream).await;
    } else if first == TLS_HANDSHAKE_RECORD {
        match shared.chia_farmer.get() {
            Some(farmer) => Arc::clone(farmer).serve_connection(stream, peer).await,
            None => debug!(%peer, "TLS connection closed: no chia farmer endpoint on this port"),
        }
    } else {
        serve_http(stream, router, shared.config.http_header_timeout).await;
    }
}

/// First byte of a TLS handshake record (a ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_slots_are_counted_and_given_back() {
        let per_ip = Arc::new(PerIp::default());
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("ip");
        let b: IpAddr = "2001:db8::1".parse().expect("ip");
        let first = PerIp::take(&per_ip, a, 2).expect("first");
        let second = PerIp::take(&per_ip, mapped, 2).expect("second, the same host");
        assert!(PerIp::take(&per_ip, a, 2).is_none(), "a third is refused");
        assert!(PerIp::take(&per_ip, mapped, 2).is_none());
        let other = PerIp::take(&per_ip, b, 2).expect("another host");
        drop(first);
        assert_eq!(per_ip.open(a), 1);
        let again = PerIp::take(&per_ip, a, 2).expect("a slot was given back");
        drop((second, again, other));
        assert!(
            per_ip.open.lock().is_empty(),
            "no entry outlives its connections"
        );
        let unlimited: Vec<_> = (0..100)
            .map(|_| PerIp::take(&per_ip, a, 0).expect("0 is no limit"))
            .collect();
        assert_eq!(per_ip.open(a), 100);
        drop(unlimited);
        assert_eq!(per_ip.open(a), 0);
    }
}
