//! The wire envelope shared by every WeChat endpoint (docs/behaviour.md, "Every path").

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{ErrCode, Rid};

/// The `Content-Type` of every WeChat answer (sic: `encoding=`, not `charset=`).
pub const CONTENT_TYPE: &str = "application/json; encoding=utf-8";

/// The body of a successful mutation.
pub const OK_BODY: &str = r#"{"errcode":0,"errmsg":"ok"}"#;

/// `{"errcode":N,"errmsg":"..."}`: the answer of a mutation, or of any failed call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Status {
    /// The code; `0` is success.
    pub errcode: ErrCode,
    /// WeChat's message, ending in ` rid: …` when `errcode` is not 0.
    #[serde(default)]
    pub errmsg: String,
}

impl Status {
    /// The rid at the end of `errmsg`, if any.
    #[must_use]
    pub fn rid(&self) -> Option<Rid> {
        Rid::from_errmsg(&self.errmsg)
    }
}

/// The JSON body of a failed call: `errmsg` is `message` followed by ` rid: <rid>`.
///
/// `message` is normally [`ErrCode::errmsg`]; it differs only where WeChat
/// fills in details (40164 names the caller's IP).
#[must_use]
pub fn error_body(code: ErrCode, message: &str, rid: Rid) -> String {
    let mut errmsg = String::with_capacity(message.len() + 32);
    errmsg.push_str(message);
    errmsg.push_str(" rid: ");
    errmsg.push_str(&rid.to_string());
    let status = Status {
        errcode: code,
        errmsg,
    };
    serde_json::to_string(&status)
        .unwrap_or_else(|_| format!(r#"{{"errcode":-1,"errmsg":"system error rid: {rid}"}}"#))
}

/// Whether a JSON body is an error envelope rather than a payload: the list
/// endpoints answer their payload without `errcode`, so a body carrying a non-zero
/// `errcode` is an error.
#[must_use]
pub fn error_in(body: &[u8]) -> Option<Status> {
    #[derive(Deserialize)]
    struct Probe {
        errcode: Option<ErrCode>,
        #[serde(default)]
        errmsg: String,
    }
    let probe: Probe = serde_json::from_slice(body).ok()?;
    match probe.errcode {
        Some(errcode) if !errcode.is_ok() => Some(Status {
            errcode,
            errmsg: probe.errmsg,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_is_wechats_shape() {
        let rid = Rid::new(0x6565_f3a2, 1, 2);
        let body = error_body(
            ErrCode::IllegalNickname,
            ErrCode::IllegalNickname.errmsg(),
            rid,
        );
        assert_eq!(
            body,
            r#"{"errcode":65403,"errmsg":"illegal nickname rid: 6565f3a2-00000001-00000002"}"#
        );
        let status = error_in(body.as_bytes()).unwrap();
        assert_eq!(status.errcode, ErrCode::IllegalNickname);
        assert_eq!(status.rid(), Some(rid));
        assert!(error_in(OK_BODY.as_bytes()).is_none());
        assert!(error_in(br#"{"kf_list":[]}"#).is_none());
    }
}
