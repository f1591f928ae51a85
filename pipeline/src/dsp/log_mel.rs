//! Whisper's log-mel spectrogram: 16 kHz audio, a 400-point periodic Hann
//! window every 160 samples (centred, reflect-padded, as `torch.stft`), 80
//! Slaney mel bands, log10, floored 8 below the window's peak, scaled by
//! `(x + 4) / 4`. Whisper reads it, and so does Smart Turn (trained on
//! Whisper's encoder).

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

/// Samples per second.
pub const RATE: usize = 16_000;
/// Samples between frames.
pub const HOP: usize = 160;
/// Mel bands.
pub const N_MELS: usize = 80;
const N_FFT: usize = 400;
const BINS: usize = N_FFT / 2 + 1;

/// The filterbank and FFT plan, made once and shared.
#[derive(Clone)]
pub struct LogMel {
    /// Slaney mel filterbank, `N_MELS` rows of `BINS`.
    filters: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
}

impl std::fmt::Debug for LogMel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogMel")
    }
}

impl Default for LogMel {
    fn default() -> Self {
        Self::new()
    }
}

impl LogMel {
    /// Whisper's parameters.
    #[must_use]
    pub fn new() -> Self {
        let bank = mel_spec::mel::mel(RATE as f64, N_FFT, N_MELS, None, None, false, true);
        let filters: Vec<f32> = bank.iter().map(|&w| w as f32).collect();
        debug_assert_eq!(filters.len(), N_MELS * BINS, "mel_spec's filterbank shape");
        // Periodic Hann window, as torch.hann_window.
        let window = (0..N_FFT)
            .map(|n| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * n as f32 / N_FFT as f32).cos())
            .collect();
        Self { filters, fft: RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT), window }
    }

    /// `[N_MELS][frames]` features of `audio` (16 kHz, full scale 1.0),
    /// zero-padded or cut to `frames * HOP` samples.
    #[must_use]
    pub fn compute(&self, audio: &[f32], frames: usize) -> Vec<f32> {
        let samples = frames * HOP;
        let pad = N_FFT / 2;
        let mut padded = vec![0f32; samples + 2 * pad];
        let n = audio.len().min(samples);
        padded[pad..pad + n].copy_from_slice(&audio[..n]);
        for i in 0..pad {
            padded[pad - 1 - i] = padded[pad + 1 + i];
            padded[pad + samples + i] = padded[pad + samples - 2 - i];
        }
        let mut frame = vec![0f32; N_FFT];
        let mut spectrum = self.fft.make_output_vec();
        let mut power = vec![0f32; BINS];
        let mut mel = vec![0f32; N_MELS * frames];
        for t in 0..frames {
            let start = t * HOP;
            for ((f, &a), &w) in frame.iter_mut().zip(&padded[start..start + N_FFT]).zip(&self.window) {
                *f = a * w;
            }
            // Lengths match the plan, so the FFT cannot fail.
            if self.fft.process(&mut frame, &mut spectrum).is_err() {
                continue;
            }
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.norm_sqr();
            }
            for m in 0..N_MELS {
                let row = &self.filters[m * BINS..(m + 1) * BINS];
                let energy: f32 = row.iter().zip(&power).map(|(w, p)| w * p).sum();
                mel[m * frames + t] = energy.max(1e-10).log10();
            }
        }
        let max = mel.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for v in &mut mel {
            *v = ((*v).max(max - 8.0) + 4.0) / 4.0;
        }
        mel
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tone_lights_the_band_of_its_frequency_and_silence_sits_at_the_floor() {
        let tone: Vec<f32> = (0..RATE)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / RATE as f32).sin())
            .collect();
        let frames = 200; // two seconds: one of tone, one of padding
        let mel = LogMel::new().compute(&tone, frames);
        assert_eq!(mel.len(), N_MELS * frames);
        let at = |m: usize, t: usize| mel[m * frames + t];
        let loudest = (0..N_MELS).max_by(|&a, &b| at(a, 50).total_cmp(&at(b, 50))).unwrap_or(0);
        // 1 kHz is near band 28 of Whisper's 80 Slaney bands (0-8 kHz).
        assert!((24..=32).contains(&loudest), "band {loudest}");
        // Padding is 8 below the peak: (max - 8 + 4) / 4.
        let max = mel.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert!((at(loudest, 180) - (max - 2.0)).abs() < 1e-5, "{} vs {max}", at(loudest, 180));
    }
}
