//! `voxgate console`: talk to an agent through this machine's microphone and
//! speakers, on the same call core as every channel.
//!
//! cpal opens the devices (ALSA on Linux). The call runs on the microphone's
//! clock: each 20 ms it captures is one tick of the call core, which takes
//! that frame and hands back the agent's. The agent's audio waits in a queue
//! that the speakers' callback plays from (silence when it is empty), and
//! barge-in empties it. Samples come and go as the devices take them (16-bit
//! or float, any number of channels); the speakers get the agent at their
//! own rate, resampled when it is not the microphone's.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use voxgate_calls::CallAgent;
use voxgate_codecs::dtmf::DtmfKey;
use voxgate_codecs::resample::FrameResampler;
use voxgate_codecs::{Codec, SampleRate};
use voxgate_domain::{CallId, Channel};
use voxgate_pipeline::call::{Action, Arrival, CallCore, Output, now};
use voxgate_pipeline::session::{CallLog, Control, Speaker, TransferFailure, TransferOutcome};

use crate::calls::{CallContext, Carrier};
use crate::error::StartError;

/// The devices to use, by name; `None`: the system's default.
#[derive(Debug, Clone, Default)]
pub struct Devices {
    pub input: Option<String>,
    pub output: Option<String>,
}

/// Why the console cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("no audio {which} device{}", name.as_ref().map(|n| format!(" named {n:?} (see --list-devices)")).unwrap_or_default())]
    NoDevice { which: &'static str, name: Option<String> },
    #[error("the audio {which} device: {error}")]
    Device { which: &'static str, error: cpal::Error },
    #[error("the audio {which} device offers {format} samples; 16-bit and float ones are taken")]
    Format { which: &'static str, format: String },
    #[error("resampling for the speakers: {0}")]
    Resample(#[from] voxgate_codecs::CodecError),
    #[error("at a call limit: {0}")]
    Busy(String),
    #[error(transparent)]
    Start(#[from] StartError),
}

/// What the console shows while the call runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Shown {
    /// A line of the live transcript.
    Transcript { speaker: Speaker, text: String, is_final: bool },
    /// From the end of the caller's turn to the agent's first audio, in ms.
    Latency(u64),
    /// The microphone's level over the last 20 ms, in dBFS.
    Level(f32),
}

/// A device's name as `--input`/`--output` take it: the host's id for it
/// (ALSA's PCM name, e.g. `pulse` or `hw:CARD=PCH,DEV=0`).
fn name_of(device: &cpal::Device) -> String {
    device.id().map_or_else(|_| device.to_string(), |id| id.id().to_owned())
}

/// The audio devices this machine has, a line each: `input`/`output`, the
/// name `--input`/`--output` take, whether it is the default, and what the
/// system says it is.
///
/// # Errors
/// The audio system cannot be asked.
pub fn list_devices() -> Result<Vec<String>, ConsoleError> {
    let host = cpal::default_host();
    let default_in = host.default_input_device().map(|d| name_of(&d));
    let default_out = host.default_output_device().map(|d| name_of(&d));
    let mut lines = Vec::new();
    let devices = host.devices().map_err(|error| ConsoleError::Device { which: "input", error })?;
    for device in devices {
        let name = name_of(&device);
        let about = device.to_string();
        for (which, has, default) in [
            ("input", device.supports_input(), &default_in),
            ("output", device.supports_output(), &default_out),
        ] {
            if has {
                let mark = if default.as_deref() == Some(name.as_str()) { " (default)" } else { "" };
                lines.push(format!("{which:<7}{name}{mark}  {about}"));
            }
        }
    }
    Ok(lines)
}

/// The device `name` names (or the default), for `which` way.
fn device(host: &cpal::Host, which: &'static str, name: Option<&str>) -> Result<cpal::Device, ConsoleError> {
    let missing = || ConsoleError::NoDevice { which, name: name.map(str::to_owned) };
    let Some(name) = name else {
        let default =
            if which == "input" { host.default_input_device() } else { host.default_output_device() };
        return default.ok_or_else(missing);
    };
    let devices = host.devices().map_err(|error| ConsoleError::Device { which, error })?;
    devices
        .filter(|d| if which == "input" { d.supports_input() } else { d.supports_output() })
        .find(|d| name_of(d) == name)
        .ok_or_else(missing)
}

/// The agent's audio on its way to the speakers, at their rate and mono.
type Queue = Arc<Mutex<VecDeque<i16>>>;

/// Runs one call of `agent` between the microphone and the speakers until
/// the agent ends it or `hang_up` fires; `keys` are keys the user presses;
/// `show` gets what to display. Returns the call's log (also reported to
/// the hooks, with its recording, like any call's).
///
/// # Errors
/// A device is missing or refuses to stream, or the call cannot start.
pub async fn run(
    ctx: &CallContext,
    agent: &CallAgent,
    devices: &Devices,
    mut keys: mpsc::Receiver<DtmfKey>,
    hang_up: CancellationToken,
    mut show: impl FnMut(Shown),
) -> Result<CallLog, ConsoleError> {
    let host = cpal::default_host();
    let (mic, speakers) = (
        device(&host, "input", devices.input.as_deref())?,
        device(&host, "output", devices.output.as_deref())?,
    );
    let (frames, mut captured) = mpsc::unbounded_channel::<Vec<i16>>();
    let (input, rate) = open_input(&mic, frames)?;
    let queue: Queue = Arc::default();
    let (output, out_rate) = open_output(&speakers, queue.clone())?;
    let _seat = ctx.admit(Channel::Console, agent).map_err(|full| ConsoleError::Busy(full.to_string()))?;
    let id = CallId::random().into_string();
    let codec = Codec::PcmLe(SampleRate(rate));
    let carrier = Carrier { codec, arrival: Arrival::InOrder, telephone_events: false, no_media: None };
    let core = ctx.start_core(&id, agent, carrier)?;
    let info = CallContext::inbound(id.clone().into(), Channel::Console, agent);
    ctx.started(&info).await;
    let resampler = (out_rate != rate)
        .then(|| FrameResampler::new(SampleRate(rate), SampleRate(out_rate)))
        .transpose()?;
    let mut call =
        Console { core, queue, resampler, frame: SampleRate(rate).samples_per_frame(), turn_end: None };
    let mut pending: Vec<i16> = Vec::new();
    let far = || tokio::time::Instant::now() + std::time::Duration::from_secs(3600);
    let mut timer = Box::pin(tokio::time::sleep_until(far()));
    let mut keys_open = true;
    while !call.core.is_ended() {
        timer.as_mut().reset(call.core.poll_timeout().map_or_else(far, tokio::time::Instant::from_std));
        tokio::select! {
            chunk = captured.recv() => {
                let Some(chunk) = chunk else { call.core.hang_up(now()); break };
                pending.extend_from_slice(&chunk);
                // The microphone's clock: a tick for each 20 ms it captured.
                while pending.len() >= call.frame {
                    let frame: Vec<i16> = pending.drain(..call.frame).collect();
                    show(Shown::Level(level_db(&frame)));
                    let at = now();
                    call.core.handle_samples(at, &frame);
                    call.core.handle_tick(at);
                }
            }
            () = &mut timer => call.core.handle_timeout(now()),
            input = call.core.next_input() => call.core.handle_input(now(), input),
            key = keys.recv(), if keys_open => match key {
                Some(key) => call.core.handle_control(now(), Control::Dtmf(key)),
                None => keys_open = false,
            },
            () = hang_up.cancelled() => call.core.hang_up(now()),
        }
        if let Err(e) = call.forward(&mut show) {
            // The call still ends as calls do: logged, recorded, reported.
            tracing::warn!(error = %e, "the console cannot play the agent; hanging up");
            call.core.hang_up(now());
        }
    }
    drop((input, output));
    let log = call.core.finish(now());
    ctx.ended(&info, &log).await;
    Ok(log)
}

/// The call between the devices.
struct Console {
    core: CallCore,
    queue: Queue,
    /// The agent's audio to the speakers' rate, when it is not the microphone's.
    resampler: Option<FrameResampler>,
    /// Samples in 20 ms at the microphone's rate.
    frame: usize,
    /// When the caller's last turn ended, until the agent's first audio.
    turn_end: Option<Instant>,
}

impl Console {
    /// Carries out what the core asks.
    fn forward(&mut self, show: &mut impl FnMut(Shown)) -> Result<(), ConsoleError> {
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::Media(frame) => {
                    let pcm: Vec<i16> =
                        frame.payload.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
                    if let Some(at) = self.turn_end.take() {
                        show(Shown::Latency(u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX)));
                    }
                    let pcm = match self.resampler.as_mut() {
                        Some(r) => {
                            let mut out = vec![0; r.to_rate().samples_per_frame()];
                            let n = r.process(&pcm, &mut out)?;
                            out.truncate(n);
                            out
                        }
                        None => pcm,
                    };
                    self.queue.lock().unwrap_or_else(PoisonError::into_inner).extend(pcm);
                }
                Output::Action(Action::Clear) => {
                    self.queue.lock().unwrap_or_else(PoisonError::into_inner).clear()
                }
                Output::Action(Action::Transcript { speaker, text, is_final }) => {
                    if speaker == Speaker::Caller && is_final {
                        self.turn_end = Some(Instant::now());
                    }
                    show(Shown::Transcript { speaker, text, is_final });
                }
                Output::Action(Action::Transfer { target }) => {
                    tracing::warn!(%target, "the console cannot transfer; the call ends");
                }
                Output::Action(Action::Dtmf { digits }) => tracing::info!(%digits, "the agent pressed keys"),
                Output::Action(Action::WarmTransfer { target, .. }) => {
                    tracing::warn!(%target, "the console cannot call a human; the caller stays with the agent");
                    let failed = TransferOutcome::Failed(TransferFailure::Failed);
                    self.core.handle_transfer(now(), failed);
                }
                // Only calls placed over SIP detect answering machines.
                Output::Action(Action::HangUp | Action::AnsweringMachine(_)) => {}
            }
        }
        Ok(())
    }
}

