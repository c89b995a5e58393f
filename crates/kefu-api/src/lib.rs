//! The wire contract of WeChat's customer service ("kf") account API.
//!
//! Shared by the kefu server, the SDK and the CLI: one module per endpoint
//! ([`endpoints`]) with its method, path, request and response; the error-code table
//! with WeChat's exact messages ([`ErrCode`]); validated values ([`KfAccount`],
//! [`Nickname`], [`WechatId`], [`AppId`] …); the request id format ([`Rid`]); and the
//! types of kefu's own administration surface ([`admin`]).
//!
//! This crate knows nothing of transport: no HTTP client or server lives here.
//!
//! ```
//! use kefu_api::endpoints::{KfProfileBody, kf_update, parse_json_body};
//! use kefu_api::{ErrCode, Nickname};
//!
//! // What a client sent to `update`, checked the way WeChat checks it.
//! let body: KfProfileBody =
//!     parse_json_body(r#"{"kf_account":"test1@test","nickname":"客服1"}"#.as_bytes())?;
//! let profile =
//!     body.validate(kf_update::BAD_ACCOUNT, |a| a.belongs_to("test", "gh_0123456789ab"))?;
//! assert_eq!(profile.kf_account.prefix(), "test1");
//!
//! assert_eq!(Nickname::parse(""), Err(ErrCode::IllegalNickname));
//! assert_eq!(parse_json_body::<KfProfileBody>(b"null").unwrap_err(), ErrCode::EmptyPostData);
//! assert_eq!(ErrCode::from_code(65401).errmsg(), "invalid custom service account");
//! # Ok::<(), ErrCode>(())
//! ```

pub mod admin;
pub mod catalog;
pub mod endpoint;
pub mod endpoints;
pub mod envelope;
mod errcode;
mod rid;
pub mod schema;
mod secret;
mod types;

pub use endpoint::{
    Credential, Endpoint, Group, MAX_JSON_BODY, Method, Outgoing, OutgoingBody, Sent,
};
pub use envelope::{CONTENT_TYPE, OK_BODY, Status};
pub use errcode::{ErrCode, Refused};
pub use rid::{Rid, RidParseError};
pub use secret::{AppSecret, Secret};
pub use types::{
    AppAlias, AppId, KfAccount, MAX_NICKNAME_CHARS, MAX_OPENID_CHARS, MAX_PREFIX_CHARS,
    MAX_SUFFIX_CHARS, Nickname, OPENID_LEN, Openid, OriginalId, WechatId,
};
