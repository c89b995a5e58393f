//! The web console (README, "Console"): pages under `/kefu/console/`, every asset
//! inside the binary. Signing in with the admin token makes a session cookie
//! (`HttpOnly`, `SameSite=Strict`), kept in this instance's memory; the admin surface
//! accepts it in place of the bearer token, and a state-changing call made with it
//! must carry the session's CSRF token. Any state-changing request from another site
//! is refused.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kefu_store::Digest;

use crate::secrets::{digest, matches, new_admin_token};
use crate::state::AppState;
use crate::wechat::request::{ReadBody, read_body};

/// The console's base path.
pub const BASE: &str = kefu_api::admin::CONSOLE;
/// The session cookie's name.
pub const COOKIE: &str = "kefu_console";
/// The header a state-changing call made with a session carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// The most sessions kept; a new one past it ends the oldest.
pub const MAX_SESSIONS: usize = 32;
/// The largest sign-in form read.
const MAX_FORM: usize = 4096;

const SHELL: &str = include_str!("assets/shell.html");
const SIGNIN: &str = include_str!("assets/signin.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

#[derive(Debug)]
struct Session {
    id: Digest,
    csrf: String,
    created: Instant,
}

/// The console's sessions, in this instance's memory.
#[derive(Debug, Default)]
pub struct Sessions(Mutex<Vec<Session>>);

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Session>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens a session: its cookie value and its CSRF token.
    fn open(&self) -> (String, String) {
        let (id, csrf) = (new_admin_token(), new_admin_token());
        let mut sessions = self.lock();
        sessions.retain(|s| s.created.elapsed() < SESSION_TTL);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .enumerate()
                .min_by_key(|(_, s)| s.created)
                .map(|(at, _)| at)
        {
            sessions.remove(oldest);
        }
        sessions.push(Session {
            id: digest(&id),
            csrf: csrf.clone(),
            created: Instant::now(),
        });
        (id, csrf)
    }

    /// The CSRF token of the live session the request's cookie names.
    #[must_use]
    pub fn csrf_of(&self, headers: &HeaderMap) -> Option<String> {
        let id = digest(cookie(headers)?);
        let sessions = self.lock();
        sessions
            .iter()
            .find(|s| s.created.elapsed() < SESSION_TTL && same(&id, &s.id))
            .map(|s| s.csrf.clone())
    }

    /// The live session the request's cookie names, by its digest (see
    /// [`Sessions::is_live`]).
    #[must_use]
    pub fn session_of(&self, headers: &HeaderMap) -> Option<Digest> {
        let id = digest(cookie(headers)?);
        self.is_live(&id).then_some(id)
    }

    /// Whether the session `id` (from [`Sessions::session_of`]) is live: neither signed
    /// out, nor expired, nor ended by a newer one.
    #[must_use]
    pub fn is_live(&self, id: &Digest) -> bool {
        self.lock()
            .iter()
            .any(|s| s.created.elapsed() < SESSION_TTL && same(id, &s.id))
    }

    fn close(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers).map(digest) {
            self.lock().retain(|s| !same(&id, &s.id));
        }
    }
}

/// Whether two digests are equal, looking at every byte.
fn same(a: &Digest, b: &Digest) -> bool {
    a.iter().zip(b).fold(0_u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The session cookie's value, if the request has one.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// Whether a request comes from another site. A browser that says where a request
/// comes from (`Sec-Fetch-Site`) is believed: `same-origin` and `none` (typed by the
/// user) are this site, anything else is not. Otherwise an `Origin`, when there is one,
/// must name the host the request was sent to (the `Host` header, or the authority of
/// the request's URI, which is where HTTP/2 carries it).
#[must_use]
pub fn cross_site(headers: &HeaderMap, uri: &axum::http::Uri) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return !matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(axum::http::uri::Authority::as_str));
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest.trim_end_matches('/'));
    match (origin_host, host) {
        (Some(origin_host), Some(host)) => !origin_host.eq_ignore_ascii_case(host),
        _ => true,
    }
}

/// Whether a method changes state (every method but `GET`, `HEAD` and `OPTIONS`).
#[must_use]
pub fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn forbidden(message: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message.to_owned(),
    )
        .into_response()
}

