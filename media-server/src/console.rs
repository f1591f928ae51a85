//! `voxgate console`: the server's stores and agents without its listeners,
//! and one call through this machine's audio devices.

use std::io::Write as _;

use anyhow::Context as _;
use voxgate_codecs::dtmf::DtmfKey;
use voxgate_media::console::{Devices, Shown};
use voxgate_media_server::config::Config;
use voxgate_pipeline::session::Speaker;

/// Runs one console call of `agent` (empty: the configured one) and says how it went.
pub async fn run(config: Config, agent: &str, devices: &Devices) -> anyhow::Result<()> {
    // The server's stores, agents and post-call work; no listener. A server
    // may be running on the same store: its calls are its own to recover.
    let planes = voxgate_media_server::assemble(&config, voxgate_media_server::Recovery::Leave).await?;
    let calls = planes.calls.clone();
    let agent = calls.agents.get(agent).await.with_context(|| format!("the agent {agent:?}"))?;
    eprintln!(
        "voxgate console: talking to {}. Type digits then Enter to press keys; Ctrl-C hangs up.",
        agent.name
    );
    let (keys, pressed) = tokio::sync::mpsc::channel(16);
    std::thread::spawn(move || read_keys(&keys));
    let hang_up = tokio_util::sync::CancellationToken::new();
    let on_signal = hang_up.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        on_signal.cancel();
    });
    let mut meter = Meter::default();
    let log =
        voxgate_media::console::run(&calls, &agent, devices, pressed, hang_up, |shown| meter.show(shown))
            .await;
    meter.clear();
    let log = log?;
    eprintln!(
        "the call ended ({:?}) after {:.0} s, {} lines; its record and recording are saved",
        log.end,
        log.duration_ms as f64 / 1000.0,
        log.transcript.len()
    );
    planes.stop.cancel();
    Ok(())
}

/// Keys typed on standard input, as DTMF keys (others are ignored).
fn read_keys(keys: &tokio::sync::mpsc::Sender<DtmfKey>) {
    for line in std::io::stdin().lines().map_while(Result::ok) {
        for key in line.chars().filter_map(DtmfKey::from_char) {
            if keys.blocking_send(key).is_err() {
                return;
            }
        }
    }
}

/// The terminal: transcript lines, turn latencies, and a level meter on the last line.
#[derive(Debug, Default)]
struct Meter {
    /// The meter is on the last line (a transcript line first clears it).
    drawn: bool,
    /// Frames since the meter was last drawn.
    frames: u32,
}

impl Meter {
    fn show(&mut self, shown: Shown) {
        match shown {
            Shown::Transcript { speaker, text, is_final: true } => {
                self.clear();
                let who = if speaker == Speaker::Caller { "you  " } else { "agent" };
                println!("{who}: {text}");
            }
            Shown::Transcript { .. } => {}
            Shown::Latency(ms) => {
                self.clear();
                println!("       ({ms} ms to the agent's first audio)");
            }
            Shown::Level(db) => {
                // Five times a second is enough for the eye.
                self.frames += 1;
                if self.frames.is_multiple_of(10) {
                    let bars = ((db + 60.0).clamp(0.0, 60.0) / 3.0) as usize;
                    eprint!("\r  mic {:<20} {db:>5.0} dB", "#".repeat(bars));
                    let _ = std::io::stderr().flush();
                    self.drawn = true;
                }
            }
        }
    }

    fn clear(&mut self) {
        if std::mem::take(&mut self.drawn) {
            eprint!("\r{:40}\r", "");
        }
    }
}
