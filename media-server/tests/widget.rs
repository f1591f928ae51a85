//! The embeddable widget, as a visitor meets it: a page of another origin
//! (a small site this test serves) carries the widget's script tag;
//! headless Chromium opens the widget, calls (the fake microphone asks the
//! fixture question) or chats, and the agent's answer from its knowledge
//! shows in the widget's transcript. The call log is written; a screenshot
//! of each is kept in `target/test-artifacts/`.

mod common;

use std::io::{Read as _, Write as _};
use std::process::Command;

use common::{Server, TestResult, root, start_server};

/// A one-page site on another origin that embeds the widget. Serves for 2 minutes.
fn customer_site(server: &Server) -> std::io::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/", listener.local_addr()?);
    let page = format!(
        "<!doctype html><html><head><title>Sunrise Bakery</title></head><body>\
         <h1>Sunrise Bakery</h1><p>Fresh bread every morning.</p>\
         <script src=\"http://{}/widget.js\" async></script></body></html>",
        server.http
    );
    common::serve_http(listener, move |mut stream| {
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf);
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
            page.len()
        );
    })?;
    Ok(url)
}

fn artifacts() -> std::io::Result<std::path::PathBuf> {
    let dir = root().join("target/test-artifacts");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Runs the visitor; returns the widget's transcript as (who, text).
fn visit(
    server: &Server,
    mode: &str,
    wav: &std::path::Path,
) -> Result<Vec<(String, String)>, Box<dyn std::error::Error>> {
    let browser_dir = root().join("media-server/tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "the browser tests need Node.js >= 20 with npm, then scripts/setup.sh (it installs their npm packages)"
    );
    let shot = artifacts()?.join(format!("widget-{mode}.png"));
    let out = Command::new("node")
        .current_dir(&browser_dir)
        .arg("widget.mjs")
        .arg(customer_site(server)?)
        .arg(mode)
        .arg(wav)
        .arg("What time does your store open on Saturday?")
        .arg(&shot)
        .output()?;
    assert!(out.status.success(), "the visitor failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::metadata(&shot)?.len() > 1000, "a screenshot at {}", shot.display());
    let result: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(result["lines"]
        .as_array()
        .ok_or("no lines")?
        .iter()
        .map(|l| {
            (
                l["who"].as_str().unwrap_or_default().to_owned(),
                l["text"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect())
}

fn answered_from_the_knowledge(lines: &[(String, String)]) -> bool {
    lines
        .iter()
        .any(|(who, text)| who == "agent" && (text.contains('9') || text.to_lowercase().contains("nine")))
}

#[test]
fn a_visitor_calls_from_the_widget_and_sees_the_answer() -> TestResult {
    let server = start_server(&[])?;
    // The microphone: 4 s of quiet (the greeting), the question, then quiet.
    let mut reader = hound::WavReader::open(root().join("fixtures/audio/store_hours_48k.wav"))?;
    let spec = reader.spec();
    let mut mic = vec![0i16; 48_000 * 4];
    mic.extend(reader.samples::<i16>().collect::<Result<Vec<_>, _>>()?);
    mic.extend(std::iter::repeat_n(0, 48_000 * 40));
    let wav = std::env::temp_dir().join(format!("voxgate-widget-{}.wav", std::process::id()));
    let mut w = hound::WavWriter::create(&wav, spec)?;
    for s in &mic {
        w.write_sample(*s)?;
    }
    w.finalize()?;
    let lines = visit(&server, "call", &wav)?;
    let _ = std::fs::remove_file(&wav);
    assert!(lines.iter().any(|(who, text)| who == "caller" && text.contains("Saturday")), "{lines:?}");
    assert!(answered_from_the_knowledge(&lines), "{lines:?}");
    let log = common::call_log(&server)?;
    assert_eq!(log["channel"], "webrtc");
    let recording = server.recordings.join(format!("{}.wav", log["id"].as_str().ok_or("no id")?));
    assert!(hound::WavReader::open(recording)?.duration() > 16_000 * 5, "a recording of the call");
    Ok(())
}

#[test]
fn a_refused_microphone_is_explained_and_the_chat_stays() -> TestResult {
    let server = start_server(&[("VOXGATE_VAD__BACKEND", "webrtc".to_owned())])?;
    let lines = visit(&server, "denied", &root().join("fixtures/audio/silence_16k.wav"))?;
    assert!(
        lines.iter().any(|(who, text)| who == "note" && text.contains("microphone is blocked")),
        "{lines:?}"
    );
    Ok(())
}

#[test]
fn a_visitor_chats_from_the_widget() -> TestResult {
    let server = start_server(&[("VOXGATE_VAD__BACKEND", "webrtc".to_owned())])?;
    // The server's own demo page carries the widget too.
    let (status, demo) = common::http_text(&server, "GET", "/", None, None)?;
    assert_eq!(status, 200);
    assert!(demo.contains(r#"<script src="/widget.js" async>"#), "{demo}");
    let quiet = root().join("fixtures/audio/silence_16k.wav");
    let lines = visit(&server, "chat", &quiet)?;
    assert_eq!(lines.first().map(|l| l.0.as_str()), Some("agent"), "the greeting first: {lines:?}");
    assert!(answered_from_the_knowledge(&lines), "{lines:?}");
    Ok(())
}
