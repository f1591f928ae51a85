//! Who may do what, tried against a running server as an attacker would:
//! members and read-only keys that try to write, expired keys, tokens kept
//! after a role change or a removal, a tenant that routes a number it was
//! not given, and passwords guessed from one address while the owner logs
//! in from another.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use common::{API_KEY, Server, TestResult, http, start_server, url_escape};
use serde_json::{Value, json};

fn send(server: &Server, method: &str, path: &str, token: &str, body: &Value) -> (u16, Value) {
    let body = body.to_string();
    http(server, method, path, Some(token), Some(&body)).expect("the server answers")
}

/// `voxgate` run against the server's database.
fn voxgate(server: &Server, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_voxgate"))
        .current_dir(common::root())
        .args(args)
        .env("VOXGATE_ADMIN_PASSWORD", "admin-password-1")
        .env("VOXGATE_STORAGE__DATABASE_URL", format!("sqlite://{}/voxgate.db", server.recordings.display()))
        .output()
        .expect("voxgate runs")
}

/// `POST /v1/auth/login` from `source` (any 127.0.0.0/8 address), raw:
/// the status, the `Retry-After` header, the token.
fn login_from(server: &Server, source: IpAddr, email: &str, password: &str) -> (u16, Option<u64>, String) {
    use std::io::{Read as _, Write as _};
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.bind(&SocketAddr::new(source, 0).into()).expect("bind the source address");
    socket.connect_timeout(&server.http.into(), Duration::from_secs(5)).expect("connect");
    let mut stream: std::net::TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let body = json!({"email": email, "password": password}).to_string();
    write!(
        stream,
        "POST /v1/auth/login HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.http,
        body.len()
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let retry = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("retry-after:").map(|v| v.trim().to_owned()))
        .and_then(|v| v.parse().ok());
    let token = serde_json::from_str::<Value>(body).ok().and_then(|j| j["token"].as_str().map(str::to_owned));
    (status, retry, token.unwrap_or_default())
}

fn login(server: &Server, email: &str, password: &str) -> String {
    let (status, _, token) = login_from(server, [127, 0, 0, 1].into(), email, password);
    assert_eq!(status, 200, "log in as {email}");
    token
}

fn server() -> Result<Server, Box<dyn std::error::Error>> {
    start_server(&[("VOXGATE_VAD__BACKEND", "webrtc".to_owned())])
}

