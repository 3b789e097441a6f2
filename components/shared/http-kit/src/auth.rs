//! Authentication and role checks, shared by every component.
//!
//! Access tokens are JWTs signed by the users service with Ed25519 (`EdDSA`).
//! Every other component holds only the public key (`jwt_public_key`) and
//! verifies, on every request that needs it: the signature, the algorithm
//! (only `EdDSA`: `none` and HMAC tokens are rejected whatever they claim),
//! expiry (30 s of clock tolerance), issuer (`jwt_issuer`) and audience
//! (`jwt_audience`). The result is a typed [`Caller`].

use crate::{ApiError, Ctx, ErrorCode};
use base64::Engine;
use jwt_simple::prelude::*;
use std::collections::HashSet;

/// Access tokens live 15 minutes; clients refresh them with a refresh token.
pub const ACCESS_TOKEN_TTL_SECS: u64 = 15 * 60;
/// Clock drift tolerated between the signer and a verifier.
pub const CLOCK_TOLERANCE_SECS: u64 = 30;
/// Defaults for the issuer and audience variables.
pub const DEFAULT_ISSUER: &str = "shop";
pub const DEFAULT_AUDIENCE: &str = "shop-api";

/// The two roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Customer,
    Admin,
}

impl Role {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "customer" => Some(Self::Customer),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Admin => "admin",
        }
    }
}

/// The custom claims our access tokens carry besides the registered ones.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub role: Role,
    /// The account's email address was proven when the token was issued.
    /// Tokens from before this claim existed read as unverified.
    #[serde(default)]
    pub email_verified: bool,
}

/// Who is calling, from a verified access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    pub role: Role,
    /// The token's `jti`: ties the request to the session that issued it.
    pub token_id: String,
    /// The account's email was verified when this token was issued (a
    /// verification reaches tokens at the next refresh).
    pub email_verified: bool,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// What a verifier needs.
pub struct Verifier {
    key: Ed25519PublicKey,
    issuer: String,
    audience: String,
}

/// Decode a key given as PEM, or as base64 of DER or of the raw key bytes.
/// Variables cannot easily hold multi-line PEM, so base64 DER is what the
/// README's key commands produce.
pub fn decode_key_material(raw: &str) -> Result<KeyMaterial, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("not configured".into());
    }
    if raw.starts_with("-----BEGIN") {
        return Ok(KeyMaterial::Pem(raw.replace("\\n", "\n")));
    }
    let cleaned: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(&cleaned)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&cleaned))
        .map(KeyMaterial::Bytes)
        .map_err(|_| "is neither PEM nor base64".to_string())
}

/// A decoded key variable.
pub enum KeyMaterial {
    Pem(String),
    Bytes(Vec<u8>),
}

impl Verifier {
    /// Build a verifier from variable values.
    pub fn new(public_key: &str, issuer: &str, audience: &str) -> Result<Self, String> {
        let key = match decode_key_material(public_key)? {
            KeyMaterial::Pem(pem) => Ed25519PublicKey::from_pem(&pem),
            KeyMaterial::Bytes(b) if b.len() == 32 => Ed25519PublicKey::from_bytes(&b),
            KeyMaterial::Bytes(b) => Ed25519PublicKey::from_der(&b),
        }
        .map_err(|e| format!("jwt_public_key is not an Ed25519 public key: {e}"))?;
        Ok(Self { key, issuer: issuer.to_string(), audience: audience.to_string() })
    }

    /// Build the verifier from this component's Spin variables.
    pub fn from_variables() -> Result<Self, ApiError> {
        let get = |name: &str| spin_sdk::variables::get(name).unwrap_or_default();
        let issuer = non_empty(get("jwt_issuer"), DEFAULT_ISSUER);
        let audience = non_empty(get("jwt_audience"), DEFAULT_AUDIENCE);
        Self::new(&get("jwt_public_key"), &issuer, &audience).map_err(|e| {
            ApiError::unavailable("auth_not_configured", "authentication is not configured on this server")
                .with_internal(format!("jwt_public_key: {e}"))
        })
    }

