//! Who is calling the control API, and what they may do.
//!
//! People log in with email and password (argon2id hashes) and get a signed
//! token (JWT, HS256, with an expiry); programs use API keys (`vxk_...`,
//! kept only as SHA-256 hashes). Either way the request acts for one
//! tenant, and every query is scoped to it.
//!
//! What a request may do is decided here, in one table ([`need`]), before
//! any handler runs (`api::caller` identifies the caller):
//! - users are `admin` (everything in their tenant) or `member` (read only);
//! - keys have a scope: `read`, `calls:place` (read, and place calls) or
//!   `write` (every change but managing users and keys);
//! - the operator (an admin of the default tenant, or `http.api_key`) also
//!   gives phone numbers to tenants.
//!
//! Tokens name their user's token version: a role change or a removal
//! raises it, so the user's tokens stop at once. Failed logins back off per
//! account and client address together ([`LoginGuard`]).

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

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
pub struct Claims {
    /// The user.
    pub sub: String,
    /// The tenant.
    pub tid: String,
    pub role: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    pub iat: u64,
    /// The user's token version when it was issued.
    #[serde(default)]
    pub ver: i64,
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
    pub fn issue(&self, user: &crate::store::UserRow) -> (String, u64) {
        let iat = u64::try_from(now_ms() / 1000).unwrap_or_default();
        let claims = Claims {
            sub: user.id.clone(),
            tid: user.tenant_id.clone(),
            role: user.role.clone(),
            exp: iat + self.ttl_s,
            iat,
            ver: user.token_version,
        };
        // Serialising these claims and an HMAC cannot fail.
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing does not fail");
        (token, claims.exp)
    }

    /// The claims of a valid, unexpired token signed by us.
    pub fn check(&self, token: &str) -> Option<Claims> {
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

/// A user's role in its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything in the tenant, including its users and keys.
    Admin,
    /// Reads only.
    Member,
}

impl Role {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }

    /// A stored role; anything unknown reads as the least one.
    #[must_use]
    pub fn parse(s: &str) -> Self {
        if s == "admin" { Self::Admin } else { Self::Member }
    }
}

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Scope {
    /// Reads only.
    #[serde(rename = "read")]
    Read,
    /// Reads, and places calls (`POST /v1/calls`).
    #[serde(rename = "calls:place")]
    PlaceCalls,
    /// Every change except managing users and keys.
    #[serde(rename = "write")]
    Write,
}

impl Scope {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::PlaceCalls => "calls:place",
            Self::Write => "write",
        }
    }

    /// A stored scope; anything unknown reads as the least one.
    #[must_use]
    pub fn parse(s: &str) -> Self {
        match s {
            "write" => Self::Write,
            "calls:place" => Self::PlaceCalls,
            _ => Self::Read,
        }
    }
}

/// What an operation needs, from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Need {
    Read,
    PlaceCalls,
    Write,
    /// Managing the tenant's users and keys.
    Admin,
    /// Giving phone numbers to tenants.
    Operator,
}

/// What the control API operation `method path` (the route's template)
/// needs. Reads need [`Need::Read`], placing a call [`Need::PlaceCalls`],
/// every other change [`Need::Write`], except the few listed above it.
#[must_use]
pub fn need(method: &axum::http::Method, route: &str) -> Need {
    let read = matches!(*method, axum::http::Method::GET | axum::http::Method::HEAD);
    match route {
        "/v1/numbers" | "/v1/numbers/{number}" if !read => Need::Operator,
        r if r.starts_with("/v1/users")
            || r.starts_with("/v1/api-keys")
            || r.starts_with("/v1/settings")
            || r.starts_with("/v1/whatsapp/apps") =>
        {
            Need::Admin
        }
        "/v1/calls" | "/v1/livekit/dispatch" if !read => Need::PlaceCalls,
        _ if read => Need::Read,
        _ => Need::Write,
    }
}

