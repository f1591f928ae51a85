//! Helpers shared by the integration tests: scoring what a recogniser heard.

#![allow(dead_code)] // each test file uses some of these

/// Lower case words of letters, digits and apostrophes, with numbers
/// written as digits on both sides ("four five seven two" and "4572" are
/// both "4572"; "twelve" is "12"), as WER scoring usually normalises.
pub fn words(text: &str) -> Vec<String> {
    const SMALL: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    // "9am", "9 a.m." and "9 am" are the same words.
    let lower = text.to_lowercase().replace("a.m.", "am").replace("p.m.", "pm");
    let mut cleaned = String::with_capacity(lower.len());
    let mut prev_digit = false;
    for c in lower.chars() {
        if prev_digit && c.is_alphabetic() {
            cleaned.push(' ');
        }
        prev_digit = c.is_ascii_digit();
        cleaned.push(if c.is_alphanumeric() || c == '\'' { c } else { ' ' });
    }
    let mut out: Vec<String> = Vec::new();
    let mut digit_run = false;
    for word in cleaned.split_whitespace() {
        match SMALL.iter().position(|&w| w == word) {
            // Runs of spoken single digits are one number, as written.
            Some(d) if d < 10 && digit_run => {
                if let Some(last) = out.last_mut() {
                    last.push_str(&d.to_string());
                }
            }
            Some(d) => {
                out.push(d.to_string());
                digit_run = d < 10;
            }
            None => {
                out.push(word.to_owned());
                digit_run = false;
            }
        }
    }
    out
}

/// Word error rate: edit distance over words, divided by the reference length.
pub fn wer(reference: &str, hypothesis: &str) -> f64 {
    let (r, h) = (words(reference), words(hypothesis));
    let mut row: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, hw) in h.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(rw != hw)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[h.len()] as f64 / r.len().max(1) as f64
}

/// Everything a TTS stream sends: its audio, and the error it ended with.
pub async fn collect_tts(
    mut stream: voxgate_pipeline::providers::TtsStream,
) -> (Vec<i16>, Option<voxgate_pipeline::providers::ProviderError>) {
    let (mut audio, mut error) = (Vec::new(), None);
    while let Some(chunk) = stream.audio.recv().await {
        match chunk {
            Ok(samples) => audio.extend(samples),
            Err(e) => error = Some(e),
        }
    }
    (audio, error)
}

/// A session's transport clock in a test: 20 ms ticks (on tokio's clock,
/// paused in the tests), with the session's timers and its providers'
/// input handled in between, as a transport's loop does.
pub struct Ticks {
    tick: tokio::time::Interval,
    timer: voxgate_pipeline::timer::DeadlineTimer,
}

impl Ticks {
    pub fn new() -> Self {
        Self {
            tick: tokio::time::interval(std::time::Duration::from_millis(20)),
            timer: voxgate_pipeline::timer::DeadlineTimer::new(),
        }
    }

    /// Waits for the next tick, serving `session` meanwhile.
    pub async fn next(&mut self, session: &mut voxgate_pipeline::session::Session) {
        let now = voxgate_pipeline::call::now;
        loop {
            self.timer.set_std(session.poll_timeout());
            tokio::select! {
                biased;
                _ = self.tick.tick() => return,
                () = self.timer.fired() => session.handle_timeout(now()),
                input = session.next_input() => session.handle_input(now(), input),
            }
        }
    }
}
