//! Load on the WebRTC path: N concurrent browser-like calls against a
//! running `voxgate serve`, each a str0m peer that posts its offer to
//! /v1/webrtc/offer, connects (ICE, DTLS-SRTP) and sends 20 ms Opus frames of
//! silence in real time for SECONDS (the agent greets each call), while the
//! server process's CPU and memory are read from /proc.
//!
//!   rtc_load BASE_URL CALLS SECONDS SERVER_PID     (BASE_URL e.g. http://127.0.0.1:8080)
//!
//! Prints the calls that connected and ran to the end, the agent's audio
//! frames received, late gaps (60-400 ms between two of them), the
//! server's CPU (% of one core) and RSS.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::SdpAnswer;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use voxgate_benches::{Arrivals, run_load};
use voxgate_codecs::SampleRate;
use voxgate_codecs::opus::{OpusEncoder, OpusEncoderConfig};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// One call; what it received of the agent (an error if it never connected).
async fn call(base: String, seconds: u64) -> Result<Arrivals, Error> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let local = socket.local_addr()?;
    let mut rtc = Rtc::builder().clear_codecs().enable_opus(true, false).build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp")?);
    let mut change = rtc.sdp_api();
    let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    let (offer, pending) = change.apply().ok_or("no offer")?;
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{base}/v1/webrtc/offer"))
        .header("content-type", "application/sdp")
        .body(offer.to_sdp_string())
        .send()
        .await?;
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let answer = SdpAnswer::from_sdp_string(&response.text().await?)?;
    rtc.sdp_api().accept_answer(pending, answer)?;

    let mut encoder = OpusEncoder::new(OpusEncoderConfig::voice(SampleRate::HZ_48000))?;
    let silence = [0i16; 960];
    let mut packet = [0u8; 1500];
    let (mut connected, mut arrivals) = (false, Arrivals::default());
    let mut buf = vec![0u8; 2000];
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut ts = 0u64;
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end {
        let next = loop {
            match rtc.poll_output()? {
                Output::Transmit(t) => {
                    let _ = socket.try_send_to(&t.contents, t.destination);
                }
                Output::Timeout(at) => break at,
                Output::Event(Event::Connected) => connected = true,
                Output::Event(Event::MediaData(_)) => arrivals.frame(),
                Output::Event(_) => {}
            }
        };
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let (n, source): (usize, SocketAddr) = r?;
                let input = Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source, destination: local, contents: buf[..n].try_into()? });
                rtc.handle_input(input)?;
            }
            () = tokio::time::sleep_until(next.into()) => rtc.handle_input(Input::Timeout(Instant::now()))?,
            _ = tick.tick(), if connected => {
                let n = encoder.encode(&silence, &mut packet)?;
                // The engine's clock to now, so the frame is due at once.
                rtc.handle_input(Input::Timeout(Instant::now()))?;
                let pt = rtc.writer(mid).and_then(|w| w.payload_params().next().map(|p| p.pt()));
                if let (Some(pt), Some(writer)) = (pt, rtc.writer(mid)) {
                    writer.write(pt, Instant::now(), MediaTime::new(ts, Frequency::FORTY_EIGHT_KHZ), packet[..n].to_vec())?;
                }
                ts += 960;
            }
        }
    }
    if let Some(location) = location {
        let _ = http.delete(format!("{base}{location}")).send().await;
    }
    if connected { Ok(arrivals) } else { Err("never connected".into()) }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    str0m::crypto::from_feature_flags().install_process_default();
    let args: Vec<String> = std::env::args().collect();
    let [_, base, calls, seconds, pid] = &args[..] else {
        return Err("usage: rtc_load BASE_URL CALLS SECONDS SERVER_PID".into());
    };
    let (calls, seconds, pid): (usize, u64, u32) = (calls.parse()?, seconds.parse()?, pid.parse()?);
    run_load("WebRTC calls", calls, seconds, pid, |_| call(base.clone(), seconds)).await;
    Ok(())
}
