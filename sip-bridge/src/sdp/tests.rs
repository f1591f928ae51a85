use std::net::{IpAddr, Ipv4Addr};

use super::*;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const ALL: &[Codec] = &[Codec::G722, Codec::Pcmu, Codec::Pcma, Codec::Opus];

/// What baresip offers (g711 + opus + telephone-event).
const BARESIP: &str = "v=0\r\no=- 2390 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 10004 RTP/AVP 96 0 8 101\r\na=rtpmap:96 opus/48000/2\r\na=fmtp:96 stereo=1;sprop-stereo=1\r\n\
a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n\
a=ptime:20\r\na=sendrecv\r\n";

#[test]
fn the_callers_first_codec_wins_with_dtmf_alongside() {
    let offer = Sdp::parse(BARESIP).expect("valid");
    let (answer, n) = answer(&offer, ALL, LOCAL, 20_000, Srtp::Off).expect("common codec");
    assert_eq!((n.codec, n.payload_type), (Codec::Opus, 96));
    // telephone-event/8000 does not go with Opus' 48 kHz clock.
    assert_eq!(n.dtmf_payload_type, None);
    assert_eq!(n.remote, Some("127.0.0.1:10004".parse().expect("addr")));
    let text = answer.to_text();
    assert!(
        text.contains("m=audio 20000 RTP/AVP 96\r\n") && text.contains("a=rtpmap:96 opus/48000/2"),
        "{text}"
    );
    assert_eq!(Sdp::parse(&text).expect("our answer parses").media[0].port, 20_000);

    let (_, g711) =
        super::answer(&offer, &[Codec::Pcmu, Codec::Pcma], LOCAL, 20_000, Srtp::Off).expect("PCMU");
    assert_eq!((g711.codec, g711.payload_type, g711.dtmf_payload_type), (Codec::Pcmu, 0, Some(101)));
}

#[test]
fn static_payload_types_need_no_rtpmap() {
    let offer =
        Sdp::parse("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 8\r\n")
            .expect("valid");
    let (_, n) = answer(&offer, ALL, LOCAL, 1, Srtp::Off).expect("PCMA");
    assert_eq!(n.codec, Codec::Pcma);
}

#[test]
fn hold_is_answered_in_kind() {
    let sendonly = BARESIP.replace("a=sendrecv", "a=sendonly");
    let (a, n) = answer(&Sdp::parse(&sendonly).expect("valid"), ALL, LOCAL, 1, Srtp::Off).expect("ok");
    assert_eq!(n.direction, Direction::RecvOnly);
    assert!(a.to_text().contains("a=recvonly"));
    let old_style = BARESIP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
    let (_, n) = answer(&Sdp::parse(&old_style).expect("valid"), ALL, LOCAL, 1, Srtp::Off).expect("ok");
    assert_eq!((n.direction, n.remote), (Direction::Inactive, None));
}

#[test]
fn no_common_codec_and_bad_sdp_are_errors() {
    let g729 = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 18\r\n";
    assert_eq!(
        answer(&Sdp::parse(g729).expect("valid"), ALL, LOCAL, 1, Srtp::Off),
        Err(SdpError::NoCommonCodec)
    );
    assert!(Sdp::parse("hello").is_err());
    assert!(Sdp::parse("v=0\r\nm=audio x RTP/AVP 0\r\n").is_err());
    assert!(Sdp::parse("v=0\r\nc=IN IP4 not-an-ip\r\n").is_err());
}

#[test]
fn video_is_refused_with_port_zero_and_audio_kept() {
    let text = format!("{BARESIP}m=video 10006 RTP/AVP 97\r\na=rtpmap:97 H264/90000\r\n");
    let (a, _) = answer(&Sdp::parse(&text).expect("valid"), ALL, LOCAL, 30_000, Srtp::Off).expect("ok");
    assert_eq!(a.media.len(), 2);
    assert_eq!((a.media[1].kind.as_str(), a.media[1].port), ("video", 0));
}

