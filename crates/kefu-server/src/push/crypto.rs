//! WeChat's message signatures and encryption (its `WXBizMsgCrypt`): what a developer's
//! server checks on every push.
//!
//! - `signature` is the SHA-1 (hex) of the Token, the timestamp and the nonce, sorted and
//!   joined; in safe mode `msg_signature` adds the `<Encrypt>` text to the four.
//! - The AES key is the EncodingAESKey (43 characters) with `=` added, base64-decoded: 32
//!   bytes. A message is encrypted as 16 random bytes, the XML's length (4 bytes, big
//!   endian), the XML, and the appid; padded PKCS#7-style to a multiple of 32 bytes;
//!   AES-256-CBC with the key's first 16 bytes as the IV; then base64.

use aes::Aes256;
use aes::cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use base64::Engine;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use sha1::{Digest, Sha1};

/// The block WeChat pads to (not AES's 16).
const PAD_BLOCK: usize = 32;

/// Base64 that takes an EncodingAESKey: its 43rd character carries bits past the key's
/// 32 bytes, which strict decoders refuse and WeChat's own libraries ignore.
const KEY_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// The SHA-1 (hex) of `parts` sorted and joined: WeChat's signature.
#[must_use]
pub(crate) fn signature(parts: &[&str]) -> String {
    let mut sorted = parts.to_vec();
    sorted.sort_unstable();
    let mut hasher = Sha1::new();
    for part in sorted {
        hasher.update(part.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// An app's message cipher, from its EncodingAESKey.
pub(crate) struct Cipher {
    cipher: Aes256,
    iv: [u8; 16],
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(<redacted>)")
    }
}

impl Cipher {
    /// The cipher of an EncodingAESKey; `None` when it is not one.
    #[must_use]
    pub(crate) fn new(encoding_aes_key: &str) -> Option<Cipher> {
        let key = KEY_BASE64.decode(format!("{encoding_aes_key}=")).ok()?;
        let key: [u8; 32] = key.try_into().ok()?;
        let mut iv = [0_u8; 16];
        iv.copy_from_slice(&key[..16]);
        Some(Cipher {
            cipher: Aes256::new(&key.into()),
            iv,
        })
    }

    /// `xml` encrypted for `appid`, base64.
    #[must_use]
    pub(crate) fn encrypt(&self, xml: &str, appid: &str) -> String {
        let mut plain = Vec::with_capacity(20 + xml.len() + appid.len() + PAD_BLOCK);
        plain.extend_from_slice(&rand::random::<[u8; 16]>());
        plain.extend_from_slice(&u32::try_from(xml.len()).unwrap_or(u32::MAX).to_be_bytes());
        plain.extend_from_slice(xml.as_bytes());
        plain.extend_from_slice(appid.as_bytes());
        let pad = PAD_BLOCK - plain.len() % PAD_BLOCK;
        plain.extend(std::iter::repeat_n(u8::try_from(pad).unwrap_or(0), pad));
        let mut previous = self.iv;
        for chunk in plain.chunks_exact_mut(16) {
            for (byte, prev) in chunk.iter_mut().zip(previous) {
                *byte ^= prev;
            }
            let mut block = Array::try_from(&*chunk).unwrap_or_default();
            self.cipher.encrypt_block(&mut block);
            chunk.copy_from_slice(&block);
            previous.copy_from_slice(chunk);
        }
        STANDARD.encode(plain)
    }

    /// An encrypted message's XML and the appid it names; why not, when it cannot be
    /// read.
    pub(crate) fn decrypt(&self, encrypted: &str) -> Result<(String, String), String> {
        let mut data = STANDARD
            .decode(encrypted.trim())
            .map_err(|_| "the encrypted text is not base64".to_owned())?;
        if data.is_empty() || data.len() % 16 != 0 {
            return Err("the encrypted text is not whole AES blocks".to_owned());
        }
        let mut previous = self.iv;
        for chunk in data.chunks_exact_mut(16) {
            let mut cipher_block = [0_u8; 16];
            cipher_block.copy_from_slice(chunk);
            let mut block = Array::try_from(&*chunk).unwrap_or_default();
            self.cipher.decrypt_block(&mut block);
            for ((byte, plain), prev) in chunk.iter_mut().zip(block.iter()).zip(previous) {
                *byte = plain ^ prev;
            }
            previous = cipher_block;
        }
        let pad = usize::from(*data.last().unwrap_or(&0));
        if !(1..=PAD_BLOCK).contains(&pad) || pad > data.len() {
            return Err("the padding is wrong (another key?)".to_owned());
        }
        data.truncate(data.len() - pad);
        if data.len() < 20 {
            return Err("the message is too short".to_owned());
        }
        let len = u32::from_be_bytes([data[16], data[17], data[18], data[19]]);
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let rest = &data[20..];
        if len > rest.len() {
            return Err("the message's length is wrong (another key?)".to_owned());
        }
        let xml = String::from_utf8(rest[..len].to_vec())
            .map_err(|_| "the message is not UTF-8".to_owned())?;
        let appid = String::from_utf8_lossy(&rest[len..]).into_owned();
        Ok((xml, appid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

    #[test]
    fn a_message_encrypted_decrypts_to_itself_and_its_appid() {
        let cipher = Cipher::new(KEY).unwrap();
        for xml in ["", "<xml>hi</xml>", &"长".repeat(100)] {
            let sealed = cipher.encrypt(xml, "wx0123456789abcdef");
            assert_eq!(
                cipher.decrypt(&sealed).unwrap(),
                (xml.to_owned(), "wx0123456789abcdef".to_owned())
            );
            assert_eq!(STANDARD.decode(&sealed).unwrap().len() % PAD_BLOCK, 0);
        }
        let other = Cipher::new("0bcdefghijklmnopqrstuvwxyz0123456789ABCDEFG").unwrap();
        assert!(other.decrypt(&cipher.encrypt("<xml/>", "wx1")).is_err());
        assert!(Cipher::new("short").is_none());
    }

    #[test]
    fn a_signature_is_sha1_of_the_sorted_parts() {
        // echo -n "1409304348nonce-xyztoken" | sha1sum (the parts sorted: the digits first)
        assert_eq!(
            signature(&["token", "1409304348", "nonce-xyz"]),
            signature(&["1409304348", "nonce-xyz", "token"])
        );
        assert_eq!(
            signature(&["abc"]),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }
}
