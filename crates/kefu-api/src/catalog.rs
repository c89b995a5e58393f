//! The catalog of WeChat's endpoints that kefu serves, described from the contract's
//! own items: each endpoint's name, summary, group, method, path, credential, the JSON
//! Schemas of its request and answer (derived from the request and response types),
//! an example request, and the contract's check of a request ([`Endpoint::check`]).
//! kefu's console builds its forms from it, and the OpenAPI document its paths.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema};
use serde::Serialize;

use crate::endpoint::{Credential, Endpoint, Group, Method, Sent};
use crate::endpoints::{
    component, kf_add, kf_del, kf_invite, kf_list, kf_online, kf_session, kf_update,
    kf_uploadheadimg, message, msgrecord, quota, rid_get, stable_token, token,
};
use crate::{Refused, Status};

/// One endpoint, as the catalog describes it.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// [`Endpoint::NAME`].
    pub name: &'static str,
    /// [`Endpoint::SUMMARY`].
    pub summary: &'static str,
    /// [`Endpoint::GROUP`].
    pub group: Group,
    /// [`Endpoint::METHOD`].
    pub method: Method,
    /// [`Endpoint::PATH`].
    pub path: &'static str,
    /// [`Endpoint::ALIASES`].
    pub aliases: &'static [&'static str],
    /// [`Endpoint::CREDENTIAL`].
    pub credential: Credential,
    /// [`Endpoint::FILE_FIELD`].
    pub file_field: Option<&'static str>,
    /// [`Endpoint::IDEMPOTENT`].
    pub idempotent: bool,
    /// [`Endpoint::EXAMPLE`].
    pub example: &'static str,
    request: fn() -> Schema,
    response: fn() -> Schema,
    check: fn(&Sent<'_>) -> Result<(), Refused>,
    answer: fn(&serde_json::Value) -> bool,
}

/// Whether `value` reads as `T`.
fn reads_as<T: serde::de::DeserializeOwned>(value: &serde_json::Value) -> bool {
    T::deserialize(value).is_ok()
}

/// A schema with every subschema inline, so that each stands alone.
fn schema_of<T: JsonSchema>() -> Schema {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|settings| settings.inline_subschemas = true)
        .into_generator();
    let mut schema = generator.root_schema_for::<T>();
    if let Some(object) = schema.as_object_mut() {
        object.remove("$schema");
    }
    schema
}

impl Entry {
    /// The entry of the endpoint `E`.
    #[must_use]
    pub fn of<E: Endpoint>() -> Entry {
        Entry {
            name: E::NAME,
            summary: E::SUMMARY,
            group: E::GROUP,
            method: E::METHOD,
            path: E::PATH,
            aliases: E::ALIASES,
            credential: E::CREDENTIAL,
            file_field: E::FILE_FIELD,
            idempotent: E::IDEMPOTENT,
            example: E::EXAMPLE,
            request: schema_of::<E::Request>,
            response: schema_of::<E::Response>,
            check: E::check,
            answer: reads_as::<E::Response>,
        }
    }

    /// The JSON Schema of a request: of the JSON body, or of the query parameters (as an
    /// object) of a `GET` or of a call that sends a file.
    #[must_use]
    pub fn request_schema(&self) -> Schema {
        let schema = (self.request)();
        if schema.get("type").and_then(|t| t.as_str()) == Some("null") {
            // `()`: a call that sends nothing but its credential.
            return schemars::json_schema!({"type": "object", "properties": {}});
        }
        schema
    }

    /// The JSON Schema of a successful answer.
    #[must_use]
    pub fn response_schema(&self) -> Schema {
        (self.response)()
    }

    /// Checks a request with the contract's rules ([`Endpoint::check`]).
    pub fn check(&self, sent: &Sent<'_>) -> Result<(), Refused> {
        (self.check)(sent)
    }

    /// Whether `value` is this endpoint's successful answer: it reads as the response
    /// type and carries every property the answer's schema requires (so that an answer
    /// whose fields all have defaults is not taken for any object at all).
    #[must_use]
    pub fn is_answer(&self, value: &serde_json::Value) -> bool {
        let Some(object) = value.as_object() else {
            return false;
        };
        let schema = self.response_schema();
        let required: Vec<&str> = schema
            .get("required")
            .and_then(serde_json::Value::as_array)
            .map(|keys| keys.iter().filter_map(serde_json::Value::as_str).collect())
            .unwrap_or_default();
        !required.is_empty()
            && required.iter().all(|key| object.contains_key(*key))
            && (self.answer)(value)
    }

