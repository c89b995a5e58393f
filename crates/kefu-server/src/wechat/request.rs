//! Reading requests the way WeChat does: the query by hand (so nothing is rejected
//! before a handler can answer in the envelope) and the body under a size limit, read
//! once, at the edge, before any handler runs.

use std::borrow::Cow;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use http_body_util::BodyExt;
use kefu_api::ErrCode;

pub(crate) use kefu_api::MAX_JSON_BODY;

/// The query string, searched on demand.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Query<'a>(&'a str);

impl<'a> Query<'a> {
    /// Wraps a raw query string (without `?`).
    #[must_use]
    pub(crate) fn new(raw: Option<&'a str>) -> Query<'a> {
        Query(raw.unwrap_or(""))
    }

    /// The first value of `key`, percent-decoded (`%40` and raw `@` alike).
    #[must_use]
    pub(crate) fn get(&self, key: &str) -> Option<Cow<'a, str>> {
        self.values(key).next()
    }

    /// The first non-empty value of `key` (`a=&a=x` gives `x`).
    #[must_use]
    pub(crate) fn non_empty(&self, key: &str) -> Option<Cow<'a, str>> {
        self.values(key).find(|value| !value.is_empty())
    }

    /// Every value of `key`, in order, decoded as `application/x-www-form-urlencoded`
    /// (what `form_urlencoded::parse` gives), but only the values of `key` are decoded,
    /// and text with nothing to decode (a token, say) is not copied.
    fn values(&self, key: &str) -> impl Iterator<Item = Cow<'a, str>> {
        let query: &'a str = self.0;
        let mut pairs = memchr::memchr_iter(b'&', query.as_bytes())
            .chain(std::iter::once(query.len()))
            .scan(0, move |start, end| {
                let pair = &query[*start..end];
                *start = end + 1;
                Some(pair)
            });
        std::iter::from_fn(move || {
            pairs.by_ref().find_map(|pair| {
                if pair.is_empty() {
                    return None;
                }
                let (name, value) = match memchr::memchr(b'=', pair.as_bytes()) {
                    Some(at) => (&pair[..at], &pair[at + 1..]),
                    None => (pair, ""),
                };
                (decoded(name) == key).then(|| decoded(value))
            })
        })
    }
}

/// A name or value of a query as `form_urlencoded` decodes it (`+` is a space, `%XX` a
/// byte, invalid UTF-8 replaced).
fn decoded(raw: &str) -> Cow<'_, str> {
    if memchr::memchr2(b'%', b'+', raw.as_bytes()).is_some() {
        // The pair `=raw` parses to an empty name and `raw` decoded (`raw` may hold `=`).
        let pair = format!("={raw}");
        Cow::Owned(
            form_urlencoded::parse(pair.as_bytes())
                .next()
                .map(|(_, value)| value.into_owned())
                .unwrap_or_default(),
        )
    } else {
        Cow::Borrowed(raw)
    }
}

/// The most bytes of a refused body (over its limit) read and thrown away so that the
/// client, still sending, can read the `45002` answer on a connection that stays
/// usable; past it the connection is closed (with `Connection: close`).
pub(crate) const MAX_DISCARDED_BODY: usize = 16 * 1024 * 1024;

/// A request body as the edge read it.
#[derive(Debug, Clone)]
pub(crate) enum ReadBody {
    /// The whole body, within its limit.
    Whole(Bytes),
    /// Larger than its limit (declared or sent): `45002`.
    TooLarge,
    /// Broken off, malformed (chunked encoding) or too slow: nothing usable arrived.
    Broken,
}

impl ReadBody {
    /// The body, or the code that refuses it.
    pub(crate) fn bytes(&self) -> Result<&Bytes, ErrCode> {
        match self {
            ReadBody::Whole(bytes) => Ok(bytes),
            ReadBody::TooLarge => Err(ErrCode::ContentSizeOutOfLimit),
            ReadBody::Broken => Err(ErrCode::DataFormatError),
        }
    }
}

/// A body read under a limit, and whether the connection can carry the next request
/// (the body was read to its end, or thrown away to its end).
#[derive(Debug)]
pub(crate) struct Read {
    /// What was read.
    pub body: ReadBody,
    /// Whether the whole body came off the connection.
    pub reusable: bool,
}

