//! The work after each conversation, end to end: a visitor chats with a
//! stored agent and gives their email; afterwards the call has analytics
//! from the agent's model (or the local fallback when the model's answers
//! are unusable), a billing record, a summary email that a local SMTP
//! server received, a note on their CRM contact (the same contact the next
//! time), and signed webhooks that are retried when the receiver fails,
//! also across a restart of the server.
//!
//! The model, the SMTP server, the CRM and the webhook receiver are local
//! servers in this test speaking the real protocols (OpenAI's streaming
//! chat completions, SMTP, HubSpot's CRM v3 shapes, HTTP).

mod common;

use std::collections::HashMap;
use std::io::Write as _;
use std::net::TcpListener;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{API_KEY, Server, TestResult, http, read_request, serve_http, start_server};
use serde_json::{Value, json};

/// One server-sent-events chunk of an OpenAI chat completion stream.
fn chunk(delta: Value, finish: Option<&str>) -> String {
    let body = json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    format!("data: {body}\n\n")
}

/// An OpenAI-compatible model. Replies to the visitor with a fixed line;
/// asked for analytics (a `response_format`), the model named `good`
/// answers valid JSON built from the conversation it was sent, any other
/// answers prose. Counts analytics requests.
fn model() -> std::io::Result<(String, Arc<Mutex<u32>>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/v1", listener.local_addr()?);
    let asked = Arc::new(Mutex::new(0));
    let counter = asked.clone();
    serve_http(listener, move |mut stream| {
        let request = read_request(&mut stream);
        let body: Value = request
            .split_once("\r\n\r\n")
            .and_then(|(_, b)| serde_json::from_str(b).ok())
            .unwrap_or_default();
        let content = if body.get("response_format").is_some() {
            *counter.lock().unwrap() += 1;
            let conversation = body["messages"][1]["content"].as_str().unwrap_or_default().to_owned();
            let callers: Vec<&str> =
                conversation.lines().filter_map(|l| l.strip_prefix("Caller: ")).collect();
            if body["model"] == "good" {
                json!({
                    "intent": "order a birthday cake",
                    "summary": "The visitor wants to order a birthday cake and left their email.",
                    "category": "Immediate Buyer",
                    "justification": "They asked to order now.",
                    "quote": callers.first().copied().unwrap_or_default(),
                    "sentiment": 0.6,
                    "turn_sentiments": callers.iter().map(|_| 0.6).collect::<Vec<_>>(),
                })
                .to_string()
            } else {
                "I'm sorry, I can't analyse conversations.".to_owned()
            }
        } else {
            "Lovely, I have noted that and will email you the details.".to_owned()
        };
        let (a, b) = content.split_at(content.len() / 2);
        let usage = json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
            "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}});
        let events = [
            chunk(json!({"role": "assistant", "content": a}), None),
            chunk(json!({"content": b}), None),
            chunk(json!({}), Some("stop")),
            format!("data: {usage}\n\n"),
            "data: [DONE]\n\n".to_owned(),
        ]
        .concat();
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{events}",
            events.len()
        );
    })?;
    Ok((url, asked))
}

/// What the CRM holds: contacts by email, and notes per contact id.
#[derive(Debug, Default)]
struct CrmState {
    contacts: HashMap<String, String>,
    notes: HashMap<String, Vec<String>>,
}

