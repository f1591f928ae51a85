//! Shared by the integration tests: start the server on free local ports
//! and stop it when the test ends.
//!
//! A test's server runs in the test's own process ([`start_server`]): the
//! library's `start` on a runtime of its own, which says where it listens,
//! with its log captured line by line. A test that needs what only a
//! process shows (killed with SIGKILL, or the process-wide metrics counted
//! from zero) runs the `voxgate` binary instead ([`start_process`]).

#![allow(dead_code)] // each test file uses some of these

pub mod caller;
pub mod certs;
pub mod heard;
pub mod moto;
pub mod placed;
pub mod postgres;
pub mod sipp;
pub mod smtp;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn free_udp_port() -> std::io::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running server; stopped (and its recordings folder removed) when dropped.
pub struct Server {
    /// SIP, UDP and TCP.
    pub sip_port: u16,
    /// The HTTP listener.
    pub http: SocketAddr,
    /// Log lines as they come, after those of its start ([`Server::started_log`]).
    pub log: mpsc::Receiver<String>,
    /// The lines it logged while starting.
    pub started_log: Vec<String>,
    /// Where its recordings and database go (a temporary folder, never the checkout).
    pub recordings: PathBuf,
    run: Run,
}

enum Run {
    /// The library on a thread of the test: a message on `stop` stops it.
    InProcess { stop: Option<tokio::sync::oneshot::Sender<()>>, thread: Option<std::thread::JoinHandle<()>> },
    /// The binary.
    Process(Child),
}

/// The control API key the test servers accept (`http.api_key`, the default tenant's).
pub const API_KEY: &str = "test-api-key-0123456789";

impl Server {
    /// The process's id, for a server started with [`start_process`].
    pub fn pid(&self) -> Option<u32> {
        match &self.run {
            Run::Process(child) => Some(child.id()),
            Run::InProcess { .. } => None,
        }
    }

    /// Kills the server at once (SIGKILL: no shutdown, no flushing), as a
    /// crash or the OOM killer would; its folder stays for another server.
    /// Only a server started with [`start_process`] can be killed.
    pub fn kill(&mut self) {
        let Run::Process(child) = &mut self.run else {
            panic!("only a process can be killed: start_process")
        };
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        match &mut self.run {
            Run::InProcess { stop, thread } => {
                drop(stop.take());
                if let Some(thread) = thread.take() {
                    let _ = thread.join();
                }
            }
            Run::Process(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.recordings);
    }
}

/// A folder of its own for each server of this test process.
fn scratch_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("voxgate-test-{}-{n}", std::process::id()))
}

