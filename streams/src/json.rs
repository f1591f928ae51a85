//! A plain JSON stream for simple clients: text messages
//! `{type, session_id, timestamp, sequence, data, format}` where `data` is
//! base64 16-bit little-endian PCM at 16 kHz (`format: "pcm_16k"`).
//!
//! In: `start` (optional `agent`, `from`), `media`, `dtmf` (`digit`), `mark`
//! (`name`), `stop`. Out: `started` (with our `session_id`), `media`,
//! `mark`, `clear`, `transcript` (`speaker`, `text`, `is_final`).

use super::{FrameError, Incoming, Protocol, Speaker};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::json;
use voxgate_codecs::dtmf::DtmfKey;
use voxgate_codecs::{Codec, SampleRate};

/// The most audio one message may carry: 1 s at 16 kHz.
const MAX_AUDIO_BYTES: usize = 32_000;

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Message {
    Start {
        #[serde(default)]
        session_id: Option<String>,
        #[serde(default)]
        agent: Option<String>,
        /// Who is calling, kept in the call's record.
        #[serde(default)]
        from: Option<String>,
    },
    Media {
        data: String,
        #[serde(default)]
        format: Option<String>,
    },
    Dtmf {
        digit: String,
    },
    Mark {
        name: String,
    },
    Stop {},
}

/// One JSON stream's state.
#[derive(Debug, Default)]
pub struct Json {
    session_id: Option<String>,
    started: bool,
    sequence: u64,
}

impl Json {
    fn id(&self) -> &str {
        self.session_id.as_deref().unwrap_or_default()
    }
}

impl Protocol for Json {
    fn codec(&self) -> Codec {
        Codec::PcmLe(SampleRate::HZ_16000)
    }

    fn parse(&mut self, text: &str) -> Result<Incoming, FrameError> {
        let message: Message = serde_json::from_str(text).map_err(|e| FrameError::Json(e.to_string()))?;
        Ok(match message {
            Message::Start { session_id, agent, from } => {
                self.started = true;
                let caller = super::protocol::caller_attribute(from.as_deref());
                Incoming::Start { agent, external_id: session_id, caller, token: None }
            }
            Message::Media { data, format } => {
                if !self.started {
                    return Err(FrameError::NotStarted);
                }
                if let Some(f) = format.filter(|f| f != "pcm_16k") {
                    return Err(FrameError::Format(f));
                }
                if data.len() > MAX_AUDIO_BYTES * 4 / 3 + 4 {
                    return Err(FrameError::Size(data.len() * 3 / 4));
                }
                let bytes = B64.decode(data.as_bytes()).map_err(|_| FrameError::Base64)?;
                if bytes.len() % 2 != 0 {
                    return Err(FrameError::Size(bytes.len()));
                }
                Incoming::Audio(bytes)
            }
            Message::Dtmf { digit } => {
                let key = digit.chars().next().filter(|_| digit.chars().count() == 1);
                Incoming::Dtmf(key.and_then(DtmfKey::from_char).ok_or(FrameError::Dtmf(digit))?)
            }
            Message::Mark { name } => Incoming::Mark(name),
            Message::Stop {} => Incoming::Stop,
        })
    }

    fn started(&mut self, id: &str) -> Option<String> {
        // Our id for the call, in every message from now on.
        self.session_id = Some(id.to_owned());
        Some(json!({"type": "started", "session_id": self.id(), "format": "pcm_16k"}).to_string())
    }

    fn audio(&mut self, payload: &[u8]) -> Option<String> {
        let bytes = payload;
        let message = json!({
            "type": "media", "session_id": self.id(), "timestamp": self.sequence * 20,
            "sequence": self.sequence, "data": B64.encode(bytes), "format": "pcm_16k",
        });
        self.sequence += 1;
        Some(message.to_string())
    }

    fn clear(&mut self) -> String {
        json!({"type": "clear", "session_id": self.id()}).to_string()
    }

    fn mark(&mut self, name: &str) -> String {
        json!({"type": "mark", "session_id": self.id(), "name": name}).to_string()
    }

    fn transcript(&mut self, speaker: Speaker, text: &str, is_final: bool) -> Option<String> {
        Some(
            json!({"type": "transcript", "session_id": self.id(), "speaker": speaker.as_str(), "text": text, "is_final": is_final})
                .to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media(samples: &[i16]) -> String {
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        json!({"type": "media", "session_id": "c1", "timestamp": 0, "sequence": 0,
            "data": B64.encode(bytes), "format": "pcm_16k"})
        .to_string()
    }

    #[test]
    fn audio_round_trips_as_little_endian_pcm() {
        let mut j = Json::default();
        assert!(matches!(j.parse(&media(&[1; 320])), Err(FrameError::NotStarted)));
        assert!(matches!(j.parse(r#"{"type": "start", "agent": "Bakery"}"#), Ok(Incoming::Start { .. })));
        assert!(j.started("ws-1").is_some_and(|s| s.contains(r#""session_id":"ws-1""#)));
        let samples: Vec<i16> = (0..480).map(|i| i as i16 - 240).collect();
        let Ok(Incoming::Audio(bytes)) = j.parse(&media(&samples)) else { panic!("audio") };
        assert_eq!(bytes.len(), 960, "1.5 frames, as they came");
        assert_eq!(i16::from_le_bytes([bytes[2], bytes[3]]), samples[1]);
        let out: serde_json::Value =
            serde_json::from_str(&j.audio(&bytes[..640]).expect("media")).expect("json");
        assert_eq!((out["type"].as_str(), out["session_id"].as_str()), (Some("media"), Some("ws-1")));
        let bytes = B64.decode(out["data"].as_str().expect("data")).expect("base64");
        assert_eq!(bytes.len(), 640);
        assert_eq!(i16::from_le_bytes([bytes[2], bytes[3]]), samples[1]);
    }

    #[test]
    fn the_caller_is_kept_only_when_printable_and_short() {
        let caller = |start: &str| match Json::default().parse(start) {
            Ok(Incoming::Start { caller, .. }) => caller,
            other => panic!("{other:?}"),
        };
        assert_eq!(caller(r#"{"type": "start", "from": "+15550100"}"#).as_deref(), Some("+15550100"));
        assert_eq!(caller(r#"{"type": "start"}"#), None);
        assert_eq!(caller(r#"{"type": "start", "from": "a b"}"#), None);
        assert_eq!(caller(&json!({"type": "start", "from": "1".repeat(65)}).to_string()), None);
    }

    #[test]
    fn bad_messages_are_errors() {
        let mut j = Json::default();
        j.parse(r#"{"type": "start"}"#).expect("start");
        let odd = json!({"type": "media", "data": B64.encode([1u8, 2, 3])}).to_string();
        let wrong = json!({"type": "media", "data": B64.encode([0u8; 640]), "format": "ulaw_8k"}).to_string();
        for bad in
            ["", "null", r#"{"type": "sing"}"#, r#"{"type": "media"}"#, r#"{"type": "media", "data": "*"}"#]
                .into_iter()
                .map(str::to_owned)
                .chain([odd, wrong, media(&vec![0; 20_000])])
        {
            assert!(j.parse(&bad).is_err(), "{bad}");
        }
    }
}