/// A CRM speaking HubSpot's CRM v3 shapes for contacts search and
/// create, and notes associated with a contact.
fn crm(token: &'static str) -> std::io::Result<(String, Arc<Mutex<CrmState>>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    let state = Arc::new(Mutex::new(CrmState::default()));
    let crm = state.clone();
    serve_http(listener, move |mut stream| {
        let request = read_request(&mut stream);
        let (head, body) = request.split_once("\r\n\r\n").unwrap_or_default();
        let body: Value = serde_json::from_str(body).unwrap_or_default();
        let path = head.split_whitespace().nth(1).unwrap_or_default().to_owned();
        let authorised =
            head.lines().any(|l| l.eq_ignore_ascii_case(&format!("authorization: Bearer {token}")));
        let mut s = crm.lock().unwrap();
        let (status, answer) = if !authorised {
            (401, json!({"status": "error", "message": "Authentication credentials not found"}))
        } else if path == "/crm/v3/objects/contacts/search" {
            let email = body["filterGroups"][0]["filters"][0]["value"].as_str().unwrap_or_default();
            let results: Vec<Value> = s
                .contacts
                .get(email)
                .map(|id| json!({"id": id, "properties": {"email": email}}))
                .into_iter()
                .collect();
            (200, json!({"total": results.len(), "results": results}))
        } else if path == "/crm/v3/objects/contacts" {
            let email = body["properties"]["email"].as_str().unwrap_or_default().to_owned();
            if s.contacts.contains_key(&email) {
                (409, json!({"status": "error", "message": "Contact already exists"}))
            } else {
                let id = format!("{}", 5100 + s.contacts.len());
                s.contacts.insert(email.clone(), id.clone());
                (201, json!({"id": id, "properties": {"email": email}}))
            }
        } else if path == "/crm/v3/objects/notes" {
            let contact = body["associations"][0]["to"]["id"].as_str().unwrap_or_default().to_owned();
            let typed = body["associations"][0]["types"][0]["associationTypeId"] == 202;
            let note = body["properties"]["hs_note_body"].as_str().unwrap_or_default().to_owned();
            if !typed || body["properties"]["hs_timestamp"].is_null() {
                (400, json!({"status": "error", "message": "bad note"}))
            } else {
                s.notes.entry(contact).or_default().push(note);
                (201, json!({"id": format!("9{}", s.notes.values().map(Vec::len).sum::<usize>())}))
            }
        } else {
            (404, json!({"status": "error", "message": "no such path"}))
        };
        drop(s);
        let answer = answer.to_string();
        let _ = write!(
            stream,
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
            answer.len()
        );
    })?;
    Ok((url, state))
}

/// A webhook delivery as received: its headers (lower-case names) and body.
#[derive(Debug, Clone)]
struct Hook {
    headers: HashMap<String, String>,
    body: String,
}

/// A webhook receiver on `listener` that answers 204, or 500 to the first
/// `call.ended` when `fail_once`.
fn receiver(listener: TcpListener, fail_once: bool) -> std::io::Result<mpsc::Receiver<Hook>> {
    let (tx, rx) = mpsc::channel();
    let mut failed_once = !fail_once;
    serve_http(listener, move |mut stream| {
        let request = read_request(&mut stream);
        let (head, body) = request.split_once("\r\n\r\n").unwrap_or_default();
        let headers: HashMap<String, String> = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let fail = headers.get("voxgate-event").is_some_and(|e| e == "call.ended") && !failed_once;
        failed_once |= fail;
        let _ = tx.send(Hook { headers, body: body.to_owned() });
        let status = if fail { "500 Internal Server Error" } else { "204 No Content" };
        let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    })?;
    Ok(rx)
}

/// Checks a `Voxgate-Signature` the way the README tells receivers to.
fn signed(hook: &Hook, secret: &str) -> bool {
    use aws_lc_rs::hmac;
    let Some(header) = hook.headers.get("voxgate-signature") else { return false };
    let parts: HashMap<&str, &str> = header.split(',').filter_map(|p| p.split_once('=')).collect();
    let (Some(t), Some(v1)) = (parts.get("t"), parts.get("v1")) else { return false };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let fresh = t.parse::<u64>().is_ok_and(|t| now.abs_diff(t) < 300);
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hex::decode(v1).unwrap_or_default();
    fresh && hmac::verify(&key, format!("{t}.{}", hook.body).as_bytes(), &tag).is_ok()
}

const SECRET: &str = "whsec-post-call-0123456789";

fn agent(model: &str, crm_url: &str, hook_url: &str) -> Value {
    json!({
        "name": "Cake Shop",
        "system_prompt": "You take cake orders.",
        "greeting": "Cake Shop, how can I help?",
        "llm": {"provider": "openai", "model": model},
        "post_call": {
            "email": true,
            "email_template": "Thanks for talking to {{agent}}.\nSummary: {{summary}}\n",
            "crm": {"base_url": crm_url, "token": "pat-test-1"},
            "webhooks": [{"url": hook_url, "secret": SECRET}]
        }
    })
}

/// Stores `spec` as a public agent (its visitors chat from the website).
fn create_agent(server: &Server, spec: &Value) -> Result<String, Box<dyn std::error::Error>> {
    let mut spec = spec.clone();
    spec["public"] = json!(true);
    let (status, made) = http(server, "POST", "/v1/agents", Some(API_KEY), Some(&spec.to_string()))?;
    assert_eq!(status, 201, "{made}");
    Ok(made["id"].as_str().ok_or("no id")?.to_owned())
}

