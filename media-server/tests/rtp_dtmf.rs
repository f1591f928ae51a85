//! A caller written here, speaking SIP, RTP and RTCP on loopback: RFC 4733
//! DTMF (4, 2, # as RTP telephone-events become the caller's turn in the
//! call log), RTCP sender and receiver reports both ways, and a re-INVITE
//! that moves the call to another codec and RTP clock.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::caller::{call, hang_up, press, request};
use common::{TestResult, caller_lines, logged, start_listening_server, start_server};

#[test]
fn rtp_telephone_events_become_the_callers_turn() -> TestResult {
    let server = start_listening_server()?;
    let rtp = UdpSocket::bind("127.0.0.1:0")?;
    let (sip, to_tagged, media_port) = call(&server, &rtp, "0 101")?;
    press(&rtp, media_port, &[4, 2, 11])?;
    logged(&server, "caller's turn committed", 1)?;
    hang_up(&server, &sip, &to_tagged)?;

    assert_eq!(caller_lines(&server)?, ["42"]);
    Ok(())
}

/// Strict latching (RTP Bleed): once the caller's RTP has come, packets from
/// anyone else at the call's media port are dropped, a steady stream of
/// them included (valid-looking key presses, audio, garbage, 1,000 a second).
#[test]
fn a_strangers_rtp_at_the_media_port_is_ignored() -> TestResult {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    let server = start_listening_server()?;
    let rtp = UdpSocket::bind("127.0.0.1:0")?;
    let (sip, to_tagged, media_port) = call(&server, &rtp, "0 101")?;
    // The caller's first packet (µ-law silence) latches the call to it.
    let mut first = vec![0x80, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34];
    first.extend_from_slice(&[0xFF; 160]);
    rtp.send_to(&first, ("127.0.0.1", media_port))?;
    logged(&server, "media latched", 1)?;

    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let rounds = std::sync::Arc::new(AtomicU32::new(0));
    let stranger = {
        let (stop, rounds) = (stop.clone(), rounds.clone());
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        std::thread::spawn(move || -> std::io::Result<u32> {
            let mut sent = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let seq = (sent as u16).to_be_bytes();
                let ts = (sent * 160).to_be_bytes();
                // Key 9 and #, ended; audio; and bytes that are not RTP.
                let mut key = vec![0x80, 101, seq[0], seq[1], ts[0], ts[1], ts[2], ts[3], 0, 0, 0x99, 0x99];
                key.extend_from_slice(&[if sent.is_multiple_of(2) { 9 } else { 11 }, 0x80 | 10, 0x01, 0x40]);
                let mut audio = vec![0x80, 0, seq[0], seq[1], ts[0], ts[1], ts[2], ts[3], 0, 0, 0x99, 0x98];
                audio.extend_from_slice(&[0x00; 160]);
                for packet in [&key[..], &audio[..], &[0xde, 0xad, 0xbe, 0xef][..]] {
                    socket.send_to(packet, ("127.0.0.1", media_port))?;
                }
                sent += 1;
                rounds.store(sent, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(3));
            }
            Ok(sent * 3)
        })
    };
    // The flood is on before the caller's keys, and goes on until they are taken.
    while rounds.load(Ordering::Relaxed) < 400 && !stranger.is_finished() {
        std::thread::sleep(Duration::from_millis(10));
    }
    press(&rtp, media_port, &[4, 2, 11])?;
    logged(&server, "caller's turn committed", 1)?;
    stop.store(true, Ordering::Relaxed);
    let flooded = stranger.join().map_err(|_| "the stranger's thread panicked")??;
    hang_up(&server, &sip, &to_tagged)?;

    assert!(flooded > 1000, "the stranger sent {flooded} packets");
    assert_eq!(caller_lines(&server)?, ["42"], "only the caller's keys");
    Ok(())
}

