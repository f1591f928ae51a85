//! Outbound campaigns end to end against SIPp as the far ends on
//! 127.0.0.1: numbers from a CSV upload dialled one at a time inside the
//! calling window, a busy number retried as the policy says, results in the
//! call logs; a campaign outside its window dials nothing; pause, resume and
//! cancel.

mod common;

use std::time::{Duration, Instant};

use common::sipp::{far_end, finished};
use common::{API_KEY, Server, TestResult, free_udp_port, http, http_text, start_server};
use serde_json::{Value, json};

/// A server whose trunk (no registration, no credentials) is the SIPp at `trunk_port`.
fn server(trunk_port: u16) -> Result<Server, Box<dyn std::error::Error>> {
    start_server(&[
        ("VOXGATE_VAD__BACKEND", "webrtc".to_owned()),
        ("VOXGATE_AGENT__GREETING", "Hello, this is a reminder from the bakery.".to_owned()),
        ("VOXGATE_TRUNK__AOR", "sip:voxgate@trunk.test".to_owned()),
        ("VOXGATE_TRUNK__OUTBOUND_PROXY", format!("sip:127.0.0.1:{trunk_port}")),
    ])
}

/// A window of `hours` (UTC, every day) that opens `from_now` hours from now.
fn window(from_now: i64, hours: i64) -> Value {
    let now = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
    let at = |h: i64| {
        let t = now.checked_add(jiff::SignedDuration::from_hours(h)).expect("a time").time();
        format!("{:02}:{:02}", t.hour(), t.minute())
    };
    json!({"start": at(from_now), "end": at(from_now + hours), "time_zone": "UTC", "days": [1, 2, 3, 4, 5, 6, 7]})
}

fn create(server: &Server, body: &Value) -> Result<Value, Box<dyn std::error::Error>> {
    let (status, campaign) = http(server, "POST", "/v1/campaigns", Some(API_KEY), Some(&body.to_string()))?;
    assert_eq!(status, 201, "{campaign}");
    Ok(campaign)
}

fn campaign(server: &Server, id: &str) -> Result<Value, Box<dyn std::error::Error>> {
    let (status, c) = http(server, "GET", &format!("/v1/campaigns/{id}"), Some(API_KEY), None)?;
    assert_eq!(status, 200, "{c}");
    Ok(c)
}

fn post_as(
    server: &Server,
    path: &str,
    content_type: &str,
    body: &str,
) -> Result<(u16, Value), Box<dyn std::error::Error>> {
    common::post_as(server, path, API_KEY, content_type, body)
}

