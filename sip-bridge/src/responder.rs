//! The server's front door for requests outside any dialog, pure: frame and
//! check each message, answer what needs no call (OPTIONS keep-alives,
//! REGISTER to a server that is not a registrar, requests for dialogs that
//! do not exist), route INVITEs by the dialled user, and refuse the rest
//! with the status RFC 3261 names.
//!
//! Security, before any of that: sources outside the trusted networks
//! (trunks, the LAN) are rate limited per address, known scanners are
//! dropped without a word, and their INVITEs must pass Digest
//! authentication (or get 403 when no users are configured).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use ipnet::IpNet;

use crate::auth::{self, Algorithm, Credentials, NonceCounts, Nonces};
use crate::check::{ALLOW, Checked, check_request};
use crate::limiter::RateLimiter;
use crate::message::{self, Framing, Message, Method, ParseError, Request, Response, Uri};

/// What to do with an incoming message.
#[derive(Debug)]
pub enum Action {
    /// Send this back to where the message came from.
    Reply(Response),
    /// Send nothing (a response, an ACK, or bytes that are not SIP).
    Nothing,
    /// An INVITE for `agent`: the call layer takes it from here.
    Invite { request: Box<Request>, checked: Box<Checked>, agent: String },
}

/// Who may call, and how much anyone may send.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Networks whose INVITEs are taken without authentication and whose
    /// traffic is not rate limited (trunks, PBXs, the LAN).
    pub trusted: Vec<IpNet>,
    /// Digest users (name -> password) who may call from anywhere else.
    pub users: HashMap<String, String>,
    /// Digest realm.
    pub realm: String,
    /// Requests per second per untrusted address (burst: twice that).
    pub rate_per_second: u32,
}

impl Default for Policy {
    /// Only this machine is trusted; nobody else may call.
    fn default() -> Self {
        let trusted = ["127.0.0.0/8", "::1/128"].iter().filter_map(|n| n.parse().ok()).collect();
        Self { trusted, users: HashMap::new(), realm: "voxgate".to_owned(), rate_per_second: 20 }
    }
}

/// User-Agent fragments of SIP scanners (SIPVicious and friends).
const SCANNERS: &[&str] = &[
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "sip-scan",
    "sipsak",
    "iwar",
    "sundayddr",
    "vaxsipuseragent",
    "pplsip",
    "sipscan",
];

/// Routes dialled users to agents and answers the rest.
#[derive(Debug)]
pub struct Responder {
    /// User part (a number or a name) -> agent.
    routes: HashMap<String, String>,
    policy: Policy,
    nonces: Nonces,
    /// Counts used with each nonce: a replayed request is refused.
    nonce_counts: NonceCounts,
    epoch: Instant,
    /// Out-of-dialog requests per client network, from untrusted sources.
    limiter: RateLimiter,
    tags: u64,
}

impl Default for Responder {
    fn default() -> Self {
        Self::new(HashMap::new(), Policy::default())
    }
}

impl Responder {
    /// A responder routing `routes` (user -> agent) under `policy`.
    #[must_use]
    pub fn new(routes: HashMap<String, String>, policy: Policy) -> Self {
        let limiter = RateLimiter::new(policy.rate_per_second, 10_000);
        Self {
            routes,
            policy,
            nonces: Nonces::new(),
            nonce_counts: NonceCounts::default(),
            epoch: Instant::now(),
            limiter,
            tags: 0,
        }
    }

    /// Replaces the routes (agents were added, changed or removed).
    pub fn set_routes(&mut self, routes: HashMap<String, String>) {
        self.routes = routes;
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.policy.trusted.iter().any(|n| n.contains(&ip))
    }

