//! Chat history (docs/behaviour.md, "History"): `POST /customservice/msgrecord/getmsglist`,
//! paged by `msgid`, and the legacy `POST /customservice/msgrecord/getrecord`, paged by
//! page number, both read from the same records.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::check_json_body;
use crate::endpoint::{Endpoint, Group, Method, Sent};
use crate::{ErrCode, Refused};

/// The longest span one query covers (seconds): 24 hours.
pub const MAX_SPAN_SECS: i64 = 24 * 3600;
/// The most records one `getmsglist` call returns.
pub const MAX_NUMBER: i64 = 10_000;
/// The most records one page of the legacy `getrecord` holds.
pub const MAX_PAGE_SIZE: i64 = 50;

/// What a record is (`opercode`), in WeChat's numbers.
pub mod opercode {
    /// A fan was put in the waiting queue.
    pub const WAITING: i64 = 1000;
    /// An account took a waiting fan.
    pub const ACCEPTED: i64 = 1001;
    /// An account began a session with a fan that was not waiting.
    pub const INITIATED: i64 = 1002;
    /// A session ended.
    pub const CLOSED: i64 = 1004;
    /// A message sent to the fan: a customer service message, or the developer's
    /// passive reply to a push.
    pub const SENT: i64 = 2002;
    /// A message the fan sent, or what the fan did (a menu click, a follow…).
    pub const RECEIVED: i64 = 2003;
}

/// `POST /customservice/msgrecord/getmsglist`.
#[derive(Debug, Clone, Copy)]
pub struct GetMsgList;

impl Endpoint for GetMsgList {
    const NAME: &'static str = "msg_list";
    const SUMMARY: &'static str = "Read the chat history, paged by msgid";
    const GROUP: Group = Group::Sessions;
    const EXAMPLE: &'static str =
        r#"{"starttime":1765000000,"endtime":1765003600,"msgid":1,"number":10000}"#;
    const METHOD: Method = Method::Post;
    const PATH: &'static str = "/customservice/msgrecord/getmsglist";
    const IDEMPOTENT: bool = true;
    type Request = MsgListRequest;
    type Response = MsgList;

    fn check(sent: &Sent<'_>) -> Result<(), Refused> {
        check_json_body::<MsgListRequest>(sent.body)?
            .check()
            .map(drop)
    }
}

/// `{"starttime","endtime","msgid","number"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct MsgListRequest {
    /// From this time (Unix seconds).
    #[serde(default)]
    pub starttime: i64,
    /// To this time (Unix seconds), at most 24 hours later.
    #[serde(default)]
    pub endtime: i64,
    /// The first record's msgid: 1 for the first page, then the `msgid` the previous
    /// page answered.
    #[serde(default)]
    pub msgid: i64,
    /// How many records at most (1-10000).
    #[serde(default)]
    pub number: i64,
}

/// A checked history query: the records of `[start, end]` from `from_msgid` on, at
/// most `limit`, of one fan when `openid` is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    /// From this time (Unix seconds, inclusive).
    pub start: i64,
    /// To this time (Unix seconds, inclusive).
    pub end: i64,
    /// The first msgid returned, at least.
    pub from_msgid: i64,
    /// How many records at most.
    pub limit: usize,
    /// How many to skip first (the legacy page number's offset).
    pub offset: usize,
    /// Only this fan's records.
    pub openid: Option<String>,
}

/// The time range of a query: 65416 when it ends before it starts, 65417 when it spans
/// more than 24 hours.
fn check_range(start: i64, end: i64) -> Result<(), Refused> {
    if end < start {
        return Err(Refused::new(
            ErrCode::ParamInvalid,
            format!("endtime {end} is before starttime {start}"),
        ));
    }
    // Any two i64 may come: a span too long to compute is too long.
    if end
        .checked_sub(start)
        .is_none_or(|span| span > MAX_SPAN_SECS)
    {
        return Err(Refused::new(
            ErrCode::RangeTooLong,
            format!(
                "starttime {start} to endtime {end} is more than {MAX_SPAN_SECS} seconds (24 \
                 hours)"
            ),
        ));
    }
    Ok(())
}

impl MsgListRequest {
    /// Checks the range (65416, 65417), then `number` (1-10000) and `msgid` (at least 1),
    /// both 65416.
    pub fn check(&self) -> Result<HistoryQuery, Refused> {
        check_range(self.starttime, self.endtime)?;
        if !(1..=MAX_NUMBER).contains(&self.number) {
            return Err(Refused::new(
                ErrCode::ParamInvalid,
                format!("number is {}: it is 1 to {MAX_NUMBER}", self.number),
            ));
        }
        if self.msgid < 1 {
            return Err(Refused::new(
                ErrCode::ParamInvalid,
                format!("msgid is {}: it starts at 1", self.msgid),
            ));
        }
        Ok(HistoryQuery {
            start: self.starttime,
            end: self.endtime,
            from_msgid: self.msgid,
            limit: usize::try_from(self.number).unwrap_or(usize::MAX),
            offset: 0,
            openid: None,
        })
    }
}

