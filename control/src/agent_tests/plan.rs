//! An agent test file: scripted conversations and what each answer must
//! hold. TOML for `voxgate test FILE`, the same structure as JSON for
//! `POST /v1/agents/{id}/tests`.
//!
//! ```toml
//! [defaults]
//! voice = "espeak:en-us"   # or "espeak:en+f3", "piper", "piper:1.2" (slower)
//! rate = 8000              # 8000: a phone line (Twilio stream); 16000: wideband (JSON stream)
//!
//! [[case]]
//! name = "Saturday hours"
//! agent = "bakery"          # a key of [agents.*] (the CLI only); none: the configured agent
//! [[case.turn]]
//! say = "What time do you open on Saturday?"
//! expect = ["eight|8"]      # each entry must be heard; `|` separates alternatives
//! reject = ["sorry"]        # none of these may be heard
//! tool = "book_table"       # this tool must run in the turn
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::agent::spec::AgentSpec;

/// The longest a test file may be, in cases and turns.
pub const MAX_CASES: usize = 200;
pub const MAX_TURNS: usize = 20;

/// A test file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestPlan {
    /// Agents made for this run (`voxgate test` only; the API tests the
    /// agent in its path).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub agents: BTreeMap<String, AgentSpec>,
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(rename = "case")]
    pub cases: Vec<Case>,
}

/// What every case uses unless it says otherwise.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    #[schema(value_type = String, example = "espeak:en-us")]
    pub voice: Voice,
    /// 8000 or 16000.
    pub rate: u32,
}

impl Default for Defaults {
    fn default() -> Self {
        Self { voice: Voice::default(), rate: 8000 }
    }
}

/// One conversation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    /// A key of the file's `agents` (CLI); empty: the agent under test.
    #[serde(default)]
    pub agent: String,
    #[schema(value_type = Option<String>, example = "piper")]
    pub voice: Option<Voice>,
    pub rate: Option<u32>,
    #[serde(rename = "turn")]
    pub turns: Vec<TurnCase>,
}

/// One thing the caller says, and what the answer must hold.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TurnCase {
    /// Words spoken by the case's voice.
    #[serde(default)]
    pub say: String,
    /// Or a WAV file (mono 16-bit), relative to the test file (CLI only).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub wav: Option<PathBuf>,
    /// Each must be heard in the answer; `a|b` accepts either.
    #[serde(default)]
    pub expect: Vec<String>,
    /// None of these may be heard.
    #[serde(default)]
    pub reject: Vec<String>,
    /// A tool that must run in this turn.
    #[serde(default)]
    pub tool: Option<String>,
}

/// A local voice for the caller: `espeak:NAME` or `piper[:SCALE]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Voice {
    /// espeak-ng's voice by its file name (`en-us`, `en` for British,
    /// `en-gb-x-rp`, `en-gb-scotland`), with an optional variant (`en+f3`).
    Espeak(String),
    /// The Piper voice, at a speaking rate (length scale: above 1 slower).
    Piper(f32),
}

impl Default for Voice {
    fn default() -> Self {
        Self::Espeak("en-us".into())
    }
}

impl TryFrom<String> for Voice {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        let (kind, arg) = s.split_once(':').unwrap_or((s.as_str(), ""));
        match kind {
            "espeak" => {
                let voice = if arg.is_empty() { "en-us" } else { arg };
                let ok = voice.len() <= 40
                    && voice.chars().all(|c| c.is_ascii_alphanumeric() || "-+_".contains(c));
                ok.then(|| Self::Espeak(voice.to_owned()))
                    .ok_or_else(|| format!("{voice:?} is not an espeak-ng voice name"))
            }
            "piper" => {
                let scale = if arg.is_empty() { Ok(1.0) } else { arg.parse::<f32>() };
                match scale {
                    Ok(s) if (0.5..=2.0).contains(&s) => Ok(Self::Piper(s)),
                    _ => Err(format!("{arg:?}: piper's rate is a length scale from 0.5 to 2")),
                }
            }
            _ => Err(format!("{s:?}: a voice is `espeak:NAME` or `piper[:SCALE]`")),
        }
    }
}

impl From<Voice> for String {
    fn from(v: Voice) -> Self {
        match v {
            Voice::Espeak(name) => format!("espeak:{name}"),
            Voice::Piper(scale) => format!("piper:{scale}"),
        }
    }
}

impl std::fmt::Display for Voice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from(self.clone()))
    }
}

/// A file that cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    #[error("{0}")]
    Invalid(String),
}