/// The authenticated caller of a control API request: its tenant, the user
/// or key, and what it may do. Handlers take it as an argument; a request
/// without valid credentials never reaches them (401), nor one whose
/// credentials may not do what the route does (403).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Caller {
    pub tenant_id: String,
    /// The user, for a login token; the key, for an API key.
    pub subject: String,
    pub via: Via,
    /// The user's role (login tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// The key's scope (API keys).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// Whether this is the server's operator.
    pub operator: bool,
}

impl Caller {
    /// Whether the caller may do what `need` names.
    #[must_use]
    pub fn may(&self, need: Need) -> bool {
        if self.operator {
            return true;
        }
        let most = match (self.role, self.scope) {
            (Some(Role::Admin), _) => Need::Admin,
            (_, Some(Scope::Write)) => Need::Write,
            (_, Some(Scope::PlaceCalls)) => Need::PlaceCalls,
            _ => Need::Read,
        };
        need <= most
    }
}

/// Failed logins, per account and client address together: after
/// [`LoginGuard::FREE`] failures the pair waits, twice as long after each
/// further one (up to 15 minutes), and a success forgets it. Keyed by both,
/// so a stranger cannot lock an admin out from elsewhere. Bounded: at most
/// [`LoginGuard::CAPACITY`] pairs are remembered.
#[derive(Debug, Default)]
pub struct LoginGuard {
    failures: std::sync::Mutex<std::collections::HashMap<(String, std::net::IpAddr), Failures>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    /// No attempt is checked before this.
    until: std::time::Instant,
}

impl LoginGuard {
    /// Failures allowed before the first wait.
    pub const FREE: u32 = 5;
    /// The longest wait.
    pub const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(15 * 60);
    /// Pairs remembered at most.
    pub const CAPACITY: usize = 10_000;

    /// How long `email` from `ip` must still wait before its password is
    /// checked; `None`: not at all.
    pub fn wait(
        &self,
        email: &str,
        ip: std::net::IpAddr,
        now: std::time::Instant,
    ) -> Option<std::time::Duration> {
        let failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let f = failures.get(&(email.trim().to_lowercase(), ip))?;
        (f.until > now).then(|| f.until - now)
    }