/// One record of the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Record {
    /// The fan.
    pub openid: String,
    /// What happened ([`opercode`]).
    pub opercode: i64,
    /// The message's text; `[image]`, `[voice]`, `[video]`… for media.
    pub text: String,
    /// When (Unix seconds).
    pub time: i64,
    /// The account involved, `""` when none.
    pub worker: String,
}

/// `{"recordlist":[…],"number":N,"msgid":N}` (no errcode): `msgid` is what the next
/// call sends (the id after the last record returned); an empty list ends the paging.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MsgList {
    /// The records, oldest first.
    pub recordlist: Vec<Record>,
    /// How many records were returned.
    pub number: i64,
    /// The msgid to ask for next.
    pub msgid: i64,
}

/// `POST /customservice/msgrecord/getrecord` (legacy, still called by co-wechat-api).
#[derive(Debug, Clone, Copy)]
pub struct GetRecord;

impl Endpoint for GetRecord {
    const NAME: &'static str = "msg_record";
    const SUMMARY: &'static str = "Read the chat history, paged by page number (legacy)";
    const GROUP: Group = Group::Sessions;
    const EXAMPLE: &'static str =
        r#"{"starttime":1765000000,"endtime":1765003600,"pageindex":1,"pagesize":50}"#;
    const METHOD: Method = Method::Post;
    const PATH: &'static str = "/customservice/msgrecord/getrecord";
    const IDEMPOTENT: bool = true;
    type Request = RecordRequest;
    type Response = RecordPage;

    fn check(sent: &Sent<'_>) -> Result<(), Refused> {
        check_json_body::<RecordRequest>(sent.body)?
            .check()
            .map(drop)
    }
}

/// `{"starttime","endtime","pageindex","pagesize"}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct RecordRequest {
    /// From this time (Unix seconds).
    #[serde(default)]
    pub starttime: i64,
    /// To this time (Unix seconds), at most 24 hours later.
    #[serde(default)]
    pub endtime: i64,
    /// The page, from 1.
    #[serde(default)]
    pub pageindex: i64,
    /// Records per page (1-50).
    #[serde(default)]
    pub pagesize: i64,
    /// Only this fan's records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openid: Option<String>,
}

impl RecordRequest {
    /// Checks the range (65416, 65417), then the page (index from 1, size 1-50: 65416).
    pub fn check(&self) -> Result<HistoryQuery, Refused> {
        check_range(self.starttime, self.endtime)?;
        if !(1..=MAX_PAGE_SIZE).contains(&self.pagesize) || self.pageindex < 1 {
            return Err(Refused::new(
                ErrCode::ParamInvalid,
                format!(
                    "pageindex {} and pagesize {}: pages count from 1 and hold 1 to \
                     {MAX_PAGE_SIZE} records",
                    self.pageindex, self.pagesize
                ),
            ));
        }
        let size = usize::try_from(self.pagesize).unwrap_or(0);
        let index = usize::try_from(self.pageindex - 1).unwrap_or(usize::MAX);
        Ok(HistoryQuery {
            start: self.starttime,
            end: self.endtime,
            from_msgid: 1,
            limit: size,
            offset: index.saturating_mul(size),
            openid: self.openid.clone().filter(|openid| !openid.is_empty()),
        })
    }
}

/// `{"recordlist":[…]}` (no errcode): one page, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RecordPage {
    /// The records.
    pub recordlist: Vec<Record>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(start: i64, end: i64, msgid: i64, number: i64) -> MsgListRequest {
        MsgListRequest {
            starttime: start,
            endtime: end,
            msgid,
            number,
        }
    }

    #[test]
    fn a_query_over_24_hours_or_out_of_bounds_is_refused() {
        let code = |r: MsgListRequest| r.check().unwrap_err().code;
        assert_eq!(
            code(request(0, MAX_SPAN_SECS + 1, 1, 10)),
            ErrCode::RangeTooLong
        );
        assert_eq!(code(request(10, 9, 1, 10)), ErrCode::ParamInvalid);
        assert_eq!(code(request(0, 10, 1, 0)), ErrCode::ParamInvalid);
        assert_eq!(
            code(request(0, 10, 1, MAX_NUMBER + 1)),
            ErrCode::ParamInvalid
        );
        assert_eq!(code(request(0, 10, 0, 10)), ErrCode::ParamInvalid);
        // A span too long to compute is too long, not an overflow.
        assert_eq!(code(request(i64::MIN, 0, 1, 10)), ErrCode::RangeTooLong);
        assert_eq!(code(request(-1, i64::MAX, 1, 10)), ErrCode::RangeTooLong);
        let query = request(0, MAX_SPAN_SECS, 7, MAX_NUMBER).check().unwrap();
        assert_eq!((query.from_msgid, query.limit), (7, 10_000));
    }

    #[test]
    fn a_legacy_page_is_an_offset() {
        let page = RecordRequest {
            starttime: 0,
            endtime: 10,
            pageindex: 3,
            pagesize: 50,
            openid: None,
        };
        assert_eq!(page.check().unwrap().offset, 100);
        let too_big = RecordRequest {
            pagesize: 51,
            ..page.clone()
        };
        assert_eq!(too_big.check().unwrap_err().code, ErrCode::ParamInvalid);
    }
}