/// Reads the body under `limit`, within `timeout`. A body declared or found larger is
/// refused (`45002`), and read on to its end and thrown away when that is at most
/// [`MAX_DISCARDED_BODY`], so that the client sees the answer: unless the client waits
/// for `100 Continue` before sending it, when it is not asked for at all.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Read {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let waits_for_continue = headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if declared.is_some_and(|len| len > limit as u64) {
        let reusable = !waits_for_continue
            && declared.is_some_and(|len| len <= MAX_DISCARDED_BODY as u64)
            && tokio::time::timeout(timeout, discard(body, MAX_DISCARDED_BODY))
                .await
                .unwrap_or(false);
        return Read {
            body: ReadBody::TooLarge,
            reusable,
        };
    }
    tokio::time::timeout(timeout, collect(body, limit))
        .await
        .unwrap_or(Read {
            body: ReadBody::Broken,
            reusable: false,
        })
}

/// Collects a body of at most `limit` bytes; a longer one is thrown away to its end.
async fn collect(mut body: Body, limit: usize) -> Read {
    let mut first: Option<Bytes> = None;
    let mut rest = bytes::BytesMut::new();
    let mut seen = 0_usize;
    loop {
        match body.frame().await {
            None => break,
            Some(Err(_)) => {
                return Read {
                    body: ReadBody::Broken,
                    reusable: false,
                };
            }
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                seen = seen.saturating_add(data.len());
                if seen > limit {
                    let budget = MAX_DISCARDED_BODY.saturating_sub(seen);
                    return Read {
                        body: ReadBody::TooLarge,
                        reusable: discard(body, budget).await,
                    };
                }
                // A body that comes in one piece (the usual case) is kept without a copy.
                match &first {
                    None if rest.is_empty() => first = Some(data),
                    _ => {
                        if let Some(first) = first.take() {
                            rest.extend_from_slice(&first);
                        }
                        rest.extend_from_slice(&data);
                    }
                }
            }
        }
    }
    Read {
        body: ReadBody::Whole(first.unwrap_or_else(|| rest.freeze())),
        reusable: true,
    }
}

/// Reads a body to its end and throws it away; `false` when it is longer than
/// `budget` bytes or broken (the connection cannot be reused).
pub(crate) async fn discard(mut body: Body, budget: usize) -> bool {
    let mut left = budget;
    loop {
        match body.frame().await {
            None => return true,
            Some(Err(_)) => return false,
            Some(Ok(frame)) => {
                let len = frame.data_ref().map_or(0, Bytes::len);
                match left.checked_sub(len) {
                    Some(remaining) => left = remaining,
                    None => return false,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_lookup() {
        let query = Query::new(Some(
            "access_token=abc&kf_account=test1%40test&empty=&x=1&x=2",
        ));
        assert_eq!(query.get("access_token").as_deref(), Some("abc"));
        assert_eq!(query.get("kf_account").as_deref(), Some("test1@test"));
        assert_eq!(query.get("x").as_deref(), Some("1"));
        assert_eq!(query.get("empty").as_deref(), Some(""));
        assert_eq!(query.non_empty("empty"), None);
        assert_eq!(
            Query::new(Some("t=&t=abc")).non_empty("t").as_deref(),
            Some("abc")
        );
        assert_eq!(query.get("missing"), None);
        // Names are decoded too, `+` is a space, and a bare name has an empty value.
        let odd = Query::new(Some("&&access%5Ftoken=a+b%2Bc&flag&k=%E5%AE%A2%FF"));
        assert_eq!(odd.get("access_token").as_deref(), Some("a b+c"));
        assert_eq!(odd.get("flag").as_deref(), Some(""));
        assert_eq!(
            Query::new(Some("v=x%41=y")).get("v").as_deref(),
            Some("xA=y")
        );
        assert_eq!(odd.get("k").as_deref(), Some("客\u{FFFD}"));
        assert!(matches!(
            query.get("access_token"),
            Some(Cow::Borrowed("abc"))
        ));
        assert_eq!(
            Query::new(Some("kf_account=test1@test"))
                .get("kf_account")
                .as_deref(),
            Some("test1@test")
        );
    }
}
