//! RFC 4733 telephone-event payloads (DTMF digits carried in RTP).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     event     |E|R| volume    |          duration             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use crate::CodecError;

/// The payload is always four bytes.
pub const PAYLOAD_LEN: usize = 4;

/// One DTMF key (RFC 4733 §3.2 events 0-16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DtmfKey {
    /// 0-9
    Digit(u8),
    /// `*`
    Star,
    /// `#`
    Pound,
    /// A-D
    Letter(char),
    /// Hook flash (event 16).
    Flash,
}

impl DtmfKey {
    /// The RFC 4733 event code.
    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            Self::Digit(d) => d.min(9),
            Self::Star => 10,
            Self::Pound => 11,
            Self::Letter(c) => 12 + (c.to_ascii_uppercase() as u8).saturating_sub(b'A').min(3),
            Self::Flash => 16,
        }
    }

    /// The key for an RFC 4733 event code, if it is a DTMF one.
    #[must_use]
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0..=9 => Self::Digit(code),
            10 => Self::Star,
            11 => Self::Pound,
            12..=15 => Self::Letter(char::from(b'A' + code - 12)),
            16 => Self::Flash,
            _ => return None,
        })
    }

    /// The character printed on the key (`'!'` for flash).
    #[must_use]
    pub fn as_char(self) -> char {
        match self {
            Self::Digit(d) => char::from(b'0' + d.min(9)),
            Self::Star => '*',
            Self::Pound => '#',
            Self::Letter(c) => c.to_ascii_uppercase(),
            Self::Flash => '!',
        }
    }

    /// The key for a printed character.
    #[must_use]
    pub fn from_char(c: char) -> Option<Self> {
        Some(match c {
            '0'..='9' => Self::Digit(c as u8 - b'0'),
            '*' => Self::Star,
            '#' => Self::Pound,
            'A'..='D' | 'a'..='d' => Self::Letter(c.to_ascii_uppercase()),
            '!' => Self::Flash,
            _ => return None,
        })
    }
}

/// One telephone-event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (0-255; 0-16 are DTMF).
    pub event: u8,
    /// Set on the final packets of the event.
    pub end: bool,
    /// Power level in -dBm0, 0..=63.
    pub volume: u8,
    /// Duration so far, in timestamp units of the RTP clock.
    pub duration: u16,
}

impl TelephoneEvent {
    /// The DTMF key this event stands for, if any.
    #[must_use]
    pub fn key(&self) -> Option<DtmfKey> {
        DtmfKey::from_code(self.event)
    }

    /// Writes the payload; returns [`PAYLOAD_LEN`].
    ///
    /// # Errors
    /// A volume over 63 or a short `out`.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, CodecError> {
        if self.volume > 63 {
            return Err(CodecError::TelephoneEvent { reason: "volume above 63" });
        }
        let capacity = out.len();
        let out =
            out.get_mut(..PAYLOAD_LEN).ok_or(CodecError::OutputTooSmall { needed: PAYLOAD_LEN, capacity })?;
        out[0] = self.event;
        out[1] = (u8::from(self.end) << 7) | self.volume;
        out[2..4].copy_from_slice(&self.duration.to_be_bytes());
        Ok(PAYLOAD_LEN)
    }

    /// Reads a payload. The reserved bit is ignored, as RFC 4733 §2.3.3 asks.
    ///
    /// # Errors
    /// Anything but exactly four bytes. (RFC 4733 allows several events in
    /// one packet only through redundancy, RFC 2198, which is decoded above this.)
    pub fn decode(payload: &[u8]) -> Result<Self, CodecError> {
        match payload {
            [event, flags, d0, d1] => Ok(Self {
                event: *event,
                end: flags & 0x80 != 0,
                volume: flags & 0x3F,
                duration: u16::from_be_bytes([*d0, *d1]),
            }),
            short if short.len() < PAYLOAD_LEN => {
                Err(CodecError::Truncated { len: short.len(), unit: PAYLOAD_LEN })
            }
            long => Err(CodecError::Oversize { len: long.len(), max: PAYLOAD_LEN }),
        }
    }
}

/// Packets while a key sounds (5 x 20 ms = 100 ms).
const TONE_TICKS: u32 = 5;
/// Copies of the end packet.
const END_PACKETS: u32 = 3;
/// Quiet ticks between keys.
const GAP_TICKS: u32 = 3;

/// One telephone-event packet to send now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPacket {
    /// The 4-byte RFC 4733 payload.
    pub payload: [u8; PAYLOAD_LEN],
    /// The first packet of a key: set the RTP marker and take a new
    /// timestamp (the key's start), kept by every packet of the key.
    pub first: bool,
}