    /// Digest check of an INVITE from an untrusted source: `None` to go on,
    /// or the refusal to send. The credentials must be for our realm and
    /// this Request-URI, with a fresh nonce of ours whose count has not been
    /// used (a replay gets a new nonce, marked stale).
    fn authenticate(&mut self, now: Instant, request: &Request) -> Option<Response> {
        if self.policy.users.is_empty() {
            return Some(self.reply(&request.headers, 403, "Forbidden"));
        }
        let now_s = now.saturating_duration_since(self.epoch).as_secs();
        let creds = request.headers.all("authorization").find_map(Credentials::parse);
        let mut stale = false;
        if let Some(c) = creds {
            if Uri::parse(&c.uri).ok().as_ref() != Some(&request.uri) {
                return Some(self.reply(
                    &request.headers,
                    400,
                    "Bad Request (Digest uri is not the Request-URI)",
                ));
            }
            let fresh = self.nonces.is_fresh(&c.nonce, now_s);
            let proven = c.realm == self.policy.realm
                && self.policy.users.get(&c.username).is_some_and(|pw| c.verify(request.method.as_str(), pw));
            if fresh && proven {
                let issued = self.nonces.issued_at(&c.nonce).unwrap_or(now_s);
                let counted = c.count().is_some_and(|n| self.nonce_counts.accept(&c.nonce, issued, n, now_s));
                if counted {
                    return None;
                }
            }
            // The password was right: only the nonce is worn out.
            stale = proven;
        }
        let mut r = self.reply(&request.headers, 401, "Unauthorized");
        let nonce = self.nonces.issue(now_s);
        for algorithm in Algorithm::OFFERED {
            r.headers.push("www-authenticate", auth::challenge(&self.policy.realm, &nonce, algorithm, stale));
        }
        Some(r)
    }

    fn tag(&mut self) -> String {
        self.tags += 1;
        format!("vg{:x}", self.tags)
    }

    fn reply(&mut self, request: &message::Headers, status: u16, reason: &str) -> Response {
        let tag = self.tag();
        message::response_to(request, status, reason, &tag)
    }

