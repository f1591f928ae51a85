//! Outbound calls placed through `POST /v1/calls`, to SIPp playing the far
//! end on 127.0.0.1: through a trunk that demands Digest (answered, the
//! agent talks, the far end hangs up), and the other outcomes: busy, no
//! answer (we CANCEL), refused (a far end that is not the trunk challenges:
//! it gets no credentials, 401); and a callee who
//! asks for a person is transferred (REFER) when the agent calls its tool.

mod common;

use std::time::{Duration, Instant};

use common::sipp::finished;
use common::{Server, TestResult, free_udp_port, http, start_server};

const KEY: &str = "test-key-0123456789";

/// SIPp as the far end, running `scenario` for one call on `port`.
fn far_end(scenario: &str, port: u16) -> Result<std::process::Child, Box<dyn std::error::Error>> {
    common::sipp::far_end(scenario, port, 1)
}

/// Places a call; returns its id.
fn dial(server: &Server, body: &str) -> Result<String, Box<dyn std::error::Error>> {
    let (status, json) = http(server, "POST", "/v1/calls", Some(KEY), Some(body))?;
    assert_eq!(status, 201, "{json}");
    assert_eq!(json["status"], "dialing");
    Ok(json["id"].as_str().ok_or("no id")?.to_owned())
}

