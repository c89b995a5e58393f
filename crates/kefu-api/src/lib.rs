//! The wire contract of WeChat's customer service ("kf") account API.
//!
//! Shared by the kefu server, the SDK and the CLI: one module per endpoint
//! ([`endpoints`]) with its method, path, request and response; the error-code table
//! with WeChat's exact messages ([`ErrCode`]); validated values ([`KfAccount`],
//! [`Nickname`], [`WechatId`], [`AppId`] …); the request id format ([`Rid`]); and the
//! types of kefu's own administration surface ([`admin`]).
//!
//! This crate knows nothing of transport: no HTTP client or server lives here.

pub mod admin;
pub mod endpoint;
pub mod endpoints;
pub mod envelope;
mod errcode;
mod rid;
mod types;

pub use endpoint::{Endpoint, Method};
pub use envelope::{CONTENT_TYPE, OK_BODY, Status};
pub use errcode::ErrCode;
pub use rid::{Rid, RidParseError};
pub use types::{
    AppAlias, AppId, KfAccount, MAX_NICKNAME_CHARS, MAX_PREFIX_CHARS, MAX_SUFFIX_CHARS, Nickname,
    OriginalId, WechatId,
};
