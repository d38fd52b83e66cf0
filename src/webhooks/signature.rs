//! Standard Webhooks signatures (provisional; replaced by the reviewed version from the
//! `wip/pure` branch).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Debug, thiserror::Error)]
#[error("the webhook secret must be whsec_ followed by base64 of 24 to 64 random bytes")]
pub struct SecretError;

fn key(secret: &str) -> Result<Vec<u8>, SecretError> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = STANDARD.decode(b64).map_err(|_| SecretError)?;
    if !(24..=64).contains(&key.len()) {
        return Err(SecretError);
    }
    Ok(key)
}

pub fn check_secret(secret: &str) -> Result<(), SecretError> {
    key(secret).map(|_| ())
}

pub fn new_secret() -> String {
    let mut bytes = Vec::with_capacity(32);
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    format!("whsec_{}", STANDARD.encode(bytes))
}

pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> Result<String, SecretError> {
    let mut mac = Hmac::<Sha256>::new_from_slice(&key(secret)?).map_err(|_| SecretError)?;
    mac.update(format!("{msg_id}.{timestamp}.").as_bytes());
    mac.update(body);
    Ok(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
}
