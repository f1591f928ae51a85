//! The caller's audio into speech to text, kept alive through failures.
//!
//! A task of its own per call: it forwards frames and end-of-speech marks
//! to the provider's stream and its events back to the session. When the
//! stream fails with a retryable error it reopens it after 1, 2, 4 s,
//! keeping the caller's audio meanwhile and replaying everything since the
//! last final transcript into the new stream, so no words are lost. When
//! the retries run out it reports the failure (the session speaks its
//! fallback) and starts over.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::providers::{CancellationToken, ProviderError, SpeechToText, SttEvent, SttInput, SttStream};

/// Audio kept for a replay: 15 s of the session's 100 ms chunks.
const REPLAY_ITEMS: usize = 150;

/// What the lane reports.
#[derive(Debug)]
pub(crate) enum SttLaneEvent {
    /// From the recogniser.
    Event(SttEvent),
    /// The stream failed; it is reopened after `backoff`.
    Retrying { attempt: u32, backoff: Duration, error: ProviderError },
    /// The stream failed and retries ran out (or cannot help).
    Failed(ProviderError),
}

pub(crate) async fn run(
    stt: Arc<dyn SpeechToText>,
    mut input: mpsc::Receiver<SttInput>,
    events: mpsc::Sender<SttLaneEvent>,
    backoff: Vec<Duration>,
    cancel: CancellationToken,
) {
    let mut replay: VecDeque<SttInput> = VecDeque::new();
    let mut attempt = 0usize;
    loop {
        let error = match stt.open(cancel.child_token()) {
            Ok(stream) => {
                match pump(stream, &mut input, &events, &mut replay, &mut attempt, &cancel).await {
                    Some(error) => error,
                    None => return, // the call is over
                }
            }
            Err(error) => error,
        };
        let wait = backoff.get(attempt).copied().filter(|_| error.is_retryable());
        let report = match wait {
            Some(backoff) => {
                attempt += 1;
                SttLaneEvent::Retrying { attempt: attempt as u32, backoff, error }
            }
            None => {
                attempt = 0;
                // The caller is asked to say it again: what they said is dropped.
                replay.clear();
                SttLaneEvent::Failed(error)
            }
        };
        if events.send(report).await.is_err() {
            return;
        }
        // Keep the caller's audio while waiting.
        let sleep = tokio::time::sleep(wait.unwrap_or(Duration::from_secs(1)));
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = &mut sleep => break,
                next = input.recv() => match next {
                    Some(item) => keep(&mut replay, item),
                    None => return,
                },
            }
        }
    }
}

fn keep(replay: &mut VecDeque<SttInput>, item: SttInput) {
    if replay.len() == REPLAY_ITEMS {
        replay.pop_front();
    }
    replay.push_back(item);
}

/// Runs one open stream until the call ends (`None`) or it fails.
async fn pump(
    mut stream: SttStream,
    input: &mut mpsc::Receiver<SttInput>,
    events: &mpsc::Sender<SttLaneEvent>,
    replay: &mut VecDeque<SttInput>,
    attempt: &mut usize,
    cancel: &CancellationToken,
) -> Option<ProviderError> {
    let lost = |message: &str| ProviderError::Connection { provider: "stt", message: message.to_owned() };
    for item in replay.iter() {
        if stream.input.send(item.clone()).await.is_err() {
            return Some(lost("the stream closed during replay"));
        }
    }
    loop {
        tokio::select! {
            () = cancel.cancelled() => return None,
            next = input.recv() => {
                let item = next?;
                keep(replay, item.clone());
                // A recogniser that cannot keep up loses a frame rather than
                // stalling the call.
                if let Err(mpsc::error::TrySendError::Closed(_)) = stream.input.try_send(item) {
                    return Some(lost("the stream stopped taking audio"));
                }
            }
            event = stream.events.recv() => match event {
                Some(Ok(event)) => {
                    if matches!(event, SttEvent::Final { .. }) {
                        // Heard and settled: nothing before this needs a replay.
                        replay.clear();
                        *attempt = 0;
                    }
                    if events.send(SttLaneEvent::Event(event)).await.is_err() {
                        return None;
                    }
                }
                Some(Err(error)) => return Some(error),
                None if cancel.is_cancelled() => return None,
                None => return Some(lost("the stream ended")),
            },
        }
    }
}
