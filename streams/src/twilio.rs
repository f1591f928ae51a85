//! The Twilio Media Streams protocol (bidirectional `<Connect><Stream>`),
//! which Telnyx, Plivo, Vobiz and others speak too: JSON text messages with
//! an `event`; audio is base64 µ-law at 8 kHz, normally 20 ms per message.
//!
//! In: `connected`, `start` (`customParameters.agent` picks the agent,
//! `customParameters.token` carries a media token),
//! `media`, `dtmf`, `mark` (ours, played), `stop`. Out: `media`, `mark`,
//! `clear`.

use super::{FrameError, Incoming, Protocol};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::json;
use voxgate_codecs::Codec;
use voxgate_codecs::dtmf::DtmfKey;

/// The most audio one message may carry: 1 s of µ-law.
const MAX_AUDIO_BYTES: usize = 8000;

#[derive(Debug, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
enum Message {
    Connected {},
    Start { start: Start },
    Media { media: Media },
    Dtmf { dtmf: Dtmf },
    Mark { mark: Mark },
    Stop {},
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Start {
    stream_sid: String,
    #[serde(default)]
    call_sid: Option<String>,
    #[serde(default)]
    custom_parameters: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    media_format: Option<MediaFormat>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MediaFormat {
    encoding: String,
    sample_rate: u32,
    channels: u32,
}

#[derive(Debug, Deserialize)]
struct Media {
    payload: String,
    #[serde(default)]
    track: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Dtmf {
    digit: String,
}

#[derive(Debug, Deserialize)]
struct Mark {
    name: String,
}

/// One Twilio-style stream's state.
#[derive(Debug, Default)]
pub struct Twilio {
    stream_sid: Option<String>,
}

impl Twilio {
    fn sid(&self) -> &str {
        self.stream_sid.as_deref().unwrap_or_default()
    }
}

impl Protocol for Twilio {
    fn codec(&self) -> Codec {
        Codec::Pcmu
    }

    fn parse(&mut self, text: &str) -> Result<Incoming, FrameError> {
        let message: Message = serde_json::from_str(text).map_err(|e| FrameError::Json(e.to_string()))?;
        Ok(match message {
            Message::Connected {} => Incoming::Nothing,
            Message::Start { start } => {
                if let Some(f) = &start.media_format
                    && !(f.encoding == "audio/x-mulaw" && f.sample_rate == 8000 && f.channels == 1)
                {
                    return Err(FrameError::Format(format!(
                        "{} {} Hz x{}",
                        f.encoding, f.sample_rate, f.channels
                    )));
                }
                let agent = start.custom_parameters.get("agent").and_then(|a| a.as_str()).map(str::to_owned);
                // `<Parameter name="from" value="{{From}}"/>` in the TwiML passes the caller's number.
                let caller = super::protocol::caller_attribute(
                    start.custom_parameters.get("from").and_then(|v| v.as_str()),
                );
                // `<Parameter name="token" value="..."/>`: a media token for the agent.
                let token = start.custom_parameters.get("token").and_then(|v| v.as_str()).map(str::to_owned);
                let external = start.call_sid.clone().unwrap_or_else(|| start.stream_sid.clone());
                self.stream_sid = Some(start.stream_sid);
                Incoming::Start { agent, external_id: Some(external), caller, token }
            }
            Message::Media { media } => {
                if self.stream_sid.is_none() {
                    return Err(FrameError::NotStarted);
                }
                // A bidirectional stream carries the caller only; ignore any other track.
                if media.track.as_deref().is_some_and(|t| t != "inbound" && t != "inbound_track") {
                    return Ok(Incoming::Nothing);
                }
                if media.payload.len() > MAX_AUDIO_BYTES * 4 / 3 + 4 {
                    return Err(FrameError::Size(media.payload.len() * 3 / 4));
                }
                Incoming::Audio(B64.decode(media.payload.as_bytes()).map_err(|_| FrameError::Base64)?)
            }
            Message::Dtmf { dtmf } => {
                let key = dtmf.digit.chars().next().filter(|_| dtmf.digit.chars().count() == 1);
                Incoming::Dtmf(key.and_then(DtmfKey::from_char).ok_or(FrameError::Dtmf(dtmf.digit))?)
            }
            Message::Mark { mark } => Incoming::Mark(mark.name),
            Message::Stop {} => Incoming::Stop,
        })
    }

    fn audio(&mut self, payload: &[u8]) -> Option<String> {
        let payload = B64.encode(payload);
        Some(json!({"event": "media", "streamSid": self.sid(), "media": {"payload": payload}}).to_string())
    }

    fn clear(&mut self) -> String {
        json!({"event": "clear", "streamSid": self.sid()}).to_string()
    }

    fn mark(&mut self, name: &str) -> String {
        json!({"event": "mark", "streamSid": self.sid(), "mark": {"name": name}}).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> String {
        json!({"event": "start", "sequenceNumber": "1", "streamSid": "MZ1",
            "start": {"accountSid": "AC1", "streamSid": "MZ1", "callSid": "CA1", "tracks": ["inbound"],
                "customParameters": {"agent": "Bakery", "from": "+15550100"},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})
        .to_string()
    }

    fn media(bytes: &[u8]) -> String {
        json!({"event": "media", "sequenceNumber": "2", "streamSid": "MZ1",
            "media": {"track": "inbound", "chunk": "1", "timestamp": "5", "payload": B64.encode(bytes)}})
        .to_string()
    }

    #[test]
    fn a_call_as_twilio_sends_it() {
        let mut t = Twilio::default();
        let connected = r#"{"event": "connected", "protocol": "Call", "version": "1.0.0"}"#;
        assert!(matches!(t.parse(connected), Ok(Incoming::Nothing)));
        assert!(matches!(t.parse(&media(&[0xFF; 160])), Err(FrameError::NotStarted)));
        let Ok(Incoming::Start { agent, external_id, caller, .. }) = t.parse(&start()) else {
            panic!("start")
        };
        assert_eq!((agent.as_deref(), external_id.as_deref()), (Some("Bakery"), Some("CA1")));
        assert_eq!(caller.as_deref(), Some("+15550100"));
        // The audio as it came, whatever its length.
        assert!(matches!(t.parse(&media(&[0xFF; 240])), Ok(Incoming::Audio(b)) if b == [0xFF; 240]));
        assert!(matches!(t.parse(&media(&[0x7F; 80])), Ok(Incoming::Audio(b)) if b == [0x7F; 80]));
        let dtmf = json!({"event": "dtmf", "streamSid": "MZ1", "sequenceNumber": "5",
            "dtmf": {"track": "inbound_track", "digit": "#"}})
        .to_string();
        assert!(matches!(t.parse(&dtmf), Ok(Incoming::Dtmf(DtmfKey::Pound))));
        let mark = r#"{"event": "mark", "streamSid": "MZ1", "mark": {"name": "turn-1"}}"#;
        assert!(matches!(t.parse(mark), Ok(Incoming::Mark(n)) if n == "turn-1"));
        let stop =
            r#"{"event": "stop", "streamSid": "MZ1", "stop": {"accountSid": "AC1", "callSid": "CA1"}}"#;
        assert!(matches!(t.parse(stop), Ok(Incoming::Stop)));
    }

    #[test]
    fn what_we_send_names_the_stream() {
        let mut t = Twilio::default();
        t.parse(&start()).expect("start");
        let media: serde_json::Value =
            serde_json::from_str(&t.audio(&[0xFF; 160]).expect("media")).expect("json");
        assert_eq!(media["event"], "media");
        assert_eq!(media["streamSid"], "MZ1");
        let payload = B64.decode(media["media"]["payload"].as_str().expect("payload")).expect("base64");
        assert_eq!(payload.len(), 160, "20 ms of µ-law");
        let clear: serde_json::Value = serde_json::from_str(&t.clear()).expect("json");
        assert_eq!(clear, json!({"event": "clear", "streamSid": "MZ1"}));
        let mark: serde_json::Value = serde_json::from_str(&t.mark("turn-2")).expect("json");
        assert_eq!(mark["mark"]["name"], "turn-2");
    }

    #[test]
    fn bad_messages_are_errors_not_panics() {
        let mut t = Twilio::default();
        t.parse(&start()).expect("start");
        let too_big = media(&vec![0xFF; MAX_AUDIO_BYTES + 160]);
        let bad_b64 = r#"{"event": "media", "media": {"payload": "%%%"}}"#;
        let pcm = start().replace("audio/x-mulaw", "audio/l16");
        for (bad, want) in [
            ("{", "json"),
            ("[]", "json"),
            (r#"{"event": "hello"}"#, "json"),
            (r#"{"event": "media"}"#, "json"),
            (bad_b64, "base64"),
            (too_big.as_str(), "size"),
            (r#"{"event": "dtmf", "dtmf": {"digit": "12"}}"#, "dtmf"),
            (r#"{"event": "dtmf", "dtmf": {"digit": "x"}}"#, "dtmf"),
            (pcm.as_str(), "format"),
        ] {
            let got = match t.parse(bad) {
                Err(FrameError::Json(_)) => "json",
                Err(FrameError::Base64) => "base64",
                Err(FrameError::Size(_)) => "size",
                Err(FrameError::Dtmf(_)) => "dtmf",
                Err(FrameError::Format(_)) => "format",
                other => panic!("{bad}: {other:?}"),
            };
            assert_eq!(got, want, "{bad}");
        }
    }
}
