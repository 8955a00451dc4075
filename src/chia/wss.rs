//! A chia peer connection as a client: TCP (bounded), TLS with a client certificate, then the
//! websocket `wss://HOST:PORT/ws` with chia's message size limit. Shared by the harvester's link
//! to its farmer and the node's link to a chia full node.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

use rustls::pki_types::ServerName;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message as WsMessage};

use super::protocol::MAX_MESSAGE_BYTES;

/// Bytes read from the socket at a time. tungstenite zeroes its whole read buffer before every
/// read, and chia's messages are mostly a few hundred bytes: its 128 KiB default would cost a
/// 128 KiB memset per message. Larger messages (plot sync batches) arrive over several reads.
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// The websocket settings of every chia connection, client or server side: chia's message size
/// limit and a read buffer sized for its messages.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(MAX_MESSAGE_BYTES + 64))
        .max_frame_size(Some(MAX_MESSAGE_BYTES + 64))
}

/// What a chia websocket delivered next, pings and pongs skipped (tungstenite answers pings).
#[derive(Debug)]
pub enum Incoming {
    /// A binary message: one chia message.
    Message(Bytes),
    /// The peer closed the websocket (a close frame or the end of the stream).
    Closed,
    /// A text message, which chia never sends.
    Text,
}

/// The next [`Incoming`] of a chia websocket, client or server side; `last_seen` is set at any
/// message, pongs included (the callers' silence limits).
pub async fn next_incoming<S>(ws: &mut S, last_seen: &mut Instant) -> Result<Incoming, WsError>
where
    S: futures::Stream<Item = Result<WsMessage, WsError>> + Unpin,
{
    loop {
        let next = ws.next().await;
        *last_seen = Instant::now();
        return match next {
            None | Some(Ok(WsMessage::Close(_))) => Ok(Incoming::Closed),
            Some(Ok(WsMessage::Binary(b))) => Ok(Incoming::Message(b)),
            Some(Ok(WsMessage::Text(_))) => Ok(Incoming::Text),
            Some(Ok(_)) => continue,
            Some(Err(e)) => Err(e),
        };
    }
}

/// A connected chia websocket.
pub type ClientWs =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// Why [`dial`] did not give a connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DialError {
    /// TCP connect failed or timed out.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// `HOST:PORT`.
        addr: String,
        /// What went wrong.
        reason: String,
    },
    /// The TLS handshake failed.
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    /// The websocket upgrade failed.
    #[error("websocket: {0}")]
    Websocket(#[from] tokio_tungstenite::tungstenite::Error),
    /// The websocket upgrade took longer than this.
    #[error("no websocket upgrade within {0:?}")]
    Timeout(Duration),
}

/// The TLS name for `HOST:PORT` (not checked, as chia checks none).
pub fn server_name(addr: &str) -> ServerName<'static> {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned())
        .unwrap_or_else(|_| ServerName::from(std::net::IpAddr::from([127, 0, 0, 1])))
}

/// Connects to `addr` (`HOST:PORT`): TCP within `connect_timeout`, TLS with `tls`, then the
/// websocket upgrade (within `upgrade_timeout` when given).
pub async fn dial(
    addr: &str,
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
    upgrade_timeout: Option<Duration>,
) -> Result<ClientWs, DialError> {
    let connect_err = |reason: String| DialError::Connect {
        addr: addr.to_owned(),
        reason,
    };
    let tcp = tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| connect_err("timed out".into()))?
        .map_err(|e| connect_err(e.to_string()))?;
    tcp.set_nodelay(true).ok();
    let tls = tokio_rustls::TlsConnector::from(tls)
        .connect(server_name(addr), tcp)
        .await
        .map_err(DialError::Tls)?;
    let upgrade = tokio_tungstenite::client_async_with_config(
        format!("wss://{addr}/ws"),
        tls,
        Some(ws_config()),
    );
    let (ws, _) = match upgrade_timeout {
        Some(limit) => tokio::time::timeout(limit, upgrade)
            .await
            .map_err(|_| DialError::Timeout(limit))??,
        None => upgrade.await?,
    };
    Ok(ws)
}
