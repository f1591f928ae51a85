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
use voxgate_benches::{Arrivals, run_load, twilio_start};

async fn call(
    url: String,
    n: usize,
    seconds: u64,
) -> Result<Arrivals, Box<dyn std::error::Error + Send + Sync>> {
    let (socket, _) = tokio_tungstenite::connect_async(&url).await?;
    let (mut tx, mut rx) = socket.split();
    let sid = format!("MZload{n}");
    for message in twilio_start(&sid, &format!("CAload{n}")) {
        tx.send(Message::text(message)).await?;
    }
    let listener = tokio::spawn(async move {
        let mut arrivals = Arrivals::default();
        while let Some(Ok(message)) = rx.next().await {
            if let Message::Text(text) = message
                && text.as_str().contains(r#""event":"media""#)
            {
                arrivals.frame();
            }
        }
        arrivals
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
    run_load("calls", calls, seconds, pid, |n| call(url.clone(), n, seconds)).await;
    Ok(())
}
