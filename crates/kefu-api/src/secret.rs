//! [`Secret`]: a value that must not reach a log.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ErrCode;

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

/// For command-line parsers: any string is a secret.
impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Secret, Self::Err> {
        Ok(Secret::new(value))
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

/// An AppSecret (or a third-party platform's secret) that kefu takes when one is
/// chosen: 16–64 ASCII letters and digits. WeChat's own are 32 hex digits; a test may
/// bring the secret its production code already has.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Secret", into = "Secret")]
pub struct AppSecret(Secret);

impl AppSecret {
    /// The shortest secret taken.
    pub const MIN_LEN: usize = 16;
    /// The longest secret taken.
    pub const MAX_LEN: usize = 64;

    /// Checks a secret; the error is [`ErrCode::InvalidAppsecret`] (40125).
    pub fn parse(raw: impl Into<Secret>) -> Result<AppSecret, ErrCode> {
        let raw = raw.into();
        let value = raw.expose();
        let ok = (Self::MIN_LEN..=Self::MAX_LEN).contains(&value.len())
            && value.bytes().all(|b| b.is_ascii_alphanumeric());
        if ok {
            Ok(AppSecret(raw))
        } else {
            Err(ErrCode::InvalidAppsecret)
        }
    }

    /// The value itself, to hash or to show once, never to log.
    #[must_use]
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl TryFrom<Secret> for AppSecret {
    type Error = ErrCode;

    fn try_from(raw: Secret) -> Result<AppSecret, ErrCode> {
        AppSecret::parse(raw)
    }
}

impl From<AppSecret> for Secret {
    fn from(secret: AppSecret) -> Secret {
        secret.0
    }
}

impl fmt::Debug for AppSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_app_secret_is_16_to_64_letters_and_digits() {
        assert!(AppSecret::parse("0123456789abcdef").is_ok());
        assert!(AppSecret::parse("A".repeat(64)).is_ok());
        for bad in ["short", "0123456789abcde-", "0123456789abcdef 0"] {
            assert_eq!(
                AppSecret::parse(bad),
                Err(ErrCode::InvalidAppsecret),
                "{bad}"
            );
        }
        assert!(AppSecret::parse("a".repeat(65)).is_err());
        assert!(serde_json::from_str::<AppSecret>("\"short\"").is_err());
        let secret = AppSecret::parse("0123456789abcdef").unwrap();
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert_eq!(
            serde_json::to_string(&secret).unwrap(),
            "\"0123456789abcdef\""
        );
    }

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
