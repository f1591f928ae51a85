//! Registering with a SIP trunk (RFC 3261 §10), sans-IO: REGISTER with our
//! Contact, Digest credentials when challenged (401 or 407), refreshed
//! before it expires, retried after failures; retransmissions per Timer E
//! over UDP only (a connection carries the request reliably), Timer F's
//! give-up over any transport.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::auth;
use crate::call::{T1, T2, TIMEOUT};
use crate::message::{self, Message, Method, Request, Response, Uri};

/// A trunk account.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    /// The registrar, e.g. `sip:trunk.example.com`.
    pub registrar: Uri,
    /// Our address of record's user and domain: `sip:user@domain`.
    pub aor: Uri,
    pub username: String,
    pub password: String,
    /// Requested registration lifetime.
    pub expires: u32,
}

impl std::fmt::Debug for Account {
    // Never print the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("registrar", &self.registrar)
            .field("aor", &self.aor)
            .field("username", &self.username)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// What registration reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationEvent {
    /// Registered for `expires` seconds.
    Registered { expires: u32 },
    /// Refused (or no answer, status 408); tried again after a while.
    Failed { status: u16 },
}

/// Work for the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationOutput {
    /// Send to the registrar (or the outbound proxy).
    Send(Vec<u8>),
    Event(RegistrationEvent),
}

/// Wait before trying again after a failure.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);

/// The registration state machine.
#[derive(Debug)]
pub struct Registration {
    account: Account,
    contact: String,
    /// `UDP`, `TCP` or `TLS`: Via's transport.
    transport: String,
    via_host: String,
    call_id: String,
    tag: String,
    cseq: u32,
    /// In flight: bytes, next resend, interval, give up.
    pending: Option<(Vec<u8>, Instant, Duration, Instant)>,
    /// Whether the request in flight already carries credentials.
    authorized: bool,
    /// When to register again.
    next: Option<Instant>,
    outputs: VecDeque<RegistrationOutput>,
}

impl Registration {
    /// A registration of `account` with our `contact` URI, sent over
    /// `transport` (`UDP`, `TLS`); starts at once.
    #[must_use]
    pub fn new(
        now: Instant,
        account: Account,
        (contact, transport): (&str, &str),
        via_host: &str,
        call_id: &str,
    ) -> Self {
        let mut r = Self {
            account,
            contact: contact.to_owned(),
            transport: transport.to_owned(),
            via_host: via_host.to_owned(),
            call_id: call_id.to_owned(),
            tag: format!("reg{:x}", rand::random::<u32>()),
            cseq: 0,
            pending: None,
            authorized: false,
            next: None,
            outputs: VecDeque::new(),
        };
        r.register(now, None);
        r
    }

