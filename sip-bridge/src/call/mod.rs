//! One inbound call's signalling, sans-IO: the INVITE server transaction
//! and the dialog it creates (RFC 3261 §13, §15, §17.2.1 with RFC 6026),
//! on a clock passed in.
//!
//! ```text
//!  INVITE ─► Proceeding (100 sent; 180 on ring()) ─answer()─► Answered (200 resent T1, 2T1.. T2)
//!     CANCEL: 200 + 487 ─► Ended                               │ ACK
//!     reject(): 4xx-6xx resent until ACK ─► Ended              ▼
//!                         BYE in: 200 ─► Ended ◄── Confirmed ──hangup()──► BYE resent until answered
//! ```
//!
//! Everything goes back to the address the INVITE came from (symmetric
//! signalling), which is also what works behind NAT.
//!
//! A Call-ID is no secret: anyone who sees or guesses it can send a request
//! with it. So a request belongs to the call only if it also carries both
//! dialog tags (RFC 3261 §12.2.2: the caller's on From, ours on To), or is
//! the INVITE's own transaction (its retransmission, its CANCEL); anything
//! else is answered 481 and changes nothing. A response counts only if it
//! answers the request we sent (its Via branch and CSeq).

mod dialog;
pub mod dialogs;
pub mod outbound;

pub use dialog::{Dialog, DialogOutput, MediaEvent};
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::check::{ALLOW, Checked};
use crate::message::{self, Headers, Message, Method, NameAddr, Request, Response};

/// RFC 3261 timer T1 (round-trip estimate).
pub const T1: Duration = Duration::from_millis(500);
/// RFC 3261 timer T2 (longest retransmit interval).
pub const T2: Duration = Duration::from_secs(4);
/// How long a transaction may wait for its answer: 64 * T1.
pub const TIMEOUT: Duration = Duration::from_secs(32);

/// Why a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndCause {
    /// The caller sent BYE.
    RemoteBye,
    /// The caller cancelled before the answer.
    Cancelled,
    /// We hung up and the caller confirmed (or stopped answering).
    LocalHangup,
    /// The caller never acknowledged our answer.
    NoAck,
    /// We refused the call with this status.
    Rejected(u16),
    /// The caller was transferred (their new call was answered).
    Transferred,
    /// The transfer failed; we hung up.
    TransferFailed,
}

/// What the call layer reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// The ACK came: media may flow both ways. `sdp`: the caller's answer,
    /// when our 200 carried the offer.
    Confirmed { sdp: Option<String> },
    /// A re-INVITE: answer it with [`InboundCall::answer_reinvite`]
    /// (hold, resume, a codec change). `None`: the offer is ours to make.
    ReInvite { offer: Option<String> },
    /// A DTMF digit by SIP INFO.
    Dtmf(char),
    /// The call is over.
    Ended(EndCause),
}

/// Work for the transport, of an inbound call.
pub type CallOutput = DialogOutput<CallEvent>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Proceeding,
    /// 2xx sent, waiting for the ACK.
    Answered,
    Confirmed,
    /// A final non-2xx sent, waiting for the ACK.
    Rejected,
    /// Our REFER is out, or the caller is setting up the new call.
    Transferring,
    /// Our BYE is out.
    Terminating,
    Ended,
}

/// A response (or request) being retransmitted.
#[derive(Debug, Clone)]
struct Resend {
    bytes: Vec<u8>,
    next: Instant,
    interval: Duration,
    give_up: Instant,
}

impl Resend {
    fn new(bytes: Vec<u8>, now: Instant) -> Self {
        Self { bytes, next: now + T1, interval: T1, give_up: now + TIMEOUT }
    }

    /// Over a connection (TCP, TLS) only a 2xx to an INVITE is resent (the
    /// UA core's, RFC 3261 §13.3.1.4); requests and other responses are
    /// carried reliably (§17.1.2.2, §17.2.1), so only the give-up stays.
    fn over(reliable: bool, bytes: Vec<u8>, now: Instant) -> Self {
        let r = Self::new(bytes, now);
        if reliable { Self { next: r.give_up, ..r } } else { r }
    }
}

