//! SIP for phone callers and trunks.
//!
//! # Layout (planned, issue 4)
//! - `message/`: pure parse and print of SIP messages, typed headers.
//! - `transaction/`: pure RFC 3261 / RFC 6026 transaction state machines, timers A..M.
//! - `dialog/`, `sdp/`, `rtp/`: pure.
//! - `transport.rs`: the only module that owns sockets.
//!
//! Nothing is implemented yet: this crate holds the place in the workspace
//! so that `media-server -> sip-bridge` is wired from the start.