#[test]
fn our_offer_parses_and_answers_itself() {
    let o = offer(LOCAL, 12_000, 7, Srtp::Off);
    let parsed = Sdp::parse(&o.to_text()).expect("valid");
    assert_eq!(parsed, o, "print then parse is the identity");
    let (_, n) = answer(&parsed, ALL, LOCAL, 1, Srtp::Off).expect("ok");
    assert_eq!((n.codec, n.payload_type, n.dtmf_payload_type), (Codec::G722, 9, Some(101)));
}

#[test]
fn a_wideband_codec_is_taken_before_the_callers_g711() {
    let offered = |formats: &str| {
        let text = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio 10004 RTP/AVP {formats} 101\r\na=rtpmap:101 telephone-event/8000\r\n"
        );
        let (a, n) = answer(&Sdp::parse(&text).expect("valid"), ALL, LOCAL, 30_000, Srtp::Off).expect("ok");
        (n.codec, a.media[0].formats.clone(), n.dtmf_payload_type)
    };
    // G.722 by its static payload type 9, with no rtpmap (RFC 3551).
    let g722 = (Codec::G722, vec!["9".to_owned(), "101".to_owned()], Some(101));
    assert_eq!(offered("0 8 9"), g722);
    assert_eq!(offered("9 0"), g722);
    assert_eq!(offered("8 0").0, Codec::Pcma, "else the caller's first");
    // A peer without G.722 among ours: not chosen.
    let (_, n) = answer(
        &Sdp::parse(&offer(LOCAL, 1, 1, Srtp::Off).to_text()).expect("valid"),
        &[Codec::Pcmu],
        LOCAL,
        1,
        Srtp::Off,
    )
    .expect("ok");
    assert_eq!(n.codec, Codec::Pcmu);
}

#[test]
fn an_answer_to_our_offer_is_read() {
    let ours = offer(LOCAL, 12_000, 7, Srtp::Off);
    let theirs = "v=0\r\no=- 1 1 IN IP4 10.0.0.2\r\nc=IN IP4 10.0.0.2\r\nm=audio 5004 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";
    let n = accept_answer(&Sdp::parse(theirs).expect("valid"), ALL, &ours).expect("PCMA");
    assert_eq!((n.codec, n.dtmf_payload_type), (Codec::Pcma, Some(101)));
    assert_eq!(n.remote, Some("10.0.0.2:5004".parse().expect("addr")));
    assert!(ours.media[0].formats.contains(&"8".to_owned()));
    let nothing = "v=0\r\nc=IN IP4 10.0.0.2\r\nm=audio 0 RTP/AVP 8\r\n";
    assert_eq!(accept_answer(&Sdp::parse(nothing).expect("valid"), ALL, &ours), Err(SdpError::NoCommonCodec));
}

#[test]
fn an_offer_without_an_origin_prints_one_that_parses() {
    // Found by the `sdp` fuzz target: the o= line garbled (read leniently, so
    // the origin is empty) printed as "o=... IN IP4 " and failed to parse.
    let offer = Sdp::parse(
        "v=0\r\no\x0f=far 1 1 IN IP4 127.0.0.1\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n",
    )
    .expect("read leniently");
    assert_eq!(offer.origin, "");
    let printed = offer.to_text();
    assert!(printed.contains("o=voxgate 0 0 IN IP4 127.0.0.1\r\n"), "{printed}");
    assert!(Sdp::parse(&printed).is_ok(), "{printed}");
    let bare = Sdp { connection: None, ..offer };
    assert!(Sdp::parse(&bare.to_text()).is_ok());
}

/// An offer of `proto` carrying `lines` (whole `a=crypto:` lines).
fn offer_of(proto: &str, lines: &[String]) -> Sdp {
    let mut text =
        format!("v=0\r\no=- 1 1 IN IP4 10.0.0.2\r\nc=IN IP4 10.0.0.2\r\nm=audio 5004 {proto} 0\r\n");
    for l in lines {
        text.push_str(l);
        text.push_str("\r\n");
    }
    Sdp::parse(&text).expect("valid")
}

