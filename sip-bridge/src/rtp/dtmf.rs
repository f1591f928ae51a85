//! Sending keys as RFC 4733 telephone-events, one packet per 20 ms tick:
//! each key sounds for 100 ms (five packets, the duration growing), then
//! three end packets (the end is sent three times, RFC 4733 §2.5.1.4),
//! then 60 ms of quiet before the next key. Pure.

use std::collections::VecDeque;

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
    pub payload: [u8; 4],
    /// The first packet of a key: set the RTP marker and take a new
    /// timestamp (the key's start), kept by every packet of the key.
    pub first: bool,
}

/// Keys waiting to be sent, and the one sounding.
#[derive(Debug, Clone, Default)]
pub struct DtmfSender {
    queue: VecDeque<u8>,
    /// The event sounding and the ticks it has had.
    current: Option<(u8, u32)>,
    samples_per_tick: u16,
}

/// The RFC 4733 event code of a keypad key.
#[must_use]
pub fn event_code(key: char) -> Option<u8> {
    Some(match key.to_ascii_uppercase() {
        c @ '0'..='9' => c as u8 - b'0',
        '*' => 10,
        '#' => 11,
        c @ 'A'..='D' => 12 + (c as u8 - b'A'),
        _ => return None,
    })
}

impl DtmfSender {
    /// `samples_per_tick`: the RTP clock's samples in 20 ms (160 at 8 kHz).
    #[must_use]
    pub fn new(samples_per_tick: u16) -> Self {
        Self { samples_per_tick, ..Self::default() }
    }

    /// Queues `keys` (others than 0-9 * # A-D are skipped).
    pub fn push(&mut self, keys: &str) {
        self.queue.extend(keys.chars().filter_map(event_code));
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
        let end = n > TONE_TICKS;
        let duration = u32::from(self.samples_per_tick) * n.min(TONE_TICKS);
        let duration = u16::try_from(duration).unwrap_or(u16::MAX);
        // Volume 10 (-10 dBm0); the E bit on the end packets.
        let flags = if end { 0x80 | 10 } else { 10 };
        let [hi, lo] = duration.to_be_bytes();
        Some(EventPacket { payload: [event, flags, hi, lo], first: n == 1 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_sounds_100_ms_ends_three_times_then_rests_60_ms() {
        let mut s = DtmfSender::new(160);
        s.push("1#x");
        let ticks: Vec<Option<EventPacket>> = (0..24).map(|_| s.tick()).collect();
        let sent: Vec<Option<(u8, bool, u16, bool)>> = ticks
            .iter()
            .map(|t| {
                t.map(|p| {
                    (
                        p.payload[0],
                        p.payload[1] & 0x80 != 0,
                        u16::from_be_bytes([p.payload[2], p.payload[3]]),
                        p.first,
                    )
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

    #[test]
    fn keypad_codes() {
        let codes: Vec<Option<u8>> = "09*#AdE".chars().map(event_code).collect();
        assert_eq!(codes, [Some(0), Some(9), Some(10), Some(11), Some(12), Some(15), None]);
    }
}
