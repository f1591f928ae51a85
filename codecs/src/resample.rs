//! Fixed-frame resampling between 8, 16, 22.05, 24, 44.1 and 48 kHz over `rubato`.
//!
//! Uses rubato's FFT resampler with both chunk sizes fixed, so every 20 ms
//! frame in gives exactly one 20 ms frame out, and the filter state carries
//! across frames (no clicks at frame boundaries). Chosen over rubato's sinc
//! resampler because it was 5-7 times faster for 20 ms chunks (see
//! BENCHMARKS.md); the price is a fixed delay, reported by [`FrameResampler::delay_samples`].

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

use crate::pcm::{f32_to_i16, i16_to_f32};
use crate::{CodecError, SampleRate};

fn check_rate(rate: SampleRate) -> Result<(), CodecError> {
    match rate.hz() {
        // 22050 and 44100: Piper voices and CD-rate files (441 and 882 samples per 20 ms).
        8_000 | 16_000 | 22_050 | 24_000 | 44_100 | 48_000 => Ok(()),
        _ => Err(CodecError::UnsupportedRate { rate }),
    }
}

/// Resamples mono 20 ms frames from one rate to another.
pub struct FrameResampler {
    from: SampleRate,
    to: SampleRate,
    /// `None` when the rates are equal: frames pass through.
    fft: Option<Fft<f32>>,
    input: Vec<f32>,
    output: Vec<f32>,
}

impl std::fmt::Debug for FrameResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameResampler")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("delay_samples", &self.delay_samples())
            .finish_non_exhaustive()
    }
}

impl FrameResampler {
    /// Builds a resampler from `from` to `to` (each one of 8, 16, 22.05, 24, 44.1, 48 kHz).
    ///
    /// # Errors
    /// An unsupported rate, or rubato refusing the pair.
    pub fn new(from: SampleRate, to: SampleRate) -> Result<Self, CodecError> {
        check_rate(from)?;
        check_rate(to)?;
        let (n_in, n_out) = (from.samples_per_frame(), to.samples_per_frame());
        let fft = if from == to {
            None
        } else {
            let fft = Fft::new(from.hz() as usize, to.hz() as usize, n_in, 1, FixedSync::Both)?;
            // 20 ms at these rates is a whole multiple of rubato's minimum block,
            // so the chunk sizes come out exactly as asked.
            debug_assert_eq!(fft.input_frames_next(), n_in);
            debug_assert_eq!(fft.output_frames_next(), n_out);
            Some(fft)
        };
        Ok(Self { from, to, fft, input: vec![0.0; n_in], output: vec![0.0; n_out] })
    }

    /// The input rate.
    #[must_use]
    pub fn from_rate(&self) -> SampleRate {
        self.from
    }

    /// The output rate.
    #[must_use]
    pub fn to_rate(&self) -> SampleRate {
        self.to
    }

    /// How many output samples an input event is delayed by.
    #[must_use]
    pub fn delay_samples(&self) -> usize {
        self.fft.as_ref().map_or(0, Resampler::output_delay)
    }

    /// The delay in milliseconds (rounded down).
    #[must_use]
    pub fn delay_ms(&self) -> u32 {
        (self.delay_samples() as u64 * 1000 / u64::from(self.to.hz())) as u32
    }

    /// Resamples one 20 ms frame into `out`; returns the samples written (one 20 ms frame).
    ///
    /// # Errors
    /// A frame of the wrong length or a short `out`.
    pub fn process(&mut self, frame: &[i16], out: &mut [i16]) -> Result<usize, CodecError> {
        let (n_in, n_out) = (self.input.len(), self.output.len());
        if frame.len() != n_in {
            return Err(CodecError::FrameSize { len: frame.len(), expected: n_in });
        }
        let capacity = out.len();
        let out = out.get_mut(..n_out).ok_or(CodecError::OutputTooSmall { needed: n_out, capacity })?;
        let Some(fft) = self.fft.as_mut() else {
            out.copy_from_slice(frame);
            return Ok(n_out);
        };
        for (f, &s) in self.input.iter_mut().zip(frame) {
            *f = i16_to_f32(s);
        }
        // The slices are exactly one chunk long, so the adapters cannot fail.
        let input = InterleavedSlice::new(&self.input[..], 1, n_in)
            .map_err(|_| CodecError::FrameSize { len: n_in, expected: n_in })?;
        let mut output = InterleavedSlice::new_mut(&mut self.output[..], 1, n_out)
            .map_err(|_| CodecError::OutputTooSmall { needed: n_out, capacity: n_out })?;
        fft.process_into_buffer(&input, &mut output, None)?;
        for (o, &f) in out.iter_mut().zip(&self.output) {
            *o = f32_to_i16(f);
        }
        Ok(n_out)
    }

