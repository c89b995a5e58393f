//! The customer service account endpoints (docs/behaviour.md). Each checks, in order: the
//! token and the platform rules ([`admit`]), the body's shape, the account, then the rest.

use std::sync::Arc;

use axum::http::{Method, header};
use kefu_api::endpoints::component::{KF_FUNCSCOPES, KF_PROFILE_FUNCSCOPES};
use kefu_api::endpoints::kf_list::{GetKfList, KfInfo, KfList};
use kefu_api::endpoints::kf_online::{GetOnlineKfList, KfOnline, KfOnlineList};
use kefu_api::endpoints::kf_uploadheadimg::{MAX_IMAGE_BYTES, MEDIA_FIELD, UploadHeadImg, is_jpeg};
use kefu_api::endpoints::{
    KfProfileBody, check_json_body, kf_add, kf_del, kf_invite, kf_update, parse_json_body,
};
use kefu_api::{ErrCode, KfAccount, admin};
use kefu_store::{App, Kf, NewInvitation, NewKf};

use super::Https;
use super::auth::{Rules, Scope, admit};
use super::call::Call;
use super::log::shown_body;
use super::reply::{Reply, WxError};
use crate::secrets::new_openid;
use crate::state::AppState;

const KF: Scope = Scope::Kf { upload: false };
const ADD: Rules = Rules::of::<kf_add::AddKfAccount>(KF_FUNCSCOPES, KF);
const UPDATE: Rules = Rules::of::<kf_update::UpdateKfAccount>(KF_PROFILE_FUNCSCOPES, KF);
const DEL: Rules = Rules::of::<kf_del::DelKfAccount>(KF_FUNCSCOPES, KF);
const UPLOAD: Rules = Rules::of::<UploadHeadImg>(KF_PROFILE_FUNCSCOPES, Scope::Kf { upload: true });
const LIST: Rules = Rules::of::<GetKfList>(KF_FUNCSCOPES, KF);
const ONLINE: Rules = Rules::of::<GetOnlineKfList>(KF_FUNCSCOPES, KF);
const INVITE: Rules = Rules::of::<kf_invite::InviteWorker>(KF_FUNCSCOPES, KF);

pub(super) fn owned_by(app: &App) -> impl Fn(&KfAccount) -> bool + '_ {
    |account| account.belongs_to(&app.wechat_id, &app.original_id)
}

/// The common start of the JSON endpoints: the token, the app's scope, then the
/// body's shape.
async fn kf_json<T: serde::de::DeserializeOwned>(
    state: &AppState,
    call: &Call,
    rules: Rules,
) -> Result<(Arc<App>, T), WxError> {
    let app = admit(state, call, rules).await?;
    Ok((app, check_json_body::<T>(call.body()?)?))
}

/// `POST /customservice/kfaccount/add`.
#[tracing::instrument(level = "debug", name = "kf_add", skip_all)]
pub(crate) async fn kf_add(state: &AppState, call: &Call) -> Result<Reply, WxError> {
    let (app, body) = kf_json::<KfProfileBody>(state, call, ADD).await?;
    let profile = body.check(kf_add::BAD_ACCOUNT, owned_by(&app))?;
    let kf = NewKf {
        kf_account: profile.kf_account,
        nickname: profile.nickname,
        kf_openid: new_openid(),
        created_at: call.now,
    };
    state.store.add_kf(&app.appid, kf).await?;
    Ok(Reply::Ok)
}

/// `POST /customservice/kfaccount/update`.
#[tracing::instrument(level = "debug", name = "kf_update", skip_all)]
pub(crate) async fn kf_update(state: &AppState, call: &Call) -> Result<Reply, WxError> {
    let (app, body) = kf_json::<KfProfileBody>(state, call, UPDATE).await?;
    let profile = body.check(kf_update::BAD_ACCOUNT, owned_by(&app))?;
    state
        .store
        .update_kf(&app.appid, &profile.kf_account, &profile.nickname)
        .await?;
    Ok(Reply::Ok)
}

