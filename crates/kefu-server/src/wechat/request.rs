//! Reading requests the way WeChat does: the query by hand (so nothing is rejected
//! before a handler can answer in the envelope) and the body under a size limit.

use std::borrow::Cow;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use kefu_api::ErrCode;

/// The largest JSON body accepted (1 MiB); larger answers 45002.
pub const MAX_JSON_BODY: usize = 1024 * 1024;
/// The largest multipart body accepted: the 5 MiB image plus 64 KiB of envelope.
pub const MAX_MULTIPART_BODY: usize =
    kefu_api::endpoints::kf_uploadheadimg::MAX_IMAGE_BYTES + 64 * 1024;

/// The query string, searched on demand.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<'a>(&'a str);

impl<'a> Query<'a> {
    /// Wraps a raw query string (without `?`).
    #[must_use]
    pub fn new(raw: Option<&'a str>) -> Query<'a> {
        Query(raw.unwrap_or(""))
    }

    /// The first value of `key`, percent-decoded (`%40` and raw `@` alike).
    #[must_use]
    pub fn get(&self, key: &str) -> Option<Cow<'a, str>> {
        self.values(key).next()
    }

    /// The first non-empty value of `key` (`a=&a=x` gives `x`).
    #[must_use]
    pub fn non_empty(&self, key: &str) -> Option<Cow<'a, str>> {
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

/// Reads the body, answering 45002 when it is larger than `limit`.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ErrCode> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ErrCode::ContentSizeOutOfLimit);
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ErrCode::ContentSizeOutOfLimit)
        }
        // The client went away or sent a broken chunked body: nothing usable arrived.
        Err(_) => Err(ErrCode::DataFormatError),
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
