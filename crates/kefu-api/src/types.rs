//! Validated values: once parsed, a value of these types is known to be legal.
//!
//! Each type has a private field and a `parse` that returns the errcode WeChat gives
//! for an illegal value, so the server and the SDK reject the same inputs the same way.

use std::fmt;

use crate::{ErrCode, Refused};

/// The longest kf_account suffix (the app's WeChat ID or original id) accepted.
pub const MAX_SUFFIX_CHARS: usize = 30;
/// The longest kf_account prefix (the part before `@`).
pub const MAX_PREFIX_CHARS: usize = 10;
/// The longest nickname, in Unicode scalar values.
pub const MAX_NICKNAME_CHARS: usize = 16;

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            /// The value as a string slice.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                $name::parse(&raw).map_err(|code| {
                    serde::de::Error::custom(format_args!("{}: {code}", stringify!($name)))
                })
            }
        }
    };
}

fn is_suffix_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// A customer service account, `prefix@suffix`: the prefix is 1–10 of
/// `[A-Za-z0-9_]`, the suffix 1–30 of `[A-Za-z0-9_-]` (the app's WeChat ID or
/// original id; whether it is *this* app's is checked with [`KfAccount::belongs_to`]).
///
/// Comparison is exact: WeChat keeps the case of accounts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KfAccount(String);

impl KfAccount {
    /// Parses an account. The error is [`ErrCode::InvalidKfAccount`] (65401), the
    /// code of every endpoint but `add` (which answers 65404, see
    /// [`crate::endpoints::kf_add`]).
    pub fn parse(raw: &str) -> Result<KfAccount, ErrCode> {
        KfAccount::check(raw).map_err(ErrCode::from)
    }

    /// [`KfAccount::parse`], saying which rule `raw` breaks.
    pub fn check(raw: &str) -> Result<KfAccount, Refused> {
        let refused = |why: String| Refused::new(ErrCode::InvalidKfAccount, why);
        let Some((prefix, suffix)) = raw.split_once('@') else {
            return Err(refused(
                "the account has no '@': it is prefix@suffix".to_owned(),
            ));
        };
        if !(1..=MAX_PREFIX_CHARS).contains(&prefix.len()) {
            return Err(refused(format!(
                "the prefix before '@' is {} bytes long, 1 to {MAX_PREFIX_CHARS} are allowed",
                prefix.len()
            )));
        }
        if !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(refused(
                "the prefix before '@' may hold only letters, digits and '_'".to_owned(),
            ));
        }
        if !(1..=MAX_SUFFIX_CHARS).contains(&suffix.len()) {
            return Err(refused(format!(
                "the suffix after '@' is {} bytes long, 1 to {MAX_SUFFIX_CHARS} are allowed",
                suffix.len()
            )));
        }
        if !suffix.chars().all(is_suffix_char) {
            return Err(refused(
                "the suffix after '@' may hold only letters, digits, '_' and '-'".to_owned(),
            ));
        }
        Ok(KfAccount(raw.to_owned()))
    }

    /// [`KfAccount::check`] for a field that may be absent and must name one of the
    /// app's accounts (`belongs` says whether its suffix is the app's); any problem
    /// is `code` (65401, or 65404 on `add`), with the rule it broke.
    pub fn check_for(
        raw: Option<&str>,
        code: ErrCode,
        belongs: impl FnOnce(&KfAccount) -> bool,
    ) -> Result<KfAccount, Refused> {
        let refused = |why: String| Refused::new(code, why);
        let raw = raw.ok_or_else(|| refused("kf_account is missing".to_owned()))?;
        let account = KfAccount::check(raw).map_err(|e| refused(e.reason))?;
        if belongs(&account) {
            Ok(account)
        } else {
            Err(refused(format!(
                "the suffix '{}' is neither this app's WeChat ID nor its original id",
                account.suffix()
            )))
        }
    }

    /// The part before `@`.
    #[must_use]
    pub fn prefix(&self) -> &str {
        self.0.split_once('@').map_or("", |(p, _)| p)
    }

    /// The part after `@`.
    #[must_use]
    pub fn suffix(&self) -> &str {
        self.0.split_once('@').map_or("", |(_, s)| s)
    }

    /// Whether the suffix names the app with this WeChat ID (alias) or original id.
    #[must_use]
    pub fn belongs_to(&self, wechat_id: &str, original_id: &str) -> bool {
        let suffix = self.suffix();
        suffix == wechat_id || suffix == original_id
    }
}

string_newtype!(KfAccount);

/// A kf nickname: 1–16 Unicode scalar values, not blank, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Nickname(String);