    /// Counts a failed login; the wait it now faces.
    pub fn failed(&self, email: &str, ip: std::net::IpAddr, now: std::time::Instant) -> std::time::Duration {
        let mut failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if failures.len() >= Self::CAPACITY {
            // Forget pairs that wait no more; if all still wait, the oldest.
            failures.retain(|_, f| f.until > now);
            if failures.len() >= Self::CAPACITY {
                let oldest = failures.iter().min_by_key(|(_, f)| f.until).map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    failures.remove(&k);
                }
            }
        }
        let f =
            failures.entry((email.trim().to_lowercase(), ip)).or_insert(Failures { count: 0, until: now });
        f.count = f.count.saturating_add(1);
        let wait = match f.count.checked_sub(Self::FREE) {
            None | Some(0) => std::time::Duration::ZERO,
            Some(n) => std::time::Duration::from_secs(1u64 << (n - 1).min(20)).min(Self::MAX_WAIT),
        };
        f.until = now + wait;
        wait
    }

    /// A successful login: the pair starts afresh.
    pub fn succeeded(&self, email: &str, ip: std::net::IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        failures.remove(&(email.trim().to_lowercase(), ip));
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
        let user = crate::store::UserRow {
            id: "usr_1".into(),
            tenant_id: "ten_1".into(),
            email: "a@example.com".into(),
            password_hash: String::new(),
            role: "admin".into(),
            token_version: 3,
        };
        let (token, exp) = ours.issue(&user);
        let claims = ours.check(&token).unwrap();
        assert_eq!((claims.sub.as_str(), claims.tid.as_str(), claims.exp), ("usr_1", "ten_1", exp));
        assert_eq!(claims.ver, 3);
        let forger = Tokens::new(b"secret-b", 60);
        assert!(ours.check(&forger.issue(&user).0).is_none());
        let now = exp - 60;
        let past = Claims {
            sub: "usr_1".into(),
            tid: "ten_1".into(),
            role: "admin".into(),
            exp: now - 1,
            iat: now - 61,
            ver: 3,
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

    #[test]
    fn every_route_needs_what_its_method_and_path_say() {
        use axum::http::Method;
        assert_eq!(need(&Method::GET, "/v1/agents"), Need::Read);
        assert_eq!(need(&Method::PUT, "/v1/agents/{id}"), Need::Write);
        assert_eq!(need(&Method::POST, "/v1/agents/{id}/tests"), Need::Write);
        assert_eq!(need(&Method::POST, "/v1/calls"), Need::PlaceCalls);
        assert_eq!(need(&Method::POST, "/v1/campaigns"), Need::Write);
        assert_eq!(need(&Method::GET, "/v1/api-keys"), Need::Admin);
        assert_eq!(need(&Method::DELETE, "/v1/users/{id}"), Need::Admin);
        assert_eq!(need(&Method::GET, "/v1/numbers"), Need::Read);
        assert_eq!(need(&Method::POST, "/v1/numbers"), Need::Operator);
        let caller = |role, scope, operator| Caller {
            tenant_id: "t".into(),
            subject: "s".into(),
            via: Via::Token,
            role,
            scope,
            operator,
        };
        let member = caller(Some(Role::Member), None, false);
        assert!(member.may(Need::Read) && !member.may(Need::PlaceCalls) && !member.may(Need::Write));
        let admin = caller(Some(Role::Admin), None, false);
        assert!(admin.may(Need::Admin) && !admin.may(Need::Operator));
        let read = caller(None, Some(Scope::Read), false);
        assert!(read.may(Need::Read) && !read.may(Need::PlaceCalls));
        let dialer = caller(None, Some(Scope::PlaceCalls), false);
        assert!(dialer.may(Need::PlaceCalls) && !dialer.may(Need::Write));
        let write = caller(None, Some(Scope::Write), false);
        assert!(write.may(Need::Write) && !write.may(Need::Admin));
        assert!(caller(None, Some(Scope::Write), true).may(Need::Operator));
        assert_eq!(Scope::parse("calls:place"), Scope::PlaceCalls);
        assert_eq!(Scope::parse("root"), Scope::Read, "unknown scopes read as the least");
        assert_eq!(Role::parse("owner"), Role::Member);
    }

    #[test]
    fn failed_logins_wait_longer_per_account_and_address_and_a_success_forgets() {
        use std::net::IpAddr;
        use std::time::Duration;
        let guard = LoginGuard::default();
        let (home, away): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "198.51.100.7".parse().unwrap());
        let t0 = std::time::Instant::now();
        for _ in 0..LoginGuard::FREE {
            assert_eq!(guard.failed("ann@x.example", away, t0), Duration::ZERO);
        }
        assert_eq!(guard.failed("ann@x.example", away, t0), Duration::from_secs(1));
        assert_eq!(guard.failed("ann@x.example", away, t0), Duration::from_secs(2));
        assert_eq!(guard.wait("ANN@x.example", away, t0), Some(Duration::from_secs(2)));
        // Ann at home is not locked out by the stranger.
        assert_eq!(guard.wait("ann@x.example", home, t0), None);
        assert_eq!(guard.wait("ann@x.example", away, t0 + Duration::from_secs(2)), None);
        for _ in 0..30 {
            guard.failed("ann@x.example", away, t0);
        }
        assert_eq!(guard.wait("ann@x.example", away, t0), Some(LoginGuard::MAX_WAIT));
        guard.succeeded("ann@x.example", away);
        assert_eq!(guard.wait("ann@x.example", away, t0), None);
        // Bounded: a flood of pairs never holds more than the capacity.
        for i in 0..(LoginGuard::CAPACITY as u32 + 50) {
            guard.failed(&format!("u{i}@x.example"), away, t0);
        }
        assert!(guard.failures.lock().unwrap().len() <= LoginGuard::CAPACITY);
    }
}
