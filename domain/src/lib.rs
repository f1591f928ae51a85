//! The few types every part of Voxgate shares, so the media plane and the
//! control plane can speak of the same things without depending on each
//! other.
//!
//! # Layout
//! - [`Speaker`]: who said a line of a call's transcript.
//!
//! ```
//! use voxgate_domain::Speaker;
//! assert_eq!(serde_json::to_string(&Speaker::Caller)?, r#""caller""#);
//! # Ok::<(), serde_json::Error>(())
//! ```

use serde::{Deserialize, Serialize};

/// Who spoke a transcript line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    /// The person calling.
    Caller,
    /// The AI agent.
    Agent,
}

impl Speaker {
    /// As transcripts and the API say it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Caller => "caller",
            Self::Agent => "agent",
        }
    }
}
