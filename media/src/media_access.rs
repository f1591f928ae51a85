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

use aws_lc_rs::hmac;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use voxgate_calls::CallAgent;
use voxgate_calls::tokens::{MediaTokens, agent_key, now_s, same_secret};

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
    fn keys_and_tokens_decide_before_any_agent_is_looked_at() {
        let tokens = MediaTokens::new(b"k");
        let (good, _) = tokens.mint_for("agt_1", std::time::Duration::from_secs(60));
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
