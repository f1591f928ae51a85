//! The `voxgate` binary as an operator runs it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The binary, run from the checkout with its records and recordings in a
/// temporary folder (never the checkout's `data/`).
fn voxgate() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_voxgate"));
    let data = std::env::temp_dir().join(format!(
        "voxgate-serve-{}-{:x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .env("VOXGATE_STORAGE__DATABASE_URL", format!("sqlite://{}/voxgate.db", data.display()))
        .env("VOXGATE_STORAGE__RECORDINGS_DIR", data.join("recordings"));
    cmd
}

/// A plain HTTP/1.1 GET; the whole response as text.
fn get(addr: &str, path: &str) -> Result<String, Box<dyn std::error::Error>> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

#[test]
fn help_lists_the_subcommands() -> TestResult {
    let out = voxgate().arg("--help").output()?;
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout)?;
    assert!(text.contains("serve") && text.contains("config"), "{text}");
    Ok(())
}

#[test]
fn config_prints_environment_overrides() -> TestResult {
    let out = voxgate()
        .args(["config", "--config", "config.toml"])
        .env("VOXGATE_RTP__PORT_MIN", "12000")
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout)?;
    assert!(text.contains("port_min = 12000"), "{text}");
    Ok(())
}

#[test]
fn a_bad_setting_is_refused_at_start() -> TestResult {
    let out = voxgate().args(["serve"]).env("VOXGATE_HTTP__LISTNE", "x").output()?;
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr)?.contains("LISTNE".to_ascii_lowercase().as_str()));
    Ok(())
}

#[test]
fn serve_answers_healthz_and_stops_on_sigterm() -> TestResult {
    let mut child = voxgate()
        .args(["serve", "--config", "config.toml"])
        .env("VOXGATE_HTTP__LISTEN", "127.0.0.1:0")
        .env("VOXGATE_SIP__ENABLED", "false")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    // Find the bound port in the log on stderr ("HTTP listening addr=127.0.0.1:PORT").
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut log = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            assert!(!line.contains('\x1b'), "colour codes in a log that is not a terminal: {line}");
            if let Some(addr) = line.split("addr=").nth(1) {
                let _ = tx.send(Ok(addr.trim().to_owned()));
            }
            log.push_str(&line);
            log.push('\n');
        }
        let _ = tx.send(Err(log));
    });
    // Loading the local models takes a few seconds.
    let addr = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(addr)) => addr,
        Ok(Err(log)) => return Err(format!("server exited before listening:\n{log}").into()),
        Err(_) => {
            child.kill()?;
            return Err("server did not start listening within 60 s".into());
        }
    };

    let response = get(&addr, "/healthz")?;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""status":"ok""#), "{response}");
    // The offline demo agent is loaded and says which providers it runs on.
    assert!(response.contains(r#""llm":"local-llm""#) && response.contains("Sunrise Bakery"), "{response}");

    let response = get(&addr, "/metrics")?;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("voxgate_active_sessions"), "{response}");

    // SIGTERM: a clean, successful exit.
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status()?;
    let mut waited = 0;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        assert!(waited < 100, "server did not stop within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
        waited += 1;
    };
    assert!(status.success(), "exit status {status}");
    Ok(())
}

#[test]
fn json_logs_are_one_object_per_line() -> TestResult {
    let mut child = voxgate()
        .args(["serve", "--config", "config.toml"])
        .env("VOXGATE_HTTP__LISTEN", "127.0.0.1:0")
        .env("VOXGATE_SIP__ENABLED", "false")
        .env("VOXGATE_LOG__FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let mut listening = None;
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        let entry: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| format!("not JSON ({e}): {line}"))?;
        assert!(entry["timestamp"].is_string() && entry["level"].is_string(), "{entry}");
        if entry["fields"]["message"] == "HTTP listening" {
            listening = entry["fields"]["addr"].as_str().map(str::to_owned);
            break;
        }
    }
    let addr = listening.ok_or("no HTTP listening line")?;
    assert!(get(&addr, "/healthz")?.starts_with("HTTP/1.1 200"));
    child.kill()?;
    child.wait()?;
    Ok(())
}
