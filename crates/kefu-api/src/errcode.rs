//! The one table of WeChat error codes: number, exact `errmsg`, and what it means.
//!
//! The server answers with these; the SDK decodes them, falling back to
//! [`ErrCode::Unknown`] for numbers the table does not know.

use std::fmt;

macro_rules! errcodes {
    ($( $(#[doc = $doc:literal])* $variant:ident = $code:literal => $msg:literal, )*) => {
        /// A WeChat `errcode`, with its exact `errmsg`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrCode {
            $( $(#[doc = $doc])* $variant, )*
            /// A code this table does not know (kept as received).
            Unknown(i64),
        }

        impl ErrCode {
            /// Every known code, in table order.
            pub const ALL: &'static [ErrCode] = &[$(ErrCode::$variant,)*];

            /// The numeric `errcode`.
            #[must_use]
            pub const fn code(self) -> i64 {
                match self {
                    $( ErrCode::$variant => $code, )*
                    ErrCode::Unknown(code) => code,
                }
            }

            /// WeChat's `errmsg` for this code, exactly as WeChat writes it, without
            /// the ` rid: …` suffix. For [`ErrCode::IpNotInWhitelist`] this is the
            /// template with `{ip}` placeholders. Unknown codes give `""`.
            #[must_use]
            pub const fn errmsg(self) -> &'static str {
                match self {
                    $( ErrCode::$variant => $msg, )*
                    ErrCode::Unknown(_) => "",
                }
            }

            /// What the code means, in a sentence (the table's own words): what a
            /// caller did, or what went wrong. Unknown codes give `""`.
            #[must_use]
            pub fn meaning(self) -> &'static str {
                match self {
                    $( ErrCode::$variant => concat!($($doc),*).trim_ascii(), )*
                    ErrCode::Unknown(_) => "",
                }
            }

            /// The code for a number; numbers the table does not know become
            /// [`ErrCode::Unknown`].
            #[must_use]
            pub const fn from_code(code: i64) -> ErrCode {
                match code {
                    $( $code => ErrCode::$variant, )*
                    other => ErrCode::Unknown(other),
                }
            }
        }
    };
}

errcodes! {
    /// A transient failure on the platform side; the change may still have been applied.
    SystemError = -1 => "system error",
    /// Success.
    Ok = 0 => "ok",
    /// The access_token is unknown, malformed, or was superseded and its grace period ended.
    InvalidCredential = 40001 => "invalid credential, access_token is invalid or not latest",
    /// `grant_type` is missing or not `client_credential`.
    InvalidGrantType = 40002 => "invalid grant_type",
    /// The uploaded file is not of an accepted type (the head image must be a JPEG).
    InvalidFileType = 40005 => "invalid file type",
    /// The uploaded image is too large.
    InvalidImageSize = 40009 => "invalid image size",
    /// The openid is malformed, or names no follower of this app.
    InvalidOpenid = 40003 => "invalid openid",
    /// The appid is unknown.
    InvalidAppid = 40013 => "invalid appid",
    /// The access_token is not valid (an alternative answer to 40001 seen on some paths).
    InvalidAccessToken = 40014 => "invalid access_token",
    /// No such API path.
    InvalidUrl = 40066 => "invalid url",
    /// The AppSecret does not match the appid.
    InvalidAppsecret = 40125 => "invalid appsecret",
    /// The caller's IP is not in the app's whitelist (template; `{ip}` is the caller).
    IpNotInWhitelist = 40164 => "invalid ip {ip} ipv6 ::ffff:{ip}, not in whitelist",
    /// The `access_token` query parameter is missing.
    AccessTokenMissing = 41001 => "access_token missing",
    /// The `appid` parameter is missing.
    AppidMissing = 41002 => "appid missing",
    /// The `secret` parameter is missing.
    AppsecretMissing = 41004 => "appsecret missing",
    /// A multipart upload carries no `media` part.
    MediaDataMissing = 41005 => "media data missing",
    /// `component_appid` is missing.
    ComponentAppidMissing = 41018 => "missing component_appid",
    /// The access_token is past its expiry time.
    AccessTokenExpired = 42001 => "access_token expired",
    /// This path only answers GET.
    RequireGet = 43001 => "require GET method",
    /// This path only answers POST.
    RequirePost = 43002 => "require POST method",
    /// The request body is empty (or the JSON literal `null`).
    EmptyPostData = 44002 => "empty post data",
    /// A text message's content is empty (the exact English wording is not confirmed).
    EmptyContent = 44004 => "empty content",
    /// The request body is larger than the limit.
    ContentSizeOutOfLimit = 45002 => "content size out of limit",
    /// A news message carries more articles than allowed (one; the wording is not
    /// confirmed).
    ArticleSizeOutOfLimit = 45008 => "article size out of limit",
    /// The daily quota of this API is spent.
    DailyQuotaReached = 45009 => "reach max api daily quota limit",
    /// The per-minute quota of this API is spent.
    MinuteQuotaReached = 45011 => "api minute-quota reach limit  mustslower  retry next minute",
    /// No delivery window is open with the fan (it closed, never opened, or the fan
    /// unfollowed): a customer service message cannot be sent.
    ResponseOutOfTimeLimit = 45015 => "response out of time limit or subscription is canceled",
    /// The delivery window's messages are all sent.
    ResponseCountLimit = 45047 => "out of response count limit",
    /// The typing command is neither `Typing` nor `CancelTyping`.
    InvalidCommand = 45072 => "invalid command",
    /// Typing needs a message exchanged with the fan in the last 30 seconds (the
    /// wording is not confirmed).
    TypingNeedsInteraction = 45080 => "need sending message to user, or recving message from \
        user in the last 30 seconds before typing",
    /// `Typing` was sent again while the last one still shows (15 seconds; the wording
    /// is not confirmed).
    AlreadyTyping = 45081 => "you are already typing",
    /// The body is not JSON, not a JSON object, or a field has the wrong JSON type.
    DataFormatError = 47001 => "data format error",
    /// The app may not call this API.
    ApiUnauthorized = 48001 => "api unauthorized",
    /// This API is banned for the app.
    ApiForbidden = 48004 => "api forbidden for irregularities, view detail on mp.weixin.qq.com",
    /// The monthly limit of quota clears is spent.
    ClearQuotaLimit = 48006 => "forbid to clear quota because of reaching the limit",
    /// The caller's IP is not registered for the third-party platform.
    ClientIpNotRegistered = 61004 => "access clientip is not registered",
    /// The component_verify_ticket has expired.
    ComponentTicketExpired = 61005 => "component ticket is expired",
    /// The component_verify_ticket is invalid.
    ComponentTicketInvalid = 61006 => "component ticket is invalid",
    /// The third-party platform lacks the permission set for this API.
    ApiUnauthorizedToComponent = 61007 => "api is unauthorized to component",
    /// The third-party platform is unknown.
    InvalidComponent = 61011 => "invalid component",
    /// The authorizer_refresh_token is invalid.
    RefreshTokenInvalid = 61023 => "refresh_token is invalid",
    /// A third-party platform's appid was used on `/cgi-bin/token`.
    ComponentMustUseComponentToken = 61024 => "must use api(api_component_token) to get token \
        for component acct",
    /// The new customer service feature is not enabled for this app.
    NewKfNotEnabled = 65400 => "please enable new custom service, or wait for a while if you \
        have enabled",
    /// The kf_account is missing, malformed, foreign, or does not exist.
    InvalidKfAccount = 65401 => "invalid custom service account",
    /// The kf account is not bound to a WeChat user, so it cannot serve (the wording
    /// is not confirmed).
    KfNotBound = 65402 => "the custom service account has not been bound",
    /// The nickname is missing or illegal.
    IllegalNickname = 65403 => "illegal nickname",
    /// The kf_account given to `add` is malformed or not of this app.
    IllegalKfAccount = 65404 => "illegal custom service account",
    /// The app already has the maximum number of kf accounts.
    KfAccountLimit = 65405 => "custom service account number reach limit",
    /// The kf_account already exists.
    KfAccountExists = 65406 => "custom service account exists",
    /// The invited WeChat user is already a worker of this app.
    AlreadyWorker = 65407 => "the wechat user have been one of your workers",
    /// This WeChat user already has a pending invitation from this app.
    AlreadyInvited = 65408 => "you have already invited the wechat user",
    /// `invite_wx` is not a valid WeChat ID.
    WechatAccountInvalid = 65409 => "wechat account invalid",
    /// The invited WeChat user is bound to too many kf accounts.
    TooManyBoundAccounts = 65410 => "too many custom service accounts bound by the worker",
    /// The kf account already has an effective (pending) invitation.
    InvitationExists = 65411 => "a effective invitation to bind the custom service account exists",
    /// The kf account is already bound to a WeChat user.
    AccountAlreadyBound = 65412 => "the custom service account have been bound by a wechat user",
    /// The fan has no session to close (the wording is not confirmed).
    NoSession = 65413 => "no session exists for the customer",
    /// Another kf account serves the fan (the wording is not confirmed).
    ServedByOther = 65414 => "the customer is being served by other custom service account",
    /// The kf account is not online, so it cannot take a session (the wording is not
    /// confirmed).
    KfNotOnline = 65415 => "the custom service account is not online",
    /// A history query's parameters are wrong: the end before the start, or a number
    /// of records outside 1-10000.
    ParamInvalid = 65416 => "param invalid, please check",
    /// A history query spans more than 24 hours.
    RangeTooLong = 65417 => "it is too long from the starttime to endtime",
    /// No request with this rid is on record.
    RidNotFound = 76001 => "rid not found",
    /// The rid is malformed.
    RidError = 76002 => "rid is error",
    /// The rid belongs to another app.
    RidNoPermission = 76003 => "could not query this rid,no permission",
    /// `cgi_path` is unknown.
    CgiPathNotFound = 76021 => "cgi_path not found, please check",
}

/// A refusal: the errcode WeChat answers, and the reason in words (which rule the
/// input broke, and how), for a person reading the request log or a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The code answered.
    pub code: ErrCode,
    /// Why.
    pub reason: String,
}

