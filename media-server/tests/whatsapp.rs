//! WhatsApp against Meta as the tests can have it: the Graph API played by
//! a server written here that checks each request as Meta does (the path
//! and version, the app's bearer token, the JSON fields, the 4096-character
//! limit, the 24-hour window) and answers as Meta does; webhooks signed as
//! Meta signs them (HMAC-SHA256 of the raw body with the app's secret,
//! computed by Python's `hmac`, not by our code).

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{API_KEY, Server, TestResult, http, root, start_server};
use serde_json::{Value, json};

const APP_SECRET: &str = "meta-app-secret-1";
const ACCESS_TOKEN: &str = "EAAG-test-access-token";
const VERIFY_TOKEN: &str = "voxgate-verify-me";
const NUMBER: &str = "106540352242922";
const CONTACT: &str = "15551234567";
const VOICE_CONTACT: &str = "15552223333";
/// A contact whose 24-hour window closes, as far as Meta is concerned,
/// after the first text sent to them.
const LAPSED: &str = "15559876543";

/// Meta's Graph API on 127.0.0.1: each request it took, as
/// `{"method", "path", "body", "status"}`. Media `VOICE1` is `voice_note`,
/// behind a download URL as Meta gives one.
struct Graph {
    /// The base URL, version included.
    url: String,
    requests: mpsc::Receiver<Value>,
}

impl Graph {
    fn start(voice_note: Vec<u8>) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let host = listener.local_addr()?;
        let url = format!("http://{host}/v21.0");
        let (seen, requests) = mpsc::channel();
        let (mut sent, mut lapsed_texts) = (0, 0);
        common::serve_http(listener, move |mut stream| {
            let request = common::read_request(&mut stream);
            let (head, body) = request.split_once("\r\n\r\n").unwrap_or((&request, ""));
            let mut line = head.lines().next().unwrap_or_default().split_whitespace();
            let (method, path) = (line.next().unwrap_or_default(), line.next().unwrap_or_default());
            let header = |name: &str| {
                head.lines()
                    .find_map(|l| {
                        l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
                    })
                    .unwrap_or_default()
                    .to_owned()
            };
            let body: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            let authorized = header("authorization") == format!("Bearer {ACCESS_TOKEN}");
            if authorized && method == "GET" && path == "/media/voice1" {
                let _ = seen.send(json!({"method": method, "path": path, "status": 200}));
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: audio/ogg\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    voice_note.len()
                );
                let _ = stream.write_all(&voice_note);
                return;
            }
            let (status, answer) = if !authorized {
                (
                    401,
                    json!({"error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}}),
                )
            } else if method == "GET" && path == "/v21.0/VOICE1" {
                (
                    200,
                    json!({"messaging_product": "whatsapp", "url": format!("http://{host}/media/voice1"),
                    "mime_type": "audio/ogg; codecs=opus", "file_size": voice_note.len(), "id": "VOICE1"}),
                )
            } else if method != "POST" || path != format!("/v21.0/{NUMBER}/messages") {
                (
                    400,
                    json!({"error": {"message": "Unsupported request", "type": "GraphMethodException", "code": 100}}),
                )
            } else if !header("content-type").starts_with("application/json")
                || body["messaging_product"] != "whatsapp"
            {
                (
                    400,
                    json!({"error": {"message": "(#100) The parameter messaging_product is required.", "code": 100}}),
                )
            } else if body["status"] == "read" {
                (200, json!({"success": true}))
            } else if body["to"] == LAPSED && body["type"] == "text" && {
                lapsed_texts += 1;
                lapsed_texts > 1
            } {
                (
                    400,
                    json!({"error": {"message": "(#131047) Re-engagement message", "type": "OAuthException",
                    "code": 131_047}}),
                )
            } else if body["type"] == "text"
                && body["text"]["body"].as_str().is_some_and(|t| t.chars().count() <= 4096)
                || body["type"] == "template" && body["template"]["name"].is_string()
            {
                sent += 1;
                (
                    200,
                    json!({"messaging_product": "whatsapp", "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                    "messages": [{"id": format!("wamid.OUT{sent}")}]}),
                )
            } else {
                (400, json!({"error": {"message": "(#100) Invalid parameter", "code": 100}}))
            };
            let _ = seen.send(json!({"method": method, "path": path, "body": body, "status": status}));
            let answer = answer.to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        })?;
        Ok(Self { url, requests })
    }

    /// The next request Meta took (30 s at most: a local model may be slow).
    fn next(&self) -> Result<Value, Box<dyn std::error::Error>> {
        Ok(self
            .requests
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| "no request reached the Graph API")?)
    }

    /// Nothing reaches the Graph API for `wait`.
    fn quiet(&self, wait: Duration) -> TestResult {
        match self.requests.recv_timeout(wait) {
            Ok(r) => Err(format!("an unexpected Graph API request: {r}").into()),
            Err(_) => Ok(()),
        }
    }
}

/// The store-hours question as a WhatsApp voice note: Ogg Opus from `opusenc`.
fn voice_note() -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let out = std::env::temp_dir().join(format!("voxgate-voice-note-{}.ogg", std::process::id()));
    let made = Command::new("opusenc")
        .args(["--quiet", "--bitrate", "24"])
        .arg(root().join("fixtures/audio/store_hours_16k.wav"))
        .arg(&out)
        .status()?;
    assert!(made.success(), "opusenc failed (scripts/setup.sh installs opus-tools)");
    let bytes = std::fs::read(&out)?;
    std::fs::remove_file(&out)?;
    Ok(bytes)
}

