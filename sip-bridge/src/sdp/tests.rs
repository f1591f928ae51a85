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
    let (answer, n) = answer(&offer, ALL, LOCAL, 20_000).expect("common codec");
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

    let (_, g711) = super::answer(&offer, &[Codec::Pcmu, Codec::Pcma], LOCAL, 20_000).expect("PCMU");
    assert_eq!((g711.codec, g711.payload_type, g711.dtmf_payload_type), (Codec::Pcmu, 0, Some(101)));
}

#[test]
fn static_payload_types_need_no_rtpmap() {
    let offer =
        Sdp::parse("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 8\r\n")
            .expect("valid");
    let (_, n) = answer(&offer, ALL, LOCAL, 1).expect("PCMA");
    assert_eq!(n.codec, Codec::Pcma);
}

#[test]
fn hold_is_answered_in_kind() {
    let sendonly = BARESIP.replace("a=sendrecv", "a=sendonly");
    let (a, n) = answer(&Sdp::parse(&sendonly).expect("valid"), ALL, LOCAL, 1).expect("ok");
    assert_eq!(n.direction, Direction::RecvOnly);
    assert!(a.to_text().contains("a=recvonly"));
    let old_style = BARESIP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
    let (_, n) = answer(&Sdp::parse(&old_style).expect("valid"), ALL, LOCAL, 1).expect("ok");
    assert_eq!((n.direction, n.remote), (Direction::Inactive, None));
}

#[test]
fn no_common_codec_and_bad_sdp_are_errors() {
    let g729 = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 18\r\n";
    assert_eq!(answer(&Sdp::parse(g729).expect("valid"), ALL, LOCAL, 1), Err(SdpError::NoCommonCodec));
    assert!(Sdp::parse("hello").is_err());
    assert!(Sdp::parse("v=0\r\nm=audio x RTP/AVP 0\r\n").is_err());
    assert!(Sdp::parse("v=0\r\nc=IN IP4 not-an-ip\r\n").is_err());
}

#[test]
fn video_is_refused_with_port_zero_and_audio_kept() {
    let text = format!("{BARESIP}m=video 10006 RTP/AVP 97\r\na=rtpmap:97 H264/90000\r\n");
    let (a, _) = answer(&Sdp::parse(&text).expect("valid"), ALL, LOCAL, 30_000).expect("ok");
    assert_eq!(a.media.len(), 2);
    assert_eq!((a.media[1].kind.as_str(), a.media[1].port), ("video", 0));
}

#[test]
fn our_offer_parses_and_answers_itself() {
    let o = offer(LOCAL, 12_000, 7);
    let parsed = Sdp::parse(&o.to_text()).expect("valid");
    assert_eq!(parsed, o, "print then parse is the identity");
    let (_, n) = answer(&parsed, ALL, LOCAL, 1).expect("ok");
    assert_eq!((n.codec, n.payload_type, n.dtmf_payload_type), (Codec::G722, 9, Some(101)));
}

#[test]
fn a_wideband_codec_is_taken_before_the_callers_g711() {
    let offered = |formats: &str| {
        let text = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio 10004 RTP/AVP {formats} 101\r\na=rtpmap:101 telephone-event/8000\r\n"
        );
        let (a, n) = answer(&Sdp::parse(&text).expect("valid"), ALL, LOCAL, 30_000).expect("ok");
        (n.codec, a.media[0].formats.clone(), n.dtmf_payload_type)
    };
    // G.722 by its static payload type 9, with no rtpmap (RFC 3551).
    let g722 = (Codec::G722, vec!["9".to_owned(), "101".to_owned()], Some(101));
    assert_eq!(offered("0 8 9"), g722);
    assert_eq!(offered("9 0"), g722);
    assert_eq!(offered("8 0").0, Codec::Pcma, "else the caller's first");
    // A peer without G.722 among ours: not chosen.
    let (_, n) = answer(&Sdp::parse(&offer(LOCAL, 1, 1).to_text()).expect("valid"), &[Codec::Pcmu], LOCAL, 1)
        .expect("ok");
    assert_eq!(n.codec, Codec::Pcmu);
}

#[test]
fn an_answer_to_our_offer_is_read() {
    let ours = offer(LOCAL, 12_000, 7);
    let theirs = "v=0\r\no=- 1 1 IN IP4 10.0.0.2\r\nc=IN IP4 10.0.0.2\r\nm=audio 5004 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";
    let n = accept_answer(&Sdp::parse(theirs).expect("valid"), ALL).expect("PCMA");
    assert_eq!((n.codec, n.dtmf_payload_type), (Codec::Pcma, Some(101)));
    assert_eq!(n.remote, Some("10.0.0.2:5004".parse().expect("addr")));
    assert!(ours.media[0].formats.contains(&"8".to_owned()));
    let nothing = "v=0\r\nc=IN IP4 10.0.0.2\r\nm=audio 0 RTP/AVP 8\r\n";
    assert_eq!(accept_answer(&Sdp::parse(nothing).expect("valid"), ALL), Err(SdpError::NoCommonCodec));
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
