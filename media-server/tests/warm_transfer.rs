//! Warm transfer with real phones on both legs (baresip over SIP/UDP and
//! G.711 on 127.0.0.1) and the offline agent's voice and recogniser; the
//! model is a local server that calls `transfer_to_human` with a summary.
//!
//! The agent calls the caller (a phone that asks for a person, then later
//! says its order number); the caller holds while the agent calls the
//! human (a second phone, which says who it is once it has listened a
//! while). What each phone heard, transcribed by Whisper, must show that
//! the human heard the agent's summary first and then the caller, and the
//! caller the hold line and then the human. A human who is busy (SIPp
//! answering 486) returns the caller to the agent.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::heard::{answering_phone, heard};
use common::placed::{concat, dial, ended, event, silence, speak, work_dir};
use common::{TestResult, free_udp_port, start_server};

const HOLD_LINE: &str = "Please hold while I connect you with a colleague.";
const SUMMARY: &str = "Sam is calling about a refund for a broken kettle.";

/// Says `lines` (seconds of silence before each), then `after` seconds of silence.
fn script(
    dir: &Path,
    name: &str,
    lines: &[(&str, &str)],
    after: &str,
) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let mut parts = Vec::new();
    for (i, (pause, text)) in lines.iter().enumerate() {
        let (gap, said) = (dir.join(format!("{name}-gap{i}.wav")), dir.join(format!("{name}-line{i}.wav")));
        silence(pause, &gap)?;
        speak(dir, text, &said)?;
        parts.extend([gap, said]);
    }
    let tail = dir.join(format!("{name}-tail.wav"));
    silence(after, &tail)?;
    parts.push(tail);
    let out = dir.join(format!("{name}.wav"));
    concat(&parts.iter().map(PathBuf::as_path).collect::<Vec<_>>(), &out)?;
    Ok(out)
}

/// What a phone heard, transcribed: lower case words, without punctuation
/// (Whisper may write "support. team").
fn heard_words(phone: &Path) -> Result<String, Box<dyn std::error::Error>> {
    let text = heard(phone)?;
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    Ok(words.join(" "))
}

/// Where the first of `words` (whole words, or runs of them) is in `heard`.
fn first_of(heard: &str, words: &[&str]) -> Option<usize> {
    let padded = format!(" {heard} ");
    words.iter().filter_map(|w| padded.find(&format!(" {w} "))).min()
}

