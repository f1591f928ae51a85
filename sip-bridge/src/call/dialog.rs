//! What a call's media needs of its signalling, inbound or outbound: the
//! [`Dialog`] trait, which both call machines implement, so one media loop
//! drives either.

use std::time::Instant;

use super::outbound::{OutboundCall, OutboundEvent};
use super::{CallEvent, InboundCall};
use crate::message::Message;

/// Work for the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialogOutput<E> {
    /// Send these bytes to the peer (the caller; the trunk or the remote target).
    Send(Vec<u8>),
    /// Send these bytes back to whoever sent the message just handled: a
    /// refusal of a request that is not the peer's (it may be anyone's).
    Refuse(Vec<u8>),
    Event(E),
}

/// What the signalling tells the call's media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// The dialog is over (either side hung up, or it failed).
    Ended,
    /// A DTMF digit by SIP INFO.
    Dtmf(char),
    /// A re-INVITE to answer (`None`: the offer is ours to make).
    ReInvite { offer: Option<String> },
    /// Media may go out (the caller's ACK of an inbound call).
    Confirmed,
}

/// A call in progress, sans-IO, as its media loop drives it.
pub trait Dialog {
    /// What this kind of call reports.
    type Event: std::fmt::Debug;
    /// A message with this call's Call-ID (from the peer, or a stranger).
    fn handle_message(&mut self, now: Instant, message: Message);
    fn poll_timeout(&self) -> Option<Instant>;
    fn handle_timeout(&mut self, now: Instant);
    fn hangup(&mut self, now: Instant);
    /// Blind transfer to `target` (REFER).
    fn transfer(&mut self, now: Instant, target: &str);
    fn answer_reinvite(&mut self, now: Instant, sdp: &str);
    fn is_ended(&self) -> bool;
    /// Whether media may go out already (an outbound call is answered; an
    /// inbound one waits for the caller's ACK, [`MediaEvent::Confirmed`]).
    fn is_confirmed(&self) -> bool;
    fn poll_output(&mut self) -> Option<DialogOutput<Self::Event>>;
    /// What `event` means to the media, if anything.
    fn media_event(event: &Self::Event) -> Option<MediaEvent>;
}

/// The methods both call machines have of their own, by the same names.
macro_rules! same_as_the_call {
    ($event:ty) => {
        fn poll_timeout(&self) -> Option<Instant> {
            Self::poll_timeout(self)
        }
        fn handle_timeout(&mut self, now: Instant) {
            Self::handle_timeout(self, now);
        }
        fn hangup(&mut self, now: Instant) {
            Self::hangup(self, now);
        }
        fn transfer(&mut self, now: Instant, target: &str) {
            Self::transfer(self, now, target);
        }
        fn answer_reinvite(&mut self, now: Instant, sdp: &str) {
            Self::answer_reinvite(self, now, sdp);
        }
        fn is_ended(&self) -> bool {
            Self::is_ended(self)
        }
        fn poll_output(&mut self) -> Option<DialogOutput<$event>> {
            Self::poll_output(self)
        }
    };
}

impl Dialog for InboundCall {
    type Event = CallEvent;
    same_as_the_call!(CallEvent);
    fn handle_message(&mut self, now: Instant, message: Message) {
        Self::handle_message(self, now, message);
    }
    fn is_confirmed(&self) -> bool {
        Self::is_confirmed(self)
    }
    fn media_event(event: &CallEvent) -> Option<MediaEvent> {
        Some(match event {
            CallEvent::Ended(_) => MediaEvent::Ended,
            CallEvent::Dtmf(c) => MediaEvent::Dtmf(*c),
            CallEvent::ReInvite { offer } => MediaEvent::ReInvite { offer: offer.clone() },
            CallEvent::Confirmed { .. } => MediaEvent::Confirmed,
        })
    }
}

impl Dialog for OutboundCall {
    type Event = OutboundEvent;
    same_as_the_call!(OutboundEvent);
    fn handle_message(&mut self, now: Instant, message: Message) {
        Self::handle_message(self, now, &message);
    }
    fn is_confirmed(&self) -> bool {
        // Media starts once the far end has answered (and we have ACKed).
        true
    }
    fn media_event(event: &OutboundEvent) -> Option<MediaEvent> {
        match event {
            OutboundEvent::Ended(_) => Some(MediaEvent::Ended),
            OutboundEvent::Dtmf(c) => Some(MediaEvent::Dtmf(*c)),
            OutboundEvent::ReInvite { offer } => Some(MediaEvent::ReInvite { offer: offer.clone() }),
            OutboundEvent::Ringing | OutboundEvent::Answered { .. } => None,
        }
    }
}
