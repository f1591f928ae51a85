//! The session: per call, it wires the caller's audio, the turn machine and
//! the providers together. Time is passed in: its transport (through the
//! call core, [`crate::call`]) calls it on each 20 ms tick with the caller's
//! frame and takes the agent's frame that comes of it, so one wake-up of the
//! call's task serves a frame both ways.
//!
//! ```text
//!  call core ──control (DTMF, hang-up)──► ┌──────────────────────────────┐ ──events (Clear, Transfer, Dtmf)─► call core
//!            ──caller frame, each tick──► │  VAD -> endpointer ─┐        │ ──agent frame, each tick────────► call core
//!            ──provider input, timers───► │  STT lane (task) ───┼─► turn │
//!                                         │  reply workers ─────┘ machine│
//!                                         │  egress queue, recording     │
//!                                         └──────────────────────────────┘
//! ```
//!
//! - Two lanes in: an urgent control lane (DTMF, hang-up) and the ordered
//!   data lane of caller frames (20 ms, 16 kHz mono). Two lanes out:
//!   [`Session::poll_event`] and [`Session::poll_frame`]. What the providers
//!   send is awaited with [`Session::next_input`] and handed back with
//!   [`Session::handle_input`]; the turn timers are [`Session::poll_timeout`].
//! - Each agent turn is a worker task ([`reply`]) with its own cancellation
//!   token, a child of the call's: LLM deltas are cut into sentences and
//!   spoken while the model still writes. Barge-in cancels the token, drops
//!   the turn's queued audio, tells the transport to clear its buffers, and
//!   keeps in the transcript only what the caller heard ([`egress`]).
//! - Provider failures are retried after 1, 2, 4 s; then the caller hears
//!   a fallback line; repeated failures end the call with a goodbye. The
//!   call log says what failed.

mod answering;
mod chat;
mod config;
mod egress;
pub mod grounding;
pub mod history;
mod log;
mod reply;
mod s2s;
mod sentences;
mod stt_lane;
pub mod tools;
mod transfer;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use answering::{AnsweringMachine, OnMachine, Voicemail};
pub use chat::{ChatEvent, ChatHandle, Thread, ThreadAnswer, spawn_chat};
pub use config::{Knowledge, Providers, SessionConfig, TransferMode, TurnDetector};
pub use egress::{Egress, EgressEvent, Spoken};
pub use log::{
    CallEvent, CallEventKind, CallLog, EndReason, Speaker, Stage, TranscriptLine, TurnLatency, Usage,
};
use reply::{Job, WorkerContext, WorkerEvent};
pub use sentences::SentenceSplitter;
use stt_lane::SttLaneEvent;
use tokio::sync::mpsc;
pub use transfer::{Announcement, TransferFailure, TransferOutcome};
use voxgate_codecs::SampleRate;
use voxgate_codecs::dtmf::DtmfKey;
use voxgate_codecs::wav::{WavLayout, WavRecorder};

use crate::dsp::denoise::NoiseSuppressor;
use crate::dsp::echo::EchoCanceller;
use crate::dsp::endpoint::{EndpointEvent, Endpointer};
use crate::dsp::smart_turn;
use crate::dsp::vad::{FRAME_SAMPLES, VoiceActivityDetector};
use crate::metrics::{ProviderLabel, StageLabel, metrics};
use crate::providers::{CancellationToken, ChatMessage, Role, S2sInput, S2sSetup, SttEvent, SttInput};
use crate::turn::{LineKind, PlayoutEvent, TurnId, TurnMachine, TurnOutput, TurnSource};

pub use crate::dsp::Frame;

/// The caller's audio goes to the recogniser 100 ms at a time (and at each
/// speech mark): a message per 20 ms frame cost two task hops per frame.
const STT_CHUNK_SAMPLES: usize = 5 * FRAME_SAMPLES;

/// Live transcripts waiting for the transport beyond this are dropped.
const MAX_QUEUED_EVENTS: usize = 256;

/// Urgent input from the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// A key on the caller's keypad (RFC 4733, SIP INFO, a websocket `dtmf`).
    Dtmf(DtmfKey),
    /// The caller hung up.
    Hangup,
    /// No audio has come from the caller for too long: the transport hangs up.
    NoMedia,
}

/// What the session tells its transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// Barge-in: drop any agent audio still buffered (RTP pacer, WebRTC
    /// track, a websocket `clear`).
    Clear,
    /// Live transcript: the caller's words as recognised, the agent's as
    /// each sentence starts.
    Transcript { speaker: Speaker, text: String, is_final: bool },
    /// Hand the caller to `target` (SIP REFER); the session has ended.
    Transfer { target: String },
    /// A warm transfer: the caller is on hold (the session sends the hold
    /// tune). Call `target`, play it `announcement`, then report with
    /// [`Session::handle_transfer`].
    WarmTransfer { target: String, announcement: Announcement },
    /// Press these keys (RFC 4733 telephone-events), after the audio sent so far.
    Dtmf { digits: String },
    /// Who answered a call we placed (answering-machine detection).
    AnsweringMachine(crate::dsp::amd::Detection),
    /// The session is over; hang up.
    Ended(EndReason),
}

