//! What an agent's turn-taking is like.

/// Turn-taking settings of one agent. Times in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnConfig {
    /// Said when the call connects; `None` listens first.
    pub greeting: Option<String>,
    /// Whether the caller can talk over the agent and stop it.
    pub allow_interruptions: bool,
    /// Caller speech this long stops the agent for good ...
    pub min_interruption_speech_ms: u32,
    /// ... once the transcript has at least this many words (0: any sound),
    /// and they are not only backchannels ("uh-huh", "okay, right").
    pub min_interruption_words: u32,
    /// After a sound too short to count, the agent resumes when the caller
    /// says nothing for this long.
    pub false_interruption_timeout_ms: u32,
    /// The caller's turn is committed at least this long after their speech
    /// ended (and once the transcript is final) ...
    pub endpointing_min_delay_ms: u32,
    /// ... and at most this long after, final transcript or not.
    pub endpointing_max_delay_ms: u32,
    /// Silence after which the agent asks `reprompt`; `None`: never.
    pub reprompt_after_ms: Option<u32>,
    /// The reprompt line.
    pub reprompt: String,
    /// Reprompts in one silence.
    pub max_reprompts: u32,
    /// Silence after which the agent says `goodbye` and hangs up; `None`: never.
    pub hangup_after_silence_ms: Option<u32>,
    /// The last line before a hang-up the agent decides on.
    pub goodbye: Option<String>,
    /// The call ends after this long; `None`: no limit.
    pub max_call_duration_ms: Option<u64>,
    /// Keypad digits are committed after this pause (or at `#`).
    pub dtmf_timeout_ms: u32,
    /// The recogniser answers every end of speech with one final transcript
    /// (Whisper transcribing each utterance does; a streaming recogniser
    /// may not). Then a turn waits for the final of its last stretch of
    /// speech, not only for any final: a caller who pauses briefly and goes
    /// on is not answered on the words before the pause alone.
    pub final_per_speech_end: bool,
}

impl Default for TurnConfig {
    fn default() -> Self {
        Self {
            greeting: Some("Hello! How can I help you today?".to_owned()),
            allow_interruptions: true,
            // Half a second: a cough or "mm-hm" plus the VAD's own hang-over
            // (WebRTC's adds 100-150 ms) stays under it; a real interruption
            // does not. The agent pauses at once either way.
            min_interruption_speech_ms: 500,
            // And a word that is not a backchannel ("uh-huh", "okay"): the
            // agent is paused the moment the caller makes a sound, so waiting
            // for the transcript costs nothing audible, and a long "okay,
            // right" or a noise no longer throws the agent's answer away.
            min_interruption_words: 1,
            false_interruption_timeout_ms: 1500,
            endpointing_min_delay_ms: 300,
            endpointing_max_delay_ms: 3000,
            reprompt_after_ms: Some(8000),
            reprompt: "Are you still there?".to_owned(),
            max_reprompts: 2,
            hangup_after_silence_ms: Some(30_000),
            goodbye: Some("Thank you for calling. Goodbye!".to_owned()),
            max_call_duration_ms: Some(30 * 60 * 1000),
            dtmf_timeout_ms: 2000,
            final_per_speech_end: false,
        }
    }
}
