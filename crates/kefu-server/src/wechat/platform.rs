//! Platform rules around every call: bans, quotas and IP whitelists
//! (docs/behaviour.md, "Platform rules").

use std::net::IpAddr;

use kefu_api::Endpoint;
use kefu_api::ErrCode;
use kefu_api::admin::{AccountType, QuotaLimit};
use kefu_api::endpoints::{
    kf_add, kf_del, kf_invite, kf_list, kf_online, kf_session, kf_update, kf_uploadheadimg,
    message, msgrecord, stable_token, token,
};
use kefu_store::{App, CounterKey, Window};

use super::reply::WxError;
use crate::state::AppState;

/// Calls per day of a kf account API when WeChat publishes no figure (a decision).
pub(super) const KF_DAILY_DEFAULT: u64 = 100_000;
/// Customer service messages (and typing) per day: WeChat's published figure.
pub(super) const MESSAGE_DAILY_DEFAULT: u64 = 500_000;

/// The APIs counted by the day alone, with their default limits (`/cgi-bin/token` and
/// `stable_token` have rules of their own).
const DAILY: &[(&str, u64)] = &[
    (kf_add::AddKfAccount::PATH, KF_DAILY_DEFAULT),
    (kf_update::UpdateKfAccount::PATH, KF_DAILY_DEFAULT),
    (kf_del::DelKfAccount::PATH, KF_DAILY_DEFAULT),
    (kf_uploadheadimg::UploadHeadImg::PATH, KF_DAILY_DEFAULT),
    (kf_list::GetKfList::PATH, KF_DAILY_DEFAULT),
    (kf_online::GetOnlineKfList::PATH, KF_DAILY_DEFAULT),
    (kf_invite::InviteWorker::PATH, KF_DAILY_DEFAULT),
    (kf_session::CreateSession::PATH, KF_DAILY_DEFAULT),
    (kf_session::CloseSession::PATH, KF_DAILY_DEFAULT),
    (kf_session::GetSession::PATH, KF_DAILY_DEFAULT),
    (kf_session::GetSessionList::PATH, KF_DAILY_DEFAULT),
    (kf_session::GetWaitCase::PATH, KF_DAILY_DEFAULT),
    (msgrecord::GetMsgList::PATH, KF_DAILY_DEFAULT),
    (msgrecord::GetRecord::PATH, KF_DAILY_DEFAULT),
    (message::SendMessage::PATH, MESSAGE_DAILY_DEFAULT),
    (message::SendTyping::PATH, MESSAGE_DAILY_DEFAULT),
];

/// The APIs whose calls are counted, with their default limits.
pub(super) fn default_limit(path: &str, app: &App) -> Option<QuotaLimit> {
    let limit = |daily, per_minute| {
        Some(QuotaLimit {
            daily: Some(daily),
            per_minute,
        })
    };
    match path {
        p if p == token::GetToken::PATH => limit(
            if app.account_type == AccountType::Sandbox {
                200
            } else {
                2000
            },
            None,
        ),
        p if p == stable_token::GetStableToken::PATH => limit(500_000, Some(10_000)),
        p => DAILY
            .iter()
            .find(|(path, _)| *path == p)
            .and_then(|(_, daily)| limit(*daily, None)),
    }
}

/// The limits in force for an app: its overrides, field by field, over the defaults.
/// `None` for an API that is not counted.
pub(super) fn limits(app: &App, path: &str) -> Option<QuotaLimit> {
    let default = default_limit(path, app)?;
    let custom = app.settings.quotas.get(path).copied().unwrap_or_default();
    Some(QuotaLimit {
        daily: custom.daily.or(default.daily),
        per_minute: custom.per_minute.or(default.per_minute),
    })
}

/// Every counted API, for clearing all quotas at once.
pub(crate) fn counted_paths(app: &App) -> Vec<String> {
    [token::GetToken::PATH, stable_token::GetStableToken::PATH]
        .into_iter()
        .chain(DAILY.iter().map(|(path, _)| *path))
        .filter(|path| default_limit(path, app).is_some())
        .map(str::to_owned)
        .collect()
}

