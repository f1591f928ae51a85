//! Who is calling the control API: operators log in with email and password
//! (argon2id hashes) and get a signed token (JWT, HS256, with an expiry);
//! programs use API keys (`vxk_...`, kept only as SHA-256 hashes). Either
//! way the request acts for one tenant, and every query is scoped to it.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::api::ApiError;
use crate::http::AppState;
use crate::store::{Store, StoreError, now_ms};

/// Prefix of API keys, so a key is recognisable (and greppable in leaks).
pub const API_KEY_PREFIX: &str = "vxk_";

/// Signs and checks login tokens.
#[derive(Clone)]
pub struct Tokens {
    encoding: Arc<EncodingKey>,
    decoding: Arc<DecodingKey>,
    ttl_s: u64,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").field("ttl_s", &self.ttl_s).finish_non_exhaustive()
    }
}

/// What a login token says.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claims {
    /// The user.
    sub: String,
    /// The tenant.
    tid: String,
    role: String,
    /// Expiry, Unix seconds.
    exp: u64,
    iat: u64,
}

impl Tokens {
    /// Tokens signed with `secret`, valid for `ttl_s` seconds.
    #[must_use]
    pub fn new(secret: &[u8], ttl_s: u64) -> Self {
        Self {
            encoding: Arc::new(EncodingKey::from_secret(secret)),
            decoding: Arc::new(DecodingKey::from_secret(secret)),
            ttl_s,
        }
    }

    /// The signing secret: the configured one, else the one every node
    /// shares through the database (made on first start).
    ///
    /// # Errors
    /// The database fails.
    pub async fn load(configured: &str, ttl_s: u64, store: &Store) -> Result<Self, StoreError> {
        let secret = if configured.is_empty() {
            store.setting_or_init("jwt_secret", || random_hex(32)).await?
        } else {
            configured.to_owned()
        };
        Ok(Self::new(secret.as_bytes(), ttl_s))
    }

    /// A token for `user`; and its expiry (Unix seconds).
    ///
    /// # Panics
    /// Never: HS256 signing of a small JSON value cannot fail.
    #[must_use]
    pub fn issue(&self, user_id: &str, tenant_id: &str, role: &str) -> (String, u64) {
        let iat = u64::try_from(now_ms() / 1000).unwrap_or_default();
        let claims = Claims {
            sub: user_id.into(),
            tid: tenant_id.into(),
            role: role.into(),
            exp: iat + self.ttl_s,
            iat,
        };
        // Serialising these claims and an HMAC cannot fail.
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing does not fail");
        (token, claims.exp)
    }

    /// The claims of a valid, unexpired token signed by us.
    fn check(&self, token: &str) -> Option<Claims> {
        let mut v = Validation::new(Algorithm::HS256);
        // An expired token is refused from its expiry on, not a minute later.
        v.leeway = 0;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v).ok().map(|d| d.claims)
    }
}

/// Hashes a password (argon2id, random salt) to a PHC string. Slow by
/// design (tens of ms): call it off the async threads.
///
/// # Errors
/// Never in practice (argon2 with default parameters).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    use argon2::PasswordHasher as _;
    argon2::Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string())
}

/// Whether `password` matches `hash` (a PHC string). Slow by design.
#[must_use]
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::PasswordVerifier as _;
    argon2::password_hash::phc::PasswordHash::new(hash)
        .is_ok_and(|h| argon2::Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A new API key (shown once) and the hash to keep.
#[must_use]
pub fn new_api_key() -> (String, String) {
    let key = format!("{API_KEY_PREFIX}{}", random_hex(24));
    let hash = key_hash(&key);
    (key, hash)
}

/// SHA-256 of a key, hex. Keys are long and random, so a fast hash is
/// enough (no salt, no stretching), and it lets a key be looked up.
#[must_use]
pub fn key_hash(key: &str) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.as_bytes()))
}

/// `n` random bytes, hex.
#[must_use]
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::fill(&mut bytes[..]);
    hex::encode(bytes)
}

/// How a request proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// A login token.
    Token,
    /// An API key.
    ApiKey,
}

/// The authenticated caller of a control API request: its tenant, and the
/// user when it logged in. Handlers take it as an argument; a request
/// without valid credentials never reaches them (401).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Caller {
    pub tenant_id: String,
    /// The user, for a login token; the key, for an API key.
    pub subject: String,
    pub via: Via,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(given) = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|v| !v.is_empty())
        else {
            return Err(ApiError::Unauthorized("send Authorization: Bearer <token or API key>"));
        };
        let control = &state.control;
        if given.starts_with(API_KEY_PREFIX) {
            return match control.store.api_key_tenant(&key_hash(given)).await? {
                Some((key_id, tenant_id)) => Ok(Self { tenant_id, subject: key_id, via: Via::ApiKey }),
                None => Err(ApiError::Unauthorized("unknown or revoked API key")),
            };
        }
        // The configured key (http.api_key) acts for the default tenant.
        let configured = state.api_key.expose();
        if !configured.is_empty() && crate::http::same_secret(given, configured) {
            return Ok(Self {
                tenant_id: control.default_tenant.clone(),
                subject: "http.api_key".into(),
                via: Via::ApiKey,
            });
        }
        let Some(claims) = control.tokens.check(given) else {
            return Err(ApiError::Unauthorized("invalid or expired token"));
        };
        // A deleted user's tokens die with it.
        if !control.store.user_exists(&claims.tid, &claims.sub).await? {
            return Err(ApiError::Unauthorized("invalid or expired token"));
        }
        Ok(Self { tenant_id: claims.tid, subject: claims.sub, via: Via::Token })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_checks_against_its_hash_only() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct horsf", &h));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn tokens_are_refused_when_forged_or_expired() {
        let ours = Tokens::new(b"secret-a", 60);
        let (token, exp) = ours.issue("usr_1", "ten_1", "admin");
        let claims = ours.check(&token).unwrap();
        assert_eq!((claims.sub.as_str(), claims.tid.as_str(), claims.exp), ("usr_1", "ten_1", exp));
        let forger = Tokens::new(b"secret-b", 60);
        assert!(ours.check(&forger.issue("usr_1", "ten_1", "admin").0).is_none());
        let now = exp - 60;
        let past = Claims {
            sub: "usr_1".into(),
            tid: "ten_1".into(),
            role: "admin".into(),
            exp: now - 1,
            iat: now - 61,
        };
        let old = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &past, &ours.encoding).unwrap();
        assert!(ours.check(&old).is_none(), "expired a second ago");
        // A tampered payload fails the signature.
        let mut parts: Vec<&str> = token.split('.').collect();
        let other = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            format!(r#"{{"sub":"usr_1","tid":"ten_2","role":"admin","exp":{exp},"iat":0}}"#),
        );
        parts[1] = &other;
        assert!(ours.check(&parts.join(".")).is_none());
    }

    #[test]
    fn api_keys_are_kept_as_hashes() {
        let (key, hash) = new_api_key();
        assert!(key.starts_with(API_KEY_PREFIX) && key.len() == 4 + 48);
        assert_eq!(hash, key_hash(&key));
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(&key[4..]));
    }
}
