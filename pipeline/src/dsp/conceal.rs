//! Concealment for codecs without packet-loss concealment of their own
//! (G.711, L16): the last good frame fades out over a few frames while
//! comfort noise at the line's own background level fades in.
//!
//! The background level is the quietest recent frame's RMS (the first good
//! frame's to begin with), rising slowly so it follows a noisier line;
//! clamped so comfort noise is never loud.

/// Frames over which the repeated audio fades to nothing (60 ms).
const FADE_FRAMES: u32 = 3;
/// Comfort noise never goes above this RMS (about -50 dBFS). There is no
/// floor: on a digitally silent line concealment stays silent, because the
/// listener is a VAD, and noise out of silence reads to it as speech (under
/// bursty loss that split callers' turns and cut the agent off).
const MAX_NOISE_RMS: f32 = 100.0;
/// How fast the background estimate may rise, per frame: 2 %, plus a little
/// so that it can leave zero.
const NOISE_RISE: f32 = 1.02;
const NOISE_RISE_STEP: f32 = 0.05;

/// Fills gaps in a stream of frames. One per call direction.
#[derive(Debug, Clone)]
pub struct Concealer {
    last: Vec<i16>,
    /// Frames concealed in a row.
    run: u32,
    /// The line's background level; `None` before its first good frame.
    noise_rms: Option<f32>,
    rng: u32,
}

impl Concealer {
    /// A concealer for frames of up to `max_frame` samples.
    #[must_use]
    pub fn new(max_frame: usize) -> Self {
        Self { last: Vec::with_capacity(max_frame), run: 0, noise_rms: None, rng: 0x2545_F491 }
    }

    /// Frames concealed in a row so far.
    #[must_use]
    pub fn run_length(&self) -> u32 {
        self.run
    }

    /// Remembers a good frame (call for every decoded frame).
    pub fn handle_good_frame(&mut self, frame: &[i16]) {
        self.last.clear();
        self.last.extend_from_slice(&frame[..frame.len().min(self.last.capacity())]);
        self.run = 0;
        let energy: f32 = frame.iter().map(|&s| f32::from(s) * f32::from(s)).sum();
        let rms = (energy / frame.len().max(1) as f32).sqrt();
        // Track the floor: drop to a quieter frame at once, rise slowly.
        let floor = self.noise_rms.map_or(rms, |n| rms.min(n * NOISE_RISE + NOISE_RISE_STEP));
        self.noise_rms = Some(floor.min(MAX_NOISE_RMS));
    }

    fn noise(&mut self) -> f32 {
        // xorshift32: cheap, deterministic, good enough for noise.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 17;
        self.rng ^= self.rng << 5;
        // Uniform in -1..1 has an RMS of 1/sqrt(3).
        (self.rng as f32 / u32::MAX as f32 * 2.0 - 1.0) * 3f32.sqrt()
    }

    /// Fills `out` with one frame of concealment.
    pub fn conceal(&mut self, out: &mut [i16]) {
        let n = out.len() as f32;
        let fade_start = 1.0 - self.run as f32 / FADE_FRAMES as f32;
        let fade_end = 1.0 - (self.run + 1) as f32 / FADE_FRAMES as f32;
        self.run += 1;
        for (i, o) in out.iter_mut().enumerate() {
            let gain = (fade_start + (fade_end - fade_start) * i as f32 / n).max(0.0);
            let repeated = self.last.get(i % self.last.len().max(1)).copied().unwrap_or(0);
            let noise = self.noise() * self.noise_rms.unwrap_or(0.0) * (1.0 - gain);
            *o = (f32::from(repeated) * gain + noise) as i16;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rms(x: &[i16]) -> f32 {
        (x.iter().map(|&s| f32::from(s) * f32::from(s)).sum::<f32>() / x.len() as f32).sqrt()
    }

    #[test]
    fn repeats_then_fades_to_comfort_noise_at_the_line_level() {
        let mut c = Concealer::new(160);
        // The line's background: noise at an RMS of about 40.
        let mut background = Concealer::new(160);
        background.noise_rms = Some(40.0);
        let mut hiss = [0i16; 160];
        for _ in 0..10 {
            background.run = FADE_FRAMES;
            background.conceal(&mut hiss);
            c.handle_good_frame(&hiss);
        }
        let tone: Vec<i16> = (0..160).map(|i| ((i as f32 * 0.3).sin() * 8000.0) as i16).collect();
        c.handle_good_frame(&tone);
        let mut out = [0i16; 160];
        let levels: Vec<f32> = (0..8)
            .map(|_| {
                c.conceal(&mut out);
                rms(&out)
            })
            .collect();
        assert!(levels[0] > 3000.0, "first concealed frame carries the signal: {levels:?}");
        assert!(levels.windows(2).take(3).all(|w| w[1] < w[0]), "fades: {levels:?}");
        // After the fade: comfort noise near the line's level, not silence, not loud.
        for &l in &levels[4..] {
            assert!((25.0..=60.0).contains(&l), "comfort noise level {l}: {levels:?}");
        }
        assert_eq!(c.run_length(), 8);
        c.handle_good_frame(&tone);
        assert_eq!(c.run_length(), 0);
    }

    #[test]
    fn a_digitally_silent_line_stays_silent_through_losses() {
        let mut c = Concealer::new(160);
        for _ in 0..50 {
            c.handle_good_frame(&[0; 160]);
        }
        let mut out = [1i16; 160];
        for _ in 0..10 {
            c.conceal(&mut out);
            assert_eq!(out, [0; 160]);
        }
    }
}
