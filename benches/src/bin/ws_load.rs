//! Load on the websocket media path: N concurrent calls in the Twilio Media
//! Streams protocol against a running `voxgate serve`, each sending 20 ms of
//! µ-law silence every 20 ms for SECONDS (the agent greets each one), while
//! the server process's CPU time and memory are read from /proc.
//!
//!   ws_load URL CALLS SECONDS SERVER_PID
//!   (URL e.g. ws://127.0.0.1:8080/v1/streams/twilio)
//!
//! Prints the calls that ran to the end, the agent frames received, the
//! gaps of more than 60 ms between agent frames inside a line (late
//! frames), the server's CPU (% of one core) and RSS.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[derive(Default)]
struct Tally {
    completed: usize,
    frames: u64,
    late: u64,
}

async fn call(
    url: String,
    n: usize,
    seconds: u64,
) -> Result<(u64, u64), Box<dyn std::error::Error + Send + Sync>> {
    let (socket, _) = tokio_tungstenite::connect_async(&url).await?;
    let (mut tx, mut rx) = socket.split();
    let sid = format!("MZload{n}");
    tx.send(Message::text(json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}).to_string()))
        .await?;
    tx.send(Message::text(
        json!({"event": "start", "streamSid": sid, "start": {"streamSid": sid, "callSid": format!("CAload{n}"),
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})
        .to_string(),
    ))
    .await?;
    let listener = tokio::spawn(async move {
        let (mut frames, mut late, mut last) = (0u64, 0u64, None::<Instant>);
        while let Some(Ok(message)) = rx.next().await {
            let Message::Text(text) = message else { continue };
            if text.as_str().contains(r#""event":"media""#) {
                let now = Instant::now();
                // A gap inside a line: later than 60 ms, yet shorter than a pause between lines.
                if let Some(prev) = last {
                    let gap = now - prev;
                    if gap > Duration::from_millis(60) && gap < Duration::from_millis(400) {
                        late += 1;
                    }
                }
                last = Some(now);
                frames += 1;
            }
        }
        (frames, late)
    });
    let silence = B64.encode([0xFFu8; 160]);
    let start = Instant::now();
    for i in 0..seconds * 50 {
        let media =
            json!({"event": "media", "streamSid": sid, "media": {"track": "inbound", "payload": silence}});
        tx.send(Message::text(media.to_string())).await?;
        tokio::time::sleep_until((start + Duration::from_millis(20 * (i + 1))).into()).await;
    }
    tx.send(Message::text(json!({"event": "stop", "streamSid": sid}).to_string())).await?;
    Ok(tokio::time::timeout(Duration::from_secs(30), listener).await??)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, calls, seconds, pid] = &args[..] else {
        return Err("usage: ws_load URL CALLS SECONDS SERVER_PID".into());
    };
    let (calls, seconds, pid): (usize, u64, u32) = (calls.parse()?, seconds.parse()?, pid.parse()?);
    let (cpu0, _) = voxgate_benches::process_usage(pid);
    let began = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..calls {
        tasks.push(tokio::spawn(call(url.clone(), n, seconds)));
        // Spread the starts over a second.
        tokio::time::sleep(Duration::from_millis(1000 / calls.max(1) as u64)).await;
    }
    // Sample memory in the middle of the run.
    tokio::time::sleep(Duration::from_secs(seconds / 2)).await;
    let (_, rss) = voxgate_benches::process_usage(pid);
    let mut tally = Tally::default();
    for t in tasks {
        if let Ok(Ok((frames, late))) = t.await {
            tally.completed += 1;
            tally.frames += frames;
            tally.late += late;
        }
    }
    let (cpu1, _) = voxgate_benches::process_usage(pid);
    let wall = began.elapsed().as_secs_f64();
    let cpu_pct = (cpu1 - cpu0) / wall * 100.0;
    println!(
        "{calls} calls x {seconds} s: {} completed; agent frames {} ({} late gaps); server CPU {cpu_pct:.1}% of a core \
         ({:.2}% per call); RSS {rss:.0} MiB",
        tally.completed,
        tally.frames,
        tally.late,
        cpu_pct / calls as f64
    );
    Ok(())
}
