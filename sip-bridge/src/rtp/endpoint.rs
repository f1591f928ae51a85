//! A call's RTP endpoint, sans-IO: which datagrams are the caller's and
//! what they carry, and our own stream's packets and reports.
//!
//! - In: RTCP multiplexed on the RTP port is told apart (RFC 5761); a
//!   packet counts only with a negotiated payload type and from the
//!   latched source ([`MediaPeer`]); audio goes on to the jitter buffer,
//!   a key (RFC 4733) is reported once however often its end is repeated.
//! - Out: our SSRC and sequence numbers on the audio and telephone-events
//!   the call core stamps, to the peer's address once the call is
//!   confirmed; sender reports with what we sent, receiver reports with
//!   what came.
//!
//! With SRTP keys (SDES), each packet is authenticated and decrypted
//! before it counts (a forged or replayed one never latches the media),
//! and ours are protected on the way out; RTCP is SRTCP.
//!
//! Time is passed in; the caller owns the sockets.

use std::net::SocketAddr;
use std::time::Instant;

use voxgate_codecs::dtmf::{DtmfKey, TelephoneEvent};

use super::peer::MediaPeer;
use super::rtcp::{self, Report, SenderInfo};
use super::srtp::{SrtpError, SrtpSession};
use super::stats::ReceiverStats;
use super::{RtpPacket, is_rtcp};
use crate::sdp::Negotiated;

/// What a datagram on the RTP port was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// The caller's audio, for the jitter buffer.
    Audio(RtpPacket<'a>),
    /// A key the caller pressed (its first end packet).
    Key(DtmfKey),
    /// Not the caller's, not for us, malformed, or nothing new.
    Nothing,
}

/// See the module documentation.
#[derive(Debug)]
pub struct RtpEndpoint {
    negotiated: Negotiated,
    peer: MediaPeer,
    ssrc: u32,
    seq: u16,
    /// Sent so far, for sender reports.
    packets: u32,
    octets: u32,
    rx: ReceiverStats,
    /// The timestamp of the last key reported (its end is sent three times).
    last_key: Option<u32>,
    /// With SRTP keys: the contexts, and room for a packet decrypted or sealed.
    srtp: Option<SrtpSession>,
    plain: Vec<u8>,
    sealed: Vec<u8>,
    out: Vec<u8>,
}

impl RtpEndpoint {
    /// A stream with our `ssrc`, first sequence number `seq` (both random,
    /// RFC 3550), SRTP if `negotiated` carries keys.
    ///
    /// # Errors
    /// SRTP keys that cannot be used.
    pub fn new(negotiated: Negotiated, peer: MediaPeer, ssrc: u32, seq: u16) -> Result<Self, SrtpError> {
        Ok(Self {
            srtp: negotiated.srtp.as_ref().map(SrtpSession::new).transpose()?,
            plain: Vec::with_capacity(1500),
            sealed: Vec::with_capacity(1500),
            negotiated,
            peer,
            ssrc,
            seq,
            packets: 0,
            octets: 0,
            rx: ReceiverStats::default(),
            last_key: None,
            out: vec![0; 1500],
        })
    }

    /// Whether the media is SRTP.
    #[must_use]
    pub fn secure(&self) -> bool {
        self.srtp.is_some()
    }

    /// What was negotiated.
    #[must_use]
    pub fn negotiated(&self) -> &Negotiated {
        &self.negotiated
    }

    /// Whether the peer takes telephone-events.
    #[must_use]
    pub fn telephone_events(&self) -> bool {
        self.negotiated.dtmf_payload_type.is_some()
    }

    /// The call is confirmed: media may go out.
    pub fn confirm(&mut self, now: Instant) {
        self.peer.confirm(now);
    }

