//! What each fuzz target checks, as plain functions: the libFuzzer targets
//! (`fuzz_targets/`) call them, and so can a test over the seed corpora.
//! Each must never panic, whatever the bytes; where a parser's output can be
//! printed, the printed form must parse again.

use voxgate_sip_bridge::message::{self, Framing, Message};

/// A SIP message, as a datagram and as a stream; a parsed one, printed,
/// parses again to the same start line.
pub fn sip_message(data: &[u8]) {
    for framing in [Framing::Datagram, Framing::Stream] {
        let Ok(parsed) = message::parse(data, framing) else { continue };
        let printed = match &parsed {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        };
        let again = message::parse(&printed, Framing::Stream).unwrap_or_else(|e| {
            panic!("printed message does not parse: {e}\n{}", String::from_utf8_lossy(&printed))
        });
        match (&parsed, &again) {
            (Message::Request(a), Message::Request(b)) => {
                assert_eq!((&a.method, &a.uri), (&b.method, &b.uri))
            }
            (Message::Response(a), Message::Response(b)) => assert_eq!(a.status, b.status),
            _ => panic!("a request printed as a response, or the other way"),
        }
    }
}

/// An SDP body; a parsed one, printed, parses again.
pub fn sdp(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(parsed) = voxgate_sip_bridge::sdp::Sdp::parse(text) else { return };
    let printed = parsed.to_text();
    if let Err(e) = voxgate_sip_bridge::sdp::Sdp::parse(&printed) {
        panic!("printed SDP does not parse: {e}\n{printed}");
    }
}

/// An RTP datagram; a parsed one's payload lies within it.
pub fn rtp(data: &[u8]) {
    if let Ok(packet) = voxgate_sip_bridge::rtp::RtpPacket::parse(data) {
        assert!(packet.payload.len() <= data.len());
    }
}

/// An RTCP compound packet.
pub fn rtcp(data: &[u8]) {
    let _ = voxgate_sip_bridge::rtp::rtcp::parse(data);
}

/// An RFC 4733 telephone-event payload.
pub fn rfc4733(data: &[u8]) {
    let _ = voxgate_codecs::dtmf::TelephoneEvent::decode(data);
}

/// A WAV file's first bytes, as a recording left by a crash is read before
/// it is repaired: the header parses or is refused, and what it points at
/// lies within the bytes; hound (which serves recordings) reads the same
/// bytes without panicking.
pub fn wav(data: &[u8]) {
    if let Ok((size_at, rate, align)) = voxgate_codecs::wav::parse_header(data) {
        assert!(size_at + 4 <= data.len(), "the data size field lies outside the header");
        assert!(rate > 0 && align > 0);
    }
    if let Ok(reader) = hound::WavReader::new(std::io::Cursor::new(data)) {
        // Bounded: a header may claim gigabytes the bytes do not hold.
        for sample in reader.into_samples::<i32>().take(4096) {
            if sample.is_err() {
                break;
            }
        }
    }
}

/// Websocket media messages, one per line, through each protocol (Twilio
/// Media Streams, plain JSON) as one stream: each parses or is refused,
/// and what the server then writes back is JSON.
pub fn websocket(data: &[u8]) {
    use voxgate_streams::{Incoming, Protocol, Speaker, json::Json, twilio::Twilio};
    let Ok(text) = std::str::from_utf8(data) else { return };
    let protocols: [Box<dyn Protocol>; 2] = [Box::new(Twilio::default()), Box::new(Json::default())];
    for mut p in protocols {
        for line in text.lines() {
            if let Ok(Incoming::Start { .. }) = p.parse(line) {
                let _ = p.started("fuzz-call");
            }
        }
        let replies = [
            p.audio(&[0x55; 320]),
            Some(p.clear()),
            Some(p.mark("m")),
            p.transcript(Speaker::Agent, "hi", true),
        ];
        for reply in replies.into_iter().flatten() {
            if let Err(e) = serde_json::from_str::<serde_json::Value>(&reply) {
                panic!("the server would write invalid JSON ({e}): {reply}");
            }
        }
    }
}
