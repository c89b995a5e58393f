//! One error type for every call: what WeChat (or kefu) answered, a request refused
//! before it was sent, or a transport failure. Never shows a token or a secret.

use std::fmt;

use kefu_api::{ErrCode, Rid};

/// Why a call failed.
pub struct Error {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// The platform answered a non-zero errcode.
    Api { code: ErrCode, errmsg: String },
    /// The input was refused before any request, with the errcode the server would give.
    Validation(ErrCode),
    /// The request did not complete (connection, timeout, non-2xx status).
    Transport(String),
    /// The answer was not what the endpoint answers.
    Decode(String),
    /// The client cannot make this call (e.g. no credentials to fetch a token).
    Config(String),
}

impl Error {
    pub(crate) fn api(code: ErrCode, errmsg: String) -> Error {
        Error {
            kind: Kind::Api { code, errmsg },
        }
    }

    pub(crate) fn validation(code: ErrCode) -> Error {
        Error {
            kind: Kind::Validation(code),
        }
    }

    pub(crate) fn transport(error: reqwest::Error) -> Error {
        // The URL carries the access_token: never keep it.
        Error {
            kind: Kind::Transport(error.without_url().to_string()),
        }
    }

    pub(crate) fn status(status: reqwest::StatusCode) -> Error {
        Error {
            kind: Kind::Transport(format!("HTTP {status}")),
        }
    }

    pub(crate) fn decode(what: impl Into<String>) -> Error {
        Error {
            kind: Kind::Decode(what.into()),
        }
    }

    pub(crate) fn config(what: impl Into<String>) -> Error {
        Error {
            kind: Kind::Config(what.into()),
        }
    }

    /// The errcode: WeChat's answer, or the code the server would have given to an
    /// input refused before sending.
    #[must_use]
    pub fn code(&self) -> Option<ErrCode> {
        match &self.kind {
            Kind::Api { code, .. } | Kind::Validation(code) => Some(*code),
            _ => None,
        }
    }

    /// WeChat's errmsg (with its ` rid: …`), or the table's text for a refused input.
    #[must_use]
    pub fn errmsg(&self) -> Option<&str> {
        match &self.kind {
            Kind::Api { errmsg, .. } => Some(errmsg),
            Kind::Validation(code) => Some(code.errmsg()),
            _ => None,
        }
    }

    /// The request id from the errmsg, for `rid/get`.
    #[must_use]
    pub fn rid(&self) -> Option<Rid> {
        self.errmsg().and_then(Rid::from_errmsg)
    }

    /// 40001, 40014 or 42001: the token was refused.
    #[must_use]
    pub fn is_token_error(&self) -> bool {
        matches!(&self.kind, Kind::Api { code, .. } if code.is_token_error())
    }

    /// 45009 or 45011: a quota is spent.
    #[must_use]
    pub fn is_quota_error(&self) -> bool {
        matches!(
            &self.kind,
            Kind::Api {
                code: ErrCode::DailyQuotaReached | ErrCode::MinuteQuotaReached,
                ..
            }
        )
    }

    /// The platform answered with an errcode.
    #[must_use]
    pub fn is_api(&self) -> bool {
        matches!(self.kind, Kind::Api { .. })
    }

    /// The input was refused before any request was sent.
    #[must_use]
    pub fn is_validation(&self) -> bool {
        matches!(self.kind, Kind::Validation(_))
    }

    /// The request did not complete.
    #[must_use]
    pub fn is_transport(&self) -> bool {
        matches!(self.kind, Kind::Transport(_))
    }

    /// `-1 system error`, or a transport failure: the call may or may not have been
    /// applied.
    #[must_use]
    pub fn is_uncertain(&self) -> bool {
        self.is_transport() || self.code() == Some(ErrCode::SystemError)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Api { code, errmsg } => write!(f, "errcode {}: {errmsg}", code.code()),
            Kind::Validation(code) => {
                write!(
                    f,
                    "errcode {} (refused before sending): {}",
                    code.code(),
                    code.errmsg()
                )
            }
            Kind::Transport(message) => write!(f, "transport: {message}"),
            Kind::Decode(message) => write!(f, "unexpected answer: {message}"),
            Kind::Config(message) => write!(f, "{message}"),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error").field("kind", &self.kind).finish()
    }
}

impl std::error::Error for Error {}

/// A short alias.
pub type Result<T> = std::result::Result<T, Error>;
