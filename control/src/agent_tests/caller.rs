//! A test caller on the real call path: a websocket media stream to the
//! server, at 8 kHz in the Twilio Media Streams protocol (µ-law, as a phone
//! line) or at 16 kHz in the JSON protocol. It speaks each utterance in real
//! time, sends silence while it listens, and keeps what the agent said in
//! each turn with the wait from the end of its speech to the first audio.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use voxgate_codecs::g711::{ulaw_decode, ulaw_encode};

use super::voice::Utterance;

/// The agent's silence that ends its answer.
const ANSWER_END: Duration = Duration::from_millis(2000);
/// The longest a turn waits for an answer to begin.
const NO_ANSWER: Duration = Duration::from_secs(25);
/// The longest an answer may go on.
const LONGEST_ANSWER: Duration = Duration::from_secs(60);
/// The longest the server may take to close the stream after the caller hangs up.
const HANGUP_WITHIN: Duration = Duration::from_secs(30);

/// Where the server takes media streams.
#[derive(Debug, Clone)]
pub struct Line {
    /// e.g. `ws://127.0.0.1:8080`.
    pub base: String,
    /// `http.media_key`, if one is set.
    pub media_key: String,
    /// Mints a media token for each call's agent (its id; empty: the
    /// configured one), so calls reach agents that are not public.
    pub tokens: Option<voxgate_calls::tokens::MediaTokens>,
}

/// One turn as the caller lived it.
#[derive(Debug, Clone, Default)]
pub struct Heard {
    /// End of the caller's speech -> the agent's first audio.
    pub wait: Option<Duration>,
    /// The agent began while the caller was still speaking.
    pub cut_off: bool,
    /// What the agent said, at the line's rate.
    pub audio: Vec<i16>,
}

/// A whole call: each turn's answer (the greeting is waited for, not kept).
#[derive(Debug, Default)]
pub struct Call {
    pub turns: Vec<Heard>,
}

/// The call could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("the server's address: {0}")]
    Address(String),
    #[error("websocket: {0}")]
    Socket(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("the server closed the stream{0}")]
    Closed(String),
    #[error("the server did not end the call within {HANGUP_WITHIN:?} of the hang-up")]
    NoHangup,
}

/// The two stream protocols, as a client speaks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    /// 8 kHz µ-law.
    Twilio,
    /// 16 kHz PCM.
    Json,
}

impl Wire {
    fn path(self) -> &'static str {
        match self {
            Self::Twilio => "/v1/streams/twilio",
            Self::Json => "/v1/streams/json",
        }
    }

    fn start(self, tag: &str, agent: &str) -> Vec<String> {
        match self {
            Self::Twilio => vec![
                json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}).to_string(),
                json!({"event": "start", "sequenceNumber": "1", "streamSid": tag,
                    "start": {"streamSid": tag, "callSid": tag, "tracks": ["inbound"],
                        "customParameters": {"agent": agent, "from": tag},
                        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})
                .to_string(),
            ],
            Self::Json => {
                vec![json!({"type": "start", "session_id": tag, "agent": agent, "from": tag}).to_string()]
            }
        }
    }

    fn media(self, tag: &str, pcm: &[i16]) -> String {
        match self {
            Self::Twilio => {
                let payload: Vec<u8> = pcm.iter().map(|&s| ulaw_encode(s)).collect();
                json!({"event": "media", "streamSid": tag, "media": {"track": "inbound", "payload": B64.encode(payload)}})
                    .to_string()
            }
            Self::Json => {
                let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
                json!({"type": "media", "data": B64.encode(bytes), "format": "pcm_16k"}).to_string()
            }
        }
    }

    fn stop(self, tag: &str) -> String {
        match self {
            Self::Twilio => json!({"event": "stop", "streamSid": tag}).to_string(),
            Self::Json => json!({"type": "stop"}).to_string(),
        }
    }

    /// The agent's audio in a server message, if it carries some.
    fn audio(self, message: &Value) -> Option<Vec<i16>> {
        match self {
            Self::Twilio if message["event"] == "media" => {
                let bytes = B64.decode(message["media"]["payload"].as_str()?).ok()?;
                Some(bytes.iter().map(|&b| ulaw_decode(b)).collect())
            }
            Self::Json if message["type"] == "media" => {
                let bytes = B64.decode(message["data"].as_str()?).ok()?;
                Some(bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect())
            }
            _ => None,
        }
    }
}

/// Agent audio with its arrival time; `None` once the server closed the stream.
type Arrivals = mpsc::UnboundedReceiver<Option<(Instant, Vec<i16>)>>;

