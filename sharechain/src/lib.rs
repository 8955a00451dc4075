//! Consensus rules of the p2pool share chain.
//!
//! This crate is pure: no async runtime, no sockets, no clock, no disk. Time is passed in as an
//! argument, so everything here can be unit-tested, property-tested, fuzzed and benchmarked in
//! isolation. If it decides *what is valid*, it lives here.
pub mod pospace;
