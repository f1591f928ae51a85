//! SDES (RFC 4568): SRTP keys carried in SDP as `a=crypto` lines, which is
//! why they are only ever sent over TLS signalling.
//!
//! ```text
//! a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:<base64 of key||salt>[|2^31][|1:4] [session params]
//! ```
//!
//! The suites we take are those `webrtc-srtp` implements with a 10-byte
//! tag or AEAD. Lines with an MKI, or with session parameters (unencrypted
//! or unauthenticated SRTP, other KDR), are passed over: we never agree to
//! less protection than the suite names.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

/// An SRTP crypto suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    AesCm128HmacSha1_80,
    AesCm256HmacSha1_80,
    /// RFC 7714.
    AeadAes128Gcm,
    AeadAes256Gcm,
}

impl Suite {
    /// Ours, best first: the order of our offers.
    pub const ALL: [Self; 4] =
        [Self::AeadAes256Gcm, Self::AeadAes128Gcm, Self::AesCm256HmacSha1_80, Self::AesCm128HmacSha1_80];

    /// Its name in SDP.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Self::AesCm256HmacSha1_80 => "AES_256_CM_HMAC_SHA1_80",
            Self::AeadAes128Gcm => "AEAD_AES_128_GCM",
            Self::AeadAes256Gcm => "AEAD_AES_256_GCM",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Bytes of master key and of master salt.
    #[must_use]
    pub const fn lengths(self) -> (usize, usize) {
        match self {
            Self::AesCm128HmacSha1_80 => (16, 14),
            Self::AesCm256HmacSha1_80 => (32, 14),
            Self::AeadAes128Gcm => (16, 12),
            Self::AeadAes256Gcm => (32, 12),
        }
    }
}

/// One side's master key and salt for a suite.
#[derive(Clone, PartialEq, Eq)]
pub struct KeySalt {
    pub suite: Suite,
    /// The master key, then the master salt.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for KeySalt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never a key in a log.
        f.debug_struct("KeySalt").field("suite", &self.suite).finish_non_exhaustive()
    }
}

impl KeySalt {
    /// A fresh random key and salt.
    #[must_use]
    pub fn random(suite: Suite) -> Self {
        let (k, s) = suite.lengths();
        let mut bytes = vec![0u8; k + s];
        rand::fill(&mut bytes[..]);
        Self { suite, bytes }
    }

    /// The master key.
    #[must_use]
    pub fn key(&self) -> &[u8] {
        &self.bytes[..self.suite.lengths().0]
    }

    /// The master salt.
    #[must_use]
    pub fn salt(&self) -> &[u8] {
        &self.bytes[self.suite.lengths().0..]
    }
}

/// One `a=crypto` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crypto {
    pub tag: u32,
    pub key: KeySalt,
}

impl Crypto {
    /// Reads an `a=crypto` value (after `crypto:`); `None` for a line we
    /// cannot or will not use (unknown suite, MKI, several keys, session
    /// parameters, a key of the wrong length).
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        let mut fields = value.split_whitespace();
        let tag = fields.next()?.parse().ok().filter(|t: &u32| *t < 1_000_000_000)?;
        let suite = Suite::from_name(fields.next()?)?;
        let key_params = fields.next()?;
        if fields.next().is_some() || key_params.contains(';') {
            return None;
        }
        let inline = key_params.strip_prefix("inline:")?;
        let mut parts = inline.split('|');
        let encoded = parts.next()?;
        // Lifetime (`2^31` or a number) is allowed; an MKI (`1:4`) is not.
        if parts.any(|p| p.contains(':')) {
            return None;
        }
        let bytes = STANDARD.decode(encoded).or_else(|_| STANDARD_NO_PAD.decode(encoded)).ok()?;
        let (k, s) = suite.lengths();
        (bytes.len() == k + s).then_some(Self { tag, key: KeySalt { suite, bytes } })
    }

    /// The `a=crypto` value.
    #[must_use]
    pub fn to_value(&self) -> String {
        format!("{} {} inline:{}", self.tag, self.key.suite.name(), STANDARD.encode(&self.key.bytes))
    }
}