/// `GET|POST /customservice/kfaccount/del`, in all four shapes listed in the README ("Endpoints")
#[tracing::instrument(level = "debug", name = "kf_del", skip_all)]
pub(crate) async fn kf_del(state: &AppState, call: &Call) -> Result<Reply, WxError> {
    let query = call.query();
    let app = admit(state, call, DEL).await?;
    let body_account = if call.method() == Method::POST {
        match parse_json_body::<kf_del::Body>(call.body()?) {
            Ok(parsed) => parsed.kf_account,
            // An empty (or `null`) body is the query-only shape.
            Err(ErrCode::EmptyPostData) => None,
            Err(code) => return Err(code.into()),
        }
    } else {
        None
    };
    let query_account = query.non_empty("kf_account");
    let query_openid = query.non_empty("kf_openid");
    let target = kf_del::Target::select(
        body_account.as_deref(),
        query_account.as_deref(),
        query_openid.as_deref(),
    )?;
    if let kf_del::Target::Account(account) = &target
        && !owned_by(&app)(account)
    {
        return Err(ErrCode::InvalidKfAccount.into());
    }
    state.store.delete_kf(&app.appid, &target).await?;
    Ok(Reply::Ok)
}

/// `POST /customservice/kfaccount/uploadheadimg?kf_account=…` with a `media` part.
#[tracing::instrument(level = "debug", name = "kf_upload_headimg", skip_all)]
pub(crate) async fn kf_upload_headimg(state: &AppState, call: &Call) -> Result<Reply, WxError> {
    let query = call.query();
    let app = admit(state, call, UPLOAD).await?;
    let boundary = call
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| multer::parse_boundary(v).ok());
    let body = call.body()?;
    if body.is_empty() {
        return Err(ErrCode::EmptyPostData.into());
    }
    let boundary = boundary.ok_or(ErrCode::DataFormatError)?;
    let media = media_part(body.clone(), boundary)
        .await?
        .ok_or(ErrCode::MediaDataMissing)?;
    // The account before the image (docs/behaviour.md, `uploadheadimg`): one that is malformed,
    // foreign or missing is 65401 whatever was uploaded.
    let account = KfAccount::check_for(
        query.get("kf_account").as_deref(),
        ErrCode::InvalidKfAccount,
        owned_by(&app),
    )?;
    let kfs = state.store.kfs(&app.appid).await?;
    if !kfs.iter().any(|kf| kf.kf_account == account.as_str()) {
        return Err(ErrCode::InvalidKfAccount.into());
    }
    if !is_jpeg(&media) {
        return Err(ErrCode::InvalidFileType.into());
    }
    if media.len() > MAX_IMAGE_BYTES {
        return Err(ErrCode::InvalidImageSize.into());
    }
    state
        .store
        .set_kf_headimg(&app.appid, &account, media)
        .await?;
    Ok(Reply::Ok)
}

/// The bytes of the first part named `media`; a malformed stream is 47001.
async fn media_part(body: bytes::Bytes, boundary: String) -> Result<Option<bytes::Bytes>, ErrCode> {
    let stream = axum::body::Body::from(body).into_data_stream();
    let mut multipart = multer::Multipart::new(stream, boundary);
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|_| ErrCode::DataFormatError)?
    {
        if field.name() == Some(MEDIA_FIELD) {
            return field
                .bytes()
                .await
                .map(Some)
                .map_err(|_| ErrCode::DataFormatError);
        }
    }
    Ok(None)
}

/// The base of the URLs handed out: the configured public URL, else the scheme and
/// `Host` the request came in on.
pub(crate) fn base_url(state: &AppState, request: &axum::http::request::Parts) -> String {
    if let Some(public) = &state.public_url {
        return public.trim_end_matches('/').to_owned();
    }
    let scheme = if request.extensions.get::<Https>().is_some() {
        "https"
    } else {
        "http"
    };
    let host = request
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri.authority().map(|a| a.as_str()))
        .unwrap_or("localhost");
    // Made for every list request: by hand rather than through `format!`.
    let mut base = String::with_capacity(scheme.len() + 3 + host.len());
    base.push_str(scheme);
    base.push_str("://");
    base.push_str(host);
    base
}

