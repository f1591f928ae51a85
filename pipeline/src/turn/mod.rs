//! The turn machine: who speaks, when the caller's turn is complete, and
//! when the caller has interrupted the agent.
//!
//! Pure and sans-IO: every input carries the time, outputs are drained with
//! [`TurnMachine::poll_output`], and [`TurnMachine::poll_timeout`] says when
//! to call [`TurnMachine::handle_timeout`]. The session driver feeds it VAD
//! events, transcripts, the agent's playout progress and DTMF, and carries out
//! what it asks: speak a line, answer a committed caller turn, pause, resume
//! or interrupt the agent, hang up.
//!
//! ```text
//!            greeting
//!   Idle ──────────────► AgentSpeaking ◄──────────── AwaitingReply
//!                          │   ▲  (caller talks:        ▲
//!             playout done │   │   pause; words or      │ commit turn
//!                          ▼   │   min speech: interrupt)│
//!   Listening ──speech──► CallerSpeaking ──end──► AwaitingEndpoint
//!     │  ▲ silence: reprompt, then goodbye + hang up
//! ```

mod config;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub use config::TurnConfig;
use voxgate_codecs::dtmf::DtmfKey;

/// How long a goodbye may take to play before the call is hung up anyway.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(20);

/// One exchange of the conversation: a caller's turn and the agent's reply
/// to it share an id; lines the agent says on its own (greeting, reprompt,
/// fallback, goodbye) get their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TurnId(pub u64);

impl std::fmt::Display for TurnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "turn-{}", self.0)
    }
}

/// Why the agent says a line of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// The first words of the call.
    Greeting,
    /// The caller has been silent: "Are you still there?"
    Reprompt,
    /// Something failed: "Sorry, I didn't catch that..."
    Fallback,
    /// Said while a slow tool runs.
    Filler,
    /// The last words before hanging up.
    Goodbye,
    /// A message left on an answering machine, then the call ends.
    Voicemail,
    /// A warm transfer did not reach the human: the caller is back with the agent.
    TransferFailed,
}

/// Why the call ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangupReason {
    /// The caller said nothing for too long.
    MaxSilence,
    /// The call reached its maximum duration.
    MaxDuration,
    /// The agent ended the call (its end-call tool, or repeated failures).
    AgentEnded,
    /// The agent left its message on an answering machine.
    MessageLeft,
}

/// How a caller's turn was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnSource {
    /// Speech, transcribed.
    Speech,
    /// Keypad digits.
    Dtmf,
}

/// What the machine asks the session to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnOutput {
    /// Synthesise and play `text` as turn `turn`.
    Speak { turn: TurnId, text: String, kind: LineKind },
    /// The caller's turn is complete: answer it (LLM, then TTS) as turn `turn`.
    CommitUserTurn { turn: TurnId, text: String, source: TurnSource },
    /// The caller may be interrupting: stop sending the agent's audio now,
    /// but keep it, in case this was a cough.
    PauseAgent { turn: TurnId },
    /// It was not an interruption: carry on where the agent paused.
    ResumeAgent { turn: TurnId },
    /// Barge-in: cancel turn `turn`'s LLM and TTS work, flush its audio. The
    /// caller heard `heard_ms` of it; the transcript keeps only that.
    Interrupt { turn: TurnId, heard_ms: u64 },
    /// End the call (after any goodbye has played).
    Hangup { reason: HangupReason },
}

/// Progress of the agent's audio towards the caller, reported by egress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayoutEvent {
    /// The first frame of `turn` went out.
    Started { turn: TurnId },
    /// `played_ms` of `turn` have gone out so far.
    Progress { turn: TurnId, played_ms: u64 },
    /// All of `turn` has gone out.
    Finished { turn: TurnId },
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    /// Before [`TurnMachine::handle_start`].
    Idle,
    /// Nobody speaks; `since` starts the silence clock.
    Listening { since: Instant },
    /// The caller speaks.
    CallerSpeaking,
    /// The caller stopped at `ended`; waiting for the transcript to settle.
    AwaitingEndpoint { ended: Instant },
    /// Turn committed (or a line asked for); its audio has not started.
    AwaitingReply { turn: TurnId },
    /// The agent's audio is going out.
    AgentSpeaking { turn: TurnId, pause: Option<Pause> },
    /// The caller is on hold (a warm transfer is reaching a human): no
    /// turns, no reprompts, no silence limit; only the call's length counts.
    Holding,
    /// Goodbye is playing; hang up when it finishes, or at `deadline` if
    /// its playout never reports back.
    Closing { turn: TurnId, reason: HangupReason, deadline: Instant },
    /// Hung up.
    Ended,
}

