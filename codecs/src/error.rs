//! The one error type of this crate.

use crate::SampleRate;

/// Everything a codec, the resampler or the WAV recorder can reject.
///
/// Bad input is always one of these, never a panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The output buffer cannot hold what the input decodes or encodes to.
    #[error("output buffer holds {capacity} samples or bytes, {needed} needed")]
    OutputTooSmall { needed: usize, capacity: usize },
    /// The input is not a whole number of samples (L16 needs an even byte count).
    #[error("input of {len} bytes is not a whole number of {unit}-byte samples")]
    Truncated { len: usize, unit: usize },
    /// The input is larger than one packet of this codec can be.
    #[error("input of {len} bytes is larger than the {max} a packet may carry")]
    Oversize { len: usize, max: usize },
    /// The input frame has the wrong number of samples for this codec's frame size.
    #[error("frame of {len} samples, {expected} expected")]
    FrameSize { len: usize, expected: usize },
    /// Mono samples given to a stereo recording, or the other way round.
    #[error("this recording is {layout}")]
    WrongLayout { layout: &'static str },
    /// This codec or resampler does not run at that sample rate.
    #[error("sample rate {rate} Hz is not supported here")]
    UnsupportedRate { rate: SampleRate },
    /// An RFC 4733 payload field is out of range.
    #[error("telephone-event payload: {reason}")]
    TelephoneEvent { reason: &'static str },
    /// libopus rejected the packet or the call.
    #[error("opus {call}: {source}")]
    Opus {
        call: &'static str,
        #[source]
        source: opus::Error,
    },
    /// The resampler rejected the call.
    #[error("resampler: {0}")]
    Resample(#[from] rubato::ResampleError),
    /// The resampler could not be built for these rates.
    #[error("resampler construction: {0}")]
    ResamplerConstruction(#[from] rubato::ResamplerConstructionError),
    /// Reading or writing a WAV file failed.
    #[error("wav: {0}")]
    Wav(#[from] hound::Error),
    /// A container (Ogg) that does not hold what it should.
    #[error("container: {reason}")]
    Container { reason: &'static str },
    /// More audio than the caller takes.
    #[error("more than {seconds} s of audio")]
    TooLong { seconds: u32 },
    /// Creating a file failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}
