//! Acoustic echo cancellation: the agent's own voice, come back in the
//! caller's audio (a handset's or speakerphone's echo, 100-300 ms late and
//! quieter), taken out before voice activity detection and the recogniser,
//! so the agent does not interrupt itself while the caller's real barge-in
//! still gets through. Muting the caller while the agent talks would lose
//! that barge-in.
//!
//! Speex's MDF canceller (through `aec-rs`): an adaptive filter learns the
//! echo path from what was sent (the reference) and subtracts its estimate
//! from what came back. When the agent is silent the reference is zeros and
//! the caller's audio passes as it came. While the agent talks, what is left
//! counts as the caller only when it is louder than an echo could be (a
//! double-talk check), so an echo the filter has not learnt yet does not
//! stop the agent either.

use super::Frame;
use crate::dsp::vad::FRAME_SAMPLES;

/// The longest echo path the filter models: the handset's delay (up to
/// 300 ms) plus both sides' jitter buffers and the network.
pub const TAIL_MS: u32 = 500;

/// Frames of the reference the double-talk check looks back over: the tail.
const TAIL_FRAMES: usize = (TAIL_MS / 20) as usize;

/// The loudest an echo can be against the agent's voice that caused it, in
/// energy: 6 dB down (the classic Geigel assumption: a handset's echo
/// returns at least that much quieter). Used until the call's own echo is
/// measured, and never exceeded.
const ECHO_CEILING: f32 = 0.25;

/// How far over the measured echo's level the caller must be, in energy (3 dB).
const ECHO_MARGIN: f32 = 2.0;

/// Agent audio this loud (mean energy, about -50 dBFS) counts as talking
/// when the echo is measured.
const TALKING: f32 = 100.0;

/// How fast the measured echo level follows each half second's (per frame).
const ECHO_FOLLOW: f32 = 0.1;

/// One call's echo canceller, at 16 kHz in 20 ms frames.
pub struct EchoCanceller {
    aec: Speex,
    out: Frame,
    /// Energy of each reference frame of the last two tails, newest last.
    sent_energy: std::collections::VecDeque<f32>,
    /// Energy of each frame that came back over the last tail, newest last.
    came_energy: std::collections::VecDeque<f32>,
    /// The echo's level against the agent's voice, in energy, measured
    /// while the agent talks: none yet, or what came back over the last
    /// half second against what was sent over it (and the half second
    /// before, when the agent talked then too), followed smoothly.
    echo_return: Option<f32>,
}

/// Mean energy of a frame.
fn energy(frame: &[i16]) -> f32 {
    frame.iter().map(|&s| f32::from(s) * f32::from(s)).sum::<f32>() / frame.len().max(1) as f32
}

/// The Speex state wrapped so it can live in a call's task.
struct Speex(aec_rs::Aec);

// SAFETY: `aec_rs::Aec` owns heap-allocated Speex echo and preprocessor
// states through raw pointers, which is why it is not `Send`. Speex keeps no
// thread-local or global state, so moving the sole owner to another thread is
// sound; it is never shared (`&mut self` for every call), so it is not `Sync`.
unsafe impl Send for Speex {}

impl std::fmt::Debug for EchoCanceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoCanceller").field("tail_ms", &TAIL_MS).finish_non_exhaustive()
    }
}

impl Default for EchoCanceller {
    fn default() -> Self {
        Self::new()
    }
}

impl EchoCanceller {
    /// A canceller that has learnt nothing yet.
    #[must_use]
    pub fn new() -> Self {
        let config = aec_rs::AecConfig {
            frame_size: FRAME_SAMPLES,
            filter_length: (TAIL_MS * 16) as i32,
            sample_rate: 16_000,
            // The linear filter alone. Speex's preprocessor (residual echo
            // and noise suppression) also took 13 dB off the caller's voice
            // while both talked (the unit test below): barge-in needs it.
            enable_preprocess: false,
        };
        Self {
            aec: Speex(aec_rs::Aec::new(&config)),
            out: [0; FRAME_SAMPLES],
            sent_energy: std::collections::VecDeque::from(vec![0.0; 2 * TAIL_FRAMES]),
            came_energy: std::collections::VecDeque::from(vec![0.0; TAIL_FRAMES]),
            echo_return: None,
        }
    }

