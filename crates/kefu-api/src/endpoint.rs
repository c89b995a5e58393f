//! What every endpoint declares: its method, path and message types, which credential
//! its calls carry, and how its request travels ([`Outgoing`]), in terms of no HTTP
//! library: the server registers an endpoint from this, the SDK sends one with it.

use serde::Serialize;
use serde::de::DeserializeOwned;

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

/// The credential a call carries in its query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// None: the request itself holds the appid and secret (the token endpoints,
    /// `clear_quota/v2`).
    None,
    /// `access_token=…`: an app's token (or an authorizer token acting for it).
    AccessToken,
    /// `component_access_token=…`: a third-party platform's token.
    ComponentAccessToken,
}

impl Credential {
    /// The query parameter that carries it.
    #[must_use]
    pub const fn parameter(self) -> Option<&'static str> {
        match self {
            Credential::None => None,
            Credential::AccessToken => Some("access_token"),
            Credential::ComponentAccessToken => Some("component_access_token"),
        }
    }
}

/// One request as it travels: its method, the query parameters besides the credential,
/// and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// `GET` ([`Method::Get`]) or `POST` ([`Method::Post`]).
    pub method: Method,
    /// Query parameters, in order (the credential is added by the sender).
    pub query: Vec<(String, String)>,
    /// The body.
    pub body: OutgoingBody,
}

/// The body of an [`Outgoing`] request.
#[derive(Clone, PartialEq, Eq)]
pub enum OutgoingBody {
    /// None.
    Empty,
    /// A JSON document.
    Json(Vec<u8>),
    /// A `multipart/form-data` body with one file part.
    File {
        /// The part's name.
        field: &'static str,
        /// The file name sent with it.
        file_name: &'static str,
        /// Its content type.
        content_type: &'static str,
        /// The bytes.
        bytes: Vec<u8>,
    },
}

impl std::fmt::Debug for OutgoingBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A body may hold a secret (the token endpoints' bodies): only its size shows.
        match self {
            OutgoingBody::Empty => f.write_str("Empty"),
            OutgoingBody::Json(bytes) => write!(f, "Json({} bytes)", bytes.len()),
            OutgoingBody::File { field, bytes, .. } => {
                write!(f, "File({field}, {} bytes)", bytes.len())
            }
        }
    }
}

impl Outgoing {
    /// A request whose fields travel in the query string (a `GET`): each field of
    /// `request` (a JSON object) becomes a parameter, in order; `null` fields are left
    /// out.
    pub fn query<T: Serialize>(request: &T) -> Outgoing {
        let query = match serde_json::to_value(request) {
            Ok(serde_json::Value::Object(fields)) => fields
                .into_iter()
                .filter_map(|(name, value)| {
                    let value = match value {
                        serde_json::Value::Null => return None,
                        serde_json::Value::String(text) => text,
                        other => other.to_string(),
                    };
                    Some((name, value))
                })
                .collect(),
            _ => Vec::new(),
        };
        Outgoing {
            method: Method::Get,
            query,
            body: OutgoingBody::Empty,
        }
    }

    /// A request that travels as a JSON body (a `POST`).
    pub fn json<T: Serialize>(request: &T) -> Outgoing {
        Outgoing {
            method: Method::Post,
            query: Vec::new(),
            // Serialising the contract's own types cannot fail (string keys only).
            body: OutgoingBody::Json(serde_json::to_vec(request).unwrap_or_default()),
        }
    }
}

/// One WeChat API endpoint. The server registers [`Endpoint::PATH`] (and
/// [`Endpoint::ALIASES`]); clients call it with [`Endpoint::outgoing`].
pub trait Endpoint {
    /// The methods the endpoint answers.
    const METHOD: Method;
    /// The path, as WeChat spells it.
    const PATH: &'static str;
    /// Further paths that answer the same (other spellings real clients use).
    const ALIASES: &'static [&'static str] = &[];
    /// The largest body the endpoint reads; larger answers 45002.
    const MAX_BODY: usize = MAX_JSON_BODY;
    /// The credential its calls carry.
    const CREDENTIAL: Credential = Credential::AccessToken;
    /// Whether sending a call again after an uncertain answer (`-1`, a lost response)
    /// does no harm: true for reads and for changes that end in the same state
    /// however often they are made; false where a repeat makes a second thing (`add`,
    /// `inviteworker`, a new token).
    const IDEMPOTENT: bool = false;
    /// What a client sends: the JSON body of a `POST`, the query of a `GET`.
    type Request: Serialize;
    /// What a successful call answers.
    type Response: DeserializeOwned;

    /// How `request` travels: by default as the query of a `GET` endpoint, else as a
    /// JSON body.
    fn outgoing(request: &Self::Request) -> Outgoing {
        match Self::METHOD {
            Method::Get => Outgoing::query(request),
            Method::Post | Method::GetOrPost => Outgoing::json(request),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Probe {
        appid: &'static str,
        secret: Option<&'static str>,
        grant_type: u8,
    }

    #[test]
    fn a_query_request_sends_its_known_fields_and_leaves_out_nulls() {
        let outgoing = Outgoing::query(&Probe {
            appid: "wx1",
            secret: None,
            grant_type: 2,
        });
        assert_eq!(outgoing.method, Method::Get);
        assert_eq!(
            outgoing.query,
            [
                ("appid".to_owned(), "wx1".to_owned()),
                ("grant_type".to_owned(), "2".to_owned())
            ]
        );
        assert_eq!(outgoing.body, OutgoingBody::Empty);
        let json = Outgoing::json(&Probe {
            appid: "wx1",
            secret: Some("s"),
            grant_type: 2,
        });
        assert_eq!(json.method, Method::Post);
        assert!(!format!("{json:?}").contains("\"s\""), "{json:?}");
    }
}
