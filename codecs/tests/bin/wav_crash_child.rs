//! The child of `tests/crash_recording.rs`: records 20 ms stereo frames in
//! real time to the file named on its command line, and prints `patched`
//! after each half second (when the recorder has just patched the header),
//! until it is killed. Caller left: the frame number; agent right: 1234.

use std::io::Write as _;
use std::time::{Duration, Instant};

use voxgate_codecs::SampleRate;
use voxgate_codecs::wav::{WavLayout, WavRecorder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args_os().nth(1).ok_or("usage: wav-crash-child <file.wav>")?;
    let mut rec = WavRecorder::create(path.as_ref(), SampleRate::HZ_8000, WavLayout::CallerLeftAgentRight)?;
    let mut stdout = std::io::stdout();
    let start = Instant::now();
    // 60 s at most: never left running if the parent dies first.
    for n in 0u32..3000 {
        let caller = [(n % 30000) as i16; 160];
        rec.write_stereo(&caller, &[1234; 160])?;
        // 25 frames of 160 samples: half a second at 8 kHz.
        if (n + 1) % 25 == 0 {
            writeln!(stdout, "patched")?;
            stdout.flush()?;
        }
        let due = start + Duration::from_millis(20 * u64::from(n + 1));
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    Ok(())
}