/// The level of `frame` in dBFS (-100 for silence).
fn level_db(frame: &[i16]) -> f32 {
    let power = frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / frame.len().max(1) as f64;
    let rms = power.sqrt() / f64::from(i16::MAX);
    if rms <= 1e-5 { -100.0 } else { (20.0 * rms.log10()) as f32 }
}

/// Starts capturing from `device` at its default rate; each callback's audio,
/// mono 16-bit, goes to `frames`. Returns the stream (capturing while it
/// lives) and the rate.
fn open_input(
    device: &cpal::Device,
    frames: mpsc::UnboundedSender<Vec<i16>>,
) -> Result<(cpal::Stream, u32), ConsoleError> {
    let which = "input";
    let fail = |error| ConsoleError::Device { which, error };
    let supported = device.default_input_config().map_err(fail)?;
    let config = supported.config();
    let channels = usize::from(config.channels.max(1));
    let error = |e: cpal::Error| tracing::warn!(error = %e, "the microphone's stream failed");
    let stream = match supported.sample_format() {
        cpal::SampleFormat::I16 => device.build_input_stream(
            config,
            move |data: &[i16], _: &cpal::InputCallbackInfo| {
                let _ = frames
                    .send(data.chunks(channels).map(|c| mix(c.iter().map(|&s| f32::from(s)))).collect());
            },
            error,
            None,
        ),
        cpal::SampleFormat::F32 => device.build_input_stream(
            config,
            move |data: &[f32], _: &cpal::InputCallbackInfo| {
                let _ = frames.send(
                    data.chunks(channels).map(|c| mix(c.iter().map(|&s| s * f32::from(i16::MAX)))).collect(),
                );
            },
            error,
            None,
        ),
        other => return Err(ConsoleError::Format { which, format: other.to_string() }),
    }
    .map_err(fail)?;
    stream.play().map_err(fail)?;
    Ok((stream, config.sample_rate))
}