/// One inbound call. See the module documentation.
#[derive(Debug)]
pub struct InboundCall {
    state: State,
    invite: Request,
    checked: Checked,
    local_tag: String,
    /// Our Contact URI, e.g. `sip:voxgate@192.0.2.1:5060`.
    contact: String,
    /// Our address for Via in requests we send, e.g. `192.0.2.1:5060`.
    via_host: String,
    /// The last response to the INVITE (resent on a retransmitted INVITE).
    last_response: Option<Vec<u8>>,
    /// It came over a connection (TCP, TLS): nothing but a 2xx is resent.
    reliable: bool,
    resend: Option<Resend>,
    /// The branch of the re-INVITE being answered, if any.
    reinvite: Option<Request>,
    local_cseq: u32,
    transferred: bool,
    outputs: VecDeque<CallOutput>,
}

fn branch_of(request: &Request) -> Option<String> {
    top_branch(&request.headers)
}

/// The branch of the first Via (a response's names the request it answers).
fn top_branch(headers: &Headers) -> Option<String> {
    let via = headers.get("via")?;
    message::Via::parse_all(via).ok()?.first()?.branch().map(str::to_owned)
}

/// The `tag` of a From or To header.
fn tag_of(headers: &Headers, name: &'static str) -> Option<String> {
    let value = headers.get(name)?;
    NameAddr::parse(value, name).ok()?.tag().map(str::to_owned)
}

/// Whether `r` is a request of the dialog with tags `local` (ours, on To)
/// and `remote` (the peer's, on From; none from an RFC 2543 peer): RFC 3261
/// §12.2.2. Ours is random, so it cannot be guessed from outside.
fn of_dialog(r: &Request, local: &str, remote: Option<&str>) -> bool {
    tag_of(&r.headers, "from").as_deref() == remote && tag_of(&r.headers, "to").as_deref() == Some(local)
}

/// 481 to a request that names this Call-ID but not this dialog (nothing
/// for an ACK, which is never answered).
fn not_this_dialog(r: &Request, local_tag: &str) -> Option<Vec<u8>> {
    (r.method != Method::Ack).then(|| {
        message::response_to(&r.headers, 481, "Call/Transaction Does Not Exist", local_tag).to_bytes()
    })
}

impl InboundCall {
    /// Takes a checked INVITE: answers 100 Trying at once.
    #[must_use]
    pub fn new(invite: Request, checked: Checked, local_tag: &str, contact: &str, via_host: &str) -> Self {
        let mut call = Self {
            reliable: false,
            state: State::Proceeding,
            invite,
            checked,
            local_tag: local_tag.to_owned(),
            contact: contact.to_owned(),
            via_host: via_host.to_owned(),
            last_response: None,
            resend: None,
            reinvite: None,
            local_cseq: 0,
            transferred: false,
            outputs: VecDeque::new(),
        };
        call.respond_invite(100, "Trying", None);
        call
    }

    /// The call's signalling is carried by a connection (TCP, TLS): only
    /// a 2xx is resent.
    #[must_use]
    pub fn over_connection(self) -> Self {
        Self { reliable: true, ..self }
    }

    /// The INVITE that started the call.
    #[must_use]
    pub fn invite(&self) -> &Request {
        &self.invite
    }

    /// Whether the caller's ACK has confirmed the answer: media may flow.
    #[must_use]
    pub fn is_confirmed(&self) -> bool {
        matches!(self.state, State::Confirmed | State::Transferring)
    }

    /// True once the call is over (and nothing remains to resend).
    #[must_use]
    pub fn is_ended(&self) -> bool {
        self.state == State::Ended
    }

    fn response(&self, to: &Request, status: u16, reason: &str, sdp: Option<&str>) -> Response {
        let mut r = message::response_to(&to.headers, status, reason, &self.local_tag);
        if (200..300).contains(&status) && matches!(to.method, Method::Invite) {
            r.headers.push("contact", format!("<{}>", self.contact));
            r.headers.push("allow", ALLOW);
        }
        if let Some(sdp) = sdp {
            r.headers.push("content-type", "application/sdp");
            r.body = sdp.as_bytes().to_vec();
        }
        r
    }

