//! [`Secret`]: a value that must not reach a log.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An AppSecret, a token, a ticket or a refresh token: on the wire it is the plain
/// string WeChat sends, but `Debug` shows `<redacted>`, so that a type holding one can
/// derive `Debug` and still be logged. Read it with [`Secret::expose`].
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    #[must_use]
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, to send or to check, never to log.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The value, unwrapped.
    #[must_use]
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_its_string_on_the_wire_and_redacted_in_debug() {
        let secret = Secret::new("s3cr3t-value");
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"s3cr3t-value\"");
        let back: Secret = serde_json::from_str("\"s3cr3t-value\"").unwrap();
        assert_eq!(back, secret);
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert!(!format!("{:?}", Some(&secret)).contains("s3cr3t"));
        assert!(
            serde_json::from_str::<Secret>("5").is_err(),
            "only a string"
        );
    }
}
