//! espeak-ng through its C library (Debian's `libespeak-ng`): IPA phonemes
//! for the Piper voice, and espeak-ng's own voice as a fallback.
//!
//! libespeak-ng keeps global state, so every call holds one process-wide lock.

use std::ffi::{CStr, CString, c_char, c_int, c_short, c_void};
use std::sync::{Mutex, OnceLock};

use super::LocalModelError;

#[link(name = "espeak-ng")]
unsafe extern "C" {
    fn espeak_Initialize(output: c_int, buflength: c_int, path: *const c_char, options: c_int) -> c_int;
    fn espeak_SetVoiceByName(name: *const c_char) -> c_int;
    fn espeak_TextToPhonemes(
        textptr: *mut *const c_void,
        textmode: c_int,
        phonememode: c_int,
    ) -> *const c_char;
    fn espeak_SetSynthCallback(cb: SynthCallback);
    fn espeak_Synth(
        text: *const c_void,
        size: usize,
        position: u32,
        position_type: c_int,
        end_position: u32,
        flags: u32,
        unique_identifier: *mut u32,
        user_data: *mut c_void,
    ) -> c_int;
}

type SynthCallback =
    Option<unsafe extern "C" fn(wav: *mut c_short, numsamples: c_int, events: *mut c_void) -> c_int>;

const AUDIO_OUTPUT_SYNCHRONOUS: c_int = 2;
const INITIALIZE_DONT_EXIT: c_int = 0x8000;
const CHARS_UTF8: c_int = 1;
const PHONEMES_IPA: c_int = 0x02;
const EE_OK: c_int = 0;
const POS_CHARACTER: c_int = 1;

/// espeak-ng's sample rate once initialised.
static INIT: OnceLock<Result<u32, String>> = OnceLock::new();
/// Serialises every call into libespeak-ng.
static LOCK: Mutex<()> = Mutex::new(());

fn init() -> Result<u32, LocalModelError> {
    INIT.get_or_init(|| {
        // SAFETY: a null path selects the library's default data directory;
        // DONT_EXIT makes a failure a return value rather than exit().
        let rate =
            unsafe { espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, std::ptr::null(), INITIALIZE_DONT_EXIT) };
        if rate <= 0 {
            return Err("espeak_Initialize failed (is espeak-ng-data installed?)".to_owned());
        }
        // SAFETY: called once, under OnceLock, before any other use.
        unsafe { espeak_SetSynthCallback(Some(collect_samples)) };
        Ok(rate as u32)
    })
    .clone()
    .map_err(|message| LocalModelError::Espeak { message })
}

fn set_voice(voice: &str) -> Result<(), LocalModelError> {
    let name =
        CString::new(voice).map_err(|_| LocalModelError::Espeak { message: "voice name with NUL".into() })?;
    // SAFETY: `name` is a valid C string for the duration of the call.
    if unsafe { espeak_SetVoiceByName(name.as_ptr()) } != EE_OK {
        return Err(LocalModelError::Espeak { message: format!("unknown espeak-ng voice {voice:?}") });
    }
    Ok(())
}

/// One sentence of IPA phonemes, clauses joined with their punctuation.
pub type Sentence = String;

/// Converts `text` to IPA phonemes with espeak-ng's `voice`, split into
/// sentences, keeping the punctuation between clauses as Piper expects.
///
/// # Errors
/// espeak-ng is missing or does not know the voice.
pub fn phonemize(text: &str, voice: &str) -> Result<Vec<Sentence>, LocalModelError> {
    init()?;
    let text = CString::new(text.replace('\0', " "))
        .map_err(|_| LocalModelError::Espeak { message: "text with NUL".into() })?;
    let bytes = text.as_bytes();
    let _guard = LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    set_voice(voice)?;
    let mut sentences = Vec::new();
    let mut current = String::new();
    let start = text.as_ptr().cast::<c_void>();
    let mut cursor: *const c_void = start;
    while !cursor.is_null() {
        let before = cursor as usize - start as usize;
        // SAFETY: `cursor` points into `text`, a NUL-terminated buffer alive
        // for the loop; espeak advances it clause by clause and sets it to
        // null at the end. The returned buffer is copied before the next call.
        let phonemes = unsafe {
            let p = espeak_TextToPhonemes(&raw mut cursor, CHARS_UTF8, PHONEMES_IPA);
            if p.is_null() { String::new() } else { CStr::from_ptr(p).to_string_lossy().into_owned() }
        };
        let after = if cursor.is_null() { bytes.len() } else { cursor as usize - start as usize };
        let punct = clause_punctuation(&bytes[before.min(after)..], after - before.min(after));
        if !current.is_empty() && !phonemes.is_empty() {
            current.push(' ');
        }
        current.push_str(phonemes.trim());
        match punct {
            Some(p @ ('.' | '!' | '?')) => {
                current.push(p);
                sentences.push(std::mem::take(&mut current));
            }
            Some(p) => current.push(p),
            None => {}
        }
    }
    if !current.trim().is_empty() {
        sentences.push(current);
    }
    Ok(sentences)
}