/// Starts playing on `device` at its default rate what `queue` holds, and
/// silence when it holds nothing. Returns the stream and the rate.
fn open_output(device: &cpal::Device, queue: Queue) -> Result<(cpal::Stream, u32), ConsoleError> {
    let which = "output";
    let fail = |error| ConsoleError::Device { which, error };
    let supported = device.default_output_config().map_err(fail)?;
    let config = supported.config();
    let channels = usize::from(config.channels.max(1));
    let error = |e: cpal::Error| tracing::warn!(error = %e, "the speakers' stream failed");
    let stream = match supported.sample_format() {
        cpal::SampleFormat::I16 => device.build_output_stream(
            config,
            move |data: &mut [i16], _: &cpal::OutputCallbackInfo| play(&queue, data, channels, |s| s),
            error,
            None,
        ),
        cpal::SampleFormat::F32 => device.build_output_stream(
            config,
            move |data: &mut [f32], _: &cpal::OutputCallbackInfo| {
                play(&queue, data, channels, |s| f32::from(s) / f32::from(i16::MAX));
            },
            error,
            None,
        ),
        other => return Err(ConsoleError::Format { which, format: other.to_string() }),
    }
    .map_err(fail)?;
    stream.play().map_err(fail)?;
    Ok((stream, config.sample_rate))
}

/// The channels of one sample frame, mixed to one 16-bit sample.
fn mix(channels: impl ExactSizeIterator<Item = f32>) -> i16 {
    let n = channels.len().max(1) as f32;
    (channels.sum::<f32>() / n).clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16
}

/// Fills `data` (interleaved, `channels` wide) from `queue`, the same
/// sample on every channel; silence past its end.
fn play<T: Copy + Default>(queue: &Queue, data: &mut [T], channels: usize, convert: impl Fn(i16) -> T) {
    let mut queue = queue.lock().unwrap_or_else(PoisonError::into_inner);
    for frame in data.chunks_mut(channels) {
        let sample = queue.pop_front().map_or_else(T::default, &convert);
        frame.fill(sample);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_mixing() {
        assert!((level_db(&[i16::MAX; 320]) - 0.0).abs() < 0.01);
        assert!((level_db(&[i16::MAX / 10; 320]) + 20.0).abs() < 0.1);
        assert_eq!(level_db(&[0; 320]), -100.0);
        assert_eq!(mix([1000.0, 3000.0].into_iter()), 2000);
        assert_eq!(mix([1e9].into_iter()), i16::MAX);
    }

    #[test]
    fn the_speakers_play_the_queue_on_every_channel_then_silence() {
        let queue: Queue = Arc::new(Mutex::new([1, 2].into_iter().collect()));
        let mut data = [9i16; 6];
        play(&queue, &mut data, 2, |s| s);
        assert_eq!(data, [1, 1, 2, 2, 0, 0]);
        assert!(queue.lock().unwrap().is_empty());
    }
}