/// What SDES settled for a call: its suite and both sides' keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    /// What we protect our packets with.
    pub local: KeySalt,
    /// What the peer protects its packets with.
    pub remote: KeySalt,
}

/// Our offer's lines: each suite with a fresh key, tags from 1.
#[must_use]
pub fn offer() -> Vec<Crypto> {
    (1u32..).zip(Suite::ALL).map(|(tag, suite)| Crypto { tag, key: KeySalt::random(suite) }).collect()
}

/// Our answer to `offered`: the peer's first line we take, with a fresh
/// key of ours under the same tag.
#[must_use]
pub fn answer(offered: &[Crypto]) -> Option<(Crypto, SrtpKeys)> {
    let theirs = offered.first()?;
    let ours = Crypto { tag: theirs.tag, key: KeySalt::random(theirs.key.suite) };
    let keys = SrtpKeys { local: ours.key.clone(), remote: theirs.key.clone() };
    Some((ours, keys))
}

/// Which of our `offered` lines the answer's `answered` took (same tag and
/// suite): the keys of both sides.
#[must_use]
pub fn accept(offered: &[Crypto], answered: &[Crypto]) -> Option<SrtpKeys> {
    let theirs = answered.first()?;
    let ours = offered.iter().find(|c| c.tag == theirs.tag && c.key.suite == theirs.key.suite)?;
    Some(SrtpKeys { local: ours.key.clone(), remote: theirs.key.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_4568_example_is_read() {
        // RFC 4568 §4's line: a 30-byte key and salt, a lifetime and an MKI.
        let with_mki = "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4";
        assert_eq!(Crypto::parse(with_mki), None, "an MKI is not taken");
        let line = "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20";
        let c = Crypto::parse(line).unwrap();
        assert_eq!((c.tag, c.key.suite), (1, Suite::AesCm128HmacSha1_80));
        assert_eq!(c.key.key().len(), 16);
        assert_eq!(c.key.salt().len(), 14);
        assert_eq!(&c.key.bytes[..4], b"=-n@");
        assert_eq!(Crypto::parse(&c.to_value()).unwrap(), c);
    }

    #[test]
    fn weakened_or_malformed_lines_are_passed_over() {
        let key = STANDARD.encode([7u8; 30]);
        for bad in [
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key} UNENCRYPTED_SRTP"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key} UNAUTHENTICATED_SRTP"),
            format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key};inline:{key}"),
            format!("1 AES_CM_128_HMAC_SHA1_32 inline:{key}"),
            format!("1 F8_128_HMAC_SHA1_80 inline:{key}"),
            format!("1 AEAD_AES_128_GCM inline:{key}"), // 30 bytes where GCM wants 28
            format!("x AES_CM_128_HMAC_SHA1_80 inline:{key}"),
            "1 AES_CM_128_HMAC_SHA1_80 inline:!!!".to_owned(),
            "1 AES_CM_128_HMAC_SHA1_80".to_owned(),
        ] {
            assert_eq!(Crypto::parse(&bad), None, "{bad}");
        }
    }

    #[test]
    fn an_answer_takes_the_first_line_with_a_key_of_its_own() {
        let offered: Vec<Crypto> = offer();
        assert_eq!(offered.len(), 4);
        let (line, keys) = answer(&offered[1..]).unwrap();
        assert_eq!((line.tag, line.key.suite), (2, Suite::AeadAes128Gcm));
        assert_ne!(keys.local.bytes, keys.remote.bytes);
        assert_eq!(keys.remote, offered[1].key);
        // The offerer reads the answer back to the same pair, seen from its side.
        let mine = accept(&offered, &[line]).unwrap();
        assert_eq!((mine.local, mine.remote), (keys.remote, keys.local));
        // An answer that names a tag we did not offer is no agreement.
        let stranger = Crypto { tag: 9, key: KeySalt::random(Suite::AeadAes128Gcm) };
        assert_eq!(accept(&offered, &[stranger]), None);
    }

    #[test]
    fn keys_stay_out_of_debug_output() {
        let k = KeySalt { suite: Suite::AesCm128HmacSha1_80, bytes: vec![0xAB; 30] };
        assert!(!format!("{k:?}").contains("171"));
    }
}