/// `X-Hub-Signature-256` for `body`, as Meta computes it (Python's hmac).
fn meta_signature(secret: &str, body: &str) -> Result<String, Box<dyn std::error::Error>> {
    let script = "import hashlib, hmac, sys\n\
                  print('sha256=' + hmac.new(sys.argv[1].encode(), sys.stdin.buffer.read(), hashlib.sha256).hexdigest())";
    let mut child = Command::new("python3")
        .args(["-c", script, secret])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    child.stdin.take().ok_or("stdin")?.write_all(body.as_bytes())?;
    let out = child.wait_with_output()?;
    assert!(out.status.success());
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// POSTs `body` to app `app`'s webhook with `signature` (none: no header).
fn post_webhook(
    server: &Server,
    app: &str,
    body: &str,
    signature: Option<&str>,
) -> Result<u16, Box<dyn std::error::Error>> {
    use std::io::Read as _;
    let mut stream = std::net::TcpStream::connect(server.http)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let signed = signature.map(|s| format!("X-Hub-Signature-256: {s}\r\n")).unwrap_or_default();
    write!(
        stream,
        "POST /v1/whatsapp/{app}/webhook HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n{signed}\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.http,
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0))
}

/// Sends `change` (a `messages` change's value) to app `app`'s webhook, signed as Meta signs it.
fn deliver(server: &Server, app: &str, change: &Value) -> Result<u16, Box<dyn std::error::Error>> {
    let body = notification(change).to_string();
    post_webhook(server, app, &body, Some(&meta_signature(APP_SECRET, &body)?))
}

fn notification(change: &Value) -> Value {
    json!({"object": "whatsapp_business_account",
           "entry": [{"id": "WABA_1", "changes": [{"field": "messages", "value": change}]}]})
}

/// A contact's text message to [`NUMBER`].
fn text_from(contact: &str, id: &str, text: &str) -> Value {
    json!({"messaging_product": "whatsapp",
           "metadata": {"display_phone_number": "15550001111", "phone_number_id": NUMBER},
           "contacts": [{"profile": {"name": "Ann"}, "wa_id": contact}],
           "messages": [{"from": contact, "id": id, "timestamp": "1700000000", "type": "text", "text": {"body": text}}]})
}

fn status_of(id: &str, status: &str) -> Value {
    json!({"messaging_product": "whatsapp",
           "metadata": {"display_phone_number": "15550001111", "phone_number_id": NUMBER},
           "statuses": [{"id": id, "status": status, "timestamp": "1700000001", "recipient_id": CONTACT}]})
}

