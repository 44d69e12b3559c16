//! SSE tickets: `base64url(TOPIC \n EXPIRES_MS \n ISSUER) . base64url(HMAC-SHA256(key, payload))`.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{AuthError, random};

/// The issuer of tickets the admin (or a broker without authentication) asked for.
pub const ADMIN_ISSUER: &str = "admin";

fn mac(key: &[u8; 32]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length")
}

pub fn sign(key: &[u8; 32], topic: &str, expires_ms: i64, issuer: &str) -> String {
    let payload = format!("{topic}\n{expires_ms}\n{issuer}");
    let mut m = mac(key);
    m.update(payload.as_bytes());
    let tag = m.finalize().into_bytes();
    format!("{}.{}", B64.encode(payload), B64.encode(tag))
}

/// `(topic, expires_ms, issuer)` of a genuine ticket that has not expired at `now_ms`.
pub fn verify(key: &[u8; 32], text: &str, now_ms: i64) -> Result<(String, i64, String), AuthError> {
    let bad = || AuthError::Unauthenticated("the ticket is not one this broker issued".into());
    let (payload, tag) = text.split_once('.').ok_or_else(bad)?;
    let payload = B64.decode(payload).map_err(|_| bad())?;
    let tag = B64.decode(tag).map_err(|_| bad())?;
    let mut m = mac(key);
    m.update(&payload);
    m.verify_slice(&tag).map_err(|_| bad())?;
    let payload = String::from_utf8(payload).map_err(|_| bad())?;
    let mut parts = payload.splitn(3, '\n');
    let (Some(topic), Some(expires), Some(issuer)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let expires: i64 = expires.parse().map_err(|_| bad())?;
    if expires <= now_ms {
        return Err(AuthError::Unauthenticated(
            "the ticket has expired; ask POST /v1/tickets for a new one".into(),
        ));
    }
    Ok((topic.to_owned(), expires, issuer.to_owned()))
}

/// The HMAC key: read from `DIR/ticket.key`, or made (random) and stored durably.
pub fn load_or_create_key(dir: &Path) -> Result<[u8; 32], AuthError> {
    let path = dir.join("ticket.key");
    let io = |e: std::io::Error| AuthError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    match std::fs::read(&path) {
        Ok(bytes) if bytes.len() == 32 => {
            let mut key = [0u8; 32];
            key.copy_from_slice(&bytes);
            return Ok(key);
        }
        Ok(_) => {
            tracing::warn!(path = %path.display(), "the ticket key is damaged; making a new one (old tickets end)")
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let key = random::<32>()?;
    crate::durable::write_atomically(&path, &key).map_err(io)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_verifies_until_it_expires_and_a_forged_one_never() {
        let key = [7u8; 32];
        let t = sign(&key, "orders", 1_000, "abc");
        assert_eq!(verify(&key, &t, 999).unwrap(), ("orders".into(), 1_000, "abc".into()));
        assert!(verify(&key, &t, 1_000).unwrap_err().to_string().contains("expired"));
        assert!(verify(&[8u8; 32], &t, 0).is_err(), "another broker's key");
        let (payload, tag) = t.split_once('.').unwrap();
        let forged = format!("{}.{tag}", B64.encode("users\n1000\nabc"));
        assert!(verify(&key, &forged, 0).is_err());
        assert!(verify(&key, payload, 0).is_err());
    }
}
