//! Customer service messages (docs/behaviour.md, "Messages"):
//! `message/custom/send` and `message/custom/typing`. Each checks the token and the
//! platform rules ([`admit`]) first, then the body, then the fan's windows.

use kefu_api::endpoints::check_json_body;
use kefu_api::endpoints::message::{
    MESSAGE_FUNCSCOPES, Message, SendMessage, SendTyping, TypingBody,
};
use kefu_api::{ErrCode, Refused};

use super::auth::{Rules, Scope, admit};
use super::call::Call;
use super::kf::owned_by;
use super::reply::{Reply, WxError};
use crate::state::AppState;

const SEND: Rules = Rules::of::<SendMessage>(MESSAGE_FUNCSCOPES, Scope::Messages);
const TYPING: Rules = Rules::of::<SendTyping>(MESSAGE_FUNCSCOPES, Scope::Messages);

/// `POST /cgi-bin/message/custom/send`.
#[tracing::instrument(level = "debug", name = "message_send", skip_all)]
pub(crate) async fn send(state: &AppState, call: &Call) -> Result<Reply, WxError> {
    let app = admit(state, call, SEND).await?;
    let message = Message::check(call.body()?)?;
    let worker = message.customservice.map(|service| service.kf_account);
    if let Some(account) = &worker
        && !owned_by(&app)(account)
    {
        return Err(Refused::new(
            ErrCode::InvalidKfAccount,
            format!(
                "customservice.kf_account {account}: its suffix is neither this app's WeChat ID \
                 nor its original id"
            ),
        )
        .into());
    }
    let change = state
        .store
        .send_message(
            &app.appid,
            message.touser.as_str(),
            message.content.history_text(),
            worker.as_ref(),
            call.now,
        )
        .await?;
    // A session that had gone idle ended with this call: the developer hears of it.
    state.pushes.sessions(&app.appid, &change, call.now);
    Ok(Reply::Ok)
}

/// `POST /cgi-bin/message/custom/typing`.
#[tracing::instrument(level = "debug", name = "message_typing", skip_all)]
pub(crate) async fn typing(state: &AppState, call: &Call) -> Result<Reply, WxError> {
    let app = admit(state, call, TYPING).await?;
    let body: TypingBody = check_json_body(call.body()?)?;
    let request = body.check()?;
    let change = state
        .store
        .typing(
            &app.appid,
            request.touser.as_str(),
            request.command,
            call.now,
        )
        .await?;
    state.pushes.sessions(&app.appid, &change, call.now);
    Ok(Reply::Ok)
}
