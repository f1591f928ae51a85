//! A phone call from a real SIP phone (baresip) to the running server, on
//! 127.0.0.1: the caller waits for the greeting, asks a fixture question,
//! and records what it hears; that recording, transcribed, holds the
//! greeting and an answer from the agent's knowledge. The call log and the
//! stereo recording are checked too.

mod common;

use common::heard::{PhoneCodec, ask_by_phone, ask_by_phone_with};
use common::{TestResult, start_process};

#[test]
fn a_phone_caller_hears_the_greeting_and_an_answer_from_the_knowledge() -> TestResult {
    let work = std::env::temp_dir().join(format!("voxgate-sip-call-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let (recordings, phone) = (work.join("recordings"), work.join("baresip"));

    let server = start_process(&[("VOXGATE_STORAGE__RECORDINGS_DIR", recordings.display().to_string())])?;
    let text = ask_by_phone(&phone, &format!("sip:1000@127.0.0.1:{}", server.sip_port))?;
    assert!(text.contains("sunrise bakery") || text.contains("thanks for calling"), "no greeting in: {text}");
    // The server's side, through the calls API: the call's record and its recording.
    let log = common::call_log(&server)?;
    assert!(
        text.contains('9') || text.contains("nine"),
        "no answer from the knowledge in: {text}\nthe call's transcript: {:#}",
        log["transcript"]
    );
    let lines = log["transcript"].as_array().ok_or("no transcript")?;
    assert!(
        lines
            .iter()
            .any(|l| l["speaker"] == "caller" && l["text"].as_str().is_some_and(|t| t.contains("Saturday"))),
        "{log:#}"
    );
    assert_eq!(log["end"]["reason"], "caller_hung_up", "{log:#}");
    assert_eq!((log["channel"].as_str(), log["callee"].as_str()), (Some("sip"), Some("1000")), "{log:#}");
    let wav = hound::WavReader::new(std::io::Cursor::new(common::recording(
        &server,
        log["id"].as_str().unwrap_or_default(),
        common::API_KEY,
    )?))?;
    assert_eq!(wav.spec().channels, 2);
    assert!(wav.duration() > 16_000 * 15, "the recording covers the call");
    // The caller's packets went through the jitter buffer, and the metrics say so.
    let (_, metrics) = common::http_text(&server, "GET", "/metrics", None, None)?;
    let received = metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"voxgate_jitter_packets_total{fate="received"} "#))
        .and_then(|n| n.trim().parse::<u64>().ok());
    assert!(received.is_some_and(|n| n > 500), "{metrics}");
    assert!(metrics.contains("voxgate_jitter_delay_seconds_count 1"), "{metrics}");
    // The call's media clock ticked through it (50 a second).
    let ticks = metrics
        .lines()
        .find_map(|l| l.strip_prefix("voxgate_media_tick_lateness_seconds_count "))
        .and_then(|n| n.trim().parse::<u64>().ok());
    assert!(ticks.is_some_and(|n| n > 50 * 15), "{metrics}");
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

#[test]
fn a_wideband_phone_is_answered_in_g722() -> TestResult {
    let work = std::env::temp_dir().join(format!("voxgate-sip-g722-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let (recordings, phone) = (work.join("recordings"), work.join("baresip"));
    let server = start_process(&[("VOXGATE_STORAGE__RECORDINGS_DIR", recordings.display().to_string())])?;
    let uri = format!("sip:1000@127.0.0.1:{}", server.sip_port);
    let text = ask_by_phone_with(&phone, &uri, PhoneCodec::G722)?;
    let answered = common::log_until(&server, |l| l.contains("call answered"));
    assert!(
        answered.last().is_some_and(|l| l.contains("call answered") && l.contains("G722")),
        "{answered:?}"
    );
    common::heard::answered_the_question(&server, &text, "over G.722")?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
