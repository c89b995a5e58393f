//! The client: configuration, token handling, and one typed method per endpoint.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kefu_api::endpoints::KfProfileBody;
use kefu_api::endpoints::component::{AuthorizerAccessToken, AuthorizerToken};
use kefu_api::endpoints::kf_add::{self, AddKfAccount};
use kefu_api::endpoints::kf_del::{DelKfAccount, Target};
use kefu_api::endpoints::kf_invite::{self, InviteWorker};
use kefu_api::endpoints::kf_list::{GetKfList, KfInfo};
use kefu_api::endpoints::kf_online::{GetOnlineKfList, KfOnline};
use kefu_api::endpoints::kf_session::{
    CloseSession, CreateSession, GetSession, GetSessionList, GetWaitCase, KfAccountQuery,
    OpenidQuery, Session, SessionItem, SessionRequest, WaitCase,
};
use kefu_api::endpoints::kf_update::{self, UpdateKfAccount};
use kefu_api::endpoints::kf_uploadheadimg::{self, UploadHeadImg};
use kefu_api::endpoints::message::{
    AsAccount, Content, Message, SendMessage, SendTyping, Text, TypingCommand, TypingRequest,
};
use kefu_api::endpoints::msgrecord::{self, GetMsgList, MsgList, MsgListRequest, Record};
use kefu_api::endpoints::stable_token::GetStableToken;
use kefu_api::endpoints::token::{AccessToken, GRANT_TYPE, GetToken};
use kefu_api::{
    Credential, Endpoint, ErrCode, KfAccount, Method, Openid, Outgoing, OutgoingBody, Secret,
    WechatId,
};
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::error::{Error, Result};
use crate::retry::RetryPolicy;
use crate::token::{CachedToken, MemoryTokenStore, TokenStore, unix_now};

/// WeChat's API host.
pub const WECHAT_BASE_URL: &str = "https://api.weixin.qq.com";

/// How the client gets its access_token. Its secrets show as `<redacted>` in `Debug`.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// An app's appid and AppSecret: the client fetches and refreshes tokens.
    App {
        /// The appid.
        appid: String,
        /// The AppSecret.
        secret: Secret,
    },
    /// A token managed elsewhere (e.g. by a central token service): used as is, never
    /// refreshed; a token error is returned to the caller.
    Token(Secret),
    /// A third-party platform acting for an app: authorizer tokens are fetched with the
    /// platform's component_access_token and the authorization's refresh token (which
    /// the client keeps up to date as WeChat rotates it).
    Authorizer {
        /// The platform's appid.
        component_appid: String,
        /// The platform's current component_access_token.
        component_access_token: Secret,
        /// The authorizing app.
        authorizer_appid: String,
        /// The authorization's refresh token.
        refresh_token: Secret,
    },
}

/// Builds a [`Client`].
#[must_use]
#[derive(Debug)]
pub struct ClientBuilder {
    base_url: String,
    timeout: Duration,
    connect_timeout: Duration,
    user_agent: String,
    credentials: Option<Credentials>,
    store: Option<Arc<dyn TokenStore>>,
    refresh_margin: Duration,
    stable: bool,
    retry: RetryPolicy,
}

impl fmt::Debug for dyn TokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenStore")
    }
}

impl Default for ClientBuilder {
    fn default() -> ClientBuilder {
        ClientBuilder {
            base_url: WECHAT_BASE_URL.to_owned(),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            user_agent: concat!("kefu-client/", env!("CARGO_PKG_VERSION")).to_owned(),
            credentials: None,
            store: None,
            refresh_margin: Duration::from_secs(300),
            stable: false,
            retry: RetryPolicy::default(),
        }
    }
}

