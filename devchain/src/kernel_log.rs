//! The kernel's log: forwarded to `tracing` (target `bitcoinkernel`), and captured per thread
//! while a block is processed, because the kernel reports a rejected block's reason string
//! (Core's `BlockValidationState::ToString()`) only in its log.

use std::cell::RefCell;
use std::sync::Once;

use bitcoinkernel::log::logging::LoggingOptions;
use bitcoinkernel::{Log, Logger};

static INIT: Once = Once::new();

thread_local! {
    static CAPTURE: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

struct TracingLog;

impl Log for TracingLog {
    fn log(&self, message: &str) {
        let message = message.trim_end();
        tracing::debug!(target: "bitcoinkernel", "{message}");
        CAPTURE.with(|capture| {
            if let Some(lines) = capture.borrow_mut().as_mut() {
                lines.push(message.to_owned());
            }
        });
    }
}

/// Connect the kernel's (process-wide) log once.
pub fn init() {
    INIT.call_once(|| {
        bitcoinkernel::log::logging::set_logging_options(LoggingOptions {
            log_timestamps: false,
            ..LoggingOptions::default()
        });
        match Logger::new(TracingLog) {
            // The connection must outlive every chainstate in the process.
            Ok(logger) => std::mem::forget(logger),
            Err(e) => tracing::warn!(error = %e, "kernel log not connected"),
        }
    });
}

/// Run `f`, returning what the kernel logged on this thread meanwhile.
pub fn capture<R>(f: impl FnOnce() -> R) -> (R, Vec<String>) {
    CAPTURE.with(|capture| *capture.borrow_mut() = Some(Vec::new()));
    let result = f();
    let lines = CAPTURE.with(|capture| capture.borrow_mut().take().unwrap_or_default());
    (result, lines)
}

/// The reject reason of block `hash` in captured kernel log lines: the first field of Core's
/// `BlockValidationState::ToString()` ("reason, debug message") as logged by `ProcessNewBlock`
/// (checks before storing) or `ConnectTip` (checks while connecting).
pub fn reject_reason(lines: &[String], hash: &bitcoin::BlockHash) -> Option<String> {
    let connect_marker = format!("ConnectBlock {hash} failed, ");
    lines.iter().find_map(|line| {
        let state = if let Some((_, rest)) = line.split_once("AcceptBlock FAILED (") {
            rest.strip_suffix(')').unwrap_or(rest)
        } else if let Some((_, rest)) = line.split_once(connect_marker.as_str()) {
            rest
        } else {
            return None;
        };
        let reason = state.split(", ").next().unwrap_or(state).trim();
        (!reason.is_empty()).then(|| reason.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use bitcoin::hashes::Hash;

    use super::*;

    #[test]
    fn reasons_are_read_from_both_kinds_of_line() {
        let hash = bitcoin::BlockHash::from_str(
            "0053ea449f18b1040f85336463e5e203fadb7352e33e877af7a6c058ceb92f40",
        )
        .unwrap();
        let accept = vec![
            "InvalidChainFound: invalid block=...".to_owned(),
            "[error] ProcessNewBlock: AcceptBlock FAILED (bad-cb-height, block height mismatch in coinbase)".to_owned(),
        ];
        assert_eq!(
            reject_reason(&accept, &hash).as_deref(),
            Some("bad-cb-height")
        );
        let version = vec!["[error] ProcessNewBlock: AcceptBlock FAILED (bad-version(0x00000001), rejected nVersion=0x00000001 block)".to_owned()];
        assert_eq!(
            reject_reason(&version, &hash).as_deref(),
            Some("bad-version(0x00000001)")
        );
        let connect = vec![format!(
            "[error] ConnectTip: ConnectBlock {hash} failed, bad-cb-amount, coinbase pays too much (actual=5000000001 vs limit=5000000000)"
        )];
        assert_eq!(
            reject_reason(&connect, &hash).as_deref(),
            Some("bad-cb-amount")
        );
        let other = vec![format!(
            "[error] ConnectTip: ConnectBlock {} failed, bad-cb-amount, x",
            bitcoin::BlockHash::all_zeros()
        )];
        assert_eq!(reject_reason(&other, &hash), None);
    }
}