/// What a session is made of.
pub struct SessionParts {
    /// The agent's behaviour.
    pub config: SessionConfig,
    /// Its providers.
    pub providers: Providers,
    /// This call's own voice activity detector.
    pub vad: Box<dyn VoiceActivityDetector>,
    /// Where to write the stereo recording (left: caller, right: agent).
    pub recording: Option<PathBuf>,
}

impl std::fmt::Debug for SessionParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionParts")
            .field("providers", &self.providers)
            .field("vad", &self.vad.name())
            .field("recording", &self.recording)
            .finish_non_exhaustive()
    }
}

/// One call's conversation, driven by its transport's 20 ms media clock:
/// [`Session::handle_caller_frame`] on each tick, then the agent's frame
/// that comes of it ([`Session::poll_frame`]) goes out at once.
///
/// After each call, take what is due: [`Session::poll_frame`] (agent
/// frames to send now) and [`Session::poll_event`].
pub struct Session {
    driver: Driver,
    /// Counted while the session lives, however it ends (a panic included).
    _active: ActiveSession,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("end", &self.driver.end).finish_non_exhaustive()
    }
}

impl Session {
    /// Starts a session at `now` (its recogniser lane is a task on the current runtime).
    #[must_use]
    pub fn start(now: Instant, parts: SessionParts) -> Self {
        let _active = ActiveSession::new();
        let mut driver = Driver::new(now, parts);
        // Detecting who answered, the agent holds its greeting.
        if driver.answering.is_none() {
            driver.turns.handle_start(now);
        }
        driver.drain_outputs();
        Self { driver, _active }
    }

    /// Urgent input: a key, or the transport's hang-up.
    pub fn handle_control(&mut self, now: Instant, control: Control) {
        self.driver.now = now;
        self.driver.handle_control(control);
        self.driver.drain_outputs();
    }

    /// The caller's frame of this tick. A frame of the agent is then due
    /// ([`Session::poll_frame`]) while it talks: what the caller's frame
    /// decided comes first, so a caller who starts talking pauses the agent
    /// before its next frame.
    ///
    /// Every agent frame goes out on a tick, a talkspurt's first too (it
    /// waits up to 20 ms for it): the caller's jitter buffer sets its
    /// playout by the first packet of a talkspurt, and a first frame sent
    /// between ticks made the rest of the talkspurt arrive up to a frame
    /// late by it.
    pub fn handle_caller_frame(&mut self, now: Instant, frame: &Frame) {
        let d = &mut self.driver;
        d.now = now;
        if d.end.is_some() {
            return;
        }
        d.handle_frame(frame);
        d.drain_outputs();
        if let Some(tune) = d.hold_frame() {
            d.send(tune);
        } else if d.end.is_none() && (d.pacing || d.egress.has_frame()) {
            d.pacing = true;
            d.send_frame();
            d.drain_outputs();
        }
    }

    /// When the turn machine next needs [`Session::handle_timeout`].
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.driver.end.is_some() { None } else { self.driver.turns.poll_timeout() }
    }

    /// A turn timer is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        let d = &mut self.driver;
        d.now = now;
        if d.end.is_none() {
            d.turns.handle_timeout(now);
            d.drain_outputs();
        }
    }

    /// Waits for the next thing the providers send (never, once the session
    /// has ended). Cancel-safe: dropped while waiting, nothing is lost.
    pub async fn next_input(&mut self) -> SessionInput {
        let d = &mut self.driver;
        if d.end.is_some() {
            return std::future::pending().await;
        }
        tokio::select! {
            biased;
            Some(e) = d.worker_rx.recv() => SessionInput(Input::Worker(e)),
            Some(e) = d.stt_rx.recv() => SessionInput(Input::Stt(e)),
            Some((pause, p)) = d.verdict_rx.recv() => SessionInput(Input::Verdict(pause, p)),
            e = s2s::S2s::next(&mut d.s2s), if d.s2s.is_some() => SessionInput(Input::S2s(e)),
            else => std::future::pending().await,
        }
    }

    /// Handles what [`Session::next_input`] gave, at `now`.
    pub fn handle_input(&mut self, now: Instant, input: SessionInput) {
        let d = &mut self.driver;
        d.now = now;
        if d.end.is_some() {
            return;
        }
        match input.0 {
            Input::Worker(e) => d.handle_worker(e),
            Input::Stt(e) => d.handle_stt(e),
            Input::Verdict(pause, p) => d.handle_verdict(pause, p),
            Input::S2s(e) => d.handle_s2s(e),
        }
        d.drain_outputs();
    }

    /// How the call to the human of a [`SessionEvent::WarmTransfer`] went.
    /// True when the caller is now the human's: the session has ended as
    /// transferred, and the transport joins the two. False otherwise (the
    /// call failed, and the caller is back with the agent; or no transfer
    /// was waiting, as when the caller hung up meanwhile).
    pub fn handle_transfer(&mut self, now: Instant, outcome: TransferOutcome) -> bool {
        let d = &mut self.driver;
        d.now = now;
        if d.end.is_some() {
            return false;
        }
        let connected = d.handle_transfer(outcome);
        d.drain_outputs();
        connected
    }

    /// An agent frame the transport did not manage to send (counted in the call log).
    pub fn frame_not_sent(&mut self) {
        self.driver.dropped_frames += 1;
    }

    /// An agent frame to send now, if any.
    pub fn poll_frame(&mut self) -> Option<Frame> {
        self.driver.frames.pop_front()
    }

    /// The next event for the transport. The session's end is
    /// [`Session::is_ended`], not an event.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.driver.events.pop_front()
    }

    /// True once the session is over: the transport hangs up and calls
    /// [`Session::finish`].
    #[must_use]
    pub fn is_ended(&self) -> bool {
        self.driver.end.is_some()
    }

    /// Ends the session at `now` (if it has not ended) and returns its call log.
    #[must_use]
    pub fn finish(mut self, now: Instant) -> CallLog {
        self.driver.now = now;
        self.driver.finish()
    }
}

