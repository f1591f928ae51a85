//! Self-serve plans against a running server: a business signs up, proves
//! its email by the mailed link, pays through Stripe Checkout, and Stripe's
//! signed webhook makes its tenant, whose first admin sets a password through
//! a mailed single-use link. The plan then holds: agents and knowledge past
//! it are 402; a failed payment suspends the tenant, and its SIP calls (486
//! with a Reason), chats (closed 1008) and placed calls (402) are refused
//! until the subscription pays again.
//!
//! Stripe's API is a server in the test that takes Checkout Sessions as
//! Stripe does (form-encoded, bearer key); webhooks are signed as Stripe
//! signs them (HMAC-SHA256 over `t.body`, `Stripe-Signature: t=…,v1=…`),
//! and also with the wrong key, outside the tolerance, and repeated. An
//! SMTP server in the test receives the mails; headless Chromium follows a
//! free trial's set-password link.

mod common;

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use common::{Server, TestResult, http, http_raw, read_request, root, serve_http, start_server};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const STRIPE_KEY: &str = "sk_test_voxgate";
const WEBHOOK_SECRET: &str = "whsec_voxgate_test";
const CHECKOUT_URL: &str = "https://checkout.stripe.test/c/pay/cs_test_1";
const EMAIL: &str = "ann@bakery.test";
const PASSWORD: &str = "a long bakery password";
const NUMBER: &str = "+15550002000";

/// A request Stripe's API was sent: its head and its form-decoded body.
#[derive(Debug)]
struct StripeCall {
    head: String,
    form: HashMap<String, String>,
}

/// Stripe's Checkout Sessions API: `POST /v1/checkout/sessions` with the
/// secret key answers a session; anything else is Stripe's error shape.
fn stripe() -> std::io::Result<(String, mpsc::Receiver<StripeCall>)> {
    use std::io::Write as _;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    let (tx, rx) = mpsc::channel();
    serve_http(listener, move |mut stream| {
        let request = read_request(&mut stream);
        let (head, body) = request.split_once("\r\n\r\n").unwrap_or((&request, ""));
        let authorised =
            head.lines().any(|l| l.eq_ignore_ascii_case(&format!("authorization: bearer {STRIPE_KEY}")));
        let (status, answer) = if !head.starts_with("POST /v1/checkout/sessions ") {
            (
                "404 Not Found",
                json!({"error": {"type": "invalid_request_error", "message": "Unrecognized request URL"}}),
            )
        } else if !authorised {
            (
                "401 Unauthorized",
                json!({"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}}),
            )
        } else {
            let form = form_urlencoded::parse(body.as_bytes()).into_owned().collect();
            let _ = tx.send(StripeCall { head: head.to_owned(), form });
            ("200 OK", json!({"id": "cs_test_1", "object": "checkout.session", "url": CHECKOUT_URL}))
        };
        let answer = answer.to_string();
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
            answer.len()
        );
    })?;
    Ok((url, rx))
}

/// `Stripe-Signature` for `body` at `t` with `secret`, as Stripe makes it.
fn signature(secret: &str, t: i64, body: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(tag.as_ref()))
}

fn now_s() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Posts `event` to the Stripe webhook with `signature` (none: unsigned); the status.
fn deliver(
    server: &Server,
    event: &Value,
    signature: Option<&str>,
) -> Result<u16, Box<dyn std::error::Error>> {
    let headers: Vec<(&str, &str)> = signature.iter().map(|s| ("Stripe-Signature", *s)).collect();
    Ok(http_raw(server, "POST", "/v1/stripe/webhook", &headers, &event.to_string())?.0)
}

/// Posts `event` signed as Stripe signs it now.
fn deliver_signed(server: &Server, event: &Value) -> Result<u16, Box<dyn std::error::Error>> {
    deliver(server, event, Some(&signature(WEBHOOK_SECRET, now_s(), &event.to_string())))
}

/// A Stripe event of `kind` about `object`.
fn event(id: &str, kind: &str, object: Value) -> Value {
    json!({"id": id, "object": "event", "api_version": "2025-08-27.basil", "created": now_s(), "livemode": false,
        "pending_webhooks": 1, "type": kind, "data": {"object": object}})
}

