//! Where a call's RTP goes, and which packets are the caller's.
//!
//! - Nothing is sent before the call is confirmed (the ACK of an inbound
//!   call; the answer of an outbound one), and then to the SDP's address.
//! - The first packet from the SDP's address, or (behind NAT) from the IP
//!   the SIP signalling came from, latches the media: from then on only
//!   that exact source is the caller, and replies go to it. A packet from
//!   any other address is not the caller's and never moves the media.
//! - If nothing arrives at all, sending stops `no_media` after the call
//!   was confirmed: a phone that suppresses silence hears the greeting
//!   first, and an SDP address that names a stranger is not flooded.
//! - Nothing is ever sent to a multicast, broadcast or unspecified
//!   address, to port 0, or back into this server (its own addresses on
//!   its SIP port or the call's own RTP and RTCP ports). Other ports of
//!   this host stay reachable: a softphone may share the machine.
//!
//! Time is passed in.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// This server, as a destination media must never loop back into: its
/// addresses, and its ports there (SIP, the call's RTP and RTCP).
#[derive(Debug, Clone, Default)]
pub struct OwnAddresses {
    pub ips: Vec<IpAddr>,
    pub ports: Vec<u16>,
}

impl OwnAddresses {
    fn contains(&self, addr: SocketAddr) -> bool {
        let ip = unmapped(addr.ip());
        self.ips.iter().any(|o| unmapped(*o) == ip) && self.ports.contains(&addr.port())
    }
}

fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether RTP may be sent to `addr`.
fn sendable(addr: SocketAddr, own: &OwnAddresses) -> bool {
    let ip = unmapped(addr.ip());
    let bad_ip =
        ip.is_unspecified() || ip.is_multicast() || matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    addr.port() != 0 && !bad_ip && !own.contains(addr)
}

/// A call's media peer.
#[derive(Debug, Clone)]
pub struct MediaPeer {
    sdp: Option<SocketAddr>,
    signalling_ip: Option<IpAddr>,
    own: OwnAddresses,
    no_media: Duration,
    latched: Option<SocketAddr>,
    confirmed_at: Option<Instant>,
}

impl MediaPeer {
    /// The peer the SDP names (`None`: none, e.g. a held call), whose SIP
    /// came from `signalling_ip`.
    #[must_use]
    pub fn new(
        sdp: Option<SocketAddr>,
        signalling_ip: Option<IpAddr>,
        own: OwnAddresses,
        no_media: Duration,
    ) -> Self {
        Self { sdp, signalling_ip, own, no_media, latched: None, confirmed_at: None }
    }

    /// The call is confirmed (ACK in; or our call answered): media may go out.
    pub fn confirm(&mut self, now: Instant) {
        self.confirmed_at.get_or_insert(now);
    }

    /// The SDP of a re-INVITE moved the media: latching starts again there.
    pub fn move_to(&mut self, sdp: Option<SocketAddr>) {
        if sdp != self.sdp {
            self.sdp = sdp;
            self.latched = None;
        }
    }

    /// Whether a packet from `from` may be the caller's (without latching:
    /// see [`Self::accept`]).
    #[must_use]
    pub fn acceptable(&self, from: SocketAddr) -> bool {
        if let Some(latched) = self.latched {
            return latched == from;
        }
        let ip = unmapped(from.ip());
        let expected = self.sdp.is_some_and(|s| unmapped(s.ip()) == ip)
            || self.signalling_ip.is_some_and(|s| unmapped(s) == ip);
        expected && sendable(from, &self.own)
    }

    /// Whether a packet from `from` is the caller's; the first acceptable
    /// one latches the media to its source. (With SRTP, only a packet that
    /// passed authentication is offered here.)
    pub fn accept(&mut self, from: SocketAddr) -> bool {
        if !self.acceptable(from) {
            return false;
        }
        if self.latched.is_none() {
            tracing::debug!(%from, "media latched");
            self.latched = Some(from);
        }
        true
    }

    /// Where media goes at `now`: the latched source, else the SDP's
    /// address until `no_media` has passed without a packet; `None` before
    /// the call is confirmed, or when the address is refused.
    #[must_use]
    pub fn destination(&self, now: Instant) -> Option<SocketAddr> {
        let confirmed_at = self.confirmed_at?;
        let dest = match self.latched {
            Some(l) => l,
            None if now.saturating_duration_since(confirmed_at) <= self.no_media => self.sdp?,
            None => return None,
        };
        sendable(dest, &self.own).then_some(dest)
    }

