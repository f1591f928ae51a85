//! `voxgate console` through cpal's real ALSA path, on a machine with no
//! sound card: a private PulseAudio with two null sinks stands in for the
//! laptop's devices (ALSA's `pulse` device reaches it). The caller's question
//! is played into one sink, whose monitor is the console's microphone; the
//! console's speakers are the other sink, whose monitor is recorded. What
//! was recorded, transcribed, holds the agent's answer; digits typed are
//! keys pressed; Ctrl-C hangs up; the call's record and recording are there
//! like any call's. In real time.

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{API_KEY, TestResult, http, root};
use voxgate_pipeline::providers::local::whisper::{WhisperConfig, WhisperStt};

/// A PulseAudio server of this test's own, with sinks `caller` and
/// `speakers`; stopped when dropped.
struct Pulse {
    child: Child,
    dir: PathBuf,
}

impl Pulse {
    fn start(dir: &Path) -> Result<Self, Box<dyn std::error::Error>> {
        std::fs::create_dir_all(dir.join("run"))?;
        let socket = dir.join("native");
        let child = Command::new("pulseaudio")
            .args(["-n", "--daemonize=no", "--exit-idle-time=-1", "--disable-shm=yes"])
            .arg("-L")
            .arg(format!("module-native-protocol-unix socket={} auth-anonymous=1", socket.display()))
            .args(["-L", "module-null-sink sink_name=caller", "-L", "module-null-sink sink_name=speakers"])
            .envs(Self::env_in(dir))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let pulse = Self { child, dir: dir.to_owned() };
        // Up once it answers (a few hundred ms).
        let until = Instant::now() + Duration::from_secs(20);
        while !pulse
            .command("pactl")
            .arg("info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?
            .success()
        {
            assert!(Instant::now() < until, "PulseAudio did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(pulse)
    }

    /// What a client of this server needs; the ALSA plugin reads the same.
    fn env_in(dir: &Path) -> Vec<(&'static str, String)> {
        vec![
            ("HOME", dir.display().to_string()),
            ("XDG_RUNTIME_DIR", dir.display().to_string()),
            ("PULSE_RUNTIME_PATH", dir.join("run").display().to_string()),
            ("PULSE_SERVER", format!("unix:{}", dir.join("native").display())),
        ]
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.envs(Self::env_in(&self.dir));
        command
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The console's standard output, a line at a time.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().expect("piped");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Lines until one contains `what` (60 s at most): all of them.
fn until(lines: &mpsc::Receiver<String>, what: &str) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    until_line(lines, |l| l.contains(what)).map_err(|seen| format!("no {what:?} in {seen:#?}").into())
}

/// Lines until one is `found` (60 s at most): all of them, or those seen.
fn until_line(
    lines: &mpsc::Receiver<String>,
    found: impl Fn(&str) -> bool,
) -> Result<Vec<String>, Vec<String>> {
    let end = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while let Ok(line) = lines.recv_timeout(end.saturating_duration_since(Instant::now())) {
        let done = found(&line);
        seen.push(line);
        if done {
            return Ok(seen);
        }
    }
    Err(seen)
}

/// The id of the server's call in progress, once its record says so (10 s at most).
fn in_progress(server: &common::Server) -> Result<String, Box<dyn std::error::Error>> {
    for _ in 0..100 {
        let (_, calls) = http(server, "GET", "/v1/calls?status=in_progress", Some(API_KEY), None)?;
        if let Some(id) = calls["calls"][0]["id"].as_str() {
            return Ok(id.to_owned());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err("no call in progress".into())
}

#[test]
fn a_console_call_is_heard_answered_and_recorded_like_any_call() -> TestResult {
    let dir = tempfile::tempdir()?;
    let pulse = Pulse::start(&dir.path().join("pulse"))?;
    let (data, heard) = (dir.path().join("data"), dir.path().join("heard.wav"));
    let storage = [
        ("VOXGATE_STORAGE__RECORDINGS_DIR", data.join("recordings").display().to_string()),
        ("VOXGATE_STORAGE__DATABASE_URL", format!("sqlite://{}/voxgate.db", data.display())),
    ];

    // A server on the same store, with a phone call in progress: its call
    // is its own, and the console must not take it for one a crash left.
    let env: Vec<(&str, String)> = storage.iter().map(|(k, v)| (*k, v.clone())).collect();
    let quiet_caller = ("VOXGATE_RTP__NO_MEDIA_TIMEOUT_S", "600".to_owned());
    let server = common::start_server(&[env, vec![quiet_caller]].concat())?;
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let (sip, to_tagged, _) = common::caller::call(&server, &rtp, "0")?;
    let phone_call = in_progress(&server)?;

    // Its devices: ALSA's `pulse` is there.
    let list = pulse.command(env!("CARGO_BIN_EXE_voxgate")).args(["console", "--list-devices"]).output()?;
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(listed.lines().any(|l| l.starts_with("input  pulse")), "{listed}");

    // What the speakers play, recorded from the start.
    let mut recorder = pulse
        .command("parec")
        .args(["-d", "speakers.monitor", "--rate", "16000", "--channels", "1", "--format", "s16le"])
        .arg("--file-format=wav")
        .arg(&heard)
        .spawn()?;
    let mut console = pulse
        .command(env!("CARGO_BIN_EXE_voxgate"))
        .current_dir(root())
        .args(["console", "--config", "config.toml", "--input", "pulse", "--output", "pulse"])
        .envs([("PULSE_SOURCE", "caller.monitor"), ("PULSE_SINK", "speakers")])
        .envs(storage.iter().cloned())
        // "Are you still there?" 2 s after the answer: the sign it was all played.
        .env("VOXGATE_AGENT__REPROMPT_AFTER_MS", "2000")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let lines = lines_of(&mut console);
    until(&lines, "agent: Hello, thanks for calling")?;
    // The caller asks as the greeting starts: over it (barge-in).
    let played = pulse
        .command("paplay")
        .args(["-d", "caller"])
        .arg(root().join("fixtures/audio/store_hours_16k.wav"))
        .status()?;
    assert!(played.success());
    let answer = until(&lines, "Are you still there")?;
    // Keys typed are keys pressed: 4, 2 and # are the caller's next turn.
    let mut keyboard = console.stdin.take().ok_or("stdin")?;
    std::io::Write::write_all(&mut keyboard, b"42#\n")?;
    // The agent answers them (a line that is not a reprompt).
    until_line(&lines, |l| l.starts_with("agent: ") && !l.contains("still there"))
        .map_err(|seen| format!("no answer to the keys in {seen:#?}"))?;
    // Ctrl-C hangs up.
    Command::new("kill").args(["-INT", &console.id().to_string()]).status()?;
    let status = console.wait()?;
    // parec writes the WAV's lengths when it is asked to stop, not when killed.
    Command::new("kill").args(["-TERM", &recorder.id().to_string()]).status()?;
    recorder.wait()?;
    let mut said = String::new();
    std::io::Read::read_to_string(&mut console.stderr.take().ok_or("stderr")?, &mut said)?;
    assert!(status.success(), "{status}: {said}");
    assert!(said.contains("its record and recording are saved"), "{said}");
    let transcript = answer.join("\n");
    assert!(transcript.contains("you  : "), "the caller's turn: {transcript}");
    assert!(transcript.contains("ms to the agent's first audio"), "a turn latency: {transcript}");

    // What came out of the speakers, transcribed.
    let mut wav = hound::WavReader::open(&heard)?;
    assert_eq!(wav.spec().sample_rate, 16_000);
    let pcm: Vec<i16> = wav.samples::<i16>().collect::<Result<_, _>>()?;
    let models = std::env::var_os("VOXGATE_MODELS__DIR").map_or_else(|| root().join("models"), PathBuf::from);
    let whisper = WhisperStt::load(&WhisperConfig::with_models_dir(&models))?;
    let text = pcm
        .chunks(16_000 * 5)
        .map(|piece| whisper.transcribe(piece))
        .collect::<Result<Vec<_>, _>>()?
        .join(" ")
        .to_lowercase();
    assert!(text.contains("hello"), "the greeting's start, heard: {text}");
    assert!(text.contains('9') || text.contains("nine"), "the answer, heard: {text}");

    // The phone call ran on, untouched; it ends when its caller hangs up.
    let (_, record) = http(&server, "GET", &format!("/v1/calls/{phone_call}"), Some(API_KEY), None)?;
    assert_eq!(record["status"], "in_progress", "{record:#}");
    common::caller::hang_up(&server, &sip, &to_tagged)?;

    // The console call's record and recording, through the control API.
    let (_, calls) = http(&server, "GET", "/v1/calls?channel=console", Some(API_KEY), None)?;
    let id = calls["calls"][0]["id"].as_str().ok_or_else(|| format!("no console call in {calls:#}"))?;
    let (_, call) = http(&server, "GET", &format!("/v1/calls/{id}"), Some(API_KEY), None)?;
    assert_eq!(call["channel"], "console", "{call:#}");
    assert_eq!(call["end"]["reason"], "caller_hung_up", "{call:#}");
    let caller = common::lines(&call, "caller")?;
    assert!(caller.iter().any(|l| l.contains("Saturday")), "{call:#}");
    assert_eq!(caller.last().map(String::as_str), Some("42"), "{call:#}");
    // The greeting stopped when the caller talked over it, and the record
    // keeps only what was heard of it.
    let greeting = &call["transcript"][0];
    assert_eq!((&greeting["speaker"], &greeting["interrupted"]), (&"agent".into(), &true.into()), "{call:#}");
    assert!(!greeting["text"].as_str().unwrap_or_default().contains("help you today"), "{call:#}");
    let recording = common::recording(&server, call["id"].as_str().unwrap_or_default(), API_KEY)?;
    let wav = hound::WavReader::new(std::io::Cursor::new(recording))?;
    assert!(wav.duration() > 16_000 * 5, "seconds of the call recorded: {}", wav.duration());
    Ok(())
}

#[test]
fn a_device_that_is_not_there_is_a_clear_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let pulse = Pulse::start(&dir.path().join("pulse"))?;
    let out = pulse
        .command(env!("CARGO_BIN_EXE_voxgate"))
        .current_dir(root())
        .args(["console", "--config", "config.toml", "--input", "no-such-microphone"])
        .env("VOXGATE_STORAGE__DATABASE_URL", format!("sqlite://{}/voxgate.db", dir.path().display()))
        .env("VOXGATE_STORAGE__RECORDINGS_DIR", dir.path().join("recordings"))
        .stdin(Stdio::null())
        .output()?;
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("no audio input device named \"no-such-microphone\""), "{said}");
    Ok(())
}