/// The server with sign-up open, Stripe at `stripe`, mail to `smtp_port`,
/// and three plans: starter and pro (paid), free_trial.
fn server(stripe: &str, smtp_port: u16) -> Result<Server, Box<dyn std::error::Error>> {
    start_server(&[
        ("VOXGATE_VAD__BACKEND", "webrtc".to_owned()),
        ("VOXGATE_SIGNUP__ENABLED", "true".to_owned()),
        ("VOXGATE_STRIPE__API_URL", stripe.to_owned()),
        ("VOXGATE_STRIPE__SECRET_KEY", STRIPE_KEY.to_owned()),
        ("VOXGATE_STRIPE__WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned()),
        ("VOXGATE_SMTP__HOST", "127.0.0.1".to_owned()),
        ("VOXGATE_SMTP__PORT", smtp_port.to_string()),
        ("VOXGATE_SMTP__SECURITY", "none".to_owned()),
        ("VOXGATE_SMTP__FROM", "Voxgate <signup@voxgate.test>".to_owned()),
        (
            "VOXGATE_BILLING__PLANS",
            "[{name = \"starter\", price_id = \"price_starter\", max_concurrent_calls = 1, minutes_per_month = 100, \
             max_agents = 1, knowledge_bytes = 2000, whatsapp_conversations_per_month = 10}, \
             {name = \"pro\", price_id = \"price_pro\", max_agents = 5, knowledge_bytes = 100000}, \
             {name = \"free_trial\", max_agents = 1, trial_days = 14}]"
                .to_owned(),
        ),
    ])
}

/// The next mail, to `to`; its text (soft line breaks joined).
fn mail_to(
    mail: &mpsc::Receiver<common::smtp::Mail>,
    to: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let m = mail.recv_timeout(Duration::from_secs(20)).map_err(|_| "no mail arrived")?;
    assert_eq!(m.to, vec![to.to_owned()]);
    Ok(m.text())
}

/// The path and query of the first link in `text` to this server that holds `marker`.
fn link(text: &str, marker: &str) -> Result<String, Box<dyn std::error::Error>> {
    let start = text.find(marker).ok_or_else(|| format!("no {marker} link in: {text}"))?;
    let from = text[..start].rfind("http://").ok_or("no URL")?;
    let url: String = text[from..].chars().take_while(|c| !c.is_whitespace()).collect();
    Ok(url)
}

/// `url` without its scheme and host.
fn path_of(url: &str) -> &str {
    url.trim_start_matches("http://").find('/').map_or("/", |i| &url.trim_start_matches("http://")[i..])
}

/// The token `name=` in `url`'s query.
fn query_value(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// Signs `email` up for `plan` and follows the mailed link; the verify answer's Location.
fn sign_up(
    server: &Server,
    mail: &mpsc::Receiver<common::smtp::Mail>,
    email: &str,
    plan: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let body = json!({"email": email, "company": "Ann's Bakery", "plan": plan}).to_string();
    let (status, accepted) = http(server, "POST", "/v1/signup", None, Some(&body))?;
    assert_eq!((status, accepted["status"].as_str()), (202, Some("verification_sent")), "{accepted}");
    let verify = link(&mail_to(mail, email)?, "/v1/signup/verify?token=")?;
    let (status, head, _) = http_raw(server, "GET", path_of(&verify), &[], "")?;
    assert_eq!(status, 303, "{head}");
    let location =
        head.lines().find_map(|l| l.strip_prefix("location: ").or_else(|| l.strip_prefix("Location: ")));
    Ok(location.ok_or("no Location")?.to_owned())
}

/// Logs in; the token.
fn log_in(
    server: &Server,
    email: &str,
    password: &str,
) -> Result<Option<String>, Box<dyn std::error::Error>> {
    let body = json!({"email": email, "password": password}).to_string();
    let (status, session) = http(server, "POST", "/v1/auth/login", None, Some(&body))?;
    Ok((status == 200).then(|| session["token"].as_str().map(str::to_owned)).flatten())
}

/// The tenant's plan as `GET /v1/billing/usage` shows it.
fn plan(server: &Server, token: &str) -> Result<Value, Box<dyn std::error::Error>> {
    let (status, usage) = http(server, "GET", "/v1/billing/usage", Some(token), None)?;
    assert_eq!(status, 200, "{usage}");
    Ok(usage["plan"].clone())
}

/// A chat with `agent`: the first thing the server says, or its close code and reason.
async fn chat(server: &Server, agent: &str) -> Result<String, Box<dyn std::error::Error>> {
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/v1/chat?agent={agent}", server.http)).await?;
    let first = tokio::time::timeout(Duration::from_secs(10), socket.next()).await?.ok_or("no answer")??;
    let _ = socket.send(Message::Close(None)).await;
    Ok(match first {
        Message::Close(Some(frame)) => format!("closed {} {}", u16::from(frame.code), frame.reason),
        other => other.to_text()?.to_owned(),
    })
}

#[test]
fn a_business_signs_up_pays_and_is_held_to_its_plan() -> TestResult {
    let (stripe_url, stripe_calls) = stripe()?;
    let (smtp_port, mail) = common::smtp::sink()?;
    let server = server(&stripe_url, smtp_port)?;
    let (status, plans) = http(&server, "GET", "/v1/plans", None, None)?;
    assert_eq!(status, 200, "{plans}");
    assert_eq!(plans["plans"][0]["name"], "starter", "{plans}");

    // Refused before anything is sent.
    for (body, field) in [
        (json!({"email": "not an address", "company": "Ann's Bakery", "plan": "starter"}), "email"),
        (json!({"email": EMAIL, "company": "Ann's Bakery", "plan": "platinum"}), "plan"),
        (json!({"email": EMAIL, "company": " ", "plan": "starter"}), "company"),
    ] {
        let (status, refused) = http(&server, "POST", "/v1/signup", None, Some(&body.to_string()))?;
        assert_eq!((status, refused["field"].as_str()), (422, Some(field)), "{refused}");
    }
    assert!(mail.try_recv().is_err(), "no mail for a refused sign-up");
    let (status, _) = http(&server, "GET", "/v1/signup/verify?token=guessed", None, None)?;
    assert_eq!(status, 404, "a guessed link");

    // The verified email goes on to Stripe Checkout, made once.
    assert_eq!(sign_up(&server, &mail, EMAIL, "starter")?, CHECKOUT_URL);
    let made = stripe_calls.try_recv().map_err(|_| "Stripe was not asked for a Checkout Session")?;
    let form = &made.form;
    assert_eq!(form.get("mode").map(String::as_str), Some("subscription"), "{made:?}");
    assert_eq!(form.get("line_items[0][price]").map(String::as_str), Some("price_starter"), "{made:?}");
    assert_eq!(form.get("line_items[0][quantity]").map(String::as_str), Some("1"));
    assert_eq!(form.get("customer_email").map(String::as_str), Some(EMAIL));
    let signup = form.get("client_reference_id").ok_or("no client_reference_id")?.clone();
    assert!(
        made.head
            .to_ascii_lowercase()
            .contains(&format!("idempotency-key: checkout-{}", signup.to_ascii_lowercase()))
    );
    assert!(form.get("success_url").is_some_and(|u| u.ends_with("/dashboard?signup=paid")), "{made:?}");

    // Stripe's word that it was paid: only when Stripe signed it, now, once.
    let paid = event(
        "evt_paid",
        "checkout.session.completed",
        json!({"id": "cs_test_1", "object": "checkout.session", "client_reference_id": signup, "customer": "cus_ann",
            "subscription": "sub_ann", "customer_details": {"email": EMAIL}, "mode": "subscription",
            "payment_status": "paid", "status": "complete"}),
    );
    let body = paid.to_string();
    assert_eq!(deliver(&server, &paid, None)?, 400, "unsigned");
    assert_eq!(
        deliver(&server, &paid, Some(&signature("whsec_someone_else", now_s(), &body)))?,
        400,
        "another key"
    );
    assert_eq!(
        deliver(&server, &paid, Some(&signature(WEBHOOK_SECRET, now_s() - 600, &body)))?,
        400,
        "replayed late"
    );
    assert!(mail.try_recv().is_err(), "nothing made for a refused webhook");
    assert_eq!(deliver_signed(&server, &paid)?, 200);
    let welcome = mail_to(&mail, EMAIL)?;
    assert!(!welcome.contains(PASSWORD), "never a password by mail");
    let set_link = link(&welcome, "set_password=")?;
    assert_eq!(deliver_signed(&server, &paid)?, 200, "a redelivery is taken");
    assert!(mail.try_recv().is_err(), "and changes nothing");

    // The link sets the password once.
    let token = query_value(&set_link, "set_password").ok_or("no token in the link")?;
    let set = |password: &str| {
        let body = json!({"token": token, "password": password}).to_string();
        http(&server, "POST", "/v1/auth/set-password", None, Some(&body)).map(|(s, _)| s)
    };
    assert_eq!(log_in(&server, EMAIL, PASSWORD)?, None, "no password before the link");
    assert_eq!(set("short")?, 422);
    assert_eq!(set(PASSWORD)?, 204);
    assert_eq!(set("another long password")?, 404, "a used link");
    let admin = log_in(&server, EMAIL, PASSWORD)?.ok_or("the admin cannot log in")?;
    let on = plan(&server, &admin)?;
    assert_eq!((on["name"].as_str(), on["status"].as_str()), (Some("starter"), Some("active")), "{on}");
    assert_eq!(on["limits"]["max_agents"], 1, "{on}");

    held_to_the_plan(&server, &admin)
}

/// The starter plan holds; a failed payment suspends the tenant everywhere
/// until the subscription pays again.
fn held_to_the_plan(server: &Server, admin: &str) -> TestResult {
    common::give_number(server, NUMBER, admin)?;
    let spec = json!({"name": "Bakery", "numbers": [NUMBER], "public": true, "stt": {"provider": "scripted"},
        "llm": {"provider": "scripted"}, "tts": {"provider": "scripted"}});
    let (status, agent) = http(server, "POST", "/v1/agents", Some(admin), Some(&spec.to_string()))?;
    assert_eq!(status, 201, "{agent}");
    let agent = agent["id"].as_str().ok_or("no agent id")?.to_owned();
    let second = json!({"name": "Second"}).to_string();
    let (status, refused) = http(server, "POST", "/v1/agents", Some(admin), Some(&second))?;
    assert_eq!(status, 402, "past the plan's agents: {refused}");
    let knowledge = |bytes: usize| {
        let path = format!("/v1/agents/{agent}/knowledge?name=menu.md");
        common::post_as(server, &path, admin, "text/markdown", &"Rye bread. ".repeat(bytes / 11))
            .map(|(s, _)| s)
    };
    assert_eq!(knowledge(3000)?, 402, "past the plan's knowledge");
    assert_eq!(knowledge(1000)?, 200);
    let runtime = tokio::runtime::Runtime::new()?;
    assert!(runtime.block_on(chat(server, &agent))?.contains("started"), "a chat while paying");

    // A failed payment (Stripe's newer invoices name the subscription under `parent`).
    let failed = event(
        "evt_failed",
        "invoice.payment_failed",
        json!({"id": "in_1", "object": "invoice", "customer": "cus_ann", "status": "open",
            "parent": {"type": "subscription_details", "subscription_details": {"subscription": "sub_ann"}}}),
    );
    assert_eq!(deliver_signed(server, &failed)?, 200);
    let on = plan(server, admin)?;
    assert_eq!(
        (on["status"].as_str(), on["closed"].as_str()),
        (Some("suspended"), Some("suspended")),
        "{on}"
    );
    let refused = common::caller::final_response(server, NUMBER, "plans-suspended")?;
    assert!(refused.starts_with("SIP/2.0 486"), "{refused}");
    let reason = refused.lines().find_map(|l| l.strip_prefix("Reason: ")).ok_or("no Reason header")?;
    assert!(reason.contains("cause=486") && reason.contains("suspended"), "{reason}");
    assert!(!refused.contains("Retry-After"), "waiting does not help: {refused}");
    let closed = runtime.block_on(chat(server, &agent))?;
    assert!(closed.starts_with("closed 1008") && closed.contains("suspended"), "{closed}");
    let call = json!({"to": "+15550009999", "agent": agent}).to_string();
    let (status, body) = http(server, "POST", "/v1/calls", Some(admin), Some(&call))?;
    assert_eq!(status, 402, "{body}");
    // A campaign dials nothing while the plan is closed: its numbers wait, attempts unspent.
    let now = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
    let hhmm = |h: i64| -> Result<String, Box<dyn std::error::Error>> {
        let t = now.checked_add(jiff::SignedDuration::from_hours(h))?.time();
        Ok(format!("{:02}:{:02}", t.hour(), t.minute()))
    };
    let window =
        json!({"start": hhmm(-1)?, "end": hhmm(2)?, "time_zone": "UTC", "days": [1, 2, 3, 4, 5, 6, 7]});
    let body = json!({"name": "Reminders", "agent": agent, "numbers": ["+15550009998"], "window": window});
    let (status, campaign) = http(server, "POST", "/v1/campaigns", Some(admin), Some(&body.to_string()))?;
    assert_eq!(status, 201, "{campaign}");
    let campaign = format!("/v1/campaigns/{}", campaign["id"].as_str().ok_or("no campaign id")?);
    std::thread::sleep(Duration::from_secs(3));
    let (_, waiting) = http(server, "GET", &campaign, Some(admin), None)?;
    assert_eq!(waiting["counts"], json!({"pending": 1}), "{waiting}");
    assert_eq!(waiting["numbers"][0]["attempts"], 0, "not dialled: {waiting}");
    assert_eq!(http(server, "POST", &format!("{campaign}/cancel"), Some(admin), None)?.0, 200);

    // Paid again, on a bigger plan.
    let updated = event(
        "evt_updated",
        "customer.subscription.updated",
        json!({"id": "sub_ann", "object": "subscription", "customer": "cus_ann", "status": "active",
            "items": {"object": "list", "data": [{"id": "si_1", "price": {"id": "price_pro"}}]}}),
    );
    assert_eq!(deliver_signed(server, &updated)?, 200);
    let on = plan(server, admin)?;
    assert_eq!((on["name"].as_str(), on["status"].as_str()), (Some("pro"), Some("active")), "{on}");
    assert!(on["closed"].is_null(), "{on}");
    assert!(runtime.block_on(chat(server, &agent))?.contains("started"), "chats again");
    let (status, body) = http(server, "POST", "/v1/agents", Some(admin), Some(&second))?;
    assert_eq!(status, 201, "the pro plan keeps five: {body}");

    // Cancelled.
    let deleted = event(
        "evt_deleted",
        "customer.subscription.deleted",
        json!({"id": "sub_ann", "object": "subscription", "customer": "cus_ann", "status": "canceled"}),
    );
    assert_eq!(deliver_signed(server, &deleted)?, 200);
    assert_eq!(plan(server, admin)?["status"], "suspended");
    Ok(())
}

#[test]
fn a_free_trial_needs_no_payment_and_its_admin_sets_a_password_in_the_dashboard() -> TestResult {
    let browser_dir = root().join("media-server/tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "the browser tests need Node.js >= 20 with npm, then scripts/setup.sh (it installs their npm packages)"
    );
    let (stripe_url, stripe_calls) = stripe()?;
    let (smtp_port, mail) = common::smtp::sink()?;
    let server = server(&stripe_url, smtp_port)?;
    let email = "bo@cafe.test";
    let to = sign_up(&server, &mail, email, "free_trial")?;
    assert!(to.ends_with("/dashboard?signup=ready"), "{to}");
    assert!(stripe_calls.try_recv().is_err(), "a free plan asks Stripe nothing");
    let set_link = link(&mail_to(&mail, email)?, "set_password=")?;

    let out = std::process::Command::new("node")
        .current_dir(&browser_dir)
        .args(["set_password.mjs", &set_link, email, PASSWORD])
        .output()?;
    assert!(out.status.success(), "the new admin failed: {}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(seen["loginShownFirst"], false, "{seen}");
    assert!(
        !seen["address"].as_str().unwrap_or_default().contains("set_password"),
        "the used link is off the address bar: {seen}"
    );
    assert_eq!(seen["errors"], json!([]), "{seen}");

    let admin = log_in(&server, email, PASSWORD)?.ok_or("the admin cannot log in")?;
    let (_, me) = http(&server, "GET", "/v1/me", Some(&admin), None)?;
    assert_eq!(seen["who"], me["tenant_id"], "the page logged in to the new tenant: {seen}");
    assert_eq!(me["role"], "admin", "{me}");
    let on = plan(&server, &admin)?;
    assert_eq!(on["name"], "free_trial", "{on}");
    let ends = on["trial_ends_at"].as_i64().ok_or("no trial end")?;
    let fourteen_days = (now_s() + 14 * 86_400) * 1000;
    assert!((ends - fourteen_days).abs() < 120_000, "the trial ends in 14 days: {on}");
    // The link is used up, and the same email cannot sign up into a second tenant.
    let (status, _) = http(
        &server,
        "POST",
        "/v1/auth/set-password",
        None,
        Some(
            &json!({"token": query_value(&set_link, "set_password"), "password": "yet another password"})
                .to_string(),
        ),
    )?;
    assert_eq!(status, 404);
    let again = json!({"email": email, "company": "Bo's Cafe", "plan": "free_trial"}).to_string();
    assert_eq!(
        http(&server, "POST", "/v1/signup", None, Some(&again))?.0,
        202,
        "the same answer as a stranger gets"
    );
    let told = mail_to(&mail, email)?;
    assert!(told.contains("already has an account") && !told.contains("/v1/signup/verify"), "{told}");
    Ok(())
}
