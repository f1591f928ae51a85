//! SRTP and SRTCP (RFC 3711, RFC 7714 for AES-GCM) with the keys SDES
//! settled: the cipher work is `webrtc-srtp`'s; this holds the two
//! directions' contexts and the replay windows.

use webrtc_srtp::context::Context;
use webrtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use webrtc_srtp::protection_profile::ProtectionProfile;

use crate::sdp::crypto::{KeySalt, SrtpKeys, Suite};

/// Packets remembered against replay, per stream (RFC 3711 asks at least 64;
/// libsrtp keeps 128).
pub const REPLAY_WINDOW: usize = 128;

/// Keys that SRTP cannot be set up with.
#[derive(Debug, thiserror::Error)]
#[error("SRTP keys not usable: {0}")]
pub struct SrtpError(String);

/// A call's SRTP: what we send, protected with our key; what comes,
/// authenticated and decrypted with the peer's, each packet once.
pub struct SrtpSession {
    outbound: Context,
    inbound: Context,
}

impl std::fmt::Debug for SrtpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpSession").finish_non_exhaustive()
    }
}

fn profile(suite: Suite) -> ProtectionProfile {
    match suite {
        Suite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        Suite::AesCm256HmacSha1_80 => ProtectionProfile::Aes256CmHmacSha1_80,
        Suite::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
        Suite::AeadAes256Gcm => ProtectionProfile::AeadAes256Gcm,
    }
}

fn context(key: &KeySalt) -> Result<Context, SrtpError> {
    Context::new(
        key.key(),
        key.salt(),
        profile(key.suite),
        Some(srtp_replay_protection(REPLAY_WINDOW)),
        Some(srtcp_replay_protection(REPLAY_WINDOW)),
    )
    .map_err(|e| SrtpError(e.to_string()))
}

impl SrtpSession {
    /// # Errors
    /// A key or salt of the wrong length for its suite.
    pub fn new(keys: &SrtpKeys) -> Result<Self, SrtpError> {
        Ok(Self { outbound: context(&keys.local)?, inbound: context(&keys.remote)? })
    }

    /// Our RTP packet, protected.
    pub fn protect_rtp(&mut self, packet: &[u8], out: &mut Vec<u8>) -> bool {
        Self::into(self.outbound.encrypt_rtp(packet), out)
    }

    /// The peer's packet, decrypted; `false` (and `out` untouched) when it
    /// fails authentication or is a replay.
    pub fn unprotect_rtp(&mut self, packet: &[u8], out: &mut Vec<u8>) -> bool {
        Self::into(self.inbound.decrypt_rtp(packet), out)
    }

    /// Our RTCP compound packet, protected (SRTCP, with its index).
    pub fn protect_rtcp(&mut self, packet: &[u8], out: &mut Vec<u8>) -> bool {
        Self::into(self.outbound.encrypt_rtcp(packet), out)
    }

    /// The peer's SRTCP, authenticated and decrypted.
    pub fn unprotect_rtcp(&mut self, packet: &[u8], out: &mut Vec<u8>) -> bool {
        Self::into(self.inbound.decrypt_rtcp(packet), out)
    }

    fn into<B: AsRef<[u8]>, E: std::fmt::Display>(result: Result<B, E>, out: &mut Vec<u8>) -> bool {
        match result {
            Ok(bytes) => {
                out.clear();
                out.extend_from_slice(bytes.as_ref());
                true
            }
            Err(e) => {
                tracing::trace!(error = %e, "SRTP packet dropped");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::RtpPacket;
    use crate::sdp::crypto::{self, Crypto};

    /// Both ends of a call, keyed by an SDES offer and answer.
    fn pair(suite: Suite) -> (SrtpSession, SrtpSession) {
        let offered = [Crypto { tag: 1, key: KeySalt::random(suite) }];
        let (line, answerer) = crypto::answer(&offered).unwrap();
        let offerer = crypto::accept(&offered, &[line]).unwrap();
        (SrtpSession::new(&offerer).unwrap(), SrtpSession::new(&answerer).unwrap())
    }

    fn rtp(seq: u16) -> Vec<u8> {
        let mut out = vec![0; 300];
        let payload = [0x55u8; 160];
        let n = RtpPacket {
            marker: false,
            payload_type: 0,
            seq,
            timestamp: 160 * u32::from(seq),
            ssrc: 7,
            payload: &payload,
        }
        .write(&mut out)
        .unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn every_suite_carries_audio_once_and_refuses_tampering() {
        for suite in Suite::ALL {
            let (mut a, mut b) = pair(suite);
            let (mut sealed, mut plain) = (Vec::new(), Vec::new());
            assert!(a.protect_rtp(&rtp(1), &mut sealed));
            assert_ne!(&sealed[12..172], &rtp(1)[12..], "{suite:?}: the payload is encrypted");
            assert!(b.unprotect_rtp(&sealed, &mut plain), "{suite:?}");
            assert_eq!(plain, rtp(1));
            assert!(!b.unprotect_rtp(&sealed, &mut plain), "{suite:?}: a replay is refused");
            let mut forged = Vec::new();
            assert!(a.protect_rtp(&rtp(2), &mut forged));
            forged[20] ^= 1;
            assert!(!b.unprotect_rtp(&forged, &mut plain), "{suite:?}: a changed byte fails authentication");
            // The other way, and RTCP.
            assert!(b.protect_rtp(&rtp(9), &mut sealed) && a.unprotect_rtp(&sealed, &mut plain));
            let report = [0x80u8, 201, 0, 1, 0, 0, 0, 7];
            assert!(a.protect_rtcp(&report, &mut sealed));
            assert!(b.unprotect_rtcp(&sealed, &mut plain));
            assert_eq!(plain, report);
            assert!(!b.unprotect_rtcp(&sealed, &mut plain), "{suite:?}: an SRTCP replay is refused");
        }
    }

    #[test]
    fn late_packets_within_the_window_count_and_older_ones_do_not() {
        let (mut a, mut b) = pair(Suite::AesCm128HmacSha1_80);
        let sealed: Vec<Vec<u8>> = (1..=300u16)
            .map(|s| {
                let mut out = Vec::new();
                assert!(a.protect_rtp(&rtp(s), &mut out));
                out
            })
            .collect();
        let mut plain = Vec::new();
        assert!(b.unprotect_rtp(&sealed[299], &mut plain));
        assert!(b.unprotect_rtp(&sealed[299 - 100], &mut plain), "100 late is in the window");
        assert!(!b.unprotect_rtp(&sealed[299 - 200], &mut plain), "200 late is out of it");
    }

    #[test]
    fn another_key_is_not_the_peers() {
        let (mut a, _) = pair(Suite::AeadAes128Gcm);
        let (_, mut c) = pair(Suite::AeadAes128Gcm);
        let mut sealed = Vec::new();
        assert!(a.protect_rtp(&rtp(1), &mut sealed));
        assert!(!c.unprotect_rtp(&sealed, &mut Vec::new()));
    }
}
