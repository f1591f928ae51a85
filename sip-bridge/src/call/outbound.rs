//! One outbound call's signalling, sans-IO: the INVITE client transaction
//! (RFC 3261 §17.1.1, Timer A resends until a provisional answer, Timer B
//! gives up), Digest credentials on 401/407, the ACK for every final
//! answer, CANCEL when nobody answers in time, and the dialog after a 2xx.
//! Its outcome is what campaigns record: answered, busy, no answer, failed.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{T1, T2, TIMEOUT};
use crate::auth;
use crate::message::{self, Headers, Message, Method, NameAddr, Request, Response, Uri};

/// How an outbound call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Answered, then hung up by `by_remote` or by us.
    Completed { by_remote: bool },
    /// Answered, then handed to `target` (REFER; the new call was answered).
    Transferred { target: String },
    /// 486 / 600 / 603.
    Busy,
    /// No answer in time (we cancelled), or 408 / 480 / 487.
    NoAnswer,
    /// Any other refusal, or no response at all (408 after Timer B).
    Failed { status: u16 },
}

/// What the call reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundEvent {
    /// 180 / 183: the far end rings.
    Ringing,
    /// 2xx: the call is up; `sdp` is the answer to our offer.
    Answered {
        sdp: String,
    },
    /// A DTMF digit by SIP INFO.
    Dtmf(char),
    /// A re-INVITE from the far end (hold, resume, a codec change): answer
    /// it with [`OutboundCall::answer_reinvite`]. `None`: the offer is ours.
    ReInvite {
        offer: Option<String>,
    },
    Ended(Outcome),
}

/// Work for the transport (`Send`: to the trunk, or the remote target), of an outbound call.
pub type OutboundOutput = super::DialogOutput<OutboundEvent>;

/// Who we are and where the call goes.
#[derive(Clone, PartialEq, Eq)]
pub struct Dial {
    /// The Request-URI, e.g. `sip:+15551234@trunk.example.com`.
    pub target: Uri,
    /// Our identity (From), e.g. `sip:voxgate@trunk.example.com`.
    pub from: Uri,
    /// Our Contact URI.
    pub contact: String,
    /// `host:port` for Via.
    pub via_host: String,
    /// Transport token for Via (`UDP` or `TCP`).
    pub transport: String,
    /// Digest credentials for the trunk, if it asks.
    pub credentials: Option<(String, String)>,
    /// The only realm the credentials answer (`None`: any realm of the
    /// server the call goes to): a far end cannot harvest an answer for
    /// the trunk's realm.
    pub realm: Option<String>,
    /// Give up ringing after this long (CANCEL).
    pub ring_timeout: Duration,
}

impl std::fmt::Debug for Dial {
    // Never print the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dial").field("target", &self.target).field("from", &self.from).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Calling,
    Ringing,
    /// CANCEL sent; waiting for the 487.
    Cancelling,
    Confirmed,
    /// Our REFER is out, or the far end is placing the new call.
    Transferring,
    Terminating,
    Ended,
}

/// The outbound call. See the module documentation.
#[derive(Debug)]
pub struct OutboundCall {
    dial: Dial,
    state: State,
    call_id: String,
    tag: String,
    cseq: u32,
    branch: String,
    sdp: String,
    authorized: bool,
    /// The INVITE in flight (for resends, CANCEL and the error ACK).
    invite: Request,
    resend: Option<(Vec<u8>, Instant, Duration)>,
    give_up: Option<Instant>,
    ring_deadline: Option<Instant>,
    /// After a 2xx: the far end's tag, its Contact, and the route set.
    remote_to: Option<String>,
    remote_target: Option<Uri>,
    routes: Vec<String>,
    /// A re-INVITE waiting for our answer, and the answer last sent (with
    /// the branch it answers), resent until the ACK.
    reinvite: Option<Request>,
    reinvite_answer: Option<(Option<String>, Vec<u8>)>,
    /// The transfer target, once the far end reports the new call answered.
    transferred_to: Option<String>,
    refer_target: String,
    outputs: VecDeque<OutboundOutput>,
}

impl OutboundCall {
    /// Starts the call: sends the INVITE carrying `sdp` (our offer).
    #[must_use]
    pub fn new(now: Instant, dial: Dial, call_id: &str, tag: &str, sdp: &str) -> Self {
        let mut c = Self {
            invite: Request {
                method: Method::Invite,
                uri: dial.target.clone(),
                version: "SIP/2.0".into(),
                headers: Headers::default(),
                body: Vec::new(),
            },
            dial,
            state: State::Calling,
            call_id: call_id.to_owned(),
            tag: tag.to_owned(),
            cseq: 0,
            branch: String::new(),
            sdp: sdp.to_owned(),
            authorized: false,
            resend: None,
            give_up: None,
            ring_deadline: None,
            remote_to: None,
            remote_target: None,
            routes: Vec::new(),
            reinvite: None,
            reinvite_answer: None,
            transferred_to: None,
            refer_target: String::new(),
            outputs: VecDeque::new(),
        };
        c.send_invite(now, None);
        c
    }