fn see_other(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// A page: HTML, never cached, never framed, only this server's scripts.
fn page(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn signin_page(status: StatusCode, message: &str) -> Response {
    let shown = if message.is_empty() {
        String::new()
    } else {
        format!(
            r#"<p class="error" role="alert" data-testid="signin-error">{}</p>"#,
            escape(message)
        )
    };
    page(status, SIGNIN.replace("{{MESSAGE}}", &shown))
}

/// `GET /kefu/console/signin`.
async fn signin_form(State(state): State<AppState>, request: Request) -> Response {
    if state.sessions.csrf_of(request.headers()).is_some() {
        return see_other(BASE);
    }
    signin_page(StatusCode::OK, "")
}

/// `POST /kefu/console/signin`: `token=<admin token>` opens a session.
async fn signin(State(state): State<AppState>, request: Request) -> Response {
    if cross_site(request.headers(), request.uri()) {
        return forbidden("a sign-in from another site is refused");
    }
    let (parts, body) = request.into_parts();
    let read = read_body(&parts.headers, body, MAX_FORM, state.limits.body_timeout).await;
    let ReadBody::Whole(bytes) = read.body else {
        return signin_page(StatusCode::BAD_REQUEST, "The form could not be read.");
    };
    let token = form_urlencoded::parse(&bytes)
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value.trim().to_owned())
        .unwrap_or_default();
    if token.is_empty() {
        return signin_page(
            StatusCode::UNAUTHORIZED,
            "Enter the admin token (kefu serve prints it at startup).",
        );
    }
    if !matches(&token, &state.admin_token) {
        return signin_page(
            StatusCode::UNAUTHORIZED,
            "That is not this server's admin token.",
        );
    }
    let (id, _) = state.sessions.open();
    let secure = if parts.extensions.get::<crate::wechat::Https>().is_some() {
        "; Secure"
    } else {
        ""
    };
    let mut response = see_other(BASE);
    let cookie = format!(
        "{COOKIE}={id}; Path=/kefu; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        SESSION_TTL.as_secs()
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `POST /kefu/console/signout`: ends the session (the form carries its CSRF token).
async fn signout(State(state): State<AppState>, request: Request) -> Response {
    if cross_site(request.headers(), request.uri()) {
        return forbidden("a sign-out from another site is refused");
    }
    let (parts, body) = request.into_parts();
    let Some(csrf) = state.sessions.csrf_of(&parts.headers) else {
        return see_other(&format!("{BASE}signin"));
    };
    let read = read_body(&parts.headers, body, MAX_FORM, state.limits.body_timeout).await;
    let sent = match read.body {
        ReadBody::Whole(bytes) => form_urlencoded::parse(&bytes)
            .find(|(name, _)| name == "csrf")
            .map(|(_, value)| value.into_owned()),
        _ => None,
    };
    if sent.as_deref() != Some(csrf.as_str()) {
        return forbidden("the sign-out form's CSRF token is missing or wrong");
    }
    state.sessions.close(&parts.headers);
    let mut response = see_other(&format!("{BASE}signin"));
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("kefu_console=; Path=/kefu; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

/// Every page of the console: the shell, which the script fills; sign-in first.
async fn shell(State(state): State<AppState>, request: Request) -> Response {
    let Some(csrf) = state.sessions.csrf_of(request.headers()) else {
        return see_other(&format!("{BASE}signin"));
    };
    page(StatusCode::OK, SHELL.replace("{{CSRF}}", &escape(&csrf)))
}

async fn shell_page(state: State<AppState>, _: Path<String>, request: Request) -> Response {
    shell(state, request).await
}

/// `GET /kefu/console/assets/{file}`: the script and the style sheet (no secret in
/// them, so served without a session, as the sign-in page needs the style).
async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// `GET /`: a browser (`Accept: text/html`) is sent to the console; anything else
/// gets WeChat's `40066`, as any path WeChat does not have.
pub(crate) async fn root(state: State<AppState>, request: Request) -> Response {
    let wants_html = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if state.console && request.method() == Method::GET && wants_html {
        return see_other(BASE);
    }
    crate::wechat::invalid_url(state, request).await
}

/// The console's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/kefu/console", get(|| async { see_other(BASE) }))
        .route(BASE, get(shell))
        .route("/kefu/console/signin", get(signin_form).post(signin))
        .route("/kefu/console/signout", post(signout))
        .route("/kefu/console/assets/{file}", get(asset))
        .route("/kefu/console/{page}", get(shell_page))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn a_request_is_from_another_site_by_the_browsers_word_or_its_origin() {
        let plain: axum::http::Uri = "/kefu/v1/apps".parse().unwrap();
        // The browser says where the request comes from.
        assert!(!cross_site(
            &headers(&[
                ("sec-fetch-site", "same-origin"),
                ("origin", "https://x.example")
            ]),
            &plain
        ));
        assert!(cross_site(
            &headers(&[("sec-fetch-site", "same-site")]),
            &plain
        ));
        // Otherwise the Origin names the host the request was sent to.
        assert!(!cross_site(
            &headers(&[
                ("origin", "http://127.0.0.1:8080"),
                ("host", "127.0.0.1:8080")
            ]),
            &plain
        ));
        assert!(cross_site(
            &headers(&[
                ("origin", "http://evil.example"),
                ("host", "127.0.0.1:8080")
            ]),
            &plain
        ));
        // HTTP/2 has no Host header: the URI's authority stands for it.
        let h2: axum::http::Uri = "https://kefu.example:8443/kefu/v1/apps".parse().unwrap();
        assert!(!cross_site(
            &headers(&[("origin", "https://kefu.example:8443")]),
            &h2
        ));
        assert!(cross_site(
            &headers(&[("origin", "https://evil.example")]),
            &h2
        ));
        // No Origin, no word from the browser: not a browser's cross-site request.
        assert!(!cross_site(&HeaderMap::new(), &plain));
    }
}