#[test]
fn members_and_scoped_keys_cannot_write_and_lost_roles_end_tokens() -> TestResult {
    let server = server()?;
    let out = voxgate(&server, &["admin", "create", "--email", "ann@acme.example", "--tenant", "acme"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ann = login(&server, "ann@acme.example", "admin-password-1");
    let agent = json!({"name": "Front desk"});

    // A member reads, and is refused every write.
    let (status, mo) = send(
        &server,
        "POST",
        "/v1/users",
        &ann,
        &json!({"email": "mo@acme.example", "password": "member-password-1", "role": "member"}),
    );
    assert_eq!(status, 201, "{mo}");
    let mo_id = mo["id"].as_str().ok_or("no id")?.to_owned();
    let mo_token = login(&server, "mo@acme.example", "member-password-1");
    assert_eq!(send(&server, "GET", "/v1/agents", &mo_token, &json!({})).0, 200);
    for (method, path, body) in [
        ("POST", "/v1/agents", agent.clone()),
        ("POST", "/v1/calls", json!({})),
        ("POST", "/v1/api-keys", json!({"name": "mine"})),
        (
            "POST",
            "/v1/users",
            json!({"email": "x@acme.example", "password": "xxxxxxxxxxxx", "role": "admin"}),
        ),
        ("PATCH", &format!("/v1/users/{mo_id}"), json!({"role": "admin"})),
    ] {
        let (status, json) = send(&server, method, path, &mo_token, &body);
        assert_eq!(status, 403, "a member's {method} {path}: {json}");
    }

    // Keys do what their scope says, until they expire.
    let key = |scope: &str, expires_at: Option<u128>| {
        let mut body = json!({"name": scope, "scope": scope});
        if let Some(at) = expires_at {
            body["expires_at"] = json!(at);
        }
        let (status, made) = send(&server, "POST", "/v1/api-keys", &ann, &body);
        assert_eq!(status, 201, "{made}");
        assert_eq!(made["scope"], scope);
        made["key"].as_str().map(str::to_owned).unwrap_or_default()
    };
    let read = key("read", None);
    let dialer = key("calls:place", None);
    let write = key("write", None);
    assert_eq!(send(&server, "GET", "/v1/calls", &read, &json!({})).0, 200);
    assert_eq!(send(&server, "POST", "/v1/agents", &read, &agent).0, 403);
    assert_eq!(send(&server, "POST", "/v1/calls", &read, &json!({})).0, 403);
    // Past the scope check, an empty body is refused for what it is.
    assert_eq!(send(&server, "POST", "/v1/calls", &dialer, &json!({})).0, 422);
    assert_eq!(send(&server, "POST", "/v1/agents", &dialer, &agent).0, 403);
    assert_eq!(send(&server, "POST", "/v1/agents", &write, &agent).0, 201);
    // No key, whatever its scope, makes keys or users: only an admin does.
    assert_eq!(send(&server, "POST", "/v1/api-keys", &write, &json!({"name": "more"})).0, 403);
    let (status, json) =
        send(&server, "POST", "/v1/api-keys", &ann, &json!({"name": "old", "expires_at": 1}));
    assert_eq!((status, json["field"].as_str()), (422, Some("expires_at")), "{json}");
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis();
    let brief = key("read", Some(now_ms + 1500));
    assert_eq!(send(&server, "GET", "/v1/me", &brief, &json!({})).0, 200);
    std::thread::sleep(Duration::from_millis(1600));
    assert_eq!(send(&server, "GET", "/v1/me", &brief, &json!({})).0, 401, "an expired key");

    // A role change ends the tokens the user holds; so does removal.
    let (status, json) =
        send(&server, "PATCH", &format!("/v1/users/{mo_id}"), &ann, &json!({"role": "admin"}));
    assert_eq!((status, json["role"].as_str()), (200, Some("admin")), "{json}");
    assert_eq!(send(&server, "GET", "/v1/agents", &mo_token, &json!({})).0, 401, "the member's old token");
    let mo_admin = login(&server, "mo@acme.example", "member-password-1");
    assert_eq!(send(&server, "POST", "/v1/agents", &mo_admin, &agent).0, 201);
    assert_eq!(send(&server, "DELETE", &format!("/v1/users/{mo_id}"), &ann, &json!({})).0, 204);
    assert_eq!(send(&server, "GET", "/v1/agents", &mo_admin, &json!({})).0, 401, "a removed user's token");
    Ok(())
}

#[test]
fn a_tenant_routes_only_the_numbers_the_operator_gave_it() -> TestResult {
    let server = server()?;
    for (email, tenant) in [("ann@acme.example", "acme"), ("bob@globex.example", "globex")] {
        let out = voxgate(&server, &["admin", "create", "--email", email, "--tenant", tenant]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let ann = login(&server, "ann@acme.example", "admin-password-1");
    let bob = login(&server, "bob@globex.example", "admin-password-1");
    let with_number = |n: &str| json!({"name": "Line", "numbers": [n]});

    // Nobody's number yet: no tenant may route it, and no tenant admin may take it.
    let (status, json) = send(&server, "POST", "/v1/agents", &ann, &with_number("+15550300"));
    assert_eq!((status, json["field"].as_str()), (422, Some("numbers")), "{json}");
    let (_, me) = send(&server, "GET", "/v1/me", &ann, &json!({}));
    let acme = me["tenant_id"].clone();
    let (status, _) =
        send(&server, "POST", "/v1/numbers", &ann, &json!({"number": "+15550300", "tenant_id": acme}));
    assert_eq!(status, 403, "a tenant admin is not the operator");

    // The operator gives it to Acme (the API) and another (the command line).
    let (status, json) =
        send(&server, "POST", "/v1/numbers", API_KEY, &json!({"number": "+15550300", "tenant_id": acme}));
    assert_eq!(status, 201, "{json}");
    let out = voxgate(&server, &["numbers", "assign", "+15550301", "--tenant", "acme"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (status, json) = send(&server, "POST", "/v1/agents", &ann, &with_number("+15550300"));
    assert_eq!(status, 201, "{json}");
    // Bob can neither route it nor be given it while Acme has it.
    let (status, json) = send(&server, "POST", "/v1/agents", &bob, &with_number("+15550300"));
    assert_eq!((status, json["field"].as_str()), (422, Some("numbers")), "{json}");
    let (_, me) = send(&server, "GET", "/v1/me", &bob, &json!({}));
    let (status, _) = send(
        &server,
        "POST",
        "/v1/numbers",
        API_KEY,
        &json!({"number": "+15550301", "tenant_id": me["tenant_id"]}),
    );
    assert_eq!(status, 409, "two tenants never share a number");
    let out = voxgate(&server, &["numbers", "assign", "+15550300", "--tenant", "globex"]);
    assert!(!out.status.success(), "the command line refuses it too");
    // The configured agent's numbers are the default tenant's.
    let (status, _) =
        send(&server, "POST", "/v1/numbers", API_KEY, &json!({"number": "1000", "tenant_id": acme}));
    assert_eq!(status, 409);
    let out = voxgate(&server, &["numbers", "assign", "1000", "--tenant", "acme"]);
    assert!(!out.status.success());
    // Each tenant lists its own; the operator, all.
    let (_, mine) = send(&server, "GET", "/v1/numbers", &ann, &json!({}));
    let listed: Vec<&str> =
        mine["numbers"].as_array().ok_or("no list")?.iter().filter_map(|n| n["number"].as_str()).collect();
    assert_eq!(listed, ["+15550300", "+15550301"]);
    let (_, theirs) = send(&server, "GET", "/v1/numbers", &bob, &json!({}));
    assert_eq!(theirs["numbers"], json!([]));
    let (_, all) = send(&server, "GET", "/v1/numbers", API_KEY, &json!({}));
    assert!(all.to_string().contains("\"1000\""), "{all}");
    // Released only when no agent routes it.
    let path = format!("/v1/numbers/{}", url_escape("+15550300"));
    assert_eq!(send(&server, "DELETE", &path, API_KEY, &json!({})).0, 409);
    let out = voxgate(&server, &["numbers", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("+15550301"));
    Ok(())
}

#[test]
fn guessing_a_password_from_one_address_does_not_lock_out_another() -> TestResult {
    let server = server()?;
    let out = voxgate(&server, &["admin", "create", "--email", "ann@acme.example", "--tenant", "acme"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (stranger, home): (IpAddr, IpAddr) = ([127, 0, 0, 2].into(), [127, 0, 0, 1].into());
    let guess = "guess-Zq81-wrong";
    for _ in 0..5 {
        assert_eq!(login_from(&server, stranger, "ann@acme.example", guess).0, 401);
    }
    // The sixth failure starts a wait; during it even the right password is not checked.
    assert_eq!(login_from(&server, stranger, "ann@acme.example", guess).0, 401);
    let (status, retry, _) = login_from(&server, stranger, "ann@acme.example", "admin-password-1");
    assert_eq!((status, retry), (429, Some(1)));
    // Ann, from her own address, is not locked out.
    let (status, _, token) = login_from(&server, home, "ann@acme.example", "admin-password-1");
    assert_eq!(status, 200);
    assert!(!token.is_empty());
    // Failures are logged, without the password.
    let lines = common::log_until(&server, |l| l.contains("login refused"));
    assert!(lines.iter().any(|l| l.contains("login refused")), "{lines:#?}");
    assert!(!lines.iter().any(|l| l.contains(guess)), "the password was logged");
    Ok(())
}
