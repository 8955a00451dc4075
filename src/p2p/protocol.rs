//! Wire names and messages of the share network: protocol names and gossip topics that carry the
//! network id and share-format version, and the request-response share-sync messages with their
//! length-prefixed codec and size limits.
//!
//! Sync messages use Bitcoin's encoding rules (CompactSize lengths, 32-byte hashes) through
//! `sharechain::encode`; shares travel in their consensus encoding and are decoded and checked by
//! the share service, off the swarm's event loop.

use bitcoin::hashes::Hash;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::request_response;
use libp2p::StreamProtocol;
use sharechain::encode::{write_var_bytes, write_varint, DecodeError, Reader};
use sharechain::{NetworkParams, ShareHash};

/// Most ancestors a sync reply carries after the requested share.
pub const MAX_PARENTS: u32 = 1000;
/// Most shares one request names.
pub const MAX_WANT: usize = 16;
/// Most stop hashes one request names.
pub const MAX_STOPS: usize = 64;
/// Largest encoded share accepted (gossip or sync).
pub const MAX_SHARE_BYTES: usize = 64 * 1024;
/// Largest sync request frame.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Largest sync response frame.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// Largest gossip message (a found block with its transactions).
pub const MAX_GOSSIP_BYTES: usize = 4 * 1024 * 1024 + 64 * 1024;

/// The names a node uses on the wire: everything carries the network and the share version, so
/// nodes of different networks (or incompatible share formats) never exchange shares.
#[derive(Debug, Clone)]
pub struct Names {
    /// `p2pool/<network>-<identifier hex>/v<share version>`.
    pub base: String,
    /// The share-sync request-response protocol: `/<base>/sync/1`.
    pub sync: StreamProtocol,
    /// The Kademlia protocol: `/<base>/kad/1`.
    pub kad: StreamProtocol,
    /// Gossipsub topic of new shares: `<base>/shares`.
    pub shares_topic: String,
    /// Gossipsub topic of found blocks: `<base>/blocks`.
    pub blocks_topic: String,
    /// Gossipsub topic of new Bitcoin tips: `<base>/tips`.
    pub tips_topic: String,
}

impl Names {
    /// The names of `params`' network.
    pub fn new(params: &NetworkParams) -> Self {
        let base = format!(
            "p2pool/{}-{}/v{}",
            params.name,
            hex::encode(params.identifier),
            params.current_share_version()
        );
        let proto = |suffix: &str| {
            StreamProtocol::try_from_owned(format!("/{base}/{suffix}"))
                .expect("protocol names start with '/'")
        };
        Names {
            sync: proto("sync/1"),
            kad: proto("kad/1"),
            shares_topic: format!("{base}/shares"),
            blocks_topic: format!("{base}/blocks"),
            tips_topic: format!("{base}/tips"),
            base,
        }
    }

    /// The identify protocol version: peers announcing another one are on another network.
    pub fn identify_version(&self) -> String {
        format!("/{}/1", self.base)
    }
}

/// What a peer says about its chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChainStatus {
    /// Its best share.
    pub best: Option<ShareHash>,
    /// The absolute share-chain height of its best share (0 without one).
    pub height: u32,
}

/// A share-sync request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncRequest {
    /// The peer's chain status.
    Status,
    /// Shares `want` and up to `parents` ancestors of each, stopping at any of `stops`.
    Shares {
        /// The shares asked for, at most `MAX_WANT`.
        want: Vec<ShareHash>,
        /// Ancestors to add per wanted share, at most `MAX_PARENTS`.
        parents: u32,
        /// Shares the asker already has: the walk down stops at them (at most `MAX_STOPS`).
        stops: Vec<ShareHash>,
    },
}

/// A share-sync response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncResponse {
    /// The responder's chain status.
    Status(ChainStatus),
    /// Shares in the order found: each requested share then its ancestors, newest first.
    Shares {
        /// The responder's chain status.
        status: ChainStatus,
        /// The shares' wire bytes, each at most `MAX_SHARE_BYTES`.
        shares: Vec<Vec<u8>>,
    },
}

fn write_hash(out: &mut Vec<u8>, h: &ShareHash) {
    out.extend_from_slice(&h.to_byte_array());
}

fn read_hash(r: &mut Reader<'_>, field: &'static str) -> Result<ShareHash, DecodeError> {
    Ok(ShareHash::from_byte_array(r.array(field)?))
}

fn write_status(out: &mut Vec<u8>, s: &ChainStatus) {
    match &s.best {
        None => out.push(0),
        Some(h) => {
            out.push(1);
            write_hash(out, h);
        }
    }
    out.extend_from_slice(&s.height.to_le_bytes());
}

fn read_status(r: &mut Reader<'_>) -> Result<ChainStatus, DecodeError> {
    let best = match r.u8("status.best")? {
        0 => None,
        1 => Some(read_hash(r, "status.best")?),
        v => {
            return Err(DecodeError::OutOfRange {
                field: "status.best",
                value: u64::from(v),
            })
        }
    };
    Ok(ChainStatus {
        best,
        height: r.u32("status.height")?,
    })
}

