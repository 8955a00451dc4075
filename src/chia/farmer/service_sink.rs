//! [`ServiceSink`]: the node's PoSpace share service ([`PoSpaceService`]) as the farmer's sink.
//! Shares are inserted, stored durably before they are acknowledged, gossiped on the kind's
//! topic and served by its sync protocol, like Bitcoin shares; signage points reach the
//! service's verifier, which then verifies the shares that waited for them.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use sharechain::pospace_share::{PoSpaceShare, SignagePoint};
use sharechain::share::ShareHash;

use super::sink::{remember, PoSpaceShareSink, ShareWork, SinkError};
use crate::shares::{PoSpaceService, SubmitError};

/// The share service behind the farmer endpoint.
#[derive(Debug, Clone)]
pub struct ServiceSink {
    service: PoSpaceService,
    /// Signage points given to the verifier, oldest first (older ones are forgotten).
    known: Arc<Mutex<VecDeque<SignagePoint>>>,
}

impl ServiceSink {
    /// The farmer's view of `service`.
    pub fn new(service: PoSpaceService) -> Self {
        ServiceSink {
            service,
            known: Arc::new(Mutex::new(VecDeque::new())),
        }
    }

    /// The service.
    pub fn service(&self) -> &PoSpaceService {
        &self.service
    }
}

impl PoSpaceShareSink for ServiceSink {
    fn work(&self) -> ShareWork {
        // The share worker's published view: never waits on it.
        let view = self.service.view();
        ShareWork {
            prev: view.best,
            difficulty: view.kind.difficulty,
        }
    }

    fn signage_point(&self, sp: SignagePoint) {
        let forget = remember(&mut self.known.lock(), sp);
        let service = self.service.clone();
        // One a signage point (every few seconds); applied on the share worker in order.
        tokio::spawn(async move {
            let applied = service
                .update_rules(move |verifier| {
                    let points = verifier.signage_points_mut();
                    points.insert(sp);
                    if let Some(old) = forget {
                        points.remove(&old.challenge_hash, &old.sp_hash);
                    }
                })
                .await;
            if applied.is_err() {
                tracing::debug!("signage point after the share service stopped");
            }
        });
    }

    fn submit(&self, share: PoSpaceShare) -> BoxFuture<'static, Result<ShareHash, SinkError>> {
        let service = self.service.clone();
        Box::pin(async move {
            service
                .submit_local_share(share)
                .await
                .map_err(|e| match e {
                    SubmitError::Insert(e) => SinkError::Insert(e),
                    SubmitError::Invalid(e) => SinkError::Invalid(e),
                    SubmitError::Store(e) => SinkError::Store(e.to_string()),
                    SubmitError::Stopped => SinkError::Stopped,
                })
        })
    }
}