/// The agent was paused because the caller made a sound.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Pause {
    speech_started: Instant,
    /// Set when the caller's sound ended.
    speech_ended: Option<Instant>,
    /// The sound has lasted the minimum interruption speech; only words are missing.
    long_enough: bool,
}

/// The turn machine. See the module documentation.
#[derive(Debug)]
pub struct TurnMachine {
    config: TurnConfig,
    state: State,
    outputs: VecDeque<TurnOutput>,
    next_turn: u64,
    started_at: Option<Instant>,
    /// Final transcript text of the caller's turn so far.
    finals: String,
    /// The latest interim transcript not yet made final.
    interim: String,
    /// Reprompts said in the current silence.
    reprompts: u32,
    /// Start of the current silence, for the hang-up timer.
    silent_since: Option<Instant>,
    dtmf: String,
    last_dtmf: Option<Instant>,
    /// How much of the agent's current turn has been played.
    played_ms: u64,
    /// Ends of speech whose final transcript has not come yet
    /// (with [`TurnConfig::final_per_speech_end`]).
    unanswered_ends: u32,
}

impl TurnMachine {
    /// A machine that waits for [`TurnMachine::handle_start`].
    #[must_use]
    pub fn new(config: TurnConfig) -> Self {
        Self {
            config,
            state: State::Idle,
            outputs: VecDeque::new(),
            next_turn: 0,
            started_at: None,
            finals: String::new(),
            interim: String::new(),
            reprompts: 0,
            silent_since: None,
            dtmf: String::new(),
            last_dtmf: None,
            played_ms: 0,
            unanswered_ends: 0,
        }
    }

    /// The configuration in force.
    #[must_use]
    pub fn config(&self) -> &TurnConfig {
        &self.config
    }

    /// True once the machine has asked to hang up.
    #[must_use]
    pub fn is_ended(&self) -> bool {
        self.state == State::Ended
    }

    /// The agent turn whose audio is playing or about to, if any.
    #[must_use]
    pub fn agent_turn(&self) -> Option<TurnId> {
        match self.state {
            State::AwaitingReply { turn }
            | State::AgentSpeaking { turn, .. }
            | State::Closing { turn, .. } => Some(turn),
            _ => None,
        }
    }

    fn new_turn(&mut self) -> TurnId {
        self.next_turn += 1;
        TurnId(self.next_turn)
    }

    fn listen(&mut self, now: Instant) {
        self.state = State::Listening { since: now };
        self.silent_since.get_or_insert(now);
    }

    fn caller_active(&mut self) {
        self.silent_since = None;
        self.reprompts = 0;
    }

    /// The call is connected: greet, or listen.
    pub fn handle_start(&mut self, now: Instant) {
        if self.state != State::Idle {
            return;
        }
        self.started_at = Some(now);
        match self.config.greeting.clone() {
            Some(text) if !text.is_empty() => self.say(now, text, LineKind::Greeting),
            _ => self.listen(now),
        }
    }

    /// Asks the agent to say a line of its own now (a fallback, a filler).
    /// It is spoken after the current line, if the agent is speaking.
    pub fn say(&mut self, now: Instant, text: String, kind: LineKind) {
        // On hold the caller hears the hold music, and nothing else.
        if matches!(self.state, State::Ended | State::Closing { .. } | State::Holding) {
            return;
        }
        if kind == LineKind::Goodbye {
            self.close(now, text, LineKind::Goodbye, HangupReason::AgentEnded);
            return;
        }
        let turn = self.new_turn();
        self.outputs.push_back(TurnOutput::Speak { turn, text, kind });
        if !matches!(self.state, State::AgentSpeaking { .. }) {
            self.state = State::AwaitingReply { turn };
        }
    }

    /// The agent wants the call over (its end-call tool): say `goodbye`, then hang up.
    pub fn handle_end_call(&mut self, now: Instant, goodbye: Option<String>) {
        match goodbye {
            Some(text) if !text.is_empty() => {
                self.close(now, text, LineKind::Goodbye, HangupReason::AgentEnded);
            }
            _ => self.hang_up(HangupReason::AgentEnded),
        }
    }

