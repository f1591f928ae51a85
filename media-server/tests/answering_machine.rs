//! Answering-machine detection on calls the agent places, with real phones
//! (baresip, answering at once over SIP/UDP and G.711) on 127.0.0.1 and the
//! offline agent (Whisper, the local voice):
//!
//! - a voicemail box (a greeting spoken by espeak-ng, then a 1 kHz beep made
//!   by sox) is found to be a machine; the agent says nothing over the
//!   greeting and leaves its message after the beep, which the box records
//!   (transcribed by Whisper), then hangs up;
//! - a person who says "Hello?" and waits is found to be human and greeted;
//! - with `hang_up`, a machine is hung up on and hears nothing.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::heard::{answering_phone, heard};
use common::placed::{concat, dial, ended, event, ms_of, run, silence, speak, work_dir};
use common::{Server, TestResult, start_server};

const MESSAGE: &str = "Hello, this is Sunrise Bakery. Your birthday cake is ready for pickup. Goodbye.";

/// A voicemail box's audio: its greeting, 600 ms, a 500 ms beep at 1 kHz,
/// then 14 s of silence to record in; and when the beep ends, in ms.
fn voicemail_box(dir: &Path) -> Result<(PathBuf, u64), Box<dyn std::error::Error>> {
    let greeting = dir.join("greeting.wav");
    speak(
        dir,
        "Hi, you've reached Sam. I can't take your call right now. Please leave a message after the tone.",
        &greeting,
    )?;
    let (gap, beep, room) = (dir.join("gap.wav"), dir.join("beep.wav"), dir.join("room.wav"));
    silence("0.6", &gap)?;
    run(
        "sox",
        &[
            "-n",
            "-r",
            "8000",
            "-c",
            "1",
            "-b",
            "16",
            &beep.display().to_string(),
            "synth",
            "0.5",
            "sine",
            "1000",
            "vol",
            "0.4",
        ],
    )?;
    silence("14", &room)?;
    let out = dir.join("voicemail.wav");
    concat(&[&greeting, &gap, &beep, &room], &out)?;
    let beep_end = ms_of(&greeting)? + 600 + 500;
    Ok((out, beep_end))
}

/// A person: "Hello?", then 20 s of silence.
fn person(dir: &Path) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let (hello, wait) = (dir.join("hello.wav"), dir.join("wait.wav"));
    speak(dir, "Hello?", &hello)?;
    silence("20", &wait)?;
    let out = dir.join("person.wav");
    concat(&[&hello, &wait], &out)?;
    Ok(out)
}

/// Calls the phone in `dir`, which answers and plays `say`, with `extra`
/// fields in the request; the call's record once it is over.
fn call_phone(
    server: &Server,
    dir: &Path,
    say: &Path,
    extra: &str,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let (mut answering, uri) = answering_phone(dir, say)?;
    std::thread::sleep(Duration::from_secs(1));
    let id = dial(server, &uri, extra)?;
    ended(server, &mut [&mut answering], &id)
}