/// Follows a call until its outcome; returns every status seen (from the
/// `dialing` that placing it returned), and the last report.
fn follow(server: &Server, id: &str) -> Result<(Vec<String>, serde_json::Value), Box<dyn std::error::Error>> {
    let mut seen: Vec<String> = vec!["dialing".to_owned()];
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(45) {
        let (status, json) = http(server, "GET", &format!("/v1/calls/{id}"), Some(KEY), None)?;
        assert_eq!(status, 200, "{json}");
        let s = json["dial"]["status"].as_str().ok_or("no dial status")?.to_owned();
        if seen.last() != Some(&s) {
            seen.push(s.clone());
        }
        if ["completed", "transferred", "busy", "no_answer", "failed"].contains(&s.as_str()) {
            return Ok((seen, json["dial"].clone()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("no outcome; saw {seen:?}").into())
}

fn trunk_env(password: &str) -> Vec<(&'static str, String)> {
    vec![
        ("VOXGATE_VAD__BACKEND", "webrtc".to_owned()),
        ("VOXGATE_HTTP__API_KEY", KEY.to_owned()),
        ("VOXGATE_TRUNK__AOR", "sip:voxgate@trunk.test".to_owned()),
        ("VOXGATE_TRUNK__USERNAME", "voxgate".to_owned()),
        ("VOXGATE_TRUNK__PASSWORD", password.to_owned()),
    ]
}

#[test]
fn a_call_through_a_trunk_that_demands_digest_is_answered_and_the_agent_talks() -> TestResult {
    let trunk_port = free_udp_port()?;
    let sipp = far_end("uas_digest.xml", trunk_port)?;
    let mut env = trunk_env("s3cret");
    env.push(("VOXGATE_TRUNK__OUTBOUND_PROXY", format!("sip:127.0.0.1:{trunk_port}")));
    let server = start_server(&env)?;
    // A stored agent places it.
    let spec = r#"{"name": "Callbacks", "greeting": "Hello, thanks for calling us back."}"#;
    let (status, agent) = http(&server, "POST", "/v1/agents", Some(KEY), Some(spec))?;
    assert_eq!(status, 201, "{agent}");
    let agent_id = agent["id"].as_str().ok_or("no agent id")?;
    // A number: dialled as sip:+15551234@trunk.test, sent to the trunk's proxy.
    let id = dial(&server, &format!(r#"{{"to": "+15551234", "agent": "{agent_id}"}}"#))?;
    let (seen, last) = follow(&server, &id)?;
    assert_eq!(seen, ["dialing", "ringing", "answered", "completed"], "{last}");
    assert_eq!(last["to"], "sip:+15551234@trunk.test");
    assert_eq!(last["hung_up_by"], "remote");
    assert!(finished(sipp)?, "SIPp (the trunk) did not see valid credentials and a clean call");
    // The call went through the agent session like an inbound one: its log and recording.
    let log = read_call_log(&server, &id)?;
    let agent_lines: Vec<&str> = log["transcript"]
        .as_array()
        .ok_or("no transcript")?
        .iter()
        .filter(|l| l["speaker"] == "agent")
        .filter_map(|l| l["text"].as_str())
        .collect();
    // What the far end heard of the greeting before it hung up.
    assert!(
        agent_lines.first().is_some_and(|l| l.starts_with("Hello, thanks for calling")),
        "{agent_lines:?}"
    );
    assert_eq!(
        (log["direction"].as_str(), log["callee"].as_str()),
        (Some("outbound"), Some("sip:+15551234@trunk.test"))
    );
    assert_eq!(log["agent_id"].as_str(), Some(agent_id), "{log}");
    let wav = hound::WavReader::new(std::io::Cursor::new(common::recording(&server, &id, KEY)?))?;
    assert!(wav.duration() > 16_000, "a recording of the call: {} samples", wav.duration());
    Ok(())
}

#[test]
fn busy_no_answer_and_refused_calls_are_reported_as_such() -> TestResult {
    // The far ends are SIPp on this machine, which the operator allows
    // (they are not the trunk); one call at a time.
    let mut env = trunk_env("wrong");
    env.push(("VOXGATE_DIAL__ALLOWED_HOSTS", r#"["127.0.0.1"]"#.to_owned()));
    env.push(("VOXGATE_DIAL__MAX_CONCURRENT_PER_TENANT", "1".to_owned()));
    let server = start_server(&env)?;

    // Sip URIs go straight to their host when no proxy or registrar is set.
    let busy_port = free_udp_port()?;
    let busy = far_end("uas_busy.xml", busy_port)?;
    let id = dial(&server, &format!(r#"{{"to": "sip:2000@127.0.0.1:{busy_port}"}}"#))?;
    let (seen, last) = follow(&server, &id)?;
    assert_eq!(seen.last().map(String::as_str), Some("busy"), "{last}");
    assert!(finished(busy)?);

    let ring_port = free_udp_port()?;
    let ringing = far_end("uas_no_answer.xml", ring_port)?;
    let id = dial(&server, &format!(r#"{{"to": "sip:2000@127.0.0.1:{ring_port}", "ring_timeout_s": 2}}"#))?;
    // While it rings, the tenant is at its one call.
    let second = format!(r#"{{"to": "sip:2001@127.0.0.1:{ring_port}"}}"#);
    let (status, json) = http(&server, "POST", "/v1/calls", Some(KEY), Some(&second))?;
    assert_eq!(status, 429, "{json}");
    let (seen, last) = follow(&server, &id)?;
    assert_eq!(seen, ["dialing", "ringing", "no_answer"], "{last}");
    assert!(finished(ringing)?, "SIPp saw no CANCEL / ACK for its 487");

    // A far end that is not the trunk challenges: the trunk's credentials are
    // not its to have, so the call fails on its 401 with none sent.
    let auth_port = free_udp_port()?;
    let mut refusing = far_end("uas_digest.xml", auth_port)?;
    let id = dial(&server, &format!(r#"{{"to": "sip:2000@127.0.0.1:{auth_port}"}}"#))?;
    let (seen, last) = follow(&server, &id)?;
    assert_eq!(seen.last().map(String::as_str), Some("failed"), "{seen:?}");
    assert_eq!(last["sip_status"], 401, "{last}");
    // SIPp still waits for an INVITE with credentials: none came.
    std::thread::sleep(Duration::from_millis(500));
    let waiting = refusing.try_wait()?.is_none();
    let _ = refusing.kill();
    let _ = refusing.wait();
    assert!(waiting, "SIPp got an answer to its challenge");
    Ok(())
}

#[test]
fn a_callee_who_asks_for_a_person_is_transferred() -> TestResult {
    let llm = common::tool_calling_llm("Let me connect you to a colleague.", "transfer_to_human", "{}")?;
    let mut env = trunk_env("s3cret");
    env.extend([
        ("VOXGATE_AGENT__GREETING", String::new()),
        ("VOXGATE_AGENT__LLM", "openai".to_owned()),
        ("VOXGATE_OPENAI__BASE_URL", llm),
        ("VOXGATE_OPENAI__API_KEY", "test-key".to_owned()),
        ("VOXGATE_AGENT__TRANSFER_TO", "sip:operator@127.0.0.1:5999".to_owned()),
        ("VOXGATE_DIAL__ALLOWED_HOSTS", r#"["127.0.0.1/32"]"#.to_owned()),
    ]);
    let server = start_server(&env)?;
    let port = free_udp_port()?;
    let sipp = far_end("uas_refer.xml", port)?;
    let id = dial(&server, &format!(r#"{{"to": "sip:2000@127.0.0.1:{port}"}}"#))?;
    let (seen, last) = follow(&server, &id)?;
    assert_eq!(seen.last().map(String::as_str), Some("transferred"), "{last}");
    assert_eq!(last["transferred_to"], "sip:operator@127.0.0.1:5999");
    assert!(finished(sipp)?, "SIPp saw no REFER to the target, or no BYE after its NOTIFY");
    Ok(())
}

#[test]
fn the_call_api_refuses_bad_requests_and_wrong_keys() -> TestResult {
    let server = start_server(&trunk_env("s3cret"))?;
    let post = |key: Option<&str>, body: &str| http(&server, "POST", "/v1/calls", key, Some(body));
    assert_eq!(post(None, r#"{"to": "2000"}"#)?.0, 401);
    assert_eq!(post(Some("test-key-0123456788"), r#"{"to": "2000"}"#)?.0, 401);
    for (bad, expected) in [
        ("{", 400),
        (r#"{"to": 5}"#, 422),
        (r#"{"to": "2000", "extra": 1}"#, 422),
        (r#"{"to": "a b"}"#, 400),
        (r#"{"to": "tel:+1555"}"#, 400),
        (r#"{"to": "2000", "ring_timeout_s": 0}"#, 422),
        (r#"{"to": "2000", "agent": "agt_nope"}"#, 404),
        // Neither the trunk's host nor allowed (dial.allowed_hosts is empty):
        // this machine, the operator's network, anywhere else.
        (r#"{"to": "sip:2000@127.0.0.1:5099"}"#, 403),
        (r#"{"to": "sip:admin@10.0.0.1"}"#, 403),
        (r#"{"to": "sip:x@[::1]"}"#, 403),
        (r#"{"to": "sip:+15551234@premium.example"}"#, 403),
    ] {
        let (status, json) = post(Some(KEY), bad)?;
        assert_eq!(status, expected, "{bad}: {json}");
        assert!(json["error"].is_string(), "{bad}: {json}");
    }
    let (status, _) = http(&server, "GET", "/v1/calls/nope", Some(KEY), None)?;
    assert_eq!(status, 404);
    let (status, _) = http(&server, "GET", "/v1/calls/nope", None, None)?;
    assert_eq!(status, 401);
    Ok(())
}

/// The finished call's record, through the calls API (waits up to 10 s).
fn read_call_log(server: &Server, id: &str) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    for _ in 0..100 {
        let (status, json) =
            http(server, "GET", &format!("/v1/calls/{}", id.replace('@', "%40")), Some(KEY), None)?;
        if status == 200 && json["transcript"].is_array() {
            return Ok(json);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("no record of call {id}").into())
}
