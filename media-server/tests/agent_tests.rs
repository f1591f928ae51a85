//! Agent tests, end to end: `voxgate test FILE` and `POST /v1/agents/{id}/tests`
//! place real calls through the websocket media path (Twilio µ-law at
//! 8 kHz, JSON PCM at 16 kHz), in local voices, and judge what the caller
//! heard, transcribed by Whisper. The agents here answer with the scripted
//! model's fixed line (or an OpenAI-compatible stand-in that calls a tool)
//! spoken by the local voice, so every verdict is known in advance: right
//! answers pass, a wrong expectation fails and makes the command exit 1.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{API_KEY, TestResult, http, start_server};
use serde_json::{Value, json};

/// The scripted model's reply (config.toml's `[scripted] reply`).
const REPLY: &str = "On Saturdays we open at nine in the morning and close at two in the afternoon.";

fn run_cli(
    file: &str,
    env: &[(&str, String)],
) -> Result<(std::process::Output, Value), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("tests.toml");
    std::fs::write(&path, file)?;
    let report = dir.path().join("report.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_voxgate"));
    cmd.current_dir(common::root())
        .args(["test", "--config", "config.toml", "--json"])
        .arg(&report)
        .arg(&path)
        .env("VOXGATE_SCRIPTED__REPLY", REPLY)
        .env("VOXGATE_VAD__BACKEND", "webrtc");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output()?;
    let json = match std::fs::read(&report) {
        Ok(bytes) => serde_json::from_slice(&bytes)?,
        Err(_) => Value::Null,
    };
    Ok((out, json))
}

#[test]
fn a_test_file_passes_right_answers_and_fails_wrong_ones() -> TestResult {
    // The tool the stand-in model calls: a local endpoint.
    let (tool_url, _requests) = common::json_endpoint("/status", r#"{"status": "shipped"}"#)?;
    let llm = common::tool_calling_llm("Your order is on its way.", "order_status", r#"{"order": "A-17"}"#)?;
    let file = format!(
        r#"
        [agents.bakery]
        name = "Bakery"
        greeting = "Sunrise Bakery, hello."
        llm.provider = "scripted"

        [agents.orders]
        name = "Orders"
        greeting = "Orders desk."
        llm.provider = "openai"
        [[agents.orders.tools]]
        name = "order_status"
        description = "Where an order is."
        url = "{tool_url}"

        [[case]]
        name = "Saturday hours on the phone"
        agent = "bakery"
        rate = 8000
        [[case.turn]]
        say = "What time do you open on Saturday?"
        expect = ["nine|9"]
        reject = ["sorry"]

        [[case]]
        name = "a wrong expectation, wideband"
        agent = "bakery"
        rate = 16000
        voice = "piper"
        [[case.turn]]
        say = "Are you open on Sunday?"
        expect = ["closed on sundays"]

        [[case]]
        name = "an order, by its tool"
        agent = "orders"
        rate = 16000
        voice = "espeak:en-gb-x-rp"
        [[case.turn]]
        say = "Where is my order A 17?"
        expect = ["on its way"]
        tool = "order_status"
        "#
    );
    let (out, report) = run_cli(&file, &[("VOXGATE_OPENAI__BASE_URL", llm)])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "a failed case makes it exit 1\n{stdout}\n{stderr}");
    let cases = report["cases"].as_array().ok_or_else(|| format!("no report: {stdout}\n{stderr}"))?;
    assert_eq!(cases.len(), 3, "{report:#}");
    let (hours, wrong, order) = (&cases[0], &cases[1], &cases[2]);
    for case in cases {
        assert!(case["error"].is_null(), "{case:#}");
        assert!(case["call_id"].as_str().is_some_and(|id| !id.is_empty()), "{case:#}");
        let turn = &case["turns"][0];
        assert!(turn["wait_ms"].as_u64().is_some(), "the wait is measured: {turn:#}");
        assert!(!turn["heard"].as_str().unwrap_or_default().is_empty(), "the answer was heard: {turn:#}");
    }
    assert_eq!(hours["passed"], true, "{hours:#}");
    assert_eq!(hours["rate"], 8000);
    let said = hours["turns"][0]["transcribed_as"].as_str().unwrap_or_default().to_lowercase();
    assert!(said.contains("saturday"), "the server heard the question: {said}");
    let heard = hours["turns"][0]["heard"].as_str().unwrap_or_default().to_lowercase();
    assert!(heard.contains("nine") || heard.contains('9'), "{heard}");
    assert_eq!(wrong["passed"], false, "{wrong:#}");
    assert_eq!(wrong["turns"][0]["failures"], json!(["missing \"closed on sundays\""]));
    assert_eq!(order["passed"], true, "{order:#}");
    assert_eq!(order["turns"][0]["tools"], json!(["order_status"]));
    assert_eq!((report["passed"].as_u64(), report["failed"].as_u64()), (Some(2), Some(1)));
    // The table says the same.
    assert!(stdout.contains("PASS  Saturday hours on the phone"), "{stdout}");
    assert!(stdout.contains("FAILED: missing \"closed on sundays\""), "{stdout}");
    Ok(())
}

#[test]
fn a_file_that_cannot_run_is_refused_before_any_call() -> TestResult {
    let (out, report) =
        run_cli("[[case]]\nname = \"x\"\nagent = \"nobody\"\n[[case.turn]]\nsay = \"hi\"\n", &[])?;
    assert!(!out.status.success());
    assert!(report.is_null(), "no report: nothing ran");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no agent \"nobody\""));
    Ok(())
}

