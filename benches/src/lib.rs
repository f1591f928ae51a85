//! Benchmarks live in `benches/`; see BENCHMARKS.md.

pub mod caller;
pub mod impair;

/// The `q` quantile (0..=1) of `values` (sorted in place), nearest rank; 0 when empty.
pub fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// CPU seconds (user + system) and RSS in MiB of `pid`.
#[must_use]
pub fn process_usage(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis: utime is the 14th field overall, stime the 15th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    (cpu, rss_kb / 1024.0)
}

/// The agent's frames as a load-test call receives them, and the late gaps
/// between them: later than 60 ms, yet shorter than a pause between lines.
#[derive(Debug, Default, Clone, Copy)]
pub struct Arrivals {
    pub frames: u64,
    pub late: u64,
    last: Option<std::time::Instant>,
}

impl Arrivals {
    /// One more agent frame, now.
    pub fn frame(&mut self) {
        let now = std::time::Instant::now();
        if let Some(gap) = self.last.map(|prev| now - prev)
            && gap > std::time::Duration::from_millis(60)
            && gap < std::time::Duration::from_millis(400)
        {
            self.late += 1;
        }
        self.last = Some(now);
        self.frames += 1;
    }
}

/// Runs `calls` load-test calls at once (their starts spread over a second),
/// each `call(n)` lasting about `seconds`, while reading the server `pid`'s
/// CPU and (half way) RSS; prints one line of results for `what`.
pub async fn run_load<F, Fut, E>(what: &str, calls: usize, seconds: u64, pid: u32, call: F)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<Arrivals, E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    use std::time::{Duration, Instant};
    let (cpu0, _) = process_usage(pid);
    let began = Instant::now();
    let mut tasks = Vec::with_capacity(calls);
    for n in 0..calls {
        tasks.push(tokio::spawn(call(n)));
        tokio::time::sleep(Duration::from_millis(1000 / calls.max(1) as u64)).await;
    }
    tokio::time::sleep(Duration::from_secs(seconds / 2)).await;
    let (_, rss) = process_usage(pid);
    let (mut completed, mut total, mut failed) = (0, Arrivals::default(), Vec::new());
    for task in tasks {
        match task.await {
            Ok(Ok(a)) => {
                completed += 1;
                total.frames += a.frames;
                total.late += a.late;
            }
            Ok(Err(e)) => failed.push(e.to_string()),
            Err(e) => failed.push(e.to_string()),
        }
    }
    let (cpu1, _) = process_usage(pid);
    let cpu = (cpu1 - cpu0) / began.elapsed().as_secs_f64() * 100.0;
    println!(
        "{calls} {what} x {seconds} s: {completed} completed; agent frames {} ({} late gaps); server CPU {cpu:.1}% \
         of a core ({:.2}% per call); RSS {rss:.0} MiB",
        total.frames,
        total.late,
        cpu / calls as f64
    );
    if let Some(first) = failed.first() {
        println!("{} failed, e.g.: {first}", failed.len());
    }
}

/// The two messages that open a Twilio Media Streams call (`connected`,
/// then `start` for µ-law at 8 kHz), for stream `sid` of call `call_sid`.
#[must_use]
pub fn twilio_start(sid: &str, call_sid: &str) -> [String; 2] {
    [
        serde_json::json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}).to_string(),
        serde_json::json!({"event": "start", "streamSid": sid, "start": {"streamSid": sid, "callSid": call_sid,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})
        .to_string(),
    ]
}

/// 16 kHz audio in 20 ms frames, and the rate it was read at.
pub type Frames16k = (u32, Vec<Vec<i16>>);

/// A mono 16-bit WAV as 20 ms frames at 16 kHz (resampled from its rate,
/// the last frame padded), with the file's rate.
///
/// # Errors
/// The file cannot be read, or its rate cannot be resampled.
pub fn wav_frames_16k(path: &std::path::Path) -> Result<Frames16k, Box<dyn std::error::Error>> {
    use voxgate_codecs::SampleRate;
    use voxgate_codecs::resample::FrameResampler;
    let mut reader = hound::WavReader::open(path)?;
    let rate = SampleRate(reader.spec().sample_rate);
    let samples: Vec<i16> = reader.samples::<i16>().collect::<Result<_, _>>()?;
    let mut resampler = (rate != SampleRate::HZ_16000)
        .then(|| FrameResampler::new(rate, SampleRate::HZ_16000))
        .transpose()?;
    let mut frames = Vec::new();
    for chunk in samples.chunks(rate.samples_per_frame()) {
        let mut input = chunk.to_vec();
        input.resize(rate.samples_per_frame(), 0);
        let mut out = vec![0i16; 320];
        match resampler.as_mut() {
            Some(r) => {
                r.process(&input, &mut out)?;
            }
            None => out.copy_from_slice(&input),
        }
        frames.push(out);
    }
    Ok((rate.0, frames))
}