impl TestPlan {
    /// Reads a TOML test file.
    ///
    /// # Errors
    /// It cannot be read or parsed, or [`TestPlan::check`] refuses it.
    pub fn load(path: &std::path::Path) -> Result<Self, PlanError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| PlanError::Read { path: path.to_owned(), source })?;
        let mut plan: Self = toml::from_str(&text)?;
        // WAVs are named relative to the file.
        let base = path.parent().unwrap_or_else(|| std::path::Path::new("."));
        for turn in plan.cases.iter_mut().flat_map(|c| c.turns.iter_mut()) {
            if let Some(wav) = turn.wav.as_mut().filter(|w| w.is_relative()) {
                *wav = base.join(&*wav);
            }
        }
        plan.check(true)?;
        Ok(plan)
    }

    /// Refuses what cannot run: no cases, too many, a turn with nothing to
    /// say, an unknown agent key, a rate other than 8 or 16 kHz; and, unless
    /// `local` (the CLI), WAV files and inline agents.
    ///
    /// # Errors
    /// The first problem found.
    pub fn check(&self, local: bool) -> Result<(), PlanError> {
        let bad = |m: String| Err(PlanError::Invalid(m));
        if self.cases.is_empty() || self.cases.len() > MAX_CASES {
            return bad(format!("a test file has 1 to {MAX_CASES} cases"));
        }
        if !local && !self.agents.is_empty() {
            return bad("agents cannot be defined here: the agent under test is the one in the path".into());
        }
        for case in &self.cases {
            let name = &case.name;
            if case.turns.is_empty() || case.turns.len() > MAX_TURNS {
                return bad(format!("case {name:?}: 1 to {MAX_TURNS} turns"));
            }
            if !case.agent.is_empty() && (!local || !self.agents.contains_key(&case.agent)) {
                return bad(format!("case {name:?}: no agent {:?} in this file", case.agent));
            }
            let rate = case.rate.unwrap_or(self.defaults.rate);
            if rate != 8000 && rate != 16000 {
                return bad(format!("case {name:?}: rate {rate}: 8000 or 16000"));
            }
            for turn in &case.turns {
                match (&turn.wav, turn.say.trim().is_empty()) {
                    (Some(_), _) if !local => {
                        return bad(format!("case {name:?}: WAV files only from the command line"));
                    }
                    (Some(_), false) => {
                        return bad(format!("case {name:?}: a turn says words or plays a WAV, not both"));
                    }
                    (None, true) => return bad(format!("case {name:?}: a turn with nothing to say")),
                    _ => {}
                }
                if turn.say.len() > 1000 || turn.expect.len() + turn.reject.len() > 20 {
                    return bad(format!(
                        "case {name:?}: a turn says at most 1000 characters and checks 20 things"
                    ));
                }
            }
        }
        for (key, spec) in &self.agents {
            spec.validate()
                .map_err(|e| PlanError::Invalid(format!("agent {key:?}: {}: {}", e.field, e.reason)))?;
        }
        Ok(())
    }

    /// The voice and rate of `case`.
    #[must_use]
    pub fn voice_of(&self, case: &Case) -> (Voice, u32) {
        (
            case.voice.clone().unwrap_or_else(|| self.defaults.voice.clone()),
            case.rate.unwrap_or(self.defaults.rate),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
        [defaults]
        voice = "piper:1.1"
        rate = 16000

        [agents.bakery]
        name = "Bakery"
        system_prompt = "You answer for a bakery."

        [[case]]
        name = "hours"
        agent = "bakery"
        rate = 8000
        [[case.turn]]
        say = "When do you open?"
        expect = ["eight|8"]
        reject = ["sorry"]
    "#;

    #[test]
    fn a_file_reads_with_its_defaults() {
        let plan: TestPlan = toml::from_str(FILE).expect("parses");
        plan.check(true).expect("runs");
        let case = &plan.cases[0];
        assert_eq!(plan.voice_of(case), (Voice::Piper(1.1), 8000));
        assert_eq!(case.turns[0].expect, ["eight|8"]);
        // The API tests the agent in its path: inline agents are refused there.
        assert!(plan.check(false).is_err());
    }

    #[test]
    fn what_cannot_run_is_refused() {
        let base: TestPlan = toml::from_str(FILE).expect("parses");
        let with = |change: fn(&mut TestPlan)| {
            let mut p = base.clone();
            change(&mut p);
            p.check(true).is_err()
        };
        assert!(with(|p| p.cases.clear()));
        assert!(with(|p| p.cases[0].agent = "nobody".into()));
        assert!(with(|p| p.cases[0].rate = Some(44_100)));
        assert!(with(|p| p.cases[0].turns[0].say = " ".into()));
        assert!(with(|p| p.cases[0].turns[0].wav = Some("a.wav".into())));
        assert!(with(|p| p.cases[0].turns.clear()));
        assert!(!with(|_| {}));
    }

    #[test]
    fn voices_parse_and_print_back() {
        for (text, voice) in [
            ("espeak:en+f3", Voice::Espeak("en+f3".into())),
            ("espeak", Voice::Espeak("en-us".into())),
            ("piper", Voice::Piper(1.0)),
        ] {
            assert_eq!(Voice::try_from(text.to_owned()), Ok(voice.clone()));
            assert_eq!(Voice::try_from(String::from(voice.clone())), Ok(voice));
        }
        for bad in ["say", "espeak:en us", "espeak:$(rm)", "piper:9", "piper:x"] {
            assert!(Voice::try_from(bad.to_owned()).is_err(), "{bad}");
        }
    }
}
