//! `GET|POST /customservice/kfaccount/del`: delete an account.
//!
//! Four shapes are live (README, "Endpoints"): GET with `kf_account` in the query;
//! POST with a JSON body `{"kf_account":…}`; POST with `kf_account` in the query and an empty or
//! `{}` body; GET with `kf_openid` in the query. The body is read first, then the query.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::RawField;
use super::check_json_body;
use crate::endpoint::{Endpoint, Group, Method, Outgoing, OutgoingBody, Sent};
use crate::{ErrCode, KfAccount, Refused, Status};

/// The endpoint.
#[derive(Debug, Clone, Copy)]
pub struct DelKfAccount;

impl Endpoint for DelKfAccount {
    const NAME: &'static str = "kf_del";
    const SUMMARY: &'static str = "Delete an account";
    const GROUP: Group = Group::KfAccounts;
    const EXAMPLE: &'static str = r#"{"kf_account":"test1@test"}"#;
    const METHOD: Method = Method::GetOrPost;
    const PATH: &'static str = "/customservice/kfaccount/del";
    /// Deleting an account twice leaves it deleted (the second answers 65401).
    const IDEMPOTENT: bool = true;
    type Request = Target;
    type Response = Status;

    /// An account by its name as the JSON body of a `POST` (the current docs' shape);
    /// by its `kf_openid` in the query of a `GET` (the mini-program form).
    /// The body's `kf_account`, else the query's, else the query's `kf_openid`.
    fn check(sent: &Sent<'_>) -> Result<(), Refused> {
        let body = match check_json_body::<Body>(sent.body) {
            Ok(body) => body.kf_account,
            Err(refused) if refused.code == ErrCode::EmptyPostData => None,
            Err(refused) => return Err(refused),
        };
        match body.as_deref().or(sent.query("kf_account")) {
            Some(raw) => KfAccount::check(raw).map(drop),
            None if sent.query("kf_openid").is_some() => Ok(()),
            None => Err(Refused::new(
                ErrCode::InvalidKfAccount,
                "neither kf_account (in the body or the query) nor kf_openid is given",
            )),
        }
    }

    fn outgoing(target: &Target) -> Outgoing {
        match target {
            Target::Account(account) => Outgoing::json(&Body {
                kf_account: Some(account.as_str().to_owned()),
            }),
            Target::OpenId(openid) => Outgoing {
                method: Method::Get,
                query: vec![("kf_openid".to_owned(), openid.clone())],
                body: OutgoingBody::Empty,
            },
        }
    }
}

/// Which account to delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub enum Target {
    /// By its `kf_account` (`{"kf_account":"…"}`, the body of a `POST`).
    #[serde(rename = "kf_account")]
    Account(KfAccount),
    /// By its `kf_openid` (`?kf_openid=…`, the mini-program form).
    #[serde(rename = "kf_openid")]
    OpenId(String),
}

/// The JSON body, when there is one. Other fields (`nickname`, `password`) are ignored.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Body {
    /// The account to delete, unvalidated.
    #[serde(default)]
    pub kf_account: RawField,
}

impl Target {
    /// Picks the target from the body's `kf_account`, else the query's
    /// `kf_account`, else the query's `kf_openid`. Any problem is 65401.
    pub fn select(
        body_account: Option<&str>,
        query_account: Option<&str>,
        query_openid: Option<&str>,
    ) -> Result<Target, ErrCode> {
        if let Some(raw) = body_account.or(query_account) {
            return KfAccount::parse(raw).map(Target::Account);
        }
        match query_openid {
            Some(openid) if !openid.is_empty() => Ok(Target::OpenId(openid.to_owned())),
            _ => Err(ErrCode::InvalidKfAccount),
        }
    }
}