/// The agent presses keys: its model calls `send_dtmf` with "12#" (after
/// the caller's 9 #), and the caller receives them as telephone-events,
/// each key once with its end bit.
#[test]
fn the_agent_presses_keys_as_telephone_events() -> TestResult {
    let llm = common::tool_calling_llm("", "send_dtmf", r#"{"digits": "12#"}"#)?;
    let server = start_server(&[
        ("VOXGATE_VAD__BACKEND", "webrtc".to_owned()),
        ("VOXGATE_AGENT__GREETING", String::new()),
        ("VOXGATE_AGENT__SEND_DTMF", "true".to_owned()),
        ("VOXGATE_AGENT__LLM", "openai".to_owned()),
        ("VOXGATE_OPENAI__BASE_URL", llm),
    ])?;
    let rtp = UdpSocket::bind("127.0.0.1:0")?;
    rtp.set_read_timeout(Some(Duration::from_secs(15)))?;
    let (sip, to_tagged, media_port) = call(&server, &rtp, "0 101")?;
    press(&rtp, media_port, &[9, 11])?;
    // Keys: the event of the end packets, once per key start (timestamp).
    let (mut keys, mut starts) = (String::new(), Vec::new());
    let mut buf = [0u8; 1500];
    while keys.len() < 3 {
        let n = rtp.recv(&mut buf)?;
        let p = voxgate_sip_bridge::rtp::RtpPacket::parse(&buf[..n])?;
        if p.payload_type == 101
            && p.payload.len() == 4
            && p.payload[1] & 0x80 != 0
            && !starts.contains(&p.timestamp)
        {
            starts.push(p.timestamp);
            keys.push(match p.payload[0] {
                e @ 0..=9 => char::from(b'0' + e),
                10 => '*',
                11 => '#',
                e => return Err(format!("unexpected event {e}").into()),
            });
        }
    }
    hang_up(&server, &sip, &to_tagged)?;
    assert_eq!(keys, "12#");
    assert!(starts.windows(2).all(|w| w[1] > w[0]), "each key starts later: {starts:?}");
    Ok(())
}

/// RTCP both ways: the caller sends 6.5 s of audio with 10 packets lost
/// and one sender report; the server's reports (on the RTP port + 1) say
/// what it sent, that 10 packets went missing, and echo our report's time.
#[test]
fn rtcp_reports_tell_the_caller_what_arrived_and_what_was_sent() -> TestResult {
    let server = start_server(&[("VOXGATE_VAD__BACKEND", "webrtc".to_owned())])?;
    // An even RTP port with its RTCP port free next to it.
    let (rtp, rtcp) = (30_000..40_000)
        .step_by(2)
        .map(|p| (UdpSocket::bind(("127.0.0.1", p)), UdpSocket::bind(("127.0.0.1", p + 1))))
        .find_map(|(a, b)| Some((a.ok()?, b.ok()?)))
        .ok_or("no free port pair")?;
    rtcp.set_nonblocking(true)?;
    let (sip, to_tagged, media_port) = call(&server, &rtp, "0")?;

    let ssrc = 0x1234_5678u32;
    let our_ntp: u64 = 0xE000_0000_1234_5678;
    let mut reports = Vec::new();
    let mut buf = [0u8; 1500];
    for i in 0..325u16 {
        // Packets 100..110 are lost on the way.
        if !(100..110).contains(&i) {
            let mut packet = vec![0x80, 0];
            packet.extend_from_slice(&(1000 + i).to_be_bytes());
            packet.extend_from_slice(&(u32::from(i) * 160).to_be_bytes());
            packet.extend_from_slice(&ssrc.to_be_bytes());
            packet.extend_from_slice(&[0xFF; 160]);
            rtp.send_to(&packet, ("127.0.0.1", media_port))?;
        }
        if i == 50 {
            let sr = voxgate_sip_bridge::rtp::rtcp::Report {
                ssrc,
                sender: Some(voxgate_sip_bridge::rtp::rtcp::SenderInfo {
                    ntp: our_ntp,
                    rtp_timestamp: 50 * 160,
                    packets: 50,
                    octets: 8000,
                }),
                blocks: Vec::new(),
            };
            let n = sr.write(false, &mut buf)?;
            rtcp.send_to(&buf[..n], ("127.0.0.1", media_port + 1))?;
        }
        while let Ok(n) = rtcp.recv(&mut buf) {
            reports.extend(voxgate_sip_bridge::rtp::rtcp::parse(&buf[..n])?.reports);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    hang_up(&server, &sip, &to_tagged)?;

    let about_us = reports
        .iter()
        .flat_map(|r| &r.blocks)
        .rfind(|b| b.ssrc == ssrc)
        .ok_or(format!("no report block about our stream in {reports:?}"))?;
    assert_eq!(about_us.cumulative_lost, 10, "{about_us:?}");
    assert_eq!(about_us.last_sr, (our_ntp >> 16) as u32, "our sender report's time, echoed");
    assert!(about_us.delay_since_last_sr > 0, "{about_us:?}");
    let sent = reports.iter().rev().find_map(|r| r.sender.as_ref()).ok_or("no sender report")?;
    assert!(sent.packets > 0 && sent.octets == sent.packets * 160, "the greeting went out: {sent:?}");
    Ok(())
}

/// A re-INVITE from G.711 (8 kHz RTP clock) to Opus (48 kHz): the agent's
/// audio goes on in Opus, on a new stream whose timestamps move 960 a
/// frame (RFC 7587), with its own SSRC for the new clock rate (RFC 7160).
#[test]
fn a_reinvite_to_opus_moves_the_agents_audio_to_the_opus_clock() -> TestResult {
    let server = start_server(&[
        ("VOXGATE_VAD__BACKEND", "webrtc".to_owned()),
        ("VOXGATE_AGENT__STT", "scripted".to_owned()),
        ("VOXGATE_AGENT__LLM", "scripted".to_owned()),
        ("VOXGATE_AGENT__TTS", "scripted".to_owned()),
    ])?;
    let rtp = UdpSocket::bind("127.0.0.1:0")?;
    rtp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let (sip, to_tagged, _) = call(&server, &rtp, "0")?;
    let mut buf = [0u8; 1500];
    // The greeting starts in µ-law.
    let pcmu_ssrc = loop {
        let n = rtp.recv(&mut buf)?;
        let p = voxgate_sip_bridge::rtp::RtpPacket::parse(&buf[..n])?;
        if p.payload_type == 0 {
            break p.ssrc;
        }
    };
    let (sip_port, my_port, rtp_port) = (server.sip_port, sip.local_addr()?.port(), rtp.local_addr()?.port());
    let opus = format!(
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {rtp_port} RTP/AVP 111\r\n\
         a=rtpmap:111 opus/48000/2\r\n"
    );
    sip.send_to(
        request("INVITE", 2, &to_tagged, "z9hG4bK-reinv", sip_port, my_port, &opus).as_bytes(),
        ("127.0.0.1", sip_port),
    )?;
    let mut sip_buf = vec![0u8; 8192];
    loop {
        let n = sip.recv(&mut sip_buf)?;
        let text = String::from_utf8_lossy(&sip_buf[..n]).into_owned();
        if text.starts_with("SIP/2.0 200") && text.contains("CSeq: 2 INVITE") {
            assert!(text.contains("opus/48000"), "the answer takes Opus:\n{text}");
            break;
        }
    }
    sip.send_to(
        request("ACK", 2, &to_tagged, "z9hG4bK-ack2", sip_port, my_port, "").as_bytes(),
        ("127.0.0.1", sip_port),
    )?;
    // The rest of the greeting, in Opus: consecutive packets step 960.
    let mut opus_packets: Vec<(u32, u16, u32)> = Vec::new();
    while opus_packets.len() < 25 {
        let n = rtp.recv(&mut buf)?;
        let p = voxgate_sip_bridge::rtp::RtpPacket::parse(&buf[..n])?;
        if p.payload_type == 111 {
            opus_packets.push((p.ssrc, p.seq, p.timestamp));
        }
    }
    hang_up(&server, &sip, &to_tagged)?;
    let ssrc = opus_packets[0].0;
    assert_ne!(ssrc, pcmu_ssrc, "a new clock rate, a new SSRC");
    assert!(opus_packets.iter().all(|p| p.0 == ssrc), "one Opus stream");
    for w in opus_packets.windows(2) {
        let (seq_step, ts_step) = (w[1].1.wrapping_sub(w[0].1), w[1].2.wrapping_sub(w[0].2));
        assert_eq!(seq_step, 1, "packets in order: {opus_packets:?}");
        assert_eq!(ts_step % 960, 0, "timestamps on the 48 kHz clock, 20 ms a frame: {opus_packets:?}");
        assert!(ts_step > 0, "{opus_packets:?}");
    }
    Ok(())
}
