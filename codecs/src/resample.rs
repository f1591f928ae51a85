//! Fixed-frame resampling between 8, 16, 22.05, 24, 44.1 and 48 kHz.
//!
//! Every 20 ms frame in gives exactly one 20 ms frame out, and the filter
//! state carries across frames (no clicks at frame boundaries).
//!
//! - Rates whose ratio is a small fraction (8, 16, 24, 48 kHz among
//!   themselves; 22.05 <-> 44.1 kHz) go through a polyphase FIR
//!   ([`Polyphase`]): a Kaiser-windowed sinc, pass band to 85 % of the lower
//!   Nyquist frequency (3.4 kHz at 8 kHz: the telephone band), 70 dB down
//!   from the Nyquist frequency on, about 3 ms of delay. Its taps are
//!   computed once per rate pair and shared by every call.
//! - Other pairs (22.05 or 44.1 kHz against the rest: Piper voices, CD-rate
//!   files) use `rubato`'s FFT resampler with both chunk sizes fixed.
//!
//! The FIR replaced rubato's FFT resampler on the call path: each FFT
//! resampler keeps its own plans and buffers, and with hundreds of calls
//! their working set no longer fits in cache. At 500 calls they were a
//! fifth of the server's profile (the FIR: 9-11 %). The FIR's state is a
//! few hundred bytes of history per call. On x86-64 CPUs with AVX2 and FMA
//! (checked at run time) its dot products use them: 8 -> 16 kHz in 1.34 µs
//! a frame instead of 2.16 with the baseline build's SSE2 (rubato, hot in
//! cache: 1.63), 16 -> 8 in 1.11 instead of 1.74 (BENCHMARKS.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

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
    engine: Engine,
}

enum Engine {
    /// The rates are equal: frames pass through.
    Copy,
    Polyphase(Polyphase),
    Fft(Box<FftFrames>),
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
        let engine = if from == to {
            Engine::Copy
        } else if let Some(polyphase) = Polyphase::new(from, to) {
            Engine::Polyphase(polyphase)
        } else {
            Engine::Fft(Box::new(FftFrames::new(from, to)?))
        };
        Ok(Self { from, to, engine })
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
        match &self.engine {
            Engine::Copy => 0,
            Engine::Polyphase(p) => p.delay_samples(),
            Engine::Fft(f) => f.fft.output_delay(),
        }
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
        let (n_in, n_out) = (self.from.samples_per_frame(), self.to.samples_per_frame());
        if frame.len() != n_in {
            return Err(CodecError::FrameSize { len: frame.len(), expected: n_in });
        }
        let capacity = out.len();
        let out = out.get_mut(..n_out).ok_or(CodecError::OutputTooSmall { needed: n_out, capacity })?;
        match &mut self.engine {
            Engine::Copy => out.copy_from_slice(frame),
            Engine::Polyphase(p) => p.process(frame, out),
            Engine::Fft(f) => f.process(frame, out)?,
        }
        Ok(n_out)
    }

    /// Forgets all history (a new stream).
    pub fn reset(&mut self) {
        match &mut self.engine {
            Engine::Copy => {}
            Engine::Polyphase(p) => p.reset(),
            Engine::Fft(f) => f.fft.reset(),
        }
    }
}

/// A polyphase FIR resampler by `up / down` (both small): conceptually,
/// insert `up - 1` zeros after each input sample, low-pass, keep every
/// `down`-th sample; computed without the zeros or the dropped samples.
///
/// A 20 ms frame is a whole number of filter periods at these rates, so
/// every frame starts on phase 0 and the only state is the input history.
struct Polyphase {
    up: usize,
    down: usize,
    taps: Arc<Taps>,
    /// The last `taps_per_phase - 1` input samples, then the current frame.
    history: Vec<f32>,
}

/// The filter, split into `up` phases of `per_phase` taps each, every
/// phase reversed so that an output is one dot product with the history.
struct Taps {
    per_phase: usize,
    phases: Vec<f32>,
    /// The filter's delay, in output samples.
    delay: usize,
}

/// Stop-band attenuation of the FIR, dB.
const STOP_DB: f64 = 70.0;
/// The pass band ends at this fraction of the lower Nyquist frequency; the
/// stop band starts at the Nyquist frequency.
const PASS_FRACTION: f64 = 0.85;