    /// The caller goes on hold (a warm transfer): what they say takes no
    /// turn until [`TurnMachine::end_hold`]. Not once the call is closing.
    pub fn hold(&mut self) {
        if matches!(self.state, State::Ended | State::Closing { .. }) {
            return;
        }
        if let State::AgentSpeaking { turn, .. } | State::AwaitingReply { turn } = self.state {
            self.outputs.push_back(TurnOutput::Interrupt { turn, heard_ms: self.played_ms });
        }
        self.finals.clear();
        self.interim.clear();
        self.dtmf.clear();
        self.last_dtmf = None;
        self.silent_since = None;
        self.reprompts = 0;
        self.state = State::Holding;
    }

    /// True while the caller is on hold.
    #[must_use]
    pub fn is_holding(&self) -> bool {
        self.state == State::Holding
    }

    /// The hold is over and the caller is back with the agent: listen.
    pub fn end_hold(&mut self, now: Instant) {
        if self.state == State::Holding {
            self.listen(now);
        }
    }

    /// An answering machine is recording: say `message`, then hang up.
    pub fn leave_message(&mut self, now: Instant, message: String) {
        if !matches!(self.state, State::Ended | State::Closing { .. }) {
            self.close(now, message, LineKind::Voicemail, HangupReason::MessageLeft);
        }
    }

    fn close(&mut self, now: Instant, text: String, kind: LineKind, reason: HangupReason) {
        if let State::AgentSpeaking { turn, .. } | State::AwaitingReply { turn } = self.state {
            self.outputs.push_back(TurnOutput::Interrupt { turn, heard_ms: self.played_ms });
        }
        let turn = self.new_turn();
        self.outputs.push_back(TurnOutput::Speak { turn, text, kind });
        self.state = State::Closing { turn, reason, deadline: now + GOODBYE_TIMEOUT };
        self.played_ms = 0;
    }

    fn hang_up(&mut self, reason: HangupReason) {
        if self.state != State::Ended {
            self.outputs.push_back(TurnOutput::Hangup { reason });
            self.state = State::Ended;
        }
    }

    /// The caller started speaking (the endpointer's speech start).
    pub fn handle_speech_start(&mut self, now: Instant) {
        match self.state {
            State::Listening { .. } | State::AwaitingEndpoint { .. } => {
                self.caller_active();
                self.state = State::CallerSpeaking;
            }
            State::AwaitingReply { turn } if self.config.allow_interruptions => {
                // The caller goes on before the answer started: drop it, listen.
                self.caller_active();
                self.outputs.push_back(TurnOutput::Interrupt { turn, heard_ms: 0 });
                self.state = State::CallerSpeaking;
            }
            State::AgentSpeaking { turn, pause: None } if self.config.allow_interruptions => {
                self.caller_active();
                self.interim.clear();
                self.outputs.push_back(TurnOutput::PauseAgent { turn });
                self.state = State::AgentSpeaking {
                    turn,
                    pause: Some(Pause { speech_started: now, speech_ended: None, long_enough: false }),
                };
                self.check_interruption(now);
            }
            State::AgentSpeaking { turn, pause: Some(p) } => {
                // Speech again within the false-interruption window.
                let pause = Some(Pause { speech_ended: None, ..p });
                self.state = State::AgentSpeaking { turn, pause };
                self.check_interruption(now);
            }
            _ => {}
        }
    }

    /// The caller stopped speaking (the endpointer's speech end).
    pub fn handle_speech_end(&mut self, now: Instant) {
        if self.config.final_per_speech_end {
            self.unanswered_ends += 1;
        }
        match self.state {
            State::CallerSpeaking => {
                self.state = State::AwaitingEndpoint { ended: now };
                self.try_commit(now);
            }
            State::AgentSpeaking { turn, pause: Some(p) } => {
                // A reported pause already knows when the voice stopped.
                let pause = Some(Pause { speech_ended: p.speech_ended.or(Some(now)), ..p });
                self.state = State::AgentSpeaking { turn, pause };
                self.check_interruption(now);
            }
            _ => {}
        }
    }

    /// Within the caller's speech, their voice stopped at `at` (the
    /// endpointer's quick pause, long before its end of speech). Only a
    /// paused agent cares: it tells a cough from an interruption.
    pub fn handle_speech_pause(&mut self, at: Instant) {
        if let State::AgentSpeaking { turn, pause: Some(p) } = self.state
            && p.speech_ended.is_none()
        {
            self.state = State::AgentSpeaking { turn, pause: Some(Pause { speech_ended: Some(at), ..p }) };
            self.check_interruption(at);
        }
    }

