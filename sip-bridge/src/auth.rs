//! HTTP Digest authentication for SIP (RFC 3261 §22, RFC 2617 with
//! qop=auth, RFC 8760's SHA-256 beside MD5): the server side (challenge,
//! verify) for callers that are not on a trusted address, and the client
//! side (answer a challenge) for registering with and calling through a trunk.
//!
//! Nonces are issued statelessly: `<seconds>.<salt>.<SHA-256(seconds.salt:secret)>`
//! with a random salt (each challenge its own nonce), fresh for
//! [`NONCE_LIFETIME_S`]. Each nonce's count (`nc`) is remembered once a
//! request proved the password with it ([`NonceCounts`]), so a captured
//! request cannot be sent again.

use std::collections::HashMap;

use md5::{Digest, Md5};
use sha2::Sha256;

/// How long a nonce may be used.
pub const NONCE_LIFETIME_S: u64 = 300;

/// The hash of a Digest exchange (RFC 8760).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    /// Offered in this order: the stronger first, MD5 for older peers.
    pub const OFFERED: [Self; 2] = [Self::Sha256, Self::Md5];

    /// The `algorithm` parameter's value (none means MD5); `None`: one we do
    /// not support (the `-sess` variants, SHA-512-256).
    fn parse(name: Option<&str>) -> Option<Self> {
        match name {
            None => Some(Self::Md5),
            Some(n) if n.eq_ignore_ascii_case("MD5") => Some(Self::Md5),
            Some(n) if n.eq_ignore_ascii_case("SHA-256") => Some(Self::Sha256),
            Some(_) => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Sha256 => "SHA-256",
        }
    }

    /// Lower-case hex of the hash of `parts` joined by ':'.
    fn hex(self, parts: &[&str]) -> String {
        match self {
            Self::Md5 => hex_of::<Md5>(parts),
            Self::Sha256 => hex_of::<Sha256>(parts),
        }
    }
}

