//! Minting and hashing of appids, secrets and tokens. Randomness comes from the
//! operating system's CSPRNG (through `rand`'s thread RNG, reseeded from it).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kefu_store::Digest;
use rand::{Rng, RngExt};
use sha2::{Digest as _, Sha256};

/// SHA-256 of a secret or token: all the store ever keeps.
#[must_use]
pub fn digest(value: &str) -> Digest {
    Sha256::digest(value.as_bytes()).into()
}

/// Whether `value` hashes to `expected`, compared in constant time: every byte of the
/// digests is looked at whatever the first difference (hashing first already hides
/// how much of a guess was right; this hides even which digest byte differed).
#[must_use]
pub fn matches(value: &str, expected: &Digest) -> bool {
    digest(value)
        .iter()
        .zip(expected)
        .fold(0_u8, |difference, (a, b)| difference | (a ^ b))
        == 0
}

/// The shortest admin token accepted: anything shorter can be guessed by a client
/// that tries tokens against `/kefu/v1` (each try costs it one request).
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// A new appid: `wx` and 16 hex digits, like WeChat's.
#[must_use]
pub fn new_appid() -> String {
    format!("wx{}", hex(&random_bytes::<8>()))
}

/// A new AppSecret: 32 hex digits (128 bits), like WeChat's.
#[must_use]
pub fn new_app_secret() -> String {
    hex(&random_bytes::<16>())
}

/// A new original id: `gh_` and 12 hex digits.
#[must_use]
pub fn new_original_id() -> String {
    format!("gh_{}", hex(&random_bytes::<6>()))
}

/// A new admin token (256 bits, URL-safe).
#[must_use]
pub fn new_admin_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// A new kf_openid: `o` and 27 URL-safe characters, the shape of a WeChat openid.
#[must_use]
pub fn new_openid() -> String {
    let mut openid = String::from("o");
    openid.push_str(&URL_SAFE_NO_PAD.encode(random_bytes::<21>())[..27]);
    openid
}

/// A new access token: a 3-digit decimal prefix, `_`, and 132 URL-safe characters
/// (792 random bits) — 136 characters, the length of WeChat's shortest.
#[must_use]
pub fn new_access_token() -> String {
    let prefix: u16 = rand::rng().random_range(100..1000);
    format!("{prefix}_{}", URL_SAFE_NO_PAD.encode(random_bytes::<99>()))
}

/// A new authorizer_refresh_token (`refreshtoken@@@` and 256 random bits, the
/// shape of WeChat's).
#[must_use]
pub fn new_refresh_token() -> String {
    format!(
        "refreshtoken@@@{}",
        URL_SAFE_NO_PAD.encode(random_bytes::<32>())
    )
}

/// A new component_verify_ticket (`ticket@@@` and 256 random bits).
#[must_use]
pub fn new_ticket() -> String {
    format!("ticket@@@{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
}

/// Two random groups for a rid.
#[must_use]
pub fn rid_groups() -> (u32, u32) {
    let mut rng = rand::rng();
    (rng.random(), rng.random())
}

/// The first characters of a token, for logs: never the whole token.
#[must_use]
pub fn token_hint(token: &str) -> &str {
    token.get(..8).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let token = new_access_token();
        assert_eq!(token.len(), 136, "{token}");
        let (prefix, rest) = token.split_once('_').unwrap();
        assert!(prefix.bytes().all(|b| b.is_ascii_digit()));
        assert!(
            rest.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        );
        assert_ne!(new_access_token(), token);
        assert!(kefu_api::AppId::parse(&new_appid()).is_ok());
        assert!(kefu_api::OriginalId::parse(&new_original_id()).is_ok());
        assert_eq!(new_app_secret().len(), 32);
        assert_eq!(new_openid().len(), 28);
        assert!(matches("abc", &digest("abc")));
        assert!(!matches("abd", &digest("abc")));
    }
}
