//! Media tokens: the control plane (and the widget) mints them for an
//! agent, the media plane's public endpoints check them.

use std::time::Duration;

use aws_lc_rs::hmac;

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
#[must_use]
pub fn agent_key(agent: &CallAgent) -> &str {
    agent.id.as_deref().unwrap_or("-")
}

/// Now, in Unix seconds, as tokens count time.
#[must_use]
pub fn now_s() -> u64 {
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

    /// The agent (its id, `-` for the configured one) a valid token is
    /// for, if it has not expired at `now_s` ([`now_s`]).
    #[must_use]
    pub fn check(&self, token: &str, now_s: u64) -> Option<String> {
        let mut parts = token.rsplitn(3, '.');
        let (mac, expires, agent) = (parts.next()?, parts.next()?, parts.next()?);
        let expires: u64 = expires.parse().ok()?;
        let expected = self.mac(agent, expires);
        let fresh = expires > now_s && expires <= now_s + MAX_TOKEN_TTL.as_secs();
        (fresh && same_secret(mac, &expected)).then(|| agent.to_owned())
    }
}

/// Whether `given` is `secret`, compared in time that does not depend on
/// where they differ.
#[must_use]
pub fn same_secret(given: &str, secret: &str) -> bool {
    let (a, b) = (given.as_bytes(), secret.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
}