/// What every test server is given before the test's own `env`: loopback
/// ports, a scratch folder, the API key.
fn base_env(recordings: &Path, sip: &str) -> Vec<(String, String)> {
    [
        ("VOXGATE_HTTP__LISTEN", "127.0.0.1:0".to_owned()),
        ("VOXGATE_SIP__UDP_LISTEN", sip.to_owned()),
        ("VOXGATE_SIP__TCP_LISTEN", sip.to_owned()),
        ("VOXGATE_STORAGE__RECORDINGS_DIR", recordings.display().to_string()),
        ("VOXGATE_STORAGE__DATABASE_URL", format!("sqlite://{}/voxgate.db", recordings.display())),
        ("VOXGATE_HTTP__API_KEY", API_KEY.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Starts the server in this process with SIP and HTTP on ports the
/// system picks on 127.0.0.1 and `env` as `VOXGATE_*` overrides of
/// `config.toml`; returns once it listens for both, with its addresses.
///
/// SIP's TCP listener takes the port UDP got, which some TCP socket may
/// hold: a start that fails on an address in use is tried again.
pub fn start_server(env: &[(&str, String)]) -> Result<Server, Box<dyn std::error::Error>> {
    for _ in 1..3 {
        match start_in_process(env) {
            Err(e) if e.to_string().contains("in use") => eprintln!("test server: {e}; trying again"),
            started => return started,
        }
    }
    start_in_process(env)
}

fn start_in_process(env: &[(&str, String)]) -> Result<Server, Box<dyn std::error::Error>> {
    use voxgate_media_server::config::Config;
    let recordings = scratch_dir();
    // As the binary would: the process's VOXGATE_* settings, then the test's.
    let mut vars: Vec<(String, String)> =
        std::env::vars().filter(|(k, _)| k.starts_with("VOXGATE_")).collect();
    if !vars.iter().any(|(k, _)| k == "VOXGATE_MODELS__DIR") {
        vars.push(("VOXGATE_MODELS__DIR".to_owned(), root().join("models").display().to_string()));
    }
    vars.extend(base_env(&recordings, "127.0.0.1:0"));
    vars.extend(env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    let config = Config::load(Some(&root().join("config.toml")), vars)?;
    let (tx, log) = mpsc::channel();
    let logs = tracing::Dispatch::new(
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::try_new(&config.log.filter)?)
            .with_ansi(false)
            .with_writer(Lines(tx))
            .finish(),
    );
    let (ready_tx, ready) = mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let on_start = logs.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            // Every thread of this server logs to its own lines.
            .on_thread_start(move || std::mem::forget(tracing::dispatcher::set_default(&on_start)))
            .build()
            .expect("a runtime");
        let _logs = tracing::dispatcher::set_default(&logs);
        runtime.block_on(async move {
            match voxgate_media_server::start(config).await {
                Ok(server) => {
                    let _ = ready_tx.send(Ok((server.http, server.sip)));
                    let _ = stopped.await;
                    let _ = server.stop().await;
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                }
            }
        });
        runtime.shutdown_timeout(Duration::from_secs(10));
    });
    let mut server = Server {
        sip_port: 0,
        http: ([0, 0, 0, 0], 0).into(),
        log,
        started_log: Vec::new(),
        recordings,
        run: Run::InProcess { stop: Some(stop), thread: Some(thread) },
    };
    let (http, sip) =
        ready.recv_timeout(Duration::from_secs(90)).map_err(|_| "the server did not start")??;
    server.http = http;
    server.sip_port = sip.map_or(0, |a| a.port());
    server.started_log = server.log.try_iter().collect();
    Ok(server)
}

/// The server's log lines from now until one matches `found` (included),
/// or 10 s pass: all of them.
pub fn log_until(server: &Server, mut found: impl FnMut(&str) -> bool) -> Vec<String> {
    let until = Instant::now() + Duration::from_secs(10);
    let mut lines = Vec::new();
    while let Ok(line) = server.log.recv_timeout(until.saturating_duration_since(Instant::now())) {
        let done = found(&line);
        lines.push(line);
        if done {
            break;
        }
    }
    lines
}

/// Hands a server's log to the test, a line at a time.
#[derive(Clone)]
struct Lines(mpsc::Sender<String>);

/// One log event's text, sent as lines when the event is written.
struct LineWriter(mpsc::Sender<String>, Vec<u8>);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Lines {
    type Writer = LineWriter;
    fn make_writer(&'a self) -> LineWriter {
        LineWriter(self.0.clone(), Vec::new())
    }
}

impl std::io::Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.1.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        for line in String::from_utf8_lossy(&self.1).lines() {
            let _ = self.0.send(line.to_owned());
        }
    }
}

/// Starts the `voxgate` binary, as [`start_server`] starts the library:
/// for a test that kills the server, or counts the process-wide metrics.
///
/// The binary's SIP port is found free first, and can be taken again before
/// the server binds it (by another test, or as the local port of some TCP
/// connection), so a start that fails on an address in use is tried again.
/// It says where HTTP listens in its log.
pub fn start_process(env: &[(&str, String)]) -> Result<Server, Box<dyn std::error::Error>> {
    let mut attempt = 1;
    loop {
        match try_start_process(env) {
            Ok(server) => return Ok(server),
            Err(StartError { log, in_use: true }) if attempt < 3 => {
                eprintln!("test server: address in use, trying new ports ({})", log.last().map_or("", |l| l));
                attempt += 1;
            }
            Err(StartError { log, .. }) => {
                let tail = log[log.len().saturating_sub(20)..].join("\n");
                return Err(format!("the server did not start listening; its log ends:\n{tail}").into());
            }
        }
    }
}

