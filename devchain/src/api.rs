//! What the RPC methods take and give back beside their results: positional parameters with
//! Core's type errors, error replies, and Core's JSON-RPC error codes. Below both the server
//! (`rpc`) and the methods (`methods`, `mempool`), so neither depends on the other for them.

use serde_json::{json, Value};

/// Core's JSON-RPC error codes used here.
pub mod code {
    pub const MISC_ERROR: i64 = -1;
    pub const TYPE_ERROR: i64 = -3;
    pub const INVALID_ADDRESS_OR_KEY: i64 = -5;
    pub const INVALID_PARAMETER: i64 = -8;
    pub const DESERIALIZATION_ERROR: i64 = -22;
    pub const VERIFY_ERROR: i64 = -25;
    pub const VERIFY_REJECTED: i64 = -26;
    pub const VERIFY_ALREADY_IN_UTXO_SET: i64 = -27;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const PARSE_ERROR: i64 = -32700;
}

/// An error reply: Core's code and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({code})")]
pub struct RpcError {
    /// Core's JSON-RPC error code (see [`code`]).
    pub code: i64,
    /// Core's message for it.
    pub message: String,
}

impl RpcError {
    /// An error reply with `code` and `message`.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({"code": self.code, "message": self.message})
    }
}

/// Positional parameters with Core's type errors.
#[derive(Debug)]
pub struct Params(pub Vec<Value>);

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_error(v: &Value, expected: &str) -> RpcError {
    RpcError::new(
        code::TYPE_ERROR,
        format!(
            "JSON value of type {} is not of expected type {expected}",
            type_name(v)
        ),
    )
}

impl Params {
    /// Parameter `i`, `None` when absent or null.
    pub fn get(&self, i: usize) -> Option<&Value> {
        self.0.get(i).filter(|v| !v.is_null())
    }

    pub fn str(&self, i: usize) -> Result<Option<&str>, RpcError> {
        self.get(i)
            .map(|v| v.as_str().ok_or_else(|| type_error(v, "string")))
            .transpose()
    }

    pub fn int(&self, i: usize) -> Result<Option<i64>, RpcError> {
        self.get(i)
            .map(|v| {
                v.as_i64()
                    .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                    .ok_or_else(|| type_error(v, "number"))
            })
            .transpose()
    }

    /// An amount in BTC, as a JSON number or string.
    pub fn btc(&self, i: usize) -> Result<Option<bitcoin::Amount>, RpcError> {
        self.get(i)
            .map(|v| {
                let btc = match v {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.parse::<f64>().ok(),
                    _ => return Err(type_error(v, "number")),
                };
                btc.and_then(|b| bitcoin::Amount::from_btc(b).ok())
                    .ok_or_else(|| RpcError::new(code::TYPE_ERROR, "Invalid amount"))
            })
            .transpose()
    }

    pub fn bool(&self, i: usize) -> Result<Option<bool>, RpcError> {
        self.get(i)
            .map(|v| v.as_bool().ok_or_else(|| type_error(v, "bool")))
            .transpose()
    }
}