/// The daily counter of an API.
pub(crate) fn daily_key(appid: &str, path: &str, now: i64) -> CounterKey {
    CounterKey {
        owner: appid.to_owned(),
        name: path.to_owned(),
        window: Window::day_of(now),
    }
}

/// Checks the ban (48004), then counts the call against the daily (45009) and
/// per-minute (45011) quotas. A refused call is not counted.
pub(super) async fn charge(
    state: &AppState,
    app: &App,
    path: &str,
    now: i64,
) -> Result<(), WxError> {
    if app.settings.banned_apis.iter().any(|banned| banned == path) {
        return Err(WxError::because(
            ErrCode::ApiForbidden,
            format!("{path} is banned for this app (its banned_apis setting)"),
        ));
    }
    let Some(limit) = limits(app, path) else {
        return Ok(());
    };
    let mut counters = Vec::with_capacity(2);
    let mut codes = Vec::with_capacity(2);
    if let Some(daily) = limit.daily {
        counters.push((daily_key(&app.appid, path, now), daily));
        codes.push((
            ErrCode::DailyQuotaReached,
            "a day",
            "next midnight, Shanghai time",
        ));
    }
    if let Some(per_minute) = limit.per_minute {
        let key = CounterKey {
            owner: app.appid.clone(),
            name: path.to_owned(),
            window: Window::minute_of(now),
        };
        counters.push((key, per_minute));
        codes.push((ErrCode::MinuteQuotaReached, "a minute", "next minute"));
    }
    match state.store.consume(&counters).await? {
        Ok(()) => Ok(()),
        Err(index) => {
            let (code, per, until) = codes[index];
            let limit = counters[index].1;
            Err(WxError::because(
                code,
                format!("the quota of {limit} calls {per} to {path} is spent (until the {until})"),
            ))
        }
    }
}

/// Whether `ip` may use an endpoint that takes the AppSecret: an empty whitelist
/// allows everyone; entries are IPs (an IPv4 also matches its `::ffff:` form).
pub(super) fn check_ip(whitelist: &[String], ip: IpAddr, code: ErrCode) -> Result<(), WxError> {
    if whitelist.is_empty() {
        return Ok(());
    }
    let canonical = ip.to_canonical();
    let listed = whitelist
        .iter()
        .filter_map(|entry| entry.trim().parse::<IpAddr>().ok())
        .any(|entry| entry.to_canonical() == canonical);
    match (listed, code) {
        (true, _) => Ok(()),
        (false, ErrCode::IpNotInWhitelist) => Err(WxError::ip_not_in_whitelist(canonical)),
        (false, code) => Err(code.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitelists() {
        let list = vec!["10.0.0.1".to_owned(), "::1".to_owned()];
        assert!(check_ip(&[], "1.2.3.4".parse().unwrap(), ErrCode::IpNotInWhitelist).is_ok());
        assert!(
            check_ip(
                &list,
                "10.0.0.1".parse().unwrap(),
                ErrCode::IpNotInWhitelist
            )
            .is_ok()
        );
        assert!(
            check_ip(
                &list,
                "::ffff:10.0.0.1".parse().unwrap(),
                ErrCode::IpNotInWhitelist
            )
            .is_ok()
        );
        let denied =
            check_ip(&list, "1.2.3.4".parse().unwrap(), ErrCode::IpNotInWhitelist).unwrap_err();
        assert_eq!(
            denied.message.as_deref(),
            Some("invalid ip 1.2.3.4 ipv6 ::ffff:1.2.3.4, not in whitelist")
        );
        let denied = check_ip(
            &list,
            "1.2.3.4".parse().unwrap(),
            ErrCode::ClientIpNotRegistered,
        )
        .unwrap_err();
        assert_eq!(denied.code, ErrCode::ClientIpNotRegistered);
    }
}