fn hex_of<D: Digest>(parts: &[&str]) -> String {
    let mut h = D::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b":");
        }
        h.update(p.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The `key=value` (quoted or not) pairs of a Digest header value.
fn digest_params(value: &str) -> Option<Vec<(String, String)>> {
    let rest = value.trim().strip_prefix("Digest")?.trim_start();
    let mut out = Vec::new();
    let mut s = rest;
    while !s.is_empty() {
        let (key, after) = s.split_once('=')?;
        let after = after.trim_start();
        let (val, rest) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (q[..end].to_owned(), &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        out.push((key.trim().to_ascii_lowercase(), val));
        s = rest.trim_start().trim_start_matches(',').trim_start();
    }
    Some(out)
}

/// Issues and checks nonces.
#[derive(Debug, Clone)]
pub struct Nonces {
    secret: String,
}

impl Nonces {
    /// A nonce source with a random secret.
    #[must_use]
    pub fn new() -> Self {
        Self { secret: format!("{:032x}", rand::random::<u128>()) }
    }

    /// A new nonce at time `now_s` (seconds).
    #[must_use]
    pub fn issue(&self, now_s: u64) -> String {
        let stamp = format!("{now_s:x}.{:016x}", rand::random::<u64>());
        let mac = self.mac(&stamp);
        format!("{stamp}.{mac}")
    }

    fn mac(&self, stamp: &str) -> String {
        Algorithm::Sha256.hex(&[stamp, &self.secret])
    }

    /// Whether `nonce` is ours and still fresh at `now_s`.
    #[must_use]
    pub fn is_fresh(&self, nonce: &str, now_s: u64) -> bool {
        self.issued_at(nonce).is_some_and(|issued| now_s >= issued && now_s - issued <= NONCE_LIFETIME_S)
    }

    /// When `nonce` was issued, if it is one of ours.
    #[must_use]
    pub fn issued_at(&self, nonce: &str) -> Option<u64> {
        let (stamp, mac) = nonce.rsplit_once('.')?;
        let issued = u64::from_str_radix(stamp.split_once('.')?.0, 16).ok()?;
        (mac == self.mac(stamp)).then_some(issued)
    }
}

impl Default for Nonces {
    fn default() -> Self {
        Self::new()
    }
}

/// A `WWW-Authenticate` value: one per algorithm, [`Algorithm::OFFERED`] in order.
#[must_use]
pub fn challenge(realm: &str, nonce: &str, algorithm: Algorithm, stale: bool) -> String {
    let stale = if stale { ", stale=true" } else { "" };
    let algorithm = algorithm.name();
    format!("Digest realm=\"{realm}\", nonce=\"{nonce}\", algorithm={algorithm}, qop=\"auth\"{stale}")
}

/// The nonce counts seen in requests that proved the password, so that a
/// replayed request (the same nonce and count) is refused: each request
/// must count up (RFC 7616 §3.4; a request without `qop` has no count, so
/// its nonce is good once). Memory is bounded: a nonce is forgotten when it
/// expires, and past [`NonceCounts::MAX`] live nonces new ones are refused
/// until some expire (only a caller who knows a password can add one).
#[derive(Debug, Default)]
pub struct NonceCounts {
    /// Nonce -> (when it was issued, the highest count used).
    seen: HashMap<String, (u64, u32)>,
}

impl NonceCounts {
    pub const MAX: usize = 10_000;

    /// Records `count` for `nonce` (issued at `issued_s`) at `now_s`: false
    /// if it was used before with this count or a higher one.
    pub fn accept(&mut self, nonce: &str, issued_s: u64, count: u32, now_s: u64) -> bool {
        if self.seen.len() >= Self::MAX {
            self.seen.retain(|_, (issued, _)| now_s.saturating_sub(*issued) <= NONCE_LIFETIME_S);
        }
        let full = self.seen.len() >= Self::MAX;
        match self.seen.get_mut(nonce) {
            Some((_, last)) if count <= *last => false,
            Some((_, last)) => {
                *last = count;
                true
            }
            None if full => false,
            None => {
                self.seen.insert(nonce.to_owned(), (issued_s, count));
                true
            }
        }
    }
}

/// What an `Authorization` header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub cnonce: Option<String>,
    pub algorithm: Algorithm,
}

impl Credentials {
    /// Parses an `Authorization` / `Proxy-Authorization` value.
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        let p = digest_params(value)?;
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let algorithm = Algorithm::parse(get("algorithm").as_deref())?;
        Some(Self {
            algorithm,
            username: get("username")?,
            realm: get("realm")?,
            nonce: get("nonce")?,
            uri: get("uri")?,
            response: get("response")?,
            qop: get("qop"),
            nc: get("nc"),
            cnonce: get("cnonce"),
        })
    }

    /// The request count (`nc`, hex); 0 without `qop`.
    #[must_use]
    pub fn count(&self) -> Option<u32> {
        match &self.nc {
            Some(nc) => u32::from_str_radix(nc, 16).ok(),
            None => Some(0),
        }
    }

    /// Whether the response proves knowledge of `password` for `method`.
    #[must_use]
    pub fn verify(&self, method: &str, password: &str) -> bool {
        let expected = response(
            self.algorithm,
            &self.algorithm.hex(&[&self.username, &self.realm, password]),
            &self.nonce,
            method,
            &self.uri,
            self.qop
                .as_deref()
                .zip(self.nc.as_deref())
                .zip(self.cnonce.as_deref())
                .map(|((q, n), c)| (q, n, c)),
        );
        // Constant time is moot for MD5 hex of a one-time nonce, but cheap.
        expected.len() == self.response.len()
            && expected.bytes().zip(self.response.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

fn response(
    algorithm: Algorithm,
    ha1: &str,
    nonce: &str,
    method: &str,
    uri: &str,
    qop: Option<(&str, &str, &str)>,
) -> String {
    let ha2 = algorithm.hex(&[method, uri]);
    match qop {
        Some((qop, nc, cnonce)) => algorithm.hex(&[ha1, nonce, nc, cnonce, qop, &ha2]),
        None => algorithm.hex(&[ha1, nonce, &ha2]),
    }
}

/// The realm a challenge (a `WWW-Authenticate` / `Proxy-Authenticate`
/// value) names, so a client answers only its own server's realm.
#[must_use]
pub fn challenge_realm(challenge: &str) -> Option<String> {
    digest_params(challenge)?.into_iter().find(|(n, _)| n == "realm").map(|(_, v)| v)
}

/// The client's `Authorization` value answering `challenge` (a
/// `WWW-Authenticate` / `Proxy-Authenticate` value); `None` for a challenge
/// of an algorithm we do not support (answer the next one).
#[must_use]
pub fn answer(
    challenge: &str,
    method: &str,
    uri: &str,
    username: &str,
    password: &str,
    nc: u32,
) -> Option<String> {
    let p = digest_params(challenge)?;
    let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let (realm, nonce) = (get("realm")?, get("nonce")?);
    let algorithm = Algorithm::parse(get("algorithm").as_deref())?;
    let ha1 = algorithm.hex(&[username, &realm, password]);
    let name = algorithm.name();
    let offers_auth = get("qop").is_some_and(|q| q.split(',').any(|o| o.trim() == "auth"));
    let mut value =
        format!("Digest username=\"{username}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\"");
    if offers_auth {
        let (nc, cnonce) = (format!("{nc:08x}"), format!("{:016x}", rand::random::<u64>()));
        let r = response(algorithm, &ha1, &nonce, method, uri, Some(("auth", &nc, &cnonce)));
        value.push_str(&format!(
            ", response=\"{r}\", algorithm={name}, qop=auth, nc={nc}, cnonce=\"{cnonce}\""
        ));
    } else {
        let r = response(algorithm, &ha1, &nonce, method, uri, None);
        value.push_str(&format!(", response=\"{r}\", algorithm={name}"));
    }
    if let Some(opaque) = get("opaque") {
        value.push_str(&format!(", opaque=\"{opaque}\""));
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_2617_example_response() {
        // RFC 2617 §3.5 (HTTP, but the same arithmetic).
        let ha1 = Algorithm::Md5.hex(&["Mufasa", "testrealm@host.com", "Circle Of Life"]);
        let r = response(
            Algorithm::Md5,
            &ha1,
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "GET",
            "/dir/index.html",
            Some(("auth", "00000001", "0a4f113b")),
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn a_client_answer_verifies_on_the_server_and_a_wrong_password_does_not() {
        let nonces = Nonces::new();
        let nonce = nonces.issue(1000);
        assert!(nonces.is_fresh(&nonce, 1100));
        assert!(!nonces.is_fresh(&nonce, 1000 + NONCE_LIFETIME_S + 1), "stale");
        assert!(!nonces.is_fresh("5.deadbeef", 10), "not ours");
        assert!(!nonces.is_fresh(&nonce.replacen("3e8.", "3e9.", 1), 1100), "its time changed");
        assert_ne!(nonces.issue(1000), nonce, "each challenge its own nonce");
        for algorithm in Algorithm::OFFERED {
            let ch = challenge("voxgate", &nonce, algorithm, false);
            let auth = answer(&ch, "INVITE", "sip:1000@127.0.0.1", "alice", "s3cret", 1).expect("answer");
            let creds = Credentials::parse(&auth).expect("parse");
            assert_eq!((creds.username.as_str(), creds.nonce.as_str()), ("alice", nonce.as_str()));
            assert_eq!(creds.algorithm, algorithm);
            assert!(creds.verify("INVITE", "s3cret"));
            assert!(!creds.verify("INVITE", "wrong"));
            assert!(!creds.verify("BYE", "s3cret"), "bound to the method");
        }
    }

    #[test]
    fn rfc_7616_sha_256_example_response() {
        // RFC 7616 §3.9.1 (HTTP, the same arithmetic with SHA-256).
        let ha1 = Algorithm::Sha256.hex(&["Mufasa", "http-auth@example.org", "Circle of Life"]);
        let r = response(
            Algorithm::Sha256,
            &ha1,
            "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            "GET",
            "/dir/index.html",
            Some(("auth", "00000001", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")),
        );
        assert_eq!(r, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
    }

    #[test]
    fn a_nonce_count_is_good_once_and_must_count_up() {
        let mut counts = NonceCounts::default();
        assert!(counts.accept("n1", 100, 1, 100));
        assert!(!counts.accept("n1", 100, 1, 101), "the same request again");
        assert!(counts.accept("n1", 100, 2, 102));
        assert!(!counts.accept("n1", 100, 1, 103), "an older one");
        assert!(counts.accept("n2", 100, 0, 103), "no qop: once");
        assert!(!counts.accept("n2", 100, 0, 104));
    }

    #[test]
    fn unknown_algorithms_are_not_answered() {
        let ch = r#"Digest realm="trunk", nonce="abc", algorithm=SHA-512-256, qop="auth""#;
        assert!(answer(ch, "INVITE", "sip:x@trunk", "bob", "pw", 1).is_none());
    }

    #[test]
    fn challenges_without_qop_are_answered_the_rfc_2069_way() {
        let ch = r#"Digest realm="trunk", nonce="abc", opaque="xyz""#;
        let auth = answer(ch, "REGISTER", "sip:trunk.example.com", "bob", "pw", 1).expect("answer");
        assert!(auth.contains(r#"opaque="xyz""#) && !auth.contains("qop"));
        assert!(Credentials::parse(&auth).expect("parse").verify("REGISTER", "pw"));
        assert!(Credentials::parse("Basic Zm9vOmJhcg==").is_none());
    }
}
