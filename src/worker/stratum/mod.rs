//! Stratum V1: framing ([`codec`]) and the per-connection state machine ([`session`]).

pub(crate) mod codec;
pub(crate) mod fanout;
pub(crate) mod session;

/// Stratum error codes (docs/PROTOCOLS.md §1.5).
pub(crate) mod code {
    pub(crate) const OTHER: i32 = 20;
    pub(crate) const JOB_NOT_FOUND: i32 = 21;
    pub(crate) const DUPLICATE: i32 = 22;
    pub(crate) const LOW_DIFFICULTY: i32 = 23;
    pub(crate) const UNAUTHORIZED: i32 = 24;
    pub(crate) const NOT_SUBSCRIBED: i32 = 25;
}