#[test]
fn srtp_is_answered_as_the_policy_allows() {
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD.encode([5u8; 30]);
    let keyed = vec![
        format!("a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:{key}"),
        format!("a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^31"),
    ];
    let savp = offer_of("RTP/SAVP", &keyed);
    assert_eq!(savp.media[0].crypto.len(), 1, "the 32-bit-tag suite is not ours");
    for srtp in [Srtp::Offer, Srtp::Require] {
        let (a, n) = answer(&savp, ALL, LOCAL, 1, srtp).expect("SRTP");
        let keys = n.srtp.expect("keys");
        assert_eq!(keys.remote.bytes, vec![5u8; 30]);
        let text = a.to_text();
        assert!(text.contains("m=audio 1 RTP/SAVP 0\r\n"), "{text}");
        // Our line: the tag and suite the caller chose, our own key.
        let ours = Sdp::parse(&text).expect("valid").media[0].crypto.clone();
        assert_eq!((ours.len(), ours[0].tag, ours[0].key.suite), (1, 2, crypto::Suite::AesCm128HmacSha1_80));
        assert_eq!(ours[0].key, keys.local);
    }
    assert_eq!(
        answer(&savp, ALL, LOCAL, 1, Srtp::Off),
        Err(SdpError::Srtp("SRTP offered, and SRTP is off here"))
    );
    // Only suites we do not take.
    let weak = offer_of("RTP/SAVP", &keyed[..1]);
    assert_eq!(
        answer(&weak, ALL, LOCAL, 1, Srtp::Offer),
        Err(SdpError::Srtp("no SRTP crypto suite in common"))
    );
    // Plain RTP: taken unless SRTP is required (the 488 of an SRTP-only agent).
    let plain = offer_of("RTP/AVP", &[]);
    assert_eq!(answer(&plain, ALL, LOCAL, 1, Srtp::Offer).expect("plain").1.srtp, None);
    assert_eq!(
        answer(&plain, ALL, LOCAL, 1, Srtp::Require),
        Err(SdpError::Srtp("plain RTP offered, and SRTP is required"))
    );
    // Best effort: keys on RTP/AVP are used unless SRTP is off.
    let best_effort = offer_of("RTP/AVP", &keyed);
    assert!(answer(&best_effort, ALL, LOCAL, 1, Srtp::Require).expect("keyed").1.srtp.is_some());
    let (a, n) = answer(&best_effort, ALL, LOCAL, 1, Srtp::Off).expect("plain");
    assert_eq!(n.srtp, None);
    assert!(!a.to_text().contains("crypto"));
}

#[test]
fn our_srtp_offers_and_their_answers() {
    let plain = offer(LOCAL, 1, 1, Srtp::Off);
    assert!(!plain.to_text().contains("a=crypto"));
    let required = offer(LOCAL, 1, 1, Srtp::Require);
    let text = required.to_text();
    assert!(text.contains("m=audio 1 RTP/SAVP 9 0 8 111 101\r\n"), "{text}");
    assert_eq!(text.matches("a=crypto:").count(), 4);
    assert!(offer(LOCAL, 1, 1, Srtp::Offer).to_text().contains("m=audio 1 RTP/AVP "));
    // A peer answers with the offer's keys: each side reads the other's.
    let (answer_sdp, theirs) =
        answer(&Sdp::parse(&text).expect("valid"), ALL, LOCAL, 2, Srtp::Require).unwrap();
    let mine = accept_answer(&Sdp::parse(&answer_sdp.to_text()).unwrap(), ALL, &required).expect("keys");
    let (mine, theirs) = (mine.srtp.unwrap(), theirs.srtp.unwrap());
    assert_eq!((mine.local, mine.remote), (theirs.remote, theirs.local));
    // An answer without keys is no SRTP: refused when we required it.
    let bare = "v=0\r\nc=IN IP4 10.0.0.2\r\nm=audio 5004 RTP/AVP 0\r\n";
    assert!(matches!(accept_answer(&Sdp::parse(bare).unwrap(), ALL, &required), Err(SdpError::Srtp(_))));
    let best_effort = offer(LOCAL, 1, 1, Srtp::Offer);
    assert_eq!(accept_answer(&Sdp::parse(bare).unwrap(), ALL, &best_effort).unwrap().srtp, None);
}
