//! The inbound call on a simulated clock, and against a caller (a scripted
//! one, and our own outbound call) over a lossy in-memory network.

use std::time::{Duration, Instant};

use super::*;
use crate::check::check_request;
use crate::message::{Framing, Message, parse};

const SDP: &str =
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

fn invite_text(branch: &str) -> String {
    format!(
        "INVITE sip:1000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}\r\n\
         From: \"Caller\" <sip:caller@127.0.0.1>;tag=c1\r\nTo: <sip:1000@127.0.0.1>\r\nCall-ID: call-1\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:caller@127.0.0.1:5070>\r\nMax-Forwards: 70\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
}

fn request(text: &str) -> Request {
    match parse(text.as_bytes(), Framing::Datagram) {
        Ok(Message::Request(r)) => r,
        other => panic!("{other:?}"),
    }
}

fn in_dialog(method: &str, cseq: u32, branch: &str, extra: &str, body: &str) -> Message {
    Message::Request(request(&format!(
        "{method} sip:voxgate@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}\r\n\
         From: <sip:caller@127.0.0.1>;tag=c1\r\nTo: <sip:1000@127.0.0.1>;tag=t1\r\nCall-ID: call-1\r\n\
         CSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )))
}

struct H {
    call: InboundCall,
    now: Instant,
}

impl H {
    fn new() -> Self {
        let invite = request(&invite_text("z9hG4bK-inv"));
        let checked = check_request(&invite).expect("valid");
        Self {
            call: InboundCall::new(invite, checked, "t1", "sip:voxgate@127.0.0.1:5060", "127.0.0.1:5060"),
            now: Instant::now(),
        }
    }

    /// Drains outputs: (status or method of each message sent, events).
    fn take(&mut self) -> (Vec<String>, Vec<CallEvent>) {
        let (mut sent, mut events) = (Vec::new(), Vec::new());
        while let Some(o) = self.call.poll_output() {
            match o {
                // A refusal goes to its sender, not the caller: marked "to sender".
                CallOutput::Refuse(bytes) => sent.push(match parse(&bytes, Framing::Datagram) {
                    Ok(Message::Response(r)) => format!("{} to sender", r.status),
                    other => panic!("refused with {other:?}"),
                }),
                CallOutput::Send(bytes) => sent.push(match parse(&bytes, Framing::Datagram) {
                    Ok(Message::Response(r)) => r.status.to_string(),
                    Ok(Message::Request(r)) => r.method.to_string(),
                    Err(e) => panic!("we sent something unparseable: {e}"),
                }),
                CallOutput::Event(e) => events.push(e),
            }
        }
        (sent, events)
    }

    fn advance(&mut self, ms: u64) {
        let target = self.now + Duration::from_millis(ms);
        while let Some(t) = self.call.poll_timeout().filter(|&t| t <= target) {
            self.now = self.now.max(t);
            self.call.handle_timeout(self.now);
        }
        self.now = target;
    }

    fn ack(&mut self) {
        self.call.handle_message(self.now, in_dialog("ACK", 1, "z9hG4bK-ack", "", ""));
    }
}

/// An inbound call whose INVITE came over TCP.
fn over_tcp() -> H {
    let invite = request(&invite_text("z9hG4bK-inv").replace("SIP/2.0/UDP", "SIP/2.0/TCP"));
    let checked = check_request(&invite).expect("valid");
    H {
        call: InboundCall::new(
            invite,
            checked,
            "t1",
            "sip:voxgate@127.0.0.1:5060;transport=tcp",
            "127.0.0.1:5060",
        )
        .over_connection(),
        now: Instant::now(),
    }
}

#[test]
fn over_a_connection_only_the_200_is_resent() {
    // A refusal is sent once, and the call ends at Timer H without its ACK.
    let mut h = over_tcp();
    h.call.reject(h.now, 486, "Busy Here");
    assert_eq!(h.take().0, strs(&["100", "486"]));
    h.advance(31_000);
    assert_eq!(h.take().0, Vec::<String>::new(), "no Timer G over TCP");
    h.advance(1_000);
    assert!(h.call.is_ended());
    // The 200 is resent until the ACK, whatever the transport (RFC 3261 §13.3.1.4) ...
    let mut h = over_tcp();
    h.call.answer(h.now, "v=0\r\n");
    h.advance(1_500);
    assert_eq!(h.take().0, strs(&["100", "200", "200", "200"]));
    h.ack();
    h.take();
    // ... but our BYE is not.
    h.call.hangup(h.now);
    assert_eq!(h.take().0, strs(&["BYE"]));
    h.advance(31_000);
    assert_eq!(h.take().0, Vec::<String>::new(), "no Timer E over TCP");
    h.advance(1_000);
    assert!(h.call.is_ended());
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn trying_ringing_answer_resent_until_ack_then_bye_from_the_caller() {
    let mut h = H::new();
    h.call.ring();
    h.call.answer(h.now, "v=0\r\n");
    assert_eq!(h.take().0, strs(&["100", "180", "200"]));
    h.advance(500);
    h.advance(1000);
    assert_eq!(h.take().0, strs(&["200", "200"]), "resent at T1 then 2*T1");
    h.ack();
    assert_eq!(h.take().1, vec![CallEvent::Confirmed { sdp: None }]);
    h.advance(10_000);
    assert_eq!(h.take().0, Vec::<String>::new(), "no more resends after the ACK");
    h.call.handle_message(h.now, in_dialog("BYE", 2, "z9hG4bK-bye", "", ""));
    assert_eq!(h.take(), (strs(&["200"]), vec![CallEvent::Ended(EndCause::RemoteBye)]));
    assert!(h.call.is_ended());
}

#[test]
fn a_retransmitted_invite_gets_the_last_response_again() {
    let mut h = H::new();
    h.take();
    h.call.handle_message(h.now, Message::Request(request(&invite_text("z9hG4bK-inv"))));
    assert_eq!(h.take().0, strs(&["100"]));
}

#[test]
fn cancel_before_the_answer_is_487_resent_until_acked() {
    let mut h = H::new();
    h.take();
    let cancel = in_dialog("CANCEL", 1, "z9hG4bK-inv", "", "");
    h.call.handle_message(h.now, cancel);
    assert_eq!(h.take(), (strs(&["200", "487"]), vec![CallEvent::Ended(EndCause::Cancelled)]));
    h.advance(500);
    assert_eq!(h.take().0, strs(&["487"]));
    h.ack();
    h.advance(10_000);
    assert_eq!(h.take().0, Vec::<String>::new());
}

#[test]
fn a_refusal_carries_its_extra_headers_and_is_resent_whole_until_acked() {
    let mut h = H::new();
    h.take();
    h.call.reject_with(h.now, 503, "Service Unavailable", &[("Retry-After", "30".to_owned())]);
    let mut refusals = || {
        let mut seen = Vec::new();
        while let Some(o) = h.call.poll_output() {
            if let CallOutput::Send(bytes) = o
                && let Ok(Message::Response(r)) = parse(&bytes, Framing::Datagram)
            {
                seen.push((r.status, r.headers.get("retry-after").map(str::to_owned)));
            }
        }
        seen
    };
    assert_eq!(refusals(), [(503, Some("30".to_owned()))]);
    h.advance(500);
    let resent: Vec<_> = std::iter::from_fn(|| h.call.poll_output()).collect();
    let Some(CallOutput::Send(bytes)) = resent.first() else { panic!("not resent: {resent:?}") };
    assert!(String::from_utf8_lossy(bytes).contains("Retry-After: 30"), "the resend lost the header");
    h.ack();
    h.advance(10_000);
    assert_eq!(h.take().0, Vec::<String>::new());
}

#[test]
fn without_an_ack_the_call_is_ended_with_a_bye_after_32_s() {
    let mut h = H::new();
    h.call.answer(h.now, "v=0\r\n");
    h.take();
    h.advance(31_999);
    let (sent, events) = h.take();
    assert!(sent.iter().all(|s| s == "200") && sent.len() >= 7, "{sent:?}");
    assert!(events.is_empty());
    h.advance(1);
    assert_eq!(h.take(), (strs(&["BYE"]), vec![CallEvent::Ended(EndCause::NoAck)]));
}

#[test]
fn our_bye_is_resent_until_answered() {
    let mut h = H::new();
    h.call.answer(h.now, "v=0\r\n");
    h.ack();
    h.take();
    h.call.hangup(h.now);
    assert_eq!(h.take().0, strs(&["BYE"]));
    h.advance(500);
    assert_eq!(h.take().0, strs(&["BYE"]));
    let ok = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-vg-t1-1\r\nFrom: <sip:1000@127.0.0.1>;tag=t1\r\n\
         To: <sip:caller@127.0.0.1>;tag=c1\r\nCall-ID: call-1\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n";
    let Ok(ok) = parse(ok.as_bytes(), Framing::Datagram) else { panic!() };
    h.call.handle_message(h.now, ok);
    assert_eq!(h.take().1, vec![CallEvent::Ended(EndCause::LocalHangup)]);
}

#[test]
fn the_bye_goes_to_the_callers_contact_with_the_tags_swapped() {
    let mut h = H::new();
    h.call.answer(h.now, "v=0\r\n");
    h.ack();
    h.take();
    h.call.hangup(h.now);
    let Some(CallOutput::Send(bye)) = h.call.poll_output() else { panic!() };
    let text = String::from_utf8(bye).expect("utf8");
    assert!(text.starts_with("BYE sip:caller@127.0.0.1:5070 SIP/2.0\r\n"), "{text}");
    assert!(
        text.contains("From: <sip:1000@127.0.0.1>;tag=t1\r\n")
            && text.contains("To: \"Caller\" <sip:caller@127.0.0.1>;tag=c1\r\n"),
        "{text}"
    );
}

#[test]
fn info_dtmf_and_reinvite_for_hold() {
    let mut h = H::new();
    h.call.answer(h.now, "v=0\r\n");
    h.ack();
    h.take();
    h.call.handle_message(
        h.now,
        in_dialog(
            "INFO",
            2,
            "z9hG4bK-i",
            "Content-Type: application/dtmf-relay\r\n",
            "Signal=5\r\nDuration=160\r\n",
        ),
    );
    assert_eq!(h.take(), (strs(&["200"]), vec![CallEvent::Dtmf('5')]));
    let hold = SDP.replace("m=audio", "a=sendonly\r\nm=audio");
    h.call.handle_message(
        h.now,
        in_dialog("INVITE", 3, "z9hG4bK-re", "Content-Type: application/sdp\r\n", &hold),
    );
    let (sent, events) = h.take();
    assert!(sent.is_empty());
    assert_eq!(events, vec![CallEvent::ReInvite { offer: Some(hold) }]);
    h.call.answer_reinvite(h.now, "v=0\r\n");
    assert_eq!(h.take().0, strs(&["200"]));
}

/// A caller over a network that loses 30 % of datagrams each way: it
/// resends its INVITE (Timer A) and its ACK on every 200 it gets. The call
/// is confirmed every time, well within 32 s.
#[test]
fn over_a_lossy_network_the_call_is_still_confirmed() {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut lost = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % 10 < 3
    };
    for _ in 0..200 {
        let mut h = H::new();
        h.call.answer(h.now, "v=0\r\n");
        let start = h.now;
        let mut invite_retry = T1;
        let mut next_invite = h.now + invite_retry;
        let mut confirmed = false;
        while h.now - start < Duration::from_secs(32) && !confirmed {
            // Responses that reach the caller make it ACK (2xx) — the ACK may be lost too.
            while let Some(o) = h.call.poll_output() {
                match o {
                    CallOutput::Send(bytes) if bytes.starts_with(b"SIP/2.0 200") && !lost() && !lost() => {
                        h.ack()
                    }
                    CallOutput::Event(CallEvent::Confirmed { .. }) => confirmed = true,
                    _ => {}
                }
            }
            if h.now >= next_invite {
                if !lost() {
                    h.call.handle_message(h.now, Message::Request(request(&invite_text("z9hG4bK-inv"))));
                }
                invite_retry = (invite_retry * 2).min(T2);
                next_invite = h.now + invite_retry;
            }
            h.advance(50);
        }
        assert!(confirmed, "not confirmed within 32 s");
    }
}

/// The caller's answer to our request `cseq` ("2 BYE"), on that request's branch.
fn response(status: &str, cseq: &str) -> Message {
    let seq = cseq.split_whitespace().next().unwrap_or_default();
    response_on(status, cseq, &format!("z9hG4bK-vg-t1-{seq}"))
}

fn response_on(status: &str, cseq: &str, branch: &str) -> Message {
    let text = format!(
        "SIP/2.0 {status}\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\nFrom: <sip:1000@127.0.0.1>;tag=t1\r\n\
         To: <sip:caller@127.0.0.1>;tag=c1\r\nCall-ID: call-1\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n"
    );
    parse(text.as_bytes(), Framing::Datagram).expect("response")
}

#[test]
fn blind_transfer_refers_then_hangs_up_when_the_new_call_is_answered() {
    let mut h = H::new();
    h.call.answer(h.now, "v=0\r\n");
    h.ack();
    h.take();
    h.call.transfer(h.now, "sip:desk@127.0.0.1");
    let Some(CallOutput::Send(refer)) = h.call.poll_output() else { panic!() };
    let refer = String::from_utf8(refer).expect("utf8");
    assert!(
        refer.starts_with("REFER sip:caller@127.0.0.1:5070 SIP/2.0")
            && refer.contains("Refer-To: <sip:desk@127.0.0.1>"),
        "{refer}"
    );
    h.call.handle_message(h.now, response("202 Accepted", "1 REFER"));
    h.advance(2000);
    assert_eq!(h.take().0, Vec::<String>::new(), "no resends once accepted");
    let trying = "SIP/2.0 100 Trying";
    h.call.handle_message(
        h.now,
        in_dialog("NOTIFY", 2, "z9hG4bK-n1", "Event: refer\r\nContent-Type: message/sipfrag\r\n", trying),
    );
    assert_eq!(h.take().0, strs(&["200"]));
    h.call.handle_message(
        h.now,
        in_dialog(
            "NOTIFY",
            3,
            "z9hG4bK-n2",
            "Event: refer\r\nContent-Type: message/sipfrag\r\n",
            "SIP/2.0 200 OK",
        ),
    );
    assert_eq!(h.take().0, strs(&["200", "BYE"]));
    h.call.handle_message(h.now, response("200 OK", "2 BYE"));
    assert_eq!(h.take().1, vec![CallEvent::Ended(EndCause::Transferred)]);
}

/// Requests that name the call's Call-ID but not its dialog.
fn stranger(method: &str, from_tag: &str, to_tag: &str) -> Message {
    let to_tag = if to_tag.is_empty() { String::new() } else { format!(";tag={to_tag}") };
    Message::Request(request(&format!(
        "{method} sip:voxgate@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6666;branch=z9hG4bK-evil\r\n\
         From: <sip:caller@127.0.0.1>;tag={from_tag}\r\nTo: <sip:1000@127.0.0.1>{to_tag}\r\nCall-ID: call-1\r\n\
         CSeq: 9 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )))
}

#[test]
fn requests_with_the_call_id_but_not_both_dialog_tags_get_481_and_change_nothing() {
    let mut h = H::new();
    h.call.answer(h.now, "v=0\r\n");
    h.ack();
    h.take();
    for (method, from, to) in [
        ("BYE", "someone-else", "t1"), // not the caller's tag
        ("BYE", "c1", "guess"),        // not our tag
        ("BYE", "c1", ""),             // no dialog at all
        ("INVITE", "c1", ""),          // a new INVITE reusing the Call-ID
        ("INFO", "x", "t1"),           // a digit injected
        ("REFER", "c1", "vg1"),        // a counter-like tag
        ("CANCEL", "c1", ""),          // not the INVITE's branch
    ] {
        h.call.handle_message(h.now, stranger(method, from, to));
        assert_eq!(h.take(), (strs(&["481 to sender"]), vec![]), "{method} from {from:?} to {to:?}");
    }
    // An ACK is never answered; a stranger's changes nothing either.
    h.call.handle_message(h.now, stranger("ACK", "x", "t1"));
    assert_eq!(h.take(), (vec![], vec![]));
    assert!(!h.call.is_ended());
    // The caller's own BYE, with both tags, ends it.
    h.call.handle_message(h.now, in_dialog("BYE", 2, "z9hG4bK-bye", "", ""));
    assert_eq!(h.take(), (strs(&["200"]), vec![CallEvent::Ended(EndCause::RemoteBye)]));
}

#[test]
fn only_the_answer_on_our_requests_branch_counts() {
    let mut h = H::new();
    h.call.answer(h.now, "v=0\r\n");
    h.ack();
    h.call.hangup(h.now);
    h.take();
    // Right Call-ID and CSeq, another branch: not the answer to our BYE.
    h.call.handle_message(h.now, response_on("200 OK", "1 BYE", "z9hG4bK-forged"));
    assert_eq!(h.take(), (vec![], vec![]));
    assert!(!h.call.is_ended());
    h.call.handle_message(h.now, response("200 OK", "1 BYE"));
    assert_eq!(h.take().1, vec![CallEvent::Ended(EndCause::LocalHangup)]);
}

#[test]
fn a_refused_transfer_hangs_up() {
    let mut h = H::new();
    h.call.answer(h.now, "v=0\r\n");
    h.ack();
    h.take();
    h.call.transfer(h.now, "sip:desk@127.0.0.1");
    h.take();
    h.call.handle_message(h.now, response("603 Declined", "1 REFER"));
    let (sent, events) = h.take();
    assert_eq!((sent, events), (strs(&["BYE"]), vec![CallEvent::Ended(EndCause::TransferFailed)]));
}

/// Our two state machines talk to each other: an outbound call (UAC) to an
/// inbound one (UAS), over a network that loses 25 % of datagrams each way
/// and delays each by 5..60 ms (so some overtake others). Every call is
/// set up, confirmed on both sides, and hung up cleanly.
#[test]
fn outbound_to_inbound_over_a_lossy_reordering_network() {
    use super::outbound::{Dial, OutboundCall, OutboundEvent, OutboundOutput, Outcome};
    use crate::message::Uri;

    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut random = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let (mut total_sent, mut total_lost) = (0, 0);
    for round in 0..200 {
        let start = Instant::now();
        let mut now = start;
        let dial = Dial {
            target: Uri::parse("sip:1000@127.0.0.1:5060").expect("uri"),
            from: Uri::parse("sip:voxgate@127.0.0.1:5070").expect("uri"),
            contact: "sip:voxgate@127.0.0.1:5070".into(),
            via_host: "127.0.0.1:5070".into(),
            transport: "UDP".into(),
            credentials: None,
            realm: None,
            ring_timeout: Duration::from_secs(30),
        };
        let mut uac = OutboundCall::new(now, dial, &format!("lossy-{round}"), "uac", SDP);
        let mut uas: Option<InboundCall> = None;
        // In flight: (delivered at, to the UAS?, bytes).
        let mut wire: Vec<(Instant, bool, Vec<u8>)> = Vec::new();
        let (mut sent, mut lost) = (0, 0);
        let (mut answered, mut confirmed, mut hung_up) = (false, false, false);
        let (mut uac_end, mut uas_end) = (None, None);
        while now - start < Duration::from_secs(120) && (uac_end.is_none() || uas_end.is_none()) {
            // Send what each side has to send (a quarter is lost, the rest
            // delayed); record what happened.
            let mut outgoing = Vec::new();
            while let Some(o) = uac.poll_output() {
                match o {
                    OutboundOutput::Send(b) => outgoing.push((true, b)),
                    OutboundOutput::Refuse(b) => panic!("the UAC refused: {}", String::from_utf8_lossy(&b)),
                    OutboundOutput::Event(OutboundEvent::Answered { .. }) => answered = true,
                    OutboundOutput::Event(OutboundEvent::Ended(o)) => uac_end = Some(o),
                    OutboundOutput::Event(_) => {}
                }
            }
            if let Some(call) = uas.as_mut() {
                while let Some(o) = call.poll_output() {
                    match o {
                        CallOutput::Send(b) => outgoing.push((false, b)),
                        CallOutput::Refuse(b) => panic!("the UAS refused: {}", String::from_utf8_lossy(&b)),
                        CallOutput::Event(CallEvent::Confirmed { .. }) => confirmed = true,
                        CallOutput::Event(CallEvent::Ended(c)) => uas_end = Some(c),
                        CallOutput::Event(_) => {}
                    }
                }
            }
            for (to_uas, bytes) in outgoing {
                sent += 1;
                if random(4) == 0 {
                    lost += 1;
                } else {
                    wire.push((now + Duration::from_millis(5 + random(56)), to_uas, bytes));
                }
            }
            // Deliver what is due.
            let (due, later): (Vec<_>, Vec<_>) = wire.drain(..).partition(|(at, _, _)| *at <= now);
            wire = later;
            for (_, to_uas, bytes) in due {
                let Ok(message) = parse(&bytes, Framing::Datagram) else { panic!("unparseable") };
                if !to_uas {
                    uac.handle_message(now, &message);
                    continue;
                }
                match (uas.as_mut(), message) {
                    (Some(call), m) => call.handle_message(now, m),
                    (None, Message::Request(r)) if r.method == Method::Invite => {
                        let checked = check_request(&r).expect("our INVITE is valid");
                        let mut call =
                            InboundCall::new(r, checked, "uas", "sip:agent@127.0.0.1:5060", "127.0.0.1:5060");
                        call.answer(now, SDP);
                        uas = Some(call);
                    }
                    // Nothing to do with it before the INVITE arrives.
                    (None, _) => {}
                }
            }
            if answered && confirmed && !hung_up {
                hung_up = true;
                uac.hangup(now);
            }
            now += Duration::from_millis(5);
            if uac.poll_timeout().is_some_and(|t| t <= now) {
                uac.handle_timeout(now);
            }
            if let Some(call) = uas.as_mut()
                && call.poll_timeout().is_some_and(|t| t <= now)
            {
                call.handle_timeout(now);
            }
        }
        assert!(answered && confirmed, "round {round}: answered {answered}, confirmed {confirmed}");
        assert_eq!(uac_end, Some(Outcome::Completed { by_remote: false }), "round {round}");
        assert_eq!(uas_end, Some(EndCause::RemoteBye), "round {round}");
        total_sent += sent;
        total_lost += lost;
    }
    assert!(total_lost * 5 > total_sent, "the network lost {total_lost} of {total_sent}");
}