/// The punctuation that ended a clause: espeak reads a character or two
/// into the next clause, so it is the last `.,;:!?` within the first
/// `consumed` bytes of `rest` that is followed by white space or the end
/// (so the point in "3.5" does not count).
fn clause_punctuation(rest: &[u8], consumed: usize) -> Option<char> {
    let text = String::from_utf8_lossy(rest);
    let mut found = None;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if i >= consumed {
            break;
        }
        let ends = chars.peek().is_none_or(|&(_, next)| next.is_whitespace());
        if ".,;:!?".contains(c) && ends {
            found = Some(c);
        }
    }
    found
}

unsafe extern "C" fn collect_samples(wav: *mut c_short, numsamples: c_int, _events: *mut c_void) -> c_int {
    if !wav.is_null() && numsamples > 0 {
        // SAFETY: espeak hands us `numsamples` valid samples at `wav`. The
        // callback runs inside espeak_Synth on the calling thread (which holds
        // LOCK), so the thread-local buffer is that call's.
        let samples = unsafe { std::slice::from_raw_parts(wav, numsamples as usize) };
        SYNTH_BUFFER.with(|b| b.borrow_mut().extend_from_slice(samples));
    }
    0 // continue
}

thread_local! {
    static SYNTH_BUFFER: std::cell::RefCell<Vec<i16>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Speaks `text` with espeak-ng's own `voice`; returns 16-bit samples at
/// [`sample_rate`]. The fallback voice when Piper is not available.
///
/// # Errors
/// espeak-ng is missing, does not know the voice, or fails.
pub fn synthesize(text: &str, voice: &str) -> Result<Vec<i16>, LocalModelError> {
    init()?;
    let text = CString::new(text.replace('\0', " "))
        .map_err(|_| LocalModelError::Espeak { message: "text with NUL".into() })?;
    let _guard = LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    set_voice(voice)?;
    SYNTH_BUFFER.with(|b| b.borrow_mut().clear());
    // SAFETY: `text` is a valid NUL-terminated UTF-8 buffer for the call; in
    // synchronous mode espeak_Synth returns after all callbacks have run.
    let status = unsafe {
        espeak_Synth(
            text.as_ptr().cast(),
            text.as_bytes().len() + 1,
            0,
            POS_CHARACTER,
            0,
            CHARS_UTF8 as u32,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    if status != EE_OK {
        return Err(LocalModelError::Espeak { message: format!("espeak_Synth returned {status}") });
    }
    Ok(SYNTH_BUFFER.with(|b| std::mem::take(&mut *b.borrow_mut())))
}

/// espeak-ng's output rate (22050 Hz for the standard voices).
///
/// # Errors
/// espeak-ng is missing.
pub fn sample_rate() -> Result<u32, LocalModelError> {
    init()
}

#[cfg(test)]
mod tests {
    use super::clause_punctuation;

    #[test]
    fn clause_punctuation_is_followed_by_space_or_the_end() {
        assert_eq!(clause_punctuation(b"Hello, I", 8), Some(','));
        assert_eq!(clause_punctuation(b" would like a table. I", 22), Some('.'));
        assert_eq!(clause_punctuation(b"s seven OK?", 11), Some('?'));
        assert_eq!(clause_punctuation(b"costs 3.5 dollars", 12), None);
        assert_eq!(clause_punctuation(b"Hello, I", 5), None);
    }
}
