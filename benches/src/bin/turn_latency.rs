//! The caller's wait on a real conversation: CALLS concurrent calls in the
//! Twilio Media Streams protocol against a running `voxgate serve`, each
//! asking the questions of a script one after another, in real time, as
//! 8 kHz µ-law, and measuring each turn at the client: from the known end of
//! the question's speech to the first frame of the agent's answer.
//!
//!   turn_latency URL CALLS OUT_DIR QUESTION.wav...
//!   (URL e.g. ws://127.0.0.1:8080/v1/streams/twilio)
//!
//! Each WAV is mono 16-bit at 8 kHz, its speech ending where its samples
//! stop being loud. Between the audio the caller sends silence, as a phone
//! line does. A turn ends when the agent has said nothing for 1.5 s. The
//! agent's audio of each turn is written to OUT_DIR/callN-turnM.wav (8 kHz)
//! so it can be transcribed and checked. Prints one line per turn, then the
//! p50/p95 of the waits, and counts false cut-offs: agent audio that began
//! while the caller was still speaking.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use voxgate_benches::{percentile, twilio_start};
use voxgate_codecs::g711::{ulaw_decode, ulaw_encode};

/// The agent's silence that ends a turn.
const TURN_END: Duration = Duration::from_millis(1500);
/// The longest a turn may wait for an answer.
const NO_ANSWER: Duration = Duration::from_secs(20);
/// A sample this loud (of 32767) is speech, for finding where speech ends.
const SPEECH_LEVEL: i16 = 600;

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Question {
    name: String,
    samples: Vec<i16>,
    /// Samples up to the end of the speech.
    speech_end: usize,
}

fn load(path: &str) -> Result<Question, Error> {
    let mut reader = hound::WavReader::open(path)?;
    let spec = reader.spec();
    if spec.sample_rate != 8000 || spec.channels != 1 || spec.bits_per_sample != 16 {
        return Err(format!("{path}: need mono 16-bit 8 kHz").into());
    }
    let samples: Vec<i16> = reader.samples::<i16>().collect::<Result<_, _>>()?;
    let speech_end =
        samples.iter().rposition(|s| s.unsigned_abs() > SPEECH_LEVEL as u16).map_or(0, |i| i + 1);
    let name =
        std::path::Path::new(path).file_stem().map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    Ok(Question { name, samples, speech_end })
}

/// One turn as the caller lived it.
#[derive(Debug)]
struct Turn {
    call: usize,
    index: usize,
    question: String,
    /// End of the question's speech -> the agent's first frame.
    wait: Option<Duration>,
    /// The agent began while the caller was still speaking.
    cut_off: bool,
}

/// Agent media frames with their arrival times.
type Frames = mpsc::UnboundedReceiver<(Instant, Vec<u8>)>;

async fn call(url: String, n: usize, questions: &[Question], out: &str) -> Result<Vec<Turn>, Error> {
    let (socket, _) = tokio_tungstenite::connect_async(&url).await?;
    let (mut tx, mut rx) = socket.split();
    let sid = format!("MZturns{n}");
    for message in twilio_start(&sid, &format!("CAturns{n}")) {
        tx.send(Message::text(message)).await?;
    }
    let (frames_tx, mut frames): (_, Frames) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(message)) = rx.next().await {
            let Message::Text(text) = message else { continue };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(text.as_str()) else { continue };
            if v["event"] == "media"
                && let Some(payload) = v["media"]["payload"].as_str()
                && let Ok(bytes) = B64.decode(payload)
                && frames_tx.send((Instant::now(), bytes)).is_err()
            {
                break;
            }
        }
    });
    let silence = [0i16; 160];
    let mut clock = Clock { start: Instant::now(), sent: 0 };
    // The greeting plays first; the caller waits for it to end.
    wait_for_turn_end(&mut tx, &sid, &mut clock, &mut frames, &silence, None).await?;
    let mut turns = Vec::new();
    for (index, q) in questions.iter().enumerate() {
        // Drop whatever arrived between turns.
        while frames.try_recv().is_ok() {}
        let mut speech_end_at = None;
        let mut cut_off = false;
        for (i, chunk) in q.samples.chunks(160).enumerate() {
            let mut frame = [0i16; 160];
            frame[..chunk.len()].copy_from_slice(chunk);
            clock.send(&mut tx, &sid, &frame).await?;
            if speech_end_at.is_none() && (i + 1) * 160 >= q.speech_end {
                speech_end_at = Some(Instant::now());
            }
            if frames.try_recv().is_ok() && speech_end_at.is_none() {
                cut_off = true;
            }
        }
        let ended = speech_end_at.unwrap_or_else(Instant::now);
        let heard = wait_for_turn_end(&mut tx, &sid, &mut clock, &mut frames, &silence, Some(ended)).await?;
        let wait = heard.first.map(|first| first.saturating_duration_since(ended));
        write_wav(&format!("{out}/call{n}-turn{}.wav", index + 1), &heard.audio)?;
        turns.push(Turn { call: n, index: index + 1, question: q.name.clone(), wait, cut_off });
    }
    tx.send(Message::text(json!({"event": "stop", "streamSid": sid}).to_string())).await?;
    Ok(turns)
}