    /// After a pause, the caller's voice is back.
    pub fn handle_speech_resume(&mut self, now: Instant) {
        if let State::AgentSpeaking { turn, pause: Some(p) } = self.state {
            self.state = State::AgentSpeaking { turn, pause: Some(Pause { speech_ended: None, ..p }) };
            self.check_interruption(now);
        }
    }

    /// A transcript of the caller's speech: interim (may change) or final.
    pub fn handle_transcript(&mut self, now: Instant, text: &str, is_final: bool) {
        if is_final {
            self.unanswered_ends = self.unanswered_ends.saturating_sub(1);
        }
        let text = text.trim();
        let paused = matches!(self.state, State::AgentSpeaking { pause: Some(_), .. });
        let taking = matches!(
            self.state,
            State::CallerSpeaking | State::AwaitingEndpoint { .. } | State::Listening { .. }
        );
        if !(paused || taking) {
            // Talking over an agent that cannot be interrupted: not a turn.
            return;
        }
        if is_final {
            if !text.is_empty() {
                if !self.finals.is_empty() {
                    self.finals.push(' ');
                }
                self.finals.push_str(text);
            }
            self.interim.clear();
        } else {
            text.clone_into(&mut self.interim);
        }
        if !text.is_empty() {
            self.caller_active();
        }
        match self.state {
            // Words the VAD did not hear (a cloud STT is faster, or a
            // recogniser caught up late): wait for the endpoint from here;
            // speech the VAD does hear moves on to CallerSpeaking.
            State::Listening { .. } if !text.is_empty() => {
                self.state = State::AwaitingEndpoint { ended: now };
                self.try_commit(now);
            }
            State::AwaitingEndpoint { .. } => self.try_commit(now),
            State::AgentSpeaking { pause: Some(_), .. } => self.check_interruption(now),
            _ => {}
        }
    }

    /// A key on the caller's keypad.
    pub fn handle_dtmf(&mut self, now: Instant, key: DtmfKey) {
        if matches!(self.state, State::Ended | State::Closing { .. } | State::Idle | State::Holding) {
            return;
        }
        self.caller_active();
        if let State::AgentSpeaking { turn, .. } | State::AwaitingReply { turn } = self.state {
            if !self.config.allow_interruptions {
                return;
            }
            self.outputs.push_back(TurnOutput::Interrupt { turn, heard_ms: self.played_ms });
            self.listen(now);
        }
        if key == DtmfKey::Pound {
            self.commit_dtmf();
        } else {
            self.dtmf.push(key.as_char());
            self.last_dtmf = Some(now);
        }
    }

    fn commit_dtmf(&mut self) {
        self.last_dtmf = None;
        if self.dtmf.is_empty() {
            return;
        }
        let turn = self.new_turn();
        let text = std::mem::take(&mut self.dtmf);
        self.outputs.push_back(TurnOutput::CommitUserTurn { turn, text, source: TurnSource::Dtmf });
        self.state = State::AwaitingReply { turn };
    }

    /// Progress of the agent's audio.
    pub fn handle_playout(&mut self, now: Instant, event: PlayoutEvent) {
        match (event, self.state.clone()) {
            (PlayoutEvent::Started { turn }, State::AwaitingReply { turn: t }) if t == turn => {
                self.played_ms = 0;
                self.state = State::AgentSpeaking { turn, pause: None };
            }
            (PlayoutEvent::Started { turn }, State::Listening { .. }) => {
                // A line asked for while another played starts now.
                self.played_ms = 0;
                self.state = State::AgentSpeaking { turn, pause: None };
            }
            (PlayoutEvent::Started { turn }, State::AgentSpeaking { turn: t, pause }) if turn > t => {
                self.played_ms = 0;
                self.state = State::AgentSpeaking { turn, pause };
            }
            (PlayoutEvent::Progress { turn, played_ms }, State::AgentSpeaking { turn: t, .. })
                if t == turn =>
            {
                self.played_ms = played_ms;
            }
            (PlayoutEvent::Progress { turn, played_ms }, State::Closing { turn: t, reason, .. })
                if t == turn =>
            {
                // Last words that are still playing (a long voicemail message) are not cut off.
                self.played_ms = played_ms;
                self.state = State::Closing { turn, reason, deadline: now + GOODBYE_TIMEOUT };
            }
            (PlayoutEvent::Finished { turn }, State::AgentSpeaking { turn: t, .. }) if t == turn => {
                // The silence clock starts now, unless the caller was already
                // silent before this line (a reprompt): then it runs on.
                self.listen(now);
            }
            (PlayoutEvent::Finished { turn }, State::AwaitingReply { turn: t }) if t == turn => {
                // Nothing to say after all (an empty reply).
                self.listen(now);
            }
            (PlayoutEvent::Finished { turn }, State::Closing { turn: t, reason, .. }) if t == turn => {
                self.hang_up(reason);
            }
            _ => {}
        }
    }