    /// The far end's Contact, once it answered: where in-dialog requests
    /// go when no proxy is in the way.
    #[must_use]
    pub fn remote_target(&self) -> Option<&Uri> {
        self.remote_target.as_ref()
    }

    /// True once the call is over.
    #[must_use]
    pub fn is_ended(&self) -> bool {
        self.state == State::Ended
    }

    fn base_headers(&self, method: &str, cseq: u32, branch: &str, to: &str) -> Headers {
        let mut h = Headers::default();
        h.push(
            "via",
            format!("SIP/2.0/{} {};branch={branch};rport", self.dial.transport, self.dial.via_host),
        );
        h.push("max-forwards", "70");
        h.push("from", format!("<{}>;tag={}", self.dial.from, self.tag));
        h.push("to", to.to_owned());
        h.push("call-id", self.call_id.clone());
        h.push("cseq", format!("{cseq} {method}"));
        h
    }

    fn send_invite(&mut self, now: Instant, authorization: Option<(&'static str, String)>) {
        self.cseq += 1;
        self.branch = format!("z9hG4bK-out-{}-{}", self.tag, self.cseq);
        self.authorized = authorization.is_some();
        let mut headers =
            self.base_headers("INVITE", self.cseq, &self.branch, &format!("<{}>", self.dial.target));
        headers.push("contact", format!("<{}>", self.dial.contact));
        headers.push("allow", crate::check::ALLOW);
        headers.push("content-type", "application/sdp");
        if let Some((name, value)) = authorization {
            headers.push(name, value);
        }
        self.invite = Request {
            method: Method::Invite,
            uri: self.dial.target.clone(),
            version: "SIP/2.0".into(),
            headers,
            body: self.sdp.clone().into_bytes(),
        };
        let bytes = self.invite.to_bytes();
        self.outputs.push_back(OutboundOutput::Send(bytes.clone()));
        self.resend = self.retransmitted(bytes, now);
        self.give_up = Some(now + TIMEOUT);
        self.ring_deadline.get_or_insert(now + self.dial.ring_timeout);
    }

    /// The ACK for a non-2xx final answer: same branch as the INVITE (RFC 3261 §17.1.1.3).
    fn ack_error(&mut self, r: &Response) {
        let to = r.headers.get("to").unwrap_or_default().to_owned();
        let headers = self.base_headers("ACK", self.cseq, &self.branch, &to);
        let ack = Request {
            method: Method::Ack,
            uri: self.dial.target.clone(),
            version: "SIP/2.0".into(),
            headers,
            body: Vec::new(),
        };
        self.outputs.push_back(OutboundOutput::Send(ack.to_bytes()));
    }

    fn dialog_branch(&self, cseq: u32, method: &str) -> String {
        format!("z9hG4bK-out-{}-{cseq}-{method}", self.tag)
    }

    /// A request in the dialog (ACK for the 2xx, BYE, REFER).
    fn in_dialog(&self, method: Method, cseq: u32, extra: &[(&str, String)]) -> Vec<u8> {
        let branch = self.dialog_branch(cseq, method.as_str());
        let to = self.remote_to.clone().unwrap_or_default();
        let mut headers = self.base_headers(method.as_str(), cseq, &branch, &to);
        for r in &self.routes {
            headers.push("route", r.clone());
        }
        for (name, value) in extra {
            headers.push(name, value.clone());
        }
        let uri = self.remote_target.clone().unwrap_or_else(|| self.dial.target.clone());
        Request { method, uri, version: "SIP/2.0".into(), headers, body: Vec::new() }.to_bytes()
    }

    fn end(&mut self, outcome: Outcome) {
        if self.state != State::Ended {
            self.state = State::Ended;
            self.resend = None;
            self.give_up = None;
            self.ring_deadline = None;
            self.outputs.push_back(OutboundOutput::Event(OutboundEvent::Ended(outcome)));
        }
    }

    /// Blind transfer (RFC 3515): REFER the far end to `target`; the call
    /// ends (BYE) once the far end reports the new call answered, or the
    /// transfer fails, or 32 s pass. Before an answer it just hangs up.
    pub fn transfer(&mut self, now: Instant, target: &str) {
        if self.state != State::Confirmed {
            self.hangup(now);
            return;
        }
        self.cseq += 1;
        let extra =
            [("refer-to", format!("<{target}>")), ("referred-by", format!("<{}>", self.dial.contact))];
        let refer = self.in_dialog(Method::Refer, self.cseq, &extra);
        self.outputs.push_back(OutboundOutput::Send(refer.clone()));
        self.resend = self.retransmitted(refer, now);
        self.give_up = Some(now + TIMEOUT);
        self.transferred_to = None;
        self.state = State::Transferring;
        self.refer_target = target.to_owned();
    }

    /// Hangs up: CANCEL while ringing, BYE once answered.
    pub fn hangup(&mut self, now: Instant) {
        match self.state {
            State::Calling | State::Ringing => self.cancel(now),
            State::Confirmed | State::Transferring => {
                self.cseq += 1;
                let bye = self.in_dialog(Method::Bye, self.cseq, &[]);
                self.outputs.push_back(OutboundOutput::Send(bye.clone()));
                self.resend = self.retransmitted(bye, now);
                self.give_up = Some(now + TIMEOUT);
                self.state = State::Terminating;
            }
            _ => {}
        }
    }

    fn cancel(&mut self, now: Instant) {
        // CANCEL: same Request-URI, Call-ID, From, To, CSeq number and branch as the INVITE.
        let headers =
            self.base_headers("CANCEL", self.cseq, &self.branch, &format!("<{}>", self.dial.target));
        let cancel = Request {
            method: Method::Cancel,
            uri: self.dial.target.clone(),
            version: "SIP/2.0".into(),
            headers,
            body: Vec::new(),
        };
        let bytes = cancel.to_bytes();
        self.outputs.push_back(OutboundOutput::Send(bytes.clone()));
        self.resend = self.retransmitted(bytes, now);
        self.give_up = Some(now + TIMEOUT);
        self.ring_deadline = None;
        self.state = State::Cancelling;
    }

    /// A message for this call from the network.
    pub fn handle_message(&mut self, now: Instant, message: &Message) {
        match message {
            Message::Response(r) => self.handle_response(now, r),
            Message::Request(r) => self.handle_request(now, r),
        }
    }

    fn handle_response(&mut self, now: Instant, r: &Response) {
        let Some(cseq) = r.headers.get("cseq").and_then(|c| message::CSeq::parse(c).ok()) else { return };
        if cseq.seq != self.cseq {
            return;
        }
        // Only the answer to the request we sent (its branch), not a look-alike.
        let sent = match cseq.method.as_str() {
            "INVITE" | "CANCEL" => self.branch.clone(),
            method => self.dialog_branch(self.cseq, method),
        };
        if super::top_branch(&r.headers).as_deref() != Some(sent.as_str()) {
            return;
        }
        match (cseq.method.as_str(), r.status) {
            ("INVITE", 100..=199) => {
                // A provisional answer stops Timer A; Timer B keeps running.
                if self.state == State::Calling {
                    self.resend = None;
                    if r.status > 100 {
                        self.state = State::Ringing;
                        self.outputs.push_back(OutboundOutput::Event(OutboundEvent::Ringing));
                    }
                } else if self.state == State::Ringing && r.status > 100 {
                    // Ringing already reported.
                }
            }
            ("INVITE", 200..=299) => {
                let first = !matches!(self.state, State::Confirmed | State::Terminating | State::Ended);
                if first {
                    self.remote_to = r.headers.get("to").map(str::to_owned);
                    self.remote_target = r
                        .headers
                        .list("contact")
                        .first()
                        .and_then(|c| NameAddr::parse(c, "Contact").ok())
                        .map(|n| n.uri);
                    // A UAC's route set is the Record-Route in reverse (RFC 3261 §12.1.2).
                    self.routes = r.headers.all("record-route").map(str::to_owned).collect();
                    self.routes.reverse();
                }
                // Every 2xx (retransmissions too) gets an ACK.
                let ack = self.in_dialog(Method::Ack, self.cseq, &[]);
                self.outputs.push_back(OutboundOutput::Send(ack));
                if first {
                    let cancelled = self.state == State::Cancelling;
                    self.resend = None;
                    self.give_up = None;
                    self.ring_deadline = None;
                    self.state = State::Confirmed;
                    if cancelled {
                        // Answered as we cancelled: the call is up, so end it properly.
                        self.hangup(now);
                    } else {
                        let sdp = String::from_utf8_lossy(&r.body).into_owned();
                        self.outputs.push_back(OutboundOutput::Event(OutboundEvent::Answered { sdp }));
                    }
                }
            }
            ("INVITE", 401 | 407) if !self.authorized && self.state != State::Cancelling => {
                self.ack_error(r);
                let (challenge, answer_header) = if r.status == 401 {
                    ("www-authenticate", "authorization")
                } else {
                    ("proxy-authenticate", "proxy-authorization")
                };
                let uri = self.dial.target.to_string();
                let answer = self.dial.credentials.as_ref().and_then(|(user, password)| {
                    // The first challenge of an algorithm we support (SHA-256 first, RFC 8760).
                    r.headers
                        .all(challenge)
                        .filter(|ch| {
                            self.dial.realm.as_ref().is_none_or(|realm| {
                                auth::challenge_realm(ch).as_deref() == Some(realm.as_str())
                            })
                        })
                        .find_map(|ch| auth::answer(ch, "INVITE", &uri, user, password, 1))
                });
                match answer {
                    Some(a) => self.send_invite(now, Some((answer_header, a))),
                    None => self.end(Outcome::Failed { status: r.status }),
                }
            }
            ("INVITE", status @ 300..) => {
                self.ack_error(r);
                let outcome = match status {
                    486 | 600 | 603 => Outcome::Busy,
                    408 | 480 | 487 => Outcome::NoAnswer,
                    status => Outcome::Failed { status },
                };
                self.end(outcome);
            }
            ("CANCEL", _) => {
                // Wait for the INVITE's 487; stop resending the CANCEL.
                self.resend = None;
            }
            ("BYE", 200..) if self.state == State::Terminating => self.end_hung_up(),
            // 202: the far end now calls the target; NOTIFYs tell how it goes.
            ("REFER", 200..=299) if self.state == State::Transferring => {
                self.resend = None;
                self.give_up = Some(now + TIMEOUT);
            }
            ("REFER", 300..) if self.state == State::Transferring => {
                self.state = State::Confirmed;
                self.hangup(now);
            }
            _ => {}
        }
    }

    fn handle_request(&mut self, now: Instant, r: &Request) {
        // The far end's requests carry its tag (from the 2xx's To) and ours.
        let remote_tag = self.remote_to.as_deref().and_then(|to| NameAddr::parse(to, "To").ok());
        let remote_tag = remote_tag.as_ref().and_then(NameAddr::tag);
        if self.remote_to.is_none() || !super::of_dialog(r, &self.tag, remote_tag) {
            if let Some(refusal) = super::not_this_dialog(r, &self.tag) {
                self.outputs.push_back(OutboundOutput::Refuse(refusal));
            }
            return;
        }
        let ok = message::response_to(&r.headers, 200, "OK", &self.tag).to_bytes();
        match r.method {
            Method::Invite => {
                let branch = super::branch_of(r);
                match &self.reinvite_answer {
                    // A retransmission of the re-INVITE we answered.
                    Some((b, answer)) if b.is_some() && *b == branch => {
                        self.outputs.push_back(OutboundOutput::Send(answer.clone()));
                    }
                    _ if self.state == State::Confirmed && self.reinvite.is_none() => {
                        let offer =
                            (!r.body.is_empty()).then(|| String::from_utf8_lossy(&r.body).into_owned());
                        self.reinvite = Some(r.clone());
                        self.outputs.push_back(OutboundOutput::Event(OutboundEvent::ReInvite { offer }));
                    }
                    _ => {
                        let pending = message::response_to(&r.headers, 491, "Request Pending", &self.tag);
                        self.outputs.push_back(OutboundOutput::Send(pending.to_bytes()));
                    }
                }
            }
            Method::Ack => {
                // The ACK of our answer to a re-INVITE.
                if self.reinvite_answer.is_some() && self.state == State::Confirmed {
                    self.resend = None;
                    self.give_up = None;
                }
            }
            Method::Bye => {
                self.outputs.push_back(OutboundOutput::Send(ok));
                self.end(Outcome::Completed { by_remote: true });
            }
            Method::Info => {
                self.outputs.push_back(OutboundOutput::Send(ok));
                if let Some(c) = super::dtmf_from_info(r) {
                    self.outputs.push_back(OutboundOutput::Event(OutboundEvent::Dtmf(c)));
                }
            }
            Method::Notify if self.state == State::Transferring => {
                self.outputs.push_back(OutboundOutput::Send(ok));
                // A sipfrag of the new call's status line (RFC 3515 §2.4.5).
                let status = String::from_utf8_lossy(&r.body)
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse::<u16>().ok());
                if let Some(status @ 200..) = status {
                    if status < 300 {
                        self.transferred_to = Some(self.refer_target.clone());
                    }
                    self.state = State::Confirmed;
                    self.hangup(now);
                }
            }
            _ => self.outputs.push_back(OutboundOutput::Send(ok)),
        }
    }

