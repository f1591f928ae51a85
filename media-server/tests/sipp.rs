//! SIPp, the standard SIP test tool, against the running server on
//! 127.0.0.1: calls with BYE from either side, CANCEL while ringing, a
//! re-INVITE for hold, an INVITE without SDP, a malformed INVITE, and a burst of 100 concurrent
//! calls. SIPp exits 0 only when every call of its scenario succeeded.

mod common;

use std::process::Command;

use common::{TestResult, caller_lines, free_udp_port, root, start_server};

/// Runs SIPp with `args` against the server, calling 1000; `Ok` when every call passed.
fn sipp(sip_port: u16, args: &[&str]) -> TestResult {
    sipp_to(sip_port, "1000", args)
}

/// [`sipp`], calling `user`.
fn sipp_to(sip_port: u16, user: &str, args: &[&str]) -> TestResult {
    let scenario_dir = root().join("media-server/tests/sipp");
    let local = free_udp_port()?;
    let out = Command::new("sipp")
        .current_dir(&scenario_dir)
        .arg(format!("127.0.0.1:{sip_port}"))
        .args(["-i", "127.0.0.1", "-p", &local.to_string(), "-s", user, "-mp", &free_udp_port()?.to_string()])
        // Bounded: the whole run, and each wait.
        .args(["-timeout", "60s", "-recv_timeout", "25000", "-nostdin", "-trace_err"])
        .args(args)
        .output()?;
    let errors = std::fs::read_dir(&scenario_dir)?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with("_errors.log"))
        .map(|e| {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            let _ = std::fs::remove_file(e.path());
            text
        })
        .collect::<String>();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("sipp {args:?}: {}\n{}\n{errors}", out.status, String::from_utf8_lossy(&out.stdout))
            .into())
    }
}

fn webrtc_vad() -> (&'static str, String) {
    // Many short calls: the model-free VAD keeps start-up cheap.
    ("VOXGATE_VAD__BACKEND", "webrtc".to_owned())
}

