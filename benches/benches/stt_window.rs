//! Whisper tiny.en with shorter encoder windows: the time to transcribe each
//! speech fixture (8, 16 and 48 kHz, brought to 16 kHz as calls are) and the
//! word errors against the manifest's transcripts, for the full 30 s window
//! Whisper pads to and for windows fitted to the utterance.
//!
//! `cargo bench -p voxgate-benches --bench stt_window`. Figures go to
//! BENCHMARKS.md ("Speech to text: the encoder's window").

#![allow(clippy::print_stdout)]

use std::path::Path;
use std::time::Instant;

use voxgate_benches::wav_frames_16k;
use voxgate_pipeline::providers::local::whisper::{WhisperConfig, WhisperStt};

const RUNS: usize = 3;

fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Word-level edit distance.
fn errors(reference: &[String], hypothesis: &[String]) -> usize {
    let mut row: Vec<usize> = (0..=hypothesis.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, h) in hypothesis.iter().enumerate() {
            let cost = usize::from(r != h);
            let next = (row[j] + 1).min(row[j + 1] + 1).min(prev + cost);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[hypothesis.len()]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let fixtures = root.join("fixtures/audio");
    let manifest = std::fs::read_to_string(fixtures.join("manifest.tsv"))?;
    let mut set = Vec::new();
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        if let [file, _, _, kind, _, transcript] = cols[..]
            && (kind == "speech" || kind == "multi")
        {
            let (_, frames) = wav_frames_16k(&fixtures.join(file))?;
            set.push((file.to_owned(), frames.concat(), words(transcript)));
        }
    }
    let total_words: usize = set.iter().map(|(_, _, w)| w.len()).sum();
    for min_window_ms in [30_000, 10_000, 5_000, 2_000] {
        let config = WhisperConfig { min_window_ms, ..WhisperConfig::with_models_dir(&root.join("models")) };
        let stt = WhisperStt::load(&config)?;
        let mut wrong = 0;
        let mut times = Vec::new();
        for (file, audio, reference) in &set {
            let mut best = f64::MAX;
            let mut text = String::new();
            for _ in 0..RUNS {
                let t = Instant::now();
                text = stt.transcribe(audio)?;
                best = best.min(t.elapsed().as_secs_f64());
            }
            let e = errors(reference, &words(&text));
            wrong += e;
            times.push(best * 1e3);
            println!("  window >= {min_window_ms:5} ms  {file:26} {:5.0} ms  {e} errors  {text}", best * 1e3);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "window >= {min_window_ms:5} ms: median {:.0} ms per utterance, word errors {wrong}/{total_words} ({:.1} %)",
            times[times.len() / 2],
            100.0 * wrong as f64 / total_words as f64
        );
    }
    Ok(())
}