    /// Verify a bearer token.
    pub fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        let options = VerificationOptions {
            allowed_issuers: Some(HashSet::from([self.issuer.clone()])),
            allowed_audiences: Some(HashSet::from([self.audience.clone()])),
            time_tolerance: Some(Duration::from_secs(CLOCK_TOLERANCE_SECS)),
            max_validity: Some(Duration::from_secs(ACCESS_TOKEN_TTL_SECS + CLOCK_TOLERANCE_SECS)),
            ..Default::default()
        };
        let claims = self
            .key
            .verify_token::<AccessClaims>(token, Some(options))
            .map_err(|_| invalid_token())?;
        // Refuse tokens that lack the registered claims we rely on.
        let (Some(user_id), Some(token_id), Some(_), Some(_)) =
            (claims.subject, claims.jwt_id, claims.expires_at, claims.issued_at)
        else {
            return Err(invalid_token());
        };
        Ok(Caller { user_id, role: claims.custom.role, token_id, email_verified: claims.custom.email_verified })
    }
}

fn non_empty(v: String, default: &str) -> String {
    if v.trim().is_empty() {
        default.to_string()
    } else {
        v.trim().to_string()
    }
}

fn invalid_token() -> ApiError {
    ApiError::of(ErrorCode::Unauthorized, "the access token is invalid or expired")
        .with_header("www-authenticate", "Bearer error=\"invalid_token\"")
}

/// The bearer token of a request, if it sent one.
pub fn bearer_token(ctx: &Ctx) -> Result<&str, ApiError> {
    let header = ctx.header("authorization").ok_or_else(|| {
        ApiError::of(ErrorCode::Unauthorized, "sign in: this endpoint needs an `Authorization: Bearer <token>` header")
            .with_header("www-authenticate", "Bearer")
    })?;
    let (scheme, token) = header.trim().split_once(' ').unwrap_or((header, ""));
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::of(ErrorCode::Unauthorized, "the Authorization header must be `Bearer <token>`")
            .with_header("www-authenticate", "Bearer"));
    }
    Ok(token.trim())
}

/// For machine-to-machine routes (schedulers): the request must carry the
/// value of Spin variable `variable` in header `header`. 503 when the
/// variable is not set (the route is off), 401 when the value is wrong.
/// Compared in constant time.
pub fn require_shared_secret(ctx: &Ctx, variable: &str, header: &str) -> Result<(), ApiError> {
    let expected = configured_secret(variable)?;
    if secret_matches(ctx.header(header).unwrap_or("").as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::of(ErrorCode::Unauthorized, format!("a valid `{header}` header is required")))
    }
}

/// For a scraper (Prometheus sends `Authorization: Bearer <secret>` from its
/// `authorization` setting): the bearer token must be the value of Spin
/// variable `variable`. 503 when the variable is not set (the route is off),
/// 401 (with `WWW-Authenticate: Bearer`) when it is missing or wrong.
/// Compared in constant time.
pub fn require_bearer_secret(ctx: &Ctx, variable: &str) -> Result<(), ApiError> {
    let expected = configured_secret(variable)?;
    let token = bearer_token(ctx)?;
    if secret_matches(token.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::of(ErrorCode::Unauthorized, format!("the bearer token must be the `{variable}` secret"))
            .with_header("www-authenticate", "Bearer"))
    }
}

/// The secret in `variable`, or 503 `not_configured` when it is empty.
fn configured_secret(variable: &str) -> Result<String, ApiError> {
    let expected = spin_sdk::variables::get(variable).unwrap_or_default().trim().to_string();
    if expected.is_empty() {
        return Err(ApiError::unavailable("not_configured", format!("set the `{variable}` variable to enable this route")));
    }
    Ok(expected)
}

