//! Bitcoin P2P message framing on a byte stream: shared by the link to bitcoind and the embedded
//! chain's P2P server.

use bitcoin::consensus::deserialize;
use bitcoin::p2p::message::{NetworkMessage, RawNetworkMessage};
use bitcoin::p2p::Magic;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest message accepted (a block is at most 4 MB of weight, so of bytes).
pub const MAX_MESSAGE: usize = 4_000_000;

/// Why no message could be read; the connection is unusable afterwards.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Reading the stream failed (or it ended).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The header's magic is not the network's; holds it.
    #[error("wrong network magic {0:02x?}")]
    BadMagic([u8; 4]),
    /// The header announces a payload over [`MAX_MESSAGE`] bytes; holds its length.
    #[error("message of {0} bytes is too large")]
    Oversized(usize),
}

/// Reads one framed message. `Ok(None)`: a well-framed message that does not decode (skipped,
/// as Core skips unknown messages); errors end the connection.
pub async fn read_message<R: AsyncRead + Unpin>(
    reader: &mut R,
    magic: Magic,
) -> Result<Option<NetworkMessage>, FrameError> {
    let mut header = [0u8; 24];
    reader.read_exact(&mut header).await?;
    let got = [header[0], header[1], header[2], header[3]];
    if got != magic.to_bytes() {
        return Err(FrameError::BadMagic(got));
    }
    let len = u32::from_le_bytes([header[16], header[17], header[18], header[19]]) as usize;
    if len > MAX_MESSAGE {
        return Err(FrameError::Oversized(len));
    }
    let mut frame = header.to_vec();
    frame.resize(24 + len, 0);
    reader.read_exact(&mut frame[24..]).await?;
    match deserialize::<RawNetworkMessage>(&frame) {
        Ok(raw) => Ok(Some(raw.into_payload())),
        Err(e) => {
            tracing::debug!(error = %e, "p2p: undecodable message skipped");
            Ok(None)
        }
    }
}
