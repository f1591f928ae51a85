//! Stripe: Checkout Sessions made through its API (form-encoded, as Stripe
//! takes them) and the webhooks it signs (`Stripe-Signature`).
//!
//! Signature checking is pure (the time is passed in): `t=<unix seconds>`
//! and one or more `v1=<hex>`, any of which may be the HMAC-SHA256 of
//! `"<t>.<body>"` with the endpoint's secret; older than the tolerance (or
//! as far ahead) is refused, so a captured delivery cannot be replayed.

use std::time::Duration;

use serde::Deserialize;

use crate::config::{Secret, StripeSettings};

/// Why a webhook is not Stripe's (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadSignature {
    #[error("no Stripe-Signature header, or no t= and v1= in it")]
    Malformed,
    #[error("no v1 signature matches the body")]
    NoMatch,
    #[error("the signature's time is outside the tolerance")]
    Stale,
    #[error("no webhook secret is configured ([stripe] webhook_secret)")]
    NoSecret,
}

/// Checks `header` (`Stripe-Signature`) over `body` with `secret` at
/// `now_s` (Unix seconds), within `tolerance_s`.
///
/// # Errors
/// Why it is not Stripe's.
pub fn verify(
    header: &str,
    body: &[u8],
    secret: &str,
    now_s: i64,
    tolerance_s: i64,
) -> Result<(), BadSignature> {
    if secret.is_empty() {
        return Err(BadSignature::NoSecret);
    }
    let mut t = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) if t.is_none() => t = Some(v),
            Some(("v1", v)) => signatures.extend(hex::decode(v).ok()),
            _ => {}
        }
    }
    let Some(t) = t else { return Err(BadSignature::Malformed) };
    let at: i64 = t.parse().map_err(|_| BadSignature::Malformed)?;
    if signatures.is_empty() {
        return Err(BadSignature::Malformed);
    }
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let signed = [t.as_bytes(), b".", body].concat();
    // Constant time, each one: `verify` compares the tags so.
    if !signatures.iter().any(|s| aws_lc_rs::hmac::verify(&key, &signed, s).is_ok()) {
        return Err(BadSignature::NoMatch);
    }
    if (now_s - at).abs() > tolerance_s {
        return Err(BadSignature::Stale);
    }
    Ok(())
}

/// An event Stripe sent (the parts read here).
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub data: EventData,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EventData {
    pub object: serde_json::Value,
}

/// What a Checkout Session is made with.
#[derive(Debug, Clone)]
pub struct CheckoutRequest<'a> {
    pub price_id: &'a str,
    pub email: &'a str,
    /// Ours (the sign-up's id): Stripe hands it back on the session.
    pub reference: &'a str,
    pub success_url: &'a str,
    pub cancel_url: &'a str,
    /// Days of trial before the first payment; 0: none.
    pub trial_days: u32,
}

/// A Checkout Session Stripe made.
#[derive(Debug, Clone, Deserialize)]
pub struct CheckoutSession {
    pub id: String,
    pub url: String,
}

/// Why Stripe's API could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    #[error("no Stripe secret key is configured ([stripe] secret_key)")]
    NoKey,
    #[error("Stripe: {0}")]
    Http(#[from] reqwest::Error),
    /// Stripe answered with an error (its message).
    #[error("Stripe answered {status}: {message}")]
    Refused { status: u16, message: String },
}

/// Stripe's API, with the account's secret key.
#[derive(Clone)]
pub struct Stripe {
    http: reqwest::Client,
    api_url: String,
    key: Secret,
}

impl std::fmt::Debug for Stripe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stripe").field("api_url", &self.api_url).finish_non_exhaustive()
    }
}