/// Calls `agent` (an id; empty: the configured agent) at `rate` (8000 or
/// 16000) as `tag` (the stream's id and the caller's number in the call
/// record), waits for the greeting, says each utterance and hears each
/// answer, then hangs up and waits for the server to end the call.
///
/// # Errors
/// The stream cannot be opened, or the server closes it early.
pub async fn call(
    line: &Line,
    agent: &str,
    tag: &str,
    rate: u32,
    utterances: &[Utterance],
) -> Result<Call, CallError> {
    let wire = if rate == 8000 { Wire::Twilio } else { Wire::Json };
    let mut url = reqwest::Url::parse(&format!("{}{}", line.base, wire.path()))
        .map_err(|e| CallError::Address(e.to_string()))?;
    if !line.media_key.is_empty() {
        url.query_pairs_mut().append_pair("key", &line.media_key);
    } else if let Some(tokens) = &line.tokens {
        let id = if agent.is_empty() { "-" } else { agent };
        let (token, _) = tokens.mint_for(id, std::time::Duration::from_secs(3600));
        url.query_pairs_mut().append_pair("token", &token);
    }
    let (socket, _) = tokio_tungstenite::connect_async(url.as_str()).await?;
    let (mut tx, mut rx) = socket.split();
    for message in wire.start(tag, agent) {
        tx.send(Message::text(message)).await?;
    }
    let (arrivals_tx, mut arrivals): (_, Arrivals) = mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        let mut close = String::new();
        while let Some(Ok(message)) = rx.next().await {
            match message {
                Message::Text(text) => {
                    let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                    if let Some(pcm) = wire.audio(&v) {
                        let _ = arrivals_tx.send(Some((Instant::now(), pcm)));
                    }
                }
                Message::Close(frame) => {
                    close = frame.map(|f| format!(": {}", f.reason)).unwrap_or_default();
                    break;
                }
                _ => {}
            }
        }
        let _ = arrivals_tx.send(None);
        close
    });
    let frame_len = rate as usize / 50;
    let mut clock =
        Clock { wire, tag: tag.to_owned(), start: Instant::now(), sent: 0, silence: vec![0; frame_len] };
    // The greeting plays first; the caller waits for it to end.
    listen(&mut tx, &mut clock, &mut arrivals, Instant::now()).await?;
    let mut call = Call::default();
    for u in utterances {
        // Whatever the agent still said between turns is not this turn's answer.
        while let Ok(Some(_)) = arrivals.try_recv() {}
        let mut speech_end_at = None;
        let mut cut_off = false;
        for (i, chunk) in u.samples.chunks(frame_len).enumerate() {
            let mut frame = chunk.to_vec();
            frame.resize(frame_len, 0);
            clock.send(&mut tx, &frame).await?;
            if speech_end_at.is_none() && (i + 1) * frame_len >= u.speech_end {
                speech_end_at = Some(Instant::now());
            }
            match arrivals.try_recv() {
                Ok(Some(_)) if speech_end_at.is_none() => cut_off = true,
                Ok(None) => return Err(CallError::Closed(reader.await.unwrap_or_default())),
                _ => {}
            }
        }
        let ended = speech_end_at.unwrap_or_else(Instant::now);
        let mut heard = listen(&mut tx, &mut clock, &mut arrivals, ended).await?;
        heard.cut_off = cut_off;
        call.turns.push(heard);
    }
    tx.send(Message::text(wire.stop(tag))).await?;
    // The server closes the stream once the call's record is saved.
    match tokio::time::timeout(HANGUP_WITHIN, reader).await {
        Ok(_) => Ok(call),
        Err(_) => Err(CallError::NoHangup),
    }
}

/// Sends a frame every 20 ms on a fixed schedule, as a phone line does.
struct Clock {
    wire: Wire,
    tag: String,
    start: Instant,
    sent: u32,
    silence: Vec<i16>,
}

impl Clock {
    async fn send<S>(&mut self, tx: &mut S, pcm: &[i16]) -> Result<(), CallError>
    where
        S: futures::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
    {
        tx.send(Message::text(self.wire.media(&self.tag, pcm))).await?;
        self.sent += 1;
        tokio::time::sleep_until((self.start + Duration::from_millis(20) * self.sent).into()).await;
        Ok(())
    }
}

/// Sends silence until the agent has answered and then been quiet for
/// [`ANSWER_END`] (or not answered within [`NO_ANSWER`]); `since` is when
/// the caller stopped speaking.
async fn listen<S>(
    tx: &mut S,
    clock: &mut Clock,
    arrivals: &mut Arrivals,
    since: Instant,
) -> Result<Heard, CallError>
where
    S: futures::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    let mut heard = Heard::default();
    let (mut first, mut last) = (None, None);
    loop {
        let silence = std::mem::take(&mut clock.silence);
        let sent = clock.send(tx, &silence).await;
        clock.silence = silence;
        sent?;
        loop {
            match arrivals.try_recv() {
                Ok(Some((at, pcm))) => {
                    first.get_or_insert(at);
                    last = Some(at);
                    heard.audio.extend_from_slice(&pcm);
                }
                Ok(None) => return Err(CallError::Closed(String::new())),
                Err(_) => break,
            }
        }
        let now = Instant::now();
        match (first, last) {
            (Some(f), Some(l)) if now - l >= ANSWER_END || now - f >= LONGEST_ANSWER => break,
            (None, _) if now - since >= NO_ANSWER => break,
            _ => {}
        }
    }
    heard.wait = first.map(|f| f.saturating_duration_since(since));
    Ok(heard)
}
