//! Standard Webhooks signatures (<https://www.standardwebhooks.com>, spec version 1.0.0): how
//! a facility's system knows an event really came from gerbang.
//!
//! Every event is POSTed with three headers: `webhook-id` (the event's id, the same on every
//! retry), `webhook-timestamp` (unix seconds of this attempt) and `webhook-signature`, a
//! space-separated list of `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`. The
//! list lets a secret be rotated without downtime: during a rotation each event is signed
//! with the old and the new secret, and a receiver accepts any one that matches.
//!
//! The secret is shown to the facility as `whsec_` + base64 of the key bytes, the form every
//! Standard Webhooks library reads, so a receiver can use one off the shelf.
//!
//! Only the symmetric scheme (`v1`) is implemented; `v1a` (ed25519) signatures in a header
//! are skipped. Checking that the timestamp is recent (the spec's replay protection) needs a
//! clock, so it is the caller's job; this module is pure apart from [`new_secret`]'s
//! randomness.

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

/// How secrets are shown, so they can be told apart from other credentials at a glance.
const PREFIX: &str = "whsec_";
/// The symmetric signature scheme's identifier in `webhook-signature`.
const VERSION: &str = "v1";
/// The spec's bounds on the key: "at least 24 bytes (192 bits, 512 maximum)".
const MIN_KEY_BYTES: usize = 24;
const MAX_KEY_BYTES: usize = 64;

/// Standard base64, as the spec and its libraries write secrets and signatures. Decoding also
/// takes a secret whose trailing `=` were lost when it was copied; it is the same key.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SecretError {
    #[error(
        "the webhook secret is not valid base64 after its `whsec_` prefix: copy the whole secret as gerbang gave it, or generate a new one"
    )]
    NotBase64,
    #[error(
        "the webhook secret's key is {0} bytes; Standard Webhooks keys are 24 to 64 bytes: generate a new secret"
    )]
    Length(usize),
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(
        "the webhook-signature header has no `v1,<base64>` signature: sign with the endpoint's `whsec_` secret as Standard Webhooks specifies"
    )]
    NoSignature,
    #[error(
        "no signature in webhook-signature matches: check that the secret is this endpoint's current one and that the body, webhook-id and webhook-timestamp are exactly as sent (a body parsed and re-serialised no longer matches)"
    )]
    Mismatch,
}

/// A new endpoint secret: `whsec_` + base64 of 32 random bytes.
///
/// The bytes come from two version-4 UUIDs, which the `uuid` crate draws from the operating
/// system's generator (getrandom). Each UUID fixes 6 of its 128 bits (version and variant),
/// so the key holds 244 random bits, well above the spec's 192.
pub fn new_secret() -> String {
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    format!("{PREFIX}{}", BASE64.encode(key))
}

/// Whether `secret` is a usable Standard Webhooks secret: base64 of a 24–64 byte key, with or
/// without the `whsec_` prefix (the reference libraries accept both).
pub fn check_secret(secret: &str) -> Result<(), SecretError> {
    key(secret).map(|_| ())
}

/// The `v1,<base64>` signature of a message: HMAC-SHA256 under the secret's key over
/// `{msg_id}.{timestamp}.{body}`. `body` is the exact bytes sent.
pub fn sign(
    secret: &str,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SecretError> {
    let tag = mac(&key(secret)?, msg_id, timestamp, body)
        .finalize()
        .into_bytes();
    Ok(format!("{VERSION},{}", BASE64.encode(tag)))
}

/// Check a `webhook-signature` header: Ok if any of its space-separated `v1` signatures is
/// the message's under `secret`. Signatures are compared in constant time. Whether the
/// timestamp is recent is not checked here (see the module doc).
pub fn verify(
    secret: &str,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
    signature_header: &str,
) -> Result<(), VerifyError> {
    let expected = mac(&key(secret)?, msg_id, timestamp, body);
    let mut any = false;
    for signature in signature_header.split_whitespace() {
        let Some((VERSION, encoded)) = signature.split_once(',') else {
            continue;
        };
        any = true;
        let Ok(tag) = BASE64.decode(encoded) else {
            continue;
        };
        if expected.clone().verify_slice(&tag).is_ok() {
            return Ok(());
        }
    }
    Err(if any {
        VerifyError::Mismatch
    } else {
        VerifyError::NoSignature
    })
}

/// The key bytes of a secret.
fn key(secret: &str) -> Result<Vec<u8>, SecretError> {
    let encoded = secret.trim();
    let encoded = encoded.strip_prefix(PREFIX).unwrap_or(encoded);
    let key = BASE64.decode(encoded).map_err(|_| SecretError::NotBase64)?;
    if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&key.len()) {
        return Err(SecretError::Length(key.len()));
    }
    Ok(key)
}

