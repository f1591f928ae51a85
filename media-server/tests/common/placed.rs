//! Calls the server places to phones on this machine (baresip answering,
//! see [`super::heard::answering_phone`]), and the audio those phones say:
//! espeak-ng speech, silences and tones, made with sox at 8 kHz.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::heard::read_wav;
use super::{Server, TestResult};

/// Runs `program`; an error unless it succeeds.
pub fn run(program: &str, args: &[&str]) -> TestResult {
    let status = Command::new(program).args(args).status()?;
    if status.success() { Ok(()) } else { Err(format!("{program} {args:?}: {status}").into()) }
}

/// `text` spoken by espeak-ng, at 8 kHz mono 16-bit, into `out`.
pub fn speak(dir: &Path, text: &str, out: &Path) -> TestResult {
    let raw = dir.join("espeak.wav");
    run("espeak-ng", &["-w", &raw.display().to_string(), text])?;
    run("sox", &[&raw.display().to_string(), "-r", "8000", "-c", "1", "-b", "16", &out.display().to_string()])
}

/// Seconds of silence, at 8 kHz, into `out`.
pub fn silence(seconds: &str, out: &Path) -> TestResult {
    run("sox", &["-n", "-r", "8000", "-c", "1", "-b", "16", &out.display().to_string(), "trim", "0", seconds])
}

/// `parts` one after the other, into `out`.
pub fn concat(parts: &[&Path], out: &Path) -> TestResult {
    let mut args: Vec<String> = parts.iter().map(|p| p.display().to_string()).collect();
    args.push(out.display().to_string());
    run("sox", &args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// A WAV's length, in ms.
pub fn ms_of(wav: &Path) -> Result<u64, Box<dyn std::error::Error>> {
    let (samples, rate) = read_wav(wav)?;
    Ok(samples.len() as u64 * 1000 / u64::from(rate))
}

/// Places a call to `uri` with `extra` fields in the request; its id.
pub fn dial(server: &Server, uri: &str, extra: &str) -> Result<String, Box<dyn std::error::Error>> {
    let body = format!(r#"{{"to": "{uri}"{extra}}}"#);
    let (status, json) = super::http(server, "POST", "/v1/calls", Some(super::API_KEY), Some(&body))?;
    assert_eq!(status, 201, "{json}");
    Ok(json["id"].as_str().ok_or("no id")?.to_owned())
}

/// Waits (60 s at most) for the call to end and its record to be written,
/// then stops the `phones` (baresip has closed its recordings of the
/// call); the record.
pub fn ended(
    server: &Server,
    phones: &mut [&mut Child],
    id: &str,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let call = loop {
        let (status, call) =
            super::http(server, "GET", &format!("/v1/calls/{id}"), Some(super::API_KEY), None)?;
        assert_eq!(status, 200, "{call}");
        let over =
            !matches!(call["status"].as_str(), Some("in_progress" | "dialing" | "ringing" | "answered"));
        if over && call["transcript"].is_array() {
            break call;
        }
        if started.elapsed() > Duration::from_secs(60) {
            for phone in phones.iter_mut() {
                let _ = phone.kill();
            }
            return Err(format!("the call did not end: {call:#}").into());
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    // baresip quits on SIGTERM; it stays up after a call otherwise.
    std::thread::sleep(Duration::from_millis(500));
    for phone in phones.iter_mut() {
        run("kill", &["-TERM", &phone.id().to_string()])?;
        let stopping = Instant::now();
        while phone.try_wait()?.is_none() {
            if stopping.elapsed() > Duration::from_secs(5) {
                let _ = phone.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(call)
}

/// The call log's first event of `kind`.
pub fn event<'a>(call: &'a serde_json::Value, kind: &str) -> Option<&'a serde_json::Value> {
    call["events"].as_array()?.iter().find(|e| e["kind"] == kind)
}

/// A fresh directory for one test's files.
pub fn work_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("voxgate-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a work dir");
    dir
}