/// Sends a frame every 20 ms on a fixed schedule.
struct Clock {
    start: Instant,
    sent: u64,
}

impl Clock {
    async fn send<S>(&mut self, tx: &mut S, sid: &str, pcm: &[i16; 160]) -> Result<(), Error>
    where
        S: futures::Sink<Message> + Unpin,
        S::Error: std::error::Error + Send + Sync + 'static,
    {
        let payload: Vec<u8> = pcm.iter().map(|&s| ulaw_encode(s)).collect();
        let media = json!({"event": "media", "streamSid": sid, "media": {"track": "inbound", "payload": B64.encode(payload)}});
        tx.send(Message::text(media.to_string())).await?;
        self.sent += 1;
        tokio::time::sleep_until((self.start + Duration::from_millis(20 * self.sent)).into()).await;
        Ok(())
    }
}

struct Heard {
    first: Option<Instant>,
    audio: Vec<i16>,
}

/// Sends silence until the agent has answered and then been quiet for
/// [`TURN_END`] (or never answered within [`NO_ANSWER`]).
async fn wait_for_turn_end<S>(
    tx: &mut S,
    sid: &str,
    clock: &mut Clock,
    frames: &mut Frames,
    silence: &[i16; 160],
    since: Option<Instant>,
) -> Result<Heard, Error>
where
    S: futures::Sink<Message> + Unpin,
    S::Error: std::error::Error + Send + Sync + 'static,
{
    let begun = since.unwrap_or_else(Instant::now);
    let mut heard = Heard { first: None, audio: Vec::new() };
    let mut last = None;
    loop {
        clock.send(tx, sid, silence).await?;
        while let Ok((at, bytes)) = frames.try_recv() {
            heard.first.get_or_insert(at);
            last = Some(at);
            heard.audio.extend(bytes.iter().map(|&b| ulaw_decode(b)));
        }
        let now = Instant::now();
        match last {
            Some(l) if now - l >= TURN_END => return Ok(heard),
            None if now - begun >= NO_ANSWER => return Ok(heard),
            _ => {}
        }
    }
}

fn write_wav(path: &str, samples: &[i16]) -> Result<(), Error> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec)?;
    for &s in samples {
        w.write_sample(s)?;
    }
    w.finalize()?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, calls, out, files @ ..] = args.as_slice() else {
        return Err("usage: turn_latency URL CALLS OUT_DIR QUESTION.wav...".into());
    };
    let calls: usize = calls.parse()?;
    let questions: Vec<Question> = files.iter().map(|f| load(f)).collect::<Result<_, _>>()?;
    let questions = std::sync::Arc::new(questions);
    std::fs::create_dir_all(out)?;
    let mut tasks = Vec::new();
    for n in 0..calls {
        let (url, questions, out) = (url.clone(), questions.clone(), out.clone());
        tasks.push(tokio::spawn(async move {
            // Calls start a little apart, as callers do.
            tokio::time::sleep(Duration::from_millis(700 * n as u64)).await;
            call(url, n, &questions, &out).await
        }));
    }
    let mut waits = Vec::new();
    let (mut unanswered, mut cut_offs) = (0, 0);
    for task in tasks {
        for turn in task.await?? {
            match turn.wait {
                Some(w) => {
                    println!(
                        "call {} turn {:2} {:28} wait {:5.0} ms{}",
                        turn.call,
                        turn.index,
                        turn.question,
                        w.as_secs_f64() * 1e3,
                        if turn.cut_off { "  CUT OFF" } else { "" }
                    );
                    waits.push(w.as_secs_f64() * 1e3);
                }
                None => {
                    println!("call {} turn {:2} {:28} no answer", turn.call, turn.index, turn.question);
                    unanswered += 1;
                }
            }
            cut_offs += usize::from(turn.cut_off);
        }
    }
    let n = waits.len();
    let (p50, p95, max) =
        (percentile(&mut waits, 0.5), percentile(&mut waits, 0.95), percentile(&mut waits, 1.0));
    println!(
        "calls {calls}  turns answered {n}  unanswered {unanswered}  false cut-offs {cut_offs}  wait p50 {p50:.0} ms  p95 {p95:.0} ms  max {max:.0} ms"
    );
    Ok(())
}
