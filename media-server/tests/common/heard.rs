//! What a caller heard: WAVs read, resampled to 16 kHz and transcribed
//! with Whisper tiny.en (the models `scripts/setup.sh` fetched).

use std::path::Path;
use std::process::{Command, Stdio};

use voxgate_codecs::SampleRate;
use voxgate_codecs::resample::FrameResampler;
use voxgate_pipeline::providers::local::whisper::{WhisperConfig, WhisperStt};

use super::{free_udp_port, root};

/// The codec a test phone offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneCodec {
    /// G.711 (PCMU, PCMA): narrowband, 8 kHz.
    G711,
    /// G.722 alone: wideband, 16 kHz.
    G722,
}

/// A phone (baresip, in folder `phone`) calls `uri`: it waits 5 s (the
/// greeting), asks what time the bakery opens on Saturday, and listens
/// 16 s before it hangs up. What it heard, transcribed, in lower case.
pub fn ask_by_phone(phone: &Path, uri: &str) -> Result<String, Box<dyn std::error::Error>> {
    ask_by_phone_with(phone, uri, PhoneCodec::G711)
}

/// [`ask_by_phone`] offering only `codec`.
pub fn ask_by_phone_with(
    phone: &Path,
    uri: &str,
    codec: PhoneCodec,
) -> Result<String, Box<dyn std::error::Error>> {
    ask(phone, uri, codec, None)
}

/// A phone's SIP over TLS: `pem` holds its certificate and key (baresip
/// presents it as a client) and `ca` the server's CA, which it checks.
pub struct PhoneTls<'a> {
    pub pem: &'a Path,
    pub ca: &'a Path,
}

/// [`ask_by_phone`] over TLS with SRTP required (baresip's `srtp-mand`:
/// `RTP/SAVP` with SDES keys); `uri` names `transport=tls`.
pub fn ask_by_phone_securely(
    phone: &Path,
    uri: &str,
    tls: &PhoneTls<'_>,
) -> Result<String, Box<dyn std::error::Error>> {
    ask(phone, uri, PhoneCodec::G711, Some(tls))
}

