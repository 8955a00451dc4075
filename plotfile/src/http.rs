//! Plot bytes over HTTP range requests: a public or presigned object URL of an S3-compatible
//! store, or any server that honours `Range`. Every request of a batch goes out on its own
//! thread, so a batch costs one round trip.

use std::io::Read;
use std::time::Duration;

use crate::storage::{ReadRequest, Storage, StorageError};

/// Most requests in flight at once for one batch.
const MAX_IN_FLIGHT: usize = 64;

/// An object read by HTTP range requests.
#[derive(Debug, Clone)]
pub struct HttpStorage {
    url: String,
    agent: ureq::Agent,
    len: u64,
}

fn http_err(e: impl std::fmt::Display) -> StorageError {
    StorageError::Http(e.to_string())
}

impl HttpStorage {
    /// Opens `url` (`http://`, or `https://` with the `https` feature); learns the object's length from a one-byte range request,
    /// which a presigned GET URL allows where a HEAD would not.
    pub fn open(url: &str, timeout: Duration) -> Result<HttpStorage, StorageError> {
        let agent = ureq::AgentBuilder::new().timeout(timeout).build();
        let resp = agent
            .get(url)
            .set("Range", "bytes=0-0")
            .call()
            .map_err(http_err)?;
        let len = match (resp.status(), resp.header("Content-Range")) {
            (206, Some(range)) => range
                .rsplit('/')
                .next()
                .and_then(|total| total.trim().parse::<u64>().ok())
                .ok_or_else(|| http_err(format!("bad Content-Range {range:?}")))?,
            (200, _) => resp
                .header("Content-Length")
                .and_then(|l| l.parse::<u64>().ok())
                .ok_or_else(|| http_err("no length"))?,
            (status, _) => return Err(http_err(format!("status {status}"))),
        };
        Ok(HttpStorage {
            url: url.to_owned(),
            agent,
            len,
        })
    }

    fn get(&self, r: ReadRequest) -> Result<Vec<u8>, StorageError> {
        let end = (r.offset + r.len as u64).min(self.len);
        if r.len == 0 || r.offset >= end {
            return Ok(Vec::new());
        }
        let resp = self
            .agent
            .get(&self.url)
            .set("Range", &format!("bytes={}-{}", r.offset, end - 1))
            .call()
            .map_err(http_err)?;
        let want = (end - r.offset) as usize;
        let mut buf = Vec::with_capacity(want);
        match resp.status() {
            206 => {
                resp.into_reader().take(want as u64).read_to_end(&mut buf)?;
            }
            // A server that ignores Range sends the whole object: skip to the range.
            200 => {
                let mut reader = resp.into_reader();
                std::io::copy(&mut (&mut reader).take(r.offset), &mut std::io::sink())?;
                reader.take(want as u64).read_to_end(&mut buf)?;
            }
            status => return Err(http_err(format!("status {status}"))),
        }
        Ok(buf)
    }
}

impl Storage for HttpStorage {
    fn len(&self) -> Result<u64, StorageError> {
        Ok(self.len)
    }

    fn read_many(&self, requests: &[ReadRequest]) -> Result<Vec<Vec<u8>>, StorageError> {
        let mut out = Vec::with_capacity(requests.len());
        for chunk in requests.chunks(MAX_IN_FLIGHT) {
            let results: Vec<Result<Vec<u8>, StorageError>> = std::thread::scope(|scope| {
                let handles: Vec<_> = chunk
                    .iter()
                    .map(|&r| scope.spawn(move || self.get(r)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err(http_err("request thread panicked")))
                    })
                    .collect()
            });
            for r in results {
                out.push(r?);
            }
        }
        Ok(out)
    }
}
