//! Faults, with nothing lost: the server killed mid-call, a caller whose RTP
//! stops, a caller that vanishes without a BYE. Real peers (SIPp) on
//! 127.0.0.1; the agent runs on the scripted providers, so no model loads.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{API_KEY, Server, TestResult, free_udp_port, http, recording, root, start_server, url_escape};

/// A scratch folder for a server's records and recordings that outlives
/// the server (so a second one can start on them); removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Result<Self, Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!("voxgate-faults-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn env(dir: &Path, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("VOXGATE_VAD__BACKEND", "webrtc".to_owned()),
        ("VOXGATE_AGENT__STT", "scripted".to_owned()),
        ("VOXGATE_AGENT__LLM", "scripted".to_owned()),
        ("VOXGATE_AGENT__TTS", "scripted".to_owned()),
        ("VOXGATE_AGENT__KNOWLEDGE", String::new()),
        ("VOXGATE_STORAGE__RECORDINGS_DIR", dir.join("recordings").display().to_string()),
        ("VOXGATE_STORAGE__DATABASE_URL", format!("sqlite://{}/voxgate.db", dir.display())),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    env
}

/// SIPp placing one call to the server with `scenario` (default: its
/// built-in caller holding `hold_ms`), run in `dir`.
fn caller(server: &Server, dir: &Path, scenario: Option<&str>, hold_ms: u32) -> std::io::Result<Child> {
    let mut cmd = Command::new("sipp");
    cmd.current_dir(dir).arg(format!("127.0.0.1:{}", server.sip_port));
    match scenario {
        Some(s) => cmd.args(["-sf", s]),
        None => cmd.args(["-sn", "uac", "-d", &hold_ms.to_string()]),
    };
    cmd.args(["-s", "1000", "-i", "127.0.0.1", "-p", &free_udp_port()?.to_string()])
        .args(["-mp", &free_udp_port()?.to_string(), "-m", "1", "-l", "1", "-timeout", "60s", "-nostdin"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

/// The calls the server lists, newest first.
fn calls(server: &Server) -> Result<Vec<serde_json::Value>, Box<dyn std::error::Error>> {
    let (status, list) = http(server, "GET", "/v1/calls", Some(API_KEY), None)?;
    assert_eq!(status, 200, "{list}");
    Ok(list["calls"].as_array().cloned().unwrap_or_default())
}

/// Waits (bounded) until the server lists a call `pred` accepts.
fn wait_for_call(
    server: &Server,
    within: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let started = Instant::now();
    while started.elapsed() < within {
        if let Some(c) = calls(server)?.into_iter().find(|c| pred(c)) {
            return Ok(c);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("no such call within {within:?}: {:?}", calls(server)?).into())
}

/// The audio a recording being written holds on disk, in ms (by its
/// header's byte rate, to the end of the file); `None` before it has a header.
fn on_disk_ms(path: &Path) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    let head = bytes.get(..bytes.len().min(256))?;
    let data_start = head.windows(4).position(|w| w == b"data")? + 8;
    let byte_rate = u64::from(u32::from_le_bytes(bytes.get(28..32)?.try_into().ok()?));
    Some((bytes.len().saturating_sub(data_start) as u64) * 1000 / byte_rate.max(1))
}

/// A recording's length in ms, and the mean absolute sample of each channel.
fn read_wav(bytes: &[u8]) -> Result<(u64, f64, f64), Box<dyn std::error::Error>> {
    let mut wav = hound::WavReader::new(std::io::Cursor::new(bytes))?;
    let spec = wav.spec();
    assert_eq!(spec.channels, 2, "stereo: caller left, agent right");
    let samples: Vec<i16> = wav.samples::<i16>().collect::<Result<_, _>>()?;
    let side = |ch: usize| {
        let s: Vec<f64> = samples.iter().skip(ch).step_by(2).map(|&v| f64::from(v).abs()).collect();
        s.iter().sum::<f64>() / s.len().max(1) as f64
    };
    let ms = samples.len() as u64 / 2 * 1000 / u64::from(spec.sample_rate);
    Ok((ms, side(0), side(1)))
}

#[test]
fn a_call_survives_kill_9_of_the_server_as_an_interrupted_record_with_its_recording() -> TestResult {
    let scratch = Scratch::new("kill9")?;
    let mut first = common::start_process(&env(&scratch.0, &[]))?;
    let mut sipp = caller(&first, &scratch.0, None, 30_000)?;
    // The record says the call runs as soon as it is answered.
    let live = wait_for_call(&first, Duration::from_secs(15), |c| c["status"] == "in_progress")?;
    let id = live["id"].as_str().ok_or("no id")?.to_owned();
    // Killed once three seconds of the call are on disk (the recorder
    // writes about once a second), whatever the machine's speed.
    let file = scratch.0.join(format!("recordings/{id}.wav"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while on_disk_ms(&file).is_none_or(|ms| ms < 3000) {
        assert!(Instant::now() < deadline, "the recording never reached 3 s on disk");
        std::thread::sleep(Duration::from_millis(20));
    }
    first.kill();
    let on_disk = on_disk_ms(&file).ok_or("the recording is gone")?;
    let _ = sipp.kill();
    let _ = sipp.wait();

    let second = start_server(&env(&scratch.0, &[]))?;
    let call = wait_for_call(&second, Duration::from_secs(10), |c| c["id"] == id.as_str())?;
    assert_eq!(call["status"], "interrupted", "{call}");
    // The recording plays to its last whole frame on disk at the kill.
    let (status, detail) =
        http(&second, "GET", &format!("/v1/calls/{}", url_escape(&id)), Some(API_KEY), None)?;
    assert_eq!(status, 200, "{detail}");
    let duration = detail["duration_ms"].as_u64().ok_or("no duration")?;
    let (wav_ms, _, agent) = read_wav(&recording(&second, &id, API_KEY)?)?;
    assert_eq!(duration, wav_ms, "{detail}");
    assert!(
        wav_ms >= 3000 && wav_ms.abs_diff(on_disk) <= 1,
        "recorded {wav_ms} ms of the {on_disk} ms on disk"
    );
    assert!(agent > 100.0, "the agent's greeting is in the recording (mean {agent})");
    // Like any ended call, it is billed (post-call work ran on it).
    let record = wait_for_post_call(&second, &id)?;
    assert!(record["post_call"]["jobs"].as_array().is_some_and(|j| !j.is_empty()), "{record}");
    Ok(())
}

#[test]
fn a_database_outage_mid_call_loses_nothing_the_record_waits_and_is_written_when_it_returns() -> TestResult {
    let scratch = Scratch::new("dbout")?;
    let mut pg = common::postgres::start()?;
    let server = start_server(&env(&scratch.0, &[("VOXGATE_STORAGE__DATABASE_URL", &pg.url)]))?;
    let mut sipp = caller(&server, &scratch.0, None, 6_000)?;
    let live = wait_for_call(&server, Duration::from_secs(15), |c| c["status"] == "in_progress")?;
    let id = live["id"].as_str().ok_or("no id")?.to_owned();
    // The database goes away while the call runs; the caller hangs up during the outage.
    pg.stop();
    let _ = sipp.wait();
    let spool = scratch.0.join("recordings/spool");
    let spooled = |dir: &Path| std::fs::read_dir(dir).map(|d| d.filter_map(Result::ok).count()).unwrap_or(0);
    let started = Instant::now();
    while spooled(&spool) == 0 && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(spooled(&spool), 1, "the call's record waits in the spool");
    assert!(scratch.0.join(format!("recordings/{id}.wav")).exists(), "its recording is kept");
    // Back: the record is written, as the call ended, and post-call work runs on it.
    pg.restart()?;
    let call = wait_for_call(&server, Duration::from_secs(40), |c| {
        c["id"] == id.as_str() && c["status"] != "in_progress"
    })?;
    assert_eq!(call["status"], "caller_hung_up", "{call}");
    let record = wait_for_post_call(&server, &id)?;
    let agent_said =
        record["transcript"].as_array().is_some_and(|t| t.iter().any(|l| l["speaker"] == "agent"));
    assert!(agent_said, "the transcript survived the outage: {record}");
    assert_eq!(spooled(&spool), 0, "the spool is empty again");
    Ok(())
}

fn wait_for_post_call(server: &Server, id: &str) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let started = Instant::now();
    loop {
        let (status, call) =
            http(server, "GET", &format!("/v1/calls/{}", url_escape(id)), Some(API_KEY), None)?;
        assert_eq!(status, 200, "{call}");
        let done =
            call["post_call"]["jobs"].as_array().is_some_and(|j| j.iter().any(|j| j["status"] == "done"));
        if done {
            return Ok(call);
        }
        if started.elapsed() > Duration::from_secs(15) {
            return Err(format!("post-call work never finished: {call}").into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The first seconds of a fixture, as raw µ-law for SIPp's rtp_stream.
fn write_ulaw(dir: &Path) -> std::io::Result<()> {
    let mut wav = hound::WavReader::open(root().join("fixtures/audio/book_table_8k.wav"))
        .map_err(std::io::Error::other)?;
    let bytes: Vec<u8> =
        wav.samples::<i16>().map_while(Result::ok).map(voxgate_codecs::g711::ulaw_encode).collect();
    std::fs::write(dir.join("caller.ulaw"), bytes)?;
    std::fs::copy(root().join("media-server/tests/sipp/rtp_stops.xml"), dir.join("rtp_stops.xml"))?;
    Ok(())
}

#[test]
fn callers_whose_rtp_stops_or_who_vanish_without_bye_are_hung_up_and_kept() -> TestResult {
    let scratch = Scratch::new("vanish")?;
    let server = start_server(&env(&scratch.0, &[("VOXGATE_RTP__NO_MEDIA_TIMEOUT_S", "2")]))?;
    let (stops, vanishes) = (scratch.0.join("stops"), scratch.0.join("vanishes"));
    for dir in [&stops, &vanishes] {
        std::fs::create_dir_all(dir)?;
        write_ulaw(dir)?;
    }
    // One caller talks, then its RTP stops; it answers the server's BYE.
    let stopping = caller(&server, &stops, Some("rtp_stops.xml"), 0)?;
    // Another talks, then is gone for good: no BYE, no answer to ours.
    let mut vanishing = caller(&server, &vanishes, Some("rtp_stops.xml"), 0)?;
    std::thread::sleep(Duration::from_millis(1500));
    vanishing.kill()?;
    vanishing.wait()?;
    assert!(common::sipp::finished(stopping)?, "the caller whose RTP stopped got the server's BYE");
    // Both end as no_media, recorded with the caller's speech in them
    // (the vanished one once the server's BYE has timed out: 32 s).
    let ended = |c: &serde_json::Value| c["status"] == "no_media";
    let started = Instant::now();
    while calls(&server)?.iter().filter(|c| ended(c)).count() < 2 {
        assert!(started.elapsed() < Duration::from_secs(45), "{:?}", calls(&server)?);
        std::thread::sleep(Duration::from_millis(200));
    }
    for call in calls(&server)? {
        let id = call["id"].as_str().ok_or("no id")?;
        let (ms, caller, _) = read_wav(&recording(&server, id, API_KEY)?)?;
        assert!(ms >= 1000, "{ms} ms recorded");
        assert!(caller > 100.0, "the caller's speech is in the recording (mean {caller})");
        let (_, detail) =
            http(&server, "GET", &format!("/v1/calls/{}", url_escape(id)), Some(API_KEY), None)?;
        assert!(detail["transcript"].as_array().is_some_and(|t| !t.is_empty()), "{detail}");
    }
    Ok(())
}

/// A tmpfs of `kib` KiB mounted at `dir` (root, as in CI), unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, kib: u32) -> Result<Self, Box<dyn std::error::Error>> {
        std::fs::create_dir_all(dir)?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir)
            .status()?;
        if !status.success() {
            return Err("mounting a small tmpfs failed (the test needs root, as CI has)".into());
        }
        Ok(Self(dir.to_owned()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_recordings_disk_loses_no_call() -> TestResult {
    let scratch = Scratch::new("diskfull")?;
    // 256 KiB: four seconds of a stereo 16 kHz recording.
    let disk = SmallDisk::mount(&scratch.0.join("recordings"), 256)?;
    let server = start_server(&env(&scratch.0, &[]))?;
    // The first call fills the disk part way through.
    let first = caller(&server, &scratch.0, None, 8000)?;
    assert!(common::sipp::finished(first)?, "the call went on to its end");
    let call = wait_for_call(&server, Duration::from_secs(10), |c| c["status"] == "caller_hung_up")?;
    let id = call["id"].as_str().ok_or("no id")?.to_owned();
    let (_, detail) = http(&server, "GET", &format!("/v1/calls/{}", url_escape(&id)), Some(API_KEY), None)?;
    let failed = |d: &serde_json::Value| {
        d["events"].as_array().is_some_and(|e| e.iter().any(|e| e["kind"] == "recording_failed"))
    };
    assert!(failed(&detail), "the recording's failure is in the call's events: {detail}");
    assert!(detail["duration_ms"].as_u64().is_some_and(|d| d >= 7000), "{detail}");
    assert!(
        detail["transcript"].as_array().is_some_and(|t| !t.is_empty()),
        "the greeting is in the transcript"
    );
    // What fitted plays: cut back to its last whole frame.
    let (ms, _, agent) = read_wav(&recording(&server, &id, API_KEY)?)?;
    assert!((2000..=4200).contains(&ms), "{ms} ms recorded of 256 KiB");
    assert!(agent > 100.0, "the greeting is in what was recorded");
    // A call that starts on the full disk runs without a recording.
    let second = caller(&server, &scratch.0, None, 3000)?;
    assert!(common::sipp::finished(second)?, "the second call went on to its end");
    let started = Instant::now();
    let other = loop {
        if let Some(c) =
            calls(&server)?.into_iter().find(|c| c["id"] != id.as_str() && c["status"] == "caller_hung_up")
        {
            break c;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no second call record");
        std::thread::sleep(Duration::from_millis(100));
    };
    let other_id = other["id"].as_str().ok_or("no id")?;
    let (status, link) =
        http(&server, "GET", &format!("/v1/calls/{}/recording", url_escape(other_id)), Some(API_KEY), None)?;
    assert_eq!(status, 404, "no recording: {link}");
    drop(server);
    drop(disk);
    Ok(())
}

/// An OpenAI-protocol chat server that dies mid-answer: the first request
/// gets its response headers and then a dropped connection, the second the
/// first sentence of its answer and then a dropped connection, every later
/// one the whole answer. Counts the requests.
fn dying_llm(requests: std::sync::Arc<std::sync::atomic::AtomicUsize>) -> std::io::Result<String> {
    use std::io::Write as _;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/v1", listener.local_addr()?);
    let chunk = |content: &str, finish: Option<&str>| {
        let body = serde_json::json!({
            "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
        });
        format!("data: {body}\n\n")
    };
    let whole = [
        chunk("Sure, one moment. ", None),
        chunk("We open at nine on Saturdays.", None),
        chunk("", Some("stop")),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    let first_sentence = chunk("Sure, one moment. ", None);
    common::serve_http(listener, move |mut stream| {
        // Post-call analytics ask too (with a response format): they get the whole answer, uncounted.
        let analytics = common::read_request(&mut stream).contains("response_format");
        let n = if analytics { 2 } else { requests.fetch_add(1, std::sync::atomic::Ordering::SeqCst) };
        // The length of the whole answer is promised, so a cut is an error, not an end.
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            whole.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = match n {
            0 => Ok(()),
            1 => stream.write_all(first_sentence.as_bytes()),
            _ => stream.write_all(whole.as_bytes()),
        };
        let _ = stream.flush();
        // Killed: the connection goes with it (after a beat, so the client has read what came).
        std::thread::sleep(Duration::from_millis(200));
        let _ = stream.shutdown(std::net::Shutdown::Both);
    })?;
    Ok(url)
}

#[test]
fn a_language_model_that_dies_mid_answer_loses_no_turn() -> TestResult {
    let scratch = Scratch::new("llm")?;
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let url = dying_llm(requests.clone())?;
    let server = start_server(&env(
        &scratch.0,
        &[
            ("VOXGATE_AGENT__LLM", "openai"),
            ("VOXGATE_OPENAI__BASE_URL", &url),
            ("VOXGATE_OPENAI__API_KEY", "k"),
            ("VOXGATE_AGENT__GREETING", ""),
            ("VOXGATE_RTP__NO_MEDIA_TIMEOUT_S", "2"),
        ],
    ))?;
    // The caller asks twice, five seconds apart.
    let mut wav = hound::WavReader::open(root().join("fixtures/audio/book_table_8k.wav"))?;
    let speech: Vec<i16> = wav.samples::<i16>().collect::<Result<_, _>>()?;
    let mut audio = speech.clone();
    audio.extend(std::iter::repeat_n(0i16, 8000 * 5));
    audio.extend(&speech);
    audio.extend(std::iter::repeat_n(0i16, 8000 * 4));
    std::fs::write(
        scratch.0.join("caller.ulaw"),
        audio.iter().map(|&s| voxgate_codecs::g711::ulaw_encode(s)).collect::<Vec<u8>>(),
    )?;
    std::fs::copy(root().join("media-server/tests/sipp/rtp_stops.xml"), scratch.0.join("rtp_stops.xml"))?;
    let sipp = caller(&server, &scratch.0, Some("rtp_stops.xml"), 0)?;
    assert!(common::sipp::finished(sipp)?, "the call ran to the server's BYE");
    let call = wait_for_call(&server, Duration::from_secs(10), |c| c["status"] == "no_media")?;
    let id = call["id"].as_str().ok_or("no id")?;
    let (_, detail) = http(&server, "GET", &format!("/v1/calls/{}", url_escape(id)), Some(API_KEY), None)?;
    let lines = |who: &str| -> Vec<String> {
        detail["transcript"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|l| l["speaker"] == who)
            .filter_map(|l| l["text"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(lines("caller").len(), 2, "{detail}");
    // Turn 1: killed before any output, tried again, killed after a sentence:
    // the caller heard that sentence, and the transcript keeps it. Turn 2: answered.
    assert_eq!(
        lines("agent"),
        vec!["Sure, one moment.".to_owned(), "Sure, one moment. We open at nine on Saturdays.".to_owned()],
        "{detail}"
    );
    let kinds: Vec<&str> =
        detail["events"].as_array().into_iter().flatten().filter_map(|e| e["kind"].as_str()).collect();
    assert!(kinds.contains(&"provider_retry") && kinds.contains(&"provider_failed"), "{kinds:?}");
    assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 3);
    Ok(())
}
