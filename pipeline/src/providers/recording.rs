//! A whole recording (a WhatsApp voice note) through a streaming
//! recogniser: fed as fast as it takes it, in utterances of at most 20 s
//! (what a recogniser of whole utterances holds), its final transcripts joined.

use std::time::Duration;

use super::{CancellationToken, ProviderError, SpeechToText, SttEvent, SttInput};

/// 20 s at 16 kHz: one utterance.
const PIECE: usize = 16_000 * 20;
/// 100 ms at 16 kHz: one chunk of audio.
const CHUNK: usize = 1_600;

/// What `stt` hears in `pcm` (16 kHz mono): its final transcripts, in
/// order, joined by spaces. Waits at most `timeout` in all.
///
/// # Errors
/// The recogniser could not start, failed, or took longer than `timeout`.
pub async fn transcribe(
    stt: &dyn SpeechToText,
    pcm: &[i16],
    timeout: Duration,
) -> Result<String, ProviderError> {
    let provider = stt.name();
    let cancel = CancellationToken::new();
    let _stop = cancel.clone().drop_guard();
    let mut stream = stt.open(cancel)?;
    let input = stream.input;
    let pieces: Vec<Vec<i16>> = pcm.chunks(PIECE).map(<[i16]>::to_vec).collect();
    let feed = async move {
        for piece in pieces {
            let _ = input.send(SttInput::StartOfSpeech).await;
            for chunk in piece.chunks(CHUNK) {
                let _ = input.send(SttInput::Audio(chunk.to_vec())).await;
            }
            let _ = input.send(SttInput::EndOfSpeech).await;
        }
        // Dropping the input ends the stream once the last transcript is out.
    };
    let listen = async {
        let mut words = Vec::new();
        while let Some(event) = stream.events.recv().await {
            if let SttEvent::Final { text, .. } = event? {
                let text = text.trim().to_owned();
                if !text.is_empty() {
                    words.push(text);
                }
            }
        }
        Ok(words.join(" "))
    };
    let work = async { tokio::join!(feed, listen).1 };
    tokio::time::timeout(timeout, work).await.unwrap_or_else(|_| {
        Err(ProviderError::Connection {
            provider,
            message: format!("no transcript within {} s", timeout.as_secs()),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::scripted::{ScriptedStt, SttScript};

    #[tokio::test]
    async fn a_long_recording_is_heard_one_utterance_per_20_seconds() {
        // The scripted recogniser says its next line at each end of speech.
        let lines = ["what time", "do you open", "on Saturday"];
        let stt = ScriptedStt::new(lines.iter().map(|l| SttScript::Text((*l).to_owned())).collect());
        let pcm = vec![0i16; 16_000 * 45];
        let text = transcribe(&stt, &pcm, Duration::from_secs(10)).await.expect("a transcript");
        assert_eq!(text, "what time do you open on Saturday");
    }

    #[tokio::test]
    async fn a_recogniser_that_fails_fails_the_transcript() {
        let stt =
            ScriptedStt::new(vec![SttScript::Fail(ProviderError::Server { provider: "s", status: 500 })]);
        let pcm = vec![0i16; 16_000];
        assert!(transcribe(&stt, &pcm, Duration::from_secs(10)).await.is_err());
    }
}
