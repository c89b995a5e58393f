//! One WeChat call as the edge reads it, once per request and before its handler runs:
//! its rid (made first, so that everything said about the call can name it), the time,
//! the caller's IP, the method, path, query and headers, the body (read once, under the
//! endpoint's limit), and the token, looked up when first needed and kept for the rest
//! of the call.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use bytes::Bytes;
use kefu_api::{ErrCode, Rid};
use kefu_store::{App, TokenRecord};

use super::reply::WxError;
use super::request::{Query, ReadBody};
use crate::secrets::digest;
use crate::state::AppState;

/// What a token was found to be, with the app it acts for.
pub(crate) type Found = Option<(TokenRecord, Option<Arc<App>>)>;

/// One WeChat call.
#[derive(Debug)]
pub(crate) struct Call {
    /// The rid a failure answers with.
    pub(crate) rid: Rid,
    /// The server clock when the call arrived (Unix seconds).
    pub(crate) now: i64,
    /// The caller as WeChat's rules see it (see [`super::edge::client_ip`]).
    pub(crate) ip: IpAddr,
    head: Parts,
    body: ReadBody,
    /// The one token a call presents, with what the store said of it.
    token: OnceLock<(Box<str>, Found)>,
    /// The app or platform the call was found to be for, as soon as a handler knows:
    /// the owner of its record in the request log (and so of its rid).
    caller: OnceLock<Box<str>>,
}

impl Call {
    /// A call from its head and its body as read.
    pub(crate) fn new(rid: Rid, now: i64, ip: IpAddr, head: Parts, body: ReadBody) -> Call {
        Call {
            rid,
            now,
            ip,
            head,
            body,
            token: OnceLock::new(),
            caller: OnceLock::new(),
        }
    }

    /// The query string, searched on demand.
    pub(crate) fn query(&self) -> Query<'_> {
        Query::new(self.head.uri.query())
    }

    /// The body, or the code that refuses it (45002 too large, 47001 broken off).
    pub(crate) fn body(&self) -> Result<&Bytes, ErrCode> {
        self.body.bytes()
    }

    /// The body when it arrived whole (empty otherwise).
    pub(crate) fn body_or_empty(&self) -> &[u8] {
        self.body.bytes().map_or(&[], |bytes| &bytes[..])
    }

    /// The request's headers.
    pub(crate) fn headers(&self) -> &HeaderMap {
        &self.head.headers
    }

    /// The request's head (for the URLs handed out).
    pub(crate) fn head(&self) -> &Parts {
        &self.head
    }

    /// The method.
    pub(crate) fn method(&self) -> &Method {
        &self.head.method
    }

    /// The path.
    pub(crate) fn path(&self) -> &str {
        self.head.uri.path()
    }

    /// A token with its app: read from the store (and hashed) once per call, whoever
    /// asks first — the fault rules, a handler's check, the request log.
    pub(crate) async fn look_up(&self, state: &AppState, token: &str) -> Result<Found, WxError> {
        if let Some((seen, found)) = self.token.get()
            && **seen == *token
        {
            return Ok(found.clone());
        }
        let found = state.store.token_and_app(&digest(token)).await?;
        let _ = self.token.set((token.into(), found.clone()));
        Ok(found)
    }

    /// The owner of the token looked up, whatever its verdict (a known token names its
    /// app, or its platform).
    pub(crate) fn token_owner(&self) -> Option<&str> {
        self.token
            .get()
            .and_then(|(_, found)| found.as_ref())
            .map(|(record, _)| &*record.appid)
    }

    /// Records that the call is for `owner` (an app or a platform); the first one said
    /// counts.
    pub(crate) fn found_caller(&self, owner: &str) {
        let _ = self.caller.set(owner.into());
    }

    /// Whom the call was found to be for: what a handler said, else its token's owner.
    pub(crate) fn caller(&self) -> Option<&str> {
        self.caller
            .get()
            .map(|c| &**c)
            .or_else(|| self.token_owner())
    }
}