    fn respond_invite(&mut self, status: u16, reason: &str, sdp: Option<&str>) {
        let bytes = self.response(&self.invite, status, reason, sdp).to_bytes();
        self.last_response = Some(bytes.clone());
        self.outputs.push_back(CallOutput::Send(bytes));
    }

    fn respond(&mut self, to: &Request, status: u16, reason: &str) {
        let bytes = self.response(to, status, reason, None).to_bytes();
        self.outputs.push_back(CallOutput::Send(bytes));
    }

    fn end(&mut self, cause: EndCause) {
        if self.state != State::Ended {
            self.state = State::Ended;
            self.resend = None;
            self.outputs.push_back(CallOutput::Event(CallEvent::Ended(cause)));
        }
    }

    /// 180 Ringing.
    pub fn ring(&mut self) {
        if self.state == State::Proceeding {
            self.respond_invite(180, "Ringing", None);
        }
    }

    /// 200 OK with our SDP answer; resent until the ACK comes.
    pub fn answer(&mut self, now: Instant, sdp: &str) {
        if self.state != State::Proceeding {
            return;
        }
        self.respond_invite(200, "OK", Some(sdp));
        self.resend = self.last_response.clone().map(|b| Resend::new(b, now));
        self.state = State::Answered;
    }

    /// Refuses the call (e.g. 488 when no codec fits); resent until the ACK.
    pub fn reject(&mut self, now: Instant, status: u16, reason: &str) {
        self.reject_with(now, status, reason, &[]);
    }

    /// [`Self::reject`] with extra header fields, e.g. `Retry-After` on a 486 or 503.
    pub fn reject_with(&mut self, now: Instant, status: u16, reason: &str, headers: &[(&str, String)]) {
        if self.state != State::Proceeding {
            return;
        }
        let mut response = self.response(&self.invite, status, reason, None);
        for (name, value) in headers {
            response.headers.push(name, value.clone());
        }
        let bytes = response.to_bytes();
        self.last_response = Some(bytes.clone());
        self.outputs.push_back(CallOutput::Send(bytes));
        self.resend = self.last_response.clone().map(|b| Resend::over(self.reliable, b, now));
        self.state = State::Rejected;
    }

    /// Answers a pending re-INVITE with `sdp`.
    pub fn answer_reinvite(&mut self, now: Instant, sdp: &str) {
        if let Some(re) = self.reinvite.take() {
            let bytes = self.response(&re, 200, "OK", Some(sdp)).to_bytes();
            self.outputs.push_back(CallOutput::Send(bytes.clone()));
            self.resend = Some(Resend::new(bytes, now));
        }
    }

    /// Hangs up: BYE, resent until answered (or 32 s).
    pub fn hangup(&mut self, now: Instant) {
        match self.state {
            State::Confirmed | State::Answered | State::Transferring => {
                let bye = self.request(Method::Bye, &[]);
                self.outputs.push_back(CallOutput::Send(bye.clone()));
                self.resend = Some(Resend::over(self.reliable, bye, now));
                self.state = State::Terminating;
            }
            State::Proceeding => {
                self.respond_invite(480, "Temporarily Unavailable", None);
                self.resend = self.last_response.clone().map(|b| Resend::over(self.reliable, b, now));
                self.state = State::Rejected;
            }
            _ => {}
        }
    }

    /// A request of ours in the dialog: to the caller's Contact, From/To
    /// swapped, our tag on From, the next CSeq.
    fn request(&mut self, method: Method, extra: &[(&str, String)]) -> Vec<u8> {
        self.local_cseq += 1;
        let target =
            self.checked.contacts.first().map_or_else(|| self.checked.from.uri.clone(), |c| c.uri.clone());
        let to_header = self.invite.headers.get("to").unwrap_or_default();
        let mut headers = message::Headers::default();
        let branch = self.request_branch();
        // Our requests go the way the caller's INVITE came.
        let transport = self.checked.vias.first().map_or("UDP", |v| v.transport.as_str());
        headers.push("via", format!("SIP/2.0/{transport} {};branch={branch};rport", self.via_host));
        headers.push("max-forwards", "70");
        headers.push("from", format!("{to_header};tag={}", self.local_tag));
        headers.push("to", self.invite.headers.get("from").unwrap_or_default());
        headers.push("call-id", self.checked.call_id.clone());
        headers.push("cseq", format!("{} {method}", self.local_cseq));
        // Record-Route, in order, is the route set of a UAS (RFC 3261 §12.1.1).
        for rr in self.invite.headers.all("record-route") {
            headers.push("route", rr);
        }
        for (name, value) in extra {
            headers.push(name, value.clone());
        }
        Request { method, uri: target, version: "SIP/2.0".into(), headers, body: Vec::new() }.to_bytes()
    }

