//! Stratum framing: newline-terminated JSON lines with a length bound, request and parameter
//! parsing, and reply formatting.

use std::time::Instant;

use bitcoin::Target;
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::worker::job::target_to_difficulty;

/// Reading a line failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LineError {
    #[error("line longer than {0} bytes")]
    TooLong(usize),
    #[error("read: {0}")]
    Io(#[from] std::io::Error),
}

/// Splits a byte stream into lines of at most `max` bytes (`\r\n` tolerated, empty lines skipped).
pub(crate) struct LineReader<R> {
    inner: BufReader<R>,
    line: Vec<u8>,
    complete: bool,
    max: usize,
    partial_since: Option<Instant>,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// `capacity` is the read buffer size (small: idle connections are the common case).
    pub(crate) fn new(inner: R, capacity: usize, max: usize) -> Self {
        LineReader {
            inner: BufReader::with_capacity(capacity, inner),
            line: Vec::new(),
            complete: false,
            max,
            partial_since: None,
        }
    }

    /// When the current incomplete line started, if one did.
    pub(crate) fn partial_since(&self) -> Option<Instant> {
        self.partial_since
    }

    /// The line returned by the last successful [`Self::next_line`].
    pub(crate) fn line(&self) -> &[u8] {
        &self.line
    }

    /// Whether another complete line is already buffered (so replies can be batched).
    pub(crate) fn has_buffered_line(&self) -> bool {
        self.inner.buffer().contains(&b'\n')
    }

    /// Read the next non-empty line; `false` at end of stream. Cancel safe: a partial line is
    /// kept and reading resumes where it stopped.
    pub(crate) async fn next_line(&mut self) -> Result<bool, LineError> {
        loop {
            if self.complete {
                self.complete = false;
                self.line.clear();
                if self.line.capacity() > 4096 {
                    self.line.shrink_to(512);
                }
            }
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                return Ok(false);
            }
            let (take, done) = match available.iter().position(|&b| b == b'\n') {
                Some(pos) => (pos, true),
                None => (available.len(), false),
            };
            if self.line.len() + take > self.max {
                return Err(LineError::TooLong(self.max));
            }
            self.line.extend_from_slice(&available[..take]);
            self.inner.consume(take + usize::from(done));
            if !done {
                self.partial_since.get_or_insert_with(Instant::now);
                continue;
            }
            self.partial_since = None;
            self.complete = true;
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
            if self.line.iter().any(|b| !b.is_ascii_whitespace()) {
                return Ok(true);
            }
        }
    }
}

/// A request line: every field may be missing, so a line of junk JSON still gets an answer.
pub(crate) struct Request {
    pub(crate) id: Value,
    pub(crate) method: Option<String>,
    /// `params`, with a missing or `null` one as no parameters and a bare value as one.
    pub(crate) params: Vec<Value>,
}

#[derive(Deserialize)]
struct RawRequest {
    #[serde(default)]
    id: Value,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    params: Value,
}

/// Parse one request line (as [`LineReader::line`] returns it).
pub(crate) fn parse_request(line: &[u8]) -> Result<Request, serde_json::Error> {
    let raw: RawRequest = serde_json::from_slice(line)?;
    let params = match raw.params {
        Value::Array(a) => a,
        Value::Null => Vec::new(),
        other => vec![other],
    };
    Ok(Request {
        id: raw.id,
        method: raw.method,
        params,
    })
}

/// A hex `u32` parameter of 1 to 8 digits (ntime, nonce, version bits, masks).
pub(crate) fn parse_hex_u32(value: Option<&Value>) -> Option<u32> {
    let s = value?.as_str()?;
    if s.is_empty() || s.len() > 8 {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

/// A positive, finite difficulty, as a JSON number or a decimal string.
pub(crate) fn parse_difficulty(value: Option<&Value>) -> Option<f64> {
    let d = match value? {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    (d.is_finite() && d > 0.0).then_some(d)
}

/// A `mining.suggest_target` target (big-endian hex, at most 64 digits) as a difficulty.
pub(crate) fn parse_target_difficulty(value: Option<&Value>) -> Option<f64> {
    let s = value?.as_str()?.trim();
    if s.is_empty() || s.len() > 64 {
        return None;
    }
    let mut be = [0u8; 32];
    hex::decode_to_slice(format!("{s:0>64}"), &mut be).ok()?;
    let d = target_to_difficulty(&Target::from_be_bytes(be));
    (d.is_finite() && d > 0.0).then_some(d)
}

/// Append `{"id":ID,"result":RESULT,"error":null}\n`.
pub(crate) fn write_result(out: &mut Vec<u8>, id: &Value, result: &str) {
    push_id(out, id);
    out.extend_from_slice(b",\"result\":");
    out.extend_from_slice(result.as_bytes());
    out.extend_from_slice(b",\"error\":null}\n");
}

/// Append `{"id":ID,"result":RESULT_ON_ERROR,"error":[CODE,"MESSAGE",null]}\n`.
pub(crate) fn write_error(out: &mut Vec<u8>, id: &Value, code: i32, message: &str, result: &str) {
    push_id(out, id);
    out.extend_from_slice(b",\"result\":");
    out.extend_from_slice(result.as_bytes());
    out.extend_from_slice(format!(",\"error\":[{code},").as_bytes());
    out.extend_from_slice(Value::String(message.to_owned()).to_string().as_bytes());
    out.extend_from_slice(b",null]}\n");
}

fn push_id(out: &mut Vec<u8>, id: &Value) {
    out.extend_from_slice(b"{\"id\":");
    out.extend_from_slice(id.to_string().as_bytes());
}

/// Append a `mining.set_difficulty` notification.
pub(crate) fn write_set_difficulty(out: &mut Vec<u8>, difficulty: &str) {
    out.extend_from_slice(b"{\"id\":null,\"method\":\"mining.set_difficulty\",\"params\":[");
    out.extend_from_slice(difficulty.as_bytes());
    out.extend_from_slice(b"]}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_crlf_empty_and_limit() {
        let data: &[u8] = b"{\"a\":1}\r\n\n  \n{\"b\":2}\nxxxxxxxxxxxx";
        let mut r = LineReader::new(data, 4, 10);
        assert!(r.next_line().await.unwrap());
        assert_eq!(r.line(), b"{\"a\":1}");
        assert!(r.next_line().await.unwrap());
        assert_eq!(r.line(), b"{\"b\":2}");
        assert!(matches!(r.next_line().await, Err(LineError::TooLong(10))));
        let mut r = LineReader::new(&b"{}"[..], 4, 10);
        assert!(
            !r.next_line().await.unwrap(),
            "partial line at EOF is dropped"
        );
    }

    #[test]
    fn replies() {
        let mut out = Vec::new();
        write_result(&mut out, &Value::from("x"), "true");
        write_error(&mut out, &Value::Null, 21, "job \"1\" not found", "false");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"id\":\"x\",\"result\":true,\"error\":null}\n\
             {\"id\":null,\"result\":false,\"error\":[21,\"job \\\"1\\\" not found\",null]}\n"
        );
    }
}