    /// A re-INVITE settled `negotiated`; with `new_stream` (another clock
    /// rate), our stream starts anew with that SSRC and sequence number.
    /// New SRTP keys start new contexts.
    ///
    /// # Errors
    /// New SRTP keys that cannot be used (nothing changed).
    pub fn renegotiate(
        &mut self,
        negotiated: Negotiated,
        new_stream: Option<(u32, u16)>,
    ) -> Result<(), SrtpError> {
        if negotiated.srtp != self.negotiated.srtp {
            self.srtp = negotiated.srtp.as_ref().map(SrtpSession::new).transpose()?;
        }
        self.peer.move_to(negotiated.remote);
        self.negotiated = negotiated;
        if let Some((ssrc, seq)) = new_stream {
            (self.ssrc, self.seq, self.packets, self.octets) = (ssrc, seq, 0, 0);
        }
        Ok(())
    }

    /// A datagram that came to the RTP port from `from` at `at`.
    pub fn handle_datagram<'a>(&'a mut self, at: Instant, from: SocketAddr, bytes: &'a [u8]) -> Incoming<'a> {
        if is_rtcp(bytes) {
            self.handle_rtcp(at, bytes);
            return Incoming::Nothing;
        }
        let Ok(p) = RtpPacket::parse(bytes) else { return Incoming::Nothing };
        let audio = p.payload_type == self.negotiated.payload_type;
        let key = Some(p.payload_type) == self.negotiated.dtmf_payload_type;
        // Strict latching: a packet of another source is not the caller's (RTP Bleed).
        if !(audio || key) || !self.peer.acceptable(from) {
            return Incoming::Nothing;
        }
        let p = match &mut self.srtp {
            None => p,
            Some(srtp) => {
                if !srtp.unprotect_rtp(bytes, &mut self.plain) {
                    return Incoming::Nothing;
                }
                let Ok(p) = RtpPacket::parse(&self.plain) else { return Incoming::Nothing };
                p
            }
        };
        self.peer.accept(from);
        if audio {
            self.rx.on_packet(p.ssrc, p.seq);
            return Incoming::Audio(p);
        }
        match TelephoneEvent::decode(p.payload) {
            Ok(ev) if ev.end && self.last_key != Some(p.timestamp) => {
                self.last_key = Some(p.timestamp);
                ev.key().map_or(Incoming::Nothing, Incoming::Key)
            }
            _ => Incoming::Nothing,
        }
    }

    /// RTCP from the peer (on the RTP port, or the RTCP port), arrived at
    /// `at`: its sender reports time our round-trip measurement; its
    /// reception reports say how our audio arrives.
    pub fn handle_rtcp(&mut self, at: Instant, bytes: &[u8]) {
        let bytes = match &mut self.srtp {
            None => bytes,
            Some(srtp) => {
                if !srtp.unprotect_rtcp(bytes, &mut self.plain) {
                    return;
                }
                &self.plain
            }
        };
        let Ok(received) = rtcp::parse(bytes) else { return };
        for report in received.reports {
            if let Some(sender) = report.sender {
                self.rx.on_sender_report(sender.ntp, at);
            }
            for block in report.blocks {
                tracing::debug!(
                    fraction_lost = block.fraction_lost,
                    cumulative_lost = block.cumulative_lost,
                    jitter = block.jitter,
                    "RTCP: the caller's view of our audio"
                );
            }
        }
    }

    /// Whether packets that sound now would go anywhere.
    #[must_use]
    pub fn destination(&self, now: Instant) -> Option<SocketAddr> {
        self.peer.destination(now)
    }