    /// The caller's frame with the echo of `sent` (the agent's audio sent
    /// one frame before this one arrived; zeros when it was silent) taken
    /// out, and whether the caller is heard in it: louder, after the
    /// canceller, than an echo of the agent's last half second could be
    /// (3 dB over the echo level this call has shown, 6 dB under the agent
    /// until it has shown one). An echo the filter has not learnt yet (the
    /// first seconds of a call) then does not count as the caller; a caller
    /// who talks over the agent does, and a quiet one too where the line
    /// brings back little or no echo.
    pub fn process(&mut self, caller: &Frame, sent: &Frame) -> (&Frame, bool) {
        self.aec.0.cancel_echo(caller, sent, &mut self.out);
        self.sent_energy.pop_front();
        self.sent_energy.push_back(energy(sent));
        self.came_energy.pop_front();
        self.came_energy.push_back(energy(caller));
        // The agent talked through the last tail: the echo of what it said
        // then (and in the tail before, if it talked) is in what came back.
        let (before, last) = self
            .sent_energy
            .iter()
            .enumerate()
            .fold((0.0, 0.0), |(b, l), (i, &e)| if i < TAIL_FRAMES { (b + e, l) } else { (b, l + e) });
        let floor = TALKING * TAIL_FRAMES as f32;
        if last > floor {
            let sent = if before > floor { (before + last) / 2.0 } else { last };
            let ratio = (self.came_energy.iter().sum::<f32>() / sent).min(ECHO_CEILING);
            let level = self.echo_return.unwrap_or(ECHO_CEILING / ECHO_MARGIN);
            self.echo_return = Some(level + ECHO_FOLLOW * (ratio - level));
        }
        let ceiling = self.echo_return.map_or(ECHO_CEILING, |r| (ECHO_MARGIN * r).min(ECHO_CEILING));
        let loudest_sent = self.sent_energy.iter().skip(TAIL_FRAMES).copied().fold(0.0, f32::max);
        let heard = energy(&self.out) > ceiling * loudest_sent;
        (&self.out, heard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A voice-like test signal: a few harmonics under a syllable envelope.
    fn voice(n: usize, seed: f32) -> Vec<i16> {
        (0..n)
            .map(|i| {
                let t = i as f32 / 16_000.0;
                let envelope = (std::f32::consts::PI * 4.0 * t + seed).sin().abs();
                let tone: f32 = (1..6)
                    .map(|h| {
                        (2.0 * std::f32::consts::PI * 140.0 * seed.max(1.0) * h as f32 * t).sin() / h as f32
                    })
                    .sum();
                (envelope * tone * 6000.0) as i16
            })
            .collect()
    }

    fn power(frames: &[i16]) -> f64 {
        frames.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / frames.len().max(1) as f64
    }

    #[test]
    fn the_agents_echo_is_taken_out_and_the_callers_voice_is_kept() {
        let mut aec = EchoCanceller::new();
        let agent = voice(16_000 * 8, 1.0);
        let caller_voice = voice(16_000 * 8, 1.7);
        let delay = 16_000 / 5; // 200 ms
        let mut echo_out = Vec::new();
        let mut talk_out = Vec::new();
        let mut talk_in = Vec::new();
        for (i, sent) in agent.chunks_exact(FRAME_SAMPLES).enumerate() {
            let start = i * FRAME_SAMPLES;
            let mut caller: Frame = [0; FRAME_SAMPLES];
            for (j, s) in caller.iter_mut().enumerate() {
                let echo = (start + j).checked_sub(delay + FRAME_SAMPLES).map_or(0, |k| agent[k] / 4);
                // The caller talks over the agent in the last two seconds.
                let own = if start >= 16_000 * 6 { caller_voice[start + j] } else { 0 };
                *s = echo.saturating_add(own);
            }
            let mut frame: Frame = [0; FRAME_SAMPLES];
            frame.copy_from_slice(sent);
            let (out, _) = aec.process(&caller, &frame);
            match start {
                s if (16_000 * 4..16_000 * 6).contains(&s) => echo_out.extend_from_slice(out),
                s if s >= 16_000 * 6 => {
                    talk_out.extend_from_slice(out);
                    talk_in.extend(&caller_voice[s..s + FRAME_SAMPLES]);
                }
                _ => {}
            }
        }
        let echo_in = power(&agent[..16_000 * 2]) / 16.0;
        let suppressed = 10.0 * (echo_in / power(&echo_out).max(1.0)).log10();
        assert!(suppressed > 20.0, "echo down by {suppressed:.1} dB");
        let kept = 10.0 * (power(&talk_out) / power(&talk_in)).log10();
        println!("echo down by {suppressed:.1} dB; the caller's voice over it changed by {kept:.1} dB");
        assert!(kept > -6.0, "the caller's voice changed by {kept:.1} dB");
    }
}
