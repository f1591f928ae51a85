//! Ids: strings on the wire and in the database, distinct types in code,
//! so a tenant's id cannot be passed where an agent's is meant.

use serde::{Deserialize, Serialize};

/// A new unguessable id with `prefix`, e.g. `job_5f0c1a...` (96 random
/// bits): the typed ids' [`CallId::random`] and the store's other rows.
#[must_use]
pub fn random_id(prefix: &str) -> String {
    format!("{prefix}_{:016x}{:08x}", rand::random::<u64>(), rand::random::<u32>())
}

macro_rules! id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The prefix of the ids [`Self::random`] makes.
            pub const PREFIX: &'static str = $prefix;

            /// A new unguessable id, e.g. `call_5f0c1a...` (96 random bits).
            #[must_use]
            pub fn random() -> Self {
                Self(random_id($prefix))
            }

            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }

            #[must_use]
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id!(
    /// A call: ours, whatever carried it.
    CallId,
    "call"
);
id!(
    /// A tenant: one business and everything it owns.
    TenantId,
    "ten"
);
id!(
    /// A stored agent.
    AgentId,
    "agt"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_carry_their_prefix_and_differ() {
        let (a, b) = (CallId::random(), CallId::random());
        assert!(a.starts_with("call_") && a.len() == "call_".len() + 24, "{a}");
        assert_ne!(a, b);
        assert_eq!(serde_json::to_string(&a).unwrap(), format!("\"{a}\""));
    }
}
