//! One error type for every call: what WeChat (or kefu) answered, a request refused
//! before it was sent, or a transport failure. Never shows a token or a secret.

use std::fmt;

use kefu_api::{ErrCode, Rid};

/// Why a call failed.
pub struct Error {
    kind: Kind,
    retried: bool,
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
    /// The token store failed, or another process's refresh did not finish in time.
    Store(String),
}

impl Error {
    fn new(kind: Kind) -> Error {
        Error {
            kind,
            retried: false,
        }
    }

    pub(crate) fn api(code: ErrCode, errmsg: String) -> Error {
        Error::new(Kind::Api { code, errmsg })
    }

    pub(crate) fn validation(code: ErrCode) -> Error {
        Error::new(Kind::Validation(code))
    }

    pub(crate) fn transport(error: reqwest::Error) -> Error {
        // The URL carries the access_token: never keep it. The causes carry no URL.
        let timed_out = error.is_timeout();
        let error = error.without_url();
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        if timed_out {
            message.push_str(" (timed out)");
        }
        Error::new(Kind::Transport(message))
    }

    pub(crate) fn status(status: reqwest::StatusCode) -> Error {
        Error::new(Kind::Transport(format!("HTTP {status}")))
    }

    pub(crate) fn decode(what: impl Into<String>) -> Error {
        Error::new(Kind::Decode(what.into()))
    }

    pub(crate) fn config(what: impl Into<String>) -> Error {
        Error::new(Kind::Config(what.into()))
    }

    pub(crate) fn store(what: impl Into<String>) -> Error {
        Error::new(Kind::Store(what.into()))
    }

    pub(crate) fn after_retries(mut self, retried: bool) -> Error {
        self.retried = retried;
        self
    }

    /// Whether this is the answer to a retry: an earlier attempt failed with `-1` or in
    /// transport, and may have been applied.
    #[must_use]
    pub fn was_retried(&self) -> bool {
        self.retried
    }

    /// The token store failed (or a refresh elsewhere did not finish in time).
    #[must_use]
    pub fn is_store(&self) -> bool {
        matches!(self.kind, Kind::Store(_))
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
            Kind::Store(message) => write!(f, "token store: {message}"),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("retried", &self.retried)
            .finish()
    }
}

impl std::error::Error for Error {}

/// A short alias.
pub type Result<T> = std::result::Result<T, Error>;