    /// The example request, parsed.
    #[must_use]
    pub fn example_value(&self) -> serde_json::Value {
        serde_json::from_str(self.example).unwrap_or(serde_json::Value::Null)
    }

    /// Where the request's fields travel: `query` (a `GET`, or a call that sends a
    /// file, whose other fields are in the query) or `json` (the body).
    #[must_use]
    pub const fn carrier(&self) -> &'static str {
        match (self.method, self.file_field) {
            (Method::Get, _) | (_, Some(_)) => "query",
            _ => "json",
        }
    }

    /// The methods, as HTTP spells them.
    #[must_use]
    pub const fn methods(&self) -> &'static [&'static str] {
        match self.method {
            Method::Get => &["GET"],
            Method::Post => &["POST"],
            Method::GetOrPost => &["GET", "POST"],
        }
    }

    /// The entry as JSON, for a client that renders it ([`EntryView`]).
    #[must_use]
    pub fn view(&self) -> EntryView {
        EntryView {
            name: self.name,
            summary: self.summary,
            group: self.group,
            group_title: self.group.title(),
            methods: self.methods(),
            path: self.path,
            aliases: self.aliases,
            credential: self.credential.parameter(),
            carrier: self.carrier(),
            file_field: self.file_field,
            idempotent: self.idempotent,
            example: self.example_value(),
            request_schema: self.request_schema(),
            response_schema: self.response_schema(),
        }
    }
}

/// An [`Entry`] as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct EntryView {
    /// A short, unique name (`kf_update`).
    pub name: &'static str,
    /// What a call does.
    pub summary: &'static str,
    /// Where WeChat's documentation puts it.
    pub group: Group,
    /// The group's title.
    pub group_title: &'static str,
    /// `["GET"]`, `["POST"]`, or both.
    pub methods: &'static [&'static str],
    /// The path.
    pub path: &'static str,
    /// Other paths that answer the same.
    pub aliases: &'static [&'static str],
    /// The query parameter that carries the credential (`access_token`,
    /// `component_access_token`), or none.
    pub credential: Option<&'static str>,
    /// `query` or `json`: where the request's fields travel.
    pub carrier: &'static str,
    /// The multipart part that carries a file, if the endpoint takes one.
    pub file_field: Option<&'static str>,
    /// Whether sending a call again after an uncertain answer does no harm.
    pub idempotent: bool,
    /// An example request.
    pub example: serde_json::Value,
    /// The JSON Schema of the request.
    pub request_schema: Schema,
    /// The JSON Schema of a successful answer.
    pub response_schema: Schema,
}

/// Every WeChat endpoint kefu serves, grouped as WeChat's documentation groups them
/// ([`Group`]'s order).
#[must_use]
pub fn entries() -> Vec<Entry> {
    let mut entries = vec![
        Entry::of::<kf_add::AddKfAccount>(),
        Entry::of::<kf_update::UpdateKfAccount>(),
        Entry::of::<kf_del::DelKfAccount>(),
        Entry::of::<kf_uploadheadimg::UploadHeadImg>(),
        Entry::of::<kf_list::GetKfList>(),
        Entry::of::<kf_online::GetOnlineKfList>(),
        Entry::of::<kf_invite::InviteWorker>(),
        Entry::of::<kf_session::CreateSession>(),
        Entry::of::<kf_session::CloseSession>(),
        Entry::of::<kf_session::GetSession>(),
        Entry::of::<kf_session::GetSessionList>(),
        Entry::of::<kf_session::GetWaitCase>(),
        Entry::of::<msgrecord::GetMsgList>(),
        Entry::of::<msgrecord::GetRecord>(),
        Entry::of::<message::SendMessage>(),
        Entry::of::<message::SendTyping>(),
        Entry::of::<token::GetToken>(),
        Entry::of::<stable_token::GetStableToken>(),
        Entry::of::<quota::GetQuota>(),
        Entry::of::<quota::ClearApiQuota>(),
        Entry::of::<quota::ClearQuota>(),
        Entry::of::<quota::ClearQuotaV2>(),
        Entry::of::<rid_get::GetRid>(),
        Entry::of::<component::ComponentToken>(),
        Entry::of::<component::AuthorizerToken>(),
    ];
    // Stable: the order above within each group.
    entries.sort_by_key(|entry| entry.group);
    entries
}

