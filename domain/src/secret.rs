//! A configured secret (a key, a password) that no log or printout shows.

use serde::{Deserialize, Serialize};

/// A secret from the configuration: `Debug` and `Serialize` show `<set>`
/// (or `""` when empty), never the value, so `voxgate config` and logs
/// cannot leak it.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that sends it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether none is set.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// This secret, or else the environment variable `var` (a vendor's
    /// usual name, e.g. `OPENAI_API_KEY`), or empty.
    #[must_use]
    pub fn or_env(&self, var: &str) -> String {
        if self.0.is_empty() { std::env::var(var).unwrap_or_default() } else { self.expose().to_owned() }
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "<set>" })
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "<set>" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_printout_shows_the_value() {
        let s = Secret::from("hunter2".to_owned());
        assert_eq!(format!("{s:?}"), "<set>");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"<set>\"");
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(format!("{:?}", Secret::default()), "\"\"");
    }
}