fn ask(
    phone: &Path,
    uri: &str,
    codec: PhoneCodec,
    tls: Option<&PhoneTls<'_>>,
) -> Result<String, Box<dyn std::error::Error>> {
    configure(phone, codec, tls, false)?;
    let status = Command::new("baresip")
        .arg("-f")
        .arg(phone)
        .args(["-e", &format!("/dial {uri}"), "-t", "40"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if !status.success() {
        return Err(format!("baresip: {status}").into());
    }
    heard(phone)
}

/// A phone (baresip, in folder `phone`) over TLS with SRTP required that
/// answers the first call at once, asks the bakery question 5 s in, and
/// hangs up 16 s after; running, with the URI that reaches it. Once it has
/// exited, [`heard`] is what it heard.
pub fn answering_phone_securely(
    phone: &Path,
    tls: &PhoneTls<'_>,
) -> Result<(std::process::Child, String), Box<dyn std::error::Error>> {
    let port = configure(phone, PhoneCodec::G711, Some(tls), true)?;
    // baresip's TLS listens on its SIP port plus one.
    Ok((waiting(phone)?, format!("sip:caller@127.0.0.1:{};transport=tls", port + 1)))
}

/// baresip with the configuration in `phone`, waiting for a call (60 s at most).
fn waiting(phone: &Path) -> std::io::Result<std::process::Child> {
    Command::new("baresip")
        .arg("-f")
        .arg(phone)
        .args(["-t", "60"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

/// A phone (baresip, plain SIP over UDP, G.711) that answers the first
/// call at once and plays `say` (a WAV at 8 kHz, mono) into it: the call
/// ends when the file does. Running, with the URI that reaches it; once it
/// has exited, [`heard`] is what it heard.
pub fn answering_phone(
    phone: &Path,
    say: &Path,
) -> Result<(std::process::Child, String), Box<dyn std::error::Error>> {
    let port = configure(phone, PhoneCodec::G711, None, true)?;
    std::fs::copy(say, phone.join("say.wav"))?;
    Ok((waiting(phone)?, format!("sip:caller@127.0.0.1:{port}")))
}

/// Writes a phone's configuration and what it says; returns its SIP port.
fn configure(
    phone: &Path,
    codec: PhoneCodec,
    tls: Option<&PhoneTls<'_>>,
    answer: bool,
) -> Result<u16, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(phone.join("rec"))?;
    let (question, rate) = read_wav(&root().join("fixtures/audio/store_hours_16k.wav"))?;
    assert_eq!(rate, 16_000);
    let (rate, module) = match codec {
        PhoneCodec::G711 => (8000, "g711.so"),
        PhoneCodec::G722 => (16_000, "g722.so"),
    };
    let mut say: Vec<i16> = vec![0; rate as usize * 5];
    if rate == 8000 {
        say.extend(
            question
                .chunks(2)
                .map(|p| ((i32::from(p[0]) + i32::from(*p.get(1).unwrap_or(&p[0]))) / 2) as i16),
        );
    } else {
        say.extend_from_slice(&question);
    }
    say.extend(std::iter::repeat_n(0, rate as usize * 16));
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(phone.join("say.wav"), spec)?;
    for s in &say {
        w.write_sample(*s)?;
    }
    w.finalize()?;
    let phone_port = free_udp_port()?;
    let answer = if answer { ";answermode=auto" } else { "" };
    let (account, secure) = match tls {
        None => (format!("<sip:caller@127.0.0.1:{phone_port}>;regint=0{answer}\n"), String::new()),
        Some(tls) => (
            format!(
                "<sip:caller@127.0.0.1:{phone_port};transport=tls>;regint=0;mediaenc=srtp-mand{answer}\n"
            ),
            format!(
                "sip_certificate {}\nsip_cafile {}\nmodule srtp.so\n",
                tls.pem.display(),
                tls.ca.display()
            ),
        ),
    };
    std::fs::write(phone.join("accounts"), account)?;
    std::fs::write(
        phone.join("config"),
        format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{phone_port}\nnet_interface 127.0.0.1\n\
             audio_source aufile,{say}\nausrc_srate {rate}\nauplay_srate {rate}\n\
             module_path /usr/lib/baresip/modules\nmodule {module}\nmodule aufile.so\nmodule sndfile.so\n\
             {secure}snd_path {rec}\nmodule_app account.so\nmodule_app menu.so\n",
            say = phone.join("say.wav").display(),
            rec = phone.join("rec").display()
        ),
    )?;
    // The call ends when the caller's file does (about 24 s).
    Ok(phone_port)
}

/// What the phone in `phone` heard (baresip's dump of the decoded stream),
/// transcribed, in lower case.
pub fn heard(phone: &Path) -> Result<String, Box<dyn std::error::Error>> {
    let heard_file = std::fs::read_dir(phone.join("rec"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .ok_or("baresip recorded nothing")?;
    let (heard, heard_rate) = read_wav(&heard_file)?;
    let heard = to_16k(&heard, heard_rate)?;
    let whisper = WhisperStt::load(&WhisperConfig::with_models_dir(&models_dir()))?;
    Ok(transcribe_in_pieces(&whisper, &heard)?.to_lowercase())
}

/// The phone's question was answered: what it `heard` holds the store's
/// Saturday hours (9), and the server's last call log has the caller
/// asking about Saturday (the agent heard it, over `how`).
pub fn answered_the_question(server: &super::Server, heard: &str, how: &str) -> super::TestResult {
    let log = super::call_log(server)?;
    assert!(
        heard.contains('9') || heard.contains("nine"),
        "no answer from the knowledge in: {heard}\nthe call's transcript: {:#}",
        log["transcript"]
    );
    let asked = log["transcript"]
        .as_array()
        .ok_or("no transcript")?
        .iter()
        .any(|l| l["speaker"] == "caller" && l["text"].as_str().is_some_and(|t| t.contains("Saturday")));
    assert!(asked, "the agent heard the question {how}: {log:#}");
    Ok(())
}

pub fn models_dir() -> std::path::PathBuf {
    std::env::var_os("VOXGATE_MODELS__DIR").map_or_else(|| root().join("models"), std::path::PathBuf::from)
}

pub fn read_wav(path: &Path) -> Result<(Vec<i16>, u32), Box<dyn std::error::Error>> {
    let mut r = hound::WavReader::open(path)?;
    let rate = r.spec().sample_rate;
    Ok((r.samples::<i16>().collect::<Result<_, _>>()?, rate))
}

pub fn to_16k(samples: &[i16], rate: u32) -> Result<Vec<i16>, Box<dyn std::error::Error>> {
    let mut r = FrameResampler::new(SampleRate(rate), SampleRate::HZ_16000)?;
    let n = SampleRate(rate).samples_per_frame();
    let mut out = vec![0i16; 320];
    let mut all = Vec::new();
    let mut padded = samples.to_vec();
    padded.resize(samples.len().div_ceil(n) * n + 5 * n, 0);
    for chunk in padded.chunks_exact(n) {
        r.process(chunk, &mut out)?;
        all.extend_from_slice(&out);
    }
    Ok(all)
}

/// Transcribes 16 kHz audio a few seconds at a time, each piece cut at its
/// quietest 20 ms near the end. baresip's dump of what it heard holds only
/// the agent's talkspurts, back to back, and on the greeting and answer run
/// together Whisper tiny.en often stops after the first sentence.
pub fn transcribe_in_pieces(whisper: &WhisperStt, pcm: &[i16]) -> Result<String, Box<dyn std::error::Error>> {
    const FRAME: usize = 320;
    const MOST: usize = 16_000 * 5;
    let energy = |f: &[i16]| f.iter().map(|&s| i64::from(s).pow(2)).sum::<i64>();
    let mut text = String::new();
    let mut rest = pcm;
    while !rest.is_empty() {
        let cut = if rest.len() <= MOST {
            rest.len()
        } else {
            // The quietest frame of the piece's last 1.5 s.
            let from = (MOST - 16_000 * 3 / 2) / FRAME;
            (from..MOST / FRAME)
                .min_by_key(|&i| energy(&rest[i * FRAME..(i + 1) * FRAME]))
                .map_or(MOST, |i| i * FRAME)
        };
        let (piece, next) = rest.split_at(cut);
        text.push_str(&whisper.transcribe(piece)?);
        text.push(' ');
        rest = next;
    }
    Ok(text)
}
