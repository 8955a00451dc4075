//! Plot sync, harvester side (chia's `plot_sync/sender.py`): `start`, `loaded2` batches,
//! `removed`, `invalid`, `keys_missing`, `duplicates`, `done`, one at a time, each waiting for
//! the farmer's `plot_sync_response` echoing its identifier. An error or a missing response
//! restarts the sync with a new sync id.

use super::protocol::{self as p, msg, Frame, Plot2, PlotSyncIdentifier, ProtocolError};

/// Entries per list message (chia's default `batch_size`).
pub const BATCH: usize = 300;
/// Seconds to wait for a response before starting over.
pub const RESPONSE_TIMEOUT_SECS: u64 = 20;

#[derive(Debug, Clone)]
enum Item {
    Start {
        count: u32,
    },
    Loaded {
        plots: Vec<Plot2>,
        last: bool,
    },
    Paths {
        msg_type: u8,
        paths: Vec<String>,
        last: bool,
    },
    Done,
}

impl Item {
    fn msg_type(&self) -> u8 {
        match self {
            Item::Start { .. } => msg::PLOT_SYNC_START,
            Item::Loaded { .. } => msg::PLOT_SYNC_LOADED2,
            Item::Paths { msg_type, .. } => *msg_type,
            Item::Done => msg::PLOT_SYNC_DONE,
        }
    }
}

/// One sync in progress (or finished).
#[derive(Debug)]
pub struct PlotSync {
    sync_id: u64,
    started: u64,
    items: Vec<Item>,
    /// Index of the next item to send; an item at `next - 1` may await its response.
    next: usize,
    /// When the awaited response's message was sent.
    awaiting: Option<u64>,
}

fn batched<T: Clone>(list: &[T]) -> Vec<(Vec<T>, bool)> {
    if list.is_empty() {
        return vec![(Vec::new(), true)];
    }
    let n = list.len().div_ceil(BATCH);
    list.chunks(BATCH)
        .enumerate()
        .map(|(i, c)| (c.to_vec(), i + 1 == n))
        .collect()
}

impl PlotSync {
    /// A full sync of `loaded` plots, `invalid` and `keys_missing` paths, started at `now`
    /// (Unix seconds, also the sync id).
    pub fn new(
        loaded: Vec<Plot2>,
        invalid: Vec<String>,
        keys_missing: Vec<String>,
        now: u64,
    ) -> PlotSync {
        let count = loaded.len() + invalid.len() + keys_missing.len();
        let mut items = vec![Item::Start {
            count: u32::try_from(count).unwrap_or(u32::MAX),
        }];
        if !loaded.is_empty() {
            items.extend(
                batched(&loaded)
                    .into_iter()
                    .map(|(plots, last)| Item::Loaded { plots, last }),
            );
        }
        for (msg_type, list) in [
            (msg::PLOT_SYNC_REMOVED, &Vec::new()),
            (msg::PLOT_SYNC_INVALID, &invalid),
            (msg::PLOT_SYNC_KEYS_MISSING, &keys_missing),
            (msg::PLOT_SYNC_DUPLICATES, &Vec::new()),
        ] {
            items.extend(batched(list).into_iter().map(|(paths, last)| Item::Paths {
                msg_type,
                paths,
                last,
            }));
        }
        items.push(Item::Done);
        PlotSync {
            sync_id: now.max(1),
            started: now,
            items,
            next: 0,
            awaiting: None,
        }
    }

    /// Whether every message was acknowledged.
    pub fn is_done(&self) -> bool {
        self.next == self.items.len() && self.awaiting.is_none()
    }