impl Nickname {
    /// Parses a nickname; the error is [`ErrCode::IllegalNickname`] (65403).
    pub fn parse(raw: &str) -> Result<Nickname, ErrCode> {
        Nickname::check(raw).map_err(ErrCode::from)
    }

    /// [`Nickname::parse`], saying which rule `raw` breaks.
    pub fn check(raw: &str) -> Result<Nickname, Refused> {
        let refused = |why: String| Refused::new(ErrCode::IllegalNickname, why);
        let count = raw.chars().count();
        if count == 0 {
            return Err(refused("the nickname is missing or empty".to_owned()));
        }
        if count > MAX_NICKNAME_CHARS {
            return Err(refused(format!(
                "the nickname is {count} characters, at most {MAX_NICKNAME_CHARS} are allowed"
            )));
        }
        if raw.chars().all(char::is_whitespace) {
            return Err(refused("the nickname is only spaces".to_owned()));
        }
        if raw.chars().any(char::is_control) {
            return Err(refused(
                "the nickname holds a control character (a newline, a tab …)".to_owned(),
            ));
        }
        Ok(Nickname(raw.to_owned()))
    }
}

string_newtype!(Nickname);

/// A personal WeChat ID, as given to `inviteworker`: 6–20 characters, a letter
/// first, then letters, digits, `_` or `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WechatId(String);

impl WechatId {
    /// Parses a WeChat ID; the error is [`ErrCode::WechatAccountInvalid`] (65409).
    pub fn parse(raw: &str) -> Result<WechatId, ErrCode> {
        WechatId::check(raw).map_err(ErrCode::from)
    }

    /// [`WechatId::parse`], saying which rule `raw` breaks.
    pub fn check(raw: &str) -> Result<WechatId, Refused> {
        let refused = |why: String| Refused::new(ErrCode::WechatAccountInvalid, why);
        if !(6..=20).contains(&raw.len()) {
            return Err(refused(format!(
                "the WeChat ID is {} bytes long, 6 to 20 are allowed",
                raw.len()
            )));
        }
        let mut chars = raw.chars();
        if !chars.next().is_some_and(|c| c.is_ascii_alphabetic()) {
            return Err(refused("a WeChat ID starts with a letter".to_owned()));
        }
        if !chars.all(is_suffix_char) {
            return Err(refused(
                "a WeChat ID holds only letters, digits, '_' and '-'".to_owned(),
            ));
        }
        Ok(WechatId(raw.to_owned()))
    }
}

string_newtype!(WechatId);

/// An official account's own WeChat ID (alias), used as the suffix of its kf
/// accounts: 1–30 of `[A-Za-z0-9_-]`.
///
/// Looser than [`WechatId`] on purpose, so that the suffix of WeChat's own examples
/// (`test1@test`) can be an app's alias.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AppAlias(String);

impl AppAlias {
    /// Parses an alias; the error is [`ErrCode::IllegalKfAccount`] (65404), since an
    /// alias that is illegal makes every kf account of the app illegal.
    pub fn parse(raw: &str) -> Result<AppAlias, ErrCode> {
        let ok = (1..=MAX_SUFFIX_CHARS).contains(&raw.len()) && raw.chars().all(is_suffix_char);
        if ok {
            Ok(AppAlias(raw.to_owned()))
        } else {
            Err(ErrCode::IllegalKfAccount)
        }
    }
}

string_newtype!(AppAlias);

/// An official account's original id: `gh_` and 12 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OriginalId(String);

impl OriginalId {
    /// Parses an original id; the error is [`ErrCode::IllegalKfAccount`] (65404).
    pub fn parse(raw: &str) -> Result<OriginalId, ErrCode> {
        let ok = raw.len() == 15
            && raw.starts_with("gh_")
            && raw[3..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(OriginalId(raw.to_owned()))
        } else {
            Err(ErrCode::IllegalKfAccount)
        }
    }
}

string_newtype!(OriginalId);

/// An appid: `wx` and 16 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppId(String);

impl AppId {
    /// Parses an appid; the error is [`ErrCode::InvalidAppid`] (40013).
    pub fn parse(raw: &str) -> Result<AppId, ErrCode> {
        let ok = raw.len() == 18
            && raw.starts_with("wx")
            && raw[2..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(AppId(raw.to_owned()))
        } else {
            Err(ErrCode::InvalidAppid)
        }
    }
}

string_newtype!(AppId);

/// The length of an openid kefu makes (WeChat's are 28 characters).
pub const OPENID_LEN: usize = 28;

