//! Authentication and role checks, shared by every component.
//!
//! Access tokens are JWTs signed by the users service with Ed25519 (`EdDSA`).
//! Every other component holds only the public key (`jwt_public_key`) and
//! verifies, on every request that needs it: the signature, the algorithm
//! (only `EdDSA`: `none` and HMAC tokens are rejected whatever they claim),
//! expiry (30 s of clock tolerance), issuer (`jwt_issuer`) and audience
//! (`jwt_audience`). The result is a typed [`Caller`].
//!
//! The users service signs with jwt-simple; verification is done here, with
//! ed25519-dalek, because it runs on every signed-in request and
//! jwt-simple's Ed25519 (64-bit limbs multiplied into 128-bit products,
//! which wasm32 has no instruction for) took over a millisecond per token
//! in a component (README, "Benchmarks"). The checks are jwt-simple's, so a
//! token one accepts the other accepts.

use crate::{ApiError, Ctx, ErrorCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// Access tokens live 15 minutes; clients refresh them with a refresh token.
pub const ACCESS_TOKEN_TTL_SECS: u64 = 15 * 60;
/// Clock drift tolerated between the signer and a verifier.
pub const CLOCK_TOLERANCE_SECS: u64 = 30;
/// Defaults for the issuer and audience variables.
pub const DEFAULT_ISSUER: &str = "shop";
pub const DEFAULT_AUDIENCE: &str = "shop-api";
/// Longer tokens are refused unread (ours are about 400 bytes).
const MAX_TOKEN_BYTES: usize = 8 * 1024;

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
    key: ed25519_dalek::VerifyingKey,
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

/// The DER of an Ed25519 public key (RFC 8410 SubjectPublicKeyInfo) is
/// these 12 bytes and then the 32 key bytes.
const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// The 32 bytes of an Ed25519 public key given as PEM, DER or raw bytes.
fn ed25519_public_key(material: KeyMaterial) -> Result<[u8; 32], String> {
    let der = match material {
        KeyMaterial::Bytes(bytes) => bytes,
        KeyMaterial::Pem(pem) => {
            let body: String = pem
                .lines()
                .map(str::trim)
                .skip_while(|l| *l != "-----BEGIN PUBLIC KEY-----")
                .skip(1)
                .take_while(|l| *l != "-----END PUBLIC KEY-----")
                .collect();
            base64::engine::general_purpose::STANDARD.decode(body).map_err(|_| "is not a PEM public key".to_string())?
        }
    };
    let raw = match der.len() {
        32 => &der[..],
        44 if der[..12] == ED25519_SPKI_PREFIX => &der[12..],
        _ => return Err("is not an Ed25519 public key".into()),
    };
    <[u8; 32]>::try_from(raw).map_err(|_| "is not an Ed25519 public key".to_string())
}

/// A token's header, as far as a verifier cares.
#[derive(Deserialize)]
struct TokenHeader {
    alg: String,
    typ: Option<String>,
    crit: Option<Vec<String>>,
}

/// `aud`: one audience or several.
#[derive(Deserialize)]
#[serde(untagged)]
enum Audiences {
    One(String),
    Many(Vec<String>),
}

/// The claims of an access token (registered and ours). A claim given
/// twice makes the token unreadable.
#[derive(Deserialize)]
struct TokenClaims {
    iss: Option<String>,
    aud: Option<Audiences>,
    sub: Option<String>,
    jti: Option<String>,
    exp: Option<u64>,
    iat: Option<u64>,
    nbf: Option<u64>,
    role: Role,
    #[serde(default)]
    email_verified: bool,
}

impl TokenClaims {
    /// The caller, if the claims hold at `now` (seconds since the epoch)
    /// for this issuer and audience.
    fn caller(self, now: u64, issuer: &str, audience: &str) -> Option<Caller> {
        let tolerance = CLOCK_TOLERANCE_SECS;
        let (Some(user_id), Some(token_id), Some(expires_at), Some(issued_at)) = (self.sub, self.jti, self.exp, self.iat) else {
            return None;
        };
        let max_validity = ACCESS_TOKEN_TTL_SECS + tolerance;
        let fresh = issued_at <= now + tolerance && (now <= issued_at || now - issued_at <= max_validity);
        let started = self.nbf.is_none_or(|nbf| now + tolerance >= nbf);
        let unexpired = now >= tolerance && now - tolerance <= expires_at;
        let ours = self.iss.as_deref() == Some(issuer)
            && match &self.aud {
                Some(Audiences::One(a)) => a == audience,
                Some(Audiences::Many(all)) => all.iter().any(|a| a == audience),
                None => false,
            };
        (fresh && started && unexpired && ours).then_some(Caller { user_id, role: self.role, token_id, email_verified: self.email_verified })
    }
}

impl Verifier {
    /// Build a verifier from variable values.
    pub fn new(public_key: &str, issuer: &str, audience: &str) -> Result<Self, String> {
        let bytes = ed25519_public_key(decode_key_material(public_key)?).map_err(|e| format!("jwt_public_key {e}"))?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| "jwt_public_key is not an Ed25519 public key".to_string())?;
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
        let now = u64::try_from(clock::unix_now()).unwrap_or(0);
        self.verify_at(token, now).ok_or_else(invalid_token)
    }

    /// The caller a token names, if it is ours, untampered and valid at `now`.
    fn verify_at(&self, token: &str, now: u64) -> Option<Caller> {
        if token.len() > MAX_TOKEN_BYTES {
            return None;
        }
        let mut parts = token.split('.');
        let (header, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        // What the signature covers: `header.claims`, as sent.
        let signed = &token[..header.len() + 1 + claims.len()];
        let header: TokenHeader = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
        let typ_ok = header.typ.is_none_or(|t| {
            let t = t.to_ascii_uppercase();
            t == "JWT" || t.ends_with("+JWT")
        });
        // Only EdDSA: a token claiming `none` or an HMAC is refused before
        // anything else is read.
        if header.alg != "EdDSA" || !typ_ok || header.crit.is_some_and(|c| !c.is_empty()) {
            return None;
        }
        let signature = ed25519_dalek::Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature).ok()?).ok()?;
        self.key.verify_strict(signed.as_bytes(), &signature).ok()?;
        let claims: TokenClaims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()?;
        claims.caller(now, &self.issuer, &self.audience)
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
    if secrets_match(ctx.header(header).unwrap_or("").as_bytes(), expected.as_bytes()) {
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
    if secrets_match(token.as_bytes(), expected.as_bytes()) {
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

/// `given == expected`, in time that depends only on `expected`'s length.
/// (The length difference once went through `as u8`, so a secret followed
/// by 256 more bytes — any multiple of 256 — matched.)
pub fn secrets_match(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
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
    use base64::engine::general_purpose::STANDARD;
    use jwt_simple::prelude::{Claims, Clock, Duration, Ed25519KeyPair, EdDSAKeyPairLike, EdDSAPublicKeyLike, HS256Key, MACLike, VerificationOptions};
    use std::collections::HashSet;

    #[test]
    fn secrets_match_only_when_equal() {
        assert!(secrets_match(b"s3cret", b"s3cret"));
        assert!(!secrets_match(b"s3creT", b"s3cret"));
        assert!(!secrets_match(b"s3cre", b"s3cret"));
        assert!(!secrets_match(b"", b"s3cret"));
        // A length differing by a multiple of 256 with the secret as prefix.
        let long = [b"s3cret".as_slice(), &[b'x'; 256]].concat();
        assert!(!secrets_match(&long, b"s3cret"));
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
    fn a_shared_secret_with_anything_after_it_does_not_match() {
        let secret = b"sweep-suite-secret";
        assert!(secrets_match(secret, secret));
        // Regression: the length difference was cast to u8, so 256 (or any
        // multiple of 256) bytes after the secret were accepted.
        for extra in [1, 255, 256, 512] {
            let mut given = secret.to_vec();
            given.extend(std::iter::repeat_n(b'x', extra));
            assert!(!secrets_match(&given, secret), "{extra} bytes more");
        }
        assert!(!secrets_match(b"", secret) && !secrets_match(b"sweep-suite-secreT", secret));
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

    #[test]
    fn refuses_critical_extensions_foreign_types_and_oversized_tokens() {
        let (kp, public) = keys();
        let v = Verifier::new(&public, "shop", "shop-api").unwrap();
        let good = token(&kp, "shop-api", "shop", 60);
        let now = u64::try_from(clock::unix_now()).unwrap();
        assert!(v.verify_at(&good, now).is_some());
        // A header we did not sign cannot be swapped in (the signature covers it) ...
        let (_, rest) = good.split_once('.').unwrap();
        let crit = URL_SAFE_NO_PAD.encode(r#"{"alg":"EdDSA","crit":["exp"]}"#);
        assert!(v.verify_at(&format!("{crit}.{rest}"), now).is_none());
        // ... and is judged before the signature: these are refused unverified.
        for header in [r#"{"alg":"EdDSA","crit":["b64"]}"#, r#"{"alg":"EdDSA","typ":"JOSE"}"#, r#"{"alg":"Ed25519"}"#, r#"{"typ":"JWT"}"#] {
            let (h, _) = signed_with_header(&kp, header);
            assert!(v.verify_at(&h, now).is_none(), "{header}");
        }
        for header in [r#"{"alg":"EdDSA"}"#, r#"{"alg":"EdDSA","typ":"at+jwt"}"#, r#"{"alg":"EdDSA","typ":"JWT","kid":"k1"}"#] {
            let (h, _) = signed_with_header(&kp, header);
            assert!(v.verify_at(&h, now).is_some(), "{header}");
        }
        let padded = format!("{good}{}", "A".repeat(MAX_TOKEN_BYTES));
        assert!(v.verify_at(&padded, now).is_none());
        assert!(v.verify_at(&format!("{good}.extra"), now).is_none());
    }

    /// A token with this header (JSON) over valid claims, signed with `kp`'s
    /// key, and its claims part.
    fn signed_with_header(kp: &Ed25519KeyPair, header: &str) -> (String, String) {
        use ed25519_dalek::Signer;
        let now = u64::try_from(clock::unix_now()).unwrap();
        let claims = serde_json::json!({ "iss": "shop", "aud": "shop-api", "sub": "u", "jti": "j", "iat": now, "exp": now + 60, "role": "customer" });
        let signing = ed25519_dalek::SigningKey::from_bytes(&kp.to_bytes()[..32].try_into().unwrap());
        let signed = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = signing.sign(signed.as_bytes());
        (format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes())), claims.to_string())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        /// Whatever the times, issuer and audiences, this verifier accepts
        /// exactly the tokens jwt-simple (which signs them) accepts with the
        /// options this module used to give it. Offsets are whole seconds
        /// plus 5, so no comparison falls within a second of its limit,
        /// where jwt-simple's sub-second clock could differ from ours.
        #[test]
        fn accepts_exactly_what_jwt_simple_accepts(
            issued in -100i64..10, expires in -10i64..100, not_before in proptest::option::of(-10i64..10),
            issuer in proptest::sample::select(vec!["shop", "evil"]),
            audiences in proptest::sample::select(vec![vec![], vec!["shop-api"], vec!["other"], vec!["other", "shop-api"]]),
            as_set in proptest::bool::ANY, subject in proptest::bool::ANY,
        ) {
            let (kp, public) = keys();
            let v = Verifier::new(&public, "shop", "shop-api").unwrap();
            let now = Clock::now_since_epoch();
            let at = |offset: i64| {
                let secs = (offset * 10 + 5).unsigned_abs();
                if offset * 10 + 5 >= 0 { now + Duration::from_secs(secs) } else { now - Duration::from_secs(secs) }
            };
            let mut claims = Claims::with_custom_claims(AccessClaims { role: Role::Customer, email_verified: true }, Duration::from_secs(60))
                .with_issuer(issuer)
                .with_jwt_id("j");
            if subject {
                claims = claims.with_subject("u");
            }
            claims = match (audiences.as_slice(), as_set) {
                ([], _) => claims,
                ([one], false) => claims.with_audience(*one),
                (all, _) => claims.with_audiences(all.iter().map(|a| a.to_string()).collect()),
            };
            claims.issued_at = Some(at(issued));
            claims.expires_at = Some(at(expires));
            claims.invalid_before = not_before.map(at);
            let signed = kp.sign(claims).unwrap();
            let theirs = kp.public_key().verify_token::<AccessClaims>(&signed, Some(VerificationOptions {
                allowed_issuers: Some(HashSet::from(["shop".to_string()])),
                allowed_audiences: Some(HashSet::from(["shop-api".to_string()])),
                time_tolerance: Some(Duration::from_secs(CLOCK_TOLERANCE_SECS)),
                max_validity: Some(Duration::from_secs(ACCESS_TOKEN_TTL_SECS + CLOCK_TOLERANCE_SECS)),
                ..Default::default()
            }));
            // jwt-simple checks claims only; the verifier also needs sub and jti.
            let theirs = theirs.ok().filter(|c| c.subject.is_some() && c.jwt_id.is_some());
            let ours = v.verify_at(&signed, now.as_secs());
            proptest::prop_assert_eq!(ours.is_some(), theirs.is_some());
            if let Some(caller) = ours {
                proptest::prop_assert_eq!(caller, Caller { user_id: "u".into(), role: Role::Customer, token_id: "j".into(), email_verified: true });
            }
        }
    }
}