impl SyncRequest {
    /// The request's wire bytes: a kind byte (0 status, 1 shares) and its fields.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            SyncRequest::Status => out.push(0),
            SyncRequest::Shares {
                want,
                parents,
                stops,
            } => {
                out.push(1);
                write_varint(&mut out, want.len() as u64);
                want.iter().for_each(|h| write_hash(&mut out, h));
                out.extend_from_slice(&parents.to_le_bytes());
                write_varint(&mut out, stops.len() as u64);
                stops.iter().for_each(|h| write_hash(&mut out, h));
            }
        }
        out
    }

    /// Parses a request, enforcing `MAX_WANT`, `MAX_PARENTS` and `MAX_STOPS`; rejects trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let req = match r.u8("request.kind")? {
            0 => SyncRequest::Status,
            1 => {
                let n = r.len("request.want", MAX_WANT)?;
                let want = (0..n)
                    .map(|_| read_hash(&mut r, "request.want"))
                    .collect::<Result<_, _>>()?;
                let parents = r.u32("request.parents")?;
                if parents > MAX_PARENTS {
                    return Err(DecodeError::OutOfRange {
                        field: "request.parents",
                        value: u64::from(parents),
                    });
                }
                let n = r.len("request.stops", MAX_STOPS)?;
                let stops = (0..n)
                    .map(|_| read_hash(&mut r, "request.stops"))
                    .collect::<Result<_, _>>()?;
                SyncRequest::Shares {
                    want,
                    parents,
                    stops,
                }
            }
            v => {
                return Err(DecodeError::OutOfRange {
                    field: "request.kind",
                    value: u64::from(v),
                })
            }
        };
        r.finish()?;
        Ok(req)
    }
}

impl SyncResponse {
    /// The response's wire bytes: a kind byte (0 status, 1 shares), the status and the shares.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            SyncResponse::Status(s) => {
                out.push(0);
                write_status(&mut out, s);
            }
            SyncResponse::Shares { status, shares } => {
                out.push(1);
                write_status(&mut out, status);
                write_varint(&mut out, shares.len() as u64);
                shares.iter().for_each(|s| write_var_bytes(&mut out, s));
            }
        }
        out
    }

    /// Parses a response, enforcing the share count and `MAX_SHARE_BYTES` per share; rejects trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let resp = match r.u8("response.kind")? {
            0 => SyncResponse::Status(read_status(&mut r)?),
            1 => {
                let status = read_status(&mut r)?;
                let max = MAX_WANT * (MAX_PARENTS as usize + 1);
                let n = r.len("response.shares", max)?;
                let shares = (0..n)
                    .map(|_| {
                        r.var_bytes("response.share", 1, MAX_SHARE_BYTES)
                            .map(<[u8]>::to_vec)
                    })
                    .collect::<Result<_, _>>()?;
                SyncResponse::Shares { status, shares }
            }
            v => {
                return Err(DecodeError::OutOfRange {
                    field: "response.kind",
                    value: u64::from(v),
                })
            }
        };
        r.finish()?;
        Ok(resp)
    }
}

/// Length-prefixed frames (u32 little-endian length, then the message) with size limits.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncCodec;

async fn read_frame<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    max: usize,
) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the limit of {max}"),
        ));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(
    io: &mut T,
    bytes: &[u8],
) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "frame too large"))?;
    io.write_all(&len.to_le_bytes()).await?;
    io.write_all(bytes).await?;
    io.close().await
}

fn invalid(e: DecodeError) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e)
}

impl request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = SyncRequest;
    type Response = SyncResponse;

    async fn read_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<SyncRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        SyncRequest::decode(&read_frame(io, MAX_REQUEST_BYTES).await?).map_err(invalid)
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<SyncResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        SyncResponse::decode(&read_frame(io, MAX_RESPONSE_BYTES).await?).map_err(invalid)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: SyncRequest,
    ) -> std::io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &req.encode()).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: SyncResponse,
    ) -> std::io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res.encode()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let h = ShareHash::from_byte_array([7; 32]);
        let reqs = [
            SyncRequest::Status,
            SyncRequest::Shares {
                want: vec![h],
                parents: 999,
                stops: vec![h, h],
            },
        ];
        for r in reqs {
            assert_eq!(SyncRequest::decode(&r.encode()).unwrap(), r);
        }
        let status = ChainStatus {
            best: Some(h),
            height: 42,
        };
        let resps = [
            SyncResponse::Status(ChainStatus::default()),
            SyncResponse::Shares {
                status,
                shares: vec![vec![1, 2, 3], vec![4]],
            },
        ];
        for r in resps {
            assert_eq!(SyncResponse::decode(&r.encode()).unwrap(), r);
        }
    }

    #[test]
    fn oversized_requests_are_refused() {
        let h = ShareHash::from_byte_array([7; 32]);
        let too_many = SyncRequest::Shares {
            want: vec![h; MAX_WANT + 1],
            parents: 1,
            stops: vec![],
        };
        assert!(SyncRequest::decode(&too_many.encode()).is_err());
        let too_deep = SyncRequest::Shares {
            want: vec![h],
            parents: MAX_PARENTS + 1,
            stops: vec![],
        };
        assert!(SyncRequest::decode(&too_deep.encode()).is_err());
        assert!(SyncRequest::decode(&[9]).is_err());
    }

    #[test]
    fn names_differ_between_networks() {
        let all = NetworkParams::all().map(Names::new);
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a.sync, b.sync);
                assert_ne!(a.shares_topic, b.shares_topic);
                assert_ne!(a.identify_version(), b.identify_version());
            }
        }
    }
}
