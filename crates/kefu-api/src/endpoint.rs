//! What every endpoint declares: its method, path and message types, which credential
//! its calls carry, and how its request travels ([`Outgoing`]), in terms of no HTTP
//! library: the server registers an endpoint from this, the SDK sends one with it.

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Refused;

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

/// How WeChat's documentation groups the endpoints (and so kefu's console and its
/// OpenAPI document).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    /// Customer service accounts: add, update, delete, head images, lists, invitations.
    KfAccounts,
    /// Access tokens: `/cgi-bin/token` and `stable_token`.
    AccessTokens,
    /// Quotas and diagnostics: quota figures, clears, `rid/get`.
    QuotasAndDiagnostics,
    /// Third-party platforms: component and authorizer tokens.
    ThirdPartyPlatforms,
    /// Sessions and chat history: who serves which fan, the waiting queue, the records.
    Sessions,
    /// Customer service messages: sending to a fan, typing.
    Messages,
}

impl Group {
    /// The group's title, as a heading.
    #[must_use]
    pub const fn title(self) -> &'static str {
        match self {
            Group::KfAccounts => "Customer service accounts",
            Group::AccessTokens => "Access tokens",
            Group::QuotasAndDiagnostics => "Quotas and diagnostics",
            Group::ThirdPartyPlatforms => "Third-party platforms",
            Group::Sessions => "Sessions and chat history",
            Group::Messages => "Customer service messages",
        }
    }
}

/// What a call carries, as [`Endpoint::check`] reads it: its query parameters (but the
/// credential) and its body.
#[derive(Debug, Clone, Copy)]
pub struct Sent<'a> {
    /// The query parameters, in order.
    pub query: &'a [(String, String)],
    /// The body as sent (JSON, or empty).
    pub body: &'a [u8],
}

impl Sent<'_> {
    /// The first non-empty value of a query parameter.
    #[must_use]
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value.as_str())
    }
}

/// One WeChat API endpoint. The server registers [`Endpoint::PATH`] (and
/// [`Endpoint::ALIASES`]); clients call it with [`Endpoint::outgoing`]; the catalog
/// ([`crate::catalog`]) describes it from these items.
pub trait Endpoint {
    /// A short name, unique among the endpoints (`kf_update`): the console's deep links
    /// and the OpenAPI document's `operationId`.
    const NAME: &'static str;
    /// What a call does, in a few words.
    const SUMMARY: &'static str;
    /// Where WeChat's documentation puts it.
    const GROUP: Group;
    /// A request that the endpoint takes, as it travels: the JSON body of a `POST`, or
    /// the query parameters of a `GET` as a JSON object (the credential left out).
    const EXAMPLE: &'static str;
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
    /// The multipart part that carries a file, for the endpoints that take one (the
    /// rest of the request then travels in the query).
    const FILE_FIELD: Option<&'static str> = None;
    /// Whether sending a call again after an uncertain answer (`-1`, a lost response)
    /// does no harm: true for reads and for changes that end in the same state
    /// however often they are made; false where a repeat makes a second thing (`add`,
    /// `inviteworker`, a new token).
    const IDEMPOTENT: bool = false;
    /// What a client sends: the JSON body of a `POST`, the query of a `GET`.
    type Request: Serialize + JsonSchema;
    /// What a successful call answers.
    type Response: DeserializeOwned + JsonSchema;

    /// Checks what a call carries with the rules the contract owns, in the order the
    /// server applies them, as far as they can be told without the app (a kf_account's
    /// suffix, a token's verdict and the quotas are the server's): the first rule
    /// broken, with its errcode and why. The server's own answer may still refuse a
    /// request that passes.
    fn check(sent: &Sent<'_>) -> Result<(), Refused> {
        let _ = sent;
        Ok(())
    }

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