    /// The agent's audio (`event`: a telephone-event instead), stamped by
    /// the call core: the packet and where it goes, if anywhere.
    pub fn write(
        &mut self,
        now: Instant,
        event: bool,
        payload: &[u8],
        timestamp: u32,
        marker: bool,
    ) -> Option<(&[u8], SocketAddr)> {
        let dest = self.peer.destination(now)?;
        let payload_type =
            if event { self.negotiated.dtmf_payload_type? } else { self.negotiated.payload_type };
        let packet = RtpPacket { marker, payload_type, seq: self.seq, timestamp, ssrc: self.ssrc, payload };
        let n = packet.write(&mut self.out).ok()?;
        if let Some(srtp) = &mut self.srtp
            && !srtp.protect_rtp(&self.out[..n], &mut self.sealed)
        {
            return None;
        }
        self.seq = self.seq.wrapping_add(1);
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload.len() as u32);
        Some((if self.srtp.is_some() { &self.sealed } else { &self.out[..n] }, dest))
    }

    /// Our RTCP report at `now` (`ntp`: the wall clock as NTP; `rtp_timestamp`:
    /// our media clock now; `jitter`: the caller's, in timestamp units), with
    /// a BYE once the call is over, for the RTCP port (RTP's plus one).
    pub fn report(
        &mut self,
        now: Instant,
        ntp: u64,
        rtp_timestamp: u32,
        jitter: u32,
        bye: bool,
    ) -> Option<(&[u8], SocketAddr)> {
        let dest = self.peer.destination(now).map(|a| SocketAddr::new(a.ip(), a.port() + 1))?;
        let report = Report {
            ssrc: self.ssrc,
            sender: (self.packets > 0).then_some(SenderInfo {
                ntp,
                rtp_timestamp,
                packets: self.packets,
                octets: self.octets,
            }),
            blocks: self.rx.report(now, jitter).into_iter().collect(),
        };
        let n = report.write(bye, &mut self.out).ok()?;
        match &mut self.srtp {
            None => Some((&self.out[..n], dest)),
            Some(srtp) => {
                srtp.protect_rtcp(&self.out[..n], &mut self.sealed).then_some((&self.sealed[..], dest))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

    use super::*;
    use crate::rtp::peer::OwnAddresses;
    use crate::sdp::{Codec, Direction};

    const CALLER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), 4000);

    fn endpoint() -> RtpEndpoint {
        let negotiated = Negotiated {
            codec: Codec::Pcmu,
            payload_type: 0,
            dtmf_payload_type: Some(101),
            remote: Some(CALLER),
            direction: Direction::SendRecv,
            srtp: None,
        };
        let peer = MediaPeer::new(Some(CALLER), None, OwnAddresses::default(), Duration::from_secs(5));
        RtpEndpoint::new(negotiated, peer, 0xABCD, 65_535).expect("no keys")
    }

    fn packet(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0; 1500];
        let n = RtpPacket { marker: false, payload_type: pt, seq, timestamp: ts, ssrc: 9, payload }
            .write(&mut out)
            .expect("fits");
        out.truncate(n);
        out
    }

    #[test]
    fn only_the_callers_negotiated_packets_count_and_a_key_once() {
        let mut e = endpoint();
        let now = Instant::now();
        let stranger = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)), 4000);
        let audio = packet(0, 1, 160, &[0xFF; 160]);
        assert_eq!(e.handle_datagram(now, stranger, &audio), Incoming::Nothing, "not latched to a stranger");
        assert!(matches!(e.handle_datagram(now, CALLER, &audio), Incoming::Audio(p) if p.seq == 1));
        assert_eq!(
            e.handle_datagram(now, CALLER, &packet(8, 2, 320, &[0xD5; 160])),
            Incoming::Nothing,
            "PCMA was not negotiated"
        );
        // A key's end, sent three times: one key.
        let end = [5u8, 0x80 | 10, 0x03, 0x20];
        assert_eq!(
            e.handle_datagram(now, CALLER, &packet(101, 3, 480, &end)),
            Incoming::Key(DtmfKey::Digit(5))
        );
        assert_eq!(e.handle_datagram(now, CALLER, &packet(101, 4, 480, &end)), Incoming::Nothing);
        assert_eq!(e.handle_datagram(now, CALLER, &[0x80, 0]), Incoming::Nothing, "too short");
    }

    #[test]
    fn with_srtp_only_authentic_packets_count_or_latch_and_ours_are_sealed() {
        use crate::rtp::srtp::SrtpSession;
        use crate::sdp::crypto::{self, Crypto, KeySalt, Suite};
        let offered = [Crypto { tag: 1, key: KeySalt::random(Suite::AesCm128HmacSha1_80) }];
        let (line, ours) = crypto::answer(&offered).expect("a suite");
        let mut caller = SrtpSession::new(&crypto::accept(&offered, &[line]).expect("keys")).expect("usable");
        let mut e = endpoint();
        e.negotiated.srtp = Some(ours.clone());
        e.srtp = Some(SrtpSession::new(&ours).expect("usable"));
        let now = Instant::now();
        let plain = packet(0, 1, 160, &[0x11; 160]);
        let mut sealed = Vec::new();
        assert!(caller.protect_rtp(&plain, &mut sealed));
        // From the caller's IP, another port: forged (plain) packets neither count nor latch.
        let forger = SocketAddr::new(CALLER.ip(), 4002);
        assert_eq!(e.handle_datagram(now, forger, &plain), Incoming::Nothing);
        assert_eq!(e.handle_datagram(now, CALLER, &plain), Incoming::Nothing);
        match e.handle_datagram(now, CALLER, &sealed) {
            Incoming::Audio(p) => assert_eq!((p.seq, p.payload), (1, &[0x11u8; 160][..])),
            other => panic!("the caller's packet: {other:?}"),
        }
        assert_eq!(e.handle_datagram(now, CALLER, &sealed), Incoming::Nothing, "a replay");
        // Latched to the caller, not the forger.
        let mut second = Vec::new();
        assert!(caller.protect_rtp(&packet(0, 2, 320, &[0x22; 160]), &mut second));
        assert_eq!(e.handle_datagram(now, forger, &second), Incoming::Nothing);
        // Ours go out sealed, and the caller reads them.
        e.confirm(now);
        let (bytes, _) = e.write(now, false, &[0x33; 160], 1000, false).expect("sent");
        assert_ne!(&bytes[12..172], &[0x33u8; 160][..]);
        let mut heard = Vec::new();
        assert!(caller.unprotect_rtp(bytes, &mut heard));
        assert_eq!(RtpPacket::parse(&heard).expect("RTP").payload, &[0x33u8; 160][..]);
        let (report, _) = e.report(now, 1 << 32, 1160, 0, false).expect("a report");
        assert!(caller.unprotect_rtcp(report, &mut heard), "the caller authenticates our SRTCP");
    }

    #[test]
    fn nothing_goes_out_before_the_call_is_confirmed_then_our_stream_counts_on() {
        let mut e = endpoint();
        let now = Instant::now();
        assert!(e.write(now, false, &[0xFF; 160], 1000, true).is_none());
        e.confirm(now);
        let (bytes, dest) = e.write(now, false, &[0xFF; 160], 1000, true).expect("sent");
        assert_eq!(dest, CALLER);
        let p = RtpPacket::parse(bytes).expect("RTP");
        assert_eq!((p.ssrc, p.seq, p.timestamp, p.marker, p.payload_type), (0xABCD, 65_535, 1000, true, 0));
        let (bytes, _) = e.write(now, true, &[1, 10, 0, 160], 1160, true).expect("sent");
        let p = RtpPacket::parse(bytes).expect("RTP");
        assert_eq!((p.seq, p.payload_type), (0, 101), "the sequence wraps; the event's own type");
        let (report, dest) = e.report(now, 1 << 32, 1320, 0, true).expect("a report");
        assert_eq!(dest.port(), 4001);
        let parsed = rtcp::parse(report).expect("RTCP");
        let sender = parsed.reports[0].sender.expect("an SR: we sent");
        assert_eq!((sender.packets, sender.octets, sender.rtp_timestamp), (2, 164, 1320));
    }
}
