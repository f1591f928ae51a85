//! A recording left by `kill -9` is a valid WAV file up to its last half second.
//!
//! The test re-runs its own binary as a child that records a tone in real
//! time, kills it with SIGKILL after a few seconds, and reads the file back.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use voxgate_codecs::SampleRate;
use voxgate_codecs::wav::{WavLayout, WavRecorder};

const CHILD_ENV: &str = "VOXGATE_WAV_CRASH_CHILD";

/// In the child: record 20 ms frames in real time until killed.
#[test]
fn child_records_until_killed() -> Result<(), Box<dyn std::error::Error>> {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return Ok(()); // Only meaningful when started by the parent below.
    };
    let rate = SampleRate::HZ_8000;
    let mut rec = WavRecorder::create(&PathBuf::from(path), rate, WavLayout::CallerLeftAgentRight)?;
    let start = Instant::now();
    for n in 0u32..3000 {
        // Caller left: a ramp that encodes the frame number; agent right: constant.
        let caller = [(n % 30000) as i16; 160];
        rec.write_stereo(&caller, &[1234; 160])?;
        let due = start + Duration::from_millis(20 * u64::from(n + 1));
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    Ok(())
}

#[test]
fn recording_survives_kill_9() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join(format!("voxgate-crash-{}.wav", std::process::id()));
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--exact", "child_records_until_killed", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    // Wait until about 2.5 s of audio has been recorded, then kill.
    std::thread::sleep(Duration::from_millis(2600));
    child.kill()?; // SIGKILL on Unix
    child.wait()?;

    let mut reader = hound::WavReader::open(&path)?;
    let spec = reader.spec();
    assert_eq!((spec.channels, spec.sample_rate, spec.bits_per_sample), (2, 8000, 16));
    let samples: Vec<i16> = reader.samples::<i16>().collect::<Result<_, _>>()?;
    let frames = samples.len() / 2;
    // The header was patched after each half second: at least 2 s are readable,
    // and nothing past what was written (the child ran at most ~2.6 s plus start-up).
    assert!(frames >= 2 * 8000, "only {frames} sample frames readable");
    assert_eq!(frames % 4000, 0, "header patched at a whole half second");
    for (i, lr) in samples.chunks_exact(2).enumerate() {
        assert_eq!(lr, [(i / 160) as i16, 1234], "sample frame {i}");
    }
    std::fs::remove_file(path)?;
    Ok(())
}