    /// The end of a call we hung up: a transfer's, or a plain one.
    fn end_hung_up(&mut self) {
        let outcome = match self.transferred_to.take() {
            Some(target) => Outcome::Transferred { target },
            None => Outcome::Completed { by_remote: false },
        };
        self.end(outcome);
    }

    /// Answers the pending re-INVITE with `sdp`; resent until the ACK.
    pub fn answer_reinvite(&mut self, now: Instant, sdp: &str) {
        let Some(re) = self.reinvite.take() else { return };
        let mut r = message::response_to(&re.headers, 200, "OK", &self.tag);
        r.headers.push("contact", format!("<{}>", self.dial.contact));
        r.headers.push("allow", crate::check::ALLOW);
        r.headers.push("content-type", "application/sdp");
        r.body = sdp.as_bytes().to_vec();
        let bytes = r.to_bytes();
        self.outputs.push_back(OutboundOutput::Send(bytes.clone()));
        self.resend = Some((bytes.clone(), now + T1, T1));
        self.give_up = Some(now + TIMEOUT);
        self.reinvite_answer = Some((super::branch_of(&re), bytes));
    }

    /// A request of ours, resent on Timer A or E over UDP; over a
    /// connection (TCP, TLS) it is carried reliably and never resent
    /// (RFC 3261 §17.1.1.2, §17.1.2.2); Timer B or F still gives up.
    fn retransmitted(&self, request: Vec<u8>, now: Instant) -> Option<(Vec<u8>, Instant, Duration)> {
        self.dial.transport.eq_ignore_ascii_case("UDP").then_some((request, now + T1, T1))
    }