/// Equal, in time that depends only on the expected value's length.
pub(crate) fn secret_matches(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = (given.len() ^ expected.len()) as u8 | u8::from(given.len() != expected.len());
    for (i, b) in expected.iter().enumerate() {
        diff |= b ^ given.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

impl Ctx {
    /// The verified caller: 401 without a valid token.
    pub fn caller(&self) -> Result<Caller, ApiError> {
        let token = bearer_token(self)?;
        Verifier::from_variables()?.verify(token)
    }

    /// The verified caller, who must be an admin: 401 without a valid token, 403 for a customer.
    pub fn admin(&self) -> Result<Caller, ApiError> {
        let caller = self.caller()?;
        if caller.is_admin() {
            Ok(caller)
        } else {
            Err(ApiError::of(ErrorCode::Forbidden, "this endpoint is for admins"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

    #[test]
    fn secrets_match_only_when_equal() {
        assert!(secret_matches(b"s3cret", b"s3cret"));
        assert!(!secret_matches(b"s3creT", b"s3cret"));
        assert!(!secret_matches(b"s3cre", b"s3cret"));
        assert!(!secret_matches(b"", b"s3cret"));
        // A length differing by a multiple of 256 with the secret as prefix.
        let long = [b"s3cret".as_slice(), &[b'x'; 256]].concat();
        assert!(!secret_matches(&long, b"s3cret"));
    }

    fn keys() -> (Ed25519KeyPair, String) {
        let kp = Ed25519KeyPair::generate();
        let public = STANDARD.encode(kp.public_key().to_der());
        (kp, public)
    }

    fn token(kp: &Ed25519KeyPair, aud: &str, iss: &str, valid: u64) -> String {
        let claims = Claims::with_custom_claims(AccessClaims { role: Role::Admin, email_verified: false }, Duration::from_secs(valid))
            .with_subject("user-1")
            .with_issuer(iss)
            .with_audience(aud)
            .with_jwt_id("jti-1");
        kp.sign(claims).unwrap()
    }

    #[test]
    fn verifies_a_good_token() {
        let (kp, public) = keys();
        let v = Verifier::new(&public, "shop", "shop-api").unwrap();
        let caller = v.verify(&token(&kp, "shop-api", "shop", 60)).unwrap();
        assert_eq!(caller, Caller { user_id: "user-1".into(), role: Role::Admin, token_id: "jti-1".into(), email_verified: false });
    }

    #[test]
    fn accepts_raw_and_pem_public_keys() {
        let kp = Ed25519KeyPair::generate();
        assert!(Verifier::new(&STANDARD.encode(kp.public_key().to_bytes()), "i", "a").is_ok());
        assert!(Verifier::new(&kp.public_key().to_pem(), "i", "a").is_ok());
        assert!(Verifier::new("", "i", "a").is_err());
        assert!(Verifier::new("not base64 !!", "i", "a").is_err());
    }

    #[test]
    fn rejects_wrong_audience_issuer_key_and_tampering() {
        let (kp, public) = keys();
        let v = Verifier::new(&public, "shop", "shop-api").unwrap();
        assert_eq!(v.verify(&token(&kp, "other", "shop", 60)).unwrap_err().status, 401);
        assert_eq!(v.verify(&token(&kp, "shop-api", "evil", 60)).unwrap_err().status, 401);
        let (other, _) = keys();
        assert_eq!(v.verify(&token(&other, "shop-api", "shop", 60)).unwrap_err().status, 401);
        let good = token(&kp, "shop-api", "shop", 60);
        let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
        let mut payload: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
        payload["role"] = "admin".into();
        payload["sub"] = "user-2".into();
        parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
        assert_eq!(v.verify(&parts.join(".")).unwrap_err().status, 401);
    }

    #[test]
    fn rejects_alg_none_and_hmac_with_the_public_key() {
        let (kp, public) = keys();
        let v = Verifier::new(&public, "shop", "shop-api").unwrap();
        let good = token(&kp, "shop-api", "shop", 60);
        let payload = good.split('.').nth(1).unwrap();
        let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        assert!(v.verify(&format!("{none_header}.{payload}.")).is_err());
        assert!(v.verify(&format!("{none_header}.{payload}")).is_err());
        // HS256 signed with the public key bytes as the HMAC secret (the classic confusion attack).
        let hmac = HS256Key::from_bytes(&STANDARD.decode(&public).unwrap());
        let claims = Claims::with_custom_claims(AccessClaims { role: Role::Admin, email_verified: false }, Duration::from_secs(60))
            .with_subject("user-1")
            .with_issuer("shop")
            .with_audience("shop-api")
            .with_jwt_id("j");
        assert!(v.verify(&hmac.authenticate(claims).unwrap()).is_err());
    }

    #[test]
    fn rejects_expired_tokens_beyond_the_tolerance() {
        let (kp, public) = keys();
        let v = Verifier::new(&public, "shop", "shop-api").unwrap();
        let mut claims = Claims::with_custom_claims(AccessClaims { role: Role::Customer, email_verified: false }, Duration::from_secs(60))
            .with_subject("u")
            .with_issuer("shop")
            .with_audience("shop-api")
            .with_jwt_id("j");
        let now = Clock::now_since_epoch();
        claims.issued_at = Some(now - Duration::from_secs(20 * 60));
        claims.expires_at = Some(now - Duration::from_secs(5 * 60));
        assert_eq!(v.verify(&kp.sign(claims).unwrap()).unwrap_err().status, 401);
    }
}
