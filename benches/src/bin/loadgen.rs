//! The load generator: places CALLS concurrent SIP calls with G.711 µ-law
//! RTP into a running Voxgate (or any SIP UAS, e.g. SIPp's `-rtp_echo`
//! floor), each caller talking to the agent from fixture audio through an
//! impaired network, and reports what a caller gets and what the server
//! spends:
//!
//! - call setup (INVITE -> 200 OK), failures;
//! - the agent's egress frames: received, late (more than 20 ms behind their
//!   talkspurt's RTP schedule, by kernel receive timestamps, so the load
//!   generator's own scheduling does not count), lost, and talkspurts
//!   without marker bit and fresh timestamp;
//! - turn latency (the caller's last voiced frame on the wire -> the agent's
//!   first voiced frame) and barge-in stop time (see `caller.rs`);
//! - the server process's CPU and RSS while all calls are up, per call;
//! - with `--metrics`, the server's jitter buffer counts and delay.
//!
//! It prints a summary and appends one JSON line to `--json` for
//! `benches/figures.sh`. See BENCHMARKS.md for the runs.

use std::collections::{BinaryHeap, HashMap};
use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::os::fd::AsRawFd as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use clap::Parser;
use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrIn, recvmsg, setsockopt, sockopt};
use nix::sys::time::TimeSpec;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use voxgate_benches::caller::{Caller, FRAME, Lines, Measured};
use voxgate_benches::impair::{Impairment, Profile};
use voxgate_benches::{percentile, process_usage};
use voxgate_sip_bridge::message::{self, Framing, Message};
use voxgate_sip_bridge::rtp::RtpPacket;

#[derive(Parser, Debug, Clone)]
#[command(about = "Concurrent SIP/RTP callers against a running Voxgate")]
struct Args {
    /// The server's SIP address.
    #[arg(long, default_value = "127.0.0.1:5060")]
    target: SocketAddr,
    /// The number dialled.
    #[arg(long, default_value = "1000")]
    number: String,
    /// Concurrent calls.
    #[arg(long, default_value_t = 50)]
    calls: usize,
    /// Calls started per second.
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// Seconds all calls are up together, after the last one is answered.
    #[arg(long, default_value_t = 60)]
    hold: u64,
    /// Network impairment of the RTP sent: clean, 4g, 3g, gilbert-elliott (or ge).
    #[arg(long, default_value = "clean")]
    profile: String,
    /// The server's process id, for its CPU and RSS.
    #[arg(long)]
    pid: u32,
    /// The server's Prometheus metrics URL, for its jitter buffer figures.
    #[arg(long)]
    metrics: Option<String>,
    /// A label for the run in the JSON line (e.g. voxgate, sipp-echo).
    #[arg(long, default_value = "voxgate")]
    label: String,
    /// Append the results here as one JSON line.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Fixture folder (8 kHz WAVs).
    #[arg(long, default_value = "fixtures/audio")]
    fixtures: std::path::PathBuf,
    /// RTP sockets (each serves calls/shards calls on one task).
    #[arg(long, default_value_t = 2)]
    shards: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The turn's fixed waits set by configuration (endpointing silence and
    /// delay, provider latencies), taken off turn latency for the server's share.
    #[arg(long, default_value_t = 0.0)]
    waits_ms: f64,
}

/// Milliseconds since the run began, on the monotonic clock, and the
/// realtime clock kernel timestamps are read on.
#[derive(Clone, Copy)]
struct Clock {
    start: Instant,
    start_unix_ms: f64,
}

impl Clock {
    fn new() -> Self {
        let unix = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        Self { start: Instant::now(), start_unix_ms: unix.as_secs_f64() * 1000.0 }
    }
    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0
    }
    fn kernel_ms(&self, ts: &TimeSpec) -> f64 {
        ts.tv_sec() as f64 * 1000.0 + ts.tv_nsec() as f64 / 1e6 - self.start_unix_ms
    }
}

fn read_fixture(path: &std::path::Path) -> anyhow::Result<Vec<i16>> {
    let mut wav = hound::WavReader::open(path)?;
    anyhow::ensure!(wav.spec().sample_rate == 8000, "{} is not 8 kHz", path.display());
    Ok(wav.samples::<i16>().collect::<Result<_, _>>()?)
}