    /// The next message to send, unless one is awaiting its response or all are sent.
    pub fn next_frame(&mut self, now: u64) -> Result<Option<Frame>, ProtocolError> {
        if self.awaiting.is_some() || self.next >= self.items.len() {
            return Ok(None);
        }
        let identifier = PlotSyncIdentifier {
            timestamp: now,
            sync_id: self.sync_id,
            message_id: self.next as u64,
        };
        let item = &self.items[self.next];
        let frame = match item {
            Item::Start { count } => Frame::new(
                item.msg_type(),
                None,
                "plot_sync_start",
                &p::PlotSyncStart {
                    identifier,
                    initial: true,
                    last_sync_id: 0,
                    plot_file_count: *count,
                    harvesting_mode: 1,
                },
            )?,
            Item::Loaded { plots, last } => Frame::new(
                item.msg_type(),
                None,
                "plot_sync_loaded2",
                &p::PlotSyncPlotList2 {
                    identifier,
                    data: plots.clone(),
                    r#final: *last,
                },
            )?,
            Item::Paths {
                msg_type,
                paths,
                last,
            } => Frame::new(
                *msg_type,
                None,
                "plot_sync path list",
                &p::PlotSyncPathList {
                    identifier,
                    data: paths.clone(),
                    r#final: *last,
                },
            )?,
            Item::Done => Frame::new(
                item.msg_type(),
                None,
                "plot_sync_done",
                &p::PlotSyncDone {
                    identifier,
                    duration: now.saturating_sub(self.started),
                },
            )?,
        };
        self.next += 1;
        self.awaiting = Some(now);
        Ok(Some(frame))
    }

    /// Takes the farmer's response: the awaited one moves the sync on; an error restarts it.
    pub fn on_response(&mut self, response: &p::PlotSyncResponse) {
        let Some(_) = self.awaiting else {
            tracing::debug!(?response.identifier, "plot sync response not awaited");
            return;
        };
        let index = self.next - 1;
        let expected_type = i16::from(self.items[index].msg_type());
        if response.identifier.sync_id != self.sync_id
            || response.identifier.message_id != index as u64
            || response.message_type != expected_type
        {
            tracing::debug!(?response.identifier, "plot sync response for another message");
            return;
        }
        if let Some(error) = &response.error {
            tracing::warn!(code = error.code, message = %error.message, "farmer refused a plot sync message; starting over");
            self.restart(self.started.max(self.sync_id) + 1);
            return;
        }
        self.awaiting = None;
        if self.is_done() {
            tracing::info!(sync_id = self.sync_id, "plot sync done");
        }
    }

    /// When the awaited response is late, starts over and returns the new first message.
    pub fn check_timeout(&mut self, now: u64) -> Result<Option<Frame>, ProtocolError> {
        match self.awaiting {
            Some(sent) if now.saturating_sub(sent) >= RESPONSE_TIMEOUT_SECS => {
                tracing::warn!(
                    sync_id = self.sync_id,
                    "no plot sync response; starting over"
                );
                self.restart(now.max(self.sync_id + 1));
                self.next_frame(now)
            }
            _ => Ok(None),
        }
    }

    fn restart(&mut self, sync_id: u64) {
        self.sync_id = sync_id;
        self.started = sync_id;
        self.next = 0;
        self.awaiting = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(frame: &Frame, error: Option<p::PlotSyncError>) -> p::PlotSyncResponse {
        // Every sync payload starts with its identifier.
        let identifier: PlotSyncIdentifier =
            chia_traits::Streamable::from_bytes_unchecked(&frame.data.as_ref()[..24]).unwrap();
        p::PlotSyncResponse {
            identifier,
            message_type: i16::from(frame.msg_type),
            error,
        }
    }

    #[test]
    fn sequence_and_acknowledgements() {
        let mut s = PlotSync::new(vec![], vec!["bad.plot".into()], vec![], 1000);
        let mut types = Vec::new();
        while let Some(f) = s.next_frame(1000).unwrap() {
            assert!(
                s.next_frame(1000).unwrap().is_none(),
                "one message at a time"
            );
            types.push(f.msg_type);
            s.on_response(&response(&f, None));
        }
        assert_eq!(types, [78, 80, 81, 82, 83, 84]);
        assert!(s.is_done());
    }

    #[test]
    fn error_and_timeout_restart_with_a_new_sync_id() {
        let mut s = PlotSync::new(vec![], vec![], vec![], 1000);
        let f = s.next_frame(1000).unwrap().unwrap();
        s.on_response(&response(
            &f,
            Some(p::PlotSyncError {
                code: 1,
                message: "x".into(),
                expected_identifier: None,
            }),
        ));
        let g = s.next_frame(1001).unwrap().unwrap();
        assert_eq!(g.msg_type, msg::PLOT_SYNC_START);
        assert_ne!(response(&g, None).identifier.sync_id, 1000);
        assert!(s.check_timeout(1005).unwrap().is_none());
        let h = s
            .check_timeout(1001 + RESPONSE_TIMEOUT_SECS)
            .unwrap()
            .unwrap();
        assert_eq!(h.msg_type, msg::PLOT_SYNC_START);
    }
}