impl Polyphase {
    /// `None` when the ratio is not a fraction of small numbers.
    fn new(from: SampleRate, to: SampleRate) -> Option<Self> {
        let g = gcd(from.hz(), to.hz());
        let (up, down) = ((to.hz() / g) as usize, (from.hz() / g) as usize);
        if up > 8 || down > 8 {
            return None;
        }
        if !from.samples_per_frame().is_multiple_of(down) {
            return None; // a frame would not start on phase 0
        }
        let taps = shared_taps(from, to, up, down);
        let history = vec![0.0; taps.per_phase - 1 + from.samples_per_frame()];
        Some(Self { up, down, taps, history })
    }

    fn delay_samples(&self) -> usize {
        self.taps.delay
    }

    fn process(&mut self, frame: &[i16], out: &mut [i16]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has the features `process_fma` is compiled for.
            unsafe { self.process_fma(frame, out) };
            return;
        }
        self.filter(frame, out, dot);
    }

    /// [`Self::filter`] compiled for AVX2 with fused multiply-adds: twice
    /// the lanes of the baseline x86-64 build's SSE2, one instruction a tap.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn process_fma(&mut self, frame: &[i16], out: &mut [i16]) {
        self.filter(frame, out, |a, b| dot_fma(a, b));
    }

    #[inline(always)]
    fn filter(&mut self, frame: &[i16], out: &mut [i16], dot: impl Fn(&[f32], &[f32]) -> f32) {
        let k = self.taps.per_phase;
        let keep = k - 1;
        for (h, &s) in self.history[keep..].iter_mut().zip(frame) {
            *h = f32::from(s);
        }
        // Output j is sample j * down of the zero-stuffed signal: the input
        // sample i and phase p it falls on move on by `down` each output.
        let (mut i, mut p) = (0, 0);
        for o in out.iter_mut() {
            let y = dot(&self.taps.phases[p * k..(p + 1) * k], &self.history[i..i + k]);
            *o = to_i16(y);
            p += self.down;
            while p >= self.up {
                p -= self.up;
                i += 1;
            }
        }
        self.history.copy_within(frame.len().., 0);
    }

    fn reset(&mut self) {
        self.history.fill(0.0);
    }
}

/// The taps for a rate pair, designed once and shared by every call.
fn shared_taps(from: SampleRate, to: SampleRate, up: usize, down: usize) -> Arc<Taps> {
    /// Taps by (from, to) rate.
    type Cache = Mutex<HashMap<(u32, u32), Arc<Taps>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let mut cache =
        CACHE.get_or_init(Mutex::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    cache.entry((from.hz(), to.hz())).or_insert_with(|| Arc::new(Taps::design(from, to, up, down))).clone()
}

impl Taps {
    /// A Kaiser-windowed sinc low-pass at the zero-stuffed rate `from * up`.
    fn design(from: SampleRate, to: SampleRate, up: usize, down: usize) -> Self {
        let rate = f64::from(from.hz()) * up as f64;
        let nyquist = f64::from(from.hz().min(to.hz())) / 2.0;
        let transition = 2.0 * std::f64::consts::PI * (1.0 - PASS_FRACTION) * nyquist / rate;
        // Kaiser's estimate of the length for this attenuation and transition.
        let length = ((STOP_DB - 8.0) / (2.285 * transition)).ceil() as usize + 1;
        // Whole phases, each a multiple of 16 taps (the dot products' widths).
        let per_phase = length.div_ceil(up).next_multiple_of(16);
        let n = per_phase * up;
        let beta = 0.1102 * (STOP_DB - 8.7);
        let cutoff = (1.0 + PASS_FRACTION) / 2.0 * nyquist / rate; // cycles per sample
        // An odd length centred on a whole number of input and of output
        // samples, so delays are whole at both rates (the taps past it are zero).
        let centre = ((n - 1) / 2 / (up * down) * (up * down)) as f64;
        let prototype: Vec<f64> = (0..n)
            .map(|t| {
                let x = t as f64 - centre;
                if x.abs() > centre {
                    return 0.0;
                }
                let sinc = if x == 0.0 {
                    2.0 * cutoff
                } else {
                    (2.0 * std::f64::consts::PI * cutoff * x).sin() / (std::f64::consts::PI * x)
                };
                let r = x / centre;
                let window = bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / bessel_i0(beta);
                // Gain `up` makes up for the inserted zeros.
                sinc * window * up as f64
            })
            .collect();
        let mut phases = vec![0.0f32; n];
        for p in 0..up {
            for t in 0..per_phase {
                // Phase p's tap t weighs input (i - t); stored reversed.
                phases[p * per_phase + (per_phase - 1 - t)] = prototype[p + t * up] as f32;
            }
        }
        Self { per_phase, phases, delay: centre as usize / down }
    }
}

/// The zeroth-order modified Bessel function of the first kind (series).
fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term) = (1.0, 1.0);
    let q = x * x / 4.0;
    for k in 1..50 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-12 {
            break;
        }
    }
    sum
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// A dot product in eight lanes, which the compiler turns into SIMD
/// (the lengths are multiples of 16).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for lane in 0..8 {
            acc[lane] += x[lane] * y[lane];
        }
    }
    sum8(acc)
}

