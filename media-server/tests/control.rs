//! The control API end to end, on SQLite and on a real PostgreSQL:
//! `voxgate admin create`, login, API keys, agents, calls and recordings,
//! and an auth matrix over every operation in the OpenAPI document.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{API_KEY, Server, TestResult, http, http_bytes, moto, postgres, start_server, url_escape};
use serde_json::{Value, json};

const JWT_SECRET: &str = "control-test-secret-0123456789abcdef";

fn server(database_url: &str, extra: &[(&str, String)]) -> Result<Server, Box<dyn std::error::Error>> {
    let mut env = vec![
        ("VOXGATE_VAD__BACKEND", "webrtc".to_owned()),
        ("VOXGATE_AUTH__JWT_SECRET", JWT_SECRET.to_owned()),
    ];
    if !database_url.is_empty() {
        env.push(("VOXGATE_STORAGE__DATABASE_URL", database_url.to_owned()));
    }
    env.extend(extra.iter().cloned());
    start_server(&env)
}

fn send(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<(u16, Value), Box<dyn std::error::Error>> {
    let body = body.map(Value::to_string);
    http(server, method, path, token, body.as_deref())
}

fn login(server: &Server, email: &str, password: &str) -> Result<String, Box<dyn std::error::Error>> {
    let (status, json) =
        send(server, "POST", "/v1/auth/login", None, Some(&json!({"email": email, "password": password})))?;
    assert_eq!(status, 200, "{json}");
    Ok(json["token"].as_str().ok_or("no token")?.to_owned())
}

/// A token signed with `secret` for `tenant`, expiring at `exp` (Unix s).
fn mint(secret: &str, user: &str, tenant: &str, exp: u64) -> String {
    let claims =
        json!({"sub": user, "tid": tenant, "role": "admin", "exp": exp, "iat": exp.saturating_sub(60)});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("signing")
}

fn now_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn agent_spec(name: &str, number: &str) -> Value {
    json!({
        "name": name,
        "system_prompt": "You answer for the front desk.",
        "greeting": "Front desk, how can I help?",
        "language": "en-GB",
        "llm": {"provider": "openai", "model": "gpt-4o-mini", "temperature": 0.3},
        "tts": {"provider": "local", "voice": "amy"},
        "turn": {"allow_interruptions": true, "min_interruption_words": 2},
        "tools": [{
            "name": "order_status",
            "description": "Look up an order by its number",
            "url": "https://orders.example/api/status",
            "parameters": {"type": "object", "properties": {"order": {"type": "string"}}, "required": ["order"]},
            "headers": {"Authorization": "Bearer tool-secret-1"}
        }],
        "numbers": [number],
        "public": true,
        "widget": {"title": "Front desk", "colour": "#123456", "position": "bottom-left", "allowed_origins": ["https://shop.example"]},
        "post_call": {"email": true, "webhooks": [{"url": "http://127.0.0.1:9/voxgate", "secret": "whsec-0123456789abcdef"}]}
    })
}

/// Places one short call over the JSON media stream to `agent` (empty:
/// the configured one): start, `seconds` of silence, stop. It is recorded
/// like any call.
async fn short_call(server: &Server, agent: &str, seconds: u32) -> TestResult {
    use base64::Engine as _;
    use futures::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/v1/streams/json", server.http)).await?;
    socket.send(Message::text(json!({"type": "start", "agent": agent}).to_string())).await?;
    let silence = base64::engine::general_purpose::STANDARD.encode([0u8; 640]);
    for _ in 0..seconds * 50 {
        socket.send(Message::text(json!({"type": "media", "data": silence}).to_string())).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    socket.send(Message::text(r#"{"type": "stop"}"#)).await?;
    // Until the server closes.
    let _ =
        tokio::time::timeout(Duration::from_secs(10), async { while socket.next().await.is_some() {} }).await;
    Ok(())
}

/// Everything an operator does, on the database at `database_url`.
#[allow(clippy::too_many_lines, reason = "one operator's story, read top to bottom")]
fn operator_story(database_url: &str) -> TestResult {
    let server = server(database_url, &[])?;
    let db = if database_url.is_empty() {
        format!("sqlite://{}/voxgate.db", server.recordings.display())
    } else {
        database_url.to_owned()
    };
    common::admin_create(&db, "ann@acme.example", "ann-password-1", "acme")?;
    common::admin_create(&db, "bob@globex.example", "bob-password-1", "globex")?;
    // The same email twice is refused.
    let again = Command::new(env!("CARGO_BIN_EXE_voxgate"))
        .current_dir(common::root())
        .args(["admin", "create", "--email", "ANN@acme.example", "--tenant", "acme"])
        .env("VOXGATE_ADMIN_PASSWORD", "another-password")
        .env("VOXGATE_STORAGE__DATABASE_URL", &db)
        .output()?;
    assert!(!again.status.success());

    // Log in.
    let (status, _) = send(
        &server,
        "POST",
        "/v1/auth/login",
        None,
        Some(&json!({"email": "ann@acme.example", "password": "wrong"})),
    )?;
    assert_eq!(status, 401);
    let (status, _) = send(
        &server,
        "POST",
        "/v1/auth/login",
        None,
        Some(&json!({"email": "nobody@acme.example", "password": "x"})),
    )?;
    assert_eq!(status, 401);
    let ann = login(&server, "Ann@Acme.example", "ann-password-1")?;
    let bob = login(&server, "bob@globex.example", "bob-password-1")?;
    let (_, me) = send(&server, "GET", "/v1/me", Some(&ann), None)?;
    assert_eq!(me["via"], "token");
    // The operator gives each tenant its numbers.
    common::give_number(&server, "+15550100", &ann)?;
    common::give_number(&server, "+15550199", &bob)?;

    // Agents: create, read back with secrets hidden, replace keeping them, list.
    let (status, created) =
        send(&server, "POST", "/v1/agents", Some(&ann), Some(&agent_spec("Front desk", "+15550100")))?;
    assert_eq!(status, 201, "{created}");
    let agent_id = created["id"].as_str().ok_or("no id")?.to_owned();
    assert_eq!(created["language"], "en-GB");
    assert!(created["endpointing"]["min_silence_ms"].as_u64().is_some(), "defaults filled in: {created}");
    let text = created.to_string();
    assert!(
        !text.contains("tool-secret-1") && !text.contains("whsec-0123456789abcdef"),
        "secrets shown: {text}"
    );
    let mut changed = created.clone();
    for k in ["id", "created_at", "updated_at"] {
        changed.as_object_mut().ok_or("not an object")?.remove(k);
    }
    // Its widget: its look, and only its allowed origins may frame it.
    let frame = raw_get(&server, &format!("/widget/frame?agent={agent_id}"))?;
    assert!(frame.starts_with("HTTP/1.1 200"), "{frame}");
    assert!(frame.to_ascii_lowercase().contains("frame-ancestors 'self' https://shop.example"), "{frame}");
    assert!(frame.contains("#123456") && frame.contains(&agent_id), "{frame}");
    assert!(raw_get(&server, "/widget.js?agent=agt_nope")?.starts_with("HTTP/1.1 404"));
    // A call to the stored agent: its greeting, and the call is Ann's.
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(short_call(&server, &agent_id, 4))?;
    assert_eq!(first_agent_line(&server, &ann, &agent_id, 1)?, "Front desk, how can I help?");
    changed["greeting"] = json!("Hello from the front desk.");
    let (status, updated) =
        send(&server, "PUT", &format!("/v1/agents/{agent_id}"), Some(&ann), Some(&changed))?;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["greeting"], "Hello from the front desk.");
    // A stored secret does not follow its URL to another host: pointing the
    // tool elsewhere with the header written back as shown is refused.
    let mut moved = updated.clone();
    for k in ["id", "created_at", "updated_at"] {
        moved.as_object_mut().ok_or("not an object")?.remove(k);
    }
    moved["tools"][0]["url"] = json!("https://collector.example/steal");
    let (status, json) = send(&server, "PUT", &format!("/v1/agents/{agent_id}"), Some(&ann), Some(&moved))?;
    assert_eq!((status, json["field"].as_str()), (422, Some("tools[0].headers.Authorization")), "{json}");
    // The change reaches the next call at once (the agent cache was invalidated).
    rt.block_on(short_call(&server, &agent_id, 4))?;
    assert_eq!(first_agent_line(&server, &ann, &agent_id, 2)?, "Hello from the front desk.");
    // Another tenant's number: not Bob's to route.
    let (status, json) =
        send(&server, "POST", "/v1/agents", Some(&bob), Some(&agent_spec("Globex", "+15550100")))?;
    assert_eq!((status, json["field"].as_str()), (422, Some("numbers")), "{json}");
    let (status, bob_agent) =
        send(&server, "POST", "/v1/agents", Some(&bob), Some(&agent_spec("Globex", "+15550199")))?;
    assert_eq!(status, 201, "{bob_agent}");
    // Bad definitions name the field.
    for (spoil, field) in [
        (json!({"name": ""}), "name"),
        (json!({"name": "x", "widget": {"colour": "blue"}}), "widget.colour"),
        (
            json!({"name": "x", "tools": [{"name": "a b", "description": "d", "url": "https://x.example"}]}),
            "tools[0].name",
        ),
    ] {
        let (status, json) = send(&server, "POST", "/v1/agents", Some(&ann), Some(&spoil))?;
        assert_eq!((status, json["field"].as_str()), (422, Some(field)), "{json}");
    }
    let (status, json) =
        send(&server, "POST", "/v1/agents", Some(&ann), Some(&json!({"name": "x", "colour": 1})))?;
    assert_eq!(status, 422, "unknown field: {json}");
    // Knowledge upload (markdown).
    let (status, with_doc) =
        upload(&server, &ann, &agent_id, "faq.md", "text/markdown", "# Hours\nWe open at 9.")?;
    assert_eq!(status, 200, "{with_doc}");
    assert_eq!(with_doc["knowledge"][0]["format"], "markdown");
    let (status, _) = upload(&server, &ann, &agent_id, "faq.pdf", "application/pdf", "%PDF")?;
    assert_eq!(status, 415);
    let (_, list) = send(&server, "GET", "/v1/agents", Some(&ann), None)?;
    assert_eq!(list["agents"].as_array().map(Vec::len), Some(1), "{list}");

    // API keys: made, used, revoked.
    let (status, key) =
        send(&server, "POST", "/v1/api-keys", Some(&ann), Some(&json!({"name": "crm sync"})))?;
    assert_eq!(status, 201, "{key}");
    let (key_id, key) =
        (key["id"].as_str().ok_or("no id")?.to_owned(), key["key"].as_str().ok_or("no key")?.to_owned());
    let (status, me) = send(&server, "GET", "/v1/me", Some(&key), None)?;
    assert_eq!((status, me["via"].as_str()), (200, Some("api_key")));
    let (_, keys) = send(&server, "GET", "/v1/api-keys", Some(&ann), None)?;
    assert!(!keys.to_string().contains(&key), "a key is shown once only");

    // Calls: three short calls in the default tenant; pages of two.
    for _ in 0..3 {
        rt.block_on(short_call(&server, "", 1))?;
    }
    let mut ids = Vec::new();
    for _ in 0..100 {
        let (_, page) = send(&server, "GET", "/v1/calls?channel=websocket", Some(API_KEY), None)?;
        let ended =
            page["calls"].as_array().map_or(0, |c| c.iter().filter(|c| c["status"] != "in_progress").count());
        if ended == 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut path = "/v1/calls?limit=2&channel=websocket".to_owned();
    loop {
        let (status, page) = send(&server, "GET", &path, Some(API_KEY), None)?;
        assert_eq!(status, 200, "{page}");
        ids.extend(
            page["calls"]
                .as_array()
                .ok_or("no calls")?
                .iter()
                .filter_map(|c| c["id"].as_str().map(str::to_owned)),
        );
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/calls?limit=2&channel=websocket&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(ids.len(), 3, "{ids:?}");
    let (status, call) =
        send(&server, "GET", &format!("/v1/calls/{}", url_escape(&ids[0])), Some(API_KEY), None)?;
    assert_eq!(status, 200, "{call}");
    assert_eq!((call["channel"].as_str(), call["direction"].as_str()), (Some("websocket"), Some("inbound")));
    assert!(
        call["transcript"].is_array() && call["events"].is_array() && call["latencies"].is_array(),
        "{call}"
    );
    // Analytics come from post-call work (tests/post_call.rs), soon after the call.
    assert!(call["analytics"].is_null() || call["analytics"]["source"] == "fallback", "{call}");
    assert!(call["post_call"]["jobs"].is_array(), "{call}");
    // Each call is billed (post-call work, soon after it ends); the sums read the same on both stores.
    let mut usage = Value::Null;
    for _ in 0..150 {
        let (status, u) = send(&server, "GET", "/v1/billing/usage?from=0", Some(API_KEY), None)?;
        assert_eq!(status, 200, "{u}");
        usage = u;
        if usage["total"]["calls"].as_i64() >= Some(3) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(usage["total"]["calls"].as_i64() >= Some(3), "{usage}");
    assert!(usage["total"]["billable_minutes"].as_f64() >= Some(3.0), "{usage}");
    assert!(usage["total"]["stt_seconds"].as_f64() > Some(0.0), "{usage}");
    // Analytics over the same calls, and a campaign kept (not dialled: its window is closed on no day).
    let (status, figures) = send(&server, "GET", "/v1/analytics/calls?from=0", Some(API_KEY), None)?;
    assert_eq!(status, 200, "{figures}");
    assert!(figures["total"]["calls"].as_i64() >= Some(3), "{figures}");
    let (status, phrases) =
        send(&server, "GET", "/v1/analytics/top-phrases?from=0&limit=5", Some(API_KEY), None)?;
    assert_eq!(status, 200, "{phrases}");
    let campaign = json!({"name": "Later", "numbers": ["+15550100", "+15550101"], "paused": true,
        "window": {"start": "09:00", "end": "17:00", "time_zone": "Europe/London", "days": [6]}});
    let (status, made) = send(&server, "POST", "/v1/campaigns", Some(API_KEY), Some(&campaign))?;
    assert_eq!(status, 201, "{made}");
    let path = format!("/v1/campaigns/{}/cancel", made["id"].as_str().ok_or("no id")?);
    let (status, cancelled) = send(&server, "POST", &path, Some(API_KEY), None)?;
    assert_eq!((status, &cancelled["counts"]), (200, &json!({"cancelled": 2})), "{cancelled}");
    // Its recording by signed link, fetched with no credentials; a changed link is refused.
    let wav = common::recording(&server, &ids[0], API_KEY)?;
    assert!(hound::WavReader::new(std::io::Cursor::new(wav))?.duration() > 8_000);
    let (_, link) =
        send(&server, "GET", &format!("/v1/calls/{}/recording", url_escape(&ids[0])), Some(API_KEY), None)?;
    let url = link["url"].as_str().ok_or("no url")?;
    let local = &url[url.find("/v1/").ok_or("bad url")?..];
    let forged = local.replace("expires=", "expires=9");
    assert_eq!(http_bytes(&server, "GET", &forged, None, None)?.0, 403);
    // Filters: none of these match.
    for q in ["channel=sip", "status=transferred", "agent=agt_none", "from=4102444800000", "to=1"] {
        let (_, page) = send(&server, "GET", &format!("/v1/calls?{q}"), Some(API_KEY), None)?;
        assert_eq!(page["calls"].as_array().map(Vec::len), Some(0), "{q}: {page}");
    }
    for bad in ["limit=0", "limit=x", "cursor=!!", "from=yesterday", "colour=red"] {
        let (status, json) = send(&server, "GET", &format!("/v1/calls?{bad}"), Some(API_KEY), None)?;
        assert_eq!(status, 400, "{bad}: {json}");
        assert!(json["error"].is_string());
    }

    // The auth matrix: every operation that needs credentials refuses none,
    // a forged, an expired, and a revoked credential; another tenant's
    // token finds nothing of this tenant's.
    let (status, revoked) = send(&server, "DELETE", &format!("/v1/api-keys/{key_id}"), Some(&ann), None)?;
    assert_eq!(status, 204, "{revoked}");
    let (_, doc) = send(&server, "GET", "/v1/openapi.json", None, None)?;
    let ann_user = me_of(&server, &ann)?;
    let (ann_tenant, ann_sub) = (
        ann_user["tenant_id"].as_str().ok_or("no tenant")?,
        ann_user["subject"].as_str().ok_or("no subject")?,
    );
    let refused: [(&str, String); 5] = [
        ("no token", String::new()),
        ("forged", mint("some-other-secret-0123456789abcdef", ann_sub, ann_tenant, now_s() + 600)),
        ("expired", mint(JWT_SECRET, ann_sub, ann_tenant, now_s() - 5)),
        ("revoked key", key.clone()),
        ("unknown key", "vxk_000000000000000000000000000000000000000000000000".to_owned()),
    ];
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().ok_or("no paths")? {
        for (method, op) in item.as_object().ok_or("bad path item")? {
            if op.get("security").is_none() {
                continue;
            }
            let method = method.to_uppercase();
            let ann_path = path.replace("{id}", &agent_id);
            for (what, credential) in &refused {
                let token = (!credential.is_empty()).then_some(credential.as_str());
                let (status, json) = send(&server, &method, &ann_path, token, Some(&json!({"name": "x"})))?;
                assert_eq!(status, 401, "{method} {path} with {what}: {json}");
                assert!(json["error"].is_string());
            }
            // Bob reaches none of Ann's agents, calls or keys. (A feed never
            // ends: whose events it carries is checked in tests/whatsapp.rs.)
            if op["responses"]["200"]["content"].get("text/event-stream").is_some() {
                checked += 1;
                continue;
            }
            let foreign = if path.contains("/calls/") {
                path.replace("{id}", &url_escape(&ids[0]))
            } else {
                ann_path.clone()
            };
            let mut foreign = foreign.replace("/api-keys/{id}", &format!("/api-keys/{key_id}"));
            if path.ends_with("/knowledge") {
                foreign.push_str("?name=probe.md");
            }
            let body = if path.contains("/numbers/") {
                Some(json!({"agent": ""}))
            } else if method == "PUT" {
                Some(agent_spec("Stolen", "+15550177"))
            } else if method == "PATCH" {
                Some(json!({"role": "member"}))
            } else if path.ends_with("/media-tokens") {
                Some(json!({}))
            } else if path.ends_with("/messages") {
                Some(json!({"text": "probe"}))
            } else {
                Some(json!({"name": "probe"}))
            };
            let (status, json) = send(&server, &method, &foreign, Some(&bob), body.as_ref())?;
            if path.contains("{id}") {
                assert_eq!(status, 404, "{method} {foreign} as another tenant: {json}");
            } else {
                let text = json.to_string();
                assert!(
                    !text.contains(&agent_id) && !text.contains(&ids[0]),
                    "{method} {path} leaked: {text}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 14, "only {checked} operations checked");
    // Ann's agent survived Bob's attempts.
    let (status, still) = send(&server, "GET", &format!("/v1/agents/{agent_id}"), Some(&ann), None)?;
    assert_eq!((status, still["name"].as_str()), (200, Some("Front desk")));
    // Deleting the agent frees the number for Ann's tenant only; the
    // operator can then take it back and give it to Bob's.
    assert_eq!(send(&server, "DELETE", &format!("/v1/agents/{agent_id}"), Some(&ann), None)?.0, 204);
    let (status, _) =
        send(&server, "POST", "/v1/agents", Some(&bob), Some(&agent_spec("Globex 2", "+15550100")))?;
    assert_eq!(status, 422);
    let number_path = format!("/v1/numbers/{}", url_escape("+15550100"));
    assert_eq!(send(&server, "DELETE", &number_path, Some(&ann), None)?.0, 403, "only the operator");
    assert_eq!(send(&server, "DELETE", &number_path, Some(API_KEY), None)?.0, 204);
    common::give_number(&server, "+15550100", &bob)?;
    let (status, _) =
        send(&server, "POST", "/v1/agents", Some(&bob), Some(&agent_spec("Globex 2", "+15550100")))?;
    assert_eq!(status, 201);
    // Readiness says the database answers.
    assert_eq!(http(&server, "GET", "/readyz", None, None)?.0, 200);
    Ok(())
}

/// The newest of `agent`'s calls' first agent line, once `count` calls are recorded.
fn first_agent_line(
    server: &Server,
    token: &str,
    agent: &str,
    count: usize,
) -> Result<String, Box<dyn std::error::Error>> {
    for _ in 0..100 {
        let (_, page) = send(server, "GET", &format!("/v1/calls?agent={agent}"), Some(token), None)?;
        let calls = page["calls"].as_array().ok_or("no calls")?;
        if calls.len() == count && calls.iter().all(|c| c["status"] != "in_progress") {
            let id = calls[0]["id"].as_str().ok_or("no id")?;
            let (_, call) = send(server, "GET", &format!("/v1/calls/{}", url_escape(id)), Some(token), None)?;
            let line = call["transcript"].as_array().and_then(|t| t.iter().find(|l| l["speaker"] == "agent"));
            return Ok(line.and_then(|l| l["text"].as_str()).unwrap_or_default().to_owned());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("no {count} calls of agent {agent}").into())
}

/// A GET with no credentials; the whole response (head and body) as text.
fn raw_get(server: &Server, path: &str) -> Result<String, Box<dyn std::error::Error>> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(server.http)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", server.http)?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

fn me_of(server: &Server, token: &str) -> Result<Value, Box<dyn std::error::Error>> {
    Ok(send(server, "GET", "/v1/me", Some(token), None)?.1)
}

/// Uploads a knowledge document.
fn upload(
    server: &Server,
    token: &str,
    agent: &str,
    name: &str,
    content_type: &str,
    body: &str,
) -> Result<(u16, Value), Box<dyn std::error::Error>> {
    common::post_as(server, &format!("/v1/agents/{agent}/knowledge?name={name}"), token, content_type, body)
}

#[test]
fn an_operator_runs_agents_keys_and_calls_on_sqlite() -> TestResult {
    operator_story("")
}

#[test]
fn an_operator_runs_agents_keys_and_calls_on_postgres() -> TestResult {
    let pg = postgres::start()?;
    operator_story(&pg.url)
}

/// The methods `path` (its `{parameters}` filled in) answers, as the
/// server's 405 to a TRACE lists them in `Allow`, HEAD aside.
fn allowed(server: &Server, path: &str) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    use std::io::{Read as _, Write as _};
    let filled: String =
        path.split('/').map(|s| if s.starts_with('{') { "x" } else { s }).collect::<Vec<_>>().join("/");
    let mut stream = std::net::TcpStream::connect(server.http)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "TRACE {filled} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {API_KEY}\r\nConnection: close\r\n\r\n",
        server.http
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let head = response.split("\r\n\r\n").next().unwrap_or_default();
    assert!(head.starts_with("HTTP/1.1 405"), "TRACE {filled}: {head}");
    let allow = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("allow:").map(str::to_owned))
        .ok_or_else(|| format!("no Allow in: {head}"))?;
    let mut methods: Vec<String> =
        allow.split(',').map(|m| m.trim().to_owned()).filter(|m| m != "head").collect();
    methods.sort();
    Ok(methods)
}

/// The OpenAPI document and the server agree: each route of the control
/// API's table answers exactly the methods documented for it, and every
/// documented path is one of them.
#[test]
fn every_route_is_documented_and_every_documented_route_is_served() -> TestResult {
    let server = server("", &[("VOXGATE_HTTP__PUBLIC_RATE_LIMIT", "0".to_owned())])?;
    let (status, doc) = http(&server, "GET", "/v1/openapi.json", Some(API_KEY), None)?;
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().ok_or("no paths")?;
    let routes = voxgate_control::api::routes();
    for (path, ..) in &routes {
        if *path == "/v1/openapi.json" {
            continue; // the document itself
        }
        let documented =
            paths.get(*path).ok_or_else(|| format!("{path} missing from the OpenAPI document"))?;
        let mut in_doc: Vec<String> =
            documented.as_object().ok_or("not an object")?.keys().cloned().collect();
        in_doc.sort();
        assert_eq!(in_doc, allowed(&server, path)?, "the methods of {path}");
    }
    for path in paths.keys() {
        assert!(routes.iter().any(|(p, ..)| p == path), "{path} is documented but not served");
    }
    Ok(())
}

#[test]
fn public_endpoints_are_rate_limited_per_client() -> TestResult {
    let server = server("", &[("VOXGATE_HTTP__PUBLIC_RATE_LIMIT", "1".to_owned())])?;
    // A burst of two, then one a second: ten at once cannot all pass.
    let statuses: Vec<u16> = (0..10)
        .map(|_| common::http_text(&server, "GET", "/widget.js", None, None).map(|r| r.0))
        .collect::<Result<_, _>>()?;
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(statuses.iter().all(|s| [200, 429].contains(s)), "{statuses:?}");
    let (status, json) =
        send(&server, "POST", "/v1/auth/login", None, Some(&json!({"email": "a@b.c", "password": "x"})))?;
    assert_eq!(status, 429, "login shares the limit: {json}");
    // The operators' API and health checks are not public endpoints.
    for _ in 0..5 {
        assert_eq!(http(&server, "GET", "/healthz", None, None)?.0, 200);
        assert_eq!(http(&server, "GET", "/v1/agents", Some(API_KEY), None)?.0, 200);
    }
    Ok(())
}

fn s3_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("VOXGATE_S3__BUCKET", "calls".to_owned()),
        ("VOXGATE_S3__ENDPOINT", endpoint.to_owned()),
        ("VOXGATE_S3__PATH_STYLE", "true".to_owned()),
        ("VOXGATE_S3__ACCESS_KEY_ID", "test-key-id".to_owned()),
        ("VOXGATE_S3__SECRET_ACCESS_KEY", "test-secret".to_owned()),
    ]
}

/// The one websocket call's id and its recording link, once `done` says the link is final.
fn recording_link(
    server: &Server,
    done: impl Fn(&str) -> bool,
) -> Result<(String, String), Box<dyn std::error::Error>> {
    for _ in 0..400 {
        let (_, page) = send(server, "GET", "/v1/calls?channel=websocket", Some(API_KEY), None)?;
        if let Some(id) = page["calls"][0]["id"].as_str() {
            let (status, link) =
                send(server, "GET", &format!("/v1/calls/{}/recording", url_escape(id)), Some(API_KEY), None)?;
            let url = link["url"].as_str().unwrap_or_default();
            if status == 200 && done(url) {
                return Ok((id.to_owned(), url.to_owned()));
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err("no recording link".into())
}

/// Fetches a pre-signed S3 URL with a plain HTTP client: no credentials.
fn fetch_presigned(moto: &moto::Moto, url: &str) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let path = url.strip_prefix(&moto.endpoint).ok_or("the link is not the S3 server's")?;
    assert!(path.contains("X-Amz-Signature="), "not pre-signed: {url}");
    let (status, body) = moto::request(moto.port, "GET", path)?;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    Ok(body)
}

#[test]
fn recordings_move_to_s3_and_download_by_presigned_url() -> TestResult {
    let moto = moto::start(moto::free_port()?, "calls")?;
    let server = server("", &s3_env(&moto.endpoint))?;
    tokio::runtime::Runtime::new()?.block_on(short_call(&server, "", 2))?;
    let (id, url) = recording_link(&server, |url| url.starts_with(&moto.endpoint))?;
    let wav = hound::WavReader::new(std::io::Cursor::new(fetch_presigned(&moto, &url)?))?;
    assert_eq!(wav.spec().channels, 2);
    assert!(wav.duration() > 16_000, "{} samples", wav.duration());
    // Confirmed in S3, so the local copy is gone; the record names the object.
    let local = server.recordings.join(format!("{id}.wav"));
    assert!(!local.exists(), "{} still there", local.display());
    Ok(())
}

#[test]
fn a_failed_upload_is_retried_and_the_local_copy_serves_meanwhile() -> TestResult {
    // S3 is down when the call ends.
    let port = moto::free_port()?;
    let server = server("", &s3_env(&format!("http://127.0.0.1:{port}")))?;
    tokio::runtime::Runtime::new()?.block_on(short_call(&server, "", 2))?;
    let (id, local_url) = recording_link(&server, |url| url.contains("/v1/recordings/"))?;
    let path = &local_url[local_url.find("/v1/").ok_or("bad url")?..];
    let (status, wav) = http_bytes(&server, "GET", path, None, None)?;
    assert_eq!(status, 200, "the local copy serves while S3 is away");
    let local_bytes = wav.len();
    // S3 comes back: the retry moves the recording, byte for byte.
    let moto = moto::start(port, "calls")?;
    let (_, url) = recording_link(&server, |url| url.starts_with(&moto.endpoint))?;
    assert_eq!(fetch_presigned(&moto, &url)?.len(), local_bytes);
    assert!(!server.recordings.join(format!("{id}.wav")).exists());
    Ok(())
}

/// A stored agent whose tool is a local endpoint; a chat asks the question
/// that makes its model call the tool. What the endpoint received, if
/// anything (`allow_private`: `outbound.allow_private_targets`).
fn tool_call_story(allow_private: bool) -> Result<Option<String>, Box<dyn std::error::Error>> {
    // The agent's model (an OpenAI-compatible stand-in, the operator's provider) calls the tool ...
    let llm = common::tool_calling_llm("One moment.", "order_status", r#"{"order": "A-17"}"#)?;
    // ... which is a local HTTP endpoint that reports what it was sent.
    let (tool_url, seen) = common::json_endpoint("/status", r#"{"status": "shipped"}"#)?;
    let server = server(
        "",
        &[
            ("VOXGATE_OPENAI__BASE_URL", llm),
            ("VOXGATE_OUTBOUND__ALLOW_PRIVATE_TARGETS", allow_private.to_string()),
        ],
    )?;
    let mut spec = agent_spec("Orders", "+15550123");
    spec["tools"][0]["url"] = json!(tool_url);
    spec["greeting"] = json!("");
    common::give_number(&server, "+15550123", API_KEY)?;
    let (status, agent) = send(&server, "POST", "/v1/agents", Some(API_KEY), Some(&spec))?;
    assert_eq!(status, 201, "{agent}");
    let agent_id = agent["id"].as_str().ok_or("no id")?.to_owned();

    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        use futures::{SinkExt as _, StreamExt as _};
        use tokio_tungstenite::tungstenite::Message;
        let url = format!("ws://{}/v1/chat?agent={agent_id}", server.http);
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await?;
        socket
            .send(Message::text(json!({"type": "message", "text": "Where is order A-17?"}).to_string()))
            .await?;
        // Until the agent's whole reply.
        loop {
            let Some(Ok(Message::Text(t))) =
                tokio::time::timeout(Duration::from_secs(30), socket.next()).await?
            else {
                return Err::<(), Box<dyn std::error::Error>>("the chat closed".into());
            };
            let v: Value = serde_json::from_str(t.as_str())?;
            if v["type"] == "message" {
                break;
            }
        }
        socket.send(Message::text(r#"{"type": "end"}"#)).await?;
        Ok(())
    })?;
    // The reply came after the tool's result (or its refusal): nothing later can reach it.
    Ok(seen.recv_timeout(Duration::from_secs(2)).ok())
}

#[test]
fn a_stored_agents_http_tool_is_called_with_its_arguments_and_secret_header() -> TestResult {
    let request = tool_call_story(true)?.ok_or("the tool was not called")?;
    assert!(request.starts_with("POST /status "), "{request}");
    assert!(request.contains("tool-secret-1"), "the stored header went with it: {request}");
    let body = request.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    assert_eq!(serde_json::from_str::<Value>(body)?, json!({"order": "A-17"}));
    Ok(())
}

#[test]
fn a_tenants_tool_aimed_at_this_machine_is_refused_by_default() -> TestResult {
    let request = tool_call_story(false)?;
    assert_eq!(request, None, "a tenant's tool reached 127.0.0.1");
    Ok(())
}

#[test]
fn readiness_follows_the_database() -> TestResult {
    let pg = postgres::start()?;
    let server = server(&pg.url, &[])?;
    assert_eq!(http(&server, "GET", "/readyz", None, None)?.0, 200);
    // The database goes away: the node says it is not ready, but it lives.
    drop(pg);
    let mut status = 0;
    for _ in 0..50 {
        status = http(&server, "GET", "/readyz", None, None)?.0;
        if status == 503 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(status, 503);
    assert_eq!(http(&server, "GET", "/healthz", None, None)?.0, 200);
    // The control API says so too: come back later, not a server bug.
    let (status, json) = send(&server, "GET", "/v1/agents", Some(API_KEY), None)?;
    assert_eq!(status, 503, "{json}");
    Ok(())
}
