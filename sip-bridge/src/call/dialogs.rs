//! Which dialog a message belongs to, as a table key. Our own calls and
//! registrations are keyed by their Call-ID (we chose it, at random). A
//! caller's call is keyed by its Call-ID and the caller's tag: callers
//! choose Call-IDs, and two may choose the same one at once. The dialog
//! found then checks both tags itself (RFC 3261 §12.2.2).

use crate::message::{Message, NameAddr};

/// A caller's call: its Call-ID and the caller's (From) tag.
#[must_use]
pub fn caller_key(call_id: &str, caller_tag: &str) -> String {
    format!("{call_id}\n{caller_tag}")
}

/// The keys `msg` may belong to, in the order to try them: its Call-ID,
/// then a caller's call by the Call-ID with the From tag (the caller's
/// requests) or with the To tag (answers to our requests in that call).
#[must_use]
pub fn keys(msg: &Message) -> Vec<String> {
    let headers = match msg {
        Message::Request(r) => &r.headers,
        Message::Response(r) => &r.headers,
    };
    let Some(call_id) = headers.get("call-id") else { return Vec::new() };
    let tag = |name: &'static str| {
        headers.get(name).and_then(|v| NameAddr::parse(v, name).ok()).and_then(|n| n.tag().map(str::to_owned))
    };
    let mut keys = vec![call_id.to_owned()];
    keys.extend(["from", "to"].into_iter().filter_map(tag).map(|t| caller_key(call_id, &t)));
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Framing, parse};

    fn message(text: &str) -> Message {
        parse(text.as_bytes(), Framing::Datagram).expect("a message")
    }

    #[test]
    fn a_callers_requests_and_the_answers_to_ours_find_the_callers_call() {
        let bye = message(
            "BYE sip:v@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
             From: <sip:a@127.0.0.1>;tag=caller\r\nTo: <sip:1000@127.0.0.1>;tag=ours\r\nCall-ID: same@host\r\n\
             CSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        );
        let table = [caller_key("same@host", "caller"), caller_key("same@host", "other-caller")];
        let found: Vec<&String> = keys(&bye).iter().filter_map(|k| table.iter().find(|t| *t == k)).collect();
        assert_eq!(found, [&table[0]], "the caller's own call, not another caller's of the same Call-ID");
        // The answer to our BYE in that call: its To tag is the caller's.
        let answer = message(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK2\r\n\
             From: <sip:1000@127.0.0.1>;tag=ours\r\nTo: <sip:a@127.0.0.1>;tag=caller\r\nCall-ID: same@host\r\n\
             CSeq: 3 BYE\r\nContent-Length: 0\r\n\r\n",
        );
        assert!(keys(&answer).contains(&table[0]));
        assert_eq!(keys(&answer)[0], "same@host", "our own dialogs are found by the Call-ID first");
    }
}