struct StartError {
    /// What the server printed before it stopped (or before the wait ran out).
    log: Vec<String>,
    in_use: bool,
}

fn try_start_process(env: &[(&str, String)]) -> Result<Server, StartError> {
    let io = |e: std::io::Error| StartError { log: vec![e.to_string()], in_use: false };
    let sip_port = free_udp_port().map_err(io)?;
    let recordings = scratch_dir();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_voxgate"));
    cmd.current_dir(root())
        .args(["serve", "--config", "config.toml"])
        .envs(base_env(&recordings, &format!("127.0.0.1:{sip_port}")))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().map_err(io)?;
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, log) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut server = Server {
        sip_port,
        http: ([0, 0, 0, 0], 0).into(),
        log,
        started_log: Vec::new(),
        recordings,
        run: Run::Process(child),
    };
    let started = Instant::now();
    let mut sip = false;
    loop {
        let left = Duration::from_secs(90).saturating_sub(started.elapsed());
        let Ok(line) = server.log.recv_timeout(left) else {
            let seen = std::mem::take(&mut server.started_log);
            let in_use = seen.iter().any(|l: &String| l.contains("in use"));
            return Err(StartError { log: seen, in_use });
        };
        sip |= line.contains("SIP listening");
        if line.contains("HTTP listening") {
            let addr = line.split("addr=").nth(1).and_then(|a| a.split_whitespace().next());
            match addr.and_then(|a| a.parse().ok()) {
                Some(addr) => server.http = addr,
                None => {
                    return Err(StartError {
                        log: vec![format!("no HTTP address in: {line}")],
                        in_use: false,
                    });
                }
            }
        }
        server.started_log.push(line);
        if sip && server.http.port() != 0 {
            return Ok(server);
        }
    }
}