    /// The latched source, if one is.
    #[must_use]
    pub fn latched(&self) -> Option<SocketAddr> {
        self.latched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn own() -> OwnAddresses {
        OwnAddresses { ips: vec!["203.0.113.5".parse().unwrap()], ports: vec![5060, 12_000, 12_001] }
    }

    const NO_MEDIA: Duration = Duration::from_secs(30);

    #[test]
    fn nothing_goes_out_before_the_ack_then_to_the_sdp_until_the_caller_latches() {
        let t0 = Instant::now();
        let mut p = MediaPeer::new(
            Some(addr("198.51.100.7:4000")),
            Some("198.51.100.7".parse().unwrap()),
            own(),
            NO_MEDIA,
        );
        assert_eq!(p.destination(t0), None, "not before the ACK");
        p.confirm(t0);
        assert_eq!(p.destination(t0), Some(addr("198.51.100.7:4000")));
        // Behind NAT the caller's packets come from another port of the same IP.
        assert!(p.accept(addr("198.51.100.7:61000")));
        assert_eq!(p.destination(t0), Some(addr("198.51.100.7:61000")));
        assert!(!p.accept(addr("198.51.100.7:61001")), "once latched, only that exact source");
    }

    #[test]
    fn a_stranger_never_moves_the_media_before_or_after_the_latch() {
        let t0 = Instant::now();
        let mut p = MediaPeer::new(
            Some(addr("198.51.100.7:4000")),
            Some("192.0.2.1".parse().unwrap()),
            own(),
            NO_MEDIA,
        );
        p.confirm(t0);
        assert!(!p.accept(addr("192.0.2.99:4000")), "the first packet is a stranger's");
        assert_eq!(p.destination(t0), Some(addr("198.51.100.7:4000")), "the media stays where the SDP said");
        assert!(p.accept(addr("192.0.2.1:30000")), "the signalling source's IP, behind NAT");
        assert!(!p.accept(addr("192.0.2.99:4000")));
        assert_eq!(p.latched(), Some(addr("192.0.2.1:30000")));
    }

    #[test]
    fn with_nothing_received_sending_stops_after_the_no_media_time() {
        let t0 = Instant::now();
        let mut p = MediaPeer::new(Some(addr("198.51.100.7:4000")), None, own(), NO_MEDIA);
        p.confirm(t0);
        assert!(p.destination(t0 + Duration::from_secs(29)).is_some(), "the greeting still plays");
        assert_eq!(p.destination(t0 + Duration::from_secs(31)), None);
        // Once the caller is heard, the media stays up.
        assert!(p.accept(addr("198.51.100.7:4000")));
        assert!(p.destination(t0 + Duration::from_secs(3600)).is_some());
    }

    #[test]
    fn multicast_broadcast_and_this_server_are_never_destinations() {
        let t0 = Instant::now();
        for bad in [
            "224.0.0.1:4000",
            "239.1.2.3:5004",
            "255.255.255.255:4000",
            "0.0.0.0:4000",
            "198.51.100.7:0",
            "[ff02::1]:4000",
            "203.0.113.5:5060",
            "203.0.113.5:12000",
            "203.0.113.5:12001",
            "[::ffff:203.0.113.5]:5060",
        ] {
            let mut p = MediaPeer::new(Some(addr(bad)), Some(addr(bad).ip()), own(), NO_MEDIA);
            p.confirm(t0);
            assert_eq!(p.destination(t0), None, "{bad}");
            assert!(!p.accept(addr(bad)), "{bad} latched");
        }
        // This server's address on another port (a softphone on the same host) is fine.
        let mut p = MediaPeer::new(Some(addr("203.0.113.5:40000")), None, own(), NO_MEDIA);
        p.confirm(t0);
        assert_eq!(p.destination(t0), Some(addr("203.0.113.5:40000")));
    }

    #[test]
    fn a_reinvite_that_moves_the_media_starts_latching_again() {
        let t0 = Instant::now();
        let mut p = MediaPeer::new(Some(addr("198.51.100.7:4000")), None, own(), NO_MEDIA);
        p.confirm(t0);
        assert!(p.accept(addr("198.51.100.7:4000")));
        p.move_to(Some(addr("198.51.100.8:5000")));
        assert_eq!(p.latched(), None);
        assert!(!p.accept(addr("198.51.100.7:4000")), "the old address is a stranger now");
        assert!(p.accept(addr("198.51.100.8:5000")));
    }
}
