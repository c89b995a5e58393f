//! What every endpoint declares: its method, path and message types.

/// The HTTP methods an endpoint answers. The other method gets
/// [`ErrCode::RequireGet`](crate::ErrCode::RequireGet) or
/// [`ErrCode::RequirePost`](crate::ErrCode::RequirePost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET only.
    Get,
    /// POST only.
    Post,
    /// Either (`kfaccount/del` is called both ways in the wild).
    GetOrPost,
}

/// The largest JSON body an endpoint reads (1 MiB, a decision: WeChat publishes no
/// figure); a larger one answers `45002 content size out of limit`.
pub const MAX_JSON_BODY: usize = 1024 * 1024;

/// One WeChat API endpoint. The server registers [`Endpoint::PATH`] (and
/// [`Endpoint::ALIASES`]); clients call it.
pub trait Endpoint {
    /// The methods the endpoint answers.
    const METHOD: Method;
    /// The path, as WeChat spells it.
    const PATH: &'static str;
    /// Further paths that answer the same (other spellings real clients use).
    const ALIASES: &'static [&'static str] = &[];
    /// The largest body the endpoint reads; larger answers 45002.
    const MAX_BODY: usize = MAX_JSON_BODY;
    /// What a client sends (JSON body, query or form, as the endpoint's docs say).
    type Request;
    /// What a successful call answers.
    type Response;
}