/// A text chat with `agent`: the visitor says `text`, waits for the reply,
/// and leaves. Returns the call's id.
fn chat(server: &Server, agent: &str, text: &str) -> Result<String, Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        use futures::{SinkExt as _, StreamExt as _};
        use tokio_tungstenite::tungstenite::Message;
        let url = if agent.is_empty() {
            format!("ws://{}/v1/chat", server.http)
        } else {
            format!("ws://{}/v1/chat?agent={agent}", server.http)
        };
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await?;
        let mut id = String::new();
        let mut replies = 0;
        let mut asked = false;
        // The greeting, then the reply to the visitor's message.
        while replies < 2 {
            let Some(Ok(Message::Text(t))) =
                tokio::time::timeout(Duration::from_secs(30), socket.next()).await?
            else {
                return Err::<String, Box<dyn std::error::Error>>("the chat closed".into());
            };
            let v: Value = serde_json::from_str(t.as_str())?;
            match v["type"].as_str() {
                Some("started") => id = v["session_id"].as_str().unwrap_or_default().to_owned(),
                Some("message") => {
                    replies += 1;
                    if !asked {
                        asked = true;
                        socket
                            .send(Message::text(json!({"type": "message", "text": text}).to_string()))
                            .await?;
                    }
                }
                _ => {}
            }
        }
        socket.send(Message::text(r#"{"type": "end"}"#)).await?;
        let _ =
            tokio::time::timeout(Duration::from_secs(10), async { while socket.next().await.is_some() {} })
                .await;
        Ok(id)
    })
}

