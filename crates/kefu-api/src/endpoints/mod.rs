//! One module per WeChat endpoint: method, path, request and response together.

pub mod component;
pub mod kf_add;
pub mod kf_del;
pub mod kf_invite;
pub mod kf_list;
pub mod kf_online;
pub mod kf_session;
pub mod kf_update;
pub mod kf_uploadheadimg;
pub mod message;
pub mod msgrecord;
pub mod quota;
pub mod rid_get;
pub mod stable_token;
pub mod token;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::{ErrCode, Refused};

/// Reads a JSON request body the way WeChat does (docs/behaviour.md, "Every path"):
/// empty or `null` is 44002; anything that is not a JSON object of the expected field types is 47001.
/// Unknown fields are ignored; a field given twice is 47001; a UTF-8 byte order mark
/// is skipped. The `Content-Type` header is never consulted.
pub fn parse_json_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ErrCode> {
    check_json_body(body).map_err(ErrCode::from)
}

/// [`parse_json_body`], saying what is wrong with the body and where (line and
/// column; never the body's own text, which may hold a secret).
pub fn check_json_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Refused> {
    let trimmed = body
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(body)
        .trim_ascii();
    if trimmed.is_empty() {
        return Err(Refused::new(ErrCode::EmptyPostData, "the body is empty"));
    }
    if trimmed == b"null" {
        return Err(Refused::new(
            ErrCode::EmptyPostData,
            "the body is JSON null",
        ));
    }
    if trimmed.first() != Some(&b'{') {
        return Err(Refused::new(
            ErrCode::DataFormatError,
            "the body is not a JSON object (it does not start with '{')",
        ));
    }
    serde_json::from_slice(trimmed).map_err(|error| {
        let what = match error.classify() {
            serde_json::error::Category::Data => {
                "a field has the wrong JSON type, or is given twice,"
            }
            serde_json::error::Category::Eof => "the JSON ends too early,",
            _ => "the body is not valid JSON",
        };
        Refused::new(
            ErrCode::DataFormatError,
            format!("{what} at line {} column {}", error.line(), error.column()),
        )
    })
}

/// A body field as a client sent it: absent, `null`, or a string. Any other JSON
/// type fails deserialisation (47001).
pub(crate) type RawField = Option<String>;

/// A field that must be given (not absent, not empty), or `code` saying so.
pub(crate) fn required<'a>(
    value: Option<&'a str>,
    code: ErrCode,
    field: &str,
) -> Result<&'a str, Refused> {
    value
        .filter(|value| !value.is_empty())
        .ok_or_else(|| Refused::new(code, format!("{field} is missing or empty")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Probe {
        #[allow(dead_code)]
        kf_account: RawField,
    }

    #[test]
    fn body_shapes() {
        assert_eq!(
            parse_json_body::<Probe>(b"").unwrap_err(),
            ErrCode::EmptyPostData
        );
        assert_eq!(
            parse_json_body::<Probe>(b" null ").unwrap_err(),
            ErrCode::EmptyPostData
        );
        assert_eq!(
            parse_json_body::<Probe>(b"[]").unwrap_err(),
            ErrCode::DataFormatError
        );
        assert_eq!(
            parse_json_body::<Probe>(b"{").unwrap_err(),
            ErrCode::DataFormatError
        );
        assert_eq!(
            parse_json_body::<Probe>(br#"{"kf_account":1}"#).unwrap_err(),
            ErrCode::DataFormatError
        );
        assert!(parse_json_body::<Probe>(br#"{"kf_account":"a@b","password":"x"}"#).is_ok());
        assert!(parse_json_body::<Probe>(br#"{"kf_account":"\u5ba2"}"#).is_ok());
        assert!(parse_json_body::<Probe>(b"\xEF\xBB\xBF{}").is_ok());
        assert_eq!(
            parse_json_body::<Probe>(br#"{"kf_account":"a@b","kf_account":"c@b"}"#).unwrap_err(),
            ErrCode::DataFormatError
        );
    }
}

/// `{kf_account, nickname}`: the request of `add` and `update`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, JsonSchema)]
pub struct KfProfile {
    /// The account.
    pub kf_account: crate::KfAccount,
    /// Its nickname.
    pub nickname: crate::Nickname,
}

/// The body of `add` and `update` as a client sent it, before validation.
/// Extra fields (the obsolete `password`, `business_id`) are ignored.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct KfProfileBody {
    /// The account, unvalidated.
    #[serde(default)]
    pub kf_account: RawField,
    /// The nickname, unvalidated.
    #[serde(default)]
    pub nickname: RawField,
}

impl KfProfileBody {
    /// Validates the account, then the nickname. An absent, illegal or foreign
    /// account (`belongs` says whether its suffix is the app's) answers
    /// `bad_account` (65404 for `add`, 65401 elsewhere); an absent or illegal
    /// nickname answers 65403.
    pub fn validate(
        &self,
        bad_account: ErrCode,
        belongs: impl FnOnce(&crate::KfAccount) -> bool,
    ) -> Result<KfProfile, ErrCode> {
        self.check(bad_account, belongs).map_err(ErrCode::from)
    }

    /// [`KfProfileBody::validate`], saying which rule the body breaks.
    pub fn check(
        &self,
        bad_account: ErrCode,
        belongs: impl FnOnce(&crate::KfAccount) -> bool,
    ) -> Result<KfProfile, Refused> {
        let kf_account =
            crate::KfAccount::check_for(self.kf_account.as_deref(), bad_account, belongs)?;
        let nickname = crate::Nickname::check(self.nickname.as_deref().unwrap_or(""))?;
        Ok(KfProfile {
            kf_account,
            nickname,
        })
    }
}