    /// The branch of our latest request in the dialog.
    fn request_branch(&self) -> String {
        format!("z9hG4bK-vg-{}-{}", self.local_tag, self.local_cseq)
    }

    /// Blind transfer (RFC 3515): REFER the caller to `target`; the call
    /// ends once the caller reports the new call answered (or the transfer
    /// fails, or 32 s pass).
    pub fn transfer(&mut self, now: Instant, target: &str) {
        if self.state != State::Confirmed {
            self.hangup(now);
            return;
        }
        let refer = self.request(
            Method::Refer,
            &[("refer-to", format!("<{target}>")), ("referred-by", format!("<{}>", self.contact))],
        );
        self.outputs.push_back(CallOutput::Send(refer.clone()));
        self.resend = Some(Resend::over(self.reliable, refer, now));
        self.state = State::Transferring;
    }

    /// A message for this call (same Call-ID) from the network.
    pub fn handle_message(&mut self, now: Instant, message: Message) {
        match message {
            Message::Request(r) => self.handle_request(now, r),
            Message::Response(r) => self.handle_response(now, &r),
        }
    }

    fn handle_request(&mut self, now: Instant, r: Request) {
        let caller_tag = self.checked.from.tag();
        let same_invite_tx = branch_of(&r).is_some()
            && branch_of(&r) == branch_of(&self.invite)
            && tag_of(&r.headers, "from").as_deref() == caller_tag;
        let of_invite_tx = same_invite_tx && matches!(r.method, Method::Invite | Method::Cancel);
        if !of_invite_tx && !of_dialog(&r, &self.local_tag, caller_tag) {
            if let Some(refusal) = not_this_dialog(&r, &self.local_tag) {
                self.outputs.push_back(CallOutput::Refuse(refusal));
            }
            return;
        }
        match r.method {
            Method::Invite if same_invite_tx => {
                // A retransmission: say again what we last said.
                if let Some(last) = self.last_response.clone() {
                    self.outputs.push_back(CallOutput::Send(last));
                }
            }
            Method::Invite => {
                if matches!(self.state, State::Confirmed | State::Answered) {
                    let offer = (!r.body.is_empty()).then(|| String::from_utf8_lossy(&r.body).into_owned());
                    self.reinvite = Some(r);
                    self.outputs.push_back(CallOutput::Event(CallEvent::ReInvite { offer }));
                } else {
                    self.respond(&r, 491, "Request Pending");
                }
            }
            Method::Ack => match self.state {
                State::Answered => {
                    self.resend = None;
                    self.state = State::Confirmed;
                    let sdp = (!r.body.is_empty()).then(|| String::from_utf8_lossy(&r.body).into_owned());
                    self.outputs.push_back(CallOutput::Event(CallEvent::Confirmed { sdp }));
                }
                State::Rejected => {
                    let cause = EndCause::Rejected(self.last_status());
                    self.end(cause);
                }
                // The ACK of a re-INVITE's 200.
                State::Confirmed => self.resend = None,
                _ => {}
            },
            Method::Cancel if same_invite_tx => {
                self.respond(&r, 200, "OK");
                if self.state == State::Proceeding {
                    self.respond_invite(487, "Request Terminated", None);
                    self.resend = self.last_response.clone().map(|b| Resend::over(self.reliable, b, now));
                    self.state = State::Rejected;
                    self.outputs.push_back(CallOutput::Event(CallEvent::Ended(EndCause::Cancelled)));
                }
            }
            Method::Bye => {
                self.respond(&r, 200, "OK");
                self.end(EndCause::RemoteBye);
            }
            Method::Info => {
                self.respond(&r, 200, "OK");
                if let Some(key) = dtmf_from_info(&r) {
                    self.outputs.push_back(CallOutput::Event(CallEvent::Dtmf(key)));
                }
            }
            Method::Notify if self.state == State::Transferring => {
                self.respond(&r, 200, "OK");
                // The body is a sipfrag of the new call's status line (RFC 3515 §2.4.5).
                let status = String::from_utf8_lossy(&r.body)
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse::<u16>().ok());
                match status {
                    Some(200..=299) => {
                        self.transferred = true;
                        self.state = State::Confirmed;
                        self.hangup(now);
                    }
                    Some(300..) => self.transfer_failed(now),
                    _ => {}
                }
            }
            Method::Options | Method::Notify => self.respond(&r, 200, "OK"),
            _ => self.respond(&r, 405, "Method Not Allowed"),
        }
    }

    fn last_status(&self) -> u16 {
        self.last_response
            .as_deref()
            .and_then(|b| b.get(8..11))
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    fn handle_response(&mut self, now: Instant, r: &Response) {
        let Some(cseq) = r.headers.get("cseq").and_then(|c| message::CSeq::parse(c).ok()) else { return };
        if cseq.seq != self.local_cseq || r.status < 200 {
            return;
        }
        // Only the answer to the request we sent (its branch), not a look-alike.
        if top_branch(&r.headers).as_deref() != Some(self.request_branch().as_str()) {
            return;
        }
        match (self.state, cseq.method.as_str()) {
            (State::Terminating, "BYE") => {
                let cause = if self.transferred { EndCause::Transferred } else { EndCause::LocalHangup };
                self.end(cause);
            }
            // 202 Accepted: the caller now calls the target; NOTIFYs tell how it goes.
            (State::Transferring, "REFER") if r.status < 300 => {
                self.resend = Some(Resend { next: now + TIMEOUT, ..Resend::new(Vec::new(), now) });
            }
            (State::Transferring, "REFER") => self.transfer_failed(now),
            _ => {}
        }
    }

    fn transfer_failed(&mut self, now: Instant) {
        self.outputs.push_back(CallOutput::Event(CallEvent::Ended(EndCause::TransferFailed)));
        self.hangup(now);
        self.state = State::Ended;
    }

    /// When [`InboundCall::handle_timeout`] is next due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.resend.as_ref().map(|r| r.next.min(r.give_up))
    }

    /// Resends what is unanswered; gives up after 32 s.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(resend) = self.resend.as_mut() else { return };
        if now >= resend.give_up {
            match self.state {
                State::Answered => {
                    // No ACK: the dialog is confirmed and at once ended (RFC 3261 §13.3.1.4).
                    self.state = State::Confirmed;
                    self.hangup(now);
                    self.resend = None;
                    self.end(EndCause::NoAck);
                }
                State::Rejected => {
                    let cause = EndCause::Rejected(self.last_status());
                    self.end(cause);
                }
                State::Terminating => self.end(EndCause::LocalHangup),
                State::Transferring => self.transfer_failed(now),
                _ => self.resend = None,
            }
            return;
        }
        if now >= resend.next {
            self.outputs.push_back(CallOutput::Send(resend.bytes.clone()));
            resend.interval = (resend.interval * 2).min(T2);
            resend.next = now + resend.interval;
        }
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<CallOutput> {
        self.outputs.pop_front()
    }
}

/// The digit of an INFO carrying `application/dtmf-relay` (`Signal=5`) or
/// `application/dtmf` (`5`).
fn dtmf_from_info(r: &Request) -> Option<char> {
    let ct = r.headers.get("content-type")?.to_ascii_lowercase();
    let body = String::from_utf8_lossy(&r.body);
    let value = if ct.starts_with("application/dtmf-relay") {
        body.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then(|| v.trim().to_owned())
        })?
    } else if ct.starts_with("application/dtmf") {
        body.trim().to_owned()
    } else {
        return None;
    };
    let c = value.chars().next()?;
    (value.chars().count() == 1 && "0123456789*#ABCDabcd".contains(c)).then(|| c.to_ascii_uppercase())
}
