//! JSON Schemas of the contract's own value types, for the catalog ([`crate::catalog`])
//! and the OpenAPI document: each says in schema terms what its `parse` accepts (a
//! test holds the two together).

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use crate::{
    AppAlias, AppId, AppSecret, ErrCode, KfAccount, Nickname, Openid, OriginalId, Secret, WechatId,
};

/// A kf_account's pattern: a prefix of 1-10 `[A-Za-z0-9_]`, `@`, a suffix of 1-30
/// `[A-Za-z0-9_-]`.
pub const KF_ACCOUNT_PATTERN: &str = "^[A-Za-z0-9_]{1,10}@[A-Za-z0-9_-]{1,30}$";
/// A personal WeChat ID's pattern: a letter, then 5-19 letters, digits, `_` or `-`.
pub const WECHAT_ID_PATTERN: &str = "^[A-Za-z][A-Za-z0-9_-]{5,19}$";
/// An appid's pattern.
pub const APPID_PATTERN: &str = "^wx[0-9a-f]{16}$";
/// An app's WeChat ID (alias) pattern.
pub const ALIAS_PATTERN: &str = "^[A-Za-z0-9_-]{1,30}$";
/// An original id's pattern.
pub const ORIGINAL_ID_PATTERN: &str = "^gh_[0-9a-f]{12}$";
/// An openid's pattern.
pub const OPENID_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";
/// A chosen AppSecret's pattern.
pub const APP_SECRET_PATTERN: &str = "^[A-Za-z0-9]{16,64}$";

macro_rules! string_schema {
    ($type:ty, $name:literal, $schema:tt) => {
        impl JsonSchema for $type {
            fn schema_name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!($schema)
            }
        }
    };
}

string_schema!(KfAccount, "KfAccount", {
    "type": "string",
    "pattern": KF_ACCOUNT_PATTERN,
    "description": "A customer service account, prefix@suffix; the suffix is the app's \
        WeChat ID or original id.",
    "examples": ["test1@test"]
});
string_schema!(Nickname, "Nickname", {
    "type": "string",
    "minLength": 1,
    "maxLength": crate::MAX_NICKNAME_CHARS,
    "description": "1-16 characters, not only spaces, no control characters.",
    "examples": ["客服1"]
});
string_schema!(WechatId, "WechatId", {
    "type": "string",
    "pattern": WECHAT_ID_PATTERN,
    "description": "A personal WeChat ID: 6-20 characters, a letter first.",
    "examples": ["worker_one"]
});
string_schema!(AppId, "AppId", {
    "type": "string",
    "pattern": APPID_PATTERN,
    "examples": ["wx0123456789abcdef"]
});
string_schema!(AppAlias, "AppAlias", {
    "type": "string",
    "pattern": ALIAS_PATTERN,
    "description": "An official account's WeChat ID (alias): the suffix of its kf accounts.",
    "examples": ["test"]
});
string_schema!(OriginalId, "OriginalId", {
    "type": "string",
    "pattern": ORIGINAL_ID_PATTERN,
    "examples": ["gh_0123456789ab"]
});
string_schema!(Openid, "Openid", {
    "type": "string",
    "pattern": OPENID_PATTERN,
    "description": "A fan's openid (WeChat's are 28 characters).",
    "examples": ["oKefu0000000000000000000fan1"]
});
string_schema!(Secret, "Secret", {
    "type": "string",
    "description": "A secret, token, ticket or refresh token."
});
string_schema!(AppSecret, "AppSecret", {
    "type": "string",
    "pattern": APP_SECRET_PATTERN
});
impl JsonSchema for ErrCode {
    fn schema_name() -> Cow<'static, str> {
        Cow::Borrowed("ErrCode")
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "integer",
            "description": "WeChat's errcode: 0 is success."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal matcher for the patterns above (anchored, character classes with
    /// `{m,n}` counts): enough to hold each pattern to its type's `parse`.
    fn matches(pattern: &str, value: &str) -> bool {
        let pattern = pattern.trim_start_matches('^').trim_end_matches('$');
        let mut chars: Vec<char> = value.chars().collect();
        chars.reverse();
        let mut rest = pattern;
        while !rest.is_empty() {
            let (class, after): (Box<dyn Fn(char) -> bool>, &str) =
                if let Some(inner) = rest.strip_prefix('[') {
                    let end = inner.find(']').unwrap();
                    let set = inner[..end].to_owned();
                    (Box::new(move |c| in_class(&set, c)), &inner[end + 1..])
                } else {
                    let literal = rest.chars().next().unwrap();
                    (Box::new(move |c| c == literal), &rest[literal.len_utf8()..])
                };
            let (min, max, after) = if let Some(counts) = after.strip_prefix('{') {
                let end = counts.find('}').unwrap();
                let range = &counts[..end];
                let (lo, hi) = range.split_once(',').unwrap_or((range, range));
                (lo.parse().unwrap(), hi.parse().unwrap(), &counts[end + 1..])
            } else {
                (1, 1, after)
            };
            let mut taken = 0;
            while taken < max && chars.last().is_some_and(|c| class(*c)) {
                chars.pop();
                taken += 1;
            }
            if taken < min {
                return false;
            }
            rest = after;
        }
        chars.is_empty()
    }

    fn in_class(set: &str, c: char) -> bool {
        let set: Vec<char> = set.chars().collect();
        let mut i = 0;
        while i < set.len() {
            if i + 2 < set.len() && set[i + 1] == '-' {
                if (set[i]..=set[i + 2]).contains(&c) {
                    return true;
                }
                i += 3;
            } else {
                if set[i] == c {
                    return true;
                }
                i += 1;
            }
        }
        false
    }

    #[test]
    fn each_pattern_accepts_what_its_type_parses() {
        let samples = [
            "test1@test",
            "a@b",
            "abcdefghijk@test",
            "a-b@test",
            "a@b c",
            "wx0123456789abcdef",
            "wx0123456789ABCDEF",
            "worker_one",
            "1worker",
            "abcde",
            "gh_0123456789ab",
            "gh_0",
            "test",
            "te st",
            "0123456789abcdef",
            "short",
            "",
            "客服@test",
        ];
        for sample in samples {
            assert_eq!(
                matches(KF_ACCOUNT_PATTERN, sample),
                KfAccount::parse(sample).is_ok(),
                "kf_account {sample:?}"
            );
            assert_eq!(
                matches(WECHAT_ID_PATTERN, sample),
                WechatId::parse(sample).is_ok(),
                "wechat id {sample:?}"
            );
            assert_eq!(
                matches(APPID_PATTERN, sample),
                AppId::parse(sample).is_ok(),
                "appid {sample:?}"
            );
            assert_eq!(
                matches(ALIAS_PATTERN, sample),
                AppAlias::parse(sample).is_ok(),
                "alias {sample:?}"
            );
            assert_eq!(
                matches(ORIGINAL_ID_PATTERN, sample),
                OriginalId::parse(sample).is_ok(),
                "original id {sample:?}"
            );
            assert_eq!(
                matches(OPENID_PATTERN, sample),
                Openid::parse(sample).is_ok(),
                "openid {sample:?}"
            );
            assert_eq!(
                matches(APP_SECRET_PATTERN, sample),
                AppSecret::parse(sample).is_ok(),
                "secret {sample:?}"
            );
        }
    }
}
