//! HTTP Digest authentication for SIP (RFC 3261 §22, RFC 2617 with MD5 and
//! qop=auth): the server side (challenge, verify) for callers that are not
//! on a trusted address, and the client side (answer a challenge) for
//! registering with and calling through a trunk.
//!
//! Nonces are stateless: `<seconds>.<MD5(seconds:secret)>`, fresh for
//! [`NONCE_LIFETIME_S`], so the server keeps nothing per challenge.

use md5::{Digest, Md5};

/// How long a nonce may be used.
pub const NONCE_LIFETIME_S: u64 = 300;

fn md5_hex(parts: &[&str]) -> String {
    let mut h = Md5::new();
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

    /// A nonce for time `now_s` (seconds).
    #[must_use]
    pub fn issue(&self, now_s: u64) -> String {
        format!("{now_s:x}.{}", md5_hex(&[&format!("{now_s:x}"), &self.secret]))
    }

    /// Whether `nonce` is ours and still fresh at `now_s`.
    #[must_use]
    pub fn is_fresh(&self, nonce: &str, now_s: u64) -> bool {
        let Some((ts, mac)) = nonce.split_once('.') else { return false };
        let Ok(issued) = u64::from_str_radix(ts, 16) else { return false };
        mac == md5_hex(&[ts, &self.secret]) && now_s >= issued && now_s - issued <= NONCE_LIFETIME_S
    }
}

impl Default for Nonces {
    fn default() -> Self {
        Self::new()
    }
}

/// A `WWW-Authenticate` value.
#[must_use]
pub fn challenge(realm: &str, nonce: &str, stale: bool) -> String {
    let stale = if stale { ", stale=true" } else { "" };
    format!("Digest realm=\"{realm}\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\"{stale}")
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
}

impl Credentials {
    /// Parses an `Authorization` / `Proxy-Authorization` value.
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        let p = digest_params(value)?;
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        if get("algorithm").is_some_and(|a| !a.eq_ignore_ascii_case("MD5")) {
            return None;
        }
        Some(Self {
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

    /// Whether the response proves knowledge of `password` for `method`.
    #[must_use]
    pub fn verify(&self, method: &str, password: &str) -> bool {
        let expected = response(
            &md5_hex(&[&self.username, &self.realm, password]),
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

fn response(ha1: &str, nonce: &str, method: &str, uri: &str, qop: Option<(&str, &str, &str)>) -> String {
    let ha2 = md5_hex(&[method, uri]);
    match qop {
        Some((qop, nc, cnonce)) => md5_hex(&[ha1, nonce, nc, cnonce, qop, &ha2]),
        None => md5_hex(&[ha1, nonce, &ha2]),
    }
}

/// The client's `Authorization` value answering `challenge` (a
/// `WWW-Authenticate` / `Proxy-Authenticate` value).
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
    let ha1 = md5_hex(&[username, &realm, password]);
    let offers_auth = get("qop").is_some_and(|q| q.split(',').any(|o| o.trim() == "auth"));
    let mut value =
        format!("Digest username=\"{username}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\"");
    if offers_auth {
        let (nc, cnonce) = (format!("{nc:08x}"), format!("{:016x}", rand::random::<u64>()));
        let r = response(&ha1, &nonce, method, uri, Some(("auth", &nc, &cnonce)));
        value.push_str(&format!(", response=\"{r}\", algorithm=MD5, qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
    } else {
        value.push_str(&format!(
            ", response=\"{}\", algorithm=MD5",
            response(&ha1, &nonce, method, uri, None)
        ));
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
        let ha1 = md5_hex(&["Mufasa", "testrealm@host.com", "Circle Of Life"]);
        let r = response(
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
        let ch = challenge("voxgate", &nonce, false);
        let auth = answer(&ch, "INVITE", "sip:1000@127.0.0.1", "alice", "s3cret", 1).expect("answer");
        let creds = Credentials::parse(&auth).expect("parse");
        assert_eq!((creds.username.as_str(), creds.nonce.as_str()), ("alice", nonce.as_str()));
        assert!(creds.verify("INVITE", "s3cret"));
        assert!(!creds.verify("INVITE", "wrong"));
        assert!(!creds.verify("BYE", "s3cret"), "bound to the method");
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