    /// Commits the caller's turn once the transcript has settled.
    fn try_commit(&mut self, now: Instant) {
        let State::AwaitingEndpoint { ended } = self.state else {
            return;
        };
        let waited = now.saturating_duration_since(ended);
        let settled = self.settled();
        let min = Duration::from_millis(u64::from(self.config.endpointing_min_delay_ms));
        let max = Duration::from_millis(u64::from(self.config.endpointing_max_delay_ms));
        if (settled && waited >= min) || waited >= max {
            let mut text = std::mem::take(&mut self.finals);
            let interim = std::mem::take(&mut self.interim);
            if !interim.is_empty() {
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(&interim);
            }
            if text.is_empty() {
                // A sound with no words: not a turn.
                self.listen(now);
                return;
            }
            // A final still missing (the recogniser dropped one) is not waited for again.
            self.unanswered_ends = 0;
            let turn = self.new_turn();
            self.outputs.push_back(TurnOutput::CommitUserTurn { turn, text, source: TurnSource::Speech });
            self.state = State::AwaitingReply { turn };
        }
    }

    /// The caller's words are all transcribed: no interim left, some final
    /// text, and (where the recogniser answers each end of speech) the
    /// final of the last stretch of speech has come.
    fn settled(&self) -> bool {
        self.interim.is_empty() && !self.finals.is_empty() && self.unanswered_ends == 0
    }

    /// Decides whether a paused agent was really interrupted.
    fn check_interruption(&mut self, now: Instant) {
        let State::AgentSpeaking { turn, pause: Some(pause) } = self.state else {
            return;
        };
        let c = &self.config;
        let speech_ms =
            pause.speech_ended.unwrap_or(now).saturating_duration_since(pause.speech_started).as_millis()
                as u64;
        let words = word_count(&self.finals) + word_count(&self.interim);
        let long_enough = pause.long_enough || speech_ms >= u64::from(c.min_interruption_speech_ms);
        let heard = format!("{} {}", self.finals, self.interim);
        let backchannel = is_backchannel(&heard);
        if backchannel && pause.speech_ended.is_some() {
            // "Uh-huh", "okay": the caller is listening; the agent goes on at once.
            self.finals.clear();
            self.interim.clear();
            self.outputs.push_back(TurnOutput::ResumeAgent { turn });
            self.state = State::AgentSpeaking { turn, pause: None };
            return;
        }
        if long_enough && words >= c.min_interruption_words as usize && !backchannel {
            self.outputs.push_back(TurnOutput::Interrupt { turn, heard_ms: self.played_ms });
            self.state = match pause.speech_ended {
                Some(ended) => State::AwaitingEndpoint { ended },
                None => State::CallerSpeaking,
            };
            self.try_commit(now);
            return;
        }
        if let Some(ended) = pause.speech_ended {
            let window = Duration::from_millis(u64::from(c.false_interruption_timeout_ms));
            // A transcript still owed may hold words: wait for it, twice the window at most.
            let quiet = now.saturating_duration_since(ended);
            if quiet >= window && (self.unanswered_ends == 0 || quiet >= 2 * window) {
                // A cough, a "hm": the agent carries on.
                self.finals.clear();
                self.interim.clear();
                self.outputs.push_back(TurnOutput::ResumeAgent { turn });
                self.state = State::AgentSpeaking { turn, pause: None };
                return;
            }
        }
        let pause = Some(Pause { long_enough, ..pause });
        self.state = State::AgentSpeaking { turn, pause };
    }

    /// When the call reaches its maximum duration (not once it is closing).
    fn call_deadline(&self) -> Option<Instant> {
        if matches!(self.state, State::Closing { .. } | State::Ended) {
            return None;
        }
        let max = self.config.max_call_duration_ms?;
        Some(self.started_at? + Duration::from_millis(max))
    }

    /// When a silent caller is hung up on.
    fn silence_deadline(&self) -> Option<Instant> {
        let max = self.config.hangup_after_silence_ms?;
        Some(self.silent_since? + Duration::from_millis(u64::from(max)))
    }