#[test]
fn the_api_runs_a_test_against_a_tenants_agent_and_only_its_tenant_reads_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let database_url = format!("sqlite://{}/voxgate.db", dir.path().display());
    let server = start_server(&[
        ("VOXGATE_STORAGE__DATABASE_URL", database_url.clone()),
        ("VOXGATE_SCRIPTED__REPLY", REPLY.to_owned()),
        ("VOXGATE_VAD__BACKEND", "webrtc".to_owned()),
        ("VOXGATE_AUTH__JWT_SECRET", "agent-tests-secret-0123456789abcdef".to_owned()),
    ])?;
    let send = |method: &str, path: &str, key: &str, body: Option<&Value>| {
        http(&server, method, path, Some(key), body.map(Value::to_string).as_deref())
    };
    let agent =
        json!({"name": "Bakery", "greeting": "Sunrise Bakery, hello.", "llm": {"provider": "scripted"}});
    let (status, created) = send("POST", "/v1/agents", API_KEY, Some(&agent))?;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().ok_or("no id")?.to_owned();
    let plan = json!({"case": [{"name": "hours", "rate": 16000,
        "turn": [{"say": "What time do you open on Saturday?", "expect": ["nine|9"]}]}]});
    // What cannot run here is refused: WAV files and inline agents are the CLI's.
    let mut with_wav = plan.clone();
    with_wav["case"][0]["turn"][0] = json!({"wav": "/etc/passwd"});
    assert_eq!(send("POST", &format!("/v1/agents/{id}/tests"), API_KEY, Some(&with_wav))?.0, 422);
    let inline = json!({"agents": {"x": {"name": "X"}}, "case": plan["case"]});
    assert_eq!(send("POST", &format!("/v1/agents/{id}/tests"), API_KEY, Some(&inline))?.0, 422);
    assert_eq!(send("POST", "/v1/agents/agt_nobody/tests", API_KEY, Some(&plan))?.0, 404);

    let (status, run) = send("POST", &format!("/v1/agents/{id}/tests"), API_KEY, Some(&plan))?;
    assert_eq!(status, 202, "{run}");
    assert_eq!(run["status"], "running");
    let run_path = format!("/v1/agents/{id}/tests/{}", run["id"].as_str().ok_or("no run id")?);
    // One run at a time.
    assert_eq!(send("POST", &format!("/v1/agents/{id}/tests"), API_KEY, Some(&plan))?.0, 409);

    // Another tenant can neither read the run nor test the agent.
    common::admin_create(&database_url, "rival@example.com", "rival-password-1", "rival")?;
    let (status, login) = http(
        &server,
        "POST",
        "/v1/auth/login",
        None,
        Some(&json!({"email": "rival@example.com", "password": "rival-password-1"}).to_string()),
    )?;
    assert_eq!(status, 200, "{login}");
    let rival = login["token"].as_str().ok_or("no token")?.to_owned();
    assert_eq!(send("GET", &run_path, &rival, None)?.0, 404);
    assert_eq!(send("POST", &format!("/v1/agents/{id}/tests"), &rival, Some(&plan))?.0, 404);

    let until = Instant::now() + Duration::from_secs(120);
    let done = loop {
        let (status, run) = send("GET", &run_path, API_KEY, None)?;
        assert_eq!(status, 200, "{run}");
        if run["status"] == "done" {
            break run;
        }
        assert!(Instant::now() < until, "the run did not finish: {run}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let report = &done["report"];
    assert_eq!(report["passed"], 1, "{report:#}");
    let turn = &report["cases"][0]["turns"][0];
    let heard = turn["heard"].as_str().unwrap_or_default().to_lowercase();
    assert!(heard.contains("nine") || heard.contains('9'), "{turn:#}");
    // The test's call is a call of the agent, on the record like any other.
    let call_id = report["cases"][0]["call_id"].as_str().ok_or("no call id")?;
    let (status, call) = send("GET", &format!("/v1/calls/{call_id}"), API_KEY, None)?;
    assert_eq!(status, 200, "{call}");
    assert_eq!(call["agent_id"], id.as_str());
    Ok(())
}

/// A case of the evaluation set (`fixtures/agent-tests/eval.toml`) on the
/// default offline stack: Whisper hears the caller, SmolLM2 answers from
/// the retrieved passage under the grounding check, Piper speaks; what the
/// caller heard is transcribed and judged. Every turn must be answered, and
/// most of its facts heard: the stack gets about three facts in four right
/// at 16 kHz (BENCHMARKS.md), and which one it misses moves with the
/// machine (on one, "battery" was heard as "matter"), so one miss in five
/// is allowed here. The whole set runs in `benches/agent_eval.sh`.
#[test]
fn the_default_offline_stack_answers_most_facts_of_an_evaluation_case() -> TestResult {
    let dir = tempfile::tempdir()?;
    let report = dir.path().join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_voxgate"))
        .current_dir(common::root())
        .args(["test", "--config", "config.toml", "--case", EVAL_CASE, "--json"])
        .arg(&report)
        .arg("fixtures/agent-tests/eval.toml")
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = serde_json::from_slice(&std::fs::read(&report)?)?;
    assert_eq!(report["cases"].as_array().map(Vec::len), Some(1), "{stdout}");
    let case = &report["cases"][0];
    assert_eq!(case["name"], EVAL_CASE);
    assert_eq!(case["error"], Value::Null, "{stdout}\n{stderr}");
    assert_eq!(case["turns"].as_array().map(Vec::len), Some(5), "{stdout}");
    assert_eq!(report["unanswered"], 0, "every turn answered:\n{stdout}");
    assert_eq!(report["fact_turns"], 5, "{stdout}");
    let right = report["fact_turns_passed"].as_u64().ok_or("no fact count")?;
    assert!(right >= 4, "most facts heard ({right} of 5):\n{stdout}\n{stderr}");
    // The command's exit status is the verdict: 0 exactly when the case passed.
    assert_eq!(out.status.success(), case["passed"] == true, "{stdout}");
    Ok(())
}

/// The case [`the_default_offline_stack_answers_most_facts_of_an_evaluation_case`] runs.
const EVAL_CASE: &str = "bikes: repairs and prices";