/// The entry named `name`.
#[must_use]
pub fn entry(name: &str) -> Option<Entry> {
    entries().into_iter().find(|entry| entry.name == name)
}

/// The JSON Schema of a failed call's answer (and of a mutation's success):
/// `{"errcode":N,"errmsg":"…"}`.
#[must_use]
pub fn envelope_schema() -> Schema {
    schema_of::<Status>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_is_named_once_and_its_example_passes_its_own_check() {
        let entries = entries();
        let mut names = std::collections::HashSet::new();
        for entry in &entries {
            assert!(names.insert(entry.name), "{} twice", entry.name);
            let example = entry.example_value();
            assert!(example.is_object(), "{}: {example}", entry.name);
            let (query, body): (Vec<(String, String)>, Vec<u8>) = if entry.carrier() == "query" {
                let query = example
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect();
                (query, Vec::new())
            } else {
                (Vec::new(), entry.example.as_bytes().to_vec())
            };
            let sent = Sent {
                query: &query,
                body: &body,
            };
            // rid/get's example names a rid that exists nowhere, but is well formed.
            assert_eq!(entry.check(&sent), Ok(()), "{}", entry.name);
            let request = entry.request_schema();
            assert!(
                request.get("type").is_some() || request.get("oneOf").is_some(),
                "{}: {request:?}",
                entry.name
            );
            assert!(
                entry.response_schema().get("type").is_some(),
                "{}",
                entry.name
            );
        }
        assert_eq!(entries.len(), 25);
        assert_eq!(entries[0].group, Group::KfAccounts);
        assert_eq!(entries.last().unwrap().group, Group::Messages);
    }

    #[test]
    fn a_check_says_which_rule_a_request_breaks() {
        let update = entry("kf_update").unwrap();
        let nickname = "客".repeat(17);
        let body = format!(r#"{{"kf_account":"test1@test","nickname":"{nickname}"}}"#);
        let refused = update
            .check(&Sent {
                query: &[],
                body: body.as_bytes(),
            })
            .unwrap_err();
        assert_eq!(refused.code, crate::ErrCode::IllegalNickname);
        assert!(
            refused.reason.contains("17 characters"),
            "{}",
            refused.reason
        );
        let refused = update
            .check(&Sent {
                query: &[],
                body: b"{",
            })
            .unwrap_err();
        assert_eq!(refused.code, crate::ErrCode::DataFormatError);
        let token = entry("token").unwrap();
        let refused = token
            .check(&Sent {
                query: &[("grant_type".to_owned(), "client_credential".to_owned())],
                body: &[],
            })
            .unwrap_err();
        assert_eq!(refused.code, crate::ErrCode::AppidMissing);
    }

    #[test]
    fn schemas_carry_the_contracts_rules() {
        let update = entry("kf_update").unwrap().request_schema();
        let text = serde_json::to_string(&update).unwrap();
        assert!(text.contains(crate::schema::KF_ACCOUNT_PATTERN), "{text}");
        assert!(text.contains("\"maxLength\":16"), "{text}");
        let list = entry("kf_list").unwrap().response_schema();
        let text = serde_json::to_string(&list).unwrap();
        assert!(text.contains("kf_list") && text.contains("kf_id"), "{text}");
    }

    #[test]
    fn an_answer_without_errcode_is_known_by_its_required_fields() {
        let wait = entry("kf_wait_case").unwrap();
        assert!(wait.is_answer(&serde_json::json!({"count": 0, "waitcaselist": []})));
        assert!(!wait.is_answer(&serde_json::json!({"count": 0})));
        assert!(!wait.is_answer(&serde_json::json!({"count": "0", "waitcaselist": []})));
        assert!(!wait.is_answer(&serde_json::json!([])));
        let list = entry("kf_list").unwrap();
        assert!(list.is_answer(&serde_json::json!({"kf_list": []})));
        assert!(!list.is_answer(&serde_json::json!({})));
        // An answer that is the envelope alone: nothing is required, so no object is it.
        let update = entry("kf_update").unwrap();
        assert!(!update.is_answer(&serde_json::json!({})));
    }
}