    /// When the agent says its next reprompt, if it has one left.
    fn reprompt_deadline(&self, since: Instant) -> Option<Instant> {
        let after = self.config.reprompt_after_ms?;
        (self.reprompts < self.config.max_reprompts).then(|| since + Duration::from_millis(u64::from(after)))
    }

    fn dtmf_deadline(&self) -> Option<Instant> {
        Some(self.last_dtmf? + Duration::from_millis(u64::from(self.config.dtmf_timeout_ms)))
    }

    /// When [`TurnMachine::handle_timeout`] should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let c = &self.config;
        let ms = |v: u32| Duration::from_millis(u64::from(v));
        let state_deadline = match self.state {
            State::Ended => return None,
            State::Closing { deadline, .. } => Some(deadline),
            State::Listening { since } => {
                self.reprompt_deadline(since).into_iter().chain(self.silence_deadline()).min()
            }
            // Settled: commit at the minimum delay; else wait up to the maximum.
            State::AwaitingEndpoint { ended } if self.settled() => {
                Some(ended + ms(c.endpointing_min_delay_ms))
            }
            State::AwaitingEndpoint { ended } => Some(ended + ms(c.endpointing_max_delay_ms)),
            State::AgentSpeaking { pause: Some(p), .. } => match p.speech_ended {
                // Twice as long while a transcript that may hold words is owed.
                Some(ended) => {
                    let owed = if self.unanswered_ends > 0 { 2 } else { 1 };
                    Some(ended + ms(c.false_interruption_timeout_ms) * owed)
                }
                // Past the minimum speech, only words can decide: no timer.
                None if p.long_enough => None,
                None => Some(p.speech_started + ms(c.min_interruption_speech_ms)),
            },
            _ => None,
        };
        [state_deadline, self.call_deadline(), self.dtmf_deadline()].into_iter().flatten().min()
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let State::Closing { reason, deadline, .. } = self.state
            && now >= deadline
        {
            self.hang_up(reason);
            return;
        }
        if self.call_deadline().is_some_and(|t| now >= t) {
            self.goodbye(now, HangupReason::MaxDuration);
            return;
        }
        if self.dtmf_deadline().is_some_and(|t| now >= t) {
            self.commit_dtmf();
        }
        match self.state {
            State::Listening { since } => {
                if self.silence_deadline().is_some_and(|t| now >= t) {
                    self.goodbye(now, HangupReason::MaxSilence);
                } else if self.reprompt_deadline(since).is_some_and(|t| now >= t) {
                    self.reprompts += 1;
                    self.say(now, self.config.reprompt.clone(), LineKind::Reprompt);
                }
            }
            // The maximum delay: a settled transcript commits at the minimum
            // delay through `handle_transcript`; this covers the rest.
            State::AwaitingEndpoint { .. } => self.try_commit(now),
            State::AgentSpeaking { pause: Some(_), .. } => self.check_interruption(now),
            _ => {}
        }
    }

    /// Says the configured goodbye (if any), then hangs up.
    fn goodbye(&mut self, now: Instant, reason: HangupReason) {
        match self.config.goodbye.clone() {
            Some(text) if !text.is_empty() => self.close(now, text, LineKind::Goodbye, reason),
            _ => self.hang_up(reason),
        }
    }

    /// The next thing the session should do.
    pub fn poll_output(&mut self) -> Option<TurnOutput> {
        self.outputs.pop_front()
    }
}

/// What listeners say to show they follow, not to take the turn.
const BACKCHANNELS: &[&str] = &[
    "uh huh",
    "mm hmm",
    "mhm",
    "hmm",
    "mm",
    "okay",
    "ok",
    "right",
    "yeah",
    "yep",
    "sure",
    "alright",
    "all right",
    "i see",
    "got it",
];

/// Whether `text` (a transcript) is nothing but backchannels ("Uh-huh.",
/// "Okay, right."); empty text is not.
fn is_backchannel(text: &str) -> bool {
    let words: String = text
        .chars()
        .map(|c| if c.is_alphanumeric() { c.to_ascii_lowercase() } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let mut rest = words.as_str();
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let Some(next) = BACKCHANNELS.iter().find_map(|b| {
            rest.strip_prefix(b).filter(|r| r.is_empty() || r.starts_with(' ')).map(str::trim_start)
        }) else {
            return false;
        };
        rest = next;
    }
    true
}

fn word_count(text: &str) -> usize {
    text.split_whitespace().count()
}