fn server_env(llm: String, transfer_to: &str) -> Vec<(&'static str, String)> {
    vec![
        ("VOXGATE_DIAL__ALLOWED_HOSTS", r#"["127.0.0.1"]"#.to_owned()),
        ("VOXGATE_AGENT__GREETING", String::new()),
        ("VOXGATE_AGENT__LLM", "openai".to_owned()),
        ("VOXGATE_OPENAI__BASE_URL", llm),
        ("VOXGATE_OPENAI__API_KEY", "test-key".to_owned()),
        ("VOXGATE_AGENT__TRANSFER_TO", transfer_to.to_owned()),
        ("VOXGATE_AGENT__TRANSFER_MODE", "warm".to_owned()),
    ]
}

fn transfer_call() -> String {
    serde_json::json!({ "summary": SUMMARY }).to_string()
}

#[test]
fn the_human_hears_the_summary_first_then_caller_and_human_hear_each_other() -> TestResult {
    let work = work_dir("warm-transfer");
    // The caller asks for a person at once, and says its order number 27 s in.
    let caller_says = script(
        &work,
        "caller",
        &[("1", "I would like to talk to a person, please."), ("24", "My order number is four two seven.")],
        "7",
    )?;
    // The human listens (the announcement), then says who it is 15 s after answering.
    let human_says = script(&work, "human", &[("15", "Hello, this is Dana from the support team.")], "40")?;
    let (caller_dir, human_dir) = (work.join("caller"), work.join("human"));
    let (mut human, human_uri) = answering_phone(&human_dir, &human_says)?;
    let (mut caller, caller_uri) = answering_phone(&caller_dir, &caller_says)?;
    let llm = common::tool_calling_llm(HOLD_LINE, "transfer_to_human", &transfer_call())?;
    let server = start_server(&server_env(llm, &human_uri))?;
    std::thread::sleep(Duration::from_secs(1));
    let id = dial(&server, &caller_uri, "")?;
    let call = ended(&server, &mut [&mut caller, &mut human], &id)?;
    // The call record: transferred to the human, after the bridge.
    assert_eq!(call["status"], "transferred", "{call:#}");
    let joined = event(&call, "transfer_connected").ok_or("no transfer_connected event")?;
    assert_eq!(joined["target"], human_uri.as_str(), "{joined}");
    // The timeline, for the record: the tool call, then the join after the
    // hold (the announcement spoken, the human called, the announcement played).
    let asked = event(&call, "transfer").ok_or("no transfer event")?;
    eprintln!("transfer asked at {} ms, joined at {} ms", asked["at_ms"], joined["at_ms"]);
    assert_eq!(call["dial"]["status"], "transferred", "{:#}", call["dial"]);
    assert_eq!(call["dial"]["transferred_to"], human_uri.as_str(), "{:#}", call["dial"]);
    // The human heard the announcement first, then the caller's words.
    // (Any of a few words of each, as Whisper tiny.en may miss one.)
    let human_heard = heard_words(&human_dir)?;
    let intro_at = first_of(&human_heard, &["virtual", "assistant", "caller"])
        .ok_or(format!("the human did not hear the announcement: {human_heard}"))?;
    let summary_at = first_of(&human_heard, &["kettle", "refund", "broken"])
        .ok_or(format!("the human did not hear the summary: {human_heard}"))?;
    let caller_at = first_of(&human_heard, &["order", "number", "four two seven", "427"])
        .ok_or(format!("the human did not hear the caller: {human_heard}"))?;
    assert!(intro_at < summary_at && summary_at < caller_at, "not in that order: {human_heard}");
    assert!(
        first_of(&human_heard, &["hold"]).is_none(),
        "the human heard the caller's hold line: {human_heard}"
    );
    // The caller heard the hold line, then the human; never the summary.
    let caller_heard = heard_words(&caller_dir)?;
    let hold_at = first_of(&caller_heard, &["hold", "connect"])
        .ok_or(format!("the caller heard no hold line: {caller_heard}"))?;
    let human_at = first_of(&caller_heard, &["support", "team", "dana"])
        .ok_or(format!("the caller did not hear the human: {caller_heard}"))?;
    assert!(hold_at < human_at, "{caller_heard}");
    assert!(
        first_of(&caller_heard, &["kettle", "refund"]).is_none(),
        "the caller heard the summary: {caller_heard}"
    );
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

#[test]
fn a_busy_human_returns_the_caller_to_the_agent() -> TestResult {
    let work = work_dir("warm-transfer-busy");
    let caller_says = script(&work, "caller", &[("1", "I would like to talk to a person, please.")], "16")?;
    let busy_port = free_udp_port()?;
    let busy = common::sipp::far_end("uas_busy.xml", busy_port, 1)?;
    let caller_dir = work.join("caller");
    let (mut caller, caller_uri) = answering_phone(&caller_dir, &caller_says)?;
    let llm = common::tool_calling_llm(HOLD_LINE, "transfer_to_human", &transfer_call())?;
    let human_uri = format!("sip:desk@127.0.0.1:{busy_port}");
    let server = start_server(&server_env(llm, &human_uri))?;
    std::thread::sleep(Duration::from_secs(1));
    let id = dial(&server, &caller_uri, "")?;
    let call = ended(&server, &mut [&mut caller], &id)?;
    let failed =
        event(&call, "transfer_failed").ok_or_else(|| format!("no transfer_failed event: {call:#}"))?;
    assert_eq!(failed["reason"], "busy", "{failed}");
    assert_eq!(failed["target"], human_uri.as_str(), "{failed}");
    assert!(event(&call, "transfer_connected").is_none(), "{call:#}");
    // The caller hung up when done: the conversation went on after the failure.
    assert_eq!(call["status"], "caller_hung_up", "{call:#}");
    assert!(common::sipp::finished(busy)?, "SIPp saw no INVITE answered 486 and ACKed");
    // The caller heard the hold line, then the agent again.
    let agent = common::lines(&call, "agent")?;
    assert_eq!(agent.first().map(String::as_str), Some(HOLD_LINE), "{agent:?}");
    assert!(agent.get(1).is_some_and(|l| l.contains("nobody could take your call")), "{agent:?}");
    let caller_heard = heard_words(&caller_dir)?;
    assert!(caller_heard.contains("nobody could take"), "the caller was not told: {caller_heard}");
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