#[test]
fn the_agent_leaves_its_message_on_a_voicemail_box_after_the_beep() -> TestResult {
    let work = work_dir("amd-voicemail");
    let (voicemail, beep_end_ms) = voicemail_box(&work)?;
    let server = start_server(&[("VOXGATE_DIAL__ALLOWED_HOSTS", r#"["127.0.0.1"]"#.to_owned())])?;
    let phone = work.join("phone");
    let amd = format!(r#", "answering_machine": {{"on_machine": "leave_message", "message": "{MESSAGE}"}}"#);
    let call = call_phone(&server, &phone, &voicemail, &amd)?;
    assert_eq!(call["amd"]["result"], "machine", "{:#}", call["amd"]);
    assert!(call["amd"]["decided_ms"].as_u64().is_some_and(|ms| ms <= 5000), "{:#}", call["amd"]);
    assert_eq!(call["dial"]["amd"]["result"], "machine", "the dialler reports it too");
    assert_eq!(call["status"], "message_left", "{call:#}");
    // The message began as the beep ended (the box played from the answer).
    let left = event(&call, "message_left").ok_or("no message_left event")?;
    assert_eq!(left["cue"], "beep", "{left}");
    let at = left["at_ms"].as_u64().ok_or("no time")?;
    assert!(
        at + 300 >= beep_end_ms && at <= beep_end_ms + 1000,
        "the message began at {at} ms; the beep ended at {beep_end_ms} ms"
    );
    // The agent said only its message (no greeting over the box's). (The
    // box's words reach the transcript when Whisper is done with them before
    // the call ends: on a loaded machine it may not be; the session test
    // `pipeline/tests/answering_machine.rs` holds that they are kept.)
    let agent = common::lines(&call, "agent")?;
    assert_eq!(agent, [MESSAGE], "{:#}", call["transcript"]);
    // What the box recorded, transcribed.
    let recorded = heard(&phone)?;
    assert!(
        recorded.contains("cake") && recorded.contains("pick"),
        "the box did not record the message: {recorded}"
    );
    assert!(!recorded.contains("thanks for calling"), "the greeting was said to a machine: {recorded}");
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

#[test]
fn a_person_is_greeted_and_a_machine_hung_up_on() -> TestResult {
    let work = work_dir("amd-person");
    let (voicemail, _) = voicemail_box(&work)?;
    let hello = person(&work)?;
    let server = start_server(&[
        ("VOXGATE_DIAL__ALLOWED_HOSTS", r#"["127.0.0.1"]"#.to_owned()),
        ("VOXGATE_AGENT__ANSWERING_MACHINE", "hang_up".to_owned()),
    ])?;
    // A person says "Hello?" and waits: greeted.
    let phone = work.join("person");
    let call = call_phone(&server, &phone, &hello, "")?;
    assert_eq!(call["amd"]["result"], "human", "{:#}", call["amd"]);
    assert_eq!(call["amd"]["reason"], "short_greeting", "{:#}", call["amd"]);
    let greeted = heard(&phone)?;
    assert!(greeted.contains("thanks for calling"), "the person was not greeted: {greeted}");
    // A machine: hung up on at the verdict, before its beep; it hears nothing.
    let phone = work.join("machine");
    let call = call_phone(&server, &phone, &voicemail, "")?;
    assert_eq!(call["amd"]["result"], "machine", "{:#}", call["amd"]);
    assert_eq!(call["status"], "answering_machine", "{call:#}");
    let (lasted, decided) = (call["duration_ms"].as_u64(), call["amd"]["decided_ms"].as_u64());
    assert!(
        lasted.zip(decided).is_some_and(|(l, d)| l <= d + 1000),
        "not hung up at the verdict: {lasted:?} ms, decided at {decided:?}"
    );
    assert_eq!(common::lines(&call, "agent")?, Vec::<String>::new(), "the agent spoke to a machine");
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

#[test]
fn a_campaign_treats_a_machine_as_its_retry_policy_says() -> TestResult {
    let work = work_dir("amd-campaign");
    let (voicemail, _) = voicemail_box(&work)?;
    // The agent itself does not detect: the campaign's own setting does.
    let server = start_server(&[("VOXGATE_DIAL__ALLOWED_HOSTS", r#"["127.0.0.1"]"#.to_owned())])?;
    let (mut answering, uri) = answering_phone(&work.join("box"), &voicemail)?;
    std::thread::sleep(Duration::from_secs(1));
    let window = serde_json::json!({"start": "00:00", "end": "23:59", "time_zone": "UTC", "days": [1, 2, 3, 4, 5, 6, 7]});
    let body = serde_json::json!({
        "name": "pickups",
        "numbers": [uri],
        "window": window,
        "retry": {"machine": {"max_attempts": 2, "retry_after_s": 0}},
        "answering_machine": {"on_machine": "hang_up"},
    });
    let (status, created) =
        common::http(&server, "POST", "/v1/campaigns", Some(common::API_KEY), Some(&body.to_string()))?;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["answering_machine"]["on_machine"], "hang_up", "{created}");
    let id = created["id"].as_str().ok_or("no id")?;
    let started = Instant::now();
    let number = loop {
        let (_, c) =
            common::http(&server, "GET", &format!("/v1/campaigns/{id}"), Some(common::API_KEY), None)?;
        let number = c["numbers"][0].clone();
        if number["status"] != "pending" && number["status"] != "dialing" {
            break number;
        }
        if started.elapsed() > Duration::from_secs(50) {
            let _ = answering.kill();
            return Err(format!("the campaign did not finish: {c:#}").into());
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let _ = answering.kill();
    let _ = answering.wait();
    // Called again once (the policy's two attempts), then left as a machine.
    assert_eq!(number["status"], "machine", "{number:#}");
    assert_eq!(number["attempts"], 2, "{number:#}");
    assert_eq!(number["last_result"], "completed, machine", "{number:#}");
    let call_id = number["last_call_id"].as_str().ok_or("no call")?;
    let (_, call) =
        common::http(&server, "GET", &format!("/v1/calls/{call_id}"), Some(common::API_KEY), None)?;
    assert_eq!(call["status"], "answering_machine", "{call:#}");
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