#[test]
fn calls_end_by_caller_bye_and_by_server_bye() -> TestResult {
    let server = common::start_process(&[webrtc_vad(), ("VOXGATE_RTP__NO_MEDIA_TIMEOUT_S", "2".to_owned())])?;
    // SIPp's built-in caller: INVITE, ACK, BYE.
    sipp(server.sip_port, &["-sn", "uac", "-m", "3", "-l", "3"])?;
    // No RTP from the caller: the server says BYE, and its call log says why.
    sipp(server.sip_port, &["-sf", "server_bye.xml", "-m", "2", "-l", "2"])?;
    // The last record is written just after the last BYE.
    let mut reasons = Vec::new();
    for _ in 0..100 {
        let (_, page) = common::http(&server, "GET", "/v1/calls?channel=sip", Some(common::API_KEY), None)?;
        reasons = page["calls"]
            .as_array()
            .ok_or("no calls")?
            .iter()
            .filter_map(|c| c["status"].as_str().map(str::to_owned))
            .collect();
        // A running call is listed as in_progress until its record is closed.
        if reasons.len() == 5 && !reasons.iter().any(|r| r == "in_progress") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    reasons.sort();
    assert_eq!(reasons, ["caller_hung_up", "caller_hung_up", "caller_hung_up", "no_media", "no_media"]);
    // Each answer's setup time is in the metrics.
    let (_, metrics) = common::http_text(&server, "GET", "/metrics", None, None)?;
    assert!(metrics.contains(r#"voxgate_call_setup_seconds_count{channel="sip"} 5"#), "{metrics}");
    // And their outcomes.
    assert!(
        metrics.contains(r#"voxgate_calls_ended_total{channel="sip",outcome="caller_hung_up"} 3"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"voxgate_calls_ended_total{channel="sip",outcome="no_media"} 2"#),
        "{metrics}"
    );
    Ok(())
}

#[test]
fn calls_over_tcp() -> TestResult {
    let server = start_server(&[webrtc_vad()])?;
    // One TCP connection for all calls (-t t1): messages framed by Content-Length.
    sipp(server.sip_port, &["-sn", "uac", "-t", "t1", "-m", "3", "-l", "3"])
}

#[test]
fn cancel_while_ringing_gets_487() -> TestResult {
    let server = start_server(&[webrtc_vad(), ("VOXGATE_SIP__RING_MS", "3000".to_owned())])?;
    sipp(server.sip_port, &["-sf", "cancel.xml", "-m", "2", "-l", "2"])
}

#[test]
fn a_reinvite_puts_the_call_on_hold() -> TestResult {
    let server = start_server(&[webrtc_vad()])?;
    sipp(server.sip_port, &["-sf", "reinvite.xml", "-m", "2", "-l", "2"])
}

#[test]
fn an_invite_without_sdp_gets_our_offer_and_the_ack_answers() -> TestResult {
    let server = start_server(&[webrtc_vad()])?;
    sipp(server.sip_port, &["-sf", "late_offer.xml", "-m", "2", "-l", "2"])
}

#[test]
fn a_malformed_invite_gets_400_and_the_server_carries_on() -> TestResult {
    let server = start_server(&[webrtc_vad()])?;
    sipp(server.sip_port, &["-sf", "malformed.xml", "-m", "5", "-l", "5"])
}

#[test]
fn a_burst_of_100_concurrent_calls_all_complete() -> TestResult {
    let server = start_server(&[webrtc_vad()])?;
    sipp(server.sip_port, &["-sn", "uac", "-m", "100", "-l", "100", "-r", "100", "-d", "2000"])
}

/// The server registers with a trunk whose registrar (SIPp) demands Digest
/// authentication and checks the answer.
#[test]
fn the_server_registers_with_a_trunk_that_demands_digest() -> TestResult {
    let registrar_port = free_udp_port()?;
    let mut registrar = std::process::Command::new("sipp")
        .current_dir(root().join("media-server/tests/sipp"))
        .args(["-sf", "registrar.xml", "-i", "127.0.0.1", "-p", &registrar_port.to_string()])
        .args(["-m", "1", "-timeout", "60s", "-nostdin", "-trace_err"])
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let server = start_server(&[
        webrtc_vad(),
        ("VOXGATE_TRUNK__REGISTRAR", format!("sip:127.0.0.1:{registrar_port}")),
        ("VOXGATE_TRUNK__AOR", "sip:voxgate@trunk.test".to_owned()),
        ("VOXGATE_TRUNK__USERNAME", "voxgate".to_owned()),
        ("VOXGATE_TRUNK__PASSWORD", "s3cret".to_owned()),
    ])?;
    let status = registrar.wait()?;
    for e in std::fs::read_dir(root().join("media-server/tests/sipp"))?.filter_map(Result::ok) {
        if e.file_name().to_string_lossy().ends_with("_errors.log") {
            let _ = std::fs::remove_file(e.path());
        }
    }
    assert!(status.success(), "the registrar (SIPp) saw no valid registration: {status}");
    // It may register before it has logged that it listens.
    let later = std::iter::from_fn(|| server.log.recv_timeout(std::time::Duration::from_secs(5)).ok());
    let registered = server
        .started_log
        .clone()
        .into_iter()
        .chain(later)
        .any(|line| line.contains("registered with the trunk"));
    assert!(registered, "the server did not log its registration");
    Ok(())
}

/// DTMF by SIP INFO reaches the session: the keys are the caller's turn
/// in the call log.
#[test]
fn info_dtmf_becomes_the_callers_turn() -> TestResult {
    let server = start_server(&[webrtc_vad(), ("VOXGATE_AGENT__GREETING", String::new())])?;
    sipp(server.sip_port, &["-sf", "info_dtmf.xml", "-m", "1", "-l", "1"])?;
    assert_eq!(caller_lines(&server)?, ["42"]);
    Ok(())
}

/// Blind transfer with a real peer: the caller asks (keys 0 #), the agent's
/// model calls `transfer_to_human`, the server REFERs the caller (SIPp
/// checks the Refer-To), and hangs up once the NOTIFY says the new call
/// was answered.
#[test]
fn the_agents_transfer_tool_refers_the_caller() -> TestResult {
    let llm = common::tool_calling_llm("Let me connect you to a colleague.", "transfer_to_human", "{}")?;
    let server = start_server(&[
        webrtc_vad(),
        ("VOXGATE_AGENT__GREETING", String::new()),
        ("VOXGATE_AGENT__LLM", "openai".to_owned()),
        ("VOXGATE_OPENAI__BASE_URL", llm),
        ("VOXGATE_OPENAI__API_KEY", "test-key".to_owned()),
        ("VOXGATE_AGENT__TRANSFER_TO", "sip:operator@127.0.0.1:5999".to_owned()),
    ])?;
    sipp(server.sip_port, &["-sf", "refer.xml", "-m", "1", "-l", "1"])?;
    let log = std::iter::from_fn(|| server.log.recv_timeout(std::time::Duration::from_secs(5)).ok())
        .find(|line| line.contains("call ended"))
        .ok_or("no end of call in the log")?;
    assert!(log.contains("Transferred"), "{log}");
    Ok(())
}

#[test]
fn a_stored_agents_number_reaches_it_and_a_deleted_one_no_longer_does() -> TestResult {
    let server = start_server(&[webrtc_vad()])?;
    let key = Some(common::API_KEY);
    let spec = r#"{"name": "Night line", "greeting": "Night line, go ahead.", "numbers": ["+15550142"]}"#;
    common::give_number(&server, "+15550142", common::API_KEY)?;
    let (status, agent) = common::http(&server, "POST", "/v1/agents", key, Some(spec))?;
    assert_eq!(status, 201, "{agent}");
    let id = agent["id"].as_str().ok_or("no id")?;
    // The number is routed as soon as the agent exists.
    // Three seconds: the greeting is heard whole.
    sipp_to(server.sip_port, "+15550142", &["-sn", "uac", "-d", "3000", "-m", "1", "-l", "1"])?;
    let mut call = serde_json::Value::Null;
    for _ in 0..100 {
        let (_, page) = common::http(&server, "GET", &format!("/v1/calls?agent={id}"), key, None)?;
        if let Some(c) = page["calls"].get(0).filter(|c| c["status"] != "in_progress") {
            call = c.clone();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        (call["channel"].as_str(), call["callee"].as_str()),
        (Some("sip"), Some("+15550142")),
        "{call}"
    );
    let (_, detail) = common::http(
        &server,
        "GET",
        &format!("/v1/calls/{}", common::url_escape(call["id"].as_str().unwrap_or_default())),
        key,
        None,
    )?;
    let first = detail["transcript"][0]["text"].as_str().unwrap_or_default();
    assert!(first.starts_with("Night line"), "the stored agent greeted: {detail}");
    // Deleted: the number is gone at once (SIPp's call fails on the 404).
    assert_eq!(common::http(&server, "DELETE", &format!("/v1/agents/{id}"), key, None)?.0, 204);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(sipp_to(server.sip_port, "+15550142", &["-sn", "uac", "-m", "1", "-l", "1"]).is_err());
    // The number is in the call's record, not in the logs.
    let mut lines = common::log_until(&server, |l| l.contains("call ended"));
    lines.extend(server.log.try_iter());
    assert!(lines.iter().any(|l| l.contains("call ended")), "the call is in the log: {lines:#?}");
    let leaked: Vec<&String> = lines.iter().filter(|l| l.contains("550142")).collect();
    assert!(leaked.is_empty(), "{leaked:#?}");
    Ok(())
}