/// One HTTP/1.1 request to the server (`key`: a bearer key); returns the
/// status and the JSON body (`Null` when there is none).
pub fn http(
    server: &Server,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> Result<(u16, serde_json::Value), Box<dyn std::error::Error>> {
    let (status, payload) = http_text(server, method, path, key, body)?;
    let json =
        if payload.trim().is_empty() { serde_json::Value::Null } else { serde_json::from_str(&payload)? };
    Ok((status, json))
}

/// `voxgate admin create` against `database_url`: an admin `email` of
/// `tenant` (made if new) with `password`.
pub fn admin_create(database_url: &str, email: &str, password: &str, tenant: &str) -> TestResult {
    let out = Command::new(env!("CARGO_BIN_EXE_voxgate"))
        .current_dir(root())
        .args(["admin", "create", "--config", "config.toml", "--email", email, "--tenant", tenant])
        .env("VOXGATE_ADMIN_PASSWORD", password)
        .env("VOXGATE_STORAGE__DATABASE_URL", database_url)
        .output()?;
    assert!(out.status.success(), "admin create: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// [`admin_create`] on `server`'s (SQLite) database, then logged in: the admin's token.
pub fn tenant_admin(
    server: &Server,
    email: &str,
    password: &str,
    tenant: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    admin_create(&format!("sqlite://{}/voxgate.db", server.recordings.display()), email, password, tenant)?;
    let login = serde_json::json!({"email": email, "password": password}).to_string();
    let (status, body) = http(server, "POST", "/v1/auth/login", None, Some(&login))?;
    assert_eq!(status, 200, "{body}");
    Ok(body["token"].as_str().ok_or("no token")?.to_owned())
}

/// The operator (the configured API key) gives `number` to the tenant of
/// `credential` (a token or key), as `POST /v1/numbers` does.
pub fn give_number(server: &Server, number: &str, credential: &str) -> TestResult {
    let (status, me) = http(server, "GET", "/v1/me", Some(credential), None)?;
    assert_eq!(status, 200, "{me}");
    let body = serde_json::json!({"number": number, "tenant_id": me["tenant_id"]}).to_string();
    let (status, assigned) = http(server, "POST", "/v1/numbers", Some(API_KEY), Some(&body))?;
    assert_eq!(status, 201, "{assigned}");
    Ok(())
}

/// [`http`], with the body as text.
pub fn http_text(
    server: &Server,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> Result<(u16, String), Box<dyn std::error::Error>> {
    let (status, bytes) = http_bytes(server, method, path, key, body)?;
    Ok((status, String::from_utf8(bytes)?))
}

/// [`http`], with the body as bytes.
pub fn http_bytes(
    server: &Server,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> Result<(u16, Vec<u8>), Box<dyn std::error::Error>> {
    let auth = key.map(|k| format!("Bearer {k}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let (status, _head, payload) = http_raw(server, method, path, &headers, body.unwrap_or_default())?;
    Ok((status, payload))
}

/// One HTTP/1.1 request with `headers` (and a JSON content type); the
/// status, the response's head and its body (chunks joined).
pub fn http_raw(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, String, Vec<u8>), Box<dyn std::error::Error>> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(server.http)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {}\r\n{extra}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.http,
        body.len()
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let end = response.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no body")?;
    let head = String::from_utf8_lossy(&response[..end]).into_owned();
    let status = head.split_whitespace().nth(1).ok_or("no status line")?.parse()?;
    let payload = response[end + 4..].to_vec();
    // Chunked bodies (the server streams some) are joined.
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return Ok((status, head, unchunk(&payload)));
    }
    Ok((status, head, payload))
}

/// Joins an HTTP/1.1 chunked body.
fn unchunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = body.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&body[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 || body.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&body[eol + 2..eol + 2 + size]);
        body = &body[(eol + 4 + size).min(body.len())..];
    }
    out
}

/// The server's one call record, through the calls API, once the call has
/// ended (a running call is listed as `in_progress`; waits up to 10 s).
pub fn call_log(server: &Server) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    for _ in 0..100 {
        let (status, list) = http(server, "GET", "/v1/calls", Some(API_KEY), None)?;
        assert_eq!(status, 200, "{list}");
        if let Some(id) =
            list["calls"][0]["id"].as_str().filter(|_| list["calls"][0]["status"] != "in_progress")
        {
            let (status, call) =
                http(server, "GET", &format!("/v1/calls/{}", url_escape(id)), Some(API_KEY), None)?;
            assert_eq!(status, 200, "{call}");
            return Ok(call);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err("no call record".into())
}

/// POSTs `body` as `content_type` (the [`http`] helpers send JSON) with
/// bearer `key`; returns the status and the JSON body (`Null` when none).
pub fn post_as(
    server: &Server,
    path: &str,
    key: &str,
    content_type: &str,
    body: &str,
) -> Result<(u16, serde_json::Value), Box<dyn std::error::Error>> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(server.http)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.http,
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.split_whitespace().nth(1).ok_or("no status")?.parse()?;
    let json = response.split_once("\r\n\r\n").and_then(|(_, b)| serde_json::from_str(b).ok());
    Ok((status, json.unwrap_or(serde_json::Value::Null)))
}

/// `s` escaped for a URL path segment.
pub fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A call's recording, fetched the way an operator does: ask the calls
/// API for a link, then fetch the link with no credentials.
pub fn recording(server: &Server, call_id: &str, key: &str) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let (status, link) =
        http(server, "GET", &format!("/v1/calls/{}/recording", url_escape(call_id)), Some(key), None)?;
    assert_eq!(status, 200, "{link}");
    let url = link["url"].as_str().ok_or("no url")?;
    let path =
        url.split_once("://").and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..])).ok_or("bad url")?;
    let (status, bytes) = http_bytes(server, "GET", path, None, None)?;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    Ok(bytes)
}

/// Reads the caller's lines from the server's one call log.
pub fn caller_lines(server: &Server) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    lines(&call_log(server)?, "caller")
}

/// What `speaker` (`caller` or `agent`) said in a call record's transcript.
pub fn lines(call: &serde_json::Value, speaker: &str) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    Ok(call["transcript"]
        .as_array()
        .ok_or("no transcript")?
        .iter()
        .filter(|l| l["speaker"] == speaker)
        .filter_map(|l| l["text"].as_str().map(str::to_owned))
        .collect())
}