/// The HMAC of a message, ready to finalise or compare.
fn mac(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference vector of the Standard Webhooks libraries (`libraries/rust/src/lib.rs`
    /// `test_sign` in standard-webhooks/standard-webhooks; the Swift and other ports use the
    /// same one), checked independently with Python's `hmac`/`hashlib`/`base64`.
    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const MSG_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TIMESTAMP: i64 = 1649367553;
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    #[test]
    fn signs_the_reference_vector() {
        assert_eq!(sign(SECRET, MSG_ID, TIMESTAMP, BODY).unwrap(), SIGNATURE);
        // The prefix is optional on input.
        let bare = SECRET.strip_prefix("whsec_").unwrap();
        assert_eq!(sign(bare, MSG_ID, TIMESTAMP, BODY).unwrap(), SIGNATURE);
    }

    #[test]
    fn verifies_the_reference_vector() {
        assert_eq!(verify(SECRET, MSG_ID, TIMESTAMP, BODY, SIGNATURE), Ok(()));
    }

    #[test]
    fn tampering_fails() {
        let other_body = br#"{"email":"test@example.com","username":"test_user2"}"#;
        assert_eq!(
            verify(SECRET, MSG_ID, TIMESTAMP, other_body, SIGNATURE),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(
                SECRET,
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpl",
                TIMESTAMP,
                BODY,
                SIGNATURE
            ),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, MSG_ID, TIMESTAMP + 1, BODY, SIGNATURE),
            Err(VerifyError::Mismatch)
        );
        let other_secret = new_secret();
        assert_eq!(
            verify(&other_secret, MSG_ID, TIMESTAMP, BODY, SIGNATURE),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn any_of_several_signatures_may_match() {
        // A rotation: signatures under other secrets, an ed25519 one, and then the right one.
        let header = format!(
            "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg== v1,not-base64! {SIGNATURE} v1,9DfC1c3eeOrXB6w/5dIDydLNQaEyww5KalE5jLBZucE="
        );
        assert_eq!(verify(SECRET, MSG_ID, TIMESTAMP, BODY, &header), Ok(()));
        let without = header.replace(SIGNATURE, "");
        assert_eq!(
            verify(SECRET, MSG_ID, TIMESTAMP, BODY, &without),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, MSG_ID, TIMESTAMP, BODY, "v1a,abc  "),
            Err(VerifyError::NoSignature)
        );
        assert_eq!(
            verify(SECRET, MSG_ID, TIMESTAMP, BODY, ""),
            Err(VerifyError::NoSignature)
        );
    }

    #[test]
    fn new_secrets_are_valid_and_distinct() {
        let a = new_secret();
        let b = new_secret();
        assert!(a.starts_with("whsec_"));
        assert_ne!(a, b);
        assert_eq!(check_secret(&a), Ok(()));
        assert_eq!(key(&a).unwrap().len(), 32);
        let signature = sign(&a, "msg_1", 1_700_000_000, b"{}").unwrap();
        assert_eq!(
            verify(&a, "msg_1", 1_700_000_000, b"{}", &signature),
            Ok(())
        );
    }

    #[test]
    fn secrets_are_checked() {
        assert_eq!(check_secret(SECRET), Ok(()));
        assert_eq!(check_secret("C2FVsBQIhrscChlQIMV+b5sSYspob7oD"), Ok(()));
        assert_eq!(
            check_secret("whsec_not base64!"),
            Err(SecretError::NotBase64)
        );
        // 16 bytes: too short.
        assert_eq!(
            check_secret("whsec_AAAAAAAAAAAAAAAAAAAAAA=="),
            Err(SecretError::Length(16))
        );
        // 65 bytes: too long.
        let long = format!("whsec_{}", BASE64.encode([7u8; 65]));
        assert_eq!(check_secret(&long), Err(SecretError::Length(65)));
        let longest = format!("whsec_{}", BASE64.encode([7u8; 64]));
        assert_eq!(check_secret(&longest), Ok(()));
        // Padding lost in a copy: still the same key.
        let unpadded = new_secret().trim_end_matches('=').to_string();
        assert_eq!(check_secret(&unpadded), Ok(()));
        assert_eq!(
            sign("whsec_", MSG_ID, TIMESTAMP, BODY),
            Err(SecretError::Length(0))
        );
        assert_eq!(
            verify("whsec_xx", MSG_ID, TIMESTAMP, BODY, SIGNATURE),
            Err(VerifyError::Secret(SecretError::NotBase64))
        );
    }
}