/// Something a provider sent, for [`Session::handle_input`].
#[derive(Debug)]
pub struct SessionInput(Input);

#[derive(Debug)]
enum Input {
    Worker(WorkerEvent),
    Stt(SttLaneEvent),
    Verdict(u64, f32),
    S2s(Option<Result<crate::providers::S2sEvent, crate::providers::ProviderError>>),
}

/// One session in the `active_sessions` gauge, for as long as it lives.
struct ActiveSession;

impl ActiveSession {
    fn new() -> Self {
        metrics().active_sessions.inc();
        Self
    }
}

impl Drop for ActiveSession {
    fn drop(&mut self) {
        metrics().active_sessions.dec();
    }
}

/// A running agent turn.
struct Worker {
    cancel: CancellationToken,
    is_reply: bool,
    failed: bool,
    /// For a reply: where its question is in the history.
    question: Option<usize>,
}

/// What to do once a turn has played.
enum AfterTurn {
    EndCall,
    /// Hand the caller to the target, with the model's summary of the call.
    Transfer(String, Option<String>),
}

/// A reply's latency, measured from the caller's end of speech.
struct PendingLatency {
    caller_stopped: Instant,
    latency: TurnLatency,
}

/// Agent frames kept for the echo canceller while no caller frame comes.
const MAX_UNPAIRED_SENT: usize = 8;

struct Driver {
    /// The time of the call being handled (the transport's clock).
    now: Instant,
    ctx: Arc<WorkerContext>,
    turns: TurnMachine,
    egress: Egress,
    vad: Box<dyn VoiceActivityDetector>,
    /// Takes the agent's echo out of the caller's audio, if on.
    echo: Option<EchoCanceller>,
    /// Then turns the caller's noise down, if on.
    denoise: Option<NoiseSuppressor>,
    /// The agent's frames sent and not yet paired with a caller frame: the
    /// echo canceller's reference, one per caller frame (zeros when none),
    /// so both run at the same 50 frames a second with a fixed offset.
    sent: VecDeque<Frame>,
    endpointer: Endpointer,
    media_ms: u64,
    call: CancellationToken,
    stt_tx: mpsc::Sender<SttInput>,
    /// The caller's audio not yet sent to the recogniser.
    stt_chunk: Vec<i16>,
    stt_rx: mpsc::Receiver<SttLaneEvent>,
    /// The caller's last seconds of audio, for the learned end of turn.
    caller_audio: VecDeque<i16>,
    /// Its verdicts: (the pause asked about, the probability the turn is complete).
    verdict_tx: mpsc::Sender<(u64, f32)>,
    verdict_rx: mpsc::Receiver<(u64, f32)>,
    worker_tx: mpsc::Sender<WorkerEvent>,
    worker_rx: mpsc::Receiver<WorkerEvent>,
    /// Events for the transport, and agent frames to send now.
    events: VecDeque<SessionEvent>,
    frames: VecDeque<Frame>,
    workers: HashMap<TurnId, Worker>,
    history: Vec<ChatMessage>,
    started: Instant,
    transcript: Vec<TranscriptLine>,
    log_events: Vec<CallEvent>,
    latencies: Vec<TurnLatency>,
    pending_latency: HashMap<TurnId, PendingLatency>,
    /// When the caller last stopped speaking, and when its final transcript came.
    caller_stopped: Option<Instant>,
    final_at: Option<Instant>,
    failures: u32,
    failing: bool,
    after_turn: Option<(TurnId, AfterTurn)>,
    recorder: Option<WavRecorder>,
    unrecorded: VecDeque<Frame>,
    recorded_frames: u64,
    pacing: bool,
    end: Option<EndReason>,
    dropped_frames: u64,
    /// Who answered a call we placed: detecting, or waiting for the beep.
    answering: Option<answering::Answering>,
    /// The recording to play as the voicemail message, if it is one.
    voicemail: Option<Arc<[i16]>>,
    /// A machine answered: what it says is only transcribed.
    machine: bool,
    /// A warm transfer under way: the caller is on hold.
    transfer: Option<transfer::Holding>,
    /// The speech-to-speech model answering, if the agent has one.
    s2s: Option<s2s::S2s>,
}