    /// When [`OutboundCall::handle_timeout`] is next due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ring = self.ring_deadline.filter(|_| self.state == State::Ringing);
        [self.resend.as_ref().map(|r| r.1), self.give_up, ring].into_iter().flatten().min()
    }

    /// Resends, and gives up: nobody answering rings out (CANCEL), silence ends with 408.
    pub fn handle_timeout(&mut self, now: Instant) {
        // A CANCEL may only follow a provisional answer (RFC 3261 §9.1).
        if self.ring_deadline.is_some_and(|t| now >= t) && self.state == State::Ringing {
            self.cancel(now);
            return;
        }
        if self.give_up.is_some_and(|t| now >= t) {
            match self.state {
                State::Calling => self.end(Outcome::Failed { status: 408 }),
                State::Cancelling | State::Ringing => self.end(Outcome::NoAnswer),
                State::Terminating => self.end_hung_up(),
                // The REFER unanswered, or no final NOTIFY: give up on it.
                State::Transferring => {
                    self.state = State::Confirmed;
                    self.hangup(now);
                }
                // A re-INVITE's answer never acknowledged: stop resending it.
                _ => {
                    self.give_up = None;
                    self.resend = None;
                }
            }
            return;
        }
        if let Some((bytes, next, interval)) = self.resend.as_mut()
            && now >= *next
        {
            self.outputs.push_back(OutboundOutput::Send(bytes.clone()));
            // Timer A (INVITE) doubles without bound; Timer E (BYE, CANCEL) stops at T2.
            let cap = if self.state == State::Calling { TIMEOUT } else { T2 };
            *interval = (*interval * 2).min(cap);
            *next = now + *interval;
        }
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<OutboundOutput> {
        self.outputs.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Credentials, Nonces};
    use crate::message::{Framing, parse};

    fn dial() -> Dial {
        Dial {
            target: Uri::parse("sip:+15551234@127.0.0.1:5099").expect("uri"),
            from: Uri::parse("sip:voxgate@trunk.test").expect("uri"),
            contact: "sip:voxgate@127.0.0.1:5060".into(),
            via_host: "127.0.0.1:5060".into(),
            transport: "UDP".into(),
            credentials: Some(("voxgate".into(), "pw".into())),
            realm: None,
            ring_timeout: Duration::from_secs(30),
        }
    }

    struct H {
        call: OutboundCall,
        now: Instant,
    }

    impl H {
        fn new() -> Self {
            let now = Instant::now();
            Self { call: OutboundCall::new(now, dial(), "out-1", "o1", "v=0\r\n"), now }
        }

        fn sent(&mut self) -> (Vec<Request>, Vec<OutboundEvent>) {
            let (mut reqs, mut events) = (Vec::new(), Vec::new());
            while let Some(o) = self.call.poll_output() {
                match o {
                    OutboundOutput::Send(b) => match parse(&b, Framing::Datagram) {
                        Ok(Message::Request(r)) => reqs.push(r),
                        Ok(Message::Response(_)) => {}
                        Err(e) => panic!("unparseable: {e}"),
                    },
                    OutboundOutput::Refuse(b) => panic!("refused: {}", String::from_utf8_lossy(&b)),
                    OutboundOutput::Event(e) => events.push(e),
                }
            }
            (reqs, events)
        }

        fn answer(&mut self, to: &Request, status: u16, extra: &[(&str, &str)], body: &str) {
            let mut r = message::response_to(&to.headers, status, "x", "far");
            for (n, v) in extra {
                r.headers.push(n, *v);
            }
            r.body = body.as_bytes().to_vec();
            let msg = parse(&r.to_bytes(), Framing::Datagram).expect("response");
            self.call.handle_message(self.now, &msg);
        }

        fn advance(&mut self, ms: u64) {
            let target = self.now + Duration::from_millis(ms);
            while let Some(t) = self.call.poll_timeout().filter(|&t| t <= target) {
                self.now = self.now.max(t);
                self.call.handle_timeout(self.now);
            }
            self.now = target;
        }
    }

    fn methods(reqs: &[Request]) -> Vec<String> {
        reqs.iter().map(|r| r.method.to_string()).collect()
    }

    #[test]
    fn a_challenged_invite_is_resent_with_credentials_then_answered_and_acked() {
        let mut h = H::new();
        let (first, _) = h.sent();
        let nonce = Nonces::new().issue(1);
        let challenge = auth::challenge("trunk", &nonce, auth::Algorithm::Sha256, false);
        h.answer(&first[0], 407, &[("proxy-authenticate", &challenge)], "");
        let (reqs, _) = h.sent();
        assert_eq!(methods(&reqs), ["ACK", "INVITE"]);
        let creds = Credentials::parse(reqs[1].headers.get("proxy-authorization").expect("credentials"))
            .expect("digest");
        assert!(creds.verify("INVITE", "pw"));
        h.answer(&reqs[1], 180, &[], "");
        h.answer(
            &reqs[1],
            200,
            &[("contact", "<sip:far@127.0.0.1:5099>")],
            "v=0\r\nm=audio 4000 RTP/AVP 0\r\n",
        );
        let (acks, events) = h.sent();
        assert_eq!(methods(&acks), ["ACK"]);
        assert_eq!(acks[0].uri.to_string(), "sip:far@127.0.0.1:5099", "the ACK goes to the Contact");
        assert_eq!(events[0], OutboundEvent::Ringing);
        assert!(matches!(&events[1], OutboundEvent::Answered { sdp } if sdp.contains("m=audio")));
        h.call.hangup(h.now);
        let (bye, _) = h.sent();
        assert_eq!(methods(&bye), ["BYE"]);
        h.answer(&bye[0], 200, &[], "");
        assert_eq!(h.sent().1, vec![OutboundEvent::Ended(Outcome::Completed { by_remote: false })]);
    }

    #[test]
    fn the_credentials_answer_only_the_configured_realm() {
        let challenged_by = |realm: &str, only: Option<&str>| {
            let now = Instant::now();
            let dial = Dial { realm: only.map(str::to_owned), ..dial() };
            let mut h = H { call: OutboundCall::new(now, dial, "out-1", "o1", "v=0\r\n"), now };
            let (first, _) = h.sent();
            let challenge = auth::challenge(realm, &Nonces::new().issue(1), auth::Algorithm::Sha256, false);
            h.answer(&first[0], 401, &[("www-authenticate", &challenge)], "");
            h.sent()
        };
        let (reqs, _) = challenged_by("trunk.test", Some("trunk.test"));
        assert_eq!(methods(&reqs), ["ACK", "INVITE"], "the trunk's own realm is answered");
        let (reqs, events) = challenged_by("harvester.example", Some("trunk.test"));
        assert_eq!(methods(&reqs), ["ACK"], "no answer leaves for another realm");
        assert_eq!(events, vec![OutboundEvent::Ended(Outcome::Failed { status: 401 })]);
    }

    #[test]
    fn busy_and_failures_are_outcomes() {
        for (status, outcome) in
            [(486, Outcome::Busy), (480, Outcome::NoAnswer), (503, Outcome::Failed { status: 503 })]
        {
            let mut h = H::new();
            let (invite, _) = h.sent();
            h.answer(&invite[0], status, &[], "");
            let (reqs, events) = h.sent();
            assert_eq!(methods(&reqs), ["ACK"]);
            assert_eq!(events, vec![OutboundEvent::Ended(outcome)]);
        }
    }

    #[test]
    fn nobody_answering_is_cancelled_after_the_ring_timeout() {
        let mut h = H::new();
        let (invite, _) = h.sent();
        h.answer(&invite[0], 180, &[], "");
        h.sent();
        h.advance(30_000);
        let (reqs, _) = h.sent();
        assert_eq!(methods(&reqs), ["CANCEL"]);
        assert_eq!(reqs[0].headers.get("via"), invite[0].headers.get("via"), "same branch as the INVITE");
        h.answer(&reqs[0], 200, &[], "");
        h.answer(&invite[0], 487, &[], "");
        let (acks, events) = h.sent();
        assert_eq!(methods(&acks), ["ACK"]);
        assert_eq!(events, vec![OutboundEvent::Ended(Outcome::NoAnswer)]);
    }

    #[test]
    fn silence_is_resent_then_fails_with_408() {
        let mut h = H::new();
        h.sent();
        h.advance(31_000);
        let (reqs, events) = h.sent();
        // Timer A doubles without a cap: resends at 0.5, 1.5, 3.5, 7.5 and 15.5 s.
        assert_eq!(reqs.len(), 5, "{}", reqs.len());
        assert!(reqs.iter().all(|r| r.method == Method::Invite));
        assert!(events.is_empty());
        h.advance(1_000);
        assert_eq!(h.sent().1, vec![OutboundEvent::Ended(Outcome::Failed { status: 408 })]);
    }

    #[test]
    fn over_a_connection_requests_are_not_resent_but_still_given_up_on() {
        let now = Instant::now();
        let tls = Dial { transport: "TLS".into(), ..dial() };
        let mut h = H { call: OutboundCall::new(now, tls, "out-tls", "o1", "v=0\r\n"), now };
        assert_eq!(h.sent().0.len(), 1, "the INVITE");
        h.advance(31_000);
        assert_eq!(h.sent(), (vec![], vec![]), "no Timer A over TLS");
        h.advance(1_000);
        assert_eq!(h.sent().1, vec![OutboundEvent::Ended(Outcome::Failed { status: 408 })], "Timer B");
        // Answered, then our BYE: sent once, the call over at Timer F without an answer.
        let tcp = Dial { transport: "TCP".into(), ..dial() };
        let mut h = H { call: OutboundCall::new(now, tcp, "out-tcp", "o2", "v=0\r\n"), now };
        let (invite, _) = h.sent();
        h.answer(&invite[0], 200, &[("contact", "<sip:far@127.0.0.1:5099>")], "v=0\r\n");
        h.sent();
        h.call.hangup(h.now);
        assert_eq!(methods(&h.sent().0), ["BYE"]);
        h.advance(31_000);
        assert!(h.sent().0.is_empty(), "no Timer E over TCP");
        h.advance(1_000);
        assert!(h.call.is_ended());
    }

    #[test]
    fn a_reinvite_from_the_far_end_is_answered_until_acked() {
        let mut h = H::new();
        let (invite, _) = h.sent();
        h.answer(&invite[0], 200, &[("contact", "<sip:far@127.0.0.1:5099>")], "v=0\r\n");
        h.sent();
        let reinvite = "INVITE sip:voxgate@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-re\r\n\
             From: <sip:+15551234@127.0.0.1>;tag=far\r\nTo: <sip:voxgate@trunk.test>;tag=o1\r\nCall-ID: out-1\r\n\
             CSeq: 2 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: 13\r\n\r\nv=0\r\na=hold\r\n";
        let reinvite = parse(reinvite.as_bytes(), Framing::Datagram).expect("re-INVITE");
        h.call.handle_message(h.now, &reinvite);
        let (_, events) = h.sent();
        assert_eq!(events, vec![OutboundEvent::ReInvite { offer: Some("v=0\r\na=hold\r\n".into()) }]);
        h.call.answer_reinvite(h.now, "v=0\r\nm=audio 4000 RTP/AVP 0\r\n");
        let sent = |h: &mut H| {
            let mut n = 0;
            while let Some(o) = h.call.poll_output() {
                if let OutboundOutput::Send(b) = o {
                    let Ok(Message::Response(r)) = parse(&b, Framing::Datagram) else {
                        panic!("not a response")
                    };
                    assert_eq!((r.status, r.headers.get("cseq")), (200, Some("2 INVITE")));
                    assert!(String::from_utf8_lossy(&r.body).contains("m=audio"));
                    n += 1;
                }
            }
            n
        };
        assert_eq!(sent(&mut h), 1);
        h.advance(600);
        assert_eq!(sent(&mut h), 1, "resent while unacknowledged");
        h.call.handle_message(h.now, &reinvite);
        assert_eq!(sent(&mut h), 1, "a retransmitted re-INVITE gets the same answer");
        let ack = "ACK sip:voxgate@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-ack\r\n\
             From: <sip:+15551234@127.0.0.1>;tag=far\r\nTo: <sip:voxgate@trunk.test>;tag=o1\r\nCall-ID: out-1\r\n\
             CSeq: 2 ACK\r\nContent-Length: 0\r\n\r\n";
        h.call.handle_message(h.now, &parse(ack.as_bytes(), Framing::Datagram).expect("ack"));
        h.advance(40_000);
        assert_eq!(sent(&mut h), 0, "the ACK stops the resends");
        assert!(!h.call.is_ended());
    }

    #[test]
    fn a_transfer_refers_the_far_end_and_hangs_up_once_the_new_call_is_answered() {
        let mut h = H::new();
        let (invite, _) = h.sent();
        h.answer(&invite[0], 200, &[("contact", "<sip:far@127.0.0.1:5099>")], "v=0\r\n");
        h.sent();
        h.call.transfer(h.now, "sip:desk@pbx.test");
        let (refer, _) = h.sent();
        assert_eq!(methods(&refer), ["REFER"]);
        assert_eq!(refer[0].headers.get("refer-to"), Some("<sip:desk@pbx.test>"));
        assert_eq!(refer[0].uri.to_string(), "sip:far@127.0.0.1:5099");
        h.answer(&refer[0], 202, &[], "");
        let notify = |status: &str| {
            let body = format!("SIP/2.0 {status}\r\n");
            let text = format!(
                "NOTIFY sip:voxgate@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-n{}\r\n\
                 From: <sip:+15551234@127.0.0.1>;tag=far\r\nTo: <sip:voxgate@trunk.test>;tag=o1\r\nCall-ID: out-1\r\n\
                 CSeq: 5 NOTIFY\r\nEvent: refer\r\nContent-Type: message/sipfrag\r\nContent-Length: {}\r\n\r\n{body}",
                status.len(),
                body.len()
            );
            parse(text.as_bytes(), Framing::Datagram).expect("notify")
        };
        // Progress changes nothing; the final status ends the transfer.
        h.call.handle_message(h.now, &notify("180 Ringing"));
        assert!(h.sent().0.is_empty());
        h.call.handle_message(h.now, &notify("200 OK"));
        let (bye, _) = h.sent();
        assert_eq!(methods(&bye), ["BYE"]);
        h.answer(&bye[0], 200, &[], "");
        let target = "sip:desk@pbx.test".to_owned();
        assert_eq!(h.sent().1, vec![OutboundEvent::Ended(Outcome::Transferred { target })]);
    }

    #[test]
    fn a_bye_from_the_far_end_completes_the_call() {
        let mut h = H::new();
        let (invite, _) = h.sent();
        h.answer(&invite[0], 200, &[("contact", "<sip:far@127.0.0.1:5099>")], "v=0\r\n");
        h.sent();
        let bye = "BYE sip:voxgate@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-b\r\n\
             From: <sip:+15551234@127.0.0.1>;tag=far\r\nTo: <sip:voxgate@trunk.test>;tag=o1\r\nCall-ID: out-1\r\n\
             CSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n";
        h.call.handle_message(h.now, &parse(bye.as_bytes(), Framing::Datagram).expect("bye"));
        let (_, events) = h.sent();
        assert_eq!(events, vec![OutboundEvent::Ended(Outcome::Completed { by_remote: true })]);
    }

    #[test]
    fn a_bye_without_both_dialog_tags_is_481_and_the_call_goes_on() {
        let mut h = H::new();
        let (invite, _) = h.sent();
        h.answer(&invite[0], 200, &[("contact", "<sip:far@127.0.0.1:5099>")], "v=0\r\n");
        h.sent();
        for (from, to) in [("evil", "o1"), ("far", "guess"), ("far", "")] {
            let to = if to.is_empty() { String::new() } else { format!(";tag={to}") };
            let bye = format!(
                "BYE sip:voxgate@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6666;branch=z9hG4bK-e\r\n\
                 From: <sip:+15551234@127.0.0.1>;tag={from}\r\nTo: <sip:voxgate@trunk.test>{to}\r\n\
                 Call-ID: out-1\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"
            );
            h.call.handle_message(h.now, &parse(bye.as_bytes(), Framing::Datagram).expect("bye"));
            let (mut statuses, mut events) = (Vec::new(), Vec::new());
            while let Some(o) = h.call.poll_output() {
                match o {
                    OutboundOutput::Refuse(b) => match parse(&b, Framing::Datagram) {
                        Ok(Message::Response(r)) => statuses.push(r.status),
                        other => panic!("not a response: {other:?}"),
                    },
                    OutboundOutput::Send(b) => panic!("sent to the far end: {}", String::from_utf8_lossy(&b)),
                    OutboundOutput::Event(e) => events.push(e),
                }
            }
            assert_eq!((statuses, events), (vec![481], vec![]), "from {from:?} to {to:?}");
        }
        assert!(!h.call.is_ended());
    }
}