    fn register(&mut self, now: Instant, authorization: Option<(&'static str, String)>) {
        self.cseq += 1;
        self.authorized = authorization.is_some();
        let mut headers = message::Headers::default();
        let branch = format!("z9hG4bK-reg-{}-{}", self.tag, self.cseq);
        headers.push("via", format!("SIP/2.0/{} {};branch={branch};rport", self.transport, self.via_host));
        headers.push("max-forwards", "70");
        headers.push("from", format!("<{}>;tag={}", self.account.aor, self.tag));
        headers.push("to", format!("<{}>", self.account.aor));
        headers.push("call-id", self.call_id.clone());
        headers.push("cseq", format!("{} REGISTER", self.cseq));
        headers.push("contact", format!("<{}>", self.contact));
        headers.push("expires", self.account.expires.to_string());
        if let Some((name, value)) = authorization {
            headers.push(name, value);
        }
        let request = Request {
            method: Method::Register,
            uri: self.account.registrar.clone(),
            version: "SIP/2.0".into(),
            headers,
            body: Vec::new(),
        };
        let bytes = request.to_bytes();
        self.outputs.push_back(RegistrationOutput::Send(bytes.clone()));
        // Over TCP or TLS the request is not resent (RFC 3261 §17.1.2.2): only given up on.
        let resend = if self.transport.eq_ignore_ascii_case("UDP") { now + T1 } else { now + TIMEOUT };
        self.pending = Some((bytes, resend, T1, now + TIMEOUT));
        self.next = None;
    }

    fn failed(&mut self, now: Instant, status: u16) {
        self.pending = None;
        self.next = Some(now + RETRY_AFTER_FAILURE);
        self.outputs.push_back(RegistrationOutput::Event(RegistrationEvent::Failed { status }));
    }

    /// A message from the registrar.
    pub fn handle_message(&mut self, now: Instant, message: &Message) {
        if let Message::Response(r) = message {
            self.handle_response(now, r);
        }
    }

    fn handle_response(&mut self, now: Instant, r: &Response) {
        let ours = r
            .headers
            .get("cseq")
            .and_then(|c| message::CSeq::parse(c).ok())
            .is_some_and(|c| c.seq == self.cseq && c.method == "REGISTER");
        if !ours || r.status < 200 || self.pending.is_none() {
            return;
        }
        match r.status {
            200..=299 => {
                self.pending = None;
                // The registrar may grant less than asked: its Contact expires, or Expires.
                let granted = r
                    .headers
                    .get("expires")
                    .and_then(|e| e.trim().parse::<u32>().ok())
                    .unwrap_or(self.account.expires)
                    .max(1);
                // Refresh before it runs out: at 80 %, or 5 s early for short ones.
                let refresh = u64::from(granted).saturating_mul(4) / 5;
                let refresh = Duration::from_secs(refresh.min(u64::from(granted).saturating_sub(5)).max(1));
                self.next = Some(now + refresh);
                self.outputs
                    .push_back(RegistrationOutput::Event(RegistrationEvent::Registered { expires: granted }));
            }
            401 | 407 if !self.authorized => {
                let (challenge_header, answer_header) = if r.status == 401 {
                    ("www-authenticate", "authorization")
                } else {
                    ("proxy-authenticate", "proxy-authorization")
                };
                let uri = self.account.registrar.to_string();
                // The first challenge of an algorithm we support (SHA-256 first, RFC 8760).
                let answer = r.headers.all(challenge_header).find_map(|ch| {
                    auth::answer(ch, "REGISTER", &uri, &self.account.username, &self.account.password, 1)
                });
                match answer {
                    Some(a) => self.register(now, Some((answer_header, a))),
                    None => self.failed(now, r.status),
                }
            }
            status => self.failed(now, status),
        }
    }

    /// When [`Registration::handle_timeout`] is next due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let pending = self.pending.as_ref().map(|(_, next, _, give_up)| (*next).min(*give_up));
        pending.into_iter().chain(self.next).min()
    }