/// Registers the app and routes [`NUMBER`] to `agent`; the app's id.
fn register(server: &Server, key: &str, agent: &str) -> Result<String, Box<dyn std::error::Error>> {
    let app = json!({"meta_app_id": "1234567890", "app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN,
                     "access_token": ACCESS_TOKEN});
    let (status, made) = http(server, "POST", "/v1/whatsapp/apps", Some(key), Some(&app.to_string()))?;
    assert_eq!(status, 201, "{made}");
    assert!(!made.to_string().contains(APP_SECRET) && !made.to_string().contains(ACCESS_TOKEN), "{made}");
    let id = made["id"].as_str().ok_or("no app id")?.to_owned();
    assert!(
        made["webhook_url"].as_str().is_some_and(|u| u.ends_with(&format!("/v1/whatsapp/{id}/webhook"))),
        "{made}"
    );
    let route = json!({"agent": agent}).to_string();
    let path = format!("/v1/whatsapp/apps/{id}/numbers/{NUMBER}");
    let (status, routed) = http(server, "PUT", &path, Some(key), Some(&route))?;
    assert_eq!(status, 200, "{routed}");
    Ok(id)
}

/// The tenant's conversation `id`, once `ready` holds (10 s at most).
fn conversation_when(
    server: &Server,
    key: &str,
    id: &str,
    ready: impl Fn(&Value) -> bool,
) -> Result<Value, Box<dyn std::error::Error>> {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, c) = http(server, "GET", &format!("/v1/conversations/{id}"), Some(key), None)?;
        assert_eq!(status, 200, "{c}");
        if ready(&c) {
            return Ok(c);
        }
        if Instant::now() > until {
            return Err(format!("the conversation never got there: {c:#}").into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn only_conversation(server: &Server, key: &str) -> Result<String, Box<dyn std::error::Error>> {
    let (status, list) = http(server, "GET", "/v1/conversations", Some(key), None)?;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list:#}");
    Ok(list[0]["id"].as_str().ok_or("no id")?.to_owned())
}

/// Another contact's voice note is fetched, heard and answered in text:
/// its conversation's id.
fn a_voice_note_is_heard_and_answered(
    server: &Server,
    graph: &Graph,
    app: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let note = json!({"messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": NUMBER},
        "contacts": [{"profile": {"name": "Bo"}, "wa_id": VOICE_CONTACT}],
        "messages": [{"from": VOICE_CONTACT, "id": "wamid.IN2", "timestamp": "1700000002", "type": "audio",
                      "audio": {"id": "VOICE1", "mime_type": "audio/ogg; codecs=opus", "voice": true}}]});
    assert_eq!(deliver(server, app, &note)?, 200);
    let fetched: Vec<String> = (0..2)
        .map(|_| graph.next().map(|r| r["path"].as_str().unwrap_or_default().to_owned()))
        .collect::<Result<_, _>>()?;
    assert_eq!(fetched, ["/v21.0/VOICE1", "/media/voice1"]);
    assert_eq!(graph.next()?["body"]["message_id"], "wamid.IN2");
    let answer = graph.next()?;
    let text = answer["body"]["text"]["body"].as_str().unwrap_or_default().to_owned();
    let lower = text.to_lowercase();
    assert!(
        lower.contains('9') || lower.contains("nine"),
        "no opening time in the answer to the voice note: {text}"
    );
    assert_eq!(answer["body"]["to"], VOICE_CONTACT);
    let (_, open) = http(server, "GET", "/v1/conversations", Some(API_KEY), None)?;
    let voice = open
        .as_array()
        .and_then(|o| o.iter().find(|c| c["contact"] == VOICE_CONTACT))
        .ok_or("no conversation")?;
    let voice = voice["id"].as_str().ok_or("no id")?.to_owned();
    let c = conversation_when(server, API_KEY, &voice, |c| {
        c["messages"].as_array().is_some_and(|m| m.len() == 2)
    })?;
    let heard = c["messages"][0]["text"].as_str().unwrap_or_default().to_lowercase();
    assert_eq!(c["messages"][0]["kind"], "voice");
    assert!(heard.contains("open") && heard.contains("saturday"), "the voice note was heard as {heard:?}");
    assert_eq!(
        (c["messages"][1]["author"].as_str(), c["messages"][1]["text"].as_str()),
        (Some("agent"), Some(text.as_str()))
    );
    Ok(voice)
}

#[test]
fn a_whatsapp_contact_is_answered_by_the_offline_agent_once_per_message() -> TestResult {
    let graph = Graph::start(voice_note()?)?;
    let server = start_server(&[("VOXGATE_WHATSAPP__GRAPH_URL", graph.url.clone())])?;
    let app = register(&server, API_KEY, "")?;

    // Meta verifies the webhook: the app's verify token gets the challenge back, nothing else does.
    let verify = |token: &str| {
        common::http_text(
            &server,
            "GET",
            &format!(
                "/v1/whatsapp/{app}/webhook?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444"
            ),
            None,
            None,
        )
    };
    assert_eq!(verify(VERIFY_TOKEN)?, (200, "1158201444".to_owned()));
    assert_eq!(verify("guess")?.0, 403);

    // Not signed by the app: refused, and nothing is stored or sent.
    let question = text_from(CONTACT, "wamid.IN1", "What time does your store open on Saturday?");
    let body = notification(&question).to_string();
    assert_eq!(post_webhook(&server, &app, &body, None)?, 401);
    assert_eq!(post_webhook(&server, &app, &body, Some(&meta_signature("another-secret", &body)?))?, 401);
    let tampered = body.replace("Saturday", "Sunday");
    assert_eq!(post_webhook(&server, &app, &tampered, Some(&meta_signature(APP_SECRET, &body)?))?, 401);
    assert_eq!(post_webhook(&server, "wa_nosuchapp", &body, Some(&meta_signature(APP_SECRET, &body)?))?, 401);
    graph.quiet(Duration::from_secs(1))?;
    let (_, none) = http(&server, "GET", "/v1/conversations", Some(API_KEY), None)?;
    assert_eq!(none, json!([]));

    // Signed: read, typing, then the agent's answer, to the contact, from the number.
    assert_eq!(deliver(&server, &app, &question)?, 200);
    let read = graph.next()?;
    assert_eq!(
        (read["body"]["status"].as_str(), read["body"]["message_id"].as_str()),
        (Some("read"), Some("wamid.IN1")),
        "{read}"
    );
    assert_eq!(read["body"]["typing_indicator"]["type"], "text", "{read}");
    let answer = graph.next()?;
    assert_eq!(
        (answer["status"].as_u64(), answer["body"]["to"].as_str()),
        (Some(200), Some(CONTACT)),
        "{answer}"
    );
    let text = answer["body"]["text"]["body"].as_str().unwrap_or_default().to_lowercase();
    assert!(text.contains('9') || text.contains("nine"), "no opening time in the answer: {text}");

    // Meta delivers it again: stored and answered once.
    assert_eq!(deliver(&server, &app, &question)?, 200);
    graph.quiet(Duration::from_secs(3))?;
    let id = only_conversation(&server, API_KEY)?;
    let c =
        conversation_when(&server, API_KEY, &id, |c| c["messages"].as_array().is_some_and(|m| m.len() == 2))?;
    assert_eq!(
        (c["status"].as_str(), c["contact"].as_str(), c["contact_name"].as_str()),
        (Some("ai"), Some(CONTACT), Some("Ann"))
    );
    assert_eq!(c["messages"][0]["author"], "contact");
    assert_eq!(
        (c["messages"][1]["author"].as_str(), c["messages"][1]["status"].as_str()),
        (Some("agent"), Some("sent"))
    );

    // Statuses of what was sent land on it, and never go back.
    for status in ["delivered", "read", "delivered"] {
        assert_eq!(deliver(&server, &app, &status_of("wamid.OUT1", status))?, 200);
    }
    let c = conversation_when(&server, API_KEY, &id, |c| c["messages"][1]["status"] == "read")?;
    assert_eq!(c["messages"][1]["status"], "read", "{c:#}");

    let voice = a_voice_note_is_heard_and_answered(&server, &graph, &app)?;

    // Each conversation is a call record of channel whatsapp while it is open.
    let (_, calls) = http(&server, "GET", "/v1/calls?channel=whatsapp", Some(API_KEY), None)?;
    let mut records: Vec<(&str, &str)> = calls["calls"]
        .as_array()
        .ok_or("no calls")?
        .iter()
        .filter_map(|c| Some((c["id"].as_str()?, c["status"].as_str()?)))
        .collect();
    records.sort_unstable();
    let mut expected = [(id.as_str(), "in_progress"), (voice.as_str(), "in_progress")];
    expected.sort_unstable();
    assert_eq!(records, expected, "{calls:#}");
    // The contact's number stays out of the log.
    let log: Vec<String> = server.log.try_iter().collect();
    assert!(
        log.iter().any(|l| l.contains("WhatsApp message") && l.contains("***67")),
        "no redacted contact in the log"
    );
    assert!(!log.iter().any(|l| l.contains(CONTACT)), "the contact's number is in the log");
    Ok(())
}

#[test]
fn the_desk_takes_over_what_the_agent_hands_on_and_gives_it_back() -> TestResult {
    let graph = Graph::start(Vec::new())?;
    let llm = common::tool_calling_llm(
        "Let me find a colleague for that.",
        "escalate_to_human",
        r#"{"reason": "a refund"}"#,
    )?;
    let (hook, hooks) = common::json_endpoint("/hooks", "{}")?;
    let server = start_server(&[
        ("VOXGATE_WHATSAPP__GRAPH_URL", graph.url.clone()),
        ("VOXGATE_OPENAI__BASE_URL", llm),
        ("VOXGATE_OPENAI__API_KEY", "test-key".to_owned()),
        ("VOXGATE_POST_CALL__ALLOW_PRIVATE_TARGETS", "true".to_owned()),
    ])?;
    let agent = json!({"name": "Refunds desk", "llm": {"provider": "openai"},
        "handoff_keywords": ["speak to a person"],
        "post_call": {"webhooks": [{"url": hook, "secret": "a-webhook-secret-16", "events": ["conversation.escalated"]}]}});
    let (status, agent) = http(&server, "POST", "/v1/agents", Some(API_KEY), Some(&agent.to_string()))?;
    assert_eq!(status, 201, "{agent}");
    let app = register(&server, API_KEY, agent["id"].as_str().ok_or("no agent id")?)?;

    // The model hands the contact on: its words go out, then the agent is silent.
    assert_eq!(deliver(&server, &app, &text_from(CONTACT, "wamid.IN1", "I want my money back"))?, 200);
    assert_eq!(graph.next()?["body"]["status"], "read");
    let said = graph.next()?;
    assert_eq!(said["body"]["text"]["body"], "Let me find a colleague for that.", "{said}");
    let id = only_conversation(&server, API_KEY)?;
    conversation_when(&server, API_KEY, &id, |c| c["status"] == "waiting_for_human")?;
    let escalated =
        hooks.recv_timeout(Duration::from_secs(20)).map_err(|_| "no conversation.escalated webhook")?;
    assert!(escalated.to_lowercase().contains("voxgate-signature: t="), "{escalated}");
    assert!(
        escalated.contains(r#""event":"conversation.escalated""#) && escalated.contains("a refund"),
        "{escalated}"
    );
    assert_eq!(deliver(&server, &app, &text_from(CONTACT, "wamid.IN2", "Hello? Anyone?"))?, 200);
    graph.quiet(Duration::from_secs(2))?;

    // A person claims it and writes; nobody else may write in it, nor before claiming.
    let write = |key: &str, text: &str| {
        let body = json!({"text": text}).to_string();
        http(&server, "POST", &format!("/v1/conversations/{id}/messages"), Some(key), Some(&body))
    };
    assert_eq!(write(API_KEY, "Hi, Bob here.")?.0, 409, "a reply before claiming");
    let (status, claimed) =
        http(&server, "POST", &format!("/v1/conversations/{id}/claim"), Some(API_KEY), None)?;
    assert_eq!((status, claimed["status"].as_str()), (200, Some("human")), "{claimed}");
    let (status, sent) = write(API_KEY, "Hi, Bob here. I have refunded your order.")?;
    assert_eq!(status, 201, "{sent}");
    let out = graph.next()?;
    assert_eq!(
        (out["body"]["to"].as_str(), out["body"]["text"]["body"].as_str()),
        (Some(CONTACT), Some("Hi, Bob here. I have refunded your order."))
    );
    let (status, other) = http(
        &server,
        "POST",
        "/v1/api-keys",
        Some(API_KEY),
        Some(r#"{"name": "desk 2", "scope": "write"}"#),
    )?;
    assert_eq!(status, 201, "{other}");
    let other = other["key"].as_str().ok_or("no key")?.to_owned();
    assert_eq!(write(&other, "Me too")?.0, 409, "another person's conversation");
    assert_eq!(http(&server, "POST", &format!("/v1/conversations/{id}/claim"), Some(&other), None)?.0, 409);

    // Back to the agent: it answers the next message (and hands on again).
    let (status, back) =
        http(&server, "POST", &format!("/v1/conversations/{id}/hand-back"), Some(API_KEY), None)?;
    assert_eq!((status, back["status"].as_str()), (200, Some("ai")), "{back}");
    assert_eq!(deliver(&server, &app, &text_from(CONTACT, "wamid.IN3", "Thanks! One more thing"))?, 200);
    assert_eq!(graph.next()?["body"]["message_id"], "wamid.IN3");
    assert_eq!(graph.next()?["body"]["text"]["body"], "Let me find a colleague for that.");

    // Closed: the record holds everyone's words, the person's as staff.
    let (status, closed) =
        http(&server, "POST", &format!("/v1/conversations/{id}/close"), Some(API_KEY), None)?;
    assert_eq!((status, closed["status"].as_str()), (200, Some("closed")), "{closed}");
    let call = common::call_log(&server)?;
    assert_eq!(
        (call["channel"].as_str(), call["status"].as_str()),
        (Some("whatsapp"), Some("agent_ended")),
        "{call:#}"
    );
    let speakers: Vec<&str> = call["transcript"]
        .as_array()
        .ok_or("no transcript")?
        .iter()
        .filter_map(|l| l["speaker"].as_str())
        .collect();
    assert_eq!(speakers, ["caller", "agent", "caller", "staff", "caller", "agent"], "{call:#}");
    assert_eq!(write(API_KEY, "Still there?")?.0, 409, "a closed conversation");

    keyword_and_window(&server, &graph, &app)
}

/// The contact's words alone hand a conversation on (the agent's keyword,
/// without the model); outside the 24-hour window Meta refuses free text,
/// and a template goes.
fn keyword_and_window(server: &Server, graph: &Graph, app: &str) -> TestResult {
    assert_eq!(
        deliver(server, app, &text_from(LAPSED, "wamid.IN4", "Can I speak to a person, please?"))?,
        200
    );
    let told = graph.next()?;
    assert_eq!(
        told["body"]["text"]["body"], "I have passed this to a colleague, who will reply here shortly.",
        "{told}"
    );
    let until = Instant::now() + Duration::from_secs(10);
    let open = loop {
        let (_, open) =
            http(server, "GET", "/v1/conversations?status=waiting_for_human", Some(API_KEY), None)?;
        if open[0].is_object() || Instant::now() > until {
            break open;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let lapsed = open[0]["id"].as_str().ok_or("no conversation waits")?.to_owned();
    assert_eq!(open[0]["contact"], LAPSED);
    // Meta refuses free text outside the 24-hour window; a template goes.
    http(server, "POST", &format!("/v1/conversations/{lapsed}/claim"), Some(API_KEY), None)?;
    let body = json!({"text": "Are you still there?"}).to_string();
    let (status, refused) =
        http(server, "POST", &format!("/v1/conversations/{lapsed}/messages"), Some(API_KEY), Some(&body))?;
    assert_eq!(status, 409, "{refused}");
    assert!(refused["error"].as_str().is_some_and(|e| e.contains("24 hours")), "{refused}");
    graph.next()?;
    let template = json!({"template": {"name": "follow_up", "language": "en_US"}}).to_string();
    let (status, sent) = http(
        server,
        "POST",
        &format!("/v1/conversations/{lapsed}/messages"),
        Some(API_KEY),
        Some(&template),
    )?;
    assert_eq!(status, 201, "{sent}");
    let out = graph.next()?;
    assert_eq!(
        (out["body"]["template"]["name"].as_str(), out["status"].as_u64()),
        (Some("follow_up"), Some(200)),
        "{out}"
    );
    Ok(())
}

/// `GET /v1/conversations/events` as `key`: each event's data, as it comes.
fn feed(server: &Server, key: &str) -> Result<mpsc::Receiver<String>, Box<dyn std::error::Error>> {
    use std::io::{BufRead as _, BufReader};
    let mut stream = std::net::TcpStream::connect(server.http)?;
    write!(
        stream,
        "GET /v1/conversations/events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\n\r\n",
        server.http
    )?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut lines = BufReader::new(stream).lines();
    let status = lines.next().ok_or("no answer")??;
    assert!(status.contains(" 200 "), "{status}");
    let (events, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if let Some(data) = line.strip_prefix("data:")
                && events.send(data.trim().to_owned()).is_err()
            {
                return;
            }
        }
    });
    Ok(received)
}

#[test]
fn a_tenant_s_conversations_and_numbers_are_its_own() -> TestResult {
    let graph = Graph::start(Vec::new())?;
    let server = start_server(&[("VOXGATE_WHATSAPP__GRAPH_URL", graph.url.clone())])?;
    let eve = common::tenant_admin(&server, "eve@globex.example", "admin-password-1", "globex")?;

    let app = register(&server, API_KEY, "")?;
    assert_eq!(deliver(&server, &app, &text_from(CONTACT, "wamid.IN1", "Hello"))?, 200);
    // Read, then answered.
    graph.next()?;
    graph.next()?;
    let id = only_conversation(&server, API_KEY)?;

    // Each tenant's desk feed carries its own conversations only.
    let ours = feed(&server, API_KEY)?;
    let theirs = feed(&server, &eve)?;
    assert_eq!(deliver(&server, &app, &text_from(CONTACT, "wamid.IN2", "Are you there?"))?, 200);
    graph.next()?;
    graph.next()?;
    assert!(
        ours.recv_timeout(Duration::from_secs(10)).is_ok_and(|e| e.contains(&id)),
        "no event on the tenant's feed"
    );
    assert!(theirs.recv_timeout(Duration::from_secs(2)).is_err(), "another tenant's feed carried it");

    // Another tenant sees none of it, and can neither take it nor route the number.
    assert_eq!(http(&server, "GET", "/v1/conversations", Some(&eve), None)?.1, json!([]));
    for (method, path) in
        [("GET", format!("/v1/conversations/{id}")), ("POST", format!("/v1/conversations/{id}/claim"))]
    {
        assert_eq!(http(&server, method, &path, Some(&eve), None)?.0, 404, "{method} {path}");
    }
    assert_eq!(http(&server, "GET", "/v1/whatsapp/apps", Some(&eve), None)?.1, json!([]));
    let eves =
        json!({"meta_app_id": "999", "app_secret": "eve-secret", "verify_token": "v", "access_token": "t"});
    let (_, eves) = http(&server, "POST", "/v1/whatsapp/apps", Some(&eve), Some(&eves.to_string()))?;
    let eves = eves["id"].as_str().ok_or("no app")?.to_owned();
    let take = |app: &str| {
        http(
            &server,
            "PUT",
            &format!("/v1/whatsapp/apps/{app}/numbers/{NUMBER}"),
            Some(&eve),
            Some(r#"{"agent": ""}"#),
        )
    };
    assert_eq!(take(&app)?.0, 404, "another tenant's app");
    assert_eq!(take(&eves)?.0, 404, "the configured agent is the default tenant's");
    // Eve's own app, signing for a number that is not hers: nothing reaches the agent.
    let body = notification(&text_from(CONTACT, "wamid.EVE", "Hello from Eve's app")).to_string();
    assert_eq!(post_webhook(&server, &eves, &body, Some(&meta_signature("eve-secret", &body)?))?, 200);
    graph.quiet(Duration::from_secs(2))?;
    let c = conversation_when(&server, API_KEY, &id, |_| true)?;
    assert_eq!(c["messages"].as_array().map(Vec::len), Some(4), "{c:#}");
    Ok(())
}

#[test]
fn a_person_at_the_desk_page_claims_and_answers_a_conversation_as_it_arrives() -> TestResult {
    use std::io::{BufRead as _, BufReader, Read as _};
    let browser_dir = root().join("media-server/tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "the browser tests need Node.js >= 20 with npm, then scripts/setup.sh (it installs their npm packages)"
    );
    let graph = Graph::start(Vec::new())?;
    let server = start_server(&[("VOXGATE_WHATSAPP__GRAPH_URL", graph.url.clone())])?;
    let (status, agent) = http(
        &server,
        "POST",
        "/v1/agents",
        Some(API_KEY),
        Some(r#"{"name": "Bakery", "handoff_keywords": ["human"]}"#),
    )?;
    assert_eq!(status, 201, "{agent}");
    let app = register(&server, API_KEY, agent["id"].as_str().ok_or("no agent id")?)?;
    let database = format!("sqlite://{}/voxgate.db", server.recordings.display());
    common::admin_create(&database, "desk@bakery.test", "a long desk password", "default")?;

    let artifacts = root().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts)?;
    let shot = artifacts.join("desk.png");
    let mut person = Command::new("node")
        .current_dir(&browser_dir)
        .arg("desk.mjs")
        .arg(format!("http://{}/dashboard", server.http))
        .args(["desk@bakery.test", "a long desk password", "Hello Ann, this is Bob from the bakery."])
        .arg(&shot)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(person.stdout.take().ok_or("stdout")?).lines();
    assert_eq!(lines.next().transpose()?.as_deref(), Some("ready"), "the desk page did not open");

    // The contact asks for a human: the conversation is handed on while the page is open.
    assert_eq!(deliver(&server, &app, &text_from(CONTACT, "wamid.IN1", "Can I talk to a human?"))?, 200);
    let told = graph.next()?;
    assert_eq!(
        told["body"]["text"]["body"],
        "I have passed this to a colleague, who will reply here shortly."
    );
    let reply = graph.next()?;
    assert_eq!(
        (reply["body"]["to"].as_str(), reply["body"]["text"]["body"].as_str()),
        (Some(CONTACT), Some("Hello Ann, this is Bob from the bakery."))
    );
    let seen = lines.next().transpose()?.ok_or("the desk page stopped")?;
    let mut errors = String::new();
    if let Some(mut e) = person.stderr.take() {
        e.read_to_string(&mut errors)?;
    }
    assert!(person.wait()?.success(), "the person at the desk failed: {errors}");
    let seen: Value = serde_json::from_str(&seen)?;
    assert_eq!(seen["before"], 0, "{seen}");
    assert_eq!(seen["waiting"], "(1)", "the Desk tab counts what waits: {seen}");
    assert!(seen["handedOver"].to_string().contains("Can I talk to a human?"), "{seen}");
    assert_eq!(seen["status"], "You have it.", "{seen}");
    assert_eq!(seen["errors"], json!([]), "no script errors");
    let id = only_conversation(&server, API_KEY)?;
    conversation_when(&server, API_KEY, &id, |c| c["status"] == "ai")?;
    Ok(())
}

#[test]
fn an_idle_conversation_closes_with_its_record_and_the_next_message_opens_another() -> TestResult {
    let graph = Graph::start(Vec::new())?;
    let server = start_server(&[
        ("VOXGATE_WHATSAPP__GRAPH_URL", graph.url.clone()),
        ("VOXGATE_WHATSAPP__IDLE_CLOSE_S", "2".to_owned()),
    ])?;
    let app = register(&server, API_KEY, "")?;
    assert_eq!(
        deliver(
            &server,
            &app,
            &text_from(CONTACT, "wamid.IN1", "What time does your store open on Saturday?")
        )?,
        200
    );
    graph.next()?;
    graph.next()?;
    let first = only_conversation(&server, API_KEY)?;
    // Nobody writes: it closes by itself, and leaves its record like a call.
    conversation_when(&server, API_KEY, &first, |c| c["status"] == "closed")?;
    let call = common::call_log(&server)?;
    assert_eq!(
        (call["id"].as_str(), call["channel"].as_str(), call["status"].as_str()),
        (Some(first.as_str()), Some("whatsapp"), Some("max_silence")),
        "{call:#}"
    );
    assert_eq!(common::lines(&call, "caller")?, ["What time does your store open on Saturday?"]);
    // The contact writes again: a new conversation.
    assert_eq!(deliver(&server, &app, &text_from(CONTACT, "wamid.IN2", "Thanks!"))?, 200);
    graph.next()?;
    let second = only_conversation(&server, API_KEY)?;
    assert_ne!(second, first);
    Ok(())
}