/// The lanes' sum as a tree (a chain of adds would be 8 deep, as long as
/// the whole dot product).
#[inline(always)]
fn sum8(a: [f32; 8]) -> f32 {
    let b = [a[0] + a[4], a[1] + a[5], a[2] + a[6], a[3] + a[7]];
    (b[0] + b[2]) + (b[1] + b[3])
}

/// [`dot`] in AVX2 registers by fused multiply-adds, sixteen lanes a step
/// (the lengths are multiples of 16).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot_fma(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::{
        _mm_add_ps, _mm_add_ss, _mm_cvtss_f32, _mm_movehl_ps, _mm_shuffle_ps, _mm256_add_ps,
        _mm256_castps256_ps128, _mm256_extractf128_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_setzero_ps,
    };
    let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for (x, y) in a.chunks_exact(16).zip(b.chunks_exact(16)) {
        // SAFETY: each chunk holds 16 floats, two loads of 8.
        let (x0, x1, y0, y1) = unsafe {
            (
                _mm256_loadu_ps(x.as_ptr()),
                _mm256_loadu_ps(x.as_ptr().add(8)),
                _mm256_loadu_ps(y.as_ptr()),
                _mm256_loadu_ps(y.as_ptr().add(8)),
            )
        };
        lo = _mm256_fmadd_ps(x0, y0, lo);
        hi = _mm256_fmadd_ps(x1, y1, hi);
    }
    let v = _mm256_add_ps(lo, hi);
    let v = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    _mm_cvtss_f32(_mm_add_ss(v, _mm_shuffle_ps::<1>(v, v)))
}

/// Rounds to the nearest sample, saturating.
fn to_i16(y: f32) -> i16 {
    // `as` saturates; adding half away from zero rounds without a libm call.
    (y + 0.5f32.copysign(y)) as i16
}

/// rubato's FFT resampler with both chunk sizes fixed to 20 ms.
struct FftFrames {
    fft: Fft<f32>,
    input: Vec<f32>,
    output: Vec<f32>,
}

impl FftFrames {
    fn new(from: SampleRate, to: SampleRate) -> Result<Self, CodecError> {
        let (n_in, n_out) = (from.samples_per_frame(), to.samples_per_frame());
        let fft = Fft::new(from.hz() as usize, to.hz() as usize, n_in, 1, FixedSync::Both)?;
        // 20 ms at these rates is a whole multiple of rubato's minimum block,
        // so the chunk sizes come out exactly as asked.
        debug_assert_eq!(fft.input_frames_next(), n_in);
        debug_assert_eq!(fft.output_frames_next(), n_out);
        Ok(Self { fft, input: vec![0.0; n_in], output: vec![0.0; n_out] })
    }