    /// Resends, refreshes and retries.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some((bytes, next, interval, give_up)) = self.pending.as_mut() {
            if now >= *give_up {
                self.failed(now, 408);
            } else if now >= *next {
                self.outputs.push_back(RegistrationOutput::Send(bytes.clone()));
                *interval = (*interval * 2).min(T2);
                *next = now + *interval;
            }
            return;
        }
        if self.next.is_some_and(|t| now >= t) {
            self.register(now, None);
        }
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<RegistrationOutput> {
        self.outputs.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Credentials, Nonces};
    use crate::message::{Framing, parse};

    fn account() -> Account {
        Account {
            registrar: Uri::parse("sip:127.0.0.1:5099").expect("uri"),
            aor: Uri::parse("sip:voxgate@trunk.test").expect("uri"),
            username: "voxgate".into(),
            password: "pw".into(),
            expires: 300,
        }
    }

    fn sent(r: &mut Registration) -> Vec<Request> {
        std::iter::from_fn(|| r.poll_output())
            .filter_map(|o| match o {
                RegistrationOutput::Send(b) => match parse(&b, Framing::Datagram) {
                    Ok(Message::Request(req)) => Some(req),
                    _ => None,
                },
                RegistrationOutput::Event(_) => None,
            })
            .collect()
    }

    fn reply(req: &Request, status: u16, extra: &[(&str, String)]) -> Message {
        let mut r = message::response_to(&req.headers, status, "x", "regtag");
        for (n, v) in extra {
            r.headers.push(n, v.clone());
        }
        parse(&r.to_bytes(), Framing::Datagram).expect("parses")
    }

    #[test]
    fn a_challenge_is_answered_and_the_registration_refreshed_before_it_expires() {
        let t0 = Instant::now();
        let mut r = Registration::new(
            t0,
            account(),
            ("sip:voxgate@127.0.0.1:5060", "UDP"),
            "127.0.0.1:5060",
            "reg-1",
        );
        let first = sent(&mut r);
        assert_eq!(first.len(), 1);
        assert!(first[0].headers.get("authorization").is_none());
        let nonces = Nonces::new();
        let challenge = auth::challenge("trunk", &nonces.issue(1), auth::Algorithm::Md5, false);
        r.handle_message(t0, &reply(&first[0], 401, &[("www-authenticate", challenge)]));
        let second = sent(&mut r);
        let creds =
            Credentials::parse(second[0].headers.get("authorization").expect("credentials")).expect("digest");
        assert!(creds.verify("REGISTER", "pw"));
        assert_eq!(second[0].headers.get("cseq"), Some("2 REGISTER"));
        r.handle_message(t0, &reply(&second[0], 200, &[("expires", "120".into())]));
        assert!(
            std::iter::from_fn(|| r.poll_output())
                .any(|o| o == RegistrationOutput::Event(RegistrationEvent::Registered { expires: 120 }))
        );
        // Refreshed at 96 s (80 % of 120).
        assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(96)));
        r.handle_timeout(t0 + Duration::from_secs(96));
        assert_eq!(sent(&mut r)[0].headers.get("cseq"), Some("3 REGISTER"));
    }

    #[test]
    fn wrong_credentials_fail_and_are_retried_later() {
        let t0 = Instant::now();
        let mut r = Registration::new(
            t0,
            account(),
            ("sip:voxgate@127.0.0.1:5060", "UDP"),
            "127.0.0.1:5060",
            "reg-2",
        );
        let first = sent(&mut r);
        let challenge = auth::challenge("trunk", "n1", auth::Algorithm::Md5, false);
        r.handle_message(t0, &reply(&first[0], 401, &[("www-authenticate", challenge.clone())]));
        let second = sent(&mut r);
        r.handle_message(t0, &reply(&second[0], 401, &[("www-authenticate", challenge)]));
        assert!(
            std::iter::from_fn(|| r.poll_output())
                .any(|o| o == RegistrationOutput::Event(RegistrationEvent::Failed { status: 401 }))
        );
        assert_eq!(r.poll_timeout(), Some(t0 + RETRY_AFTER_FAILURE));
    }

    #[test]
    fn an_unanswered_register_is_resent_then_fails_with_408() {
        let t0 = Instant::now();
        let mut r = Registration::new(
            t0,
            account(),
            ("sip:voxgate@127.0.0.1:5060", "UDP"),
            "127.0.0.1:5060",
            "reg-3",
        );
        sent(&mut r);
        let (mut resends, mut events) = (0, Vec::new());
        while let Some(next) = r.poll_timeout().filter(|&n| n <= t0 + TIMEOUT) {
            r.handle_timeout(next);
            for o in std::iter::from_fn(|| r.poll_output()) {
                match o {
                    RegistrationOutput::Send(_) => resends += 1,
                    event @ RegistrationOutput::Event(_) => events.push(event),
                }
            }
        }
        assert!(resends >= 7, "{resends} resends");
        assert_eq!(events, vec![RegistrationOutput::Event(RegistrationEvent::Failed { status: 408 })]);
    }

    #[test]
    fn over_tls_a_register_is_not_resent_but_still_given_up_on() {
        let t0 = Instant::now();
        let mut r = Registration::new(
            t0,
            account(),
            ("sip:voxgate@127.0.0.1:5061;transport=tls", "TLS"),
            "127.0.0.1:5061",
            "reg-4",
        );
        assert_eq!(sent(&mut r).len(), 1);
        assert_eq!(r.poll_timeout(), Some(t0 + TIMEOUT), "no Timer E");
        r.handle_timeout(t0 + TIMEOUT);
        let outputs: Vec<_> = std::iter::from_fn(|| r.poll_output()).collect();
        assert_eq!(outputs, vec![RegistrationOutput::Event(RegistrationEvent::Failed { status: 408 })]);
    }
}