/// A server whose agent listens first (no greeting), with the WebRTC VAD:
/// for callers written in the tests, who press keys rather than talk. It
/// logs when a call's media latches and when the caller's turn is taken
/// ([`logged`] waits for those).
pub fn start_listening_server() -> Result<Server, Box<dyn std::error::Error>> {
    start_server(&[
        ("VOXGATE_VAD__BACKEND", "webrtc".to_owned()),
        ("VOXGATE_AGENT__GREETING", String::new()),
        turn_log(),
    ])
}

/// The setting that logs when a call's media latches and when the
/// caller's turn is taken, for [`logged`].
pub fn turn_log() -> (&'static str, String) {
    ("VOXGATE_LOG__FILTER", "info,voxgate_sip_bridge=debug,voxgate_pipeline::session=debug".to_owned())
}

/// Waits (10 s at most) until the server has logged `times` more lines
/// containing `what`.
pub fn logged(server: &Server, what: &str, times: usize) -> TestResult {
    let mut seen = 0;
    let lines = log_until(server, |l| {
        seen += usize::from(l.contains(what));
        seen == times
    });
    if seen == times { Ok(()) } else { Err(format!("{seen} of {times} {what:?} in {lines:#?}").into()) }
}

/// An OpenAI-compatible chat server on 127.0.0.1 that streams `line` and a
/// call of the tool `tool` with `arguments` (JSON) in answer to a request,
/// and just `line` once the request carries a tool's result (the way
/// `/v1/chat/completions` streams: server-sent events). Serves for 2
/// minutes at most. Returns its base URL (`http://127.0.0.1:<port>/v1`).
pub fn tool_calling_llm(line: &str, tool: &str, arguments: &str) -> std::io::Result<String> {
    use std::io::Write as _;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/v1", listener.local_addr()?);
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        let body = serde_json::json!({
            "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        format!("data: {body}\n\n")
    };
    let calling = [
        chunk(serde_json::json!({"role": "assistant", "content": line}), None),
        chunk(
            serde_json::json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                "function": {"name": tool, "arguments": arguments}}]}),
            None,
        ),
        chunk(serde_json::json!({}), Some("tool_calls")),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    let answering = [
        chunk(serde_json::json!({"role": "assistant", "content": line}), None),
        chunk(serde_json::json!({}), Some("stop")),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    serve_http(listener, move |mut stream| {
        let request = read_request(&mut stream);
        let has_result = request.contains(r#""role":"tool""#);
        let events = if has_result { &answering } else { &calling };
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{events}",
            events.len()
        );
    })?;
    Ok(url)
}

/// An HTTP endpoint on 127.0.0.1 that answers every request with the JSON
/// `body` and passes each request it read (head and body, as text) on.
/// Returns its URL (`http://127.0.0.1:<port><path>`). Serves for 2 minutes at most.
pub fn json_endpoint(path: &str, body: &'static str) -> std::io::Result<(String, mpsc::Receiver<String>)> {
    use std::io::Write as _;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}{path}", listener.local_addr()?);
    let (seen_tx, seen) = mpsc::channel::<String>();
    serve_http(listener, move |mut stream| {
        let _ = seen_tx.send(read_request(&mut stream));
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    })?;
    Ok((url, seen))
}

/// Reads one HTTP/1.1 request from `stream`: the head, then Content-Length
/// bytes of body (5 s at most); as text.
pub fn read_request(stream: &mut std::net::TcpStream) -> String {
    use std::io::Read as _;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = stream.read(&mut buf) {
        request.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&request);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(str::to_owned))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= len {
                break;
            }
        }
    }
    String::from_utf8_lossy(&request).into_owned()
}

/// Answers each connection to `listener` with `answer`, one at a time,
/// on a thread that stops by itself after 2 minutes.
pub fn serve_http(
    listener: std::net::TcpListener,
    mut answer: impl FnMut(std::net::TcpStream) + Send + 'static,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(120);
        while Instant::now() < until {
            let Ok((stream, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            let _ = stream.set_nonblocking(false);
            answer(stream);
        }
    });
    Ok(())
}
