//! Issuing tokens: Ed25519-signed JWT access tokens and opaque refresh tokens.
//!
//! Only this component holds the private key (`jwt_private_key`). Refresh
//! tokens are 32 random bytes, shown to the client once and stored only as
//! their SHA-256 hash, so a database leak does not leak usable tokens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http_kit::auth::{decode_key_material, AccessClaims, KeyMaterial, Role, ACCESS_TOKEN_TTL_SECS, DEFAULT_AUDIENCE, DEFAULT_ISSUER};
use http_kit::ApiError;
use jwt_simple::prelude::*;
use sha2::{Digest, Sha256};

/// Refresh tokens expire 30 days after they were issued.
pub const REFRESH_TOKEN_TTL_SECS: i64 = 30 * 24 * 3600;

/// Signs access tokens.
pub struct Signer {
    key: Ed25519KeyPair,
    issuer: String,
    audience: String,
}

impl Signer {
    /// Build from a private key given as PEM or base64 (PKCS#8 DER, or the
    /// 64-byte secret+public form).
    pub fn new(private_key: &str, issuer: &str, audience: &str) -> Result<Self, String> {
        let key = match decode_key_material(private_key)? {
            KeyMaterial::Pem(pem) => Ed25519KeyPair::from_pem(&pem),
            KeyMaterial::Bytes(b) if b.len() == 64 => Ed25519KeyPair::from_bytes(&b),
            KeyMaterial::Bytes(b) => Ed25519KeyPair::from_der(&b),
        }
        .map_err(|e| format!("not an Ed25519 private key: {e}"))?;
        Ok(Self { key, issuer: issuer.to_string(), audience: audience.to_string() })
    }

    /// Build from this component's variables; 503 when not configured.
    pub fn from_variables() -> Result<Self, ApiError> {
        let get = |n: &str| spin_sdk::variables::get(n).unwrap_or_default();
        let or = |v: String, d: &str| if v.trim().is_empty() { d.to_string() } else { v.trim().to_string() };
        Self::new(
            &get("jwt_private_key"),
            &or(get("jwt_issuer"), DEFAULT_ISSUER),
            &or(get("jwt_audience"), DEFAULT_AUDIENCE),
        )
        .map_err(|e| {
            ApiError::unavailable("auth_not_configured", "authentication is not configured on this server")
                .with_internal(format!("jwt_private_key: {e}"))
        })
    }

    /// A signed access token for a user, with the given token id.
    pub fn access_token(&self, user_id: &str, role: Role, email_verified: bool, jti: &str) -> Result<String, ApiError> {
        let claims = Claims::with_custom_claims(AccessClaims { role, email_verified }, Duration::from_secs(ACCESS_TOKEN_TTL_SECS))
            .with_subject(user_id)
            .with_issuer(&self.issuer)
            .with_audience(&self.audience)
            .with_jwt_id(jti);
        self.key.sign(claims).map_err(|e| ApiError::internal(format!("signing failed: {e}")))
    }
}

/// What is wrong with the token keys, if anything: the private key must
/// parse, the public key too, and be its other half, or every token the
/// users service signs is refused by every other service (they verify with
/// `jwt_public_key` alone). Checked by signing a token and verifying it as
/// the other services do.
pub fn keys_problem(private_key: &str, public_key: &str, issuer: &str, audience: &str) -> Option<String> {
    let signer = match Signer::new(private_key, issuer, audience) {
        Ok(s) => s,
        Err(e) => return Some(format!("jwt_private_key: {e}")),
    };
    let verifier = match http_kit::auth::Verifier::new(public_key, issuer, audience) {
        Ok(v) => v,
        Err(e) => return Some(if e.starts_with("jwt_public_key") { e } else { format!("jwt_public_key: {e}") }),
    };
    let refused = signer.access_token("key-check", Role::Customer, false, "key-check").map_or(true, |t| verifier.verify(&t).is_err());
    refused.then(|| "jwt_public_key is not the public half of jwt_private_key: every other service would refuse the tokens signed now".to_string())
}

/// [`keys_problem`] for this component's variables.
pub fn keys_problem_from_variables() -> Option<String> {
    let get = |n: &str| spin_sdk::variables::get(n).unwrap_or_default();
    let or = |v: String, d: &str| if v.trim().is_empty() { d.to_string() } else { v.trim().to_string() };
    keys_problem(&get("jwt_private_key"), &get("jwt_public_key"), &or(get("jwt_issuer"), DEFAULT_ISSUER), &or(get("jwt_audience"), DEFAULT_AUDIENCE))
}

/// A new opaque refresh token and the hash to store for it.
pub fn new_refresh_token() -> Result<(String, String), ApiError> {
    new_secret("rt_")
}

/// A new opaque secret (32 random bytes after `prefix`) and the hash to
/// store for it.
pub fn new_secret(prefix: &str) -> Result<(String, String), ApiError> {
    let bytes = http_kit::ids::random_bytes(32)?;
    let token = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash_secret(&token);
    Ok((token, hash))
}

/// The stored form of a refresh token.
pub fn hash_refresh_token(token: &str) -> String {
    hash_secret(token)
}

/// The stored form of any secret we hand out: its SHA-256, in hex. (The
/// secrets are 256 random bits, so a fast hash is enough: there is nothing
/// to guess.)
pub fn hash_secret(token: &str) -> String {
    Sha256::digest(token.trim().as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use http_kit::auth::Verifier;

    #[test]
    fn keys_that_are_not_a_pair_are_named() {
        let (kp, other) = (Ed25519KeyPair::generate(), Ed25519KeyPair::generate());
        let private = STANDARD.encode(kp.to_der());
        assert_eq!(keys_problem(&private, &STANDARD.encode(kp.public_key().to_der()), "shop", "shop-api"), None);
        let mismatch = keys_problem(&private, &STANDARD.encode(other.public_key().to_der()), "shop", "shop-api").unwrap();
        assert!(mismatch.contains("not the public half"), "{mismatch}");
        assert!(keys_problem("", &STANDARD.encode(kp.public_key().to_der()), "shop", "shop-api").unwrap().starts_with("jwt_private_key"));
        assert!(keys_problem(&private, "not a key", "shop", "shop-api").unwrap().starts_with("jwt_public_key"));
    }

    #[test]
    fn signed_tokens_verify_with_the_public_key() {
        let kp = Ed25519KeyPair::generate();
        let signer = Signer::new(&STANDARD.encode(kp.to_der()), "shop", "shop-api").unwrap();
        let verifier = Verifier::new(&STANDARD.encode(kp.public_key().to_der()), "shop", "shop-api").unwrap();
        let caller = verifier.verify(&signer.access_token("u1", Role::Customer, true, "j1").unwrap()).unwrap();
        assert_eq!((caller.user_id.as_str(), caller.role, caller.token_id.as_str(), caller.email_verified), ("u1", Role::Customer, "j1", true));
    }

    #[test]
    fn refresh_tokens_are_random_and_stored_hashed() {
        let (a, ha) = new_refresh_token().unwrap();
        let (b, _) = new_refresh_token().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("rt_") && a.len() > 40);
        assert_eq!(ha, hash_refresh_token(&a));
        assert_eq!(ha.len(), 64);
        assert!(!ha.contains(&a[3..]));
    }
}