impl Stripe {
    /// A client for `settings` (the key from the environment when not set).
    #[must_use]
    pub fn new(settings: &StripeSettings) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            http,
            api_url: settings.api_url.trim_end_matches('/').to_owned(),
            key: Secret::from(settings.secret_key.or_env("STRIPE_SECRET_KEY")),
        }
    }

    /// Makes a subscription's Checkout Session (`POST /v1/checkout/sessions`).
    /// The sign-up's id is the idempotency key: asked twice, Stripe makes one.
    ///
    /// # Errors
    /// No key, Stripe unreachable, or Stripe refused.
    pub async fn checkout(&self, c: &CheckoutRequest<'_>) -> Result<CheckoutSession, StripeError> {
        if self.key.is_empty() {
            return Err(StripeError::NoKey);
        }
        let body = Self::checkout_form(c);
        let response = self
            .http
            .post(format!("{}/v1/checkout/sessions", self.api_url))
            .bearer_auth(self.key.expose())
            .header("Idempotency-Key", format!("checkout-{}", c.reference))
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            let message = body["error"]["message"].as_str().unwrap_or("no message").to_owned();
            return Err(StripeError::Refused { status: status.as_u16(), message });
        }
        Ok(response.json().await?)
    }

    /// The session's parameters, form-encoded (Stripe's `a[b][c]` keys).
    fn checkout_form(c: &CheckoutRequest<'_>) -> String {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("mode", "subscription")
            .append_pair("line_items[0][price]", c.price_id)
            .append_pair("line_items[0][quantity]", "1")
            .append_pair("customer_email", c.email)
            .append_pair("client_reference_id", c.reference)
            .append_pair("metadata[signup]", c.reference)
            .append_pair("success_url", c.success_url)
            .append_pair("cancel_url", c.cancel_url);
        if c.trial_days > 0 {
            form.append_pair("subscription_data[trial_period_days]", &c.trial_days.to_string());
        }
        form.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"invoice.payment_failed"}"#;
    /// `printf '1700000000.%s' "$BODY" | openssl dgst -sha256 -hmac whsec_test_secret`.
    const SIGNED: &str = "v1=0a6e25ce3876c45fe74d85dee04ee21ffee5f62c4895fd43c77a281bfba990d7";

    fn sign(t: i64, body: &[u8]) -> String {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET.as_bytes());
        let tag = aws_lc_rs::hmac::sign(&key, &[t.to_string().as_bytes(), b".", body].concat());
        format!("t={t},v1={}", hex::encode(tag.as_ref()))
    }

    #[test]
    fn a_signature_from_openssl_is_accepted() {
        let header = format!("t=1700000000,{SIGNED}");
        assert_eq!(verify(&header, BODY, SECRET, 1_700_000_100, 300), Ok(()));
    }

    #[test]
    fn any_v1_may_match_and_the_rest_is_refused() {
        let t = 1_700_000_000;
        let good = sign(t, BODY);
        let v1 = good.split_once(",v1=").map(|(_, v)| v.to_owned()).unwrap_or_default();
        // A rolled secret: Stripe signs with the old and the new one.
        let two = format!("t={t},v1={},v1={v1},v0=ignored", "00".repeat(32));
        assert_eq!(verify(&two, BODY, SECRET, t, 300), Ok(()));
        assert_eq!(verify(&good, b"{}", SECRET, t, 300), Err(BadSignature::NoMatch));
        assert_eq!(verify(&good, BODY, "whsec_other", t, 300), Err(BadSignature::NoMatch));
        assert_eq!(verify(&good, BODY, SECRET, t + 301, 300), Err(BadSignature::Stale));
        assert_eq!(verify(&good, BODY, SECRET, t - 301, 300), Err(BadSignature::Stale));
        assert_eq!(verify(&format!("v1={v1}"), BODY, SECRET, t, 300), Err(BadSignature::Malformed));
        assert_eq!(verify(&format!("t={t}"), BODY, SECRET, t, 300), Err(BadSignature::Malformed));
        assert_eq!(verify("", BODY, SECRET, t, 300), Err(BadSignature::Malformed));
        assert_eq!(verify(&good, BODY, "", t, 300), Err(BadSignature::NoSecret));
    }
}
