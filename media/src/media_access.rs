//! Who may reach an agent over the public media endpoints (chat, WebRTC
//! offers, websocket streams, the widget).
//!
//! - With `http.media_key` given (`?key=`): any agent. The operator's own
//!   servers use it.
//! - With a media token (`?token=`, or a Twilio `<Parameter name="token">`):
//!   the one agent it was minted for, until it expires. The widget mints
//!   them for its agent (`GET /widget/token`), and the control API for a
//!   tenant's agents (`POST /v1/agents/{id}/media-tokens`), so an operator
//!   can keep the media endpoints closed (a media key set) and still
//!   publish the widget.
//! - A Twilio stream signed with its tenant's Twilio auth token: that
//!   tenant's agents.
//! - Anyone else: only agents marked `public`, and only while no media key
//!   is set; any other agent is unknown to them (404).

use std::time::Duration;

use aws_lc_rs::hmac;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::agent::CallAgent;

/// How long a token minted for the widget works.
pub const WIDGET_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);

/// The longest a token may be minted for.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// Signs and checks media tokens: `<agent>.<expiry, Unix s>.<MAC>`, where
/// the configured agent is `-` and the MAC is HMAC-SHA256 (first 16 bytes, hex).
#[derive(Clone)]
pub struct MediaTokens {
    key: hmac::Key,
}

impl std::fmt::Debug for MediaTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaTokens").finish_non_exhaustive()
    }
}

/// An agent's name in a token: its id, or `-` for the configured agent.
fn agent_key(agent: &CallAgent) -> &str {
    agent.id.as_deref().unwrap_or("-")
}

fn now_s() -> u64 {
    u64::try_from(voxgate_domain::now_ms() / 1000).unwrap_or_default()
}

impl MediaTokens {
    /// Tokens signed with `secret` (every node shares it through the database).
    #[must_use]
    pub fn new(secret: &[u8]) -> Self {
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, secret) }
    }

    fn mac(&self, agent: &str, expires: u64) -> String {
        let tag = hmac::sign(&self.key, format!("media:{agent}:{expires}").as_bytes());
        hex::encode(&tag.as_ref()[..16])
    }

    /// A token for `agent`, valid for `ttl` (at most [`MAX_TOKEN_TTL`]); and its expiry (Unix s).
    #[must_use]
    pub fn mint(&self, agent: &CallAgent, ttl: Duration) -> (String, u64) {
        self.mint_for(agent_key(agent), ttl)
    }

    /// [`Self::mint`] for the stored agent `agent_id`.
    #[must_use]
    pub fn mint_for(&self, agent_id: &str, ttl: Duration) -> (String, u64) {
        self.mint_at(agent_id, now_s() + ttl.min(MAX_TOKEN_TTL).as_secs())
    }

    fn mint_at(&self, agent: &str, expires: u64) -> (String, u64) {
        (format!("{agent}.{expires}.{}", self.mac(agent, expires)), expires)
    }

    /// The agent (its id, `-` for the configured one) a valid, unexpired token is for.
    fn check(&self, token: &str, now_s: u64) -> Option<String> {
        let mut parts = token.rsplitn(3, '.');
        let (mac, expires, agent) = (parts.next()?, parts.next()?, parts.next()?);
        let expires: u64 = expires.parse().ok()?;
        let expected = self.mac(agent, expires);
        let fresh = expires > now_s && expires <= now_s + MAX_TOKEN_TTL.as_secs();
        (fresh && same_secret(mac, &expected)).then(|| agent.to_owned())
    }
}

/// A media endpoint's refusal of what the client gave: 401, with why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused(pub &'static str);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        (StatusCode::UNAUTHORIZED, self.0).into_response()
    }
}

/// What a client of a media endpoint proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// The media key: any agent.
    MediaKey,
    /// A media token for this agent (id, `-` for the configured one).
    Token(String),
    /// A Twilio stream signed with this tenant's auth token.
    Twilio(String),
    /// Nothing: public agents only, while no media key is set.
    Anonymous,
}

