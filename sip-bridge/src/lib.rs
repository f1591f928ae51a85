//! SIP for phone callers and trunks.
//!
//! # Layout
//! - [`message`]: pure parse and print of SIP messages, typed headers, URIs.
//! - [`call`]: a call's signalling, sans-IO on a clock passed in: an
//!   inbound call (INVITE server transaction and dialog), an outbound one
//!   ([`call::outbound`]: client transactions, Digest, REFER), the dialog
//!   table's keys ([`call::dialogs`]) and the [`call::Dialog`] trait a
//!   call's media loop drives either through.
//! - [`auth`]: Digest authentication, server and client side.
//! - [`check`]: what a user agent server answers to a request it cannot
//!   take (400, 416, 420, 501, 505 ...), before any transaction exists.
//! - [`registration`]: REGISTER with a trunk, Digest, refresh before expiry.
//! - [`responder`]: the front door for requests outside a dialog: answers
//!   OPTIONS, refuses what it must, routes INVITEs by the dialled user.
//! - [`limiter`]: per-client rate limits (SIP requests, HTTP).
//! - [`rtp`]: RTP packets, RTCP reports, the media peer (latching) and the
//!   sans-IO RTP endpoint of a call ([`rtp::endpoint`]).
//! - [`sdp`]: SDP and the offer/answer of an audio call.
//! - [`transport`]: a UDP loop around the [`responder`] (the torture tests' server).
//!
//! # Example
//!
//! ```
//! use voxgate_sip_bridge::message::{self, Framing, Message};
//!
//! let wire = b"OPTIONS sip:1000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
//! From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:1000@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n\
//! Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
//! let Ok(Message::Request(request)) = message::parse(wire, Framing::Datagram) else { panic!() };
//! let checked = voxgate_sip_bridge::check::check_request(&request).expect("well formed");
//! assert_eq!(checked.cseq.seq, 1);
//! let ok = message::response_to(&request.headers, 200, "OK", "t1");
//! assert!(ok.to_bytes().starts_with(b"SIP/2.0 200 OK\r\n"));
//! ```

pub mod auth;
pub mod call;
pub mod check;
pub mod limiter;
pub mod message;
pub mod registration;
pub mod responder;
pub mod rtp;
pub mod sdp;
pub mod transport;