    /// Handles one message from `from`, received at `now`.
    pub fn handle(&mut self, now: Instant, from: SocketAddr, bytes: &[u8], framing: Framing) -> Action {
        let trusted = self.trusted(from.ip());
        if !trusted && !self.limiter.admit(now, from.ip()) {
            return Action::Nothing;
        }
        let request = match message::parse(bytes, framing) {
            Ok(Message::Request(r)) => r,
            // Responses belong to client transactions; stray ones are dropped.
            Ok(Message::Response(_)) | Err(ParseError::Framing(_) | ParseError::BadResponse(_)) => {
                return Action::Nothing;
            }
            Err(ParseError::BadRequest { reason, headers }) => {
                if headers.get("via").is_none() {
                    return Action::Nothing;
                }
                return Action::Reply(self.reply(&headers, 400, &format!("Bad Request ({reason})")));
            }
        };
        if request.method == Method::Ack {
            // An ACK is never answered.
            return Action::Nothing;
        }
        let agent = request.headers.get("user-agent").unwrap_or_default().to_ascii_lowercase();
        if SCANNERS.iter().any(|s| agent.contains(s)) {
            // Silence tells a scanner nothing, not even that SIP is here.
            return Action::Nothing;
        }
        let checked = match check_request(&request) {
            Ok(c) => c,
            Err(rejection) => {
                let mut response = self.reply(&request.headers, rejection.status, &rejection.reason);
                for (name, value) in rejection.headers {
                    response.headers.push(name, value);
                }
                return Action::Reply(response);
            }
        };
        match request.method {
            Method::Options => {
                let mut ok = self.reply(&request.headers, 200, "OK");
                ok.headers.push("allow", ALLOW);
                ok.headers.push("accept", "application/sdp");
                Action::Reply(ok)
            }
            // A re-INVITE (a To tag) of a dialog this server does not have
            // (RFC 3261 §12.2.2): never a new call.
            Method::Invite if checked.to.tag().is_some() => {
                Action::Reply(self.reply(&request.headers, 481, "Call/Transaction Does Not Exist"))
            }
            Method::Invite => {
                if !trusted && let Some(refusal) = self.authenticate(now, &request) {
                    return Action::Reply(refusal);
                }
                let user = match &request.uri {
                    Uri::Sip(u) => u.user_decoded(),
                    Uri::Tel(number) => Some(number.split(';').next().unwrap_or("").to_owned()),
                    Uri::Other { .. } => None,
                };
                match user.and_then(|u| self.routes.get(&u).cloned()) {
                    Some(agent) => {
                        Action::Invite { request: Box::new(request), checked: Box::new(checked), agent }
                    }
                    None => Action::Reply(self.reply(&request.headers, 404, "Not Found")),
                }
            }
            // In-dialog requests for a dialog this server does not have.
            Method::Bye | Method::Cancel | Method::Info | Method::Refer | Method::Notify => {
                Action::Reply(self.reply(&request.headers, 481, "Call/Transaction Does Not Exist"))
            }
            _ => {
                let mut refused = self.reply(&request.headers, 405, "Method Not Allowed");
                refused.headers.push("allow", ALLOW);
                Action::Reply(refused)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, uri: &str) -> Vec<u8> {
        format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-{method}\r\n\
             From: <sip:a@127.0.0.1>;tag=1\r\nTo: <{uri}>\r\nCall-ID: c-{method}\r\nCSeq: 1 {method}\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    const LOCAL: SocketAddr = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 5070);
    const OUTSIDE: SocketAddr = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 9)), 5060);

    fn handle(r: &mut Responder, bytes: &[u8]) -> Action {
        r.handle(Instant::now(), LOCAL, bytes, Framing::Datagram)
    }

    fn status(action: Action) -> Option<u16> {
        match action {
            Action::Reply(r) => Some(r.status),
            _ => None,
        }
    }

    #[test]
    fn invites_route_by_the_dialled_user() {
        let mut r =
            Responder::new(HashMap::from([("1000".to_owned(), "demo".to_owned())]), Policy::default());
        match handle(&mut r, &request("INVITE", "sip:1000@127.0.0.1")) {
            Action::Invite { agent, checked, .. } => {
                assert_eq!(agent, "demo");
                assert_eq!(checked.call_id, "c-INVITE");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(status(handle(&mut r, &request("INVITE", "sip:2000@127.0.0.1"))), Some(404));
        assert!(matches!(handle(&mut r, &request("INVITE", "tel:1000")), Action::Invite { .. }));
    }

    #[test]
    fn what_needs_no_call_is_answered_at_the_door() {
        let mut r = Responder::default();
        assert_eq!(status(handle(&mut r, &request("OPTIONS", "sip:1000@127.0.0.1"))), Some(200));
        assert_eq!(status(handle(&mut r, &request("REGISTER", "sip:127.0.0.1"))), Some(405));
        assert_eq!(status(handle(&mut r, &request("BYE", "sip:1000@127.0.0.1"))), Some(481));
        let reinvite = String::from_utf8(request("INVITE", "sip:1000@127.0.0.1")).expect("utf8").replacen(
            "To: <sip:1000@127.0.0.1>",
            "To: <sip:1000@127.0.0.1>;tag=gone",
            1,
        );
        assert_eq!(status(handle(&mut r, reinvite.as_bytes())), Some(481), "a re-INVITE of no dialog");
        assert!(matches!(handle(&mut r, &request("ACK", "sip:1000@127.0.0.1")), Action::Nothing));
        assert!(matches!(handle(&mut r, b"SIP/2.0 200 OK\r\n\r\n"), Action::Nothing));
        assert!(matches!(handle(&mut r, b"\x16\x03\x01 not sip"), Action::Nothing));
    }

    fn routed(users: &[(&str, &str)]) -> Responder {
        let policy = Policy {
            users: users.iter().map(|(u, p)| ((*u).to_owned(), (*p).to_owned())).collect(),
            ..Policy::default()
        };
        Responder::new(HashMap::from([("1000".to_owned(), "demo".to_owned())]), policy)
    }

    #[test]
    fn by_default_only_this_machine_is_trusted_not_the_lan() {
        let now = Instant::now();
        let invite = request("INVITE", "sip:1000@127.0.0.1");
        let lan = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 1, 20)), 5060);
        assert_eq!(status(routed(&[]).handle(now, lan, &invite, Framing::Datagram)), Some(403));
        assert!(matches!(routed(&[]).handle(now, LOCAL, &invite, Framing::Datagram), Action::Invite { .. }));
    }

    #[test]
    fn strangers_are_refused_or_challenged_and_a_right_answer_gets_through() {
        let now = Instant::now();
        let invite = request("INVITE", "sip:1000@127.0.0.1");
        assert_eq!(status(routed(&[]).handle(now, OUTSIDE, &invite, Framing::Datagram)), Some(403));
        let mut r = routed(&[("alice", "s3cret")]);
        let Action::Reply(challenge) = r.handle(now, OUTSIDE, &invite, Framing::Datagram) else { panic!() };
        assert_eq!(challenge.status, 401);
        let www = challenge.headers.get("www-authenticate").expect("a challenge").to_owned();
        for (password, expect_invite) in [("wrong", false), ("s3cret", true)] {
            let auth =
                auth::answer(&www, "INVITE", "sip:1000@127.0.0.1", "alice", password, 1).expect("answer");
            let text = String::from_utf8(invite.clone()).expect("utf8").replacen(
                "Max-Forwards",
                &format!("Authorization: {auth}\r\nMax-Forwards"),
                1,
            );
            let action = r.handle(now, OUTSIDE, text.as_bytes(), Framing::Datagram);
            assert_eq!(matches!(action, Action::Invite { .. }), expect_invite, "{password}: {action:?}");
        }
    }

    /// `invite` with an `Authorization` answering `www` for `uri` with count `nc`.
    fn authorized(invite: &[u8], www: &str, uri: &str, password: &str, nc: u32) -> Vec<u8> {
        let auth = auth::answer(www, "INVITE", uri, "alice", password, nc).expect("answer");
        String::from_utf8(invite.to_vec())
            .expect("utf8")
            .replacen("Max-Forwards", &format!("Authorization: {auth}\r\nMax-Forwards"), 1)
            .into_bytes()
    }

    #[test]
    fn both_algorithms_are_offered_and_a_replayed_or_misdirected_answer_is_refused() {
        let now = Instant::now();
        let invite = request("INVITE", "sip:1000@127.0.0.1");
        let mut r = routed(&[("alice", "s3cret")]);
        for (index, algorithm) in ["SHA-256", "MD5"].into_iter().enumerate() {
            let Action::Reply(challenge) = r.handle(now, OUTSIDE, &invite, Framing::Datagram) else {
                panic!()
            };
            let offered: Vec<&str> = challenge.headers.all("www-authenticate").collect();
            assert_eq!(offered.len(), 2, "{offered:?}");
            let www = offered[index];
            assert!(www.contains(&format!("algorithm={algorithm},")), "{offered:?}");
            let answer = authorized(&invite, www, "sip:1000@127.0.0.1", "s3cret", 1);
            let first = r.handle(now, OUTSIDE, &answer, Framing::Datagram);
            assert!(matches!(first, Action::Invite { .. }), "{www}: {first:?}");
            // The same request sent again (captured on the wire): a new nonce, marked stale.
            let Action::Reply(again) = r.handle(now, OUTSIDE, &answer, Framing::Datagram) else { panic!() };
            assert_eq!(again.status, 401, "{www}");
            assert!(again.headers.get("www-authenticate").is_some_and(|w| w.contains("stale=true")));
            // The next count of the same nonce is a new request.
            let next = authorized(&invite, www, "sip:1000@127.0.0.1", "s3cret", 2);
            assert!(
                matches!(r.handle(now, OUTSIDE, &next, Framing::Datagram), Action::Invite { .. }),
                "{www}"
            );
        }
        // Credentials computed for another Request-URI do not open this one.
        let www = r.handle(now, OUTSIDE, &invite, Framing::Datagram);
        let Action::Reply(www) = www else { panic!() };
        let www = www.headers.get("www-authenticate").expect("challenge").to_owned();
        let elsewhere = authorized(&invite, &www, "sip:9000@127.0.0.1", "s3cret", 1);
        assert_eq!(status(r.handle(now, OUTSIDE, &elsewhere, Framing::Datagram)), Some(400));
    }

    #[test]
    fn scanners_get_silence() {
        let mut r = Responder::default();
        let text = String::from_utf8(request("OPTIONS", "sip:100@127.0.0.1")).expect("utf8").replacen(
            "Max-Forwards",
            "User-Agent: friendly-scanner\r\nMax-Forwards",
            1,
        );
        assert!(matches!(handle(&mut r, text.as_bytes()), Action::Nothing));
    }

    #[test]
    fn untrusted_sources_are_rate_limited_trusted_ones_are_not() {
        let now = Instant::now();
        let mut r = Responder::default();
        let options = request("OPTIONS", "sip:1000@127.0.0.1");
        let answered = (0..100)
            .filter(|_| status(r.handle(now, OUTSIDE, &options, Framing::Datagram)).is_some())
            .count();
        assert_eq!(answered, 40, "a burst of twice the rate, then nothing");
        let later = now + std::time::Duration::from_secs(1);
        assert!(status(r.handle(later, OUTSIDE, &options, Framing::Datagram)).is_some(), "tokens come back");
        let local =
            (0..100).filter(|_| status(r.handle(now, LOCAL, &options, Framing::Datagram)).is_some()).count();
        assert_eq!(local, 100);
    }
}