#[test]
fn a_campaign_dials_its_numbers_in_its_window_one_at_a_time_and_retries_busy_ones() -> TestResult {
    // The trunk: +1555099... is busy, other numbers answer. Five calls: three
    // answered, the busy one twice.
    let trunk_port = free_udp_port()?;
    let trunk = far_end("uas_trunk.xml", trunk_port, 5)?;
    let server = server(trunk_port)?;

    // Created paused, so the numbers are all in before it starts.
    let made = create(
        &server,
        &json!({
            "name": "Reminders",
            "numbers": ["+1 555 099 0001"],
            "window": window(-1, 3),
            "max_concurrent": 1,
            "ring_timeout_s": 10,
            "retry": {"busy": {"max_attempts": 2, "retry_after_s": 1}},
            "paused": true,
        }),
    )?;
    let id = made["id"].as_str().ok_or("no id")?.to_owned();
    assert_eq!(made["status"], "paused");
    // The rest as a CSV upload.
    let csv: String = std::iter::once("name,number\n".to_owned())
        .chain((1..=3).map(|i| format!("Customer {i},+1 555 000 {i}\n")))
        .collect();
    let (status, added) = post_as(&server, &format!("/v1/campaigns/{id}/numbers"), "text/csv", &csv)?;
    assert_eq!((status, added["added"].as_u64()), (200, Some(3)), "{added}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(campaign(&server, &id)?["counts"], json!({"pending": 4}), "paused: nothing dialled");
    let (status, resumed) =
        http(&server, "POST", &format!("/v1/campaigns/{id}/resume"), Some(API_KEY), None)?;
    assert_eq!((status, resumed["status"].as_str()), (200, Some("running")), "{resumed}");

    // Never more than one call at a time, until every number has its outcome.
    let until = Instant::now() + Duration::from_secs(90);
    let c = loop {
        let c = campaign(&server, &id)?;
        let dialing = c["counts"]["dialing"].as_i64().unwrap_or(0);
        assert!(dialing <= 1, "max_concurrent is 1: {}", c["counts"]);
        if c["status"] == "completed" {
            break c;
        }
        assert!(Instant::now() < until, "not completed: {c}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(c["counts"], json!({"busy": 1, "completed": 3}), "{c}");
    let numbers = c["numbers"].as_array().ok_or("no numbers")?;
    let busy_number = numbers.iter().find(|n| n["status"] == "busy").ok_or("no busy number")?;
    assert_eq!(
        (busy_number["attempts"].as_u64(), busy_number["last_result"].as_str()),
        (Some(2), Some("busy"))
    );
    assert!(numbers.iter().filter(|n| n["status"] == "completed").all(|n| n["attempts"] == 1), "{numbers:?}");
    assert!(finished(trunk)?, "SIPp (the trunk) saw three clean calls and said busy twice");

    // The results are in the call logs under the campaign (once the last
    // call's record is closed: a running call is listed as in_progress).
    let until = Instant::now() + Duration::from_secs(10);
    let list = loop {
        let (status, list) = http(&server, "GET", &format!("/v1/calls?campaign={id}"), Some(API_KEY), None)?;
        assert_eq!(status, 200, "{list}");
        let open = list["calls"].as_array().is_some_and(|c| c.iter().any(|c| c["status"] == "in_progress"));
        if !open || Instant::now() > until {
            break list;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let calls = list["calls"].as_array().ok_or("no calls")?;
    let statuses: Vec<&str> = calls.iter().filter_map(|c| c["status"].as_str()).collect();
    assert_eq!(calls.len(), 5, "three answered, two busy: {statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == "busy").count(), 2, "{statuses:?}");
    let mut answered: Vec<(i64, i64)> = calls
        .iter()
        .filter(|c| c["status"] != "busy")
        .map(|c| (c["started_at"].as_i64().unwrap_or(0), c["ended_at"].as_i64().unwrap_or(0)))
        .collect();
    answered.sort_unstable();
    assert!(answered.windows(2).all(|w| w[0].1 <= w[1].0 + 50), "the calls overlapped: {answered:?}");
    // The campaign's figures: five calls, three of them carried through.
    let (status, figures) =
        http(&server, "GET", &format!("/v1/analytics/calls?campaign={id}"), Some(API_KEY), None)?;
    assert_eq!(status, 200, "{figures}");
    assert_eq!(
        (figures["total"]["calls"].as_u64(), figures["total"]["completion_rate"].as_f64()),
        (Some(5), Some(0.6)),
        "{figures}"
    );
    for call in calls.iter().filter(|c| c["status"] != "busy") {
        let callee = call["callee"].as_str().unwrap_or_default();
        assert!(callee.starts_with("sip:+1555000"), "dialled through the trunk: {call}");
        let id = call["id"].as_str().unwrap_or_default();
        let (_, detail) =
            http_text(&server, "GET", &format!("/v1/calls/{}", common::url_escape(id)), Some(API_KEY), None)?;
        assert!(detail.contains("a reminder from the bakery"), "the agent spoke: {detail}");
    }
    Ok(())
}

#[test]
fn outside_its_window_a_campaign_waits_and_it_can_be_paused_and_cancelled() -> TestResult {
    let server = server(free_udp_port()?)?;
    // A port nobody answers on: a call placed there would fail and show.
    let nobody = free_udp_port()?;
    let made = create(
        &server,
        &json!({"name": "Tonight", "numbers": [format!("sip:late@127.0.0.1:{nobody}"), "+15550100"],
            "window": window(2, 1)}),
    )?;
    let id = made["id"].as_str().ok_or("no id")?.to_owned();
    std::thread::sleep(Duration::from_secs(3));
    let c = campaign(&server, &id)?;
    assert_eq!((c["status"].as_str(), &c["counts"]), (Some("running"), &json!({"pending": 2})), "{c}");

    let action =
        |what: &str| http(&server, "POST", &format!("/v1/campaigns/{id}/{what}"), Some(API_KEY), None);
    assert_eq!(action("pause")?.1["status"], "paused");
    assert_eq!(action("pause")?.0, 200, "pausing a paused campaign changes nothing");
    assert_eq!(action("cancel")?.1["status"], "cancelled");
    assert_eq!(campaign(&server, &id)?["counts"], json!({"cancelled": 2}));
    assert_eq!(action("resume")?.0, 409, "a cancelled campaign stays cancelled");
    let (status, _) = post_as(
        &server,
        &format!("/v1/campaigns/{id}/numbers"),
        "application/json",
        r#"{"numbers": ["+15550101"]}"#,
    )?;
    assert_eq!(status, 409);

    // Bad requests name their field.
    for (body, field) in [
        (
            json!({"name": "x", "window": {"start": "9am", "end": "17:00", "time_zone": "UTC"}}),
            "window.start",
        ),
        (
            json!({"name": "x", "window": {"start": "09:00", "end": "17:00", "time_zone": "Mars/Base"}}),
            "window.time_zone",
        ),
        (json!({"name": "x", "numbers": ["+1555", "call me"], "window": window(0, 1)}), "numbers[1]"),
        (json!({"name": "x", "window": window(0, 1), "max_concurrent": 0}), "max_concurrent"),
    ] {
        let (status, error) = http(&server, "POST", "/v1/campaigns", Some(API_KEY), Some(&body.to_string()))?;
        assert_eq!((status, error["field"].as_str()), (422, Some(field)), "{error}");
    }
    let (status, _) = post_as(&server, &format!("/v1/campaigns/{id}/numbers"), "text/plain", "+15550101")?;
    assert_eq!(status, 415);
    let (status, list) = http(&server, "GET", "/v1/campaigns", Some(API_KEY), None)?;
    assert_eq!((status, list["campaigns"].as_array().map(Vec::len)), (200, Some(1)), "{list}");
    Ok(())
}
