//! Warm transfer ([`super::TransferMode::Warm`]): once the agent's words
//! before its `transfer_to_human` call have played, the caller goes on
//! hold and hears the hold tune ([`crate::dsp::hold`]); the session speaks
//! the announcement for the human (the model's summary of the call in the
//! agent's voice) and hands it to the transport
//! ([`SessionEvent::WarmTransfer`]), which calls the human, plays it to
//! them and reports back ([`super::Session::handle_transfer`]):
//!
//! - [`TransferOutcome::Connected`]: the session ends as transferred, and
//!   the transport joins the caller and the human;
//! - [`TransferOutcome::Failed`] (busy, no answer, declined): the hold
//!   ends, the caller hears the agent's `transfer_failed_line`, and the
//!   conversation goes on (the model is told why).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::reply::{self, Job, WorkerEvent};
use super::{CallEventKind, Driver, EndReason, SessionEvent, Speaker};
use crate::dsp::Frame;
use crate::dsp::hold::HoldMusic;
use crate::providers::{ChatMessage, Role};
use crate::turn::{LineKind, TurnId};

/// The worker turn that speaks the announcement (never one of the
/// conversation's: those count up from 1).
const ANNOUNCEMENT: TurnId = TurnId(u64::MAX);

/// What the human hears before being joined to the caller.
#[derive(Clone, PartialEq, Eq)]
pub struct Announcement {
    pub text: String,
    /// 16 kHz mono, in the agent's voice.
    pub audio: Arc<[i16]>,
}

impl std::fmt::Debug for Announcement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Announcement")
            .field("text", &self.text)
            .field("ms", &(self.audio.len() / 16))
            .finish()
    }
}

/// How the transport's call to the human went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferOutcome {
    /// The human answered and heard the announcement: the caller is theirs.
    Connected,
    /// Nobody took the call.
    Failed(TransferFailure),
}

/// Why a warm transfer did not reach the human.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferFailure {
    /// The line was busy.
    Busy,
    /// Nobody answered in time.
    NoAnswer,
    /// The human declined the call, or hung up before being joined.
    Declined,
    /// The call could not be placed, or failed (a refusal, no route).
    Failed,
    /// The announcement could not be spoken (the voice failed).
    NoAnnouncement,
}

impl TransferFailure {
    /// What the model is told.
    fn explain(self) -> &'static str {
        match self {
            Self::Busy => "their line was busy",
            Self::NoAnswer => "nobody answered",
            Self::Declined => "they could not take the call",
            Self::Failed | Self::NoAnnouncement => "the call did not go through",
        }
    }
}

/// A warm transfer under way.
pub(super) struct Holding {
    target: String,
    music: HoldMusic,
    /// The announcement, while it is spoken; `None` once it went to the transport.
    announcing: Option<(String, Vec<i16>)>,
}

impl Driver {
    /// The agent's words before the transfer have played: hold the caller,
    /// and speak the announcement for the human.
    pub(super) fn begin_warm_transfer(&mut self, target: String, summary: Option<String>) {
        self.turns.hold();
        let summary = summary.unwrap_or_else(|| self.summary_from_transcript());
        let text = self.config().transfer_announcement.replace("{summary}", &summary);
        tracing::info!(%target, "warm transfer: the caller is on hold");
        let cancel = self.call.child_token();
        tokio::spawn(reply::run(
            self.ctx.clone(),
            ANNOUNCEMENT,
            Job::Once(text.clone()),
            cancel,
            self.worker_tx.clone(),
        ));
        self.transfer =
            Some(Holding { target, music: HoldMusic::new(), announcing: Some((text, Vec::new())) });
    }

    /// Without the model's summary: the caller's last words.
    fn summary_from_transcript(&self) -> String {
        let said: Vec<&str> = self
            .transcript
            .iter()
            .filter(|l| l.speaker == Speaker::Caller)
            .map(|l| l.text.as_str())
            .collect();
        match said.len() {
            0 => String::new(),
            n => format!("The caller said: {}", said[n.saturating_sub(2)..].join(" ")),
        }
    }

    /// A worker event of the announcement's turn (true: handled here), or
    /// of the conversation's (false).
    pub(super) fn announcement_event(&mut self, event: &WorkerEvent) -> bool {
        let turn = match event {
            WorkerEvent::Sentence { turn, .. }
            | WorkerEvent::Audio { turn, .. }
            | WorkerEvent::FirstAudio { turn, .. }
            | WorkerEvent::Failed { turn, .. }
            | WorkerEvent::Closed { turn } => *turn,
            _ => return false,
        };
        if turn != ANNOUNCEMENT {
            return false;
        }
        let Some(holding) = self.transfer.as_mut() else { return true };
        let Some((_, audio)) = holding.announcing.as_mut() else { return true };
        match event {
            WorkerEvent::Audio { samples, .. } => audio.extend_from_slice(samples),
            WorkerEvent::Failed { .. } => self.transfer_failed(TransferFailure::NoAnnouncement),
            WorkerEvent::Closed { .. } => self.announced(),
            _ => {}
        }
        true
    }

    /// The announcement is ready: the transport calls the human.
    fn announced(&mut self) {
        let Some(holding) = self.transfer.as_mut() else { return };
        let (text, audio) = holding.announcing.take().unwrap_or_default();
        if audio.is_empty() {
            self.transfer_failed(TransferFailure::NoAnnouncement);
        } else if self.turns.is_holding() {
            let target = holding.target.clone();
            let announcement = Announcement { text, audio: audio.into() };
            self.events.push_back(SessionEvent::WarmTransfer { target, announcement });
        } else {
            // The call is closing (its length ran out).
            self.transfer = None;
        }
    }

    /// The hold tune's next frame, while the caller is on hold.
    pub(super) fn hold_frame(&mut self) -> Option<Frame> {
        let holding = self.transfer.as_mut()?;
        if !self.turns.is_holding() {
            // The call's length ran out on hold: the goodbye plays instead.
            self.transfer = None;
            return None;
        }
        let mut frame = [0; crate::dsp::vad::FRAME_SAMPLES];
        holding.music.next_frame(&mut frame);
        Some(frame)
    }

    /// The transport's word on the call to the human; false when no
    /// transfer was waiting for it (the caller is not handed over).
    pub(super) fn handle_transfer(&mut self, outcome: TransferOutcome) -> bool {
        if self.transfer.as_ref().is_none_or(|h| h.announcing.is_some()) || !self.turns.is_holding() {
            return false;
        }
        match outcome {
            TransferOutcome::Connected => {
                let Some(holding) = self.transfer.take() else { return false };
                tracing::info!(target = %holding.target, "warm transfer: joined to the human");
                self.log(CallEventKind::TransferConnected { target: holding.target.clone() });
                self.end = Some(EndReason::Transferred { target: holding.target });
                true
            }
            TransferOutcome::Failed(reason) => {
                self.transfer_failed(reason);
                false
            }
        }
    }

    /// Back from hold: the caller hears why, and the conversation goes on.
    fn transfer_failed(&mut self, reason: TransferFailure) {
        let Some(holding) = self.transfer.take() else { return };
        tracing::info!(target = %holding.target, ?reason, "warm transfer failed: back to the agent");
        self.log(CallEventKind::TransferFailed { target: holding.target, reason });
        self.history.push(ChatMessage::new(
            Role::System,
            format!(
                "The transfer to a colleague did not work: {}. You are talking with the caller again.",
                reason.explain()
            ),
        ));
        self.turns.end_hold(self.now);
        let line = self.config().transfer_failed_line.clone();
        self.turns.say(self.now, line, LineKind::TransferFailed);
    }
}