impl Refused {
    /// `code`, because `reason`.
    #[must_use]
    pub fn new(code: ErrCode, reason: impl Into<String>) -> Refused {
        Refused {
            code,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason, self.code.code())
    }
}

impl std::error::Error for Refused {}

impl From<Refused> for ErrCode {
    fn from(refused: Refused) -> ErrCode {
        refused.code
    }
}

impl ErrCode {
    /// Whether this is success (`0`).
    #[must_use]
    pub const fn is_ok(self) -> bool {
        self.code() == 0
    }

    /// Whether clients treat this code as "fetch a new token and retry"
    /// (40001, 40014, 42001).
    #[must_use]
    pub const fn is_token_error(self) -> bool {
        matches!(
            self,
            ErrCode::InvalidCredential | ErrCode::InvalidAccessToken | ErrCode::AccessTokenExpired
        )
    }
}

impl fmt::Display for ErrCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrCode::Unknown(code) => write!(f, "{code}"),
            known => write!(f, "{} {}", known.code(), known.errmsg()),
        }
    }
}

impl serde::Serialize for ErrCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(self.code())
    }
}

impl<'de> serde::Deserialize<'de> for ErrCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        i64::deserialize(deserializer).map(ErrCode::from_code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrCode::ALL {
            assert!(seen.insert(code.code()), "duplicate code {}", code.code());
            assert_eq!(ErrCode::from_code(code.code()), *code);
            assert!(!code.errmsg().is_empty());
        }
        assert_eq!(ErrCode::from_code(12345), ErrCode::Unknown(12345));
    }

    #[test]
    fn messages_are_wechats() {
        assert_eq!(
            ErrCode::InvalidKfAccount.errmsg(),
            "invalid custom service account"
        );
        assert_eq!(
            ErrCode::MinuteQuotaReached.errmsg(),
            "api minute-quota reach limit  mustslower  retry next minute"
        );
        assert_eq!(ErrCode::from_code(65403), ErrCode::IllegalNickname);
    }

    #[test]
    fn every_code_says_what_it_means() {
        for code in ErrCode::ALL {
            let meaning = code.meaning();
            assert!(!meaning.is_empty(), "{code:?}");
            assert_eq!(meaning, meaning.trim(), "{code:?}");
        }
        assert_eq!(
            ErrCode::AccessTokenExpired.meaning(),
            "The access_token is past its expiry time."
        );
        assert_eq!(ErrCode::Unknown(1).meaning(), "");
    }
}
