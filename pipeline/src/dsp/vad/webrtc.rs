//! The WebRTC voice activity detector (libfvad).

use super::{FRAME_SAMPLES, VadError, VoiceActivityDetector};

/// How readily the detector calls noise "not speech".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WebRtcMode {
    /// Least likely to miss speech.
    Quality,
    /// Between.
    LowBitrate,
    /// A good default for telephony.
    #[default]
    Aggressive,
    /// Least likely to call noise speech.
    VeryAggressive,
}

impl WebRtcMode {
    fn to_crate(self) -> webrtc_vad::VadMode {
        match self {
            Self::Quality => webrtc_vad::VadMode::Quality,
            Self::LowBitrate => webrtc_vad::VadMode::LowBitrate,
            Self::Aggressive => webrtc_vad::VadMode::Aggressive,
            Self::VeryAggressive => webrtc_vad::VadMode::VeryAggressive,
        }
    }
}

/// libfvad wrapped so it can live in a call's task.
struct Fvad(webrtc_vad::Vad);

// SAFETY: `webrtc_vad::Vad` owns a heap-allocated libfvad instance through a
// raw pointer, which is why it is not `Send`. libfvad keeps no thread-local or
// global state, so moving the sole owner to another thread is sound; it is
// never shared (`&mut self` for every call), so it is not `Sync`.
unsafe impl Send for Fvad {}

/// Frames at the start of a stream during which libfvad's noise model is
/// still adapting: it runs on them, but they count as silence (measured:
/// white noise read as 60-180 ms of "speech" in the first frames).
const WARM_UP_FRAMES: u32 = 10;

/// The WebRTC GMM detector at 16 kHz.
pub struct WebRtcVad {
    vad: Fvad,
    mode: WebRtcMode,
    seen: u32,
}

impl std::fmt::Debug for WebRtcVad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcVad").field("mode", &self.mode).finish()
    }
}

impl WebRtcVad {
    /// A detector in `mode`.
    #[must_use]
    pub fn new(mode: WebRtcMode) -> Self {
        let vad = webrtc_vad::Vad::new_with_rate_and_mode(webrtc_vad::SampleRate::Rate16kHz, mode.to_crate());
        Self { vad: Fvad(vad), mode, seen: 0 }
    }
}

impl VoiceActivityDetector for WebRtcVad {
    fn process(&mut self, frame: &[i16]) -> Result<f32, VadError> {
        if frame.len() != FRAME_SAMPLES {
            return Err(VadError::FrameSize { len: frame.len() });
        }
        let warming_up = self.seen < WARM_UP_FRAMES;
        self.seen = self.seen.saturating_add(1);
        match self.vad.0.is_voice_segment(frame) {
            Ok(_) if warming_up => Ok(0.0),
            Ok(true) => Ok(1.0),
            Ok(false) => Ok(0.0),
            Err(()) => Err(VadError::WebRtc),
        }
    }

    fn reset(&mut self) {
        *self = Self::new(self.mode);
    }

    fn name(&self) -> &'static str {
        "webrtc"
    }
}
