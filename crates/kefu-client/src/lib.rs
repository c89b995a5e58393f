//! A Rust SDK for WeChat's customer service ("kf") account API — for WeChat itself and
//! for a local [kefu](https://github.com/kefu-dev/kefu) server alike.
//!
//! * Typed calls for every endpoint of the family, on the same contract types as the
//!   kefu server ([`kefu_api`]).
//! * Inputs checked before sending, with the errcode the server would give.
//! * Tokens cached and refreshed before they expire, once however many tasks ask
//!   (single flight); shared between processes through `RedisTokenStore` (feature `redis`); a token
//!   refused with 40001/40014/42001 is invalidated only if it is still the cached one,
//!   and the call retried once.
//! * `-1` and transport failures retried only for calls that can be repeated without
//!   harm; `add` and `inviteworker` never.
//! * One [`Error`] with [`Error::code`], [`Error::errmsg`], [`Error::rid`]; tokens and
//!   secrets never appear in `Debug` or `Display`.
//!
//! Against WeChat:
//!
//! ```no_run
//! # async fn run() -> kefu_client::Result<()> {
//! let client = kefu_client::Client::builder()
//!     .app("wx0123456789abcdef", "your-app-secret")
//!     .build()?;
//! client.kf_add("test1@your_wechat_id", "客服1").await?;
//! for kf in client.kf_list().await? {
//!     println!("{} {} {}", kf.kf_id, kf.kf_account, kf.kf_nick);
//! }
//! # Ok(()) }
//! ```
//!
//! Against a local kefu (`cargo run --release -- serve` prints the demo app's appid and
//! secret):
//!
//! ```no_run
//! # async fn run() -> kefu_client::Result<()> {
//! use kefu_api::ErrCode;
//!
//! let client = kefu_client::Client::builder()
//!     .base_url("http://127.0.0.1:8080")
//!     .app("wx…", "…")
//!     .build()?;
//! client.kf_add("test1@test", "客服1").await?;
//! let error = client.kf_update("test1@test", "a nickname far too long").await.unwrap_err();
//! assert_eq!(error.code(), Some(ErrCode::IllegalNickname)); // refused before sending
//! # Ok(()) }
//! ```

mod client;
mod error;
#[cfg(feature = "redis")]
mod redis_store;
mod retry;
mod token;

pub use client::{Client, ClientBuilder, Credentials, WECHAT_BASE_URL, tls_config};
pub use error::{Error, Result};
#[cfg(feature = "redis")]
pub use redis_store::RedisTokenStore;
pub use retry::RetryPolicy;
pub use token::{CachedToken, MemoryTokenStore, TokenStore};
