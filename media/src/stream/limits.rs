//! What a media stream's client may send: a few bad messages, not too
//! many a second; past that the socket is closed with the reason.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use tokio::time::Instant;
use voxgate_domain::Channel;

use crate::metrics::{ChannelLabel, metrics};

/// Bad messages after which the socket is closed.
const MAX_BAD: u32 = 50;
/// Messages per second above which the socket is closed.
const MAX_PER_SECOND: u32 = 250;

/// Counts what a client sends, to stop floods and garbage.
#[derive(Debug)]
pub struct Limits {
    channel: Channel,
    bad: u32,
    window: Instant,
    in_window: u32,
}

impl Limits {
    pub fn new(channel: Channel) -> Self {
        Self { channel, bad: 0, window: Instant::now(), in_window: 0 }
    }

    /// One more message; the reason to close, if there is one.
    pub fn message(&mut self) -> Option<&'static str> {
        if self.window.elapsed() >= Duration::from_secs(1) {
            self.window = Instant::now();
            self.in_window = 0;
        }
        self.in_window += 1;
        (self.in_window > MAX_PER_SECOND).then_some("too many messages")
    }

    /// One more bad message; the reason to close, if there is one.
    pub fn bad(&mut self, why: &dyn std::fmt::Display) -> Option<&'static str> {
        self.bad += 1;
        metrics().bad_frames.get_or_create(&ChannelLabel::from(self.channel)).inc();
        tracing::debug!(channel = self.channel.as_str(), error = %why, "bad stream message ignored");
        (self.bad >= MAX_BAD).then_some("too many bad messages")
    }
}

/// Closes `socket` with `code` and `reason`.
pub async fn close(mut socket: WebSocket, code: u16, reason: &'static str) {
    tracing::info!(code, reason, "closing a media stream");
    let frame = CloseFrame { code, reason: reason.into() };
    let _ = socket.send(Message::Close(Some(frame))).await;
}