impl Access {
    /// What `?key=` and `?token=` prove; the refusal (401) for a wrong key
    /// or token, or for no credential at all when a media key is set.
    ///
    /// # Errors
    /// The refusal to send.
    pub fn of(media_key: &str, tokens: &MediaTokens, key: &str, token: &str) -> Result<Self, Refused> {
        let refuse = Refused;
        if !key.is_empty() {
            return if !media_key.is_empty() && same_secret(key, media_key) {
                Ok(Self::MediaKey)
            } else {
                Err(refuse("missing or wrong key"))
            };
        }
        if !token.is_empty() {
            return tokens
                .check(token, now_s())
                .map(Self::Token)
                .ok_or_else(|| refuse("invalid or expired token"));
        }
        if media_key.is_empty() { Ok(Self::Anonymous) } else { Err(refuse("missing or wrong key")) }
    }

    /// Whether this client may reach `agent` (of `tenant`).
    #[must_use]
    pub fn may_use(&self, agent: &CallAgent, tenant: &str) -> bool {
        match self {
            Self::MediaKey => true,
            Self::Token(a) => a == agent_key(agent),
            Self::Twilio(t) => t == tenant,
            Self::Anonymous => agent.public,
        }
    }

    /// The access a start message's token gives on top of this one: the
    /// token's, when it is valid; `None` when it is not.
    #[must_use]
    pub fn with_start_token(self, tokens: &MediaTokens, token: Option<&str>) -> Option<Self> {
        match token.filter(|t| !t.is_empty()) {
            None => Some(self),
            Some(t) => tokens.check(t, now_s()).map(Self::Token),
        }
    }
}

/// Whether `given` is `secret`, compared in time that does not depend on
/// where they differ.
#[must_use]
pub fn same_secret(given: &str, secret: &str) -> bool {
    let (a, b) = (given.as_bytes(), secret.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `X-Twilio-Signature` Twilio sends with a request to `url` (no form
/// parameters: a websocket upgrade has none): base64 of HMAC-SHA1 with the
/// account's auth token.
#[must_use]
pub fn twilio_signature(auth_token: &str, url: &str) -> String {
    use base64::Engine as _;
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth_token.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(hmac::sign(&key, url.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_its_agent_only_until_it_expires_and_cannot_be_forged() {
        let tokens = MediaTokens::new(b"k1");
        let (token, expires) = tokens.mint_at("agt_1", 1_000);
        assert_eq!(tokens.check(&token, 999), Some("agt_1".to_owned()));
        assert_eq!(tokens.check(&token, 1_000), None, "expired");
        assert_eq!(MediaTokens::new(b"k2").check(&token, 999), None, "another key");
        let other = token.replacen("agt_1", "agt_2", 1);
        assert_eq!(tokens.check(&other, 999), None, "moved to another agent");
        let later = token.replacen(&expires.to_string(), "99999999999", 1);
        assert_eq!(tokens.check(&later, 999), None, "its expiry pushed back");
        let (far, _) = tokens.mint_at("agt_1", 999 + MAX_TOKEN_TTL.as_secs() + 10);
        assert_eq!(tokens.check(&far, 999), None, "no token lives longer than the maximum");
        assert_eq!(tokens.check("garbage", 0), None);
        let (configured, _) = tokens.mint_at("-", 1_000);
        assert_eq!(tokens.check(&configured, 10), Some("-".to_owned()));
    }

    #[test]
    fn keys_and_tokens_decide_before_any_agent_is_looked_at() {
        let tokens = MediaTokens::new(b"k");
        let (good, _) = tokens.mint_at("agt_1", now_s() + 60);
        assert_eq!(Access::of("", &tokens, "", "").ok(), Some(Access::Anonymous));
        assert_eq!(Access::of("mk", &tokens, "mk", "").ok(), Some(Access::MediaKey));
        assert!(Access::of("mk", &tokens, "", "").is_err(), "closed endpoints: a credential is needed");
        assert!(Access::of("mk", &tokens, "wrong", "").is_err());
        assert!(Access::of("", &tokens, "anything", "").is_err(), "no key is set: none is right");
        assert_eq!(Access::of("mk", &tokens, "", &good).ok(), Some(Access::Token("agt_1".into())));
        assert!(Access::of("", &tokens, "", "agt_1.1.00").is_err());
    }

    #[test]
    fn twilio_signatures_are_base64_hmac_sha1_of_the_url() {
        // HMAC-SHA1("key", "The quick brown fox jumps over the lazy dog") = de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9
        let sig = twilio_signature("key", "The quick brown fox jumps over the lazy dog");
        assert_eq!(sig, "3nybhbi3iqa8ino29wqQcBydtNk=");
    }
}