// ---------------------------------------------------------------- RTP shards

/// A call's media as one shard carries it.
struct Media {
    caller: Caller,
    impairment: Impairment,
    dest: SocketAddr,
    ssrc: u32,
    seq: u16,
    ts: u32,
    done: Option<oneshot::Sender<Measured>>,
}

enum ShardCmd {
    Add { id: u64, media: Box<Media> },
    Remove { id: u64 },
}

/// A packet waiting out its network delay.
#[derive(PartialEq, Eq)]
struct Delayed {
    at_us: u64,
    n: u64,
    id: u64,
    voiced: bool,
    bytes: Vec<u8>,
}

impl Ord for Delayed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at_us, other.n).cmp(&(self.at_us, self.n))
    }
}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// One RTP socket and the calls on it. Each call sends every 20 ms at its
/// own phase (calls spread over the 20 ms, as real callers are), through
/// its impairment; arrivals are timed by the kernel.
async fn shard(socket: std::net::UdpSocket, clock: Clock, mut cmds: mpsc::UnboundedReceiver<ShardCmd>) {
    let mut calls: HashMap<u64, Media> = HashMap::new();
    let mut by_addr: HashMap<SocketAddr, Vec<u64>> = HashMap::new();
    let mut by_ssrc: HashMap<u32, u64> = HashMap::new();
    let mut phases: [Vec<u64>; 20] = Default::default();
    let mut delayed: BinaryHeap<Delayed> = BinaryHeap::new();
    let mut n = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut ticks = 0u64;
    let mut buf = [0u8; 2048];
    let mut packet = [0u8; 12 + FRAME];
    let mut space = nix::cmsg_space!(TimeSpec);
    loop {
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                None => return,
                Some(ShardCmd::Add { id, media }) => {
                    by_addr.entry(media.dest).or_default().push(id);
                    by_ssrc.insert(media.ssrc, id);
                    phases[(id % 20) as usize].push(id);
                    calls.insert(id, *media);
                }
                Some(ShardCmd::Remove { id }) => {
                    if let Some(mut m) = calls.remove(&id) {
                        by_addr.entry(m.dest).or_default().retain(|&c| c != id);
                        by_ssrc.remove(&m.ssrc);
                        phases[(id % 20) as usize].retain(|&c| c != id);
                        if let Some(done) = m.done.take() {
                            let _ = done.send(std::mem::take(&mut m.caller.measured));
                        }
                    }
                }
            },
            _ = tick.tick() => {
                let now = clock.now();
                for &id in &phases[(ticks % 20) as usize] {
                    let Some(m) = calls.get_mut(&id) else { continue };
                    let (payload, voiced) = m.caller.next_frame(now);
                    let rtp = RtpPacket { marker: false, payload_type: 0, seq: m.seq, timestamp: m.ts, ssrc: m.ssrc, payload: &payload };
                    m.seq = m.seq.wrapping_add(1);
                    m.ts = m.ts.wrapping_add(FRAME as u32);
                    let Ok(len) = rtp.write(&mut packet) else { continue };
                    for delay in m.impairment.deliveries() {
                        n += 1;
                        delayed.push(Delayed { at_us: ((now + delay) * 1000.0) as u64, n, id, voiced, bytes: packet[..len].to_vec() });
                    }
                }
                ticks += 1;
                let now_us = (clock.now() * 1000.0) as u64;
                while delayed.peek().is_some_and(|d| d.at_us <= now_us) {
                    let Some(d) = delayed.pop() else { break };
                    let Some(m) = calls.get_mut(&d.id) else { continue };
                    if socket.send_to(&d.bytes, m.dest).is_ok() && d.voiced {
                        m.caller.on_wire(now_us as f64 / 1000.0);
                    }
                }
                // The agents' packets since the last tick, each with the
                // kernel's arrival time: read here rather than woken for each
                // (the socket is not on the reactor), which would cost this
                // process a context switch a packet on the server's cores.
                loop {
                    let mut iov = [IoSliceMut::new(&mut buf)];
                    let Ok(msg) = recvmsg::<SockaddrIn>(socket.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_DONTWAIT) else {
                        break;
                    };
                    let at = msg.cmsgs().ok().and_then(|mut c| {
                        c.find_map(|c| match c {
                            ControlMessageOwned::ScmTimestampns(ts) => Some(clock.kernel_ms(&ts)),
                            _ => None,
                        })
                    });
                    let (len, Some(from)) = (msg.bytes, msg.address.map(|a| SocketAddr::V4(a.into()))) else { continue };
                    let at = at.unwrap_or_else(|| clock.now());
                    let Ok(p) = RtpPacket::parse(&buf[..len]) else { continue };
                    // Our own packets echoed back (a SIPp -rtp_echo floor) by SSRC; else by source.
                    let id = by_ssrc.get(&p.ssrc).copied().or_else(|| by_addr.get(&from).and_then(|v| v.first().copied()));
                    if let Some(m) = id.and_then(|id| calls.get_mut(&id)) {
                        m.caller.on_agent_packet(at, p.seq, p.timestamp, p.marker, p.payload);
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- SIP

/// SIP over one UDP socket: messages routed to calls by Call-ID.
struct Sip {
    socket: UdpSocket,
    local: SocketAddr,
    target: SocketAddr,
    calls: std::sync::Mutex<HashMap<String, mpsc::UnboundedSender<Message>>>,
}

impl Sip {
    async fn run(self: Arc<Self>) {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, _)) = self.socket.recv_from(&mut buf).await {
            let Ok(msg) = message::parse(&buf[..n], Framing::Datagram) else { continue };
            let headers = match &msg {
                Message::Request(r) => &r.headers,
                Message::Response(r) => &r.headers,
            };
            let Some(call_id) = headers.get("call-id") else { continue };
            let tx =
                self.calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(call_id).cloned();
            if let Some(tx) = tx {
                let _ = tx.send(msg);
            }
        }
    }

    async fn send(&self, bytes: &[u8]) {
        let _ = self.socket.send_to(bytes, self.target).await;
    }
}

/// How one call went.
#[derive(Debug, Default)]
struct CallResult {
    setup_ms: Option<f64>,
    failure: Option<String>,
    ended_by_server: bool,
    measured: Measured,
}

fn rand_hex() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Sends `request` until a response for it arrives (RFC 3261 timer A: 500 ms doubling), 32 s at most.
async fn transact(
    sip: &Sip,
    request: &str,
    rx: &mut mpsc::UnboundedReceiver<Message>,
    method: &str,
) -> Result<message::Response, String> {
    let began = Instant::now();
    let mut wait = Duration::from_millis(500);
    sip.send(request.as_bytes()).await;
    loop {
        match tokio::time::timeout(wait, rx.recv()).await {
            Ok(Some(Message::Response(r))) => {
                let cseq_method =
                    r.headers.get("cseq").and_then(|c| c.split_whitespace().nth(1)).unwrap_or("");
                if cseq_method != method {
                    continue;
                }
                if r.status >= 200 {
                    return Ok(r);
                }
                // Provisional: stop retransmitting, wait for the final answer.
                wait = Duration::from_secs(32);
            }
            Ok(Some(Message::Request(_))) => {}
            Ok(None) => return Err("closed".into()),
            Err(_) if began.elapsed() > Duration::from_secs(32) => {
                return Err(format!("{method}: no answer"));
            }
            Err(_) => {
                sip.send(request.as_bytes()).await;
                wait = (wait * 2).min(Duration::from_secs(4));
            }
        }
    }
}

/// The media address in an SDP answer.
fn sdp_media(body: &[u8]) -> Option<SocketAddr> {
    let text = std::str::from_utf8(body).ok()?;
    let ip = text.lines().find_map(|l| l.strip_prefix("c=IN IP4 "))?.trim();
    let port = text.lines().find_map(|l| l.strip_prefix("m=audio "))?.split_whitespace().next()?;
    format!("{ip}:{port}").parse().ok()
}

#[allow(clippy::too_many_arguments)]
async fn call(
    id: u64,
    sip: Arc<Sip>,
    args: Arc<Args>,
    clock: Clock,
    lines: Arc<Lines>,
    shard: (mpsc::UnboundedSender<ShardCmd>, SocketAddr),
    up: mpsc::UnboundedSender<()>,
    mut hangup: tokio::sync::watch::Receiver<bool>,
) -> CallResult {
    let mut result = CallResult::default();
    let call_id = format!("lg{id}-{}", rand_hex());
    let tag = rand_hex();
    let (tx, mut rx) = mpsc::unbounded_channel();
    sip.calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(call_id.clone(), tx);
    let (local, target, number) = (sip.local, args.target, &args.number);
    let (shard_tx, rtp_addr) = shard;
    let sdp = format!(
        "v=0\r\no=loadgen {id} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n",
        rtp_addr.port()
    );
    let request = |method: &str, cseq: u32, branch: &str, to_tag: &str, body: &str| {
        let to_tag = if to_tag.is_empty() { String::new() } else { format!(";tag={to_tag}") };
        let ctype = if body.is_empty() { String::new() } else { "Content-Type: application/sdp\r\n".into() };
        format!(
            "{method} sip:{number}@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:loadgen@{local}>;tag={tag}\r\nTo: <sip:{number}@{target}>{to_tag}\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:loadgen@{local}>\r\n{ctype}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let invite = request("INVITE", 1, &rand_hex(), "", &sdp);
    let began = clock.now();
    let answer = match transact(&sip, &invite, &mut rx, "INVITE").await {
        Ok(r) if (200..300).contains(&r.status) => r,
        Ok(r) => {
            result.failure = Some(format!("INVITE: {} {}", r.status, r.reason));
            let ack = request(
                "ACK",
                1,
                &rand_hex(),
                r.headers.get("to").and_then(to_tag).unwrap_or_default().as_str(),
                "",
            );
            sip.send(ack.as_bytes()).await;
            let _ = up.send(());
            return result;
        }
        Err(e) => {
            result.failure = Some(e);
            let _ = up.send(());
            return result;
        }
    };
    result.setup_ms = Some(clock.now() - began);
    let to_tag = answer.headers.get("to").and_then(to_tag).unwrap_or_default();
    let ack = request("ACK", 1, &rand_hex(), &to_tag, "");
    sip.send(ack.as_bytes()).await;
    let Some(dest) = sdp_media(&answer.body) else {
        result.failure = Some("no media address in the answer".into());
        let _ = up.send(());
        return result;
    };
    let (done_tx, done_rx) = oneshot::channel();
    let media = Media {
        caller: Caller::new(lines, clock.now()),
        impairment: Impairment::new(Profile::named(&args.profile).unwrap_or(Profile::CLEAN), args.seed ^ id),
        dest,
        ssrc: rand::random(),
        seq: rand::random(),
        ts: rand::random(),
        done: Some(done_tx),
    };
    let _ = shard_tx.send(ShardCmd::Add { id, media: Box::new(media) });
    let _ = up.send(());
    // Until we hang up, or the server does.
    loop {
        tokio::select! {
            // Sent once, true: the clone saw the value before it, so this fires.
            _ = hangup.changed() => break,
            msg = rx.recv() => match msg {
                Some(Message::Request(r)) if r.method.as_str() == "BYE" => {
                    let ok = message::response_to(&r.headers, 200, "OK", &tag);
                    sip.send(&ok.to_bytes()).await;
                    result.ended_by_server = true;
                    break;
                }
                // The 200 OK again: our ACK was lost.
                Some(Message::Response(r)) if r.status == 200 => sip.send(ack.as_bytes()).await,
                Some(_) => {}
                None => break,
            },
        }
    }
    let _ = shard_tx.send(ShardCmd::Remove { id });
    result.measured = done_rx.await.unwrap_or_default();
    if !result.ended_by_server {
        let bye = request("BYE", 2, &rand_hex(), &to_tag, "");
        if let Err(e) = transact(&sip, &bye, &mut rx, "BYE").await {
            result.failure = Some(e);
        }
    }
    sip.calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&call_id);
    result
}

fn to_tag(to: &str) -> Option<String> {
    to.split(';').find_map(|p| p.trim().strip_prefix("tag=")).map(str::to_owned)
}

// ---------------------------------------------------------------- metrics

/// The server's jitter buffer and media tick figures from its Prometheus text.
async fn jitter_metrics(url: &str) -> HashMap<String, f64> {
    let Ok(resp) = reqwest::get(url).await else { return HashMap::new() };
    let text = resp.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("voxgate_jitter") || l.starts_with("voxgate_media_tick"))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// What a run measured, before it is summed up.
struct Run {
    results: Vec<CallResult>,
    /// The server's jitter and tick metrics before and after.
    before: HashMap<String, f64>,
    after: HashMap<String, f64>,
    /// The server's CPU while every call was up, and the load generator's own.
    cpu_pct: f64,
    own_cpu_pct: f64,
    /// The server's largest and idle resident memory, MiB.
    rss_max: f64,
    rss_idle: f64,
    held_s: f64,
}

/// The run's figures, as BENCHMARKS.md and the plots read them.
fn report(args: &Args, profile: &str, run: &Run) -> serde_json::Value {
    let results = &run.results;
    let answered = results.iter().filter(|r| r.setup_ms.is_some()).count();
    let failures: Vec<&String> = results.iter().filter_map(|r| r.failure.as_ref()).collect();
    let ended_by_server = results.iter().filter(|r| r.ended_by_server).count();
    let mut setup: Vec<f64> = results.iter().filter_map(|r| r.setup_ms).collect();
    let mut turn: Vec<f64> = results.iter().flat_map(|r| r.measured.turn_ms.iter().copied()).collect();
    let mut barge: Vec<f64> = results.iter().flat_map(|r| r.measured.barge_in_ms.iter().copied()).collect();
    let mut lateness: Vec<f64> =
        results.iter().flat_map(|r| r.measured.lateness_ms.iter().copied()).collect();
    let sum = |f: fn(&Measured) -> u64| results.iter().map(|r| f(&r.measured)).sum::<u64>();
    let (frames, late, lost) = (sum(|m| m.frames), sum(|m| m.late), sum(|m| m.lost));
    let (unmarked, unanswered) = (sum(|m| m.unmarked_spurts), sum(|m| m.unanswered));
    let (cpu_pct, own_cpu_pct, rss_max, rss_idle) = (run.cpu_pct, run.own_cpu_pct, run.rss_max, run.rss_idle);
    let (before, after) = (&run.before, &run.after);
    let n = answered.max(1) as f64;
    let delta = |k: &str| after.get(k).copied().unwrap_or(0.0) - before.get(k).copied().unwrap_or(0.0);
    let fate = |f: &str| delta(&format!("voxgate_jitter_packets_total{{fate=\"{f}\"}}"));
    let jb_received = fate("received");
    let jb_late = fate("late");
    let jb_count = delta("voxgate_jitter_delay_seconds_count");
    let jb_delay_ms =
        if jb_count > 0.0 { delta("voxgate_jitter_delay_seconds_sum") / jb_count * 1000.0 } else { 0.0 };
    // The server's media ticks in the held period, and how many ran later
    // than 1, 4 and 16 ms (from the histogram's cumulative buckets).
    let ticks = delta("voxgate_media_tick_lateness_seconds_count");
    let ticks_later = |ms: f64| {
        let le = after
            .keys()
            .filter_map(|k| k.strip_prefix("voxgate_media_tick_lateness_seconds_bucket{le=\""))
            .filter_map(|k| k.strip_suffix("\"}"))
            .find(|le| le.parse::<f64>().is_ok_and(|v| (v * 1000.0 - ms).abs() < 1e-6));
        le.map_or(0.0, |le| {
            ticks - delta(&format!("voxgate_media_tick_lateness_seconds_bucket{{le=\"{le}\"}}"))
        })
    };
    let p = |v: &mut Vec<f64>, q: f64| percentile(v, q);
    // The distributions, as (quantile, ms) every 5 %, for the CDF plots.
    let cdf = |v: &mut Vec<f64>, less: f64| -> Vec<(f64, f64)> {
        (1..=20).map(|i| f64::from(i) / 20.0).map(|q| (q, percentile(v, q) - less)).collect()
    };
    serde_json::json!({
        "label": args.label, "profile": profile, "calls": args.calls, "hold_s": args.hold,
        "answered": answered, "failed": failures.len(), "ended_by_server": ended_by_server,
        "setup_ms": {"p50": p(&mut setup, 0.5), "p99": p(&mut setup, 0.99), "max": p(&mut setup, 1.0)},
        "server_cpu_pct": cpu_pct, "cpu_pct_per_call": cpu_pct / n,
        "server_rss_mib": rss_max, "server_rss_idle_mib": rss_idle, "rss_kib_per_call": (rss_max - rss_idle) * 1024.0 / n,
        "loadgen_cpu_pct": own_cpu_pct,
        "agent_frames": frames, "late_frames": late, "lost_frames": lost, "unmarked_spurts": unmarked,
        "lateness_ms": {"p50": p(&mut lateness, 0.5), "p99": p(&mut lateness, 0.99), "max": p(&mut lateness, 1.0)},
        "turn_ms": {"n": turn.len(), "p50": p(&mut turn, 0.5), "p99": p(&mut turn, 0.99), "max": p(&mut turn, 1.0)},
        "waits_ms": args.waits_ms,
        "server_added_ms": {"p50": p(&mut turn, 0.5) - args.waits_ms, "p99": p(&mut turn, 0.99) - args.waits_ms},
        "barge_in_ms": {"n": barge.len(), "p50": p(&mut barge, 0.5), "p99": p(&mut barge, 0.99), "cdf": cdf(&mut barge, 0.0)},
        "server_added_cdf": cdf(&mut turn, args.waits_ms),
        "unanswered": unanswered,
        "jitter": {"received": jb_received, "late": jb_late, "lost": fate("lost"), "concealed": fate("concealed"),
                   "duplicate": fate("duplicate"), "late_rate": if jb_received > 0.0 { jb_late / jb_received } else { 0.0 },
                   "mean_delay_ms": jb_delay_ms},
        "media_ticks": {"count": ticks, "over_1ms": ticks_later(1.0), "over_4ms": ticks_later(4.0), "over_16ms": ticks_later(16.0)},
    })
}

/// The report in a few lines.
fn print_summary(args: &Args, r: &serde_json::Value, held_s: f64) {
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
    let u = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    println!(
        "{} calls ({}, {}) held {held_s:.0} s: {} answered, {} failed, {} ended by the server\n\
         setup p50 {:.1} ms p99 {:.1} ms | server CPU {:.0}% of a core ({:.3}% per call), RSS {:.0} MiB \
         (idle {:.0}; {:.0} KiB per call) | load generator CPU {:.0}%\n\
         agent frames {}: {} late (> 20 ms), {} lost, {} talkspurts unmarked; lateness p99 {:.1} ms max {:.1} ms\n\
         turn latency n={} p50 {:.0} ms p99 {:.0} ms (server-added, less {:.0} ms of set waits: p50 {:.0} ms p99 {:.0} ms); barge-in n={} p50 {:.0} ms p99 {:.0} ms; {} unanswered\n\
         server jitter buffer: {} received, {} late, mean delay {:.0} ms\n\
         server media ticks: {}, later than 1 ms {:.0}, 4 ms {:.0}, 16 ms {:.0}",
        args.calls,
        args.label,
        r["profile"].as_str().unwrap_or_default(),
        u(&r["answered"]),
        u(&r["failed"]),
        u(&r["ended_by_server"]),
        f(&r["setup_ms"]["p50"]),
        f(&r["setup_ms"]["p99"]),
        f(&r["server_cpu_pct"]),
        f(&r["cpu_pct_per_call"]),
        f(&r["server_rss_mib"]),
        f(&r["server_rss_idle_mib"]),
        f(&r["rss_kib_per_call"]),
        f(&r["loadgen_cpu_pct"]),
        u(&r["agent_frames"]),
        u(&r["late_frames"]),
        u(&r["lost_frames"]),
        u(&r["unmarked_spurts"]),
        f(&r["lateness_ms"]["p99"]),
        f(&r["lateness_ms"]["max"]),
        u(&r["turn_ms"]["n"]),
        f(&r["turn_ms"]["p50"]),
        f(&r["turn_ms"]["p99"]),
        args.waits_ms,
        f(&r["server_added_ms"]["p50"]),
        f(&r["server_added_ms"]["p99"]),
        u(&r["barge_in_ms"]["n"]),
        f(&r["barge_in_ms"]["p50"]),
        f(&r["barge_in_ms"]["p99"]),
        u(&r["unanswered"]),
        f(&r["jitter"]["received"]),
        f(&r["jitter"]["late"]),
        f(&r["jitter"]["mean_delay_ms"]),
        f(&r["media_ticks"]["count"]),
        f(&r["media_ticks"]["over_1ms"]),
        f(&r["media_ticks"]["over_4ms"]),
        f(&r["media_ticks"]["over_16ms"]),
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    let profile =
        Profile::named(&args.profile).ok_or_else(|| anyhow::anyhow!("unknown profile {}", args.profile))?;
    let clock = Clock::new();
    let lines = Arc::new(Lines::new(
        &read_fixture(&args.fixtures.join("book_table_8k.wav"))?,
        &read_fixture(&args.fixtures.join("order_status_8k.wav"))?,
    ));
    let mut shards = Vec::new();
    for _ in 0..args.shards.max(1) {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
        setsockopt(&socket, sockopt::ReceiveTimestampns, &true)?;
        setsockopt(&socket, sockopt::RcvBuf, &(4 << 20))?;
        socket.set_nonblocking(true)?;
        let addr = socket.local_addr()?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(shard(socket, clock, rx));
        shards.push((tx, addr));
    }
    let sip_socket = UdpSocket::bind("127.0.0.1:0").await?;
    let sip = Arc::new(Sip {
        local: sip_socket.local_addr()?,
        socket: sip_socket,
        target: args.target,
        calls: std::sync::Mutex::default(),
    });
    tokio::spawn(sip.clone().run());

    let before = match &args.metrics {
        Some(url) => jitter_metrics(url).await,
        None => HashMap::new(),
    };
    let (_, rss_idle) = process_usage(args.pid);
    let (own_cpu0, _) = process_usage(std::process::id());
    let (hangup_tx, hangup_rx) = tokio::sync::watch::channel(false);
    let (up_tx, mut up_rx) = mpsc::unbounded_channel();
    let mut tasks = Vec::with_capacity(args.calls);
    let gap = Duration::from_secs_f64(1.0 / args.rate.max(0.001));
    let ramp = Instant::now();
    for id in 0..args.calls as u64 {
        let shard = shards[id as usize % shards.len()].clone();
        tasks.push(tokio::spawn(call(
            id,
            sip.clone(),
            args.clone(),
            clock,
            lines.clone(),
            shard,
            up_tx.clone(),
            hangup_rx.clone(),
        )));
        tokio::time::sleep_until(tokio::time::Instant::from_std(ramp + gap * (id as u32 + 1))).await;
    }
    for _ in 0..args.calls {
        up_rx.recv().await;
    }
    // All calls are up (or failed): the steady state.
    let ramp_s = ramp.elapsed().as_secs_f64();
    let (cpu0, _) = process_usage(args.pid);
    let steady = Instant::now();
    let mut rss_max: f64 = 0.0;
    while steady.elapsed() < Duration::from_secs(args.hold) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss_max = rss_max.max(process_usage(args.pid).1);
    }
    let (cpu1, _) = process_usage(args.pid);
    let held_s = steady.elapsed().as_secs_f64();
    let (own_cpu1, _) = process_usage(std::process::id());
    hangup_tx.send(true)?;
    let mut results = Vec::with_capacity(tasks.len());
    for t in tasks {
        results.push(t.await?);
    }
    let after = match &args.metrics {
        Some(url) => {
            tokio::time::sleep(Duration::from_millis(500)).await;
            jitter_metrics(url).await
        }
        None => HashMap::new(),
    };

    let run = Run {
        results,
        before,
        after,
        cpu_pct: (cpu1 - cpu0) / held_s * 100.0,
        own_cpu_pct: (own_cpu1 - own_cpu0) / (ramp_s + held_s) * 100.0,
        rss_max,
        rss_idle,
        held_s,
    };
    let report = report(&args, profile.name, &run);
    print_summary(&args, &report, run.held_s);
    if let Some(first) = run.results.iter().find_map(|r| r.failure.as_ref()) {
        println!("failures, e.g.: {first}");
    }
    if let Some(path) = &args.json {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        writeln!(f, "{report}")?;
    }
    Ok(())
}