impl ClientBuilder {
    /// The API's base URL: WeChat's by default, or a kefu server's
    /// (`http://127.0.0.1:8080`).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into().trim_end_matches('/').to_owned();
        self
    }

    /// The whole-request timeout (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The connect timeout (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The `User-Agent` header.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// An app's appid and AppSecret.
    pub fn app(mut self, appid: impl Into<String>, secret: impl Into<String>) -> Self {
        self.credentials = Some(Credentials::App {
            appid: appid.into(),
            secret: Secret::new(secret),
        });
        self
    }

    /// Any [`Credentials`].
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Where tokens are cached (default: this process's memory). Share one store —
    /// e.g. a `RedisTokenStore` (feature `redis`) — between processes that use
    /// the same app, so they refresh once between them.
    pub fn token_store(mut self, store: Arc<dyn TokenStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Refresh this long before the token expires (default 300 s).
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// Use `/cgi-bin/stable_token` instead of `/cgi-bin/token` (default off).
    pub fn stable_token(mut self, stable: bool) -> Self {
        self.stable = stable;
        self
    }

    /// How `-1` and transport failures are retried on idempotent calls.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<Client> {
        let credentials = self
            .credentials
            .ok_or_else(|| Error::config("no credentials: call .app(appid, secret)"))?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config()?)
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .user_agent(self.user_agent)
            .build()
            .map_err(Error::transport)?;
        // The key names the API host too: a kefu token and a WeChat token of one appid
        // must not overwrite each other in a shared store.
        let host = self
            .base_url
            .split("://")
            .nth(1)
            .unwrap_or(&self.base_url)
            .to_owned();
        let key = match &credentials {
            Credentials::App { appid, .. } => {
                format!(
                    "{host}:{appid}:{}",
                    if self.stable { "stable" } else { "token" }
                )
            }
            Credentials::Token(_) => String::new(),
            Credentials::Authorizer {
                component_appid,
                authorizer_appid,
                ..
            } => {
                format!("{host}:{authorizer_appid}:authorizer:{component_appid}")
            }
        };
        let (component_token, refresh_token) = match &credentials {
            Credentials::Authorizer {
                component_access_token,
                refresh_token,
                ..
            } => (
                Some(Mutex::new(component_access_token.expose().to_owned())),
                Some(Mutex::new(refresh_token.expose().to_owned())),
            ),
            _ => (None, None),
        };
        let lock_ttl = self.timeout + self.connect_timeout + Duration::from_secs(5);
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base: self.base_url,
                credentials,
                store: self
                    .store
                    .unwrap_or_else(|| Arc::new(MemoryTokenStore::new())),
                key,
                margin: i64::try_from(self.refresh_margin.as_secs()).unwrap_or(i64::MAX),
                stable: self.stable,
                retry: self.retry,
                refreshing: tokio::sync::Mutex::new(()),
                last_failure: Mutex::new(None),
                refused: Mutex::new(None),
                component_token,
                refresh_token,
                lock_ttl,
                refresh_wait: lock_ttl + Duration::from_secs(5),
            }),
        })
    }
}

/// A client of WeChat's customer service account API (or of kefu). Cheap to clone:
/// clones share the connection pool and the token.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: String,
    credentials: Credentials,
    store: Arc<dyn TokenStore>,
    key: String,
    margin: i64,
    stable: bool,
    retry: RetryPolicy,
    /// One refresh at a time in this process.
    refreshing: tokio::sync::Mutex<()>,
    /// The last failed refresh, handed to the callers that waited for it.
    last_failure: Mutex<Option<(std::time::Instant, ErrCode, String)>>,
    /// The token a call just had refused (a stable token coming back unchanged is then
    /// force-refreshed).
    refused: Mutex<Option<String>>,
    /// For authorizer credentials: the current component_access_token and refresh token.
    component_token: Option<Mutex<String>>,
    refresh_token: Option<Mutex<String>>,
    /// How long a refresh lock lasts if its holder dies, and how long to wait for
    /// another process's refresh: both longer than one fetch can take.
    lock_ttl: Duration,
    refresh_wait: Duration,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Releases a refresh lock, also when the refreshing call is cancelled.