impl Driver {
    fn new(now: Instant, parts: SessionParts) -> Self {
        let SessionParts { config, providers, vad, recording } = parts;
        let call = CancellationToken::new();
        let (stt_tx, stt_input) = mpsc::channel(100);
        let (stt_events, stt_rx) = mpsc::channel(64);
        tokio::spawn(stt_lane::run(
            providers.stt.clone(),
            stt_input,
            stt_events,
            config.retry_backoff.clone(),
            call.child_token(),
        ));
        let (worker_tx, worker_rx) = mpsc::channel(256);
        let (verdict_tx, verdict_rx) = mpsc::channel(4);
        let mut log_events = Vec::new();
        let recorder = recording.and_then(|path| {
            WavRecorder::create(&path, SampleRate::HZ_16000, WavLayout::CallerLeftAgentRight)
                .inspect_err(|e| {
                    log_events.push(CallEvent {
                        at_ms: 0,
                        kind: CallEventKind::RecordingFailed { error: e.to_string() },
                    });
                })
                .ok()
        });
        let history = vec![ChatMessage::new(Role::System, config.system_prompt.clone())];
        let endpointer = Endpointer::new(config.endpoint, 20);
        let turns = TurnMachine::new(config.turn.clone());
        let echo = config.echo_cancellation.then(EchoCanceller::new);
        let denoise = config.noise_suppression.then(NoiseSuppressor::new);
        let answering = config.answering_machine.as_ref().map(answering::Answering::new);
        let ctx = Arc::new(WorkerContext { config: Arc::new(config), providers, usage: Arc::default() });
        let s2s = ctx.providers.speech_to_speech.as_ref().and_then(|model| {
            let setup = S2sSetup { instructions: ctx.config.system_prompt.clone(), tools: ctx.tool_specs() };
            s2s::S2s::open(model, setup, call.child_token())
                .inspect_err(|e| {
                    // The text model and the voice answer instead.
                    log_events.push(CallEvent {
                        at_ms: 0,
                        kind: CallEventKind::ProviderFailed {
                            stage: Stage::Llm,
                            provider: e.provider().to_owned(),
                            error: e.to_string(),
                        },
                    });
                })
                .ok()
        });
        Self {
            now,
            ctx,
            turns,
            egress: Egress::new(),
            vad,
            echo,
            denoise,
            sent: VecDeque::with_capacity(MAX_UNPAIRED_SENT),
            endpointer,
            media_ms: 0,
            call,
            stt_tx,
            stt_chunk: Vec::with_capacity(STT_CHUNK_SAMPLES),
            stt_rx,
            caller_audio: VecDeque::with_capacity(smart_turn::WINDOW_SAMPLES),
            verdict_tx,
            verdict_rx,
            worker_tx,
            worker_rx,
            events: VecDeque::new(),
            frames: VecDeque::new(),
            workers: HashMap::new(),
            history,
            started: now,
            transcript: Vec::new(),
            log_events,
            latencies: Vec::new(),
            pending_latency: HashMap::new(),
            caller_stopped: None,
            final_at: None,
            failures: 0,
            failing: false,
            after_turn: None,
            recorder,
            unrecorded: VecDeque::new(),
            recorded_frames: 0,
            pacing: false,
            end: None,
            dropped_frames: 0,
            answering,
            voicemail: None,
            machine: false,
            transfer: None,
            s2s,
        }
    }

    fn config(&self) -> &SessionConfig {
        &self.ctx.config
    }

    /// `ago` before now (or now, this early in the process's life).
    fn before(&self, ago: Duration) -> Instant {
        self.now.checked_sub(ago).unwrap_or(self.now)
    }