    /// Forgets all history (a new stream).
    pub fn reset(&mut self) {
        if let Some(fft) = self.fft.as_mut() {
            fft.reset();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: SampleRate, freq: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(rate.hz());
                (16000.0 * (2.0 * std::f64::consts::PI * freq * t).sin()).round() as i16
            })
            .collect()
    }

    fn run(r: &mut FrameResampler, input: &[i16]) -> Result<Vec<i16>, CodecError> {
        let mut out = vec![0i16; r.to_rate().samples_per_frame()];
        let mut all = Vec::new();
        for frame in input.chunks_exact(r.from_rate().samples_per_frame()) {
            let n = r.process(frame, &mut out)?;
            all.extend_from_slice(&out[..n]);
        }
        Ok(all)
    }

    #[test]
    fn sine_through_8_16_8_keeps_50_db_snr() -> Result<(), CodecError> {
        let rate = SampleRate::HZ_8000;
        let input = sine(rate, 1000.0, 8000);
        let mut up = FrameResampler::new(rate, SampleRate::HZ_16000)?;
        let mut down = FrameResampler::new(SampleRate::HZ_16000, rate)?;
        let wide = run(&mut up, &input)?;
        let back = run(&mut down, &wide)?;
        // Total delay at 8 kHz: the upsampler's delay halves at the lower rate.
        let delay = up.delay_samples() / 2 + down.delay_samples();
        let (mut signal, mut noise) = (0.0f64, 0.0f64);
        // Skip the start-up transient; compare the steady state.
        for i in 2000..(back.len() - delay) {
            let x = f64::from(input[i]);
            let y = f64::from(back[i + delay]);
            signal += x * x;
            noise += (x - y) * (x - y);
        }
        let snr = 10.0 * (signal / noise).log10();
        assert!(snr >= 50.0, "SNR {snr:.1} dB (delay {delay})");
        Ok(())
    }

    #[test]
    fn every_rate_pair_gives_one_frame_per_frame_and_reports_delay() -> Result<(), CodecError> {
        let rates = [
            SampleRate::HZ_8000,
            SampleRate::HZ_16000,
            SampleRate(22_050),
            SampleRate::HZ_24000,
            SampleRate(44_100),
            SampleRate::HZ_48000,
        ];
        for from in rates {
            for to in rates {
                let mut r = FrameResampler::new(from, to)?;
                let mut out = vec![0i16; to.samples_per_frame()];
                let n = r.process(&vec![0; from.samples_per_frame()], &mut out)?;
                assert_eq!(n, to.samples_per_frame());
                assert_eq!(r.delay_samples() == 0, from == to, "{from}->{to}");
                assert!(r.delay_ms() <= 40, "{from}->{to}: {} ms", r.delay_ms());
            }
        }
        Ok(())
    }

    #[test]
    fn wrong_frame_length_and_rates_are_errors() -> Result<(), CodecError> {
        let mut r = FrameResampler::new(SampleRate::HZ_8000, SampleRate::HZ_16000)?;
        let mut out = [0i16; 320];
        assert!(matches!(r.process(&[0; 100], &mut out), Err(CodecError::FrameSize { .. })));
        assert!(matches!(r.process(&[0; 160], &mut out[..10]), Err(CodecError::OutputTooSmall { .. })));
        assert!(FrameResampler::new(SampleRate(11_025), SampleRate::HZ_16000).is_err());
        Ok(())
    }
}
