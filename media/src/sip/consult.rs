//! The human's leg of a warm transfer: a call of ours to the target,
//! through the trunk and within its rules like any call we place. Once
//! the human answers it plays them the announcement (the agent's summary),
//! then reports [`FromHuman::Connected`] and carries the bridge's audio:
//! the caller's frames in ([`Consult::hear`]), the human's frames back.
//! Busy, no answer, a refusal, or a hang-up before the announcement ends
//! is [`FromHuman::Failed`].
//!
//! It runs as its own task beside the caller's, each on its own 20 ms
//! clock; the frames between them go through short queues (at most
//! [`MAX_QUEUED`] frames; past it a frame is dropped), so neither waits for
//! the other, and each takes one frame a tick. Dropping the [`Consult`]
//! hangs the human's call up.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};
use voxgate_calls::agent::CallAgent;
use voxgate_pipeline::call::{Arrival, Leg, first_tick, now};
use voxgate_pipeline::dsp::Frame;
use voxgate_pipeline::session::{Announcement, TransferFailure};
use voxgate_pipeline::timer::DeadlineTimer;
use voxgate_sip_bridge::call::outbound::{OutboundCall, Outcome};
use voxgate_sip_bridge::call::{Dialog, MediaEvent};

use super::media::{Rtp, SipLeg};
use super::outbound::{self, Ringing, Unanswered};
use super::{Shared, Signal, rand_u32};

/// Frames queued each way between the two legs: 100 ms.
const MAX_QUEUED: usize = 5;

/// What the human's leg reports to the caller's call.
#[derive(Debug)]
pub(super) enum FromHuman {
    /// The human heard the announcement: join the caller.
    Connected { target: String },
    /// Nobody took the call.
    Failed(TransferFailure),
    /// The human's audio of one tick (16 kHz), once joined.
    Heard(Box<Frame>),
}

/// The human's leg, seen from the caller's call.
pub(super) struct Consult {
    events: mpsc::Receiver<FromHuman>,
    to_human: mpsc::Sender<Box<Frame>>,
    _hang_up: DropGuard,
}

impl Consult {
    /// Calls `target` for `agent`'s caller and plays it `announcement`.
    pub(super) fn start(
        shared: &Arc<Shared>,
        agent: &CallAgent,
        target: String,
        announcement: Announcement,
        cancel: CancellationToken,
    ) -> Self {
        let (events_tx, events) = mpsc::channel(MAX_QUEUED + 2);
        let (to_human, from_caller) = mpsc::channel(MAX_QUEUED);
        let (shared, agent, stop) = (shared.clone(), agent.clone(), cancel.clone());
        tokio::spawn(async move {
            let placed = async {
                let placing = outbound::prepare(&shared, &agent, &target, None, &stop).await?;
                Ok::<_, voxgate_calls::dial::DialError>(placing.open(&shared).await)
            };
            match placed.await {
                Err(e) => {
                    tracing::warn!(%target, error = %e, "warm transfer: the human cannot be called");
                    let _ = events_tx.send(FromHuman::Failed(TransferFailure::Failed)).await;
                }
                Ok((opened, sip_call_id)) => {
                    let ringing = opened.invite(&shared, |_| {});
                    let human = Human { target, events: events_tx, from_caller, cancel: stop };
                    let call = human.run(shared.clone(), ringing, announcement);
                    super::spawn_call(&shared, sip_call_id, call);
                }
            }
        });
        Self { events, to_human, _hang_up: cancel.drop_guard() }
    }

    /// The human leg's next report; `None` once it is over (never, with no leg).
    pub(super) async fn next(consult: &mut Option<Self>) -> Option<FromHuman> {
        match consult {
            Some(c) => c.events.recv().await,
            None => std::future::pending().await,
        }
    }

    /// The caller's frame of this tick, for the human (dropped if the
    /// human's leg is behind).
    pub(super) fn hear(&self, frame: &Frame) {
        let _ = self.to_human.try_send(Box::new(*frame));
    }
}

/// The human's leg, in its own task.
struct Human {
    target: String,
    events: mpsc::Sender<FromHuman>,
    from_caller: mpsc::Receiver<Box<Frame>>,
    cancel: CancellationToken,
}

/// Why a call that was not answered did not reach the human.
fn failure(why: &Unanswered) -> TransferFailure {
    match why {
        Unanswered::Ended(Outcome::Busy | Outcome::Failed { status: 600 }) => TransferFailure::Busy,
        Unanswered::Ended(Outcome::NoAnswer | Outcome::Failed { status: 408 | 480 }) => {
            TransferFailure::NoAnswer
        }
        Unanswered::Ended(Outcome::Failed { status: 603 }) => TransferFailure::Declined,
        _ => TransferFailure::Failed,
    }
}

