//! What a caller on hold hears: a soft, slow chime (C, E, G, E, then a
//! rest), made here at 16 kHz so it needs no file and never ends. Quiet
//! (peaks near -20 dBFS) and with gentle edges, so it is not mistaken for a
//! tone the far end acts on.

use std::f64::consts::TAU;

use super::Frame;

const RATE: f64 = 16_000.0;
/// Each note's length, and the rest after the four.
const NOTE_SAMPLES: u64 = 6_400;
const NOTES: [f64; 5] = [523.25, 659.25, 783.99, 659.25, 0.0];
const PEAK: f64 = 3_000.0;

/// An endless hold tune, a frame at a time.
#[derive(Debug, Clone, Default)]
pub struct HoldMusic {
    sample: u64,
}

impl HoldMusic {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The next 20 ms of the tune.
    pub fn next_frame(&mut self, out: &mut Frame) {
        for s in out.iter_mut() {
            let note = (self.sample / NOTE_SAMPLES) % NOTES.len() as u64;
            let hz = NOTES[note as usize];
            let t = (self.sample % NOTE_SAMPLES) as f64 / RATE;
            // A quick rise, then a bell-like decay; an octave above adds warmth.
            let envelope = (t / 0.02).min(1.0) * (-t * 5.0).exp();
            let tone = (TAU * hz * t).sin() + 0.3 * (TAU * 2.0 * hz * t).sin();
            *s = (PEAK / 1.3 * envelope * tone) as i16;
            self.sample += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::vad::FRAME_SAMPLES;

    #[test]
    fn the_tune_is_soft_never_silent_for_long_and_repeats() {
        let mut music = HoldMusic::new();
        let mut frame = [0i16; FRAME_SAMPLES];
        let mut loud_frames = 0;
        let mut first_cycle = Vec::new();
        // Two cycles of five 400 ms slots: 200 frames.
        for i in 0..200 {
            music.next_frame(&mut frame);
            let peak = frame.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
            assert!(peak <= 3_000, "frame {i} peaks at {peak}");
            if peak > 300 {
                loud_frames += 1;
            }
            if i < 100 {
                first_cycle.push(frame);
            } else {
                assert_eq!(frame, first_cycle[i - 100], "frame {i} differs from a cycle before");
            }
        }
        // Four notes sound, the rest is quiet.
        assert!((80..=160).contains(&loud_frames), "{loud_frames} loud frames of 200");
    }
}
