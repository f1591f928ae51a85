//! G.722 bit-exact against spandsp (Debian's libspandsp-dev, which
//! `scripts/setup.sh` installs): speech, noise, silence and a full-scale
//! sweep are encoded by both, and the bytes must be equal; the reference's
//! bytes are decoded by both, and the samples must be equal (but where
//! spandsp's output overflows 16 bits: it wraps, G.722 saturates). The reference
//! is `tests/reference/g722.c`, built here with the system C compiler.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use voxgate_codecs::AudioDecoder as _;
use voxgate_codecs::g722::{G722Decoder, G722Encoder};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The reference built into a scratch folder.
fn reference() -> Result<(tempfile::TempDir, PathBuf), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let exe = dir.path().join("g722");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/g722.c");
    let out = Command::new("cc").arg("-O2").arg("-o").arg(&exe).arg(&source).arg("-lspandsp").output()?;
    assert!(
        out.status.success(),
        "building the spandsp reference (scripts/setup.sh installs libspandsp-dev): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((dir, exe))
}

/// `exe mode` with `input` on stdin; its stdout.
fn run(exe: &Path, mode: &str, input: &[u8]) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let mut child = Command::new(exe).arg(mode).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output()?;
    writer.join().map_err(|_| "writer panicked")??;
    assert!(out.status.success(), "the reference failed");
    Ok(out.stdout)
}

/// A named test signal at 16 kHz.
type Signal = (&'static str, Vec<i16>);

/// Test signals, whole 20 ms frames.
fn signals() -> Result<Vec<Signal>, Box<dyn std::error::Error>> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/audio");
    let wav = |name: &str| -> Result<Vec<i16>, Box<dyn std::error::Error>> {
        let mut reader = hound::WavReader::open(fixtures.join(name))?;
        assert_eq!(reader.spec().sample_rate, 16_000, "{name}");
        Ok(reader.samples::<i16>().collect::<Result<_, _>>()?)
    };
    // A sweep from 50 Hz to 7.9 kHz at full scale: both bands, and clipping.
    let sweep: Vec<i16> = (0..32_000)
        .map(|i| {
            let t = f64::from(i) / 16_000.0;
            let phase = 2.0 * std::f64::consts::PI * (50.0 * t + (7_850.0 / 4.0) * t * t);
            (phase.sin() * 32_767.0) as i16
        })
        .collect();
    let mut signals = vec![
        ("speech", wav("store_hours_16k.wav")?),
        ("noise", wav("noise_white_16k.wav")?),
        ("silence", vec![0; 3_200]),
        ("sweep", sweep),
    ];
    for (_, pcm) in &mut signals {
        pcm.truncate(pcm.len() / 320 * 320);
    }
    Ok(signals)
}

#[test]
fn g722_is_bit_exact_with_spandsp() -> TestResult {
    let (_dir, exe) = reference()?;
    for (name, pcm) in signals()? {
        let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
        let expected = run(&exe, "enc", &bytes)?;
        let mut encoder = G722Encoder::default();
        let mut ours = vec![0u8; pcm.len() / 2];
        for (frame, out) in pcm.chunks(320).zip(ours.chunks_mut(160)) {
            assert_eq!(encoder.encode(frame, out)?, 160);
        }
        assert_eq!(ours.len(), expected.len(), "{name}");
        let first = ours.iter().zip(&expected).position(|(a, b)| a != b);
        assert_eq!(first, None, "{name}: the encoders part at byte {first:?}");

        let decoded = run(&exe, "dec", &expected)?;
        let expected: Vec<i16> = decoded.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
        let mut decoder = G722Decoder::default();
        let mut back = vec![0i16; pcm.len()];
        for (frame, out) in ours.chunks(160).zip(back.chunks_mut(320)) {
            assert_eq!(decoder.decode(frame, out)?, 320);
        }
        // spandsp casts the receive filter's sum to 16 bits where it
        // overflows (a full-scale click); G.722's output saturates, as here
        // (and as ffmpeg's). Those samples alone may differ.
        let wrapped =
            |ours: i16, theirs: i16| (ours == i16::MAX && theirs < 0) || (ours == i16::MIN && theirs > 0);
        let first = back.iter().zip(&expected).position(|(&a, &b)| a != b && !wrapped(a, b));
        assert_eq!(first, None, "{name}: the decoders part at sample {first:?}");
        let clipped = back.iter().zip(&expected).filter(|(a, b)| a != b).count();
        if name != "sweep" {
            assert_eq!(clipped, 0, "{name}: only a full-scale signal overflows");
        }
    }
    Ok(())
}
