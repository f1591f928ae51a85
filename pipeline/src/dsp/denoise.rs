//! Noise suppression of the caller's audio for voice activity detection:
//! RNNoise (through `nnnoiseless`, pure Rust, its model built in), a small
//! recurrent network that estimates, 100 times a second, how much of each
//! band is noise, and turns those bands down.
//!
//! RNNoise runs at 48 kHz on 10 ms frames, so each 20 ms frame of the
//! call's 16 kHz audio goes up to 48 kHz, through two RNNoise frames, and
//! back down. Phone audio (8 kHz, upsampled to 16 kHz before it gets here)
//! has nothing above 4 kHz; RNNoise's upper bands then hold only silence,
//! which it leaves as it is. The resamplers and RNNoise add about 10 ms
//! of delay, the same for every frame, so the endpointer's timing is
//! unchanged relative to itself.
//!
//! Only the voice activity detector hears its output: the recogniser, the
//! turn model and the recording get what the caller sent (RNNoise raised
//! Whisper tiny.en's word error rate on every background measured; see
//! BENCHMARKS.md).

use nnnoiseless::DenoiseState;
use voxgate_codecs::SampleRate;
use voxgate_codecs::resample::FrameResampler;

use super::Frame;
use crate::dsp::vad::FRAME_SAMPLES;

/// 20 ms at 48 kHz.
const FRAME_48K: usize = 960;

/// One call's noise suppressor, at 16 kHz in 20 ms frames.
pub struct NoiseSuppressor {
    rnnoise: Box<DenoiseState<'static>>,
    up: FrameResampler,
    down: FrameResampler,
    wide: [i16; FRAME_48K],
    input: [f32; FRAME_48K],
    output: [f32; FRAME_48K],
    out: Frame,
}

impl std::fmt::Debug for NoiseSuppressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoiseSuppressor").finish_non_exhaustive()
    }
}

impl Default for NoiseSuppressor {
    fn default() -> Self {
        Self::new()
    }
}

impl NoiseSuppressor {
    /// # Panics
    /// Never: 16 and 48 kHz are rates the resampler takes.
    #[must_use]
    pub fn new() -> Self {
        Self {
            rnnoise: DenoiseState::new(),
            up: FrameResampler::new(SampleRate::HZ_16000, SampleRate::HZ_48000).expect("16 to 48 kHz"),
            down: FrameResampler::new(SampleRate::HZ_48000, SampleRate::HZ_16000).expect("48 to 16 kHz"),
            wide: [0; FRAME_48K],
            input: [0.0; FRAME_48K],
            output: [0.0; FRAME_48K],
            out: [0; FRAME_SAMPLES],
        }
    }

    /// The caller's 20 ms `frame` with its noise turned down.
    pub fn process(&mut self, frame: &Frame) -> &Frame {
        // The frame sizes are fixed: the resamplers do not fail on them.
        if self.up.process(frame, &mut self.wide).is_err() {
            self.out = *frame;
            return &self.out;
        }
        for (f, &s) in self.input.iter_mut().zip(&self.wide) {
            *f = f32::from(s);
        }
        for (out, input) in self
            .output
            .chunks_exact_mut(DenoiseState::FRAME_SIZE)
            .zip(self.input.chunks_exact(DenoiseState::FRAME_SIZE))
        {
            self.rnnoise.process_frame(out, input);
        }
        for (w, &f) in self.wide.iter_mut().zip(&self.output) {
            *w = f.round().clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16;
        }
        if self.down.process(&self.wide, &mut self.out).is_err() {
            self.out = *frame;
        }
        &self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn energy(x: &[i16]) -> f64 {
        x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64
    }

    /// A deterministic noise: a linear congruential generator's high bits.
    fn noise(n: usize, amplitude: f64, seed: &mut u32) -> Vec<i16> {
        (0..n)
            .map(|_| {
                *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((f64::from(*seed >> 16) / 32768.0 - 1.0) * amplitude) as i16
            })
            .collect()
    }

    #[test]
    fn steady_noise_is_turned_down_and_a_voice_like_tone_is_kept() {
        let mut ns = NoiseSuppressor::new();
        let mut seed = 7;
        let hiss = noise(16_000 * 3, 2000.0, &mut seed);
        let mut after = Vec::new();
        for f in hiss.chunks_exact(FRAME_SAMPLES) {
            after.extend_from_slice(ns.process(f.try_into().expect("a frame")));
        }
        // Past the first second (the network learning the noise).
        let (before, after) = (energy(&hiss[16_000..]), energy(&after[16_000..]));
        assert!(after < before / 10.0, "white noise down by 10 dB at least: {before} -> {after}");
        // A harmonic tone at a voice's pitch, as loud as speech, stays (mostly).
        let voiced: Vec<i16> = (0..16_000 * 2)
            .map(|i| {
                let t = f64::from(i) / 16_000.0;
                ((1..=8)
                    .map(|h| (2.0 * std::f64::consts::PI * 150.0 * f64::from(h) * t).sin() / f64::from(h))
                    .sum::<f64>()
                    * 4000.0) as i16
            })
            .collect();
        let mut kept = Vec::new();
        for f in voiced.chunks_exact(FRAME_SAMPLES) {
            kept.extend_from_slice(ns.process(f.try_into().expect("a frame")));
        }
        assert!(energy(&kept[16_000..]) > energy(&voiced[16_000..]) / 4.0, "a voiced sound loses under 6 dB");
    }
}