/// A fan's openid: what identifies one WeChat user to one app. WeChat's are 28
/// characters of `[A-Za-z0-9_-]`; kefu takes any 1-64 of them, so that a test can name
/// a fan as it likes, and makes 28.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Openid(String);

/// The longest openid taken.
pub const MAX_OPENID_CHARS: usize = 64;

impl Openid {
    /// Parses an openid; the error is [`ErrCode::InvalidOpenid`] (40003).
    pub fn parse(raw: &str) -> Result<Openid, ErrCode> {
        Openid::check(raw).map_err(ErrCode::from)
    }

    /// [`Openid::parse`], saying which rule `raw` breaks.
    pub fn check(raw: &str) -> Result<Openid, Refused> {
        if raw.is_empty() {
            return Err(Refused::new(
                ErrCode::InvalidOpenid,
                "the openid is missing or empty",
            ));
        }
        if raw.len() > MAX_OPENID_CHARS || !raw.chars().all(is_suffix_char) {
            return Err(Refused::new(
                ErrCode::InvalidOpenid,
                format!(
                    "an openid is 1 to {MAX_OPENID_CHARS} letters, digits, '_' or '-' \
                     (WeChat's are {OPENID_LEN})"
                ),
            ));
        }
        Ok(Openid(raw.to_owned()))
    }
}

string_newtype!(Openid);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn kf_account_rules() {
        let account = KfAccount::parse("test1@test").unwrap();
        assert_eq!(account.prefix(), "test1");
        assert_eq!(account.suffix(), "test");
        assert!(account.belongs_to("test", "gh_000000000000"));
        assert!(!account.belongs_to("other", "gh_000000000000"));
        for bad in [
            "",
            "@test",
            "test1@",
            "test1",
            "a-b@test",
            "abcdefghijk@test",
            "a@b@c",
            "客服@test",
            "a@b c",
        ] {
            assert_eq!(
                KfAccount::parse(bad),
                Err(ErrCode::InvalidKfAccount),
                "{bad:?}"
            );
        }
        assert!(KfAccount::parse("abcdefghij@gh_0123456789ab").is_ok());
        assert!(KfAccount::parse(&format!("a@{}", "x".repeat(31))).is_err());
    }

    #[test]
    fn nickname_rules() {
        assert!(Nickname::parse("客服1").is_ok());
        assert!(Nickname::parse(&"客".repeat(16)).is_ok());
        assert_eq!(
            Nickname::parse(&"客".repeat(17)),
            Err(ErrCode::IllegalNickname)
        );
        assert_eq!(Nickname::parse(""), Err(ErrCode::IllegalNickname));
        assert_eq!(Nickname::parse("   "), Err(ErrCode::IllegalNickname));
        assert_eq!(Nickname::parse("a\nb"), Err(ErrCode::IllegalNickname));
    }

    #[test]
    fn wechat_id_rules() {
        assert!(WechatId::parse("wx_user-01").is_ok());
        for bad in [
            "abcde",
            "1abcdef",
            "_abcdef",
            &"a".repeat(21),
            "abc def",
            "abcdéf",
        ] {
            assert_eq!(
                WechatId::parse(bad),
                Err(ErrCode::WechatAccountInvalid),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn openid_rules() {
        assert!(Openid::parse("oABCDEFGHIJKLMNOPQRSTUVWXYZ_").is_ok());
        assert!(Openid::parse("fan-1").is_ok());
        for bad in ["", "has space", "fan@1", &"o".repeat(65)] {
            assert_eq!(Openid::parse(bad), Err(ErrCode::InvalidOpenid), "{bad:?}");
        }
    }

    #[test]
    fn app_ids() {
        assert!(AppId::parse("wx0123456789abcdef").is_ok());
        assert!(AppId::parse("wx0123456789ABCDEF").is_err());
        assert!(OriginalId::parse("gh_0123456789ab").is_ok());
        assert!(OriginalId::parse("gh_0123").is_err());
        assert!(AppAlias::parse("test").is_ok());
        assert!(AppAlias::parse("te st").is_err());
    }

    proptest! {
        #[test]
        fn kf_account_parse_never_panics_and_round_trips(s in ".{0,40}") {
            if let Ok(account) = KfAccount::parse(&s) {
                prop_assert_eq!(account.as_str(), s.as_str());
                prop_assert_eq!(format!("{}@{}", account.prefix(), account.suffix()), s);
            }
        }

        #[test]
        fn nickname_length_is_counted_in_chars(s in "\\PC{1,16}") {
            if !s.chars().all(char::is_whitespace) {
                prop_assert!(Nickname::parse(&s).is_ok());
            }
        }
    }
}