/// The call's record once `done` holds for it (60 s at most).
fn call_when(
    server: &Server,
    id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Result<Value, Box<dyn std::error::Error>> {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, call) = http(server, "GET", &format!("/v1/calls/{id}"), Some(API_KEY), None)?;
        if status == 200 && done(&call) {
            return Ok(call);
        }
        if Instant::now() > until {
            return Err(format!("{what}: not within 60 s; the call is {call}").into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn jobs_settled(call: &Value) -> bool {
    let jobs = call["post_call"]["jobs"].as_array().cloned().unwrap_or_default();
    !jobs.is_empty() && jobs.iter().all(|j| j["status"] != "queued")
}

fn server_env(llm: &str, smtp_port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("VOXGATE_VAD__BACKEND", "webrtc".to_owned()),
        ("VOXGATE_OPENAI__BASE_URL", llm.to_owned()),
        ("VOXGATE_SMTP__HOST", "127.0.0.1".to_owned()),
        ("VOXGATE_SMTP__PORT", smtp_port.to_string()),
        ("VOXGATE_SMTP__SECURITY", "none".to_owned()),
        ("VOXGATE_SMTP__FROM", "Cake Shop <hello@cakes.test>".to_owned()),
        // The receivers here are on 127.0.0.1.
        ("VOXGATE_POST_CALL__ALLOW_PRIVATE_TARGETS", "true".to_owned()),
    ]
}

#[test]
#[allow(clippy::too_many_lines, reason = "one chat's whole aftermath, read top to bottom")]
fn a_chat_is_analysed_billed_emailed_synced_and_announced() -> TestResult {
    let (llm, _) = model()?;
    let (smtp_port, mail) = common::smtp::sink()?;
    let (crm_url, crm_state) = crm("pat-test-1")?;
    let hooks = TcpListener::bind("127.0.0.1:0")?;
    let hook_url = format!("http://{}/hooks/voxgate", hooks.local_addr()?);
    let received = receiver(hooks, true)?;
    let server = common::start_process(&server_env(&llm, smtp_port))?;
    let agent_id = create_agent(&server, &agent("good", &crm_url, &hook_url))?;

    let first = chat(
        &server,
        &agent_id,
        "I'd like to order a birthday cake for Saturday. My email is Ann@Example.com",
    )?;
    let call =
        call_when(&server, &first, "post-call work", |c| !c["analytics"].is_null() && jobs_settled(c))?;

    // Analytics from the agent's model, checked and stored on the call.
    let a = &call["analytics"];
    assert_eq!((a["source"].as_str(), a["category"].as_str()), (Some("llm"), Some("Immediate Buyer")), "{a}");
    assert_eq!(a["quote"], "I'd like to order a birthday cake for Saturday. My email is Ann@Example.com");
    assert_eq!(a["turn_sentiments"].as_array().map(Vec::len), Some(1), "{a}");
    assert_eq!(a["attempts"], 1);
    // Provider usage from the model's own counts: a reply and the analytics.
    assert_eq!(call["usage"]["llm_prompt_tokens"], 100, "{}", call["usage"]);
    assert_eq!(call["usage"]["llm_tokens_estimated"], false);
    let jobs = call["post_call"]["jobs"].as_array().ok_or("no jobs")?;
    assert!(jobs.iter().all(|j| j["status"] == "done"), "{jobs:?}");

    // The email, as the SMTP server received it, and its log.
    let m = mail.recv_timeout(Duration::from_secs(10)).map_err(|_| "no email arrived")?;
    assert_eq!(m.to, ["ann@example.com"]);
    assert!(m.data.contains("Subject: Your conversation with Cake Shop"), "{}", m.data);
    assert!(m.data.contains("Summary: The visitor wants to order a birthday cake"), "{}", m.data);
    assert!(m.data.contains(&format!("Message-ID: <{first}.summary@voxgate>")), "{}", m.data);
    let emails = call["post_call"]["emails"].as_array().ok_or("no email log")?;
    assert_eq!(emails.len(), 1, "{emails:?}");
    assert_eq!(
        (emails[0]["recipient"].as_str(), emails[0]["status"].as_str()),
        (Some("ann@example.com"), Some("sent"))
    );
    assert!(emails[0]["sent_at"].as_i64().is_some());

    // Webhooks: each event, signed; call.ended again after the receiver's 500.
    let mut got: Vec<Hook> = Vec::new();
    while got.len() < 4 {
        got.push(
            received
                .recv_timeout(Duration::from_secs(20))
                .map_err(|_| format!("webhooks so far: {got:?}"))?,
        );
    }
    let events: Vec<&str> = got.iter().map(|h| h.headers["voxgate-event"].as_str()).collect();
    for event in ["call.started", "call.ended", "call.analyzed"] {
        assert!(events.contains(&event), "{events:?}");
    }
    assert_eq!(events.iter().filter(|e| **e == "call.ended").count(), 2, "{events:?}");
    for hook in &got {
        assert!(signed(hook, SECRET), "bad signature: {hook:?}");
        assert!(!signed(hook, "whsec-some-other-secret"), "{hook:?}");
        let body: Value = serde_json::from_str(&hook.body)?;
        assert_eq!(body["call_id"], first.as_str());
    }
    let ended: Vec<&Hook> = got.iter().filter(|h| h.headers["voxgate-event"] == "call.ended").collect();
    assert_eq!(
        ended[0].headers["voxgate-delivery"], ended[1].headers["voxgate-delivery"],
        "a retry is the same delivery"
    );
    let analyzed =
        got.iter().find(|h| h.headers["voxgate-event"] == "call.analyzed").ok_or("no call.analyzed")?;
    let body: Value = serde_json::from_str(&analyzed.body)?;
    assert_eq!(body["data"]["analytics"]["category"], "Immediate Buyer");
    let call = call_when(&server, &first, "deliveries logged", |c| {
        c["post_call"]["webhooks"].as_array().is_some_and(|d| d.len() >= 4)
    })?;
    let deliveries = call["post_call"]["webhooks"].as_array().ok_or("no deliveries")?;
    let ended: Vec<&Value> = deliveries.iter().filter(|d| d["event"] == "call.ended").collect();
    assert_eq!(
        (ended[0]["status_code"].as_u64(), ended[0]["ok"].as_bool()),
        (Some(500), Some(false)),
        "{deliveries:?}"
    );
    assert_eq!(
        (ended[1]["attempt"].as_u64(), ended[1]["ok"].as_bool()),
        (Some(2), Some(true)),
        "{deliveries:?}"
    );

    // The CRM: a contact made for the email, with a note of the analytics.
    {
        let s = crm_state.lock().map_err(|e| e.to_string())?;
        let contact = s.contacts.get("ann@example.com").ok_or("no contact made")?;
        let notes = &s.notes[contact];
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("Immediate Buyer") && notes[0].contains(&first), "{}", notes[0]);
    }

    // The same visitor again: the same contact, a second note, a second email.
    let second = chat(&server, &agent_id, "Me again, ann@example.com. Can I add candles to my order?")?;
    call_when(&server, &second, "the second chat's post-call work", jobs_settled)?;
    {
        let s = crm_state.lock().map_err(|e| e.to_string())?;
        assert_eq!(s.contacts.len(), 1, "{:?}", s.contacts);
        assert_eq!(s.notes[&s.contacts["ann@example.com"]].len(), 2);
    }
    assert!(mail.recv_timeout(Duration::from_secs(10)).is_ok(), "the second email");

    // Billing: two chats, each a started minute at the chat rate.
    let (status, usage) =
        http(&server, "GET", &format!("/v1/billing/usage?agent={agent_id}"), Some(API_KEY), None)?;
    assert_eq!(status, 200, "{usage}");
    let total = &usage["total"];
    assert_eq!(
        (total["calls"].as_i64(), total["billable_minutes"].as_f64()),
        (Some(2), Some(2.0)),
        "{usage}"
    );
    assert!((total["amount"].as_f64().unwrap_or_default() - 0.02).abs() < 1e-9, "{usage}");
    assert!(total["llm_prompt_tokens"].as_i64() >= Some(200), "{usage}");
    assert_eq!(usage["lines"][0]["channel"], "chat");
    assert_eq!(usage["currency"], "USD");
    let (status, _) = http(&server, "GET", "/v1/billing/usage?month=2026-13", Some(API_KEY), None)?;
    assert_eq!(status, 400);
    // The tries show in the metrics: the webhook's retry among them.
    let (_, metrics) = common::http_text(&server, "GET", "/metrics", None, None)?;
    assert!(
        metrics.contains(r#"voxgate_post_call_jobs_total{kind="webhook",outcome="retry"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"voxgate_post_call_jobs_total{kind="email",outcome="done"} 2"#), "{metrics}");
    Ok(())
}

#[test]
fn unusable_analytics_answers_fall_back_to_the_local_reading() -> TestResult {
    let (llm, asked) = model()?;
    let server =
        start_server(&[("VOXGATE_VAD__BACKEND", "webrtc".to_owned()), ("VOXGATE_OPENAI__BASE_URL", llm)])?;
    let spec = json!({"name": "Help desk", "system_prompt": "You help.", "greeting": "Help desk.",
        "llm": {"provider": "openai", "model": "prose"}});
    let agent_id = create_agent(&server, &spec)?;
    let id = chat(&server, &agent_id, "My order arrived damaged and I am really disappointed.")?;
    let call = call_when(&server, &id, "analytics", |c| !c["analytics"].is_null())?;
    let a = &call["analytics"];
    assert_eq!((a["source"].as_str(), a["model"].as_str()), (Some("fallback"), Some("lexicon")), "{a}");
    assert_eq!(a["category"], "Facing Issue");
    assert!(a["sentiment"].as_f64().is_some_and(|s| s < 0.0), "{a}");
    assert_eq!(a["attempts"], 4, "asked once and retried three times");
    assert_eq!(a["errors"].as_array().map(Vec::len), Some(4), "{a}");
    assert_eq!(*asked.lock().map_err(|e| e.to_string())?, 4);
    Ok(())
}

#[test]
fn a_webhook_that_failed_is_delivered_after_a_restart() -> TestResult {
    let (llm, _) = model()?;
    let data = tempfile::tempdir()?;
    let db = format!("sqlite://{}/voxgate.db", data.path().display());
    // The receiver's port, closed for now: deliveries fail.
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let hook_url = format!("http://127.0.0.1:{port}/hooks");
    let env = vec![
        ("VOXGATE_VAD__BACKEND", "webrtc".to_owned()),
        ("VOXGATE_OPENAI__BASE_URL", llm),
        ("VOXGATE_STORAGE__DATABASE_URL", db),
        // Long enough that the retry is the restarted server's.
        ("VOXGATE_POST_CALL__RETRY_AFTER_S", "3".to_owned()),
        ("VOXGATE_POST_CALL__ALLOW_PRIVATE_TARGETS", "true".to_owned()),
    ];
    let spec = json!({"name": "Hooks", "system_prompt": "You help.", "greeting": "Hello.",
        "llm": {"provider": "openai", "model": "good"},
        "post_call": {"webhooks": [{"url": hook_url, "secret": SECRET, "events": ["call.ended"]}]}});
    let id = {
        let server = start_server(&env)?;
        let agent_id = create_agent(&server, &spec)?;
        let id = chat(&server, &agent_id, "Just checking the opening hours.")?;
        call_when(&server, &id, "a failed delivery", |c| {
            c["post_call"]["webhooks"].as_array().is_some_and(|d| d.iter().any(|d| d["ok"] == false))
        })?;
        id
        // Killed (SIGKILL) here, the delivery still owed.
    };
    let received = receiver(TcpListener::bind(("127.0.0.1", port))?, false)?;
    let server = start_server(&env)?;
    let hook =
        received.recv_timeout(Duration::from_secs(30)).map_err(|_| "not delivered after the restart")?;
    assert_eq!(hook.headers["voxgate-event"], "call.ended");
    assert!(signed(&hook, SECRET), "{hook:?}");
    let call = call_when(&server, &id, "the delivery logged", |c| {
        c["post_call"]["webhooks"].as_array().is_some_and(|d| d.iter().any(|d| d["ok"] == true))
    })?;
    let deliveries = call["post_call"]["webhooks"].as_array().ok_or("no deliveries")?;
    assert!(deliveries.len() >= 2, "{deliveries:?}");
    assert_eq!(deliveries[0]["status_code"], Value::Null, "the first found nobody: {deliveries:?}");
    Ok(())
}

#[test]
fn the_offline_agents_chats_get_the_local_reading_and_a_bill() -> TestResult {
    let server = start_server(&[("VOXGATE_VAD__BACKEND", "webrtc".to_owned())])?;
    // The configured agent (the local models), as the README's command runs it.
    let id = chat(&server, "", "Hello! How much is a sourdough loaf? Thanks, that's great.")?;
    let call = call_when(&server, &id, "analytics", |c| !c["analytics"].is_null() && jobs_settled(c))?;
    let a = &call["analytics"];
    assert_eq!(
        (a["source"].as_str(), a["category"].as_str()),
        (Some("fallback"), Some("Potential Buyer")),
        "{a}"
    );
    assert!(a["errors"][0].as_str().is_some_and(|e| e.contains("local_model_analytics")), "{a}");
    assert!(a["sentiment"].as_f64().is_some_and(|s| s > 0.0), "{a}");
    // The local model's own token counts, not estimates.
    assert_eq!(call["usage"]["llm_tokens_estimated"], false, "{}", call["usage"]);
    let (status, usage) = http(&server, "GET", "/v1/billing/usage?agent=default", Some(API_KEY), None)?;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(usage["total"]["calls"], 1, "{usage}");
    assert_eq!(usage["lines"][0]["agent_id"], Value::Null);
    Ok(())
}

#[test]
fn by_default_webhooks_do_not_reach_internal_addresses() -> TestResult {
    let (llm, _) = model()?;
    // A receiver that would take anything; tenants choose these URLs.
    let hooks = TcpListener::bind("127.0.0.1:0")?;
    let hook_url = format!("http://{}/internal", hooks.local_addr()?);
    let received = receiver(hooks, false)?;
    let server =
        start_server(&[("VOXGATE_VAD__BACKEND", "webrtc".to_owned()), ("VOXGATE_OPENAI__BASE_URL", llm)])?;
    let spec = json!({"name": "Hooks", "system_prompt": "You help.", "greeting": "Hello.",
        "llm": {"provider": "openai", "model": "good"},
        "post_call": {"webhooks": [{"url": hook_url, "secret": SECRET, "events": ["call.ended"]}]}});
    let agent_id = create_agent(&server, &spec)?;
    let id = chat(&server, &agent_id, "Just checking the opening hours.")?;
    let call = call_when(&server, &id, "the refusal logged", |c| {
        c["post_call"]["webhooks"].as_array().is_some_and(|d| !d.is_empty()) && jobs_settled(c)
    })?;
    let delivery = &call["post_call"]["webhooks"][0];
    assert_eq!(delivery["ok"], false, "{delivery}");
    assert!(delivery["error"].as_str().is_some_and(|e| e.contains("not a public address")), "{delivery}");
    let jobs = call["post_call"]["jobs"].as_array().ok_or("no jobs")?;
    let hook = jobs.iter().find(|j| j["kind"] == "webhook").ok_or("no webhook job")?;
    assert_eq!(
        (hook["status"].as_str(), hook["attempts"].as_u64()),
        (Some("failed"), Some(1)),
        "not retried: {hook}"
    );
    assert!(received.recv_timeout(Duration::from_millis(500)).is_err(), "nothing reached the receiver");
    Ok(())
}
