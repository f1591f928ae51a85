//! A recording left by `kill -9` is a valid WAV file up to its last half second.
//!
//! A child process (`tests/bin/wav_crash_child.rs`) records in real time and
//! says each time the header has been patched; after the fifth time it is
//! killed with SIGKILL, and the file is read back.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

#[test]
fn recording_survives_kill_9() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join(format!("voxgate-crash-{}.wav", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_wav-crash-child"))
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("the child's output")?;
    // Five patches: 2.5 s of audio are on disk, and the child goes on writing.
    let patches =
        BufReader::new(stdout).lines().take(5).filter(|l| l.as_deref().is_ok_and(|l| l == "patched")).count();
    child.kill()?; // SIGKILL on Unix
    child.wait()?;
    assert_eq!(patches, 5, "the child stopped before it had recorded 2.5 s");

    let mut reader = hound::WavReader::open(&path)?;
    let spec = reader.spec();
    assert_eq!((spec.channels, spec.sample_rate, spec.bits_per_sample), (2, 8000, 16));
    let samples: Vec<i16> = reader.samples::<i16>().collect::<Result<_, _>>()?;
    let frames = samples.len() / 2;
    // Every patch the child reported is readable; the file ends at a patch.
    assert!(frames >= 5 * 4000, "only {frames} sample frames readable");
    assert_eq!(frames % 4000, 0, "header patched at a whole half second");
    for (i, lr) in samples.chunks_exact(2).enumerate() {
        assert_eq!(lr, [(i / 160) as i16, 1234], "sample frame {i}");
    }
    std::fs::remove_file(path)?;
    Ok(())
}
