//! Call events POSTed to the agent's webhooks, signed so the receiver can
//! tell they are ours and fresh.
//!
//! Each request carries:
//! - `Voxgate-Event`: `call.started`, `call.ended` or `call.analyzed`;
//! - `Voxgate-Delivery`: the same on every retry of one event, so a
//!   receiver can drop a repeat;
//! - `Voxgate-Signature: t=<unix seconds>,v1=<hex>`: HMAC-SHA256 with the
//!   webhook's secret over `<t>.<body>`. Check the HMAC and that `t` is recent.

use aws_lc_rs::hmac;

/// The `Voxgate-Signature` value for `body` sent at `timestamp` (Unix seconds).
#[must_use]
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("t={timestamp},v1={}", hex::encode(ctx.sign().as_ref()))
}

/// Whether `header` (a `Voxgate-Signature`) signs `body` with `secret`, and
/// was made within `tolerance_s` of `now` (Unix seconds): what a receiver
/// does (used by the tests; receivers are not in this crate).
#[cfg(test)]
#[must_use]
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64, tolerance_s: i64) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1 = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else { return false };
    if (now - t).abs() > tolerance_s {
        return false;
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let signed = [t.to_string().as_bytes(), b".", body].concat();
    hmac::verify(&key, &signed, &v1).is_ok()
}

/// What came of one delivery attempt.
#[derive(Debug)]
pub struct Attempt {
    /// The receiver's status; `None`: no answer.
    pub status: Option<u16>,
    /// Why it failed (a non-2xx status, or the connection).
    pub error: Option<String>,
}

/// POSTs `body` (JSON) as `event` to `url`, signed with `secret`. Redirects
/// are not followed: a receiver answers itself.
pub async fn deliver(
    http: &voxgate_guarded_http::Guarded,
    url: &str,
    secret: &str,
    event: &str,
    delivery: &str,
    body: &[u8],
) -> Attempt {
    let now = crate::store::now_ms() / 1000;
    let request = http
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", concat!("voxgate/", env!("CARGO_PKG_VERSION")))
        .header("voxgate-event", event)
        .header("voxgate-delivery", delivery)
        .header("voxgate-signature", signature(secret, now, body))
        .body(body.to_vec());
    match http.send(request).await {
        Ok(r) if r.status.is_success() => Attempt { status: Some(r.status.as_u16()), error: None },
        Ok(r) => Attempt {
            status: Some(r.status.as_u16()),
            error: Some(format!("receiver answered {}", r.status)),
        },
        // Without the URL: it may carry a token in its query.
        Err(e) => Attempt { status: None, error: Some(e.without_url().with_causes()) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_with_its_secret_body_and_time() {
        let body = br#"{"event":"call.ended"}"#;
        let header = signature("whsec-0123456789abcdef", 1_700_000_000, body);
        assert!(header.starts_with("t=1700000000,v1="));
        assert!(verify("whsec-0123456789abcdef", &header, body, 1_700_000_100, 300));
        assert!(!verify("another-secret-0123456", &header, body, 1_700_000_100, 300));
        assert!(!verify(
            "whsec-0123456789abcdef",
            &header,
            br#"{"event":"call.started"}"#,
            1_700_000_100,
            300
        ));
        assert!(!verify("whsec-0123456789abcdef", &header, body, 1_700_001_000, 300), "too old");
        let moved = header.replace("t=1700000000", "t=1700000050");
        assert!(
            !verify("whsec-0123456789abcdef", &moved, body, 1_700_000_100, 300),
            "the time is signed too"
        );
    }
}