/// Sends keys as telephone-events, one packet per 20 ms tick: each key
/// sounds for 100 ms (five packets, the duration growing), then three end
/// packets (the end is sent three times, RFC 4733 §2.5.1.4), then 60 ms of
/// quiet before the next key.
#[derive(Debug, Clone, Default)]
pub struct DtmfSender {
    queue: std::collections::VecDeque<u8>,
    /// The event sounding and the ticks it has had.
    current: Option<(u8, u32)>,
    samples_per_tick: u16,
}

impl DtmfSender {
    /// `samples_per_tick`: the RTP clock's samples in 20 ms (160 at 8 kHz).
    #[must_use]
    pub fn new(samples_per_tick: u16) -> Self {
        Self { samples_per_tick, ..Self::default() }
    }

    /// Queues `keys` (others than 0-9 * # A-D are skipped).
    pub fn push(&mut self, keys: &str) {
        let code = |c: char| DtmfKey::from_char(c).filter(|k| *k != DtmfKey::Flash).map(DtmfKey::code);
        self.queue.extend(keys.chars().filter_map(code));
    }

    /// True while keys are queued or sounding (or in the gap after one).
    #[must_use]
    pub fn is_active(&self) -> bool {
        self.current.is_some() || !self.queue.is_empty()
    }

    /// The next 20 ms: a packet, or `None` (in a gap, or nothing to send).
    pub fn tick(&mut self) -> Option<EventPacket> {
        if self.current.is_none() {
            self.current = Some((self.queue.pop_front()?, 0));
        }
        let (event, ticks) = self.current.as_mut()?;
        *ticks += 1;
        let (event, n) = (*event, *ticks);
        if n > TONE_TICKS + END_PACKETS + GAP_TICKS - 1 {
            self.current = None;
        }
        if n > TONE_TICKS + END_PACKETS {
            return None;
        }
        let duration = u32::from(self.samples_per_tick) * n.min(TONE_TICKS);
        let event = TelephoneEvent {
            event,
            end: n > TONE_TICKS,
            // -10 dBm0.
            volume: 10,
            duration: u16::try_from(duration).unwrap_or(u16::MAX),
        };
        let mut payload = [0; PAYLOAD_LEN];
        event.encode(&mut payload).ok()?;
        Some(EventPacket { payload, first: n == 1 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pound_end_packet_matches_the_rfc_layout() -> Result<(), CodecError> {
        let ev = TelephoneEvent { event: 11, end: true, volume: 10, duration: 1600 };
        let mut out = [0u8; 4];
        ev.encode(&mut out)?;
        assert_eq!(out, [11, 0x80 | 10, 0x06, 0x40]);
        assert_eq!(TelephoneEvent::decode(&out)?, ev);
        assert_eq!(ev.key(), Some(DtmfKey::Pound));
        Ok(())
    }

    #[test]
    fn every_key_maps_to_its_code_and_back() {
        for code in 0..=16u8 {
            let key = DtmfKey::from_code(code).map(|k| (k.code(), DtmfKey::from_char(k.as_char())));
            assert_eq!(key.map(|k| k.0), Some(code));
            assert_eq!(key.and_then(|k| k.1).map(DtmfKey::code), Some(code));
        }
        assert_eq!(DtmfKey::from_code(17), None);
    }

    #[test]
    fn reserved_bit_is_ignored_and_wrong_lengths_are_errors() {
        let ev = TelephoneEvent::decode(&[5, 0x40 | 7, 0, 160]);
        assert!(matches!(ev, Ok(TelephoneEvent { event: 5, end: false, volume: 7, duration: 160 })));
        assert!(TelephoneEvent::decode(&[1, 2, 3]).is_err());
        assert!(TelephoneEvent::decode(&[1, 2, 3, 4, 5]).is_err());
    }

    #[test]
    fn each_key_sounds_100_ms_ends_three_times_then_rests_60_ms() {
        let mut s = DtmfSender::new(160);
        s.push("1#x");
        let sent: Vec<Option<(u8, bool, u16, bool)>> = (0..24)
            .map(|_| {
                s.tick().map(|p| {
                    let e = TelephoneEvent::decode(&p.payload).expect("a payload");
                    (e.event, e.end, e.duration, p.first)
                })
            })
            .collect();
        let key = |code| {
            vec![
                Some((code, false, 160, true)),
                Some((code, false, 320, false)),
                Some((code, false, 480, false)),
                Some((code, false, 640, false)),
                Some((code, false, 800, false)),
                Some((code, true, 800, false)),
                Some((code, true, 800, false)),
                Some((code, true, 800, false)),
                None,
                None,
                None,
            ]
        };
        let mut expected = key(1);
        expected.extend(key(11));
        expected.extend([None, None]);
        assert_eq!(sent, expected);
        assert!(!s.is_active());
    }
}
