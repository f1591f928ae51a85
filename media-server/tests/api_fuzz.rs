//! Schemathesis (PyPI, installed by `scripts/setup.sh` into
//! `.test-tools/schemathesis`) fuzzes the control API from its own OpenAPI
//! document: generated valid and invalid requests, stateful sequences
//! (create an agent, then read, change and delete it). Every answer must be
//! documented, match its schema and never be a server error. Its checks that
//! any schema-valid body is accepted are left out: the API checks more than
//! the schema can say (URLs, JSON Schemas of tools, cross-field ranges).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{API_KEY, TestResult, root, start_server};

#[test]
fn schemathesis_finds_nothing_wrong_with_the_control_api() -> TestResult {
    let tools = root().join(".test-tools/schemathesis");
    if !tools.join("schemathesis/__init__.py").exists() {
        return Err("schemathesis is not installed: run scripts/setup.sh".into());
    }
    // CI runs one seed, so a run can be repeated; set another to explore.
    let seed = std::env::var("API_FUZZ_SEED").unwrap_or_else(|_| "20261122".into());
    let server = start_server(&[
        ("VOXGATE_VAD__BACKEND", "webrtc".to_owned()),
        // Fuzzing is a flood; the limit's 429s are documented but would hide the rest.
        ("VOXGATE_HTTP__PUBLIC_RATE_LIMIT", "0".to_owned()),
    ])?;
    let mut run = Command::new("python3")
        .args(["-m", "schemathesis.cli", "run"])
        .arg(format!("http://{}/v1/openapi.json", server.http))
        .args(["-H", &format!("Authorization: Bearer {API_KEY}")])
        .args(["--checks", "all", "--exclude-checks", "positive_data_acceptance"])
        .args(["--max-examples", "40", "--seed", &seed, "--workers", "1", "--no-color"])
        // No example database carried between runs: a run is its seed's.
        .args(["--generation-database", "none"])
        .env("PYTHONPATH", &tools)
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = run.try_wait()? {
            break status;
        }
        if started.elapsed() > Duration::from_secs(300) {
            let _ = run.kill();
            return Err("schemathesis did not finish in 5 minutes".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = run.wait_with_output()?;
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // No request was a server error on our side either.
    assert!(server.started_log.iter().any(|l| l.contains("HTTP listening")), "the log is captured");
    let errors: Vec<String> = server.log.try_iter().filter(|l| l.contains("ERROR")).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    Ok(())
}
