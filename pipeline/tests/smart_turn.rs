//! Smart Turn v3.2 on the turn fixtures (`fixtures/audio/turns/`), fed as
//! the session feeds it: the caller's audio up to 200 ms into a pause.

use std::path::{Path, PathBuf};

use voxgate_pipeline::dsp::smart_turn::{COMPLETE, SmartTurnModel};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn models_dir() -> PathBuf {
    std::env::var_os("VOXGATE_MODELS__DIR").map_or_else(|| root().join("models"), PathBuf::from)
}

fn model() -> Result<SmartTurnModel, Box<dyn std::error::Error>> {
    let models = models_dir();
    Ok(SmartTurnModel::load(
        &models.join("onnxruntime/libonnxruntime.so"),
        &models.join("smart-turn/smart-turn-v3.2-cpu.onnx"),
    )?)
}

fn samples(file: &str) -> Result<Vec<i16>, Box<dyn std::error::Error>> {
    let mut reader = hound::WavReader::open(root().join("fixtures/audio/turns").join(file))?;
    assert_eq!(reader.spec().sample_rate, 16_000);
    Ok(reader.samples::<i16>().collect::<Result<_, _>>()?)
}

/// Where the first pause of at least half a second begins, after the speech started.
fn first_pause(audio: &[i16]) -> Option<usize> {
    let start = audio.iter().position(|&s| s != 0)?;
    let mut run = 0;
    for (i, &s) in audio.iter().enumerate().skip(start) {
        run = if s == 0 { run + 1 } else { 0 };
        if run == 8000 {
            return Some(i + 1 - run);
        }
    }
    None
}

#[test]
fn a_hesitation_is_heard_as_unfinished_and_a_question_as_finished() -> TestResult {
    let model = model()?;
    let ask = |audio: &[i16], at: usize| model.predict(&audio[..(at + 3200).min(audio.len())]);
    // "I would like to order, um" (pause) "a chocolate cake for Saturday."
    let um = samples("um_order_16k.wav")?;
    let pause = first_pause(&um).ok_or("the fixture has a pause")?;
    let mid = ask(&um, pause)?;
    assert!(mid < COMPLETE, "mid-thought read as complete: {mid}");
    // Its end, and a plain question's end, are complete.
    let end = model.predict(&um)?;
    assert!(end > COMPLETE, "the finished order read as unfinished: {end}");
    let hours = samples("hours_16k.wav")?;
    let done = model.predict(&hours)?;
    assert!(done > COMPLETE, "the question read as unfinished: {done}");
    Ok(())
}

#[test]
fn the_model_reads_the_last_eight_seconds_and_answers_the_same_audio_the_same() -> TestResult {
    let model = model()?;
    let hours = samples("hours_16k.wav")?;
    let a = model.predict(&hours)?;
    let b = model.predict(&hours)?;
    assert!((a - b).abs() < 1e-6, "the same audio, the same answer: {a} vs {b}");
    // More than 8 s: only the last 8 s count, so leading audio changes nothing.
    let mut longer = vec![1000i16; 16_000 * 3];
    longer.extend_from_slice(&hours);
    longer.extend(std::iter::repeat_n(0, 16_000 * 8 - hours.len()));
    let padded: Vec<i16> = std::iter::repeat_n(0, 16_000 * 8 - hours.len()).collect();
    let (x, y) = (model.predict(&longer)?, model.predict(&[hours.as_slice(), &padded].concat())?);
    assert!((x - y).abs() < 1e-6, "the window is the last 8 s: {x} vs {y}");
    Ok(())
}