    fn ms_since_start(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started).as_millis() as u64
    }

    fn log(&mut self, kind: CallEventKind) {
        let at_ms = self.ms_since_start(self.now);
        self.log_events.push(CallEvent { at_ms, kind });
    }

    /// Carries out what the turn machine asks.
    fn drain_outputs(&mut self) {
        while let Some(output) = self.turns.poll_output() {
            match output {
                TurnOutput::Speak { turn, text, kind } => {
                    if kind == LineKind::Fallback {
                        self.log(CallEventKind::Fallback);
                    }
                    match (kind, self.voicemail.take()) {
                        (LineKind::Voicemail, Some(audio)) => {
                            self.start_worker(turn, Job::Recorded { text, audio }, false);
                        }
                        _ if self.s2s_ready() => self.s2s_start(turn, S2sInput::Say(text)),
                        _ => self.start_worker(turn, Job::Line(text), false),
                    }
                }
                TurnOutput::CommitUserTurn { turn, text, source } => self.commit(turn, text, source),
                TurnOutput::PauseAgent { .. } => self.egress.pause(),
                TurnOutput::ResumeAgent { turn } => {
                    self.egress.resume();
                    self.log(CallEventKind::FalseInterruption { turn: turn.0 });
                }
                TurnOutput::Interrupt { turn, heard_ms } => self.interrupt(turn, heard_ms),
                TurnOutput::Hangup { reason } => {
                    self.end = Some(EndReason::from_hangup(reason, self.failing));
                }
            }
        }
    }

    fn start_worker(&mut self, turn: TurnId, job: Job, is_reply: bool) {
        self.egress.open(turn);
        let cancel = self.call.child_token();
        let question = is_reply.then(|| self.history.len().saturating_sub(1));
        self.workers.insert(turn, Worker { cancel: cancel.clone(), is_reply, failed: false, question });
        tokio::spawn(reply::run(self.ctx.clone(), turn, job, cancel, self.worker_tx.clone()));
    }

    fn commit(&mut self, turn: TurnId, text: String, source: TurnSource) {
        let now = self.now;
        let at_ms = self.ms_since_start(self.caller_stopped.unwrap_or(now));
        self.transcript.push(TranscriptLine {
            turn: turn.0,
            speaker: Speaker::Caller,
            text: text.clone(),
            at_ms,
            interrupted: false,
        });
        self.log(CallEventKind::TurnCommitted { turn: turn.0, dtmf: source == TurnSource::Dtmf });
        tracing::debug!(turn = turn.0, ?source, "caller's turn committed");
        if let (TurnSource::Speech, Some(stopped)) = (source, self.caller_stopped) {
            let since = |t: Instant| Some(t.saturating_duration_since(stopped).as_millis() as u64);
            let latency = TurnLatency {
                turn: turn.0,
                final_transcript_ms: self.final_at.and_then(since),
                committed_ms: since(now),
                ..TurnLatency::default()
            };
            self.pending_latency.insert(turn, PendingLatency { caller_stopped: stopped, latency });
        }
        let content = match source {
            TurnSource::Speech => text.clone(),
            TurnSource::Dtmf => format!("(The caller pressed the keys {text} on their keypad.)"),
        };
        self.history.push(ChatMessage::new(Role::User, content.clone()));
        if self.s2s_ready() {
            let input = match source {
                TurnSource::Speech => S2sInput::Respond { said: text },
                TurnSource::Dtmf => S2sInput::Typed(content),
            };
            self.s2s_start(turn, input);
        } else {
            self.start_worker(turn, Job::Reply { messages: self.history.clone(), query: text }, true);
        }
    }

    fn interrupt(&mut self, turn: TurnId, heard_ms: u64) {
        if let Some(worker) = self.workers.remove(&turn) {
            worker.cancel.cancel();
        }
        let spoken = self.egress.interrupt(turn);
        // Transports drop what they still buffer.
        self.frames.clear();
        self.events.push_back(SessionEvent::Clear);
        metrics().interruptions.inc();
        let heard_ms = spoken.as_ref().map_or(heard_ms, |s| s.played_ms);
        self.s2s_interrupted(turn, heard_ms);
        self.log(CallEventKind::Interrupted { turn: turn.0, heard_ms });
        if let Some(spoken) = spoken {
            self.agent_said(spoken);
        }
        if matches!(self.after_turn, Some((t, _)) if t == turn) {
            // The caller spoke over the goodbye: carry on the conversation.
            self.after_turn = None;
        }
        self.pacing = false;
    }

    /// Puts what the caller heard of an agent turn into the transcript and history.
    fn agent_said(&mut self, spoken: Spoken) {
        if let Some(pending) = self.pending_latency.remove(&spoken.turn) {
            observe(&pending.latency);
            self.latencies.push(pending.latency);
        }
        if spoken.text.is_empty() {
            return;
        }
        let at_ms = self.ms_since_start(self.now).saturating_sub(spoken.played_ms);
        self.transcript.push(TranscriptLine {
            turn: spoken.turn.0,
            speaker: Speaker::Agent,
            text: spoken.text.clone(),
            at_ms,
            interrupted: !spoken.complete,
        });
        self.history.push(ChatMessage::new(Role::Assistant, spoken.text));
    }

    fn send_frame(&mut self) {
        let mut frame = [0i16; FRAME_SAMPLES];
        match self.egress.poll_frame(&mut frame) {
            Some(_) => self.send(frame),
            None => self.pacing = false,
        }
        self.drain_egress_events();
    }

    /// A frame for the caller: out now, and kept for the echo canceller
    /// and the recording.
    fn send(&mut self, frame: Frame) {
        self.frames.push_back(frame);
        if self.echo.is_some() {
            if self.sent.len() == MAX_UNPAIRED_SENT {
                // The caller's side stalled: keep the latest.
                self.sent.pop_front();
            }
            self.sent.push_back(frame);
        }
        if self.recorder.is_some() {
            if self.unrecorded.len() == 50 {
                // The caller's side stalled: record the agent alone.
                if let Some(agent) = self.unrecorded.pop_front() {
                    self.record(&[0; FRAME_SAMPLES], &agent);
                }
            }
            self.unrecorded.push_back(frame);
        }
    }

    fn drain_egress_events(&mut self) {
        while let Some(event) = self.egress.poll_event() {
            match event {
                EgressEvent::Playout(playout) => {
                    if let PlayoutEvent::Started { turn } = playout
                        && let Some(p) = self.pending_latency.get_mut(&turn)
                    {
                        p.latency.first_frame_ms =
                            Some(self.now.saturating_duration_since(p.caller_stopped).as_millis() as u64);
                    }
                    self.turns.handle_playout(self.now, playout);
                }
                EgressEvent::Finished(spoken) => {
                    let turn = spoken.turn;
                    let said_nothing = spoken.text.is_empty();
                    self.agent_said(spoken);
                    if let Some((t, action)) = self.after_turn.take_if(|(t, _)| *t == turn) {
                        debug_assert_eq!(t, turn);
                        match action {
                            AfterTurn::EndCall => {
                                let goodbye =
                                    said_nothing.then(|| self.config().turn.goodbye.clone()).flatten();
                                self.turns.handle_end_call(self.now, goodbye);
                            }
                            AfterTurn::Transfer(target, summary)
                                if self.config().transfer_mode == TransferMode::Warm =>
                            {
                                self.begin_warm_transfer(target, summary);
                            }
                            AfterTurn::Transfer(target, _) => {
                                self.events.push_back(SessionEvent::Transfer { target: target.clone() });
                                self.end = Some(EndReason::Transferred { target });
                            }
                        }
                    }
                }
            }
        }
    }

    fn handle_worker(&mut self, event: WorkerEvent) {
        if self.announcement_event(&event) {
            return;
        }
        let live = |turn: &TurnId, workers: &HashMap<TurnId, Worker>| workers.contains_key(turn);
        match event {
            WorkerEvent::Sentence { turn, text } if live(&turn, &self.workers) => {
                self.transcript_event(Speaker::Agent, text.clone(), true);
                self.egress.begin_sentence(turn, text);
            }
            WorkerEvent::Audio { turn, samples } if live(&turn, &self.workers) => {
                self.egress.push_audio(turn, &samples);
            }
            WorkerEvent::FirstToken { turn, at } => {
                if let Some(p) = self.pending_latency.get_mut(&turn) {
                    p.latency.llm_first_token_ms =
                        Some(at.into_std().saturating_duration_since(p.caller_stopped).as_millis() as u64);
                }
            }
            WorkerEvent::FirstAudio { turn, at } => {
                if let Some(p) = self.pending_latency.get_mut(&turn) {
                    p.latency.tts_first_audio_ms =
                        Some(at.into_std().saturating_duration_since(p.caller_stopped).as_millis() as u64);
                }
            }
            WorkerEvent::ToolMessages { turn, messages } if live(&turn, &self.workers) => {
                self.history.extend(messages);
            }
            WorkerEvent::Retrieved { turn, passages } => {
                if let Some(i) = self.workers.get(&turn).and_then(|w| w.question)
                    && let Some(question) = self.history.get_mut(i)
                {
                    question.knowledge = passages;
                }
            }
            WorkerEvent::ToolRan { name, ok, elapsed } => {
                self.log(CallEventKind::ToolCalled { name, ok, ms: elapsed.as_millis() as u64 });
            }
            WorkerEvent::Grounded { turn } => self.log(CallEventKind::GroundingFallback { turn: turn.0 }),
            WorkerEvent::EndCall { turn } if live(&turn, &self.workers) => {
                self.after_turn = Some((turn, AfterTurn::EndCall));
            }
            WorkerEvent::Transfer { turn, target, summary } if live(&turn, &self.workers) => {
                self.log(CallEventKind::Transfer { target: target.clone() });
                self.after_turn = Some((turn, AfterTurn::Transfer(target, summary)));
            }
            WorkerEvent::Dtmf { turn, digits } if live(&turn, &self.workers) => {
                self.log(CallEventKind::DtmfSent { digits: digits.clone() });
                self.events.push_back(SessionEvent::Dtmf { digits });
            }
            WorkerEvent::Retrying { stage, provider, attempt, backoff, error } => {
                self.retrying(stage, provider, attempt, backoff, error);
            }
            WorkerEvent::Failed { turn, stage, provider, error, spoke } if live(&turn, &self.workers) => {
                if let Some(w) = self.workers.get_mut(&turn) {
                    w.failed = true;
                }
                self.failed(stage, provider, error, !spoke);
            }
            WorkerEvent::Closed { turn } => {
                if let Some(worker) = self.workers.remove(&turn) {
                    self.egress.close(turn);
                    self.egress.settle();
                    self.drain_egress_events();
                    if worker.is_reply && !worker.failed {
                        self.failures = 0;
                    }
                }
            }
            // Events of a turn that was interrupted meanwhile.
            _ => {}
        }
    }

    fn retrying(&mut self, stage: Stage, provider: &str, attempt: u32, backoff: Duration, error: String) {
        tracing::warn!(?stage, provider, attempt, ?backoff, %error, "provider failed; retrying");
        metrics().provider_retries.get_or_create(&provider_label(stage, provider)).inc();
        self.log(CallEventKind::ProviderRetry {
            stage,
            provider: provider.to_owned(),
            attempt,
            backoff_ms: backoff.as_millis() as u64,
            error,
        });
    }

    /// A provider failed for good: say the fallback, or end the call after
    /// too many failures in a row.
    fn failed(&mut self, stage: Stage, provider: &str, error: String, say_fallback: bool) {
        tracing::warn!(?stage, provider, %error, "provider failed");
        metrics().provider_failures.get_or_create(&provider_label(stage, provider)).inc();
        self.log(CallEventKind::ProviderFailed { stage, provider: provider.to_owned(), error });
        if self.failing {
            // Even the goodbye failed: hang up now.
            self.end = Some(EndReason::ProviderFailure);
            return;
        }
        self.failures += 1;
        if self.failures >= self.config().max_consecutive_failures {
            self.failing = true;
            let goodbye = self.config().failure_goodbye.clone();
            self.turns.handle_end_call(self.now, Some(goodbye));
        } else if say_fallback {
            let line = self.config().fallback_line.clone();
            self.turns.say(self.now, line, LineKind::Fallback);
        }
    }

    fn handle_stt(&mut self, event: SttLaneEvent) {
        match event {
            // Who answered is not known yet (or it is a machine): no turn is taken.
            SttLaneEvent::Event(SttEvent::Interim { text }) if self.answering.is_some() || self.machine => {
                self.answering_words(&text, false);
                self.transcript_event(Speaker::Caller, text, false);
            }
            SttLaneEvent::Event(SttEvent::Final { text, .. }) if self.answering.is_some() || self.machine => {
                self.answering_words(&text, true);
                self.transcript_event(Speaker::Caller, text, true);
            }
            SttLaneEvent::Event(SttEvent::Interim { text }) => {
                self.turns.handle_transcript(self.now, &text, false);
                self.transcript_event(Speaker::Caller, text, false);
            }
            SttLaneEvent::Event(SttEvent::Final { text, .. }) => {
                self.final_at = Some(self.now);
                self.turns.handle_transcript(self.now, &text, true);
                self.transcript_event(Speaker::Caller, text, true);
            }
            // The session's own VAD and endpointer decide turns.
            SttLaneEvent::Event(SttEvent::SpeechStarted | SttEvent::UtteranceEnd) => {}
            SttLaneEvent::Retrying { attempt, backoff, error } => {
                self.retrying(Stage::Stt, error.provider(), attempt, backoff, error.to_string());
            }
            SttLaneEvent::Failed(error) => self.failed(Stage::Stt, error.provider(), error.to_string(), true),
        }
    }

    /// Urgent input; none counts once the session has ended.
    fn handle_control(&mut self, control: Control) {
        if self.end.is_some() {
            return;
        }
        match control {
            Control::Dtmf(key) => self.turns.handle_dtmf(self.now, key),
            Control::Hangup => self.end = Some(EndReason::CallerHungUp),
            Control::NoMedia => self.end = Some(EndReason::NoMedia),
        }
    }

    /// A live transcript for the transport; dropped, not queued without
    /// bound, when the transport lags.
    fn transcript_event(&mut self, speaker: Speaker, text: String, is_final: bool) {
        if self.events.len() < MAX_QUEUED_EVENTS {
            self.events.push_back(SessionEvent::Transcript { speaker, text, is_final });
        }
    }

    fn handle_frame(&mut self, frame: &Frame) {
        if self.recorder.is_some() {
            let agent = self.unrecorded.pop_front().unwrap_or([0; FRAME_SAMPLES]);
            self.record(frame, &agent);
        }
        // What the caller said, without the agent's own voice come back.
        let cleaned;
        let (frame, caller_heard) = match self.echo.as_mut() {
            Some(echo) => {
                let sent = self.sent.pop_front().unwrap_or([0; FRAME_SAMPLES]);
                let (out, heard) = echo.process(frame, &sent);
                cleaned = *out;
                (&cleaned, heard)
            }
            None => (frame, true),
        };
        // Noise suppression, after the echo canceller (whose filter needs
        // the echo as the line carried it), for voice activity detection
        // only: the recogniser and the turn model hear the caller as they
        // came (Whisper's word error rose with RNNoise on every background
        // measured; BENCHMARKS.md).
        let denoised;
        let listened = match self.denoise.as_mut() {
            Some(denoise) => {
                denoised = *denoise.process(frame);
                &denoised
            }
            None => frame,
        };
        // A VAD error on one frame counts as silence; so does a frame that
        // holds no more than the agent's echo.
        let probability = self.vad.process(listened).unwrap_or(0.0);
        let probability = if caller_heard { probability } else { 0.0 };
        self.media_ms += 20;
        if self.answering.is_some() {
            self.answering_frame(frame, probability);
        }
        if self.ctx.config.turn_detector.is_some() {
            if self.caller_audio.len() + frame.len() > smart_turn::WINDOW_SAMPLES {
                self.caller_audio.drain(..frame.len());
            }
            self.caller_audio.extend(frame.iter());
        }
        self.stt_chunk.extend_from_slice(frame);
        if self.stt_chunk.len() >= STT_CHUNK_SAMPLES {
            self.send_stt_audio();
        }
        // Until who answered is known, speech takes no turn (the recogniser still hears it).
        let turns = self.answering.is_none();
        match self.endpointer.handle_frame(self.media_ms, probability) {
            Some(EndpointEvent::SpeechStart { .. }) => {
                self.send_stt_audio();
                let _ = self.stt_tx.try_send(SttInput::StartOfSpeech);
                // The voice began when the endpointer's minimum speech began.
                let onset = Duration::from_millis(u64::from(self.config().endpoint.min_speech_ms));
                if turns {
                    self.turns.handle_speech_start(self.before(onset));
                }
            }
            Some(EndpointEvent::SpeechPause { at_ms }) if turns => {
                let ago = Duration::from_millis(self.media_ms.saturating_sub(at_ms));
                self.turns.handle_speech_pause(self.before(ago));
            }
            Some(EndpointEvent::SpeechResume { .. }) => {
                let _ = self.stt_tx.try_send(SttInput::Resume);
                if turns {
                    self.turns.handle_speech_resume(self.now);
                }
            }
            Some(EndpointEvent::TranscribeEarly { .. }) => {
                self.send_stt_audio();
                let _ = self.stt_tx.try_send(SttInput::Pause);
            }
            Some(end @ EndpointEvent::SpeechEnd { .. }) => self.speech_ended(end),
            Some(EndpointEvent::TurnCheck { pause }) => self.check_turn(pause),
            Some(EndpointEvent::SpeechPause { .. }) | None => {}
        }
    }

    fn speech_ended(&mut self, end: EndpointEvent) {
        let EndpointEvent::SpeechEnd { silence_ms, .. } = end else { return };
        self.send_stt_audio();
        let _ = self.stt_tx.try_send(SttInput::EndOfSpeech);
        self.caller_stopped = Some(self.before(Duration::from_millis(silence_ms)));
        self.final_at = None;
        if self.answering.is_none() {
            self.turns.handle_speech_end(self.now);
        }
    }

    /// Asks the learned end of turn about the pause that began at `pause`,
    /// off the media tick; the answer comes back through `verdict_rx`.
    fn check_turn(&mut self, pause: u64) {
        let Some(model) = self.ctx.config.turn_detector.clone() else { return };
        let audio: Vec<i16> = self.caller_audio.iter().copied().collect();
        let tx = self.verdict_tx.clone();
        tokio::task::spawn_blocking(move || {
            // A failed inference is no verdict: silence decides, as without the model.
            if let Some(p) = model.complete(&audio) {
                let _ = tx.try_send((pause, p));
            }
        });
    }

    fn handle_verdict(&mut self, pause: u64, probability: f32) {
        let complete = probability > smart_turn::COMPLETE;
        self.log(CallEventKind::TurnCheck { complete, probability });
        // The answer is heard at the end of the last frame.
        if let Some(end) = self.endpointer.handle_turn_verdict(pause, complete, self.media_ms + 20) {
            self.speech_ended(end);
        }
    }

    /// Sends the caller's audio so far to the recogniser: every 100 ms, and
    /// at once when the endpointer marks speech, so marks never wait.
    fn send_stt_audio(&mut self) {
        if self.stt_chunk.is_empty() {
            return;
        }
        let chunk = std::mem::replace(&mut self.stt_chunk, Vec::with_capacity(STT_CHUNK_SAMPLES));
        self.s2s_audio(&chunk);
        let ms = chunk.len() as u64 * 1000 / 16_000;
        // A recogniser that falls behind loses audio, never the call.
        if self.stt_tx.try_send(SttInput::Audio(chunk)).is_ok() {
            self.ctx.usage.add_stt_ms(ms);
        }
    }

    fn record(&mut self, caller: &Frame, agent: &Frame) {
        let Some(recorder) = self.recorder.as_mut() else { return };
        match recorder.write_stereo(caller, agent) {
            Ok(()) => self.recorded_frames += 1,
            Err(e) => {
                // A full disk stops the recording, never the call.
                self.recorder = None;
                self.log(CallEventKind::RecordingFailed { error: e.to_string() });
            }
        }
    }

    fn finish(&mut self) -> CallLog {
        self.call.cancel();
        let end = self.end.take().unwrap_or(EndReason::CallerHungUp);
        // Hung up mid-line: the transcript keeps what the caller heard of it.
        if let Some(spoken) = self.egress.cut_off() {
            self.agent_said(spoken);
        }
        if let Some(recorder) = self.recorder.take()
            && let Err(e) = recorder.finish()
        {
            self.log(CallEventKind::RecordingFailed { error: e.to_string() });
        }
        self.events.push_back(SessionEvent::Ended(end.clone()));
        for (_, pending) in self.pending_latency.drain() {
            self.latencies.push(pending.latency);
        }
        self.latencies.sort_by_key(|l| l.turn);
        CallLog {
            transcript: std::mem::take(&mut self.transcript),
            events: std::mem::take(&mut self.log_events),
            latencies: std::mem::take(&mut self.latencies),
            end,
            duration_ms: self.now.saturating_duration_since(self.started).as_millis() as u64,
            recorded_ms: self.recorded_frames * 20,
            dropped_frames: self.dropped_frames,
            usage: self.ctx.usage.total(),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // However the session ends, its recogniser and turn workers stop with it.
        self.call.cancel();
    }
}

fn provider_label(stage: Stage, provider: &str) -> ProviderLabel {
    let stage = match stage {
        Stage::Stt => "stt",
        Stage::Llm => "llm",
        Stage::Tts => "tts",
        Stage::Tool => "tool",
    };
    ProviderLabel { stage, provider: provider.to_owned() }
}

fn observe(latency: &TurnLatency) {
    let stages = [
        ("final_transcript", latency.final_transcript_ms),
        ("committed", latency.committed_ms),
        ("llm_first_token", latency.llm_first_token_ms),
        ("tts_first_audio", latency.tts_first_audio_ms),
        ("first_frame", latency.first_frame_ms),
    ];
    for (stage, ms) in stages {
        if let Some(ms) = ms {
            metrics().turn_latency.get_or_create(&StageLabel { stage }).observe(ms as f64 / 1000.0);
        }
    }
}