struct LockGuard {
    store: Arc<dyn TokenStore>,
    key: String,
    id: Option<String>,
}

impl LockGuard {
    async fn release(mut self) {
        if let Some(id) = self.id.take()
            && let Err(error) = self.store.unlock(&self.key, &id).await
        {
            // The lock expires by itself; the token is already stored.
            tracing::warn!(%error, "could not release the refresh lock");
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(id) = self.id.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let (store, key) = (Arc::clone(&self.store), std::mem::take(&mut self.key));
            runtime.spawn(async move {
                let _ = store.unlock(&key, &id).await;
            });
        }
    }
}

/// The TLS setup of the SDK's connections (and of anything else that calls WeChat's
/// way, such as kefu's pushes to a developer's server): rustls with ring, and the
/// platform's certificate verifier (its root store). Chosen for each client alone: the
/// process's default TLS provider, which the application may have chosen for itself,
/// is neither read nor set.
pub fn tls_config() -> Result<rustls::ClientConfig> {
    let tls_error = |e: rustls::Error| Error::config(format!("TLS setup: {e}"));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls_platform_verifier::Verifier::new(Arc::clone(&provider)).map_err(tls_error)?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    // WeChat's API and kefu speak HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base)
            .field("credentials", &self.inner.credentials)
            .field("stable_token", &self.inner.stable)
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

/// A failed refresh is handed to the callers that waited for it for this long.
const FAILURE_SHARED_FOR: Duration = Duration::from_secs(1);

impl Client {
    /// A builder, aimed at WeChat by default.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.inner.base)
    }

    /// Reads an answer: a non-zero errcode is an [`Error`], anything else a `T`.
    async fn decode<T: DeserializeOwned>(response: reqwest::Response) -> Result<T> {
        let status = response.status();
        if !status.is_success() {
            return Err(Error::status(status));
        }
        let bytes = response.bytes().await.map_err(Error::transport)?;
        if let Some(failure) = kefu_api::envelope::error_in(&bytes) {
            return Err(Error::api(failure.errcode, failure.errmsg));
        }
        serde_json::from_slice(&bytes).map_err(|e| Error::decode(e.to_string()))
    }

    /// A fresh token from `/cgi-bin/token` (not cached: use [`Client::access_token`]).
    #[tracing::instrument(skip(self), fields(path = GetToken::PATH))]
    pub async fn fetch_token(&self) -> Result<AccessToken> {
        let Credentials::App { appid, secret } = &self.inner.credentials else {
            return Err(Error::config("fetching a token needs an appid and secret"));
        };
        let request = kefu_api::endpoints::token::Request {
            grant_type: Some(GRANT_TYPE.to_owned()),
            appid: Some(appid.clone()),
            secret: Some(secret.clone()),
        };
        // One attempt, not through `send`: a token fetch is what `send` waits for.
        self.attempt::<GetToken>(&GetToken::outgoing(&request), None)
            .await
    }

    /// A stable token from `/cgi-bin/stable_token` (not cached).
    #[tracing::instrument(skip(self), fields(path = GetStableToken::PATH))]
    pub async fn fetch_stable_token(&self, force_refresh: bool) -> Result<AccessToken> {
        let Credentials::App { appid, secret } = &self.inner.credentials else {
            return Err(Error::config("fetching a token needs an appid and secret"));
        };
        let request = kefu_api::endpoints::stable_token::Request {
            grant_type: Some(GRANT_TYPE.to_owned()),
            appid: Some(appid.clone()),
            secret: Some(secret.clone()),
            force_refresh: Some(force_refresh),
        };
        self.attempt::<GetStableToken>(&GetStableToken::outgoing(&request), None)
            .await
    }

    fn refresh_key(&self) -> String {
        format!("{}:refresh", self.inner.key)
    }

    async fn fetch_authorizer_token(&self) -> Result<AccessToken> {
        let Credentials::Authorizer {
            component_appid,
            authorizer_appid,
            ..
        } = &self.inner.credentials
        else {
            return Err(Error::config("not an authorizer client"));
        };
        let (Some(component_token), Some(refresh)) =
            (&self.inner.component_token, &self.inner.refresh_token)
        else {
            return Err(Error::config("no refresh token"));
        };
        // A refresh token rotated by another process sharing the store wins over ours.
        let stored = self
            .inner
            .store
            .get(&self.refresh_key())
            .await?
            .map(|t| t.token);
        let refresh_token = stored.unwrap_or_else(|| lock(refresh).clone());
        let request = kefu_api::endpoints::component::AuthorizerTokenRequest {
            component_appid: Some(component_appid.clone()),
            authorizer_appid: Some(authorizer_appid.clone()),
            authorizer_refresh_token: Some(refresh_token.into()),
        };
        let component_access_token = lock(component_token).clone();
        let outgoing = AuthorizerToken::outgoing(&request);
        let answer: AuthorizerAccessToken = self
            .attempt::<AuthorizerToken>(&outgoing, Some(&component_access_token))
            .await?;
        *lock(refresh) = answer.authorizer_refresh_token.expose().to_owned();
        let keep = unix_now().saturating_add(30 * 86_400);
        let rotated = CachedToken {
            token: answer.authorizer_refresh_token.into_inner(),
            expires_at: keep,
            refresh_at: keep,
        };
        self.inner.store.put(&self.refresh_key(), &rotated).await?;
        Ok(AccessToken {
            access_token: answer.authorizer_access_token,
            expires_in: answer.expires_in,
        })
    }

    /// The authorization's current refresh token (WeChat rotates it; persist it to
    /// build a client after a restart).
    #[must_use]
    pub fn authorizer_refresh_token(&self) -> Option<String> {
        self.inner
            .refresh_token
            .as_ref()
            .map(|refresh| lock(refresh).clone())
    }

    /// Replaces the platform's component_access_token (it expires every 2 hours).
    pub fn set_component_access_token(&self, token: impl Into<String>) {
        if let Some(component_token) = &self.inner.component_token {
            *lock(component_token) = token.into();
        }
    }

    async fn fetch(&self) -> Result<CachedToken> {
        let fetched = match &self.inner.credentials {
            Credentials::Authorizer { .. } => self.fetch_authorizer_token().await?,
            _ if self.inner.stable => {
                let stable = self.fetch_stable_token(false).await?;
                // The platform may hand back the very token it just refused.
                let refused = lock(&self.inner.refused).take();
                if refused.as_deref() == Some(stable.access_token.expose()) {
                    self.fetch_stable_token(true).await?
                } else {
                    stable
                }
            }
            _ => self.fetch_token().await?,
        };
        let expires_in = i64::try_from(fetched.expires_in).unwrap_or(i64::MAX);
        let now = unix_now();
        // Refresh a margin before expiry, but never so early that a short-lived token is
        // always stale.
        let margin = self.inner.margin.min(expires_in / 2);
        Ok(CachedToken {
            token: fetched.access_token.into_inner(),
            expires_at: now.saturating_add(expires_in),
            refresh_at: now.saturating_add(expires_in - margin),
        })
    }

    fn fresh(token: Option<CachedToken>) -> Option<String> {
        token.filter(|t| unix_now() < t.refresh_at).map(|t| t.token)
    }

    /// The current access_token: from the store while it has more than the refresh
    /// margin left; otherwise fetched — once, however many callers ask at the same
    /// time, in this process and (with a shared store) across processes.
    pub async fn access_token(&self) -> Result<String> {
        if let Credentials::Token(token) = &self.inner.credentials {
            return Ok(token.expose().to_owned());
        }
        let (store, key) = (&self.inner.store, self.inner.key.as_str());
        if let Some(token) = Self::fresh(store.get(key).await?) {
            return Ok(token);
        }
        self.refresh()
            .instrument(tracing::info_span!("token_refresh"))
            .await
    }

    async fn refresh(&self) -> Result<String> {
        let (store, key) = (&self.inner.store, self.inner.key.as_str());
        let _one_here = self.inner.refreshing.lock().await;
        if let Some((at, code, errmsg)) = lock(&self.inner.last_failure).clone()
            && at.elapsed() < FAILURE_SHARED_FOR
        {
            // The refresh this caller waited for failed: the same answer, no new request.
            return Err(Error::api(code, errmsg));
        }
        let deadline = tokio::time::Instant::now() + self.inner.refresh_wait;
        loop {
            if let Some(token) = Self::fresh(store.get(key).await?) {
                return Ok(token);
            }
            if let Some(id) = store.try_lock(key, self.inner.lock_ttl).await? {
                let guard = LockGuard {
                    store: Arc::clone(store),
                    key: key.to_owned(),
                    id: Some(id),
                };
                // Look again under the lock: another process may have just refreshed.
                let result = match Self::fresh(store.get(key).await?) {
                    Some(token) => Ok(token),
                    None => match self.fetch().await {
                        Ok(fetched) => store.put(key, &fetched).await.map(|()| fetched.token),
                        Err(error) => {
                            if let (Some(code), Some(errmsg)) = (error.code(), error.errmsg()) {
                                *lock(&self.inner.last_failure) =
                                    Some((std::time::Instant::now(), code, errmsg.to_owned()));
                            }
                            Err(error)
                        }
                    },
                };
                guard.release().await;
                return result;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::store(
                    "timed out waiting for another process to refresh the token",
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Sends one call of the endpoint `E`: its request as the contract says it
    /// travels ([`Endpoint::outgoing`]), with the credential it takes, decoded into its
    /// response (a non-zero errcode is an [`Error`]).
    ///
    /// A call with an `access_token` uses the current token; on a token error
    /// (40001/40014/42001) it invalidates that token (only if it is still the cached
    /// one) and is sent once more with a fresh one; on `-1` or a transport failure, a
    /// call of an [`Endpoint::IDEMPOTENT`] endpoint is retried under the retry policy,
    /// and any other is not (it may have been applied: [`Error::was_retried`] tells).
    /// The typed methods ([`Client::kf_add`] …) check their inputs first and call
    /// this.
    pub async fn send<E: Endpoint>(&self, request: &E::Request) -> Result<E::Response> {
        let outgoing = E::outgoing(request);
        let span = tracing::info_span!(
            "wechat_call",
            path = E::PATH,
            retries = tracing::field::Empty,
            errcode = tracing::field::Empty
        );
        async move {
            let mut token_retried = false;
            let mut retries = 0;
            loop {
                let token = match E::CREDENTIAL {
                    Credential::None => None,
                    Credential::AccessToken => Some(self.access_token().await?),
                    Credential::ComponentAccessToken => {
                        let Some(component_token) = &self.inner.component_token else {
                            return Err(Error::config(
                                "this call needs a component_access_token: build the client \
                                    with Credentials::Authorizer",
                            ));
                        };
                        Some(lock(component_token).clone())
                    }
                };
                let error = match self.attempt::<E>(&outgoing, token.as_deref()).await {
                    Ok(value) => return Ok(value),
                    Err(error) => error.after_retries(retries > 0),
                };
                if let Some(code) = error.code() {
                    tracing::Span::current().record("errcode", code.code());
                }
                let refreshable = E::CREDENTIAL == Credential::AccessToken
                    && !matches!(self.inner.credentials, Credentials::Token(_));
                if let (true, false, Some(token)) =
                    (error.is_token_error() && refreshable, token_retried, &token)
                {
                    token_retried = true;
                    *lock(&self.inner.refused) = Some(token.clone());
                    if let Err(store_error) =
                        self.inner.store.invalidate(&self.inner.key, token).await
                    {
                        tracing::warn!(%store_error, "could not invalidate the refused token");
                        return Err(error);
                    }
                    tracing::info!(errcode = ?error.code(), "token refused; fetching a new one");
                    continue;
                }
                if error.is_uncertain() && E::IDEMPOTENT && retries < self.inner.retry.max_retries {
                    retries += 1;
                    tracing::Span::current().record("retries", retries);
                    tracing::warn!(%error, retries, "retrying");
                    tokio::time::sleep(self.inner.retry.backoff(retries)).await;
                    continue;
                }
                return Err(error);
            }
        }
        .instrument(span)
        .await
    }

    /// One attempt at a call of `E`: `outgoing` with `credential` in the query as
    /// `E` names it.
    async fn attempt<E: Endpoint>(
        &self,
        outgoing: &Outgoing,
        credential: Option<&str>,
    ) -> Result<E::Response> {
        let method = match outgoing.method {
            Method::Get => reqwest::Method::GET,
            Method::Post | Method::GetOrPost => reqwest::Method::POST,
        };
        let mut builder = self.inner.http.request(method, self.url(E::PATH));
        if !outgoing.query.is_empty() {
            builder = builder.query(&outgoing.query);
        }
        if let (Some(name), Some(value)) = (E::CREDENTIAL.parameter(), credential) {
            builder = builder.query(&[(name, value)]);
        }
        builder = match &outgoing.body {
            OutgoingBody::Empty => builder,
            OutgoingBody::Json(bytes) => builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes.clone()),
            OutgoingBody::File {
                field,
                file_name,
                content_type,
                bytes,
            } => {
                let part = reqwest::multipart::Part::bytes(bytes.clone())
                    .file_name(*file_name)
                    .mime_str(content_type)
                    .map_err(|e| Error::config(format!("content type {content_type}: {e}")))?;
                builder.multipart(reqwest::multipart::Form::new().part(*field, part))
            }
        };
        match builder.send().await {
            Ok(response) => Self::decode(response).await,
            Err(error) => Err(Error::transport(error)),
        }
    }

    /// `kfaccount/add`. Checked before sending: 65404 for an illegal account, 65403
    /// for an illegal nickname. Never retried on `-1` (it may have been applied; check
    /// with [`Client::kf_list`]).
    pub async fn kf_add(&self, kf_account: &str, nickname: &str) -> Result<()> {
        let profile = profile(kf_account, nickname, kf_add::BAD_ACCOUNT)?;
        self.send::<AddKfAccount>(&profile).await.map(drop)
    }

    /// `kfaccount/update`. Checked before sending: 65401, 65403.
    pub async fn kf_update(&self, kf_account: &str, nickname: &str) -> Result<()> {
        let profile = profile(kf_account, nickname, kf_update::BAD_ACCOUNT)?;
        self.send::<UpdateKfAccount>(&profile).await.map(drop)
    }

    /// `kfaccount/del` (POST with a JSON body). Checked before sending: 65401. Retried
    /// after `-1`; a retry that finds the account gone counts as done.
    pub async fn kf_delete(&self, kf_account: &str) -> Result<()> {
        let account = KfAccount::parse(kf_account).map_err(Error::validation)?;
        match self.send::<DelKfAccount>(&Target::Account(account)).await {
            Ok(_) => Ok(()),
            // An earlier attempt answered -1 (or was lost) but deleted the account.
            Err(error)
                if error.was_retried() && error.code() == Some(ErrCode::InvalidKfAccount) =>
            {
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// `kfaccount/uploadheadimg`. Checked before sending: 65401, 40005 (not a JPEG by its
    /// bytes), 40009 (over 5 MiB).
    pub async fn kf_upload_headimg(&self, kf_account: &str, jpeg: Vec<u8>) -> Result<()> {
        let kf_account = KfAccount::parse(kf_account).map_err(Error::validation)?;
        if !kf_uploadheadimg::is_jpeg(&jpeg) {
            return Err(Error::validation(ErrCode::InvalidFileType));
        }
        if jpeg.len() > kf_uploadheadimg::MAX_IMAGE_BYTES {
            return Err(Error::validation(ErrCode::InvalidImageSize));
        }
        let request = kf_uploadheadimg::Request {
            kf_account,
            media: jpeg,
        };
        self.send::<UploadHeadImg>(&request).await.map(drop)
    }

    /// `getkflist`.
    pub async fn kf_list(&self) -> Result<Vec<KfInfo>> {
        Ok(self.send::<GetKfList>(&()).await?.kf_list)
    }

    /// `getonlinekflist`.
    pub async fn kf_online_list(&self) -> Result<Vec<KfOnline>> {
        Ok(self.send::<GetOnlineKfList>(&()).await?.kf_online_list)
    }

    /// `kfaccount/inviteworker`. Checked before sending: 65401, 65409. Never retried
    /// on `-1`.
    pub async fn kf_invite(&self, kf_account: &str, invite_wx: &str) -> Result<()> {
        let account = KfAccount::parse(kf_account).map_err(Error::validation)?;
        let invite_wx = WechatId::parse(invite_wx).map_err(Error::validation)?;
        let request = kf_invite::Request {
            kf_account: account,
            invite_wx,
        };
        self.send::<InviteWorker>(&request).await.map(drop)
    }

    /// `kfsession/create`: the account serves the fan. Checked before sending: 40003,
    /// 65401. Retried after `-1` (a second create by the same account answers 0).
    pub async fn kf_session_create(&self, kf_account: &str, openid: &str) -> Result<()> {
        let request = session_request(kf_account, openid)?;
        self.send::<CreateSession>(&request).await.map(drop)
    }

    /// `kfsession/close`. Checked before sending: 40003, 65401. Never retried on `-1`.
    pub async fn kf_session_close(&self, kf_account: &str, openid: &str) -> Result<()> {
        let request = session_request(kf_account, openid)?;
        self.send::<CloseSession>(&request).await.map(drop)
    }

    /// `kfsession/getsession`: who serves the fan (`kf_account` is `""` when nobody).
    pub async fn kf_session(&self, openid: &str) -> Result<Session> {
        let openid = Openid::parse(openid).map_err(Error::validation)?;
        self.send::<GetSession>(&OpenidQuery { openid }).await
    }

    /// `kfsession/getsessionlist`: the fans an account serves.
    pub async fn kf_session_list(&self, kf_account: &str) -> Result<Vec<SessionItem>> {
        let kf_account = KfAccount::parse(kf_account).map_err(Error::validation)?;
        Ok(self
            .send::<GetSessionList>(&KfAccountQuery { kf_account })
            .await?
            .sessionlist)
    }

    /// `kfsession/getwaitcase`: the waiting fans (the first 100) and how many wait.
    pub async fn kf_wait_case(&self) -> Result<WaitCase> {
        self.send::<GetWaitCase>(&()).await
    }

    /// `message/custom/send`. Checked before sending with WeChat's rules (47001, 44004,
    /// 45008, 40003, 65401). Never retried on `-1`: the fan may have it already, and a
    /// retry would take a second message of the window.
    pub async fn send_message(&self, message: &Message) -> Result<()> {
        let body = serde_json::to_vec(message).map_err(|e| Error::decode(e.to_string()))?;
        Message::check(&body).map_err(|refused| Error::validation(refused.code))?;
        self.send::<SendMessage>(message).await.map(drop)
    }

    /// A text to the fan, as `kf_account` when given (`customservice.kf_account`).
    pub async fn send_text(
        &self,
        openid: &str,
        text: &str,
        kf_account: Option<&str>,
    ) -> Result<()> {
        let message = Message {
            touser: Openid::parse(openid).map_err(Error::validation)?,
            content: Content::Text {
                text: Text {
                    content: text.to_owned(),
                },
            },
            customservice: kf_account
                .map(|account| KfAccount::parse(account).map(|kf_account| AsAccount { kf_account }))
                .transpose()
                .map_err(Error::validation)?,
        };
        self.send_message(&message).await
    }

    /// `message/custom/typing`: `Typing` when `typing`, else `CancelTyping`.
    pub async fn typing(&self, openid: &str, typing: bool) -> Result<()> {
        let request = TypingRequest {
            touser: Openid::parse(openid).map_err(Error::validation)?,
            command: if typing {
                TypingCommand::Typing
            } else {
                TypingCommand::CancelTyping
            },
        };
        self.send::<SendTyping>(&request).await.map(drop)
    }

    /// `msgrecord/getmsglist`: one page of the history from `msgid` (1 for the first);
    /// the answer's `msgid` is what the next page asks for. Checked before sending:
    /// 65416, 65417.
    pub async fn msg_list(
        &self,
        starttime: i64,
        endtime: i64,
        msgid: i64,
        number: i64,
    ) -> Result<MsgList> {
        let request = MsgListRequest {
            starttime,
            endtime,
            msgid,
            number,
        };
        request
            .check()
            .map_err(|refused| Error::validation(refused.code))?;
        self.send::<GetMsgList>(&request).await
    }

    /// Every record of `[starttime, endtime]` (at most 24 hours), paged through with
    /// `msgid` 10,000 at a time.
    pub async fn msg_records(&self, starttime: i64, endtime: i64) -> Result<Vec<Record>> {
        let mut records = Vec::new();
        let mut msgid = 1;
        loop {
            let page = self
                .msg_list(starttime, endtime, msgid, msgrecord::MAX_NUMBER)
                .await?;
            if page.recordlist.is_empty() {
                return Ok(records);
            }
            msgid = page.msgid;
            records.extend(page.recordlist);
        }
    }
}

fn session_request(kf_account: &str, openid: &str) -> Result<SessionRequest> {
    Ok(SessionRequest {
        kf_account: KfAccount::parse(kf_account).map_err(Error::validation)?,
        openid: Openid::parse(openid).map_err(Error::validation)?,
    })
}

fn profile(
    kf_account: &str,
    nickname: &str,
    bad_account: ErrCode,
) -> Result<kefu_api::endpoints::KfProfile> {
    let body = KfProfileBody {
        kf_account: Some(kf_account.to_owned()),
        nickname: Some(nickname.to_owned()),
    };
    // The app's own suffix is the server's to check.
    body.validate(bad_account, |_| true)
        .map_err(Error::validation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_show_no_secret_in_debug() {
        let shown = format!(
            "{:?} {:?}",
            Credentials::App {
                appid: "wx0123456789abcdef".to_owned(),
                secret: "app-secret-0123456789".into(),
            },
            Credentials::Authorizer {
                component_appid: "wx00000000000000c3".to_owned(),
                component_access_token: "component-token-value".into(),
                authorizer_appid: "wx0123456789abcdef".to_owned(),
                refresh_token: "refresh-token-value".into(),
            }
        );
        assert!(shown.contains("wx0123456789abcdef"), "{shown}");
        for secret in ["app-secret", "component-token-value", "refresh-token-value"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn building_a_client_leaves_the_process_tls_provider_alone() {
        let client = Client::builder()
            .app("wx0123456789abcdef", "secret-0123456789")
            .base_url("https://api.weixin.qq.com")
            .build();
        assert!(client.is_ok(), "{client:?}");
        assert!(
            rustls::crypto::CryptoProvider::get_default().is_none(),
            "the client chose a process-wide TLS provider"
        );
    }
}