/// The path at which an account's head image is served.
fn headimg_path(appid: &str, kf: &Kf) -> Option<String> {
    kf.headimg_version.map(|version| {
        admin::path(
            admin::HEADIMG,
            &[appid, &kf.kf_id.to_string(), &format!("{version}.jpg")],
        )
    })
}

/// An account as `getkflist` shows it, with head image URLs under `base`.
pub(crate) fn kf_info(kf: &Kf, appid: &str, base: &str, now: i64) -> KfInfo {
    let invitation = kf.invitation.as_ref();
    KfInfo {
        kf_account: kf.kf_account.clone(),
        kf_nick: kf.nickname.clone(),
        kf_id: kf.kf_id,
        kf_headimgurl: headimg_path(appid, kf)
            .map(|path| format!("{base}{path}"))
            .unwrap_or_default(),
        kf_wx: kf.kf_wx.clone(),
        invite_wx: invitation.map(|i| i.invite_wx.clone()),
        invite_expire_time: invitation.map(|i| i.expire_time),
        invite_status: invitation.map(|i| i.status_at(now)),
    }
}

/// `GET /cgi-bin/customservice/getkflist` (and `/customservice/getkflist`).
#[tracing::instrument(level = "debug", name = "kf_list", skip_all)]
pub(crate) async fn kf_list(state: &AppState, call: &Call) -> Result<Reply, WxError> {
    let now = call.now;
    let app = admit(state, call, LIST).await?;
    let (kfs, version) = state.store.kfs_versioned(&app.appid).await?;
    let base = base_url(state, call.head());
    if let Some((body, logged)) = version.and_then(|v| state.lists.get(&app.appid, v, &base, now)) {
        return Ok(Reply::Json { body, logged });
    }
    let list = KfList {
        kf_list: kfs
            .iter()
            .map(|kf| kf_info(kf, &app.appid, &base, now))
            .collect(),
    };
    let reply = Reply::json(&list)?;
    let Reply::Json { body, .. } = &reply else {
        return Ok(reply);
    };
    let Some(version) = version else {
        return Ok(reply);
    };
    // Until the first waiting invitation lapses: its status shows then.
    let valid_until = kfs
        .iter()
        .filter_map(|kf| kf.invitation.as_ref())
        .filter(|i| i.is_effective(now))
        .map(|i| i.expire_time)
        .min()
        .unwrap_or(i64::MAX);
    // Answered again and again: its text for the request log is made once.
    let logged = shown_body(body);
    state.lists.put(
        &app.appid,
        version,
        &base,
        valid_until,
        body.clone(),
        logged.clone(),
    );
    Ok(Reply::Json {
        body: body.clone(),
        logged,
    })
}

/// `GET /cgi-bin/customservice/getonlinekflist` (and `/customservice/getonlinekflist`).
#[tracing::instrument(level = "debug", name = "kf_online_list", skip_all)]
pub(crate) async fn kf_online_list(state: &AppState, call: &Call) -> Result<Reply, WxError> {
    let app = admit(state, call, ONLINE).await?;
    let kfs = state.store.kfs(&app.appid).await?;
    let list = KfOnlineList {
        kf_online_list: kfs
            .iter()
            .filter(|kf| kf.online_status != 0)
            .map(|kf| KfOnline {
                kf_account: kf.kf_account.clone(),
                status: kf.online_status,
                kf_id: kf.kf_id,
                accepted_case: kf.accepted_case,
            })
            .collect(),
    };
    Reply::json(&list)
}

/// `POST /customservice/kfaccount/inviteworker`.
#[tracing::instrument(level = "debug", name = "kf_invite", skip_all)]
pub(crate) async fn kf_invite(state: &AppState, call: &Call) -> Result<Reply, WxError> {
    let (app, body) = kf_json::<kf_invite::Body>(state, call, INVITE).await?;
    let invite = body.check(owned_by(&app))?;
    let now = call.now;
    state
        .store
        .invite_kf(
            &app.appid,
            NewInvitation {
                kf_account: invite.kf_account,
                invite_wx: invite.invite_wx,
                now,
                expire_time: now + kf_invite::INVITE_TTL_SECS,
                max_bound: kf_invite::MAX_BOUND_PER_WORKER,
            },
        )
        .await?;
    Ok(Reply::Ok)
}