    fn process(&mut self, frame: &[i16], out: &mut [i16]) -> Result<(), CodecError> {
        let (n_in, n_out) = (self.input.len(), self.output.len());
        for (f, &s) in self.input.iter_mut().zip(frame) {
            *f = i16_to_f32(s);
        }
        // The slices are exactly one chunk long, so the adapters cannot fail.
        let input = InterleavedSlice::new(&self.input[..], 1, n_in)
            .map_err(|_| CodecError::FrameSize { len: n_in, expected: n_in })?;
        let mut output = InterleavedSlice::new_mut(&mut self.output[..], 1, n_out)
            .map_err(|_| CodecError::OutputTooSmall { needed: n_out, capacity: n_out })?;
        self.fft.process_into_buffer(&input, &mut output, None)?;
        for (o, &f) in out.iter_mut().zip(&self.output) {
            *o = f32_to_i16(f);
        }
        Ok(())
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
    fn sine_through_8_16_8_keeps_70_db_snr() -> Result<(), CodecError> {
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
        assert!(snr >= 70.0, "SNR {snr:.1} dB (delay {delay})");
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

    /// The output's RMS over the steady state, relative to a full-scale-16000 sine, in dB.
    fn level_db(out: &[i16]) -> f64 {
        let tail = &out[out.len() / 2..];
        let power = tail.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / tail.len() as f64;
        10.0 * (power / (16000.0f64.powi(2) / 2.0)).log10()
    }

    #[test]
    fn pass_band_is_kept_and_aliases_are_70_db_down() -> Result<(), CodecError> {
        let cases = [
            // (from, to, tone Hz, expected level: 0 dB kept, or at most this far down)
            (8_000, 16_000, 300.0, 0.0),
            (8_000, 16_000, 3_300.0, 0.0),
            (16_000, 8_000, 3_300.0, 0.0),
            (48_000, 16_000, 6_500.0, 0.0),
            (16_000, 48_000, 6_500.0, 0.0),
            (24_000, 16_000, 1_000.0, 0.0),
            // Above the lower Nyquist frequency: removed, not folded back.
            (16_000, 8_000, 5_000.0, -70.0),
            (48_000, 16_000, 11_000.0, -70.0),
            (48_000, 8_000, 19_000.0, -70.0),
        ];
        for (from, to, tone, expected) in cases {
            let (from, to) = (SampleRate(from), SampleRate(to));
            let mut r = FrameResampler::new(from, to)?;
            let out = run(&mut r, &sine(from, tone, from.hz() as usize / 2))?;
            let level = level_db(&out);
            if expected == 0.0 {
                assert!(level.abs() < 0.2, "{from}->{to} {tone} Hz: {level:.2} dB");
            } else {
                assert!(level < expected, "{from}->{to} {tone} Hz: {level:.1} dB");
            }
        }
        Ok(())
    }

    #[test]
    fn the_baseline_and_fma_builds_agree() -> Result<(), CodecError> {
        // Whichever build this CPU runs, the baseline one must give the same
        // samples (within rounding): speech-like noise through each rate pair.
        let mut seed = 1u32;
        for (from, to) in [(8_000, 16_000), (16_000, 8_000), (48_000, 16_000), (16_000, 48_000)] {
            let (from, to) = (SampleRate(from), SampleRate(to));
            let (Some(mut either), Some(mut baseline)) = (Polyphase::new(from, to), Polyphase::new(from, to))
            else {
                panic!("{from}->{to} is polyphase");
            };
            let mut frame = vec![0i16; from.samples_per_frame()];
            let (mut a, mut b) = (vec![0i16; to.samples_per_frame()], vec![0i16; to.samples_per_frame()]);
            for _ in 0..20 {
                for s in &mut frame {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    *s = (seed >> 16) as i16 / 2;
                }
                either.process(&frame, &mut a);
                baseline.filter(&frame, &mut b, dot);
                assert!(a.iter().zip(&b).all(|(x, y)| x.abs_diff(*y) <= 1), "{from}->{to}");
            }
        }
        Ok(())
    }

    #[test]
    fn an_impulse_comes_out_at_the_reported_delay() -> Result<(), CodecError> {
        for (from, to) in
            [(8_000, 16_000), (16_000, 8_000), (48_000, 16_000), (16_000, 48_000), (24_000, 16_000)]
        {
            let (from, to) = (SampleRate(from), SampleRate(to));
            let mut r = FrameResampler::new(from, to)?;
            let mut input = vec![0i16; from.samples_per_frame() * 4];
            input[0] = 16000;
            let out = run(&mut r, &input)?;
            let peak = (0..out.len()).max_by_key(|&i| out[i].unsigned_abs()).unwrap_or(0);
            assert!(
                peak.abs_diff(r.delay_samples()) <= 1,
                "{from}->{to}: peak {peak}, delay {}",
                r.delay_samples()
            );
            assert!(r.delay_ms() <= 5, "{from}->{to}: {} ms", r.delay_ms());
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