impl Human {
    async fn run(mut self, shared: Arc<Shared>, mut ringing: Ringing, announcement: Announcement) {
        let negotiated = match ringing.answered(&self.cancel).await {
            Ok(n) => n,
            Err(why) => {
                tracing::info!(target = %self.target, ?why, "warm transfer: the human did not answer");
                let _ = self.events.send(FromHuman::Failed(failure(&why))).await;
                return;
            }
        };
        tracing::info!(target = %self.target, codec = ?negotiated.codec, "warm transfer: the human answered");
        let Ringing { mut out, mut signalling, sockets, .. } = ringing;
        let started = Rtp::open(&shared, out.peer().addr().ip(), sockets, negotiated).and_then(|media| {
            let leg =
                Leg::new(now(), media.codec(), Arrival::Packets(shared.calls.config.jitter()), rand_u32())
                    .map_err(std::io::Error::other)?;
            Ok((media, leg))
        });
        let (mut media, mut leg) = match started {
            Ok(started) => started,
            Err(e) => {
                tracing::warn!(error = %e, "warm transfer: the human's media cannot be set up");
                out.dialog.hangup(now());
                out.flush();
                let _ = self.events.send(FromHuman::Failed(TransferFailure::Failed)).await;
                return;
            }
        };
        leg.play(&announcement.audio);
        let joined = self.talk(&shared, &mut out, &mut signalling, &mut media, &mut leg).await;
        if !joined {
            tracing::info!(target = %self.target, "warm transfer: the human hung up before being joined");
            let _ = self.events.send(FromHuman::Failed(TransferFailure::Declined)).await;
        }
    }

    /// The announcement, then the bridge, until either side hangs up;
    /// true if the human was joined to the caller.
    async fn talk(
        &mut self,
        shared: &Shared,
        out: &mut SipLeg<OutboundCall>,
        signalling: &mut mpsc::Receiver<Signal>,
        media: &mut Rtp,
        leg: &mut Leg,
    ) -> bool {
        let no_media = Duration::from_secs(u64::from(shared.calls.config.rtp.no_media_timeout_s));
        let mut tick = tokio::time::interval_at(first_tick(), Duration::from_millis(20));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut reports = tokio::time::interval(Duration::from_secs(5));
        let mut dialog_timer = DeadlineTimer::new();
        let (mut joined, mut ending) = (false, false);
        if out.dialog.is_confirmed() {
            media.endpoint_confirm();
        }
        loop {
            dialog_timer.set_std(out.dialog.poll_timeout());
            tokio::select! {
                () = self.cancel.cancelled(), if !ending => {
                    ending = true;
                    out.dialog.hangup(now());
                }
                msg = signalling.recv() => match msg {
                    Some((m, from)) => out.handle_message(now(), m, from),
                    None => break,
                },
                () = dialog_timer.fired() => out.dialog.handle_timeout(now()),
                _ = tick.tick(), if !ending => {
                    let now = now();
                    media.receive(leg, now);
                    let heard = *leg.handle_tick(now);
                    // The caller's next frame, in order: the two legs' ticks
                    // may come in bursts (a loaded machine), and each frame is
                    // 20 ms of the caller; the queue's bound drops the newest.
                    let caller = if joined { self.from_caller.try_recv().ok() } else { None };
                    if let Some(frame) = leg.poll_frame(caller.as_deref()) {
                        media.send(now, &frame);
                    }
                    if joined {
                        let _ = self.events.try_send(FromHuman::Heard(Box::new(heard)));
                    } else if !leg.is_playing() {
                        joined = true;
                        let target = self.target.clone();
                        if self.events.send(FromHuman::Connected { target }).await.is_err() {
                            self.cancel.cancel();
                        }
                    }
                    if leg.since_media(now) > no_media {
                        tracing::info!("warm transfer: no audio from the human; hanging up");
                        ending = true;
                        out.dialog.hangup(now);
                    }
                }
                _ = reports.tick() => {
                    let now = now();
                    media.report((leg.jitter_ms(), leg.media_timestamp(now)), ending);
                }
            }
            while let events = out.flush()
                && !events.is_empty()
            {
                for event in events.iter().filter_map(OutboundCall::media_event) {
                    match event {
                        MediaEvent::Ended => ending = true,
                        MediaEvent::Confirmed => media.endpoint_confirm(),
                        // The human's leg keeps its codec.
                        MediaEvent::ReInvite { offer } => {
                            let codec = media.negotiated_codec();
                            media.reinvite(&mut out.dialog, offer.as_deref(), &[codec], |_, _| Ok(false));
                        }
                        MediaEvent::Dtmf(_) => {}
                    }
                }
            }
            if out.dialog.is_ended() {
                break;
            }
        }
        joined
    }
}
