//! Sessions and the chat history (docs/behaviour.md, "Sessions", "History"):
//! `kfsession/create`, `close`, `getsession`, `getsessionlist`, `getwaitcase`, and
//! `msgrecord/getmsglist` and `getrecord`. Each checks the token and the platform rules
//! ([`admit`]) first, then the body or query, then the store's rules.

use kefu_api::endpoints::check_json_body;
use kefu_api::endpoints::kf_session::{
    CloseSession, CreateSession, GetSession, GetSessionList, GetWaitCase, MAX_WAIT_LISTED,
    SESSION_FUNCSCOPES, Session, SessionBody, SessionItem, SessionList, WaitCase, Waiting,
};
use kefu_api::endpoints::message::MESSAGE_FUNCSCOPES;
use kefu_api::endpoints::msgrecord::{
    GetMsgList, GetRecord, MsgList, MsgListRequest, Record, RecordPage, RecordRequest,
};
use kefu_api::{ErrCode, KfAccount, Openid, Refused};
use kefu_store::{FanSession, HistoryRecord};

use super::auth::{Rules, Scope, admit};
use super::call::Call;
use super::kf::owned_by;
use super::reply::{Reply, WxError};
use crate::state::AppState;

const KF: Scope = Scope::Kf { upload: false };
const CREATE: Rules = Rules::of::<CreateSession>(SESSION_FUNCSCOPES, KF);
const CLOSE: Rules = Rules::of::<CloseSession>(SESSION_FUNCSCOPES, KF);
const GET: Rules = Rules::of::<GetSession>(SESSION_FUNCSCOPES, KF);
const LIST: Rules = Rules::of::<GetSessionList>(SESSION_FUNCSCOPES, KF);
const WAIT: Rules = Rules::of::<GetWaitCase>(SESSION_FUNCSCOPES, KF);
const MSG_LIST: Rules = Rules::of::<GetMsgList>(MESSAGE_FUNCSCOPES, KF);
const RECORD: Rules = Rules::of::<GetRecord>(MESSAGE_FUNCSCOPES, KF);

/// `POST /customservice/kfsession/create`.
#[tracing::instrument(level = "debug", name = "kf_session_create", skip_all)]
pub(crate) async fn session_create(state: &AppState, call: &Call) -> Result<Reply, WxError> {
    move_fan(state, call, CREATE).await
}

/// `POST /customservice/kfsession/close`.
#[tracing::instrument(level = "debug", name = "kf_session_close", skip_all)]
pub(crate) async fn session_close(state: &AppState, call: &Call) -> Result<Reply, WxError> {
    move_fan(state, call, CLOSE).await
}

/// `create` (with [`CREATE`]) or `close`: the same checks, then the store's rule, then
/// the pushes the change causes.
async fn move_fan(state: &AppState, call: &Call, rules: Rules) -> Result<Reply, WxError> {
    let app = admit(state, call, rules).await?;
    let body: SessionBody = check_json_body(call.body()?)?;
    let request = body.check(owned_by(&app))?;
    let (openid, account) = (request.openid.as_str(), &request.kf_account);
    let change = if rules.path == CREATE.path {
        state
            .store
            .create_session(&app.appid, openid, account, call.now)
            .await?
    } else {
        state
            .store
            .close_session(&app.appid, openid, account, call.now)
            .await?
    };
    state.pushes.sessions(&app.appid, &change, call.now);
    Ok(Reply::Ok)
}

/// `GET /customservice/kfsession/getsession?openid=…`.
#[tracing::instrument(level = "debug", name = "kf_session_get", skip_all)]
pub(crate) async fn session_get(state: &AppState, call: &Call) -> Result<Reply, WxError> {
    let app = admit(state, call, GET).await?;
    let openid = Openid::check(call.query().get("openid").as_deref().unwrap_or(""))?;
    let fan = state
        .store
        .fan(&app.appid, openid.as_str())
        .await?
        .filter(|fan| fan.following)
        .ok_or_else(|| {
            WxError::because(ErrCode::InvalidOpenid, "no fan of the app has this openid")
        })?;
    let session = match fan.session_at(call.now) {
        Some(FanSession::Served {
            kf_account, since, ..
        }) => Session {
            createtime: *since,
            kf_account: kf_account.clone(),
        },
        _ => Session {
            createtime: 0,
            kf_account: String::new(),
        },
    };
    Reply::json(&session)
}

/// `GET /customservice/kfsession/getsessionlist?kf_account=…`.
#[tracing::instrument(level = "debug", name = "kf_session_list", skip_all)]
pub(crate) async fn session_list(state: &AppState, call: &Call) -> Result<Reply, WxError> {
    let app = admit(state, call, LIST).await?;
    let account = KfAccount::check_for(
        call.query().get("kf_account").as_deref(),
        ErrCode::InvalidKfAccount,
        owned_by(&app),
    )?;
    let kfs = state.store.kfs(&app.appid).await?;
    if !kfs.iter().any(|kf| kf.kf_account == account.as_str()) {
        return Err(Refused::new(
            ErrCode::InvalidKfAccount,
            format!("the app has no account {account}"),
        )
        .into());
    }
    let sessions = state
        .store
        .sessions_of(&app.appid, account.as_str(), call.now)
        .await?;
    Reply::json(&SessionList {
        sessionlist: sessions
            .into_iter()
            .map(|(openid, createtime)| SessionItem { createtime, openid })
            .collect(),
    })
}

/// `GET /customservice/kfsession/getwaitcase`.
#[tracing::instrument(level = "debug", name = "kf_wait_case", skip_all)]
pub(crate) async fn wait_case(state: &AppState, call: &Call) -> Result<Reply, WxError> {
    let app = admit(state, call, WAIT).await?;
    let (count, first) = state.store.wait_queue(&app.appid, MAX_WAIT_LISTED).await?;
    Reply::json(&WaitCase {
        count,
        waitcaselist: first
            .into_iter()
            .map(|(openid, latest_time)| Waiting {
                latest_time,
                openid,
            })
            .collect(),
    })
}

fn record(record: HistoryRecord) -> Record {
    Record {
        openid: record.openid,
        opercode: record.opercode,
        text: record.text,
        time: record.time,
        worker: record.worker,
    }
}

/// `POST /customservice/msgrecord/getmsglist`: the records from `msgid` on; the answer's
/// `msgid` is the one after the last record returned (what the next call sends).
#[tracing::instrument(level = "debug", name = "msg_list", skip_all)]
pub(crate) async fn msg_list(state: &AppState, call: &Call) -> Result<Reply, WxError> {
    let app = admit(state, call, MSG_LIST).await?;
    let body: MsgListRequest = check_json_body(call.body()?)?;
    let query = body.check()?;
    let records = state.store.history(&app.appid, &query).await?;
    let next = records
        .last()
        .map_or(query.from_msgid, |last| last.msgid + 1);
    Reply::json(&MsgList {
        number: i64::try_from(records.len()).unwrap_or(i64::MAX),
        msgid: next,
        recordlist: records.into_iter().map(record).collect(),
    })
}

/// `POST /customservice/msgrecord/getrecord` (legacy): one page of the records.
#[tracing::instrument(level = "debug", name = "msg_record", skip_all)]
pub(crate) async fn msg_record(state: &AppState, call: &Call) -> Result<Reply, WxError> {
    let app = admit(state, call, RECORD).await?;
    let body: RecordRequest = check_json_body(call.body()?)?;
    let query = body.check()?;
    let records = state.store.history(&app.appid, &query).await?;
    Reply::json(&RecordPage {
        recordlist: records.into_iter().map(record).collect(),
    })
}
