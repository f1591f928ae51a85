//! The caller's side of a test: speech made by a local voice (espeak-ng or
//! Piper) or read from a WAV, at the line's rate; and the resampling the
//! judge needs to hear the agent at 16 kHz.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use voxgate_codecs::SampleRate;
use voxgate_codecs::resample::FrameResampler;
use voxgate_pipeline::providers::local::espeak;
use voxgate_pipeline::providers::local::piper::{PiperConfig, PiperVoice};

use super::plan::Voice;

/// Silence before the caller speaks, as a person takes a breath.
const LEAD_IN_MS: usize = 300;
/// A sample this loud (of 32767) is speech, for finding where speech ends.
const SPEECH_LEVEL: u16 = 600;

/// What the caller says in one turn.
#[derive(Debug, Clone)]
pub struct Utterance {
    /// Mono samples at the line's rate.
    pub samples: Vec<i16>,
    /// Samples up to the end of the speech.
    pub speech_end: usize,
}

/// Caller speech could not be made.
#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    #[error("the caller's voice: {0}")]
    Synthesis(#[from] voxgate_pipeline::providers::local::LocalModelError),
    #[error("{path}: {message}")]
    Wav { path: PathBuf, message: String },
    #[error("resampling: {0}")]
    Resample(#[from] voxgate_codecs::CodecError),
}

/// Speaks `text` with `voice` at `rate` (models from `models_dir`).
///
/// # Errors
/// The voice cannot be loaded or fails. Slow: run off the async threads.
pub fn speak(text: &str, voice: &Voice, rate: u32, models_dir: &Path) -> Result<Utterance, VoiceError> {
    let (samples, from) = match voice {
        Voice::Espeak(name) => (espeak::synthesize(text, name)?, espeak::sample_rate()?),
        Voice::Piper(scale) => {
            // One loaded voice, kept for the next turn at the same rate.
            static PIPER: Mutex<Option<(f32, PiperVoice)>> = Mutex::new(None);
            let mut kept = PIPER.lock().unwrap_or_else(PoisonError::into_inner);
            if kept.as_ref().is_none_or(|(s, _)| s != scale) {
                let config =
                    PiperConfig { length_scale: Some(*scale), ..PiperConfig::with_models_dir(models_dir) };
                *kept = Some((*scale, PiperVoice::load(&config)?));
            }
            let (_, piper) = kept.as_mut().expect("loaded above");
            (piper.synthesize(text)?, piper.sample_rate())
        }
    };
    Ok(utterance(&resample(&samples, from, rate)?, rate))
}

/// Reads a mono 16-bit WAV, at `rate`.
///
/// # Errors
/// It cannot be read, or is not mono 16-bit at a supported rate.
pub fn wav(path: &Path, rate: u32) -> Result<Utterance, VoiceError> {
    let bad = |message: String| VoiceError::Wav { path: path.to_owned(), message };
    let mut reader = hound::WavReader::open(path).map_err(|e| bad(e.to_string()))?;
    let spec = reader.spec();
    if spec.channels != 1 || spec.bits_per_sample != 16 || spec.sample_format != hound::SampleFormat::Int {
        return Err(bad("need mono 16-bit PCM".into()));
    }
    let samples: Vec<i16> =
        reader.samples::<i16>().collect::<Result<_, _>>().map_err(|e| bad(e.to_string()))?;
    Ok(utterance(&resample(&samples, spec.sample_rate, rate)?, rate))
}

fn utterance(speech: &[i16], rate: u32) -> Utterance {
    let lead = LEAD_IN_MS * rate as usize / 1000;
    let mut samples = vec![0; lead];
    samples.extend_from_slice(speech);
    let speech_end = samples.iter().rposition(|s| s.unsigned_abs() > SPEECH_LEVEL).map_or(0, |i| i + 1);
    Utterance { samples, speech_end }
}

/// A whole signal from `from` Hz to `to` Hz, 20 ms at a time (the last
/// frame padded with silence).
///
/// # Errors
/// A rate the resampler does not support.
pub fn resample(samples: &[i16], from: u32, to: u32) -> Result<Vec<i16>, VoiceError> {
    if from == to {
        return Ok(samples.to_vec());
    }
    let mut r = FrameResampler::new(SampleRate(from), SampleRate(to))?;
    let (n_in, n_out) = (SampleRate(from).samples_per_frame(), SampleRate(to).samples_per_frame());
    let mut out = Vec::with_capacity(samples.len() / n_in * n_out + n_out);
    let mut frame = vec![0i16; n_out];
    for chunk in samples.chunks(n_in) {
        let mut input = chunk.to_vec();
        input.resize(n_in, 0);
        r.process(&input, &mut frame)?;
        out.extend_from_slice(&frame);
    }
    // The filter's delay, so the end of the signal comes out too.
    let delay = r.delay_samples();
    let silence = vec![0i16; n_in];
    while out.len() < samples.len() * n_out / n_in + delay {
        r.process(&silence, &mut frame)?;
        out.extend_from_slice(&frame);
    }
    out.drain(..delay.min(out.len()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampling_keeps_the_length_and_the_tone() {
        // 1 s of 440 Hz at 22050 Hz.
        let tone: Vec<i16> = (0..22_050)
            .map(|i| (8000.0 * (i as f32 * 440.0 * std::f32::consts::TAU / 22_050.0).sin()) as i16)
            .collect();
        let out = resample(&tone, 22_050, 8000).expect("resamples");
        assert!((7980..=8200).contains(&out.len()), "{}", out.len());
        // Sign changes between loud samples (ripple near zero aside): about 880 a second.
        let loud: Vec<bool> = out.iter().filter(|s| s.unsigned_abs() > 2000).map(|&s| s < 0).collect();
        let crossings = loud.windows(2).filter(|w| w[0] != w[1]).count();
        assert!((860..=900).contains(&crossings), "{crossings}");
    }

    #[test]
    fn the_speech_ends_where_the_audio_stops_being_loud() {
        let mut speech = vec![5000i16; 800];
        speech.extend([0; 400]);
        let u = utterance(&speech, 8000);
        assert_eq!(u.samples.len(), 2400 + 1200);
        assert_eq!(u.speech_end, 2400 + 800);
    }
}
